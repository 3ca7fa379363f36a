//! Counters of a Redis store.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a [`RedisStore`](super::RedisStore) has done since it was built, summed over its clones.
///
/// Read with [`RedisStore::metrics`](super::RedisStore::metrics). Every counter only grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RedisMetrics {
    /// Decisions Redis made (replies to the script, allowed or not; in leased mode, the lease
    /// calls among them).
    pub decisions: u64,
    /// Decisions made from a lease, without calling Redis (leased mode only).
    pub local_decisions: u64,
    /// Decisions the failure policy made instead of Redis (any policy but
    /// [`OnFailure::Error`](super::OnFailure::Error)): after an error, a timeout, or during the
    /// probe interval that follows one.
    pub fallbacks: u64,
    /// Calls to Redis that failed: errors and timeouts, of decisions and of the fire-and-forget
    /// `release` / `pause` updates.
    pub errors: u64,
    /// Of [`errors`](RedisMetrics::errors), those that were timeouts.
    pub timeouts: u64,
    /// `release` / `pause` updates Redis applied.
    pub updates: u64,
    /// `release` / `pause` updates not sent to Redis: no tokio runtime to run them on, or sent
    /// during a probe interval.
    pub dropped_updates: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) decisions: AtomicU64,
    pub(crate) local_decisions: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) updates: AtomicU64,
    pub(crate) dropped_updates: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> RedisMetrics {
        RedisMetrics {
            decisions: self.decisions.load(Ordering::Relaxed),
            local_decisions: self.local_decisions.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            updates: self.updates.load(Ordering::Relaxed),
            dropped_updates: self.dropped_updates.load(Ordering::Relaxed),
        }
    }
}
