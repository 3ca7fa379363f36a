//! The handle: read a breaker's state and metrics, force its state, subscribe to transitions.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::shared::Shared;
use crate::state::State;

/// A change of a breaker's state, as given to transition listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// For a transition to [`State::Open`]: how long the breaker stays open.
    pub open_for: Option<Duration>,
    /// The breaker's name, if it was given one.
    pub breaker: Option<Arc<str>>,
    /// For a keyed breaker: the key whose breaker changed.
    pub key: Option<Arc<str>>,
}

/// Counters of a breaker since it was built (never reset).
///
/// Each field is exact; a snapshot taken while calls complete reads the fields one after the
/// other, so `calls` may count a call whose outcome another field does not show yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Metrics {
    /// Admitted calls that finished or were cancelled:
    /// `successes + failures + neutral + cancelled`.
    pub calls: u64,
    /// Calls whose outcome counted as a success.
    pub successes: u64,
    /// Calls whose outcome counted as a failure.
    pub failures: u64,
    /// Calls whose outcome said nothing about the server's health (429, 408, local
    /// rejections of layers below by default).
    pub neutral: u64,
    /// Admitted calls whose future was dropped before it completed.
    pub cancelled: u64,
    /// Calls the breaker rejected.
    pub rejections: u64,
}

/// An identifier returned by [`BreakerHandle::on_transition`], to unsubscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subscription(pub(crate) u64);

/// A handle to one breaker: every service built from the same layer, and every clone of them,
/// shares the breaker this handle reads and controls.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct BreakerHandle {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for BreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BreakerHandle").field(&self.shared).finish()
    }
}

impl BreakerHandle {
    /// The current state.
    ///
    /// An open breaker whose open period is over reports [`State::Open`] until the next call
    /// turns it half-open.
    pub fn state(&self) -> State {
        self.shared.slots[0].state()
    }

    /// The counters.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics()
    }

    /// Time until the breaker lets a probe through: zero when it is not open, `None` when it is
    /// forced open. Reads the clock.
    pub fn until_probe(&self) -> Option<Duration> {
        self.shared.until_probe(0)
    }

    /// Opens the breaker until [`reset`](Self::reset): every call is rejected with a
    /// [`BreakerOpen`](crate::BreakerOpen) whose `until_probe()` is `None`.
    pub fn force_open(&self) {
        if let Some(c) = self.shared.slots[0].force_open() {
            self.shared.emit(0, c);
        }
    }

    /// Disables the breaker until [`reset`](Self::reset): every call passes and is counted in
    /// the metrics, nothing trips it.
    pub fn disable(&self) {
        if let Some(c) = self.shared.slots[0].disable() {
            self.shared.emit(0, c);
        }
    }

    /// Closes the breaker, empties its failure counts and restarts its open-period backoff.
    /// Outcomes of calls admitted before the reset are not counted.
    pub fn reset(&self) {
        if let Some(c) = self.shared.slots[0].reset() {
            self.shared.emit(0, c);
        }
    }

    /// Calls `f` on every transition, on the thread that caused it (keep it short; it must not
    /// block). Returns an id for [`unsubscribe`](Self::unsubscribe).
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
