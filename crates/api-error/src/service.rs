//! The service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http_body::Body;
use resile_classify::{BoxError, StatusSet};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::read::ApiErrorReader;

/// The service of [`ErrorForStatusLayer`](crate::ErrorForStatusLayer).
#[derive(Clone, Debug)]
pub struct ErrorForStatus<S> {
    inner: S,
    config: Arc<Config>,
}

/// What the futures need, shared: one `Arc` per call rather than a copy of the status set.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) statuses: StatusSet,
    pub(crate) reader: ApiErrorReader,
}

impl<S> ErrorForStatus<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        ErrorForStatus { inner, config }
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

impl<S, Req, B> Service<Req> for ErrorForStatus<S>
where
    S: Service<Req, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<B>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture::new(self.inner.call(req), self.config.clone())
    }
}
