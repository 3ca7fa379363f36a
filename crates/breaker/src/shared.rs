//! What every clone of a breaker service and its handle share: the state machine(s), the
//! policy, the clock, the metrics and the transition listeners.

use std::fmt;
use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::clock::Ticker;
use crate::error::BreakerOpen;
use crate::handle::{Metrics, Transition};
use crate::keyed::KeyTable;
use crate::state::{Change, Core, Permit, Policy, State, Verdict};

/// A transition listener.
pub(crate) type Listener = Arc<dyn Fn(&Transition) + Send + Sync>;

/// Metric counters: one block per (thread, breaker), kept in the thread's cache (see
/// [`local`](crate::local)) and written only by its thread with a plain load and store (no
/// read-modify-write, no shared cache line); the handle reads them through the breaker's
/// registry of blocks.
/// Aligned to its own cache lines (two, for the adjacent-line prefetcher): a block is written on
/// every call by its thread and must not share a line with anything another thread touches.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    successes: StdAtomicU64,
    failures: StdAtomicU64,
    neutral: StdAtomicU64,
    cancelled: StdAtomicU64,
    rejections: StdAtomicU64,
}

impl Counters {
    fn add_to(&self, m: &mut Metrics) {
        m.successes += self.successes.load(StdOrdering::Relaxed);
        m.failures += self.failures.load(StdOrdering::Relaxed);
        m.neutral += self.neutral.load(StdOrdering::Relaxed);
        m.cancelled += self.cancelled.load(StdOrdering::Relaxed);
        m.rejections += self.rejections.load(StdOrdering::Relaxed);
    }
}

/// Adds one to a counter only this thread writes.
#[inline]
fn bump(c: &StdAtomicU64) {
    c.store(
        c.load(StdOrdering::Relaxed).wrapping_add(1),
        StdOrdering::Relaxed,
    );
}

impl Counters {
    #[inline]
    pub(crate) fn outcome(&self, verdict: Verdict) {
        bump(match verdict {
            Verdict::Success => &self.successes,
            Verdict::Failure => &self.failures,
            Verdict::Neutral => &self.neutral,
        })
    }

    #[inline]
    pub(crate) fn cancelled(&self) {
        bump(&self.cancelled)
    }

    #[inline]
    pub(crate) fn rejection(&self) {
        bump(&self.rejections)
    }
}

/// The blocks of one breaker: those of live threads, and the sum of those let go.
#[derive(Default)]
struct Registry {
    blocks: Vec<Arc<Counters>>,
    retired: Metrics,
}

pub(crate) struct Shared {
    pub(crate) policy: Policy,
    pub(crate) slots: Box<[Core]>,
    pub(crate) ticker: Ticker,
    registry: Mutex<Registry>,
    listeners: RwLock<Vec<(u64, Listener)>>,
    next_listener: StdAtomicU64,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) keys: Option<KeyTable>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Breaker");
        d.field("name", &self.name).field("policy", &self.policy);
        if self.keys.is_none() {
            d.field("state", &self.slots[0].state());
        } else {
            d.field("keys", &self.slots.len());
        }
        d.field("metrics", &self.metrics()).finish()
    }
}

impl Shared {
    pub(crate) fn new(
        policy: Policy,
        slots: Box<[Core]>,
        ticker: Ticker,
        name: Option<Arc<str>>,
        listeners: Vec<Listener>,
        keys: Option<KeyTable>,
    ) -> Self {
        let n = listeners.len() as u64;
        Shared {
            policy,
            slots,
            ticker,
            registry: Mutex::new(Registry::default()),
            listeners: RwLock::new((0..).zip(listeners).collect()),
            next_listener: StdAtomicU64::new(n),
            name,
            keys,
        }
    }

    /// A permit from slot `slot` if it is closed: the closed path of [`admit`](Shared::admit),
    /// one load; `None` otherwise (then call `admit`).
    #[inline]
    pub(crate) fn closed_permit(&self, slot: usize) -> Option<Permit> {
        self.slots.get(slot)?.closed_permit()
    }

    /// Asks slot `slot` to admit a call.
    #[inline]
    pub(crate) fn admit(&self, slot: usize) -> Result<Permit, BreakerOpen> {
        let (result, change) = self.slots[slot].acquire(&self.policy, || self.ticker.now());
        if let Some(change) = change {
            self.emit(slot, change);
        }
        match result {
            Ok(permit) => Ok(permit),
            Err(r) => Err(BreakerOpen::new(r.until_probe)),
        }
    }

    /// Records the outcome of a call admitted by `permit` on slot `slot`.
    #[inline]
    pub(crate) fn complete(
        &self,
        counters: &Counters,
        slot: usize,
        permit: Permit,
        verdict: Verdict,
        hint: impl FnOnce() -> Option<Duration>,
    ) {
        counters.outcome(verdict);
        let change =
            self.slots[slot].record(&self.policy, permit, verdict, hint, || self.ticker.now());
        if let Some(change) = change {
            self.emit(slot, change);
        }
    }

    /// A call admitted by `permit` was cancelled before it completed.
    pub(crate) fn cancel(&self, counters: &Counters, slot: usize, permit: Permit) {
        counters.cancelled();
        self.slots[slot].release(permit);
    }

    /// A permit reserved by `poll_ready` was never used.
    pub(crate) fn unreserve(&self, slot: usize, permit: Permit) {
        self.slots[slot].release(permit);
    }

    pub(crate) fn metrics(&self) -> Metrics {
        let registry = lock(&self.registry);
        let mut m = registry.retired;
        for block in &registry.blocks {
            block.add_to(&mut m);
        }
        drop(registry);
        m.calls = m.successes + m.failures + m.neutral + m.cancelled;
        m
    }

    /// A counter block registered with this breaker. Blocks no thread holds any more are summed
    /// into `retired` here, so the registry stays as small as the number of counting threads.
    #[cold]
    pub(crate) fn new_block(&self) -> Arc<Counters> {
        let block = Arc::new(Counters::default());
        let mut registry = lock(&self.registry);
        let Registry { blocks, retired } = &mut *registry;
        blocks.retain(|b| {
            if Arc::strong_count(b) == 1 {
                b.add_to(retired);
                false
            } else {
                true
            }
        });
        blocks.push(block.clone());
        block
    }

    pub(crate) fn until_probe(&self, slot: usize) -> Option<Duration> {
        self.slots[slot].until_probe(|| self.ticker.now())
    }

    pub(crate) fn subscribe(&self, f: Listener) -> u64 {
        let id = self.next_listener.fetch_add(1, StdOrdering::Relaxed);
        write(&self.listeners).push((id, f));
        id
    }

    pub(crate) fn unsubscribe(&self, id: u64) -> bool {
        let mut l = write(&self.listeners);
        let before = l.len();
        l.retain(|(i, _)| *i != id);
        l.len() != before
    }

    /// Reports a transition: a `tracing` event and every listener.
    #[cold]
    #[inline(never)]
    pub(crate) fn emit(&self, slot: usize, change: Change) {
        let key = self.keys.as_ref().and_then(|k| k.name(slot));
        let name = self.name.as_deref().unwrap_or("");
        let key_str = key.as_deref().unwrap_or("");
        match change.to {
            State::Open => tracing::warn!(
                target: "resile_breaker",
                breaker = name,
                key = key_str,
                from = change.from.as_str(),
                open_for_ms = change.open_for.map_or(0, |d| d.as_millis() as u64),
                "circuit breaker opened"
            ),
            State::Closed => tracing::info!(
                target: "resile_breaker",
                breaker = name,
                key = key_str,
                from = change.from.as_str(),
                "circuit breaker closed"
            ),
            to => tracing::info!(
                target: "resile_breaker",
                breaker = name,
                key = key_str,
                from = change.from.as_str(),
                to = to.as_str(),
                "circuit breaker changed state"
            ),
        }
        let listeners: Vec<Listener> = read(&self.listeners)
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        if listeners.is_empty() {
            return;
        }
        let t = Transition {
            from: change.from,
            to: change.to,
            open_for: change.open_for,
            breaker: self.name.clone(),
            key,
        };
        for l in listeners {
            l(&t);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
