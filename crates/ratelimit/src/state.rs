//! The lock-free state of one key: its TAT in one `AtomicU64`, updated by a CAS loop.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering};

use crate::gcra::Quota;

/// One key's theoretical arrival time, in nanoseconds of its store's clock. Zero (or any value
/// not after `now`) is a full bucket.
///
/// Every operation is a single atomic read-modify-write on this one word (a CAS loop or a
/// `fetch_max`), so concurrent callers are linearised: the admitted set is exactly what a
/// sequential GCRA would admit in the order the CASes land. Orderings are `Relaxed`: the TAT
/// publishes no other memory, and read-modify-writes of one location are totally ordered
/// whatever their ordering.
#[derive(Default)]
pub(crate) struct Tat(AtomicU64);

impl Tat {
    #[cfg(not(loom))]
    pub(crate) const fn new(tat: u64) -> Tat {
        Tat(AtomicU64::new(tat))
    }

    #[cfg(loom)]
    pub(crate) fn new(tat: u64) -> Tat {
        Tat(AtomicU64::new(tat))
    }

    /// The raw TAT.
    #[inline]
    pub(crate) fn load(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Takes `cost` ns of cells at `now` if they conform within `max_wait` ns: `Ok(new_tat)`, or
    /// `Err(base)` (`max(tat, now)` as it was seen) with no change.
    #[inline]
    pub(crate) fn acquire(
        &self,
        quota: &Quota,
        now: u64,
        cost: u64,
        max_wait: u64,
    ) -> Result<u64, u64> {
        let mut tat = self.0.load(Ordering::Relaxed);
        loop {
            let new_tat = quota.step(tat, now, cost, max_wait)?;
            match self
                .0
                .compare_exchange_weak(tat, new_tat, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(new_tat),
                Err(actual) => tat = actual,
            }
        }
    }

    /// Gives back `cost` ns of cells taken earlier and never used.
    #[inline]
    pub(crate) fn release(&self, cost: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tat| {
                Some(tat.saturating_sub(cost))
            });
    }

    /// Pushes the TAT to at least `floor` (a pause); returns the TAT after.
    #[inline]
    pub(crate) fn raise_to(&self, floor: u64) -> u64 {
        self.0.fetch_max(floor, Ordering::Relaxed).max(floor)
    }
}

impl std::fmt::Debug for Tat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tat({}ns)", self.load())
    }
}
