//! One key: the direct limiter and its store.

use std::future::{ready, Ready};
use std::num::NonZeroU32;
use std::time::Duration;

use crate::clock::{nanos, Clock, DefaultClock};
use crate::gcra::{Decision, InsufficientCapacity, Quota};
use crate::state::Tat;
use crate::store::{Store, StoreError};

/// Aligns its content to a cache line pair, so that a hot atomic does not share its line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// The in-memory state of a single rate-limited key: one `AtomicU64` and a clock.
///
/// Implements [`Store<()>`](Store); [`RateLimiter`] pairs it with a quota for synchronous use.
#[derive(Debug, Default)]
pub struct MemoryStore<C = DefaultClock> {
    tat: Padded<Tat>,
    clock: C,
}

impl MemoryStore<DefaultClock> {
    /// A store on the [`DefaultClock`].
    pub fn new() -> Self {
        MemoryStore::with_clock(DefaultClock::new())
    }
}

impl<C: Clock> MemoryStore<C> {
    /// A store on `clock`.
    pub fn with_clock(clock: C) -> Self {
        MemoryStore {
            tat: Padded(Tat::new(0)),
            clock,
        }
    }

    /// The store's clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Synchronous [`Store::reserve`].
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] if `cost` exceeds `quota`'s burst.
    #[inline]
    pub fn reserve_now(
        &self,
        quota: &Quota,
        cost: NonZeroU32,
        max_wait: Duration,
    ) -> Result<Decision, InsufficientCapacity> {
        let cost = quota.cost_nanos(cost)?;
        Ok(self.take(quota, cost, nanos(max_wait)))
    }

    #[inline]
    fn take(&self, quota: &Quota, cost: u64, max_wait: u64) -> Decision {
        let now = self.clock.now();
        match self.tat.0.acquire(quota, now, cost, max_wait) {
            Ok(new_tat) => quota.admitted(new_tat, now),
            Err(base) => quota.refused(base, now, cost),
        }
    }

    /// Synchronous [`Store::release`].
    pub fn release_now(&self, quota: &Quota, cost: NonZeroU32) {
        if let Ok(cost) = quota.cost_nanos(cost) {
            self.tat.0.release(cost);
        }
    }

    /// Synchronous [`Store::pause`]; returns the state after it (for one cell).
    pub fn pause_now(&self, quota: &Quota, delay: Duration) -> Decision {
        let now = self.clock.now();
        let tat = self.tat.0.raise_to(quota.paused_tat(0, now, nanos(delay)));
        quota.snapshot(tat, now)
    }

    /// The state for one cell at this moment, without taking anything.
    pub fn peek(&self, quota: &Quota) -> Decision {
        quota.snapshot(self.tat.0.load(), self.clock.now())
    }
}

impl<C: Clock> Store<()> for MemoryStore<C> {
    type Future = Ready<Result<Decision, StoreError>>;

    #[inline]
    fn reserve(
        &self,
        _key: &(),
        quota: &Quota,
        cost: NonZeroU32,
        max_wait: Duration,
    ) -> Self::Future {
        ready(
            self.reserve_now(quota, cost, max_wait)
                .map_err(StoreError::from),
        )
    }

    fn release(&self, _key: &(), quota: &Quota, cost: NonZeroU32) {
        self.release_now(quota, cost);
    }

    fn pause(&self, _key: &(), quota: &Quota, delay: Duration) {
        let _ = self.pause_now(quota, delay);
    }
}

/// A direct (single-key) GCRA rate limiter: a [`Quota`] and a [`MemoryStore`].
///
/// `check` is one clock read and one CAS on one `AtomicU64`: no lock, no allocation. Share it
/// through an `Arc`.
///
/// # Example
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use resile_ratelimit::{clock::ManualClock, Quota, RateLimiter};
///
/// let clock = ManualClock::new();
/// let limiter = RateLimiter::with_clock(Quota::per_second(NonZeroU32::new(2).unwrap()), clock.clone());
/// assert!(limiter.check().allowed);
/// assert!(limiter.check().allowed);
/// let refused = limiter.check();
/// assert!(!refused.allowed);
/// assert_eq!(refused.retry_after, Duration::from_millis(500));
/// clock.advance(Duration::from_millis(500));
/// assert!(limiter.check().allowed);
/// ```
#[derive(Debug)]
pub struct RateLimiter<C = DefaultClock> {
    quota: Quota,
    store: MemoryStore<C>,
}

impl RateLimiter<DefaultClock> {
    /// A limiter for `quota` on the [`DefaultClock`].
    pub fn new(quota: Quota) -> Self {
        RateLimiter::with_clock(quota, DefaultClock::new())
    }
}

impl<C: Clock> RateLimiter<C> {
    /// A limiter for `quota` on `clock`.
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        RateLimiter {
            quota,
            store: MemoryStore::with_clock(clock),
        }
    }

    /// The quota.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// The underlying store.
    pub fn store(&self) -> &MemoryStore<C> {
        &self.store
    }

    /// Takes one cell if it conforms now.
    #[inline]
    pub fn check(&self) -> Decision {
        self.store
            .take(&self.quota, self.quota.emission_interval_nanos(), 0)
    }

    /// Takes `n` cells at once if they all conform now (all or nothing).
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] if `n` exceeds the burst: such a request can never conform.
    #[inline]
    pub fn check_n(&self, n: NonZeroU32) -> Result<Decision, InsufficientCapacity> {
        self.store.reserve_now(&self.quota, n, Duration::ZERO)
    }

    /// Reserves `n` cells at the earliest moment they conform, if that is within `max_wait`; see
    /// [`Store::reserve`].
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] if `n` exceeds the burst.
    pub fn reserve(
        &self,
        n: NonZeroU32,
        max_wait: Duration,
    ) -> Result<Decision, InsufficientCapacity> {
        self.store.reserve_now(&self.quota, n, max_wait)
    }

    /// Gives back `n` cells taken and never used.
    pub fn release(&self, n: NonZeroU32) {
        self.store.release_now(&self.quota, n);
    }

    /// Admits nothing until `delay` from now; see [`Store::pause`].
    pub fn pause(&self, delay: Duration) -> Decision {
        self.store.pause_now(&self.quota, delay)
    }

    /// The state for one cell at this moment, without taking anything.
    pub fn peek(&self) -> Decision {
        self.store.peek(&self.quota)
    }
}
