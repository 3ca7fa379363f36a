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
//! policy: two atomic loads of the state word, a thread-local lookup, and a counter only this
//! thread writes. No lock, no allocation, no clock read, and no write to memory another thread
//! uses: the response future carries the breaker's id rather than a reference-counted handle
//! (see the `local` module in the source).

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower_service::Service;

use crate::error::BreakerOpen;
use crate::future::{Guard, ResponseFuture};
use crate::handle::BreakerHandle;
use crate::local::{LocalId, Owner};
use crate::policy::ClassifyOutcome;
use crate::state::{Permit, PermitKind};
use crate::BoxError;

/// A circuit breaker in front of a service: see the [crate docs](crate).
///
/// Built by a [`CircuitBreakerLayer`](crate::CircuitBreakerLayer). Clones share the breaker.
pub struct CircuitBreaker<S, C = resile_classify::Classifier> {
    inner: S,
    owner: Arc<Owner<C>>,
    /// What `poll_ready` reserved for the next `call`: a permit, or the rejection. (Two fields
    /// rather than one enum: the closed path writes and reads the permit as one word.)
    permit: Option<Permit>,
    refused: Refusal,
}

/// A rejection `poll_ready` keeps for `call`, in one word (a `BreakerOpen` takes four): the
/// service stays small, and it is moved and cloned with every request. `0`: none; `1`: forced
/// open (no probe ahead); `2 + n`: the next probe in `n` nanoseconds (saturating, past 584
/// years).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refusal(u64);

impl Refusal {
    const NONE: Refusal = Refusal(0);

    fn of(open: &BreakerOpen) -> Refusal {
        match open.until_probe() {
            None => Refusal(1),
            Some(d) => {
                Refusal(u64::try_from(d.as_nanos()).map_or(u64::MAX, |n| n.saturating_add(2)))
            }
        }
    }

    fn open(self) -> Option<BreakerOpen> {
        match self.0 {
            0 => None,
            1 => Some(BreakerOpen::new(None)),
            n => Some(BreakerOpen::new(Some(Duration::from_nanos(n - 2)))),
        }
    }

    fn take(&mut self) -> Option<BreakerOpen> {
        std::mem::replace(self, Refusal::NONE).open()
    }
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", &self.owner.local.shared)
            .field("permit", &self.permit)
            .field("refused", &self.refused.open())
            .finish()
    }
}

impl<S, C> CircuitBreaker<S, C> {
    pub(crate) fn new(inner: S, owner: Arc<Owner<C>>) -> Self {
        CircuitBreaker {
            inner,
            owner,
            permit: None,
            refused: Refusal::NONE,
        }
    }

    /// The breaker's handle.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            shared: self.owner.local.shared.clone(),
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

    /// `poll_ready`'s admission past the closed path; `true` if the call is refused (the
    /// rejection is kept for `call`).
    #[cold]
    #[inline(never)]
    fn admit_slow(&mut self) -> bool {
        match self.owner.local.shared.admit(0) {
            Ok(p) => {
                self.permit = Some(p);
                self.refused = Refusal::NONE;
                false
            }
            Err(open) => {
                self.permit = None;
                self.refused = Refusal::of(&open);
                true
            }
        }
    }

    fn unreserve(&mut self) {
        if let Some(p) = self.permit.take() {
            self.owner.local.shared.unreserve(0, p);
        }
    }
}

impl<S: Clone, C> Clone for CircuitBreaker<S, C> {
    /// A clone shares the breaker but not the parent's reservation: it must be polled ready
    /// itself.
    fn clone(&self) -> Self {
        CircuitBreaker {
            inner: self.inner.clone(),
            owner: self.owner.clone(),
            permit: None,
            refused: Refusal::NONE,
        }
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
        // A probe slot is kept until `call` (or drop); anything else is asked for again.
        if !matches!(self.permit, Some(p) if p.kind() == PermitKind::Probe) {
            // The closed path first, on its own: its permit stays in a register.
            if let Some(p) = self.owner.local.shared.closed_permit(0) {
                self.permit = Some(p);
                if self.refused != Refusal::NONE {
                    self.refused = Refusal::NONE;
                }
            } else if self.admit_slow() {
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

    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        let permit = match self.permit.take() {
            Some(p) => Ok(p),
            None => match self.refused.take() {
                Some(open) => Err(open),
                // Without a `poll_ready` first (a contract violation), admit now rather than
                // panic.
                None => self.owner.local.shared.admit(0),
            },
        };
        match permit {
            Err(open) => {
                LocalId::<C>::new(self.owner.local.id()).with(|_, counters| counters.rejection());
                ResponseFuture::refused(open)
            }
            Ok(permit) => {
                let fut = self.inner.call(req);
                ResponseFuture::called(fut, Guard::new(self.owner.local.id(), 0, permit))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_the_rejection_it_was_made_from() {
        let probes = [
            None,
            Some(Duration::ZERO),
            Some(Duration::from_nanos(1)),
            Some(Duration::from_millis(1500)),
            Some(Duration::from_nanos(u64::MAX - 2)),
        ];
        for until_probe in probes {
            let open = BreakerOpen::new(until_probe);
            let mut refusal = Refusal::of(&open);
            assert_ne!(refusal, Refusal::NONE);
            assert_eq!(refusal.open(), Some(open));
            assert_eq!(refusal.take(), Some(open));
            assert_eq!(refusal, Refusal::NONE);
            assert_eq!(refusal.take(), None);
        }
        // Past what the word holds: the furthest it can say.
        let far = Refusal::of(&BreakerOpen::new(Some(Duration::MAX)));
        assert_eq!(
            far.open().and_then(|o| o.until_probe()),
            Some(Duration::from_nanos(u64::MAX - 2))
        );
    }
}
