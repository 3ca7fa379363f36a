//! The response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http_body::Body;
use pin_project_lite::pin_project;
use std::sync::Arc;

use resile_classify::BoxError;

use crate::read::ReadBody;
use crate::service::Config;

pin_project! {
    /// The future of [`ErrorForStatus`](crate::ErrorForStatus): the inner call, then, for a
    /// status in the set, the body read into an `ApiError`.
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
        config: Arc<Config>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Calling { #[pin] future: F },
        // Boxed: the error path pays one allocation so that every success carries a small
        // future.
        Reading { read: Pin<Box<ReadBody<B>>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn new(future: F, config: Arc<Config>) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            config,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<http::Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let res = ready!(future.poll(cx)).map_err(Into::into)?;
                    if !this.config.statuses.contains(res.status()) {
                        return Poll::Ready(Ok(res));
                    }
                    let read = Box::pin(this.config.reader.read(res));
                    this.state.set(State::Reading { read });
                }
                StateProj::Reading { read } => {
                    let err = ready!(read.as_mut().poll(cx));
                    return Poll::Ready(Err(Box::new(err)));
                }
            }
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
