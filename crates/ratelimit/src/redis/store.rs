//! The Redis store itself.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{RedisResult, Script, Value};

use super::builder::RedisStoreBuilder;
use super::error::RedisUnavailable;
use super::future::{GiveBack, RedisStoreFuture};
use super::key::RedisKey;
use super::metrics::{bump, Counters, RedisMetrics};
use super::policy::{closed_decision, open_decision, OnFailure};
use super::script::{self, Op};
use crate::clock::nanos;
use crate::clock::{Clock, MonotonicClock};
use crate::gcra::{Decision, Quota};
use crate::keyed::KeyedStore;
use crate::store::{Store, StoreError};

const TARGET: &str = "resile_ratelimit::redis";

/// A [`Store`] on Redis: the GCRA state of every key lives in Redis and each decision is one
/// atomic Lua script on the server's clock, so any number of processes share one limit.
///
/// Cheap to clone: clones share the connection, the counters and the fallback state. See the
/// [module docs](super) for the semantics, the failure policies and the costs, and
/// [`RedisStoreBuilder`] for the configuration.
///
/// `C` is the connection: by default a [`ConnectionManager`] (one multiplexed connection that
/// reconnects by itself); any clonable [`redis::aio::ConnectionLike`] works, a cluster
/// connection included.
pub struct RedisStore<C = ConnectionManager> {
    shared: Arc<Shared<C>>,
}

impl<C> Clone for RedisStore<C> {
    fn clone(&self) -> Self {
        RedisStore {
            shared: Arc::clone(&self.shared),
        }
    }
}

pub(crate) struct Shared<C> {
    conn: C,
    prefix: Box<[u8]>,
    timeout: Duration,
    probe_interval: Duration,
    on_failure: OnFailure,
    /// The local limiter of `OnFailure::Fallback`, keyed by the full Redis key.
    local: Option<KeyedStore<Vec<u8>>>,
    script: Script,
    clock: MonotonicClock,
    /// While `clock` is before this instant (ns; 0 = never), decisions skip Redis.
    retry_at: AtomicU64,
    /// Whether the last call to Redis succeeded (for logging transitions once).
    healthy: AtomicBool,
    counters: Counters,
}

impl RedisStore<ConnectionManager> {
    /// A builder with the default configuration; see [`RedisStoreBuilder`].
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }
}

impl<C> RedisStore<C> {
    pub(crate) fn from_builder(b: &RedisStoreBuilder, conn: C) -> Self {
        let local = match b.on_failure {
            OnFailure::Fallback { .. } => {
                let mut local = KeyedStore::<Vec<u8>>::builder();
                if let Some(max) = b.fallback_max_keys {
                    local = local.max_keys(max);
                }
                Some(local.build())
            }
            _ => None,
        };
        RedisStore {
            shared: Arc::new(Shared {
                conn,
                prefix: b.prefix.clone().into_boxed_slice(),
                timeout: b.timeout,
                probe_interval: b.probe_interval,
                on_failure: b.on_failure,
                local,
                script: script::script(),
                clock: MonotonicClock::new(),
                retry_at: AtomicU64::new(0),
                healthy: AtomicBool::new(true),
                counters: Counters::default(),
            }),
        }
    }

    /// The counters, summed over all clones of this store.
    pub fn metrics(&self) -> RedisMetrics {
        self.shared.counters.snapshot()
    }

    /// The connection the store sends its scripts on.
    pub fn connection(&self) -> &C {
        &self.shared.conn
    }

    /// The prefix of every key the store writes.
    pub fn prefix(&self) -> &[u8] {
        &self.shared.prefix
    }

    /// The Redis key that holds `key`'s state: the prefix followed by the key's bytes.
    pub fn redis_key<K: RedisKey + ?Sized>(&self, key: &K) -> Vec<u8> {
        self.shared.redis_key(key)
    }

    /// The longest a decision waits for Redis before the failure policy decides.
    pub fn timeout(&self) -> Duration {
        self.shared.timeout
    }

    /// The failure policy.
    pub fn on_failure(&self) -> OnFailure {
        self.shared.on_failure
    }

    /// Whether the last call to Redis succeeded (`true` until one fails).
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
    }

    /// The number of keys the local fallback limiter holds (zero unless the policy is
    /// [`OnFailure::Fallback`]).
    pub fn fallback_keys(&self) -> usize {
        self.shared.local.as_ref().map_or(0, KeyedStore::len)
    }
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Loads the script into the server's script cache (`SCRIPT LOAD`), so that the first
    /// decision is one round trip too. Optional: a decision that finds the script missing sends
    /// it itself.
    ///
    /// # Errors
    ///
    /// The client's error if the server cannot be reached or refuses the script.
    pub async fn load_script(&self) -> RedisResult<()> {
        let mut conn = self.shared.conn.clone();
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(script::SOURCE)
            .query_async(&mut conn)
            .await?;
        if sha != self.shared.script.get_hash() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "SCRIPT LOAD returned another SHA-1 than the script's",
                sha,
            )));
        }
        Ok(())
    }
}

impl<C> Shared<C> {
    fn redis_key<K: RedisKey + ?Sized>(&self, key: &K) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + 24);
        out.extend_from_slice(&self.prefix);
        key.write_key(&mut out);
        out
    }

    /// `Some(wait)` while decisions skip Redis after a failure.
    #[inline]
    fn skipping(&self) -> Option<Duration> {
        let retry_at = self.retry_at.load(Ordering::Relaxed);
        if retry_at == 0 {
            return None;
        }
        let now = self.clock.now();
        (now < retry_at).then(|| Duration::from_nanos(retry_at - now))
    }

    fn succeeded(&self) {
        if self.retry_at.load(Ordering::Relaxed) != 0 {
            self.retry_at.store(0, Ordering::Relaxed);
        }
        if !self.healthy.load(Ordering::Relaxed) && !self.healthy.swap(true, Ordering::Relaxed) {
            tracing::info!(
                target: TARGET,
                prefix = %String::from_utf8_lossy(&self.prefix),
                "Redis rate-limit store answers again"
            );
        }
    }

    /// Records a failed call to Redis: counters, probe interval, logs.
    fn failed(&self, what: &'static str, err: &StoreError) {
        bump(&self.counters.errors);
        if matches!(err, StoreError::Timeout(_)) {
            bump(&self.counters.timeouts);
        }
        if !self.probe_interval.is_zero() {
            let until = self.clock.now().saturating_add(nanos(self.probe_interval));
            self.retry_at.store(until.max(1), Ordering::Relaxed);
        }
        let detail = match err {
            StoreError::Backend(e) => e.to_string(),
            other => other.to_string(),
        };
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                target: TARGET,
                prefix = %String::from_utf8_lossy(&self.prefix),
                error = %detail,
                call = what,
                policy = ?self.on_failure,
                probe_interval = ?self.probe_interval,
                "Redis rate-limit store failed; the failure policy decides until it answers again"
            );
        } else {
            tracing::debug!(
                target: TARGET,
                prefix = %String::from_utf8_lossy(&self.prefix),
                error = %detail,
                call = what,
                "Redis rate-limit store failed"
            );
        }
    }

    /// The failure policy's answer for a decision Redis did not make, and the share of the quota
    /// the local limiter decided under (`None` when no local limiter took cells).
    fn fallback(
        &self,
        key: &[u8],
        quota: &Quota,
        cost: NonZeroU32,
        max_wait: Duration,
        err: StoreError,
    ) -> (Result<Decision, StoreError>, Option<Quota>) {
        let (decision, local_quota) = match self.on_failure {
            OnFailure::Error => return (Err(err), None),
            OnFailure::FailOpen => (open_decision(quota, cost), None),
            OnFailure::FailClosed => (closed_decision(quota, cost), None),
            OnFailure::Fallback { share } => match (share.of(quota), &self.local) {
                (Some(local_quota), Some(local)) => {
                    match local.reserve_now(key, &local_quota, cost, max_wait) {
                        Ok(d) => (d, Some(local_quota)),
                        Err(_) => (closed_decision(&local_quota, cost), None),
                    }
                }
                _ => (closed_decision(quota, cost), None),
            },
        };
        bump(&self.counters.fallbacks);
        tracing::trace!(target: TARGET, allowed = decision.allowed, "failure policy decided");
        (Ok(decision), local_quota)
    }
}

impl<C> Shared<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Runs `op` on `key` within the timeout.
    async fn call(&self, key: &[u8], quota: &Quota, op: Op) -> Result<Value, StoreError> {
        let mut conn = self.conn.clone();
        let run = script::run(&mut conn, &self.script, key, quota, op);
        match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StoreError::backend(e)),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }

    /// Asks Redis (then the failure policy); with the decision, how to give its cells back if
    /// the decision is abandoned (`None` when it took none).
    async fn decide_remote(
        self: Arc<Self>,
        key: Vec<u8>,
        quota: Quota,
        cost: NonZeroU32,
        cost_ns: u64,
        max_wait: Duration,
    ) -> (Result<Decision, StoreError>, Option<GiveBack>) {
        let op = Op::Reserve {
            cost: cost_ns,
            max_wait: nanos(max_wait),
        };
        let result = match self.call(&key, &quota, op).await {
            Ok(reply) => script::decision(&reply, &quota).map_err(StoreError::backend),
            Err(e) => Err(e),
        };
        match result {
            Ok(decision) => {
                bump(&self.counters.decisions);
                self.succeeded();
                let give_back = decision.allowed.then(|| {
                    let shared = Arc::clone(&self);
                    Box::new(move || shared.update(key, &quota, Op::Release { cost: cost_ns }))
                        as GiveBack
                });
                (Ok(decision), give_back)
            }
            Err(e) => {
                self.failed("decision", &e);
                let (result, local_quota) = self.fallback(&key, &quota, cost, max_wait, e);
                let give_back = match (&result, local_quota) {
                    (Ok(d), Some(local_quota)) if d.allowed => {
                        let shared = Arc::clone(&self);
                        Some(Box::new(move || {
                            if let Some(local) = &shared.local {
                                local.release_now(&key[..], &local_quota, cost);
                            }
                        }) as GiveBack)
                    }
                    _ => None,
                };
                (result, give_back)
            }
        }
    }

    /// Sends `op` (release or pause) without waiting for it.
    fn update(self: &Arc<Self>, key: Vec<u8>, quota: &Quota, op: Op) {
        if self.skipping().is_some() {
            bump(&self.counters.dropped_updates);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            bump(&self.counters.dropped_updates);
            tracing::debug!(target: TARGET, "no tokio runtime: rate-limit update not sent to Redis");
            return;
        };
        let shared = Arc::clone(self);
        let quota = *quota;
        runtime.spawn(async move {
            match shared.call(&key, &quota, op).await {
                Ok(_) => {
                    bump(&shared.counters.updates);
                    shared.succeeded();
                }
                Err(e) => shared.failed("update", &e),
            }
        });
    }
}

impl<K, C> Store<K> for RedisStore<C>
where
    K: RedisKey + ?Sized,
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    type Future = RedisStoreFuture;

    fn reserve(
        &self,
        key: &K,
        quota: &Quota,
        cost: NonZeroU32,
        max_wait: Duration,
    ) -> RedisStoreFuture {
        let cost_ns = match quota.cost_nanos(cost) {
            Ok(c) => c,
            Err(e) => return RedisStoreFuture::ready(Err(e.into())),
        };
        let shared = &self.shared;
        let key = shared.redis_key(key);
        if let Some(retry_in) = shared.skipping() {
            let err = StoreError::backend(RedisUnavailable { retry_in });
            return RedisStoreFuture::ready(shared.fallback(&key, quota, cost, max_wait, err).0);
        }
        RedisStoreFuture::remote(
            Arc::clone(shared).decide_remote(key, *quota, cost, cost_ns, max_wait),
        )
    }

    /// Sends `TAT -= cost·T` to Redis in a spawned task. Dropped (and counted in
    /// [`RedisMetrics::dropped_updates`]) outside a tokio runtime or during a probe interval:
    /// the limit is then stricter for a moment. Never applied to the local fallback limiter (the
    /// cells may have come from Redis).
    fn release(&self, key: &K, quota: &Quota, cost: NonZeroU32) {
        let Ok(cost) = quota.cost_nanos(cost) else {
            return;
        };
        let key = self.shared.redis_key(key);
        self.shared.update(key, quota, Op::Release { cost });
    }

    /// Applies the pause to the local fallback limiter at once (if there is one: a pause only
    /// makes it stricter) and sends it to Redis in a spawned task, like
    /// [`release`](Store::release).
    fn pause(&self, key: &K, quota: &Quota, delay: Duration) {
        let key = self.shared.redis_key(key);
        if let (OnFailure::Fallback { share }, Some(local)) =
            (self.shared.on_failure, &self.shared.local)
        {
            if let Some(local_quota) = share.of(quota) {
                let _ = local.pause_now(&key[..], &local_quota, delay);
            }
        }
        self.shared.update(
            key,
            quota,
            Op::Pause {
                delay: nanos(delay),
            },
        );
    }
}

impl<C> fmt::Debug for RedisStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("RedisStore")
            .field("prefix", &String::from_utf8_lossy(&s.prefix))
            .field("timeout", &s.timeout)
            .field("probe_interval", &s.probe_interval)
            .field("on_failure", &s.on_failure)
            .field("healthy", &s.healthy.load(Ordering::Relaxed))
            .field("metrics", &s.counters.snapshot())
            .finish_non_exhaustive()
    }
}
