//! Per-key breakers: one breaker per host (or any key taken from the request), in bounded memory.
//!
//! # The table
//!
//! A [`KeyedCircuitBreakerLayer`] holds a fixed table of `capacity` breakers (rounded up to a
//! power of two), allocated once. A request's key is hashed (SipHash with a random key per
//! table, so a remote party cannot aim keys at one place) and looked up among the 16 slots that
//! follow its hash, by comparing 64-bit hashes held in atomics: no lock, no allocation once the
//! key has its slot. Two distinct keys with the same 64-bit hash would share a breaker; with a
//! random hash key that takes about 2^32 keys to happen by chance.
//!
//! A new key takes an empty slot among its 16, else evicts one whose breaker is closed and was
//! not used since the last eviction scan passed it (a "second chance" clock), else any closed
//! one. Open, half-open, forced-open and disabled breakers are never evicted: the hosts that
//! fail are the ones to remember. When all 16 slots hold breakers that are not closed, the request passes unguarded
//! (it is not counted by any breaker) and [`KeyedHandle::overflow`] counts it: size the table
//! for the hosts you talk to.
//!
//! Placing a new key (hashing its name for logs, taking the slot's name lock) is the only slow
//! path; two requests placing the same new key at the same instant may place it twice, and the
//! extra slot then ages out like any idle key.
//!
//! A request whose key extractor finds no key (for [`ByAuthority`](crate::ByAuthority): no
//! authority in its URI and no valid `Host` header) also passes unguarded, and is not counted.
//!
//! # Readiness
//!
//! The key is only known in `call`, so `poll_ready` polls the inner service whatever the state
//! of the breakers, and `call` either passes the request or returns an immediate
//! [`BreakerOpen`](crate::BreakerOpen) error.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use resile_classify::{Classifier, KeyExtractor};
use tower_layer::Layer;
use tower_service::Service;

use crate::clock::Ticker;
use crate::error::BreakerConfigError;
use crate::future::{Guard, ResponseFuture};
use crate::handle::{Metrics, Subscription, Transition};
use crate::policy::{CircuitBreakerBuilder, ClassifyOutcome};
use crate::shared::{Breaker, Shared};
use crate::state::{Core, State};
use crate::BoxError;

/// How many slots a key may live in.
const PROBE: usize = 16;
/// The largest table.
const MAX_CAPACITY: usize = 1 << 24;
/// Slot hash values with a meaning: empty, and being taken over.
const EMPTY: u64 = 0;
const CLAIMING: u64 = 1;

/// The key side of a keyed breaker's table.
pub(crate) struct KeyTable {
    hashes: Box<[AtomicU64]>,
    referenced: Box<[AtomicBool]>,
    names: Box<[Mutex<Option<Arc<str>>>]>,
    hasher: RandomState,
    mask: usize,
    probe: usize,
    overflow: AtomicU64,
}

impl KeyTable {
    fn new(capacity: usize) -> Self {
        KeyTable {
            hashes: (0..capacity).map(|_| AtomicU64::new(EMPTY)).collect(),
            referenced: (0..capacity).map(|_| AtomicBool::new(false)).collect(),
            names: (0..capacity).map(|_| Mutex::new(None)).collect(),
            hasher: RandomState::new(),
            mask: capacity - 1,
            probe: PROBE.min(capacity),
            overflow: AtomicU64::new(0),
        }
    }

    pub(crate) fn name(&self, slot: usize) -> Option<Arc<str>> {
        lock(&self.names[slot]).clone()
    }

    #[inline]
    fn hash<K: Hash>(&self, key: &K) -> u64 {
        let v = self.hasher.hash_one(key);
        if v <= CLAIMING {
            v + 2
        } else {
            v
        }
    }

    /// The slot of hash `h`, if the key has one.
    #[inline]
    fn find(&self, h: u64) -> Option<usize> {
        let start = h as usize & self.mask;
        for i in 0..self.probe {
            let idx = (start + i) & self.mask;
            if self.hashes[idx].load(Ordering::Acquire) == h {
                if !self.referenced[idx].load(Ordering::Relaxed) {
                    self.referenced[idx].store(true, Ordering::Relaxed);
                }
                return Some(idx);
            }
        }
        None
    }

    /// Gives hash `h` a slot: an empty one, else an idle closed one, else any closed one.
    fn place(&self, h: u64, slots: &[Core], name: impl FnOnce() -> Arc<str>) -> Option<usize> {
        let start = h as usize & self.mask;
        let mut name = Some(name);
        let mut claim = |idx: usize, from: u64| -> Option<usize> {
            if self.hashes[idx]
                .compare_exchange(from, CLAIMING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return None;
            }
            // Outcomes of the evicted key's calls still in flight carry the old epoch: the reset
            // makes the breaker ignore them.
            let _ = slots[idx].reset();
            *lock(&self.names[idx]) = name.take().map(|f| f());
            self.referenced[idx].store(true, Ordering::Relaxed);
            self.hashes[idx].store(h, Ordering::Release);
            Some(idx)
        };
        for i in 0..self.probe {
            let idx = (start + i) & self.mask;
            match self.hashes[idx].load(Ordering::Acquire) {
                cur if cur == h => return Some(idx),
                EMPTY => {
                    if let Some(idx) = claim(idx, EMPTY) {
                        return Some(idx);
                    }
                }
                _ => {}
            }
        }
        for second_chance in [true, false] {
            for i in 0..self.probe {
                let idx = (start + i) & self.mask;
                let cur = self.hashes[idx].load(Ordering::Acquire);
                if cur == h {
                    return Some(idx);
                }
                if cur == CLAIMING || slots[idx].state() != State::Closed {
                    continue;
                }
                if second_chance && self.referenced[idx].swap(false, Ordering::Relaxed) {
                    continue;
                }
                if let Some(idx) = claim(idx, cur) {
                    return Some(idx);
                }
            }
        }
        self.overflow.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// The slot of the key named `name`; an exact match first, else one that differs only in
    /// ASCII case (host names are case-insensitive).
    fn slot_named(&self, name: &str) -> Option<usize> {
        let find = |same: &dyn Fn(&str) -> bool| {
            (0..self.hashes.len()).find(|&i| {
                self.hashes[i].load(Ordering::Acquire) > CLAIMING
                    && lock(&self.names[i]).as_deref().is_some_and(same)
            })
        };
        find(&|n| n == name).or_else(|| find(&|n| n.eq_ignore_ascii_case(name)))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wraps services in a [`KeyedCircuitBreaker`]: one breaker per key, all with the same policy.
///
/// Like [`CircuitBreakerLayer`](crate::CircuitBreakerLayer), the layer owns its table of
/// breakers and every service it wraps shares it. See the [module docs](self) for how keys
/// are placed and evicted.
///
/// ```
/// use resile_breaker::{ByAuthority, CircuitBreakerLayer};
///
/// let layer = CircuitBreakerLayer::builder()
///     .consecutive_failures(3)
///     .build_keyed(ByAuthority, 1024)
///     .unwrap();
/// let handle = layer.handle();
/// assert_eq!(handle.capacity(), 1024);
/// ```
pub struct KeyedCircuitBreakerLayer<K, C = Classifier> {
    breaker: Arc<Breaker<C>>,
    keys: K,
}

impl<K: Clone, C> Clone for KeyedCircuitBreakerLayer<K, C> {
    fn clone(&self) -> Self {
        KeyedCircuitBreakerLayer {
            breaker: self.breaker.clone(),
            keys: self.keys.clone(),
        }
    }
}

impl<K: fmt::Debug, C: fmt::Debug> fmt::Debug for KeyedCircuitBreakerLayer<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreakerLayer")
            .field("breakers", &self.breaker.shared)
            .field("keys", &self.keys)
            .field("classifier", &self.breaker.classifier)
            .finish()
    }
}

impl<C> CircuitBreakerBuilder<C> {
    /// Builds a keyed layer: one breaker per key taken by `keys`, at most `capacity` breakers
    /// (rounded up to a power of two), all allocated now.
    ///
    /// # Errors
    ///
    /// Those of [`build`](Self::build), and [`BreakerConfigError::InvalidCapacity`] for a capacity of 0
    /// or above 2^24.
    pub fn build_keyed<K>(
        mut self,
        keys: K,
        capacity: usize,
    ) -> Result<KeyedCircuitBreakerLayer<K, C>, BreakerConfigError>
    where
        C: Send + Sync + 'static,
    {
        let (policy, spec) = self.check()?;
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(BreakerConfigError::InvalidCapacity(capacity));
        }
        let capacity = capacity.next_power_of_two();
        let slots: Box<[Core]> = (0..capacity)
            .map(|_| {
                let (backoff, first) = self.make_backoff();
                Core::new(spec.make(), backoff, first)
            })
            .collect();
        let ticker = Ticker::new(self.take_clock());
        let shared = Shared::new(
            policy,
            slots,
            ticker,
            self.name,
            self.listeners,
            Some(KeyTable::new(capacity)),
        );
        Ok(KeyedCircuitBreakerLayer {
            breaker: Arc::new(Breaker {
                shared: Arc::new(shared),
                classifier: self.classifier,
            }),
            keys,
        })
    }
}

impl<K, C> KeyedCircuitBreakerLayer<K, C> {
    /// The handle of this layer's breakers.
    pub fn handle(&self) -> KeyedHandle {
        KeyedHandle {
            shared: self.breaker.shared.clone(),
        }
    }
}

impl<S, K: Clone, C> Layer<S> for KeyedCircuitBreakerLayer<K, C> {
    type Service = KeyedCircuitBreaker<S, K, C>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedCircuitBreaker {
            inner,
            breaker: self.breaker.clone(),
            keys: self.keys.clone(),
        }
    }
}

/// A breaker per key in front of a service; built by a [`KeyedCircuitBreakerLayer`].
pub struct KeyedCircuitBreaker<S, K, C = Classifier> {
    inner: S,
    breaker: Arc<Breaker<C>>,
    keys: K,
}

impl<S: fmt::Debug, K: fmt::Debug, C> fmt::Debug for KeyedCircuitBreaker<S, K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreaker")
            .field("inner", &self.inner)
            .field("keys", &self.keys)
            .field("breakers", &self.breaker.shared)
            .finish()
    }
}

impl<S: Clone, K: Clone, C> Clone for KeyedCircuitBreaker<S, K, C> {
    fn clone(&self) -> Self {
        KeyedCircuitBreaker {
            inner: self.inner.clone(),
            breaker: self.breaker.clone(),
            keys: self.keys.clone(),
        }
    }
}

impl<S, K, C> KeyedCircuitBreaker<S, K, C> {
    /// The breakers' handle.
    pub fn handle(&self) -> KeyedHandle {
        KeyedHandle {
            shared: self.breaker.shared.clone(),
        }
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

impl<S, K, C, Req, Res> Service<Req> for KeyedCircuitBreaker<S, K, C>
where
    S: Service<Req, Response = Res>,
    S::Error: Into<BoxError>,
    K: KeyExtractor<Req>,
    K::Key: Hash + fmt::Display,
    C: ClassifyOutcome<Res>,
{
    type Response = Res;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &self.breaker.shared;
        let Some(table) = shared.keys.as_ref() else {
            return ResponseFuture::unguarded(self.inner.call(req));
        };
        let Some(key) = self.keys.extract(&req) else {
            return ResponseFuture::unguarded(self.inner.call(req));
        };
        let h = table.hash(&key);
        let slot = match table.find(h) {
            Some(slot) => Some(slot),
            None => table.place(h, &shared.slots, || key.to_string().into()),
        };
        let Some(slot) = slot else {
            return ResponseFuture::unguarded(self.inner.call(req));
        };
        let admitted = match shared.closed_permit(slot) {
            Some(permit) => Ok(permit),
            None => shared.admit(slot),
        };
        match admitted {
            Err(open) => {
                shared.rejected();
                ResponseFuture::refused(open)
            }
            Ok(permit) => {
                let fut = self.inner.call(req);
                ResponseFuture::called(fut, Guard::new(self.breaker.clone(), slot, permit))
            }
        }
    }
}

/// The handle of a keyed breaker: metrics of all keys, state and control of each.
///
/// Keys are addressed by their name: the key's `Display` when it got its breaker (for
/// [`ByAuthority`](crate::ByAuthority), `host:port` as first seen). A lookup matches a name
/// exactly, else without regard to ASCII case (host names are case-insensitive). Lookups by name
/// scan the table: they are for operators, not for the request path.
#[derive(Clone)]
pub struct KeyedHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for KeyedHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyedHandle").field(&self.shared).finish()
    }
}

impl KeyedHandle {
    fn table(&self) -> Option<&KeyTable> {
        self.shared.keys.as_ref()
    }

    /// The counters, summed over every key.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics()
    }

    /// How many breakers the table holds.
    pub fn capacity(&self) -> usize {
        self.shared.slots.len()
    }

    /// Calls that passed unguarded because their key found no slot.
    pub fn overflow(&self) -> u64 {
        self.table()
            .map_or(0, |t| t.overflow.load(Ordering::Relaxed))
    }

    /// Every key that has a breaker, with its state.
    pub fn keys(&self) -> Vec<(Arc<str>, State)> {
        let Some(t) = self.table() else {
            return Vec::new();
        };
        (0..t.hashes.len())
            .filter(|&i| t.hashes[i].load(Ordering::Acquire) > CLAIMING)
            .filter_map(|i| t.name(i).map(|n| (n, self.shared.slots[i].state())))
            .collect()
    }

    /// The state of the breaker of key `name`, if it has one.
    pub fn state(&self, name: &str) -> Option<State> {
        let slot = self.table()?.slot_named(name)?;
        Some(self.shared.slots[slot].state())
    }

    fn control(&self, name: &str, f: impl FnOnce(&Core) -> Option<crate::state::Change>) -> bool {
        let Some(slot) = self.table().and_then(|t| t.slot_named(name)) else {
            return false;
        };
        if let Some(change) = f(&self.shared.slots[slot]) {
            self.shared.emit(slot, change);
        }
        true
    }

    /// Forces the breaker of key `name` open; returns whether the key has a breaker. An open
    /// breaker is never evicted, so the key stays open until [`reset`](Self::reset).
    pub fn force_open(&self, name: &str) -> bool {
        self.control(name, Core::force_open)
    }

    /// Disables the breaker of key `name`; returns whether the key has a breaker. Like an open
    /// one, a disabled breaker is not evicted until [`reset`](Self::reset).
    pub fn disable(&self, name: &str) -> bool {
        self.control(name, Core::disable)
    }

    /// Resets the breaker of key `name` to closed; returns whether the key has a breaker.
    pub fn reset(&self, name: &str) -> bool {
        self.control(name, Core::reset)
    }

    /// Calls `f` on every transition of any key (the key is in [`Transition::key`]).
    pub fn on_transition<F>(&self, f: F) -> Subscription
    where
        F: Fn(&Transition) + Send + Sync + 'static,
    {
        Subscription(self.shared.subscribe(Arc::new(f)))
    }

    /// Removes a listener; returns whether it was there.
    pub fn unsubscribe(&self, subscription: Subscription) -> bool {
        self.shared.unsubscribe(subscription.0)
    }
}
