//! Clocks: where a limiter reads "now".
//!
//! The [`Clock`] trait and the common clocks are resile-classify's ([`resile_classify::clock`]),
//! shared with the circuit breaker; this crate adds [`QuantaClock`], the default of its direct
//! and keyed limiters. Every store owns one clock; all TATs it keeps are in that clock's
//! nanoseconds.

use std::fmt;
use std::time::Duration;

pub use resile_classify::clock::{nanos, Clock, ManualClock, MonotonicClock, TokioClock};

/// The clock the in-memory stores use unless told otherwise.
pub type DefaultClock = QuantaClock;

/// A clock on the CPU's time-stamp counter (via [`quanta`]), epoch at creation.
///
/// Why it is the default: reading it costs a `rdtsc` and a multiply, about 2.5 times less than
/// `Instant::now` (a vDSO `clock_gettime`) on the machines measured in `docs/benchmarks.md`, and
/// it stays exact, unlike a cached "coarse" clock refreshed by a background thread (cheaper
/// still to read, but stale by up to its refresh period, which would let a limiter admit
/// `rate × staleness` more than its quota over a window). quanta checks at run time for an
/// invariant, synchronised counter and otherwise reads the OS monotonic clock.
///
/// The first `QuantaClock` of a process calibrates the counter against the OS clock, which
/// takes a few milliseconds (at most 200 ms), once.
#[derive(Clone)]
pub struct QuantaClock {
    clock: quanta::Clock,
    epoch: u64,
}

impl QuantaClock {
    /// A clock whose epoch is now.
    pub fn new() -> QuantaClock {
        let clock = quanta::Clock::new();
        let epoch = clock.raw();
        QuantaClock { clock, epoch }
    }
}

impl Default for QuantaClock {
    fn default() -> Self {
        QuantaClock::new()
    }
}

impl Clock for QuantaClock {
    #[inline]
    fn now(&self) -> u64 {
        // Zero (not a wrapped value) should a core's counter read behind the epoch.
        self.clock.delta_as_nanos(self.epoch, self.clock.raw())
    }
}

impl fmt::Debug for QuantaClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuantaClock")
            .field("now", &Duration::from_nanos(self.now()))
            .finish()
    }
}
