//! The retry service.

use std::fmt;
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
/// As with tower's `Retry`, each request's future holds a clone of the inner service, taken in
/// `call`, and sends its retries through it (polling its readiness before each retry; an error
/// from that `poll_ready` ends the request with that error).
pub struct Retry<S, B = Exponential> {
    inner: S,
    policy: RetryPolicy<B>,
}

impl<S, B> Retry<S, B> {
    /// Wraps `inner`.
    pub fn new(inner: S, policy: RetryPolicy<B>) -> Self {
        Retry { inner, policy }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy<B> {
        &self.policy
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

impl<S: Clone, B> Clone for Retry<S, B> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<S: fmt::Debug, B: fmt::Debug> fmt::Debug for Retry<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
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
        let policy = &*self.policy.inner;
        if let Some(name) = &policy.attempt_header {
            req.headers_mut()
                .insert(name.clone(), HeaderValue::from_static("1"));
        }
        if let Some(budget) = &policy.budget {
            budget.deposit();
        }
        let deadline = policy.deadline.and_then(|d| Instant::now().checked_add(d));
        // The copy for a retry is made before the request is sent.
        let copy = req.try_copy();
        let future = self.inner.call(req);
        let service = self.inner.clone();
        ResponseFuture::new(future, service, copy, self.policy.clone(), deadline)
    }
}
