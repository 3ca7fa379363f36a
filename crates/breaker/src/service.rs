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
    /// What `poll_ready` reserved for the next `call`: a permit, or the rejection.
    reserved: Reserved,
}

/// What `poll_ready` reserved for `call`, in one word (a `BreakerOpen` alone takes four): the
/// closed path writes and reads its permit as one word, and the service stays small, as it is
/// moved and cloned with every request.
///
/// `0`: nothing; bit 63 clear: a permit (its bits); bit 63 set: a rejection, whose low bits are
/// `0` when forced open (no probe ahead), else `1 +` the nanoseconds until the next probe
/// (saturating, past 292 years).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reserved(u64);

impl Reserved {
    const NONE: Reserved = Reserved(0);
    const REFUSED: u64 = 1 << 63;

    #[inline(always)]
    fn permit(p: Permit) -> Reserved {
        Reserved(u64::from(p.bits()))
    }

    fn refused(open: &BreakerOpen) -> Reserved {
        let low = match open.until_probe() {
            None => 0,
            Some(d) => {
                u64::try_from(d.as_nanos())
                    .unwrap_or(u64::MAX)
                    .min(Self::REFUSED - 2)
                    + 1
            }
        };
        Reserved(Self::REFUSED | low)
    }

    /// The permit held, if any.
    #[inline(always)]
    fn held(self) -> Option<Permit> {
        // A permit's bits are a non-zero `u32`: the high half of its word is clear.
        if self.0 >> 32 == 0 {
            Permit::from_bits(self.0 as u32)
        } else {
            None
        }
    }

    /// The permit or the rejection reserved, if any.
    #[inline(always)]
    fn get(self) -> Option<Result<Permit, BreakerOpen>> {
        if self.0 >> 32 == 0 {
            return Permit::from_bits(self.0 as u32).map(Ok);
        }
        Some(Err(self.rejection()))
    }

    /// The rejection of a word with bit 63 set.
    #[cold]
    fn rejection(self) -> BreakerOpen {
        BreakerOpen::new(match self.0 & !Self::REFUSED {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos - 1)),
        })
    }

    #[inline(always)]
    fn take(&mut self) -> Option<Result<Permit, BreakerOpen>> {
        std::mem::replace(self, Reserved::NONE).get()
    }
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", &self.owner.local.shared)
            .field("reserved", &self.reserved.get())
            .finish()
    }
}

impl<S, C> CircuitBreaker<S, C> {
    pub(crate) fn new(inner: S, owner: Arc<Owner<C>>) -> Self {
        CircuitBreaker {
            inner,
            owner,
            reserved: Reserved::NONE,
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
                self.reserved = Reserved::permit(p);
                false
            }
            Err(open) => {
                self.reserved = Reserved::refused(&open);
                true
            }
        }
    }

    fn unreserve(&mut self) {
        if let Some(p) = self.reserved.held() {
            self.reserved = Reserved::NONE;
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
            reserved: Reserved::NONE,
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
        if !matches!(self.reserved.held(), Some(p) if p.kind() == PermitKind::Probe) {
            // The closed path first, on its own: its permit stays in a register.
            if let Some(p) = self.owner.local.shared.closed_permit(0) {
                self.reserved = Reserved::permit(p);
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
        let permit = match self.reserved.take() {
            Some(reserved) => reserved,
            // Without a `poll_ready` first (a contract violation), admit now rather than panic.
            None => self.owner.local.shared.admit(0),
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
    fn a_reservation_keeps_the_permit_or_the_rejection_it_was_made_from() {
        let probes = [
            None,
            Some(Duration::ZERO),
            Some(Duration::from_nanos(1)),
            Some(Duration::from_millis(1500)),
            Some(Duration::from_nanos((1 << 63) - 2)),
        ];
        for until_probe in probes {
            let open = BreakerOpen::new(until_probe);
            let mut reserved = Reserved::refused(&open);
            assert_eq!(reserved.held(), None);
            assert_eq!(reserved.get(), Some(Err(open)));
            assert_eq!(reserved.take(), Some(Err(open)));
            assert_eq!(reserved, Reserved::NONE);
            assert_eq!(reserved.take(), None);
        }
        // Past what the word holds: the furthest it can say.
        let far = Reserved::refused(&BreakerOpen::new(Some(Duration::MAX)));
        assert_eq!(
            far.get(),
            Some(Err(BreakerOpen::new(Some(Duration::from_nanos(
                (1 << 63) - 2
            )))))
        );
        for kind in [PermitKind::Closed, PermitKind::Probe, PermitKind::Disabled] {
            for epoch in [0, 1, 12345, u32::MAX] {
                let permit = Permit::new(epoch, kind);
                let mut reserved = Reserved::permit(permit);
                assert_eq!(reserved.held(), Some(permit));
                assert_eq!(reserved.take(), Some(Ok(permit)));
                assert_eq!(reserved.held(), None);
            }
        }
    }
}
