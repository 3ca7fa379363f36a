//! A per-attempt timeout that costs nothing when the attempt is ready at once.
//!
//! [`AttemptTimeoutLayer`] bounds each call of the inner service to a duration, like
//! `tower::timeout::TimeoutLayer`, and fails with the same error,
//! [`tower::timeout::error::Elapsed`], so classifiers, breakers and callers that know
//! tower's timeout treat it the same way (a timeout: retried for idempotent requests, a failure
//! for a circuit breaker).
//!
//! The difference is when the timer is armed. tower's `Timeout` creates a tokio `Sleep` in
//! `call` for every request (a runtime handle clone and a clock read) and registers it with the
//! timer wheel on the first poll, then deregisters it when the response comes: work paid by
//! every request, even one whose response is ready on the first poll. [`AttemptTimeout`] polls
//! the inner future first and creates the timer only when that poll returns `Pending`: an
//! attempt answered on its first poll (a cache, a mock, an in-process service, an error returned
//! at once) reads no clock and touches no timer.
//!
//! # One keeper per runtime instead of a tokio timer per attempt
//!
//! A tokio timer per attempt costs a runtime handle, the timer wheel's lock to register and to
//! cancel, and often a system call to wake the driver (tokio's time driver writes its eventfd
//! for a timer registered while its wheel was empty, or earlier than the deadline it noted at
//! its last park: tokio-rs/tokio#5207): a few per cent of a busy client's throughput. So the
//! first attempt that needs a timer on a runtime starts a *keeper* there: a task that holds the
//! only timer in the wheel and keeps the time of every pending attempt on a board of its own.
//! An attempt posts its deadline and waker there (a slot claimed and freed with one
//! compare-and-swap each, the waker dropped when the attempt ends: no lock, no allocation),
//! and the keeper wakes it when it is due. The deadline is the attempt's, to the wheel's
//! millisecond, as with a timer of its own. Timeouts
//! under 100 ms, attempts beyond the board's 4,096 slots, and attempts whose keeper has gone
//! (its runtime shut down) use a tokio timer of their own. A keeper sleeps half the shortest
//! timeout it serves at a time, and stops after four rounds without an attempt, or with its
//! runtime.
//!
//! # The clock starts at the first poll
//!
//! The time counts from the first poll of the response future that finds the attempt not yet
//! finished, not from `call`. Inside the retry layer (its place in a stack) the two are the same
//! moment: the retry future polls every attempt as soon as it is sent. A caller that calls and
//! polls much later gets a timeout counted from the poll.
//!
//! # Runtime
//!
//! Like tower's, the timer needs a tokio runtime with the time driver when an attempt is
//! pending; an attempt that is ready on its first poll needs none. A timeout so long that the
//! deadline cannot be represented never fires.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use http::{Request, Response};
//! use resile_retry::timeout::AttemptTimeoutLayer;
//! use resile_retry::RetryLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower::BoxError> {
//! // A backend that never answers.
//! let backend = service_fn(|_req: Request<String>| async {
//!     std::future::pending::<Result<Response<String>, std::convert::Infallible>>().await
//! });
//! let client = ServiceBuilder::new()
//!     .layer(RetryLayer::default())
//!     .layer(AttemptTimeoutLayer::new(Duration::from_secs(2)))
//!     .service(backend);
//!
//! let err = client
//!     .oneshot(Request::get("http://example.com/").body(String::new())?)
//!     .await
//!     .unwrap_err();
//! // Each attempt timed out; the last one's error is returned.
//! assert!(err.is::<tower::timeout::error::Elapsed>());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::task::{Context, Poll};
use std::time::Duration;

use tower_layer::Layer;
use tower_service::Service;

pub use tower::timeout::error::Elapsed;

use crate::BoxError;

mod board;
mod future;
mod keeper;

pub use future::ResponseFuture;

/// Wraps services in [`AttemptTimeout`]: each call fails with [`Elapsed`] if its response takes
/// longer than the duration. See the [module documentation](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptTimeoutLayer {
    timeout: Duration,
}

impl AttemptTimeoutLayer {
    /// A layer bounding each call to `timeout`.
    pub const fn new(timeout: Duration) -> Self {
        AttemptTimeoutLayer { timeout }
    }

    /// The bound of each call.
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl<S> Layer<S> for AttemptTimeoutLayer {
    type Service = AttemptTimeout<S>;

    fn layer(&self, inner: S) -> AttemptTimeout<S> {
        AttemptTimeout::new(inner, self.timeout)
    }
}

/// Fails a call with [`Elapsed`] when its response takes longer than the timeout; the timer is
/// only armed if the response is not ready on its first poll. See the
/// [module documentation](self).
///
/// `poll_ready` is the inner service's (not bounded: put the timeout on readiness elsewhere if
/// you need it, as with tower's `Timeout`).
#[derive(Clone, Copy, Debug)]
pub struct AttemptTimeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S> AttemptTimeout<S> {
    /// Wraps `inner`, bounding each call to `timeout`.
    pub const fn new(inner: S, timeout: Duration) -> Self {
        AttemptTimeout { inner, timeout }
    }

    /// The bound of each call.
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req> Service<Req> for AttemptTimeout<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture::new(self.inner.call(req), self.timeout)
    }
}

impl fmt::Display for AttemptTimeoutLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt timeout of {:?}", self.timeout)
    }
}

#[cfg(test)]
mod tests;
