//! The response future: records the outcome when the call completes, and gives a probe's slot
//! back if it is dropped before.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::error::BreakerOpen;
use crate::policy::{verdict, ClassifyOutcome};
use crate::shared::Breaker;
use crate::state::Permit;
use crate::BoxError;

/// Holds a call's permit until its outcome is recorded; if dropped first (the future was
/// cancelled), gives the permit back so a half-open breaker's probe slot is never lost.
pub(crate) struct Guard<C> {
    breaker: Arc<Breaker<C>>,
    slot: usize,
    /// `None` once recorded.
    permit: Option<Permit>,
}

impl<C> Guard<C> {
    #[inline]
    pub(crate) fn new(breaker: Arc<Breaker<C>>, slot: usize, permit: Permit) -> Self {
        Guard {
            breaker,
            slot,
            permit: Some(permit),
        }
    }

    #[inline]
    fn record_response<Res>(&mut self, res: &Res)
    where
        C: ClassifyOutcome<Res>,
    {
        if let Some(permit) = self.permit.take() {
            let classifier = &self.breaker.classifier;
            let v = verdict(classifier.classify_response(res));
            self.breaker
                .shared
                .complete(self.slot, permit, v, || classifier.server_hint(res));
        }
    }

    #[cold]
    fn record_error<Res>(&mut self, err: &(dyn std::error::Error + 'static))
    where
        C: ClassifyOutcome<Res>,
    {
        if let Some(permit) = self.permit.take() {
            let v = verdict(self.breaker.classifier.classify_error(err));
            self.breaker.shared.complete(self.slot, permit, v, || None);
        }
    }
}

impl<C> Drop for Guard<C> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.breaker.shared.cancel(self.slot, permit);
        }
    }
}

pin_project! {
    /// The future of a [`CircuitBreaker`](crate::CircuitBreaker) call.
    ///
    /// Either the inner service's future, whose outcome is recorded when it completes, or an
    /// immediate [`BreakerOpen`] error.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Called {
            #[pin]
            fut: F,
            guard: Guard<C>,
        },
        Refused {
            open: BreakerOpen,
        },
        Unguarded {
            #[pin]
            fut: F,
        },
    }
}

impl<F, C> ResponseFuture<F, C> {
    #[inline]
    pub(crate) fn called(fut: F, guard: Guard<C>) -> Self {
        ResponseFuture {
            kind: Kind::Called { fut, guard },
        }
    }

    /// A call no breaker watches (a keyed breaker with no room for its key).
    #[inline]
    pub(crate) fn unguarded(fut: F) -> Self {
        ResponseFuture {
            kind: Kind::Unguarded { fut },
        }
    }

    #[inline]
    pub(crate) fn refused(open: BreakerOpen) -> Self {
        ResponseFuture {
            kind: Kind::Refused { open },
        }
    }
}

impl<F, C> std::fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Called { .. } => f.write_str("ResponseFuture::Called"),
            Kind::Refused { open } => f
                .debug_tuple("ResponseFuture::Refused")
                .field(open)
                .finish(),
            Kind::Unguarded { .. } => f.write_str("ResponseFuture::Unguarded"),
        }
    }
}

impl<F, C, Res, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    C: ClassifyOutcome<Res>,
{
    type Output = Result<Res, BoxError>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called { fut, guard } => match fut.poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(res)) => {
                    guard.record_response(&res);
                    Poll::Ready(Ok(res))
                }
                Poll::Ready(Err(e)) => {
                    let e: BoxError = e.into();
                    guard.record_error::<Res>(&*e);
                    Poll::Ready(Err(e))
                }
            },
            KindProj::Refused { open } => Poll::Ready(Err(Box::new(*open))),
            KindProj::Unguarded { fut } => fut.poll(cx).map_err(Into::into),
        }
    }
}
