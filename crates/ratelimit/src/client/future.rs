//! The client layer's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use resile_classify::ResponseLike;

use super::layer::Shared;
use crate::store::{BoxError, Store};

pin_project! {
    /// The response future of [`RateLimit`](super::RateLimit): the inner call, then a look at
    /// the response for a server hint; or an immediate error.
    pub struct ResponseFuture<F, St, K> {
        #[pin]
        state: State<F>,
        // Who to pause when the response carries a server hint.
        // The layer to pause, when it obeys hints.
        hints: Option<Arc<Shared<St, K>>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] fut: F },
        Failed { err: Option<BoxError> },
    }
}

impl<F, St, K> ResponseFuture<F, St, K> {
    #[inline(always)]
    pub(crate) fn called(fut: F, hints: Option<Arc<Shared<St, K>>>) -> Self {
        ResponseFuture {
            state: State::Called { fut },
            hints,
        }
    }

    pub(crate) fn failed(err: BoxError) -> Self {
        ResponseFuture {
            state: State::Failed { err: Some(err) },
            hints: None,
        }
    }
}

impl<F, T, E, St, K> Future for ResponseFuture<F, St, K>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    T: ResponseLike,
    St: Store<K>,
{
    type Output = Result<T, BoxError>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            StateProj::Called { fut } => {
                let res = ready!(fut.poll(cx)).map_err(Into::into)?;
                if let Some(shared) = this.hints.take() {
                    if let Some(pause) = shared.hints.pause_for(&res) {
                        tracing::debug!(?pause, status = %res.status(), "rate limit: server asked to slow down, pausing the limiter");
                        shared.pause(pause);
                    }
                }
                Poll::Ready(Ok(res))
            }
            StateProj::Failed { err } => Poll::Ready(Err(err
                .take()
                .unwrap_or_else(|| Box::new(super::error::NotReady)))),
        }
    }
}

impl<F, St, K> fmt::Debug for ResponseFuture<F, St, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("obeys_hints", &self.hints.is_some())
            .finish_non_exhaustive()
    }
}
