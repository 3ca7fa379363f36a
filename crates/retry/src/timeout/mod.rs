//! A per-attempt timeout that costs nothing when the attempt is ready at once.
//!
//! [`AttemptTimeoutLayer`] bounds each call of the inner service to a duration, like
//! `tower::timeout::TimeoutLayer`, and fails with the same error,
//! [`tower::timeout::error::Elapsed`], so classifiers, breakers and callers that know
//! tower's timeout treat it the same way (a timeout: retried for idempotent requests, a failure
//! for a circuit breaker).
//!
//! The difference is when the timer is armed. tower's `Timeout` creates a tokio `Sleep` in
//! `call` for every request. [`AttemptTimeout`] polls the inner future first and arms tokio's
//! timer (a `Sleep` held inline in the future, no allocation) only when that poll returns
//! `Pending`: an attempt answered on its first poll (a cache, a mock, an in-process service, an
//! error returned at once) reads no clock and touches no timer.
//!
//! A future moved to another runtime after its timer was armed (its first runtime may be gone)
//! re-arms the timer on the runtime that polls it, for the time left.
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

mod future;

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

#[cfg(all(test, not(loom)))]
mod tests;
