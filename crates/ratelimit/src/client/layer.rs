//! `RateLimitLayer`: the client layer's configuration.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::pause::ServerPause;
use super::policy::ServerHints;
use super::registry;
use super::service::RateLimit;
use crate::clock::{Clock, DefaultClock};
use crate::direct::MemoryStore;
use crate::gcra::Quota;
use crate::store::Store;

/// What every service of one layer shares.
pub(crate) struct Shared<St, K> {
    pub(crate) store: St,
    pub(crate) key: K,
    pub(crate) quota: Quota,
    pub(crate) cost: NonZeroU32,
    pub(crate) max_wait: Duration,
    pub(crate) hints: ServerHints,
    /// `Some` for a hints-only layer: the server's pause, and no pacing (the store is only
    /// written to record pauses).
    pub(crate) hints_only: Option<ServerPause>,
    /// The id under which a hints-only layer that obeys hints is registered: its futures carry
    /// it rather than an `Arc` (see [`registry`](super::registry)).
    pub(crate) registered: Option<u64>,
}

impl<St, K> Drop for Shared<St, K> {
    fn drop(&mut self) {
        if let Some(id) = self.registered {
            registry::unregister(id);
        }
    }
}

impl<St, K> Shared<St, K>
where
    St: Store<K>,
{
    /// Gives back a permit that was reserved and not used (a hints-only layer reserves none).
    pub(crate) fn release(&self) {
        if self.hints_only.is_none() {
            self.store.release(&self.key, &self.quota, self.cost);
        }
    }

    /// Pauses every caller for `delay`, as a server asked.
    pub(crate) fn pause(&self, delay: Duration) {
        if let Some(pause) = &self.hints_only {
            pause.extend(delay, tokio::time::Instant::now());
        }
        // A pacing layer's pause; for a hints-only layer, a record of it (observers read it with
        // `store().peek(quota())`), on this rare path only.
        self.store.pause(&self.key, &self.quota, delay);
    }
}

/// The nominal quota of a hints-only layer: never enforced; its store records pauses under it.
fn hints_only_quota() -> Quota {
    Quota::per_second(NonZeroU32::MAX)
}

/// Paces the requests of a client to a quota (a tower [`Layer`]).
///
/// Every service this layer makes, and every clone of them, draws from **one** limiter: the
/// quota holds for the whole client, however it is cloned. `poll_ready` waits until a permit is
/// free (see [`RateLimit`] for fairness and cancellation), up to a maximum wait; a longer wait
/// fails the call at once with [`WaitTooLong`](super::WaitTooLong).
///
/// A `429` or `503` response carrying a server hint pauses the shared limiter for every caller
/// until the server's time is up ([`ServerHints`]).
///
/// A layer that should only obey servers, never pace by itself, is
/// [`hints_only`](RateLimitLayer::hints_only): it has no quota to enforce, and its `poll_ready`
/// is one atomic load while no pause is in force.
///
/// # Default
///
/// In-memory store on the [`DefaultClock`]; cost 1 per request; maximum wait 30 s; server hints
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
pub struct RateLimitLayer<St = MemoryStore<DefaultClock>, K = ()> {
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
            store: MemoryStore::new(),
            key: (),
            quota,
            cost: NonZeroU32::MIN,
            max_wait: DEFAULT_MAX_WAIT,
            hints: ServerHints::default(),
        }
    }

    /// A layer that paces nothing by itself and only obeys servers: a `429`/`503` whose server
    /// hint says "wait" pauses every request sharing the layer until the server's time is up.
    ///
    /// There is no quota and no reservation. While no pause is in force, `poll_ready` is one
    /// atomic load (no clock read, no compare-and-swap, no allocation) before the inner
    /// service's; `call` gives the response future only the layer's id, by which a `429`/`503`
    /// carrying a hint finds the layer to pause it (no shared reference count per request).
    /// During a pause a request reads the clock and sleeps until the pause ends, all
    /// waiting requests waking at the same instant; a pause past the maximum wait fails the call
    /// at once with [`WaitTooLong`](super::WaitTooLong), as for a pacing layer. Pauses overlap
    /// by the longest: a shorter hint never shortens a pause in force, and a waiting request
    /// whose pause a server extends meanwhile waits for the extension too (within the maximum
    /// wait, counted from its first wait).
    ///
    /// The pause is kept on tokio's clock (the one the waits sleep on), so under tokio's paused
    /// test clock a pause of 2 s holds requests for exactly 2 s.
    ///
    /// [`quota`](RateLimitLayer::quota) is a nominal ceiling of 2^32 − 1 per second that is
    /// never enforced, and the in-memory [`store`](RateLimitLayer::store) is written only to
    /// record pauses (so `store().peek(quota())` reports a pause as for a pacing layer).
    ///
    /// # Default
    ///
    /// Maximum wait 30 s; server hints obeyed for 429/503 up to 10 minutes
    /// ([`ServerHints::default`]). [`hints_only_builder`](RateLimitLayer::hints_only_builder)
    /// changes them.
    ///
    /// # Example
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use resile_ratelimit::RateLimitLayer;
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower::BoxError> {
    /// let first = Arc::new(AtomicBool::new(true));
    /// let client = ServiceBuilder::new()
    ///     .layer(RateLimitLayer::hints_only())
    ///     .service(service_fn(move |_req: http::Request<()>| {
    ///         // The server answers the first request with `429` and `Retry-After: 2`.
    ///         let res = if first.swap(false, Ordering::SeqCst) {
    ///             http::Response::builder().status(429).header("retry-after", "2")
    ///         } else {
    ///             http::Response::builder().status(200)
    ///         };
    ///         std::future::ready(Ok::<_, Infallible>(res.body(()).unwrap()))
    ///     }));
    /// let start = tokio::time::Instant::now();
    /// let res = client.clone().oneshot(http::Request::new(())).await?;
    /// assert_eq!(res.status(), 429);
    /// // Every clone waits for the server's 2 s; nothing else ever holds a request back.
    /// let res = client.clone().oneshot(http::Request::new(())).await?;
    /// assert_eq!(res.status(), 200);
    /// assert_eq!(start.elapsed(), Duration::from_secs(2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn hints_only() -> RateLimitLayer {
        RateLimitLayer::hints_only_builder().build()
    }

    /// A builder for a [`hints_only`](RateLimitLayer::hints_only) layer, starting from its
    /// default configuration.
    pub fn hints_only_builder() -> HintsOnlyBuilder {
        HintsOnlyBuilder {
            max_wait: DEFAULT_MAX_WAIT,
            hints: ServerHints::default(),
        }
    }
}

/// The default maximum wait for a permit, or for a server's pause to end.
const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

impl<St, K> RateLimitLayer<St, K> {
    /// The quota. For a [`hints_only`](RateLimitLayer::hints_only) layer, a nominal ceiling of
    /// 2^32 − 1 per second that is never enforced.
    pub fn quota(&self) -> &Quota {
        &self.shared.quota
    }

    /// The shared store. A [`hints_only`](RateLimitLayer::hints_only) layer takes nothing from
    /// it; it records the pauses servers ask for there.
    pub fn store(&self) -> &St {
        &self.shared.store
    }

    /// Whether this layer only obeys server hints, pacing nothing by itself (made by
    /// [`hints_only`](RateLimitLayer::hints_only)).
    pub fn is_hints_only(&self) -> bool {
        self.shared.hints_only.is_some()
    }

    /// The id its futures carry instead of the layer (a hints-only layer obeying hints).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn registered(&self) -> Option<u64> {
        self.shared.registered
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn server_pause(&self) -> Option<&ServerPause> {
        self.shared.hints_only.as_ref()
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
        match &s.hints_only {
            Some(pause) => f
                .debug_struct("RateLimitLayer")
                .field("hints_only", &true)
                .field("max_wait", &s.max_wait)
                .field("hints", &s.hints)
                .field("pause", pause)
                .finish(),
            None => f
                .debug_struct("RateLimitLayer")
                .field("quota", &s.quota)
                .field("key", &s.key)
                .field("cost", &s.cost)
                .field("max_wait", &s.max_wait)
                .field("hints", &s.hints)
                .field("store", &s.store)
                .finish(),
        }
    }
}

impl<S, St: Store<K>, K> Layer<S> for RateLimitLayer<St, K> {
    type Service = RateLimit<S, St, K>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, Arc::clone(&self.shared))
    }
}

/// Builds a [`RateLimitLayer`]; see its `# Default`.
pub struct RateLimitLayerBuilder<St = MemoryStore<DefaultClock>, K = ()> {
    store: St,
    key: K,
    quota: Quota,
    cost: NonZeroU32,
    max_wait: Duration,
    hints: ServerHints,
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
    pub fn server_hints(mut self, hints: ServerHints) -> Self {
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
                hints_only: None,
                registered: None,
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

/// Builds a [`hints_only`](RateLimitLayer::hints_only) layer; see its `# Default`.
#[derive(Debug, Clone)]
pub struct HintsOnlyBuilder {
    max_wait: Duration,
    hints: ServerHints,
}

impl HintsOnlyBuilder {
    /// The longest a request may wait for a server's pause to end. A request that would wait
    /// longer fails at once with [`WaitTooLong`](super::WaitTooLong). `Duration::ZERO` never
    /// waits: every request fails while a pause is in force.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// How to obey servers' `429`/`503` hints ([`ServerHints::ignore`] makes a layer that does
    /// nothing).
    pub fn server_hints(mut self, hints: ServerHints) -> Self {
        self.hints = hints;
        self
    }

    /// The layer.
    pub fn build(self) -> RateLimitLayer {
        // A layer that ignores hints has nothing to be reached for.
        let registered = self.hints.enabled.then(registry::next_id);
        let shared = Arc::new(Shared {
            store: MemoryStore::new(),
            key: (),
            quota: hints_only_quota(),
            cost: NonZeroU32::MIN,
            max_wait: self.max_wait,
            hints: self.hints,
            hints_only: Some(ServerPause::new()),
            registered,
        });
        if let Some(id) = registered {
            registry::register(id, &shared);
        }
        RateLimitLayer { shared }
    }
}
