//! The breaker service.
//!
//! # Readiness
//!
//! `poll_ready` asks the breaker first. Closed (or disabled): it then polls the inner service.
//! Half-open with a free probe slot: it reserves the slot (held until `call`, given back if the
//! service is dropped first) and polls the inner service. Open, or half-open with every slot
//! taken: it does **not** poll the inner service and returns ready at once, and `call` returns
//! an immediate [`BreakerOpen`] error — failing fast the way tower's `LoadShed` does, so a
//! caller never waits on the readiness of a backend the breaker has given up on.
//!
//! A closed admission is not a reservation: it is looked at again on every `poll_ready`, so a
//! service that waited on its inner readiness while the breaker opened does not send the call.
//!
//! # The closed path
//!
//! `poll_ready` + `call` + recording the outcome cost, in the closed state under the default
//! policy: two atomic loads of the state word, the `Arc` the response future holds (as tower's
//! `ConcurrencyLimit` holds its semaphore), and one counter. No lock, no allocation, no clock
//! read.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::error::BreakerOpen;
use crate::future::{Guard, ResponseFuture};
use crate::handle::BreakerHandle;
use crate::policy::ClassifyOutcome;
use crate::shared::Breaker;
use crate::state::{Permit, PermitKind};
use crate::BoxError;

/// A circuit breaker in front of a service: see the [crate docs](crate).
///
/// Built by a [`CircuitBreakerLayer`](crate::CircuitBreakerLayer). Clones share the breaker.
pub struct CircuitBreaker<S, C = resile_classify::Classifier> {
    inner: S,
    breaker: Arc<Breaker<C>>,
    /// What `poll_ready` reserved for the next `call`: a permit, or the rejection.
    reserved: Option<Result<Permit, BreakerOpen>>,
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker.shared)
            .field("reserved", &self.reserved)
            .finish()
    }
}

impl<S, C> CircuitBreaker<S, C> {
    pub(crate) fn new(inner: S, breaker: Arc<Breaker<C>>) -> Self {
        CircuitBreaker {
            inner,
            breaker,
            reserved: None,
        }
    }

    /// The breaker's handle.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            shared: self.breaker.shared.clone(),
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

    fn unreserve(&mut self) {
        if let Some(Ok(p)) = self.reserved.take() {
            self.breaker.shared.unreserve(0, p);
        }
    }
}

impl<S: Clone, C> Clone for CircuitBreaker<S, C> {
    /// A clone shares the breaker but not the parent's reservation: it must be polled ready
    /// itself.
    fn clone(&self) -> Self {
        CircuitBreaker::new(self.inner.clone(), self.breaker.clone())
    }
}

impl<S, C> Drop for CircuitBreaker<S, C> {
    fn drop(&mut self) {
        self.unreserve();
    }
}

impl<S, C, Req, Res> Service<Req> for CircuitBreaker<S, C>
where
    S: Service<Req, Response = Res>,
    S::Error: Into<BoxError>,
    C: ClassifyOutcome<Res>,
{
    type Response = Res;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // A reserved probe slot is kept; anything else is looked at again.
        if !matches!(self.reserved, Some(Ok(p)) if p.kind() == PermitKind::Probe) {
            let shared = &self.breaker.shared;
            let admitted = match shared.closed_permit(0) {
                Some(p) => Ok(p),
                None => shared.admit(0),
            };
            let refused = admitted.is_err();
            self.reserved = Some(admitted);
            if refused {
                return Poll::Ready(Ok(()));
            }
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => {
                self.unreserve();
                Poll::Ready(Err(e.into()))
            }
        }
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &self.breaker.shared;
        match self.reserved.take().unwrap_or_else(|| shared.admit(0)) {
            Err(open) => {
                shared.rejected();
                ResponseFuture::refused(open)
            }
            Ok(permit) => {
                let fut = self.inner.call(req);
                ResponseFuture::called(fut, Guard::new(self.breaker.clone(), 0, permit))
            }
        }
    }
}
