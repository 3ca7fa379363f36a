//! Configuration of a Redis store.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, IntoConnectionInfo, RedisResult};

use super::lease::Leases;
use super::policy::OnFailure;
use super::store::RedisStore;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "resile:rl:";
/// The default decision timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// The default probe interval.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(500);

const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// Builds a [`RedisStore`]: [`build`](RedisStoreBuilder::build) on a connection you made, or
/// [`connect`](RedisStoreBuilder::connect) / [`connect_lazy`](RedisStoreBuilder::connect_lazy) to
/// a URL.
///
/// # Default
///
/// Prefix [`DEFAULT_PREFIX`] (`resile:rl:`), decision timeout [`DEFAULT_TIMEOUT`] (50 ms),
/// failure policy [`OnFailure::FailOpen`], probe interval [`DEFAULT_PROBE_INTERVAL`] (500 ms), no
/// cap on the fallback limiter's keys (it drops idle keys by itself), per-decision mode (no
/// [`leases`](RedisStoreBuilder::leases)).
///
/// # Example
///
/// ```no_run
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use resile_ratelimit::redis::{OnFailure, RedisStore, QuotaShare};
///
/// # async fn run() -> redis::RedisResult<()> {
/// let store = RedisStore::builder()
///     .prefix("myapp:ratelimit:")
///     .timeout(Duration::from_millis(20))
///     .on_failure(OnFailure::Fallback { share: QuotaShare::one_of(NonZeroU32::new(4).unwrap()) })
///     .connect("redis://127.0.0.1:6379/")
///     .await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RedisStoreBuilder {
    pub(crate) prefix: Vec<u8>,
    pub(crate) timeout: Duration,
    pub(crate) probe_interval: Duration,
    pub(crate) on_failure: OnFailure,
    pub(crate) fallback_max_keys: Option<usize>,
    pub(crate) leases: Option<Leases>,
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        RedisStoreBuilder {
            prefix: DEFAULT_PREFIX.as_bytes().to_vec(),
            timeout: DEFAULT_TIMEOUT,
            probe_interval: DEFAULT_PROBE_INTERVAL,
            on_failure: OnFailure::default(),
            fallback_max_keys: None,
            leases: None,
        }
    }
}

impl RedisStoreBuilder {
    /// The bytes every key starts with, to keep the limiter's keys apart from other data and
    /// one limiter's keys apart from another's. A key of `()` (a direct limiter) is the prefix
    /// alone.
    ///
    /// On Redis Cluster, do not put a hash tag (`{...}`) in the prefix: it would send every key
    /// to one slot. Each decision touches exactly one key, so no tag is needed.
    pub fn prefix(mut self, prefix: impl AsRef<[u8]>) -> Self {
        self.prefix = prefix.as_ref().to_vec();
        self
    }

    /// The longest a decision waits for Redis (the whole call: connecting or reconnecting if
    /// needed, the script, the reply); past it the failure policy decides. At least 1 ms
    /// (shorter values are raised to it).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(MIN_TIMEOUT);
        self
    }

    /// What to answer when Redis cannot decide; see [`OnFailure`].
    pub fn on_failure(mut self, policy: OnFailure) -> Self {
        self.on_failure = policy;
        self
    }

    /// After a failed call, decisions go straight to the failure policy for this long, without
    /// waiting on Redis; the first decision after it asks Redis again. This keeps an outage
    /// from adding the timeout to every request. Zero asks Redis on every decision.
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// Caps the keys of the local fallback limiter of [`OnFailure::Fallback`] (see
    /// [`KeyedStoreBuilder::max_keys`](crate::KeyedStoreBuilder::max_keys)).
    pub fn fallback_max_keys(mut self, max: usize) -> Self {
        self.fallback_max_keys = Some(max);
        self
    }

    /// Leased mode: the store takes cells of each key from Redis in advance, a lease per key,
    /// and decides locally from it, so that most decisions make no round trip. The fleet's
    /// limit then holds within a stated error (`instances × max` cells over any window); see
    /// [`Leases`]. Without it (the default), every decision is one script call and exact.
    pub fn leases(mut self, leases: Leases) -> Self {
        self.leases = Some(leases);
        self
    }

    /// The store on `conn`, a connection you configured: a [`ConnectionManager`], or any
    /// clonable [`redis::aio::ConnectionLike`] (for Redis Cluster, the `redis` crate's
    /// `cluster_async::ClusterConnection`).
    pub fn build<C>(&self, conn: C) -> RedisStore<C> {
        RedisStore::from_builder(self, conn)
    }

    /// Connects to `url` (`redis://host:port/db`, see [`redis::Client::open`]) with a
    /// [`ConnectionManager`] that reconnects on its own (delays from 100 ms doubling to at most
    /// 1 s between attempts), and loads the script.
    ///
    /// # Errors
    ///
    /// The client's error if the URL is invalid or the server cannot be reached now; use
    /// [`connect_lazy`](RedisStoreBuilder::connect_lazy) to start while Redis is away.
    pub async fn connect(&self, url: impl IntoConnectionInfo) -> RedisResult<RedisStore> {
        let client = Client::open(url)?;
        let conn = ConnectionManager::new_with_config(client, manager_config()).await?;
        let store = self.build(conn);
        store.load_script().await?;
        Ok(store)
    }

    /// Like [`connect`](RedisStoreBuilder::connect) without waiting: the connection is made by
    /// the first decision (and the failure policy decides until it succeeds). Must be called
    /// within a tokio runtime.
    ///
    /// # Errors
    ///
    /// The client's error if the URL is invalid.
    pub fn connect_lazy(&self, url: impl IntoConnectionInfo) -> RedisResult<RedisStore> {
        let client = Client::open(url)?;
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config())?;
        Ok(self.build(conn))
    }
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(1))
}
