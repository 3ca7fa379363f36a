//! `ThrottleLayer`: the server layer's configuration.

use std::fmt;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use http::{HeaderValue, StatusCode};
use tower_layer::Layer;

use super::headers;
use super::policy::{Fallback, KeyOf, RequestHead};
use super::service::Throttle;
use crate::gcra::{InsufficientCapacity, Quota};
use crate::keyed::KeyedStore;
use crate::store::Store;
use resile_classify::KeyExtractor;

pub(crate) struct Shared<E, St> {
    pub(crate) extractor: E,
    pub(crate) store: St,
    pub(crate) quota: Quota,
    pub(crate) cost: NonZeroU32,
    /// The policy name as a structured-field string (quoted).
    pub(crate) name: String,
    pub(crate) policy: HeaderValue,
    pub(crate) fields_on_allowed: bool,
    pub(crate) missing_key: Fallback,
    pub(crate) store_error: Fallback,
    /// Whether the first request without a key was reported (as an error naming the fix).
    pub(crate) missing_key_reported: AtomicBool,
}

/// Rejects requests over a quota with `429 Too Many Requests` (a tower [`Layer`] for servers;
/// works as an axum layer).
///
/// Each request is keyed by a [`KeyExtractor`] (peer IP, a header, a closure) and draws from its
/// key's bucket in the store. Every service this layer makes, and every clone of them, shares the
/// store: the limits hold across connections and across axum's per-request clones.
///
/// A refused request is answered without calling the inner service:
///
/// ```text
/// HTTP/1.1 429 Too Many Requests
/// retry-after: 1
/// ratelimit-policy: "default";q=10;w=1
/// ratelimit: "default";r=0;t=1
/// ```
///
/// - `Retry-After`: the wait in whole seconds, rounded **up**: a 300 ms wait is `1`, never `0`;
/// - `RateLimit-Policy` (`q` units per `w` seconds, see [`Quota::policy`]) and `RateLimit` (`r`
///   units remaining, `t` seconds until more are available), per the IETF draft
///   draft-ietf-httpapi-ratelimit-headers.
///
/// Allowed responses carry `RateLimit-Policy` and `RateLimit` too (turn it off with
/// [`fields_on_allowed`](ThrottleLayerBuilder::fields_on_allowed)): clients can slow down
/// before they are refused. Formatting the `RateLimit` value costs one small allocation per
/// response.
///
/// # Default
///
/// In-memory [`KeyedStore`]; cost 1; policy name `default`; fields on allowed responses; a
/// request without key is answered `500 Internal Server Error` (the extractor found no connection
/// info: a server set-up error, loud rather than unlimited; the first one is also logged at
/// `error` level with the fix, e.g. axum's `into_make_service_with_connect_info` for
/// [`PeerIp`](super::PeerIp)); a store error is answered `503 Service Unavailable`.
///
/// # Example
///
/// ```
/// use std::convert::Infallible;
/// use std::net::SocketAddr;
/// use std::num::NonZeroU32;
/// use resile_ratelimit::{server::PeerIp, Quota, ThrottleLayer};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let layer = ThrottleLayer::new(Quota::per_minute(NonZeroU32::new(1).unwrap()), PeerIp::new());
/// let svc = ServiceBuilder::new()
///     .layer(layer)
///     .service(service_fn(|_req: http::Request<()>| async {
///         Ok::<_, Infallible>(http::Response::new(String::from("hello")))
///     }));
///
/// let request = || {
///     let mut req = http::Request::new(());
///     req.extensions_mut().insert("192.0.2.7:4711".parse::<SocketAddr>().unwrap());
///     req
/// };
/// let ok = svc.clone().oneshot(request()).await.unwrap();
/// assert_eq!(ok.status(), 200);
/// let refused = svc.clone().oneshot(request()).await.unwrap();
/// assert_eq!(refused.status(), 429);
/// assert_eq!(refused.headers()["retry-after"], "60");
/// assert_eq!(refused.headers()["ratelimit-policy"], "\"default\";q=1;w=60");
/// # }
/// ```
pub struct ThrottleLayer<E: KeyExtractor<RequestHead<'static>>, St = KeyedStore<KeyOf<E>>> {
    shared: Arc<Shared<E, St>>,
}

impl<E> ThrottleLayer<E>
where
    E: KeyExtractor<RequestHead<'static>>,
    KeyOf<E>: Hash + Eq,
{
    /// A layer for `quota`, keyed by `extractor`, with the default configuration.
    pub fn new(quota: Quota, extractor: E) -> ThrottleLayer<E> {
        ThrottleLayer::builder(quota, extractor).build()
    }

    /// A builder for `quota`, keyed by `extractor`, starting from the default configuration.
    pub fn builder(quota: Quota, extractor: E) -> ThrottleLayerBuilder<E> {
        ThrottleLayerBuilder {
            extractor,
            store: KeyedStore::new(),
            quota,
            cost: NonZeroU32::MIN,
            name: String::from("default"),
            fields_on_allowed: true,
            missing_key: Fallback::Respond(StatusCode::INTERNAL_SERVER_ERROR),
            store_error: Fallback::Respond(StatusCode::SERVICE_UNAVAILABLE),
        }
    }
}

impl<E: KeyExtractor<RequestHead<'static>>, St> ThrottleLayer<E, St> {
    /// The quota.
    pub fn quota(&self) -> &Quota {
        &self.shared.quota
    }

    /// The shared store (e.g. to read [`KeyedStore::len`]).
    pub fn store(&self) -> &St {
        &self.shared.store
    }
}

impl<E: KeyExtractor<RequestHead<'static>>, St> Clone for ThrottleLayer<E, St> {
    fn clone(&self) -> Self {
        ThrottleLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<E, St> fmt::Debug for ThrottleLayer<E, St>
where
    E: KeyExtractor<RequestHead<'static>> + fmt::Debug,
    St: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &*self.shared;
        f.debug_struct("ThrottleLayer")
            .field("quota", &s.quota)
            .field("extractor", &s.extractor)
            .field("cost", &s.cost)
            .field("name", &s.name)
            .field("fields_on_allowed", &s.fields_on_allowed)
            .field("missing_key", &s.missing_key)
            .field("store_error", &s.store_error)
            .field("store", &s.store)
            .finish()
    }
}

impl<S, E, St> Layer<S> for ThrottleLayer<E, St>
where
    E: KeyExtractor<RequestHead<'static>>,
    St: Store<KeyOf<E>>,
{
    type Service = Throttle<S, E, St>;

    fn layer(&self, inner: S) -> Self::Service {
        Throttle::new(inner, Arc::clone(&self.shared))
    }
}

/// Builds a [`ThrottleLayer`]; see its `# Default`.
pub struct ThrottleLayerBuilder<E: KeyExtractor<RequestHead<'static>>, St = KeyedStore<KeyOf<E>>> {
    extractor: E,
    store: St,
    quota: Quota,
    cost: NonZeroU32,
    name: String,
    fields_on_allowed: bool,
    missing_key: Fallback,
    store_error: Fallback,
}

impl<E: KeyExtractor<RequestHead<'static>>, St> ThrottleLayerBuilder<E, St> {
    /// Keeps the buckets in `store` (e.g. a [`KeyedStore`] with a key cap, or a Redis store
    /// shared by every instance of the server).
    pub fn store<St2: Store<KeyOf<E>>>(self, store: St2) -> ThrottleLayerBuilder<E, St2> {
        ThrottleLayerBuilder {
            extractor: self.extractor,
            store,
            quota: self.quota,
            cost: self.cost,
            name: self.name,
            fields_on_allowed: self.fields_on_allowed,
            missing_key: self.missing_key,
            store_error: self.store_error,
        }
    }

    /// The cells each request takes (default 1).
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] if `cost` exceeds the quota's burst: no request could ever be
    /// admitted, which is a configuration mistake rather than a limit.
    pub fn cost(mut self, cost: NonZeroU32) -> Result<Self, InsufficientCapacity> {
        let burst = self.quota.burst();
        if cost > burst {
            return Err(InsufficientCapacity {
                requested: cost,
                burst,
            });
        }
        self.cost = cost;
        Ok(self)
    }

    /// The policy name in the `RateLimit-Policy` and `RateLimit` fields (default `default`).
    /// Only printable ASCII is kept; quotes and backslashes are escaped.
    pub fn policy_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Whether allowed responses carry `RateLimit-Policy` and `RateLimit` (default `true`).
    pub fn fields_on_allowed(mut self, on: bool) -> Self {
        self.fields_on_allowed = on;
        self
    }

    /// What to do with a request the extractor finds no key for (default
    /// `Respond(500)`).
    pub fn on_missing_key(mut self, fallback: Fallback) -> Self {
        self.missing_key = fallback;
        self
    }

    /// What to do when the store fails to decide (default `Respond(503)`). A store with its own
    /// failure policy (fail open, fail closed, local fallback) applies it before this.
    pub fn on_store_error(mut self, fallback: Fallback) -> Self {
        self.store_error = fallback;
        self
    }

    /// The layer.
    pub fn build(self) -> ThrottleLayer<E, St> {
        let name = headers::sf_string(&self.name);
        let policy = headers::policy_value(&name, &self.quota);
        ThrottleLayer {
            shared: Arc::new(Shared {
                extractor: self.extractor,
                store: self.store,
                quota: self.quota,
                cost: self.cost,
                name,
                policy,
                fields_on_allowed: self.fields_on_allowed,
                missing_key: self.missing_key,
                store_error: self.store_error,
                missing_key_reported: AtomicBool::new(false),
            }),
        }
    }
}

impl<E, St> fmt::Debug for ThrottleLayerBuilder<E, St>
where
    E: KeyExtractor<RequestHead<'static>> + fmt::Debug,
    St: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottleLayerBuilder")
            .field("quota", &self.quota)
            .field("extractor", &self.extractor)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
