//! The Redis store itself.

use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{RedisResult, Script, Value};

use super::builder::RedisStoreBuilder;
use super::error::RedisUnavailable;
use super::future::{GiveBack, RedisStoreFuture};
use super::key::RedisKey;
use super::lease::{Book, Leases, Returns, Step};
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
    /// The leases of the leased mode.
    leases: Option<LeaseTable>,
}

/// Gives leased cells back to Redis; built where the connection's bounds are known, so that the
/// table's `Drop` can use it.
type Returner = Box<
    dyn Fn(Returns) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>> + Send + Sync,
>;

/// The leases of a store in leased mode, and how to give them back.
struct LeaseTable {
    config: Leases,
    book: Mutex<Book>,
    /// Set by the first lease call (no cells are leased before it).
    returner: OnceLock<Returner>,
}

impl LeaseTable {
    fn book(&self) -> MutexGuard<'_, Book> {
        // The book's methods leave it consistent at every point where they could panic.
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `returns` to Redis in a task on the current runtime (dropped without one: the
    /// cells are then spent, and the bucket refills at the quota's rate).
    fn give_back(&self, returns: Returns) {
        if returns.is_empty() {
            return;
        }
        match (self.returner.get(), tokio::runtime::Handle::try_current()) {
            (Some(returner), Ok(runtime)) => {
                let run = returner(returns);
                runtime.spawn(async move {
                    if let Err(e) = run.await {
                        tracing::debug!(target: TARGET, error = %e, "leased cells not given back");
                    }
                });
            }
            _ => tracing::debug!(target: TARGET, "no tokio runtime: leased cells not given back"),
        }
    }
}

impl Drop for LeaseTable {
    fn drop(&mut self) {
        let returns = self
            .book
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain();
        self.give_back(returns);
    }
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
                leases: b.leases.map(|config| LeaseTable {
                    config,
                    book: Mutex::new(Book::new(config)),
                    returner: OnceLock::new(),
                }),
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

    /// The leased mode's configuration (`None` in per-decision mode).
    pub fn leases(&self) -> Option<Leases> {
        self.shared.leases.as_ref().map(|l| l.config)
    }

    /// The number of keys the store holds leases for (zero in per-decision mode).
    pub fn leased_keys(&self) -> usize {
        self.shared.leases.as_ref().map_or(0, |l| l.book().len())
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

    /// Gives the unused cells of every lease back to Redis now, and waits until Redis has them
    /// (each within the decision timeout): for a graceful shutdown, or before handing the
    /// traffic to another instance. The store keeps working; its next decisions take new
    /// leases. Nothing to do in per-decision mode. (Dropping the last clone of the store gives
    /// them back too, without waiting.)
    ///
    /// # Errors
    ///
    /// The first [`StoreError`] among the calls; the cells of a failed call are spent.
    pub async fn return_leases(&self) -> Result<(), StoreError> {
        let Some(leases) = &self.shared.leases else {
            return Ok(());
        };
        let returns = leases.book().drain();
        self.shared.returner(leases)(returns).await
    }
}

/// Runs `op` on `key` within `timeout`.
async fn call<C: ConnectionLike>(
    conn: &mut C,
    script: &Script,
    timeout: Duration,
    key: &[u8],
    quota: &Quota,
    op: Op,
) -> Result<Value, StoreError> {
    let run = script::run(conn, script, key, quota, op);
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(StoreError::backend(e)),
        Err(_) => Err(StoreError::Timeout(timeout)),
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
        call(
            &mut self.conn.clone(),
            &self.script,
            self.timeout,
            key,
            quota,
            op,
        )
        .await
    }

    /// The table's returner, made on first use.
    fn returner<'a>(&self, leases: &'a LeaseTable) -> &'a Returner {
        leases.returner.get_or_init(|| {
            let (conn, script, timeout) = (self.conn.clone(), self.script.clone(), self.timeout);
            Box::new(move |returns: Returns| {
                let (mut conn, script) = (conn.clone(), script.clone());
                Box::pin(async move {
                    let mut first_error = Ok(());
                    for (key, quota, cells) in returns {
                        let op = Op::Release { cost: cells };
                        if let Err(e) = call(&mut conn, &script, timeout, &key, &quota, op).await {
                            first_error = first_error.and(Err(e));
                        }
                    }
                    first_error
                })
            })
        })
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
                self.fall_back(key, &quota, cost, max_wait, e)
            }
        }
    }

    /// The failure policy's answer, with how to give back what the local limiter took.
    fn fall_back(
        self: &Arc<Self>,
        key: Vec<u8>,
        quota: &Quota,
        cost: NonZeroU32,
        max_wait: Duration,
        err: StoreError,
    ) -> (Result<Decision, StoreError>, Option<GiveBack>) {
        let (result, local_quota) = self.fallback(&key, quota, cost, max_wait, err);
        let give_back = match (&result, local_quota) {
            (Ok(d), Some(local_quota)) if d.allowed => {
                let shared = Arc::clone(self);
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

    /// Takes the key's next lease (giving back `give_back` ns of the last one), or else the
    /// failure policy decides.
    #[allow(clippy::too_many_arguments)]
    async fn decide_leased(
        self: Arc<Self>,
        key: Vec<u8>,
        quota: Quota,
        cost: NonZeroU32,
        cost_ns: u64,
        max_wait: Duration,
        give_back: u64,
        most: u64,
    ) -> (Result<Decision, StoreError>, Option<GiveBack>) {
        let leases = self.leases.as_ref().expect("a leased store");
        self.returner(leases);
        // Until the call ends (or if this future is dropped), the key has a call in flight.
        let mut in_flight = LeaseCall {
            table: leases,
            key: &key,
            done: false,
        };
        let op = Op::Lease {
            give_back,
            least: cost_ns,
            most,
            max_wait: nanos(max_wait),
        };
        let result = match self.call(&key, &quota, op).await {
            Ok(reply) => script::grant(&reply, &quota, cost_ns, most).map_err(StoreError::backend),
            Err(e) => Err(e),
        };
        match result {
            Ok((granted, decision)) => {
                in_flight.done = true;
                drop(in_flight);
                bump(&self.counters.decisions);
                self.succeeded();
                let now = self.clock.now();
                leases
                    .book()
                    .leased(&key, &quota, cost_ns, granted, &decision, now);
                let decision = Book::decision_at_lease(&quota, cost_ns, granted, decision);
                let give_back = decision.allowed.then(|| {
                    let shared = Arc::clone(&self);
                    Box::new(move || shared.release_cells(key, &quota, cost_ns)) as GiveBack
                });
                (Ok(decision), give_back)
            }
            Err(e) => {
                drop(in_flight);
                self.failed("lease", &e);
                self.fall_back(key, &quota, cost, max_wait, e)
            }
        }
    }

    /// Gives back `cost` ns of cells taken for `key`: into its live lease, or to Redis.
    fn release_cells(self: &Arc<Self>, key: Vec<u8>, quota: &Quota, cost: u64) {
        if let Some(leases) = &self.leases {
            if leases.book().release(&key, cost, self.clock.now()) {
                return;
            }
        }
        self.update(key, quota, Op::Release { cost });
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
        if let Some(leases) = &shared.leases {
            let mut returns = Vec::new();
            let step = leases
                .book()
                .step(&key, quota, cost_ns, shared.clock.now(), &mut returns);
            leases.give_back(returns);
            match step {
                Step::Local(decision) => {
                    bump(&shared.counters.local_decisions);
                    return RedisStoreFuture::ready(Ok(decision));
                }
                Step::Lease { give_back, most } => {
                    if let Some(retry_in) = shared.skipping() {
                        leases.book().lease_failed(&key);
                        let err = StoreError::backend(RedisUnavailable { retry_in });
                        return RedisStoreFuture::ready(
                            shared.fallback(&key, quota, cost, max_wait, err).0,
                        );
                    }
                    return RedisStoreFuture::remote(
                        Arc::clone(shared)
                            .decide_leased(key, *quota, cost, cost_ns, max_wait, give_back, most),
                    );
                }
                Step::Direct => {}
            }
        }
        if let Some(retry_in) = shared.skipping() {
            let err = StoreError::backend(RedisUnavailable { retry_in });
            return RedisStoreFuture::ready(shared.fallback(&key, quota, cost, max_wait, err).0);
        }
        RedisStoreFuture::remote(
            Arc::clone(shared).decide_remote(key, *quota, cost, cost_ns, max_wait),
        )
    }

    /// In leased mode, puts the cells back into the key's live lease if it can hold them.
    /// Otherwise sends `TAT -= cost·T` to Redis in a spawned task. Dropped (and counted in
    /// [`RedisMetrics::dropped_updates`]) outside a tokio runtime or during a probe interval:
    /// the limit is then stricter for a moment. Never applied to the local fallback limiter (the
    /// cells may have come from Redis).
    fn release(&self, key: &K, quota: &Quota, cost: NonZeroU32) {
        let Ok(cost) = quota.cost_nanos(cost) else {
            return;
        };
        let key = self.shared.redis_key(key);
        self.shared.release_cells(key, quota, cost);
    }

    /// Forfeits the key's lease in leased mode, applies the pause to the local fallback limiter
    /// at once (if there is one: a pause only makes it stricter) and sends it to Redis in a
    /// spawned task, like [`release`](Store::release).
    fn pause(&self, key: &K, quota: &Quota, delay: Duration) {
        let key = self.shared.redis_key(key);
        if let Some(leases) = &self.shared.leases {
            leases.book().forfeit(&key);
        }
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

/// Marks the end of a key's lease call; if dropped before the reply, the call failed.
struct LeaseCall<'a> {
    table: &'a LeaseTable,
    key: &'a [u8],
    done: bool,
}

impl Drop for LeaseCall<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.table.book().lease_failed(self.key);
        }
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
            .field("leases", &s.leases.as_ref().map(|l| l.config))
            .field("healthy", &s.healthy.load(Ordering::Relaxed))
            .field("metrics", &s.counters.snapshot())
            .finish_non_exhaustive()
    }
}
