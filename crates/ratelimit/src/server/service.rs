//! `Throttle`: the server service.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use http::{HeaderValue, Request, Response, StatusCode};
use tower_service::Service;

use super::future::ResponseFuture;
use super::headers;
use super::layer::Shared;
use super::policy::{Fallback, RequestHead};
use crate::gcra::Decision;
use crate::store::{Store, StoreError};
use resile_classify::KeyExtractor;

/// Rejects requests over the quota with `429`; made by [`ThrottleLayer`](super::ThrottleLayer).
///
/// `poll_ready` is the inner service's. `call` extracts the key and asks the store; a store that
/// answers at once (the in-memory one) is served without any extra work; one that does I/O moves
/// the ready inner service into the response future (leaving a clone in its place) and calls it
/// when the decision arrives — hence `S: Clone`, which axum and hyper services are.
pub struct Throttle<S, E, St> {
    inner: S,
    shared: Arc<Shared<E, St>>,
}

impl<S, E, St> Throttle<S, E, St> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<E, St>>) -> Self {
        Throttle { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

/// What to do with a request once its decision is known.
pub(crate) enum Verdict<ResB> {
    /// Call the service; add these fields to its response.
    Allow(Option<(HeaderValue, HeaderValue)>),
    /// Answer with this response.
    Respond(Response<ResB>),
}

pub(crate) fn empty_response<ResB: Default>(status: StatusCode) -> Response<ResB> {
    let mut res = Response::new(ResB::default());
    *res.status_mut() = status;
    res
}

pub(crate) fn fallback<ResB: Default>(fallback: Fallback) -> Verdict<ResB> {
    match fallback {
        Fallback::Allow => Verdict::Allow(None),
        Fallback::Respond(status) => Verdict::Respond(empty_response(status)),
    }
}

pub(crate) fn verdict<E, St, ResB: Default>(
    shared: &Shared<E, St>,
    decision: Result<Decision, StoreError>,
) -> Verdict<ResB> {
    match decision {
        Ok(d) if d.allowed => Verdict::Allow(shared.fields_on_allowed.then(|| {
            (
                shared.policy.clone(),
                headers::ratelimit_value(&shared.name, &shared.quota, &d),
            )
        })),
        Ok(d) => {
            tracing::debug!(retry_after = ?d.retry_after, "throttle: refusing with 429");
            let mut res = empty_response(StatusCode::TOO_MANY_REQUESTS);
            let h = res.headers_mut();
            headers::insert_retry_after(h, &d);
            h.insert(headers::RATELIMIT_POLICY.clone(), shared.policy.clone());
            h.insert(
                headers::RATELIMIT.clone(),
                headers::ratelimit_value(&shared.name, &shared.quota, &d),
            );
            Verdict::Respond(res)
        }
        Err(e) => {
            tracing::warn!(error = %e, "throttle: store failed to decide");
            fallback(shared.store_error)
        }
    }
}

impl<S, E, K, St, ReqB, ResB> Service<Request<ReqB>> for Throttle<S, E, St>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    E: for<'a> KeyExtractor<RequestHead<'a>, Key = K>,
    St: Store<K>,
    ResB: Default,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S, Request<ReqB>, St::Future, E, St>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let shared = &*self.shared;
        let Some(key) = shared.extractor.extract(&RequestHead::from(&req)) else {
            if !shared.missing_key_reported.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    "throttle: the key extractor found no key for a request, answered as the \
                     layer's missing-key fallback (500 by default). With PeerIp the peer address \
                     is missing: behind axum, serve with \
                     `app.into_make_service_with_connect_info::<SocketAddr>()`; behind hyper, \
                     insert the connection's peer `SocketAddr` into each request's extensions. \
                     With HeaderKey, the request lacks the header. (Reported once.)"
                );
            } else {
                tracing::debug!("throttle: no key for the request");
            }
            return self.finish(fallback(shared.missing_key), req);
        };
        let mut decision = shared.store.decide(&key, &shared.quota, shared.cost);
        // A store that answers synchronously is done at the first poll; no waker is needed.
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(&mut decision).poll(&mut cx) {
            Poll::Ready(res) => {
                let v = verdict(shared, res);
                self.finish(v, req)
            }
            Poll::Pending => {
                let clone = self.inner.clone();
                let ready = mem::replace(&mut self.inner, clone);
                ResponseFuture::deciding(decision, ready, req, Arc::clone(&self.shared))
            }
        }
    }
}

impl<S, E, St> Throttle<S, E, St> {
    fn finish<ReqB, ResB, D>(
        &mut self,
        verdict: Verdict<ResB>,
        req: Request<ReqB>,
    ) -> ResponseFuture<S::Future, S, Request<ReqB>, D, E, St>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
    {
        match verdict {
            Verdict::Allow(fields) => ResponseFuture::calling(self.inner.call(req), fields),
            Verdict::Respond(res) => ResponseFuture::respond(res),
        }
    }
}

impl<S: Clone, E, St> Clone for Throttle<S, E, St> {
    fn clone(&self) -> Self {
        Throttle {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, E: fmt::Debug, St> fmt::Debug for Throttle<S, E, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("inner", &self.inner)
            .field("quota", &self.shared.quota)
            .field("extractor", &self.shared.extractor)
            .finish()
    }
}
