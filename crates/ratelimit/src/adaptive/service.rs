//! [`AdaptiveRateLimit`]: the service.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};

use resile_classify::{KeyExtractor, ResponseLike};
use tokio::time::Instant;
use tower_service::Service;

use super::error::QueueFull;
use super::future::ResponseFuture;
use super::state::Refusal;
use super::{Shared, WaitTooLong};
use crate::store::BoxError;

/// Paces the requests to each host at its learned rate; made by
/// [`AdaptiveRateLimitLayer`](super::AdaptiveRateLimitLayer). See the
/// [module documentation](super).
///
/// `poll_ready` is the inner service's. A request whose slot is in the future moves the ready
/// inner service into its response future (leaving a clone in its place), waits there for its
/// slot, polls it ready again and sends the request: hence `S: Clone`, which tower clients are.
pub struct AdaptiveRateLimit<S, E> {
    inner: S,
    shared: Arc<Shared<E>>,
}

impl<S, E> AdaptiveRateLimit<S, E> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<E>>) -> Self {
        AdaptiveRateLimit { inner, shared }
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

impl<S: Clone, E> Clone for AdaptiveRateLimit<S, E> {
    fn clone(&self) -> Self {
        AdaptiveRateLimit::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug, E: fmt::Debug> fmt::Debug for AdaptiveRateLimit<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveRateLimit")
            .field("inner", &self.inner)
            .field("layer", &self.shared)
            .finish()
    }
}

impl<S, E, Req> Service<Req> for AdaptiveRateLimit<S, E>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    S::Response: ResponseLike,
    E: KeyExtractor<Req>,
    E::Key: Hash,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, E>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let Some(key) = shared.extractor.extract(&req) else {
            return ResponseFuture::unpaced(self.inner.call(req), shared);
        };
        let h = shared.hash(&key);
        let now = Instant::now();
        match shared.reserve(h, now) {
            None => ResponseFuture::unpaced(self.inner.call(req), shared),
            Some(Ok(slot)) if slot.at <= now => {
                ResponseFuture::sent(self.inner.call(req), shared, h, now)
            }
            Some(Ok(slot)) => {
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::queued(ready, req, shared, h, slot, now)
            }
            Some(Err(refusal)) => {
                let err: BoxError = match refusal {
                    Refusal::WaitTooLong(wait) => Box::new(WaitTooLong {
                        wait,
                        max_wait: shared.max_wait,
                    }),
                    Refusal::QueueFull => Box::new(QueueFull {
                        max_queued: shared.aimd.max_queued,
                    }),
                };
                tracing::debug!(error = %err, "adaptive rate limit: request refused");
                ResponseFuture::failed(err, shared)
            }
        }
    }
}
