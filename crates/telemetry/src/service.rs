//! The service.

use std::fmt;
use std::task::{Context, Poll};

use resile_classify::{RequestLike, ResponseLike};
use tower_service::Service;

use crate::future::{Pending, ResponseFuture};
use crate::handle::Telemetry;
use crate::window::View;

/// The service of [`TelemetryLayer`](crate::TelemetryLayer).
///
/// Its response and error types are the inner service's, untouched.
#[derive(Clone)]
pub struct TelemetryService<S> {
    inner: S,
    telemetry: Telemetry,
    view: View,
}

impl<S> TelemetryService<S> {
    pub(crate) fn new(inner: S, telemetry: Telemetry, view: View) -> Self {
        TelemetryService {
            inner,
            telemetry,
            view,
        }
    }

    /// The telemetry it records into.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
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

/// Any request with a method: `http::Request<B>`, and `reqwest::Request` with the `reqwest`
/// feature.
impl<S, Req> Service<Req> for TelemetryService<S>
where
    S: Service<Req>,
    S::Response: ResponseLike,
    S::Error: 'static,
    Req: RequestLike,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let pending = Pending::start(&self.telemetry, self.view, req.method());
        ResponseFuture::new(self.inner.call(req), pending)
    }
}

impl<S: fmt::Debug> fmt::Debug for TelemetryService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryService")
            .field("inner", &self.inner)
            .field("view", &self.view)
            .finish()
    }
}
