//! What every clone of a breaker service and its handle share: the state machine(s), the
//! policy, the clock, the metrics and the transition listeners.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::clock::Ticker;
use crate::error::BreakerOpen;
use crate::handle::{Metrics, Transition};
use crate::keyed::KeyTable;
use crate::state::{Change, Core, Permit, Policy, State, Verdict};

/// A transition listener.
pub(crate) type Listener = Arc<dyn Fn(&Transition) + Send + Sync>;

/// Metric counters, exact: one atomic add per recorded call. On cache lines of their own, so
/// that their writes do not slow the reads of the breaker's other fields on every call.
#[derive(Default)]
#[repr(align(128))]
struct Counters {
    successes: AtomicU64,
    failures: AtomicU64,
    neutral: AtomicU64,
    cancelled: AtomicU64,
    rejections: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A breaker as its services and their futures hold it: the shared state and the classifier.
pub(crate) struct Breaker<C> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) classifier: C,
}

pub(crate) struct Shared {
    pub(crate) policy: Policy,
    pub(crate) slots: Box<[Core]>,
    pub(crate) ticker: Ticker,
    counters: Counters,
    listeners: RwLock<Vec<(u64, Listener)>>,
    next_listener: AtomicU64,
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
            counters: Counters::default(),
            listeners: RwLock::new((0..).zip(listeners).collect()),
            next_listener: AtomicU64::new(n),
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
        slot: usize,
        permit: Permit,
        verdict: Verdict,
        hint: impl FnOnce() -> Option<Duration>,
    ) {
        bump(match verdict {
            Verdict::Success => &self.counters.successes,
            Verdict::Failure => &self.counters.failures,
            Verdict::Neutral => &self.counters.neutral,
        });
        let change =
            self.slots[slot].record(&self.policy, permit, verdict, hint, || self.ticker.now());
        if let Some(change) = change {
            self.emit(slot, change);
        }
    }

    /// A call admitted by `permit` was cancelled before it completed.
    pub(crate) fn cancel(&self, slot: usize, permit: Permit) {
        bump(&self.counters.cancelled);
        self.slots[slot].release(permit);
    }

    /// A call was rejected.
    pub(crate) fn rejected(&self) {
        bump(&self.counters.rejections);
    }

    /// A permit reserved by `poll_ready` was never used.
    pub(crate) fn unreserve(&self, slot: usize, permit: Permit) {
        self.slots[slot].release(permit);
    }

    pub(crate) fn metrics(&self) -> Metrics {
        let c = &self.counters;
        let mut m = Metrics {
            successes: c.successes.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            neutral: c.neutral.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            rejections: c.rejections.load(Ordering::Relaxed),
            calls: 0,
        };
        m.calls = m.successes + m.failures + m.neutral + m.cancelled;
        m
    }

    pub(crate) fn until_probe(&self, slot: usize) -> Option<Duration> {
        self.slots[slot].until_probe(|| self.ticker.now())
    }

    pub(crate) fn subscribe(&self, f: Listener) -> u64 {
        let id = self.next_listener.fetch_add(1, Ordering::Relaxed);
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

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
