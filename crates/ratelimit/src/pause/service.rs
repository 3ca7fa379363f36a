//! [`ServerPause`]: the service.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};

use resile_classify::{KeyExtractor, ResponseLike};
use tokio::time::Instant;
use tower_service::Service;

use super::future::ResponseFuture;
use super::{Check, Shared, WaitTooLong};
use crate::store::BoxError;

/// Pauses the requests to a server that asked for it; made by
/// [`ServerPauseLayer`](super::ServerPauseLayer). See the [module documentation](super).
///
/// `poll_ready` is the inner service's. A request whose key is paused moves the ready inner
/// service into its response future (leaving a clone in its place), sleeps there, polls it
/// ready again and sends the request: hence `S: Clone`, which tower clients are.
pub struct ServerPause<S, E> {
    inner: S,
    shared: Arc<Shared<E>>,
}

impl<S, E> ServerPause<S, E> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<E>>) -> Self {
        ServerPause { inner, shared }
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

impl<S: Clone, E> Clone for ServerPause<S, E> {
    fn clone(&self) -> Self {
        ServerPause::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug, E: fmt::Debug> fmt::Debug for ServerPause<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerPause")
            .field("inner", &self.inner)
            .field("layer", &self.shared)
            .finish()
    }
}

impl<S, E, Req> Service<Req> for ServerPause<S, E>
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
        let key = if shared.policy.enabled {
            shared.extractor.extract(&req)
        } else {
            None
        };
        if let Some(k) = key.as_ref().filter(|_| shared.any_paused()) {
            let now = Instant::now();
            if let Check::Wait(until) = shared.check(k, now) {
                let wait = until.saturating_duration_since(now);
                if wait > shared.max_wait {
                    tracing::debug!(?wait, max_wait = ?shared.max_wait, "server pause: wait too long, failing fast");
                    let max_wait = shared.max_wait;
                    return ResponseFuture::failed(WaitTooLong { wait, max_wait }, shared);
                }
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                return ResponseFuture::waiting(ready, req, until, now, key, shared);
            }
        }
        ResponseFuture::called(self.inner.call(req), key, shared)
    }
}
