//! The response future of [`AdaptiveThrottle`](super::AdaptiveThrottle).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use resile_classify::clock::Clock;
use resile_classify::{LocalRejection, ResponseLike};

use super::error::Throttled;
use super::layer::Shared;
use crate::store::BoxError;

pin_project! {
    /// The response future of [`AdaptiveThrottle`](super::AdaptiveThrottle): the inner call,
    /// counted when it ends; or an immediate [`Throttled`].
    pub struct ResponseFuture<F, C> {
        #[pin]
        fut: Option<F>,
        shared: Option<Arc<Shared<C>>>,
        refused: Option<Throttled>,
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn called(fut: F, shared: Arc<Shared<C>>) -> Self {
        ResponseFuture {
            fut: Some(fut),
            shared: Some(shared),
            refused: None,
        }
    }

    pub(crate) fn refused(err: Throttled) -> Self {
        ResponseFuture {
            fut: None,
            shared: None,
            refused: Some(err),
        }
    }
}

impl<F, T, E, C> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    T: ResponseLike,
    C: Clock,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(fut) = this.fut.as_pin_mut() else {
            // Refused (or polled after completion: stay pending rather than panic).
            return match this.refused.take() {
                Some(err) => Poll::Ready(Err(Box::new(err))),
                None => Poll::Pending,
            };
        };
        let out = ready!(fut.poll(cx)).map_err(Into::into);
        if let Some(shared) = this.shared.take() {
            match &out {
                Ok(res) => shared.record(!shared.rejected.contains(res.status())),
                Err(e) if LocalRejection::find(&**e).is_some() => {}
                Err(_) => shared.record(false),
            }
        }
        Poll::Ready(out)
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("refused", &self.refused.is_some())
            .finish_non_exhaustive()
    }
}
