//! Clocks: where resile's layers read "now".
//!
//! One [`Clock`] trait for every piece that keeps time: the circuit breaker (open periods, time
//! windows), the rate limiters (GCRA arrival times), and anything a user plugs in. A clock
//! returns nanoseconds since its own epoch (the moment it was created), monotonic and
//! non-decreasing.
//!
//! - [`TokioClock`] reads `tokio::time::Instant`, which follows tokio's paused test clock
//!   (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`) and reads the system's
//!   monotonic clock otherwise. The default of the breaker and of the client rate limiter, so
//!   that every part of a client stack, its timers included, moves with tokio's clock in tests.
//! - [`MonotonicClock`] reads `std::time::Instant`.
//! - [`ManualClock`] is moved by hand, for tests and simulations.
//! - `QuantaClock` (feature `quanta`) reads the CPU's time-stamp counter: the cheapest exact
//!   clock to read, for hot paths that do not need tokio's paused clock.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A source of monotonic time in nanoseconds since the clock's epoch.
///
/// Implementations must never go backwards (a reading that did would only make a limiter
/// stricter, never let more through, and a breaker's open period longer).
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds elapsed since this clock's epoch.
    fn now(&self) -> u64;
}

/// `d` in nanoseconds, saturating at `u64::MAX` (584 years).
#[inline]
pub fn nanos(d: Duration) -> u64 {
    // Saturates after 584 years.
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

/// The standard monotonic clock (`std::time::Instant`), epoch at creation.
///
/// Clones share the epoch, so readings of clones are comparable.
#[derive(Clone, Copy)]
pub struct MonotonicClock {
    epoch: Instant,
}

impl MonotonicClock {
    /// A clock whose epoch is now.
    pub fn new() -> MonotonicClock {
        MonotonicClock {
            epoch: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock::new()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.epoch))
    }
}

impl fmt::Debug for MonotonicClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonotonicClock")
            .field("now", &Duration::from_nanos(self.now()))
            .finish()
    }
}

/// tokio's clock (`tokio::time::Instant`), epoch at creation.
///
/// Under a paused runtime (`tokio::time::pause`, `#[tokio::test(start_paused = true)]`) it moves
/// only when tokio's time does, which keeps a limiter and the timers that wait on it in step.
/// Outside a runtime it reads the system's monotonic clock.
#[derive(Clone, Copy)]
pub struct TokioClock {
    epoch: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose epoch is now.
    pub fn new() -> TokioClock {
        TokioClock {
            epoch: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    #[inline]
    fn now(&self) -> u64 {
        nanos(tokio::time::Instant::now().saturating_duration_since(self.epoch))
    }
}

impl fmt::Debug for TokioClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioClock")
            .field("now", &Duration::from_nanos(self.now()))
            .finish()
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use resile_classify::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let other = clock.clone();
/// clock.advance(Duration::from_millis(5));
/// assert_eq!(other.now(), 5_000_000);
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading zero.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves the clock forward by `by` (saturating at `u64::MAX` ns).
    pub fn advance(&self, by: Duration) {
        self.advance_nanos(nanos(by));
    }

    /// Moves the clock forward by `by` nanoseconds (saturating).
    pub fn advance_nanos(&self, by: u64) {
        let _ = self
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(by))
            });
    }

    /// Sets the clock to `at` since its epoch, if that is not earlier than its reading (a clock
    /// never goes back; an earlier value is ignored).
    pub fn set(&self, at: Duration) {
        self.now.fetch_max(nanos(at), Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &Duration::from_nanos(self.now()))
            .finish()
    }
}

impl<C: Clock> Clock for Arc<C> {
    #[inline]
    fn now(&self) -> u64 {
        (**self).now()
    }
}

/// A clock on the CPU's time-stamp counter (via [`quanta`], feature `quanta`), epoch at
/// creation.
///
/// The default of resile-ratelimit's direct and keyed limiters: reading it costs a `rdtsc` and a multiply, about 2.5 times less than
/// `Instant::now` (a vDSO `clock_gettime`) on the machines measured in `docs/benchmarks.md`, and
/// it stays exact, unlike a cached "coarse" clock refreshed by a background thread (cheaper
/// still to read, but stale by up to its refresh period, which would let a limiter admit
/// `rate × staleness` more than its quota over a window). quanta checks at run time for an
/// invariant, synchronised counter and otherwise reads the OS monotonic clock.
///
/// The first `QuantaClock` of a process calibrates the counter against the OS clock, which
/// takes a few milliseconds (at most 200 ms), once.
#[cfg(feature = "quanta")]
#[derive(Clone)]
pub struct QuantaClock {
    clock: quanta::Clock,
    epoch: u64,
}

#[cfg(feature = "quanta")]
impl QuantaClock {
    /// A clock whose epoch is now.
    pub fn new() -> QuantaClock {
        let clock = quanta::Clock::new();
        let epoch = clock.raw();
        QuantaClock { clock, epoch }
    }
}

#[cfg(feature = "quanta")]
impl Default for QuantaClock {
    fn default() -> Self {
        QuantaClock::new()
    }
}

#[cfg(feature = "quanta")]
impl Clock for QuantaClock {
    #[inline]
    fn now(&self) -> u64 {
        // Zero (not a wrapped value) should a core's counter read behind the epoch.
        self.clock.delta_as_nanos(self.epoch, self.clock.raw())
    }
}

#[cfg(feature = "quanta")]
impl fmt::Debug for QuantaClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuantaClock")
            .field("now", &Duration::from_nanos(self.now()))
            .finish()
    }
}
