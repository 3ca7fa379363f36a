//! What every clone of a breaker service and its handle share: the state machine(s), the
//! policy, the clock, the metrics and the transition listeners.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64 as StdAtomicU64, AtomicUsize, Ordering as StdOrdering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::clock::Ticker;
use crate::error::BreakerOpen;
use crate::handle::{Metrics, Transition};
use crate::keyed::KeyTable;
use crate::state::{Change, Core, Permit, Policy, State, Verdict};

/// A transition listener.
pub(crate) type Listener = Arc<dyn Fn(&Transition) + Send + Sync>;

/// Metric counters striped over cache lines, one stripe per thread (round robin), so threads
/// counting outcomes of the same breaker do not write to the same line.
const STRIPES: usize = 16;

#[repr(align(128))]
#[derive(Default)]
struct Stripe {
    successes: StdAtomicU64,
    failures: StdAtomicU64,
    neutral: StdAtomicU64,
    cancelled: StdAtomicU64,
    rejections: StdAtomicU64,
}

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

#[inline]
fn stripe_index() -> usize {
    STRIPE
        .try_with(|s| {
            let i = s.get();
            if i != usize::MAX {
                i
            } else {
                let i = NEXT_STRIPE.fetch_add(1, StdOrdering::Relaxed) % STRIPES;
                s.set(i);
                i
            }
        })
        .unwrap_or(0)
}

pub(crate) struct Shared {
    pub(crate) policy: Policy,
    pub(crate) slots: Box<[Core]>,
    pub(crate) ticker: Ticker,
    stripes: Box<[Stripe]>,
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
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            listeners: RwLock::new((0..).zip(listeners).collect()),
            next_listener: StdAtomicU64::new(n),
            name,
            keys,
        }
    }

    /// Asks slot `slot` to admit a call.
    #[inline]
    pub(crate) fn admit(&self, slot: usize) -> Result<Permit, BreakerOpen> {
        let (result, change) = self.slots[slot].acquire(&self.policy, || self.ticker.now());
        if let Some(change) = change {
            self.emit(slot, change);
        }
        result.map_err(|r| BreakerOpen::new(r.until_probe))
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
        let stripe = &self.stripes[stripe_index()];
        let counter = match verdict {
            Verdict::Success => &stripe.successes,
            Verdict::Failure => &stripe.failures,
            Verdict::Neutral => &stripe.neutral,
        };
        counter.fetch_add(1, StdOrdering::Relaxed);
        let change =
            self.slots[slot].record(&self.policy, permit, verdict, hint, || self.ticker.now());
        if let Some(change) = change {
            self.emit(slot, change);
        }
    }

    /// A call admitted by `permit` was cancelled before it completed.
    pub(crate) fn cancel(&self, slot: usize, permit: Permit) {
        self.stripes[stripe_index()]
            .cancelled
            .fetch_add(1, StdOrdering::Relaxed);
        self.slots[slot].release(permit);
    }

    /// A permit reserved by `poll_ready` was never used.
    pub(crate) fn unreserve(&self, slot: usize, permit: Permit) {
        self.slots[slot].release(permit);
    }

    /// A call was rejected.
    #[inline]
    pub(crate) fn count_rejection(&self) {
        self.stripes[stripe_index()]
            .rejections
            .fetch_add(1, StdOrdering::Relaxed);
    }

    pub(crate) fn metrics(&self) -> Metrics {
        let mut m = Metrics::default();
        for s in self.stripes.iter() {
            m.successes += s.successes.load(StdOrdering::Relaxed);
            m.failures += s.failures.load(StdOrdering::Relaxed);
            m.neutral += s.neutral.load(StdOrdering::Relaxed);
            m.cancelled += s.cancelled.load(StdOrdering::Relaxed);
            m.rejections += s.rejections.load(StdOrdering::Relaxed);
        }
        m.calls = m.successes + m.failures + m.neutral + m.cancelled;
        m
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
