//! Many keys: the keyed store and limiter, with memory bounded by design.

use std::borrow::Borrow;
use std::fmt;
use std::future::{ready, Ready};
use std::hash::{BuildHasher, Hash, RandomState};
use std::marker::PhantomData;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use hashbrown::HashTable;

use crate::clock::nanos;
use crate::clock::{Clock, DefaultClock};
use crate::direct::Padded;
use crate::gcra::{Decision, InsufficientCapacity, Quota};
use crate::state::Tat;
use crate::store::{Store, StoreError};

const DEFAULT_MIN_SWEEP: usize = 64;

struct Entry<K> {
    key: K,
    tat: Tat,
}

struct Shard<K> {
    table: HashTable<Entry<K>>,
    /// Sweep when the table reaches this many entries.
    sweep_at: usize,
    /// Every dropped key had a TAT at or before this instant.
    swept_until: u64,
    /// The earliest TAT among the entries kept by the last sweep.
    next_expiry: u64,
}

/// The in-memory state of many rate-limited keys: sharded hash tables of `AtomicU64` TATs.
///
/// Implements [`Store<K>`](Store). Built with [`KeyedStore::new`] or [`KeyedStore::builder`].
///
/// # Memory
///
/// A key whose TAT is not after `now` has a full bucket: it is indistinguishable from a key never
/// seen, so it carries no information and can be dropped. The store does so by itself:
///
/// - keys live in `shards` hash tables, each behind a reader-writer lock that only *inserting* a
///   new key takes for writing; deciding for a known key takes the read lock and does one CAS on
///   the key's `AtomicU64`;
/// - when a shard grows to its sweep threshold, the insert that reaches it first sweeps the
///   shard, and the threshold becomes twice the keys that survived (at least
///   [`KeyedStoreBuilder::min_sweep`]). A sweep of `m` entries thus follows at least `m/2`
///   inserts: O(1) amortized per insert;
/// - a sweep drops the keys that have been idle for longer than the idle grace
///   ([`KeyedStoreBuilder::idle_grace`], 1 s by default): a client that comes back soon after
///   its bucket refilled keeps its entry instead of being removed and re-created on every visit.
///   The entries held are thus about twice the keys active within the last `window + grace`
///   (`window` = `burst × T`), plus the minimum, whatever the number of distinct keys passing
///   through;
/// - an optional cap ([`KeyedStoreBuilder::max_keys`]) bounds the total even under a flood of
///   distinct active keys: at a full shard, every idle key is dropped; a *new* key that still
///   finds no room is refused, with a `retry_after` telling when the shard's first key expires
///   (until then, further new keys are refused in O(1)). Known keys are never affected.
///
/// No background task and no user-run `retain_recent` are needed. [`KeyedStore::len`] is the
/// number of entries currently held.
///
/// Dropping an idle key is exact: a key re-created in a shard starts at the latest instant that
/// shard swept up to, so no sequence of sweeps and re-inserts lets more through than one
/// uninterrupted GCRA would.
pub struct KeyedStore<K, C = DefaultClock, S = RandomState> {
    shards: Box<[Padded<RwLock<Shard<K>>>]>,
    shift: u32,
    hasher: S,
    clock: C,
    min_sweep: usize,
    idle_grace: u64,
    max_per_shard: usize,
    refused_new_keys: AtomicU64,
}

/// Builds a [`KeyedStore`].
///
/// # Default
///
/// Shards: four per available CPU, rounded up to a power of two; minimum sweep threshold 64
/// entries per shard; idle grace 1 s; no cap on keys; the standard SipHash hasher (`RandomState`), which keeps
/// hostile keys (headers, addresses) from degrading the tables.
pub struct KeyedStoreBuilder<K, C = DefaultClock, S = RandomState> {
    key: PhantomData<fn() -> K>,
    shards: usize,
    min_sweep: usize,
    idle_grace: Duration,
    max_keys: Option<usize>,
    clock: C,
    hasher: S,
}

impl<K> Default for KeyedStoreBuilder<K> {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        KeyedStoreBuilder {
            key: PhantomData,
            shards: (cpus * 4).next_power_of_two(),
            min_sweep: DEFAULT_MIN_SWEEP,
            idle_grace: Duration::from_secs(1),
            max_keys: None,
            clock: DefaultClock::new(),
            hasher: RandomState::new(),
        }
    }
}

impl<K, C: Clone, S: Clone> Clone for KeyedStoreBuilder<K, C, S> {
    fn clone(&self) -> Self {
        KeyedStoreBuilder {
            key: PhantomData,
            shards: self.shards,
            min_sweep: self.min_sweep,
            idle_grace: self.idle_grace,
            max_keys: self.max_keys,
            clock: self.clock.clone(),
            hasher: self.hasher.clone(),
        }
    }
}

impl<K, C: fmt::Debug, S> fmt::Debug for KeyedStoreBuilder<K, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedStoreBuilder")
            .field("shards", &self.shards)
            .field("min_sweep", &self.min_sweep)
            .field("idle_grace", &self.idle_grace)
            .field("max_keys", &self.max_keys)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl<K, C, S> KeyedStoreBuilder<K, C, S> {
    /// The number of shards, rounded up to a power of two (at least 1, at most 2^16).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards.clamp(1, 1 << 16).next_power_of_two();
        self
    }

    /// The smallest sweep threshold of a shard (at least 1).
    pub fn min_sweep(mut self, entries: usize) -> Self {
        self.min_sweep = entries.max(1);
        self
    }

    /// How long a key stays after going idle (its bucket full) before a sweep may drop it.
    /// Zero drops idle keys at the first sweep; a grace keeps a client that comes back soon
    /// from being removed and re-created on every visit.
    pub fn idle_grace(mut self, grace: Duration) -> Self {
        self.idle_grace = grace;
        self
    }

    /// Caps the number of keys held. The cap is split evenly over the shards (rounded up, at least
    /// one per shard), so it holds within one shard's rounding.
    pub fn max_keys(mut self, max: usize) -> Self {
        self.max_keys = Some(max);
        self
    }

    /// Reads time from `clock`.
    pub fn clock<C2: Clock>(self, clock: C2) -> KeyedStoreBuilder<K, C2, S> {
        KeyedStoreBuilder {
            key: PhantomData,
            shards: self.shards,
            min_sweep: self.min_sweep,
            idle_grace: self.idle_grace,
            max_keys: self.max_keys,
            clock,
            hasher: self.hasher,
        }
    }

    /// Hashes keys with `hasher`.
    pub fn hasher<S2: BuildHasher>(self, hasher: S2) -> KeyedStoreBuilder<K, C, S2> {
        KeyedStoreBuilder {
            key: PhantomData,
            shards: self.shards,
            min_sweep: self.min_sweep,
            idle_grace: self.idle_grace,
            max_keys: self.max_keys,
            clock: self.clock,
            hasher,
        }
    }

    /// The store.
    pub fn build(self) -> KeyedStore<K, C, S> {
        let shards = self.shards;
        let max_per_shard = match self.max_keys {
            Some(max) => max.div_ceil(shards).max(1),
            None => usize::MAX,
        };
        KeyedStore {
            shards: (0..shards)
                .map(|_| {
                    Padded(RwLock::new(Shard {
                        table: HashTable::new(),
                        sweep_at: self.min_sweep.min(max_per_shard),
                        swept_until: 0,
                        next_expiry: 0,
                    }))
                })
                .collect(),
            // Shard index: the bits just below hashbrown's top 7 (its control byte), so neither
            // the control bytes nor the bucket index (low bits) lose entropy within a shard.
            shift: 64 - shards.trailing_zeros(),
            hasher: self.hasher,
            clock: self.clock,
            min_sweep: self.min_sweep,
            idle_grace: nanos(self.idle_grace),
            max_per_shard,
            refused_new_keys: AtomicU64::new(0),
        }
    }
}

impl<K> KeyedStore<K> {
    /// A store with the default configuration (see [`KeyedStoreBuilder`]).
    pub fn new() -> Self {
        KeyedStoreBuilder::default().build()
    }

    /// A builder with the default configuration.
    pub fn builder() -> KeyedStoreBuilder<K> {
        KeyedStoreBuilder::default()
    }
}

impl<K> Default for KeyedStore<K> {
    fn default() -> Self {
        KeyedStore::new()
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // Nothing under these locks leaves a table half-updated on panic (a panicking `Hash`/`Eq` of
    // a key aborts a lookup, not a mutation), so poisoning carries no meaning here.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl<K, C, S> KeyedStore<K, C, S>
where
    K: Hash + Eq,
    C: Clock,
    S: BuildHasher,
{
    #[inline]
    fn shard_of(&self, hash: u64) -> &RwLock<Shard<K>> {
        let idx = if self.shift >= 64 {
            0
        } else {
            ((hash << 7) >> self.shift) as usize
        };
        &self.shards[idx].0
    }

    /// Runs `f` on `key`'s TAT (inserting the key if absent, if the cap allows). `now` is read
    /// by the caller before the lookup, so the clock read overlaps the hashing; a reading that
    /// is a little old only makes the decision stricter. `Err(retry_after_ns)` when the key is
    /// new and its shard is full.
    #[inline(always)]
    fn with_tat<Q, R>(&self, key: &Q, now: u64, f: impl FnOnce(&Tat) -> R) -> Result<R, u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let lock = self.shard_of(hash);
        {
            let shard = read(lock);
            if let Some(e) = shard.table.find(hash, |e| e.key.borrow() == key) {
                return Ok(f(&e.tat));
            }
        }
        self.insert_slow(lock, hash, key, now, f)
    }

    #[cold]
    #[inline(never)]
    fn insert_slow<Q, R>(
        &self,
        lock: &RwLock<Shard<K>>,
        hash: u64,
        key: &Q,
        now: u64,
        f: impl FnOnce(&Tat) -> R,
    ) -> Result<R, u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut shard = write(lock);
        if let Some(e) = shard.table.find(hash, |e| e.key.borrow() == key) {
            return Ok(f(&e.tat));
        }
        if shard.table.len() >= self.max_per_shard {
            if now < shard.next_expiry {
                // Nothing can have expired since the last sweep: refuse in O(1).
                self.refused_new_keys.fetch_add(1, Ordering::Relaxed);
                return Err(shard.next_expiry - now);
            }
            // Full: make room from every idle key.
            self.sweep_shard(&mut shard, now);
            if shard.table.len() >= self.max_per_shard {
                self.refused_new_keys.fetch_add(1, Ordering::Relaxed);
                return Err(shard.next_expiry.saturating_sub(now).max(1));
            }
        } else if shard.table.len() >= shard.sweep_at {
            self.sweep_shard(&mut shard, now.saturating_sub(self.idle_grace));
        }
        let entry = Entry {
            key: key.to_owned(),
            tat: Tat::new(shard.swept_until),
        };
        // Growing the table rehashes the keys (rare: the key's hash is not kept, so an entry is
        // as small as governor's).
        let slot = shard
            .table
            .insert_unique(hash, entry, |e| self.hasher.hash_one(&e.key));
        Ok(f(&slot.get().tat))
    }

    /// Drops the keys whose TAT is at or before `cutoff` (`<= now`: idle keys only).
    fn sweep_shard(&self, shard: &mut Shard<K>, cutoff: u64) {
        let mut next_expiry = u64::MAX;
        shard.table.retain(|e| {
            let tat = e.tat.load();
            if tat > cutoff {
                next_expiry = next_expiry.min(tat);
                true
            } else {
                false
            }
        });
        shard.swept_until = shard.swept_until.max(cutoff);
        shard.next_expiry = next_expiry;
        let len = shard.table.len();
        shard.sweep_at = len
            .saturating_mul(2)
            .max(self.min_sweep)
            .min(self.max_per_shard);
        // Give memory back when the table is mostly empty.
        if shard.table.capacity() > 4 * shard.sweep_at {
            shard
                .table
                .shrink_to(shard.sweep_at, |e| self.hasher.hash_one(&e.key));
        }
    }

    /// Drops every idle key now (a key whose bucket is full), with no grace period. Not needed
    /// for bounded memory — inserts sweep by themselves — but useful before reading
    /// [`len`](KeyedStore::len).
    pub fn sweep(&self) {
        let now = self.clock.now();
        for lock in self.shards.iter() {
            let mut shard = write(&lock.0);
            self.sweep_shard(&mut shard, now);
        }
    }

    /// The number of keys held (active keys, and idle ones not swept yet).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| read(&s.0).table.len()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| read(&s.0).table.is_empty())
    }

    /// How many new keys were refused because their shard was full (see
    /// [`KeyedStoreBuilder::max_keys`]).
    pub fn refused_new_keys(&self) -> u64 {
        self.refused_new_keys.load(Ordering::Relaxed)
    }

    /// The store's clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Synchronous [`Store::reserve`] for `key` (which may be a borrowed form, e.g. `&str` for a
    /// `String` key).
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] if `cost` exceeds `quota`'s burst.
    #[inline]
    pub fn reserve_now<Q>(
        &self,
        key: &Q,
        quota: &Quota,
        cost: NonZeroU32,
        max_wait: Duration,
    ) -> Result<Decision, InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let cost = quota.cost_nanos(cost)?;
        Ok(self.take(key, quota, cost, nanos(max_wait)))
    }

    #[inline(always)]
    fn take<Q>(&self, key: &Q, quota: &Quota, cost: u64, max_wait: u64) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let now = self.clock.now();
        match self.with_tat(key, now, |tat| tat.acquire(quota, now, cost, max_wait)) {
            Ok(Ok(new_tat)) => quota.admitted(new_tat, now),
            Ok(Err(base)) => quota.refused(base, now, cost),
            Err(wait) => full_refusal(quota, wait),
        }
    }

    /// Synchronous [`Store::release`].
    pub fn release_now<Q>(&self, key: &Q, quota: &Quota, cost: NonZeroU32)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let Ok(cost) = quota.cost_nanos(cost) else {
            return;
        };
        let hash = self.hasher.hash_one(key);
        let shard = read(self.shard_of(hash));
        // An absent key has a full bucket: nothing to give back.
        if let Some(e) = shard.table.find(hash, |e| e.key.borrow() == key) {
            e.tat.release(cost);
        }
    }

    /// Synchronous [`Store::pause`]; returns the key's state after it (for one cell).
    pub fn pause_now<Q>(&self, key: &Q, quota: &Quota, delay: Duration) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let now = self.clock.now();
        let floor = quota.paused_tat(0, now, nanos(delay));
        match self.with_tat(key, now, |tat| tat.raise_to(floor)) {
            Ok(tat) => quota.snapshot(tat, now),
            Err(wait) => full_refusal(quota, wait),
        }
    }

    /// The state of `key` for one cell at this moment, without taking anything or inserting it.
    pub fn peek<Q>(&self, key: &Q, quota: &Quota) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let shard = read(self.shard_of(hash));
        let now = self.clock.now();
        let tat = shard
            .table
            .find(hash, |e| e.key.borrow() == key)
            .map_or(shard.swept_until, |e| e.tat.load());
        quota.snapshot(tat, now)
    }
}

fn full_refusal(quota: &Quota, wait: u64) -> Decision {
    Decision {
        allowed: false,
        limit: quota.burst().get(),
        remaining: 0,
        retry_after: Duration::from_nanos(wait),
        reset_after: Duration::from_nanos(wait),
    }
}

impl<K, C, S> Store<K> for KeyedStore<K, C, S>
where
    K: Hash + Eq + Clone + Send + Sync,
    C: Clock,
    S: BuildHasher + Send + Sync,
{
    type Future = Ready<Result<Decision, StoreError>>;

    #[inline]
    fn reserve(
        &self,
        key: &K,
        quota: &Quota,
        cost: NonZeroU32,
        max_wait: Duration,
    ) -> Self::Future {
        ready(
            self.reserve_now(key, quota, cost, max_wait)
                .map_err(StoreError::from),
        )
    }

    fn release(&self, key: &K, quota: &Quota, cost: NonZeroU32) {
        self.release_now(key, quota, cost);
    }

    fn pause(&self, key: &K, quota: &Quota, delay: Duration) {
        let _ = self.pause_now(key, quota, delay);
    }
}

impl<K, C: fmt::Debug, S> fmt::Debug for KeyedStore<K, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len: usize = self.shards.iter().map(|s| read(&s.0).table.len()).sum();
        f.debug_struct("KeyedStore")
            .field("shards", &self.shards.len())
            .field("len", &len)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// A keyed GCRA rate limiter: one [`Quota`] applied to each key separately, over a
/// [`KeyedStore`].
///
/// # Example
///
/// ```
/// use std::net::IpAddr;
/// use std::num::NonZeroU32;
/// use resile_ratelimit::{KeyedRateLimiter, Quota};
///
/// let limiter = KeyedRateLimiter::new(Quota::per_minute(NonZeroU32::new(1).unwrap()));
/// let a: IpAddr = "192.0.2.1".parse().unwrap();
/// let b: IpAddr = "192.0.2.2".parse().unwrap();
/// assert!(limiter.check_key(&a).allowed);
/// assert!(!limiter.check_key(&a).allowed);
/// assert!(limiter.check_key(&b).allowed);
/// assert_eq!(limiter.len(), 2);
/// ```
pub struct KeyedRateLimiter<K, C = DefaultClock, S = RandomState> {
    quota: Quota,
    store: KeyedStore<K, C, S>,
}

impl<K: Hash + Eq> KeyedRateLimiter<K> {
    /// A limiter for `quota` over a default [`KeyedStore`].
    pub fn new(quota: Quota) -> Self {
        KeyedRateLimiter::with_store(quota, KeyedStore::new())
    }
}

impl<K, C, S> KeyedRateLimiter<K, C, S>
where
    K: Hash + Eq,
    C: Clock,
    S: BuildHasher,
{
    /// A limiter for `quota` over `store`.
    pub fn with_store(quota: Quota, store: KeyedStore<K, C, S>) -> Self {
        KeyedRateLimiter { quota, store }
    }

    /// The quota.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// The underlying store.
    pub fn store(&self) -> &KeyedStore<K, C, S> {
        &self.store
    }

    /// Takes one cell for `key` if it conforms now.
    #[inline]
    pub fn check_key<Q>(&self, key: &Q) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.store
            .take(key, &self.quota, self.quota.emission_interval_nanos(), 0)
    }

    /// Takes `n` cells for `key` if they all conform now (all or nothing).
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] if `n` exceeds the burst.
    pub fn check_key_n<Q>(&self, key: &Q, n: NonZeroU32) -> Result<Decision, InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.store.reserve_now(key, &self.quota, n, Duration::ZERO)
    }

    /// The number of keys held; see [`KeyedStore::len`].
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}

impl<K, C: fmt::Debug, S> fmt::Debug for KeyedRateLimiter<K, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("quota", &self.quota)
            .field("store", &self.store)
            .finish()
    }
}
