//! `RateLimit`: the client service.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use resile_classify::ResponseLike;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::error::{NotReady, WaitTooLong};
use super::future::ResponseFuture;
use super::layer::Shared;
use crate::gcra::Decision;
use crate::store::{BoxError, Store, StoreError};

/// Where a service stands with its permit.
enum Permit<F> {
    /// Nothing reserved.
    Idle,
    /// The store is deciding (boxed: only a store that did not decide on the first poll, the
    /// Redis one, gets here; the in-memory stores decide at once, and the service stays small,
    /// as it is moved and cloned with every request).
    Reserving(Box<F>),
    /// A slot is reserved; sleeping until it begins.
    Waiting,
    /// A permit is held: `call` may go.
    Held,
    /// `call` must fail with this error (wait too long, store failure).
    Rejected(Option<BoxError>),
}

/// Paces requests to a shared quota; made by [`RateLimitLayer`](super::RateLimitLayer).
///
/// # `poll_ready`
///
/// `poll_ready` reserves one permit (the layer's cost) from the shared store, then waits until
/// the reserved slot begins, then polls the inner service. The reservation is made **once**:
/// waking up later does not re-queue, so a caller never loses its place.
///
/// - *Fairness*: reservations are granted in the order `poll_ready` first reaches the store (the
///   GCRA TAT is a queue position): under contention callers are served first come, first served,
///   each at its own slot, and none can starve another.
/// - *Cancellation*: a reserved permit that `call` did not use (the service is dropped while
///   waiting, or after `poll_ready` without `call`) is given back to the limiter. A clone starts
///   with no permit (`Clone` is written by hand for this).
/// - *Bounded*: if the slot is further away than the maximum wait, nothing is reserved and the
///   next `call` fails at once with [`WaitTooLong`] (tower's `LoadShed` style: `poll_ready` says
///   ready so the error reaches the caller of `call`). A store error fails the call the same way.
///
/// Sleeping needs a tokio runtime with its time driver.
pub struct RateLimit<S, St: Store<K>, K> {
    inner: S,
    shared: Arc<Shared<St, K>>,
    permit: Permit<St::Future>,
    /// Allocated on the first wait, then reset for every later one.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S, St: Store<K>, K> RateLimit<S, St, K> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<St, K>>) -> Self {
        RateLimit {
            inner,
            shared,
            permit: Permit::Idle,
            sleep: None,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    fn wait_until(&mut self, wait: Duration) {
        // A wait past tokio's range is, for any practical purpose, "never".
        let now = Instant::now();
        let deadline = now
            .checked_add(wait)
            .or_else(|| now.checked_add(Duration::from_secs(30 * 365 * 86_400)))
            .unwrap_or(now);
        sleep_until(&mut self.sleep, deadline);
        self.permit = Permit::Waiting;
    }
}

/// Arms `sleep` for `deadline` (allocated on the first wait, reset for every later one).
fn sleep_until(sleep: &mut Option<Pin<Box<Sleep>>>, deadline: Instant) {
    match sleep {
        Some(sleep) => sleep.as_mut().reset(deadline),
        None => *sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
    }
}

impl<S, St, K, Req> Service<Req> for RateLimit<S, St, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    S::Response: ResponseLike,
    St: Store<K>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, St, K>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_permit(cx)
    }

    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        if let Permit::Held = self.permit {
            self.permit = Permit::Idle;
            let hints = self.shared.hints.enabled.then(|| Arc::clone(&self.shared));
            return ResponseFuture::called(self.inner.call(req), hints);
        }
        self.call_without_permit()
    }
}

impl<S, St, K> RateLimit<S, St, K>
where
    St: Store<K>,
{
    /// `call` without a held permit: the error `poll_ready` left, or `NotReady`.
    #[cold]
    #[inline(never)]
    fn call_without_permit<F>(&mut self) -> ResponseFuture<F, St, K> {
        match mem::replace(&mut self.permit, Permit::Idle) {
            Permit::Rejected(err) => {
                ResponseFuture::failed(err.unwrap_or_else(|| Box::new(NotReady)))
            }
            other => {
                self.permit = other;
                ResponseFuture::failed(Box::new(NotReady))
            }
        }
    }

    /// The permit state after the store's decision.
    fn decided(&mut self, decided: Result<Decision, StoreError>) {
        match decided {
            Ok(d) if d.allowed => {
                if d.retry_after.is_zero() {
                    self.permit = Permit::Held;
                } else {
                    self.wait_until(d.retry_after);
                }
            }
            Ok(d) => {
                tracing::debug!(wait = ?d.retry_after, max_wait = ?self.shared.max_wait, "rate limit: wait too long, failing fast");
                self.permit = Permit::Rejected(Some(Box::new(WaitTooLong {
                    wait: d.retry_after,
                    max_wait: self.shared.max_wait,
                })));
            }
            Err(e) => {
                tracing::warn!(error = %e, "rate limit: store failed");
                self.permit = Permit::Rejected(Some(Box::new(e)));
            }
        }
    }

    /// `poll_ready` past its fast path: reserving, waiting, pausing.
    fn poll_permit<Req>(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>>
    where
        S: Service<Req>,
        S::Error: Into<BoxError>,
    {
        loop {
            match &mut self.permit {
                Permit::Idle => {
                    let s = &*self.shared;
                    let mut fut = s.store.reserve(&s.key, &s.quota, s.cost, s.max_wait);
                    match Pin::new(&mut fut).poll(cx) {
                        Poll::Ready(decided) => self.decided(decided),
                        Poll::Pending => self.permit = Permit::Reserving(Box::new(fut)),
                    }
                }
                Permit::Reserving(fut) => {
                    let decided = ready!(Pin::new(&mut **fut).poll(cx));
                    self.decided(decided);
                }
                Permit::Waiting => {
                    if let Some(sleep) = &mut self.sleep {
                        ready!(sleep.as_mut().poll(cx));
                    }
                    self.permit = Permit::Held;
                }
                Permit::Held => return self.inner.poll_ready(cx).map_err(Into::into),
                Permit::Rejected(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<S, St: Store<K>, K> Drop for RateLimit<S, St, K> {
    fn drop(&mut self) {
        if matches!(self.permit, Permit::Held | Permit::Waiting) {
            self.shared.release();
        }
    }
}

impl<S: Clone, St: Store<K>, K> Clone for RateLimit<S, St, K> {
    /// A clone shares the limiter but holds no permit of its own.
    fn clone(&self) -> Self {
        RateLimit::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug, St: Store<K>, K: fmt::Debug> fmt::Debug for RateLimit<S, St, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let permit = match self.permit {
            Permit::Idle => "idle",
            Permit::Reserving(_) => "reserving",
            Permit::Waiting => "waiting",
            Permit::Held => "held",
            Permit::Rejected(_) => "rejected",
        };
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("quota", &self.shared.quota)
            .field("key", &self.shared.key)
            .field("permit", &permit)
            .finish()
    }
}
