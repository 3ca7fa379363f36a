//! `RateLimitLayer`: the client layer's configuration.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::service::RateLimit;
use crate::clock::{Clock, TokioClock};
use crate::direct::MemoryStore;
use crate::gcra::Quota;
use crate::pause::PausePolicy;
use crate::store::Store;

/// What every service of one layer shares.
pub(crate) struct Shared<St, K> {
    pub(crate) store: St,
    pub(crate) key: K,
    pub(crate) quota: Quota,
    pub(crate) cost: NonZeroU32,
    pub(crate) max_wait: Duration,
    pub(crate) hints: PausePolicy,
}

impl<St, K> Shared<St, K>
where
    St: Store<K>,
{
    /// Gives back a permit that was reserved and not used.
    pub(crate) fn release(&self) {
        self.store.release(&self.key, &self.quota, self.cost);
    }

    /// Pushes every caller's next slot `delay` away, as a server asked: afterwards requests
    /// are released at the quota's rate again, not all at once.
    pub(crate) fn pause(&self, delay: Duration) {
        self.store.pause(&self.key, &self.quota, delay);
    }
}

/// Paces the requests of a client to a quota (a tower [`Layer`]).
///
/// Every service this layer makes, and every clone of them, draws from **one** limiter: the
/// quota holds for the whole client, however it is cloned. `poll_ready` waits until a permit is
/// free (see [`RateLimit`] for fairness and cancellation), up to a maximum wait; a longer wait
/// fails the call at once with [`WaitTooLong`](super::WaitTooLong).
///
/// A `429` or `503` response carrying a server hint pauses the shared limiter for every caller
/// until the server's time is up, then lets them go at the quota's rate ([`PausePolicy`]).
///
/// A client with no quota to follow that should only obey servers uses a
/// [`ServerPauseLayer`](crate::pause::ServerPauseLayer) (per host) instead.
///
/// # Default
///
/// In-memory store on the [`TokioClock`] (the clock its waits sleep on, so tokio's paused test
/// clock moves both); cost 1 per request; maximum wait 30 s; server hints
/// obeyed for 429/503 up to 10 minutes.
///
/// # Example
///
/// ```
/// use std::convert::Infallible;
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use resile_ratelimit::{Quota, RateLimitLayer};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower::BoxError> {
/// let layer = RateLimitLayer::builder(Quota::per_second(NonZeroU32::new(50).unwrap()))
///     .max_wait(Duration::from_secs(5))
///     .build();
/// let client = ServiceBuilder::new()
///     .layer(layer)
///     .service(service_fn(|req: http::Request<String>| async move {
///         Ok::<_, Infallible>(http::Response::new(req.into_body()))
///     }));
/// let res = client.clone().oneshot(http::Request::new("ping".to_string())).await?;
/// assert_eq!(res.body(), "ping");
/// # Ok(())
/// # }
/// ```
pub struct RateLimitLayer<St = MemoryStore<TokioClock>, K = ()> {
    shared: Arc<Shared<St, K>>,
}

impl RateLimitLayer {
    /// A layer for `quota` with the default configuration.
    pub fn new(quota: Quota) -> RateLimitLayer {
        RateLimitLayer::builder(quota).build()
    }

    /// A builder for `quota`, starting from the default configuration.
    pub fn builder(quota: Quota) -> RateLimitLayerBuilder {
        RateLimitLayerBuilder {
            store: MemoryStore::with_clock(TokioClock::new()),
            key: (),
            quota,
            cost: NonZeroU32::MIN,
            max_wait: DEFAULT_MAX_WAIT,
            hints: PausePolicy::default(),
        }
    }
}

/// The default maximum wait for a permit, or for a server's pause to end.
const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

impl<St, K> RateLimitLayer<St, K> {
    /// The quota.
    pub fn quota(&self) -> &Quota {
        &self.shared.quota
    }

    /// The shared store.
    pub fn store(&self) -> &St {
        &self.shared.store
    }
}

impl<St, K> Clone for RateLimitLayer<St, K> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<St: fmt::Debug, K: fmt::Debug> fmt::Debug for RateLimitLayer<St, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &*self.shared;
        f.debug_struct("RateLimitLayer")
            .field("quota", &s.quota)
            .field("key", &s.key)
            .field("cost", &s.cost)
            .field("max_wait", &s.max_wait)
            .field("hints", &s.hints)
            .field("store", &s.store)
            .finish()
    }
}

impl<S, St: Store<K>, K> Layer<S> for RateLimitLayer<St, K> {
    type Service = RateLimit<S, St, K>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, Arc::clone(&self.shared))
    }
}

/// Builds a [`RateLimitLayer`]; see its `# Default`.
pub struct RateLimitLayerBuilder<St = MemoryStore<TokioClock>, K = ()> {
    store: St,
    key: K,
    quota: Quota,
    cost: NonZeroU32,
    max_wait: Duration,
    hints: PausePolicy,
}

impl<St, K> RateLimitLayerBuilder<St, K> {
    /// The longest a request may wait for its permit. A request that would wait longer fails at
    /// once with [`WaitTooLong`](super::WaitTooLong). `Duration::ZERO` never waits.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// The cells each request takes (default 1).
    pub fn cost(mut self, cost: NonZeroU32) -> Self {
        self.cost = cost;
        self
    }

    /// How to obey servers' `429`/`503` hints.
    pub fn pause_policy(mut self, hints: PausePolicy) -> Self {
        self.hints = hints;
        self
    }

    /// Keeps the state in memory, read on `clock` (e.g. [`TokioClock`](crate::clock::TokioClock)
    /// to follow tokio's paused test clock).
    pub fn clock<C: Clock>(self, clock: C) -> RateLimitLayerBuilder<MemoryStore<C>, ()> {
        self.store(MemoryStore::with_clock(clock), ())
    }

    /// Keeps the state in `store` under `key` (e.g. a shared store, so that several clients or
    /// processes draw from one quota).
    pub fn store<St2, K2>(self, store: St2, key: K2) -> RateLimitLayerBuilder<St2, K2>
    where
        St2: Store<K2>,
    {
        RateLimitLayerBuilder {
            store,
            key,
            quota: self.quota,
            cost: self.cost,
            max_wait: self.max_wait,
            hints: self.hints,
        }
    }

    /// The layer.
    pub fn build(self) -> RateLimitLayer<St, K> {
        RateLimitLayer {
            shared: Arc::new(Shared {
                store: self.store,
                key: self.key,
                quota: self.quota,
                cost: self.cost,
                max_wait: self.max_wait,
                hints: self.hints,
            }),
        }
    }
}

impl<St: fmt::Debug, K: fmt::Debug> fmt::Debug for RateLimitLayerBuilder<St, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayerBuilder")
            .field("quota", &self.quota)
            .field("key", &self.key)
            .field("cost", &self.cost)
            .field("max_wait", &self.max_wait)
            .field("hints", &self.hints)
            .field("store", &self.store)
            .finish()
    }
}
