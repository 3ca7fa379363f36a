//! [`AdaptiveThrottle`]: the service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use resile_classify::clock::Clock;
use resile_classify::ResponseLike;
use tower_service::Service;

use super::error::Throttled;
use super::future::ResponseFuture;
use super::layer::Shared;
use crate::store::BoxError;

/// Refuses a share of requests locally while the server rejects many; made by
/// [`AdaptiveThrottleLayer`](super::AdaptiveThrottleLayer). See the
/// [module documentation](super).
///
/// `poll_ready` is the inner service's; the decision is made in `call`, per request.
pub struct AdaptiveThrottle<S, C> {
    inner: S,
    shared: Arc<Shared<C>>,
}

impl<S, C> AdaptiveThrottle<S, C> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<C>>) -> Self {
        AdaptiveThrottle { inner, shared }
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

impl<S: Clone, C> Clone for AdaptiveThrottle<S, C> {
    fn clone(&self) -> Self {
        AdaptiveThrottle::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug, C> fmt::Debug for AdaptiveThrottle<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveThrottle")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, C, Req> Service<Req> for AdaptiveThrottle<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    S::Response: ResponseLike,
    C: Clock,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        match self.shared.admit() {
            Ok(()) => ResponseFuture::called(self.inner.call(req), Arc::clone(&self.shared)),
            Err(probability) => ResponseFuture::refused(Throttled { probability }),
        }
    }
}
