//! The retry service.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use http::HeaderValue;
use resile_backoff::{Backoff, Exponential};
use resile_classify::ResponseLike;
use tokio::time::Instant;
use tower_service::Service;

use crate::body::ReplayableRequest;
use crate::future::ResponseFuture;
use crate::policy::RetryPolicy;
use crate::BoxError;

/// Retries the requests of an inner service according to a [`RetryPolicy`].
///
/// Works for any service of replayable requests ([`ReplayableRequest`]) whose responses the
/// classifier can read ([`ResponseLike`]): `http::Request<B>` services such as hyper-util's
/// `Client`, axum routers and other tower HTTP services, and (feature `reqwest`)
/// `reqwest::Client` as a `tower::Service<reqwest::Request>`.
///
/// Clones share the policy and its [`RetryBudget`](crate::RetryBudget).
///
/// `poll_ready` is the inner service's: the readiness it reserves is what `call` consumes.
///
/// # The service a retry goes through
///
/// A retry needs a service of its own, and must still find one when every `Retry` is gone by
/// then (`oneshot`, say). Cloning the inner service into every request's future, as tower's
/// `Retry` does, costs what that clone costs for every request — for a hyper-util `Client` or a
/// stack of layers, several shared reference counts taken and dropped, and a future as large as
/// the service — to serve the few requests that are retried. So a `Retry` keeps one clone of the
/// inner service, made at the first call of the `Retry` or of any of its clones (a clone per
/// request sent with `oneshot` shares it too) and shared by every future they make (with the
/// policy, behind one `Arc`); a request that is retried clones that template, once,
/// and sends its retries through the clone, which polls its own readiness before each retry. An
/// error from that `poll_ready` ends the request with that error.
///
/// Clones of a tower service share its state (a connection pool, a breaker, a limiter), so a
/// clone of the template and a clone of the service at call time behave the same. After
/// [`get_mut`](Retry::get_mut) (the inner service may be changed through it), the next call
/// makes a new template from the changed service.
pub struct Retry<S, B = Exponential> {
    inner: S,
    /// The policy and the template, shared with the clones of this `Retry` and every future.
    replay: Arc<Replay<S, B>>,
}

/// What a request's future keeps for its retries: the policy, and the template of the inner
/// service that a retried request clones.
pub(crate) struct Replay<S, B> {
    pub(crate) policy: RetryPolicy<B>,
    /// Set once, at the first call of a `Retry` sharing this `Replay`, to a clone of its inner
    /// service. Locked only to clone it, for a request that is retried: a `Mutex` so that a
    /// service that is `Send` but not `Sync` (a boxed service) still makes a `Send` future.
    template: OnceLock<Mutex<S>>,
}

impl<S, B> Replay<S, B> {
    fn new(policy: RetryPolicy<B>) -> Arc<Self> {
        Arc::new(Replay {
            policy,
            template: OnceLock::new(),
        })
    }
}

impl<S: Clone, B> Replay<S, B> {
    /// A clone of the template, for a request's retries; `None` before the first call (a future
    /// exists only after one).
    pub(crate) fn service(&self) -> Option<S> {
        // The lock guards a clone only: a panic while it was held left the service as it was.
        let template = self.template.get()?;
        Some(template.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

impl<S, B> Retry<S, B> {
    /// Wraps `inner`.
    pub fn new(inner: S, policy: RetryPolicy<B>) -> Self {
        Retry {
            inner,
            replay: Replay::new(policy),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy<B> {
        &self.replay.policy
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably. The next call makes its retries' template from the service
    /// as it then is.
    pub fn get_mut(&mut self) -> &mut S {
        // Detached from the clones: they keep the template they share.
        self.replay = Replay::new(self.replay.policy.clone());
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, B> Clone for Retry<S, B> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            replay: Arc::clone(&self.replay),
        }
    }
}

impl<S: fmt::Debug, B: fmt::Debug> fmt::Debug for Retry<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("policy", &self.replay.policy)
            .finish()
    }
}

impl<S, Req, B> Service<Req> for Retry<S, B>
where
    S: Service<Req> + Clone,
    S::Response: ResponseLike,
    S::Error: Into<BoxError>,
    Req: ReplayableRequest,
    B: Backoff + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        let policy = &*self.replay.policy.inner;
        if let Some(name) = &policy.attempt_header {
            req.headers_mut()
                .insert(name.clone(), HeaderValue::from_static("1"));
        }
        if let Some(budget) = &policy.budget {
            budget.deposit();
        }
        let deadline = policy.deadline.and_then(|d| Instant::now().checked_add(d));
        if self.replay.template.get().is_none() {
            self.set_template();
        }
        let replay = Arc::clone(&self.replay);
        // The copy for a retry is made before the request is sent.
        let copy = req.try_copy();
        let future = self.inner.call(req);
        ResponseFuture::new(future, copy, replay, deadline)
    }
}

impl<S: Clone, B> Retry<S, B> {
    /// Makes the template (at the first call of this `Retry` or its clones, and after
    /// `get_mut`). Racing clones on other threads may each try: one template is kept.
    #[cold]
    #[inline(never)]
    fn set_template(&mut self) {
        let _ = self.replay.template.set(Mutex::new(self.inner.clone()));
    }
}
