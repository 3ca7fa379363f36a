//! Where the breaker reads "now".
//!
//! The breaker reads its clock only when it has to: to see whether an open period is over, on a
//! transition (to compute when the open period ends), and on every recorded call of a
//! time-based failure-rate window. The closed path of the consecutive-failures and count-window
//! policies never reads it.

use std::fmt;
use std::time::Instant;

/// A monotonic clock.
///
/// Implemented for [`TokioClock`] (the default) and for any `Fn() -> Instant + Send + Sync`
/// closure, so tests and simulations can drive time by hand.
pub trait Clock: Send + Sync + 'static {
    /// The current instant. Must never go backwards.
    fn now(&self) -> Instant;
}

/// `tokio::time::Instant::now()`: the wall of monotonic time, which follows tokio's paused test
/// clock (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`) and falls back to
/// `std::time::Instant` outside a runtime.
///
/// # Default
///
/// The clock of every breaker unless [`clock`](crate::CircuitBreakerBuilder::clock) says
/// otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    #[inline]
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

impl<F> Clock for F
where
    F: Fn() -> Instant + Send + Sync + 'static,
{
    #[inline]
    fn now(&self) -> Instant {
        self()
    }
}

/// A shared clock with its origin: the breaker keeps times as milliseconds since `origin`.
pub(crate) struct Ticker {
    clock: Box<dyn Clock>,
    origin: Instant,
}

impl Ticker {
    pub(crate) fn new(clock: Box<dyn Clock>) -> Self {
        let origin = clock.now();
        Ticker { clock, origin }
    }

    /// Milliseconds since the origin.
    #[inline]
    pub(crate) fn now(&self) -> Tick {
        let d = self.clock.now().saturating_duration_since(self.origin);
        let floor = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let ceil = if d.subsec_nanos().is_multiple_of(1_000_000) {
            floor
        } else {
            floor.saturating_add(1)
        };
        Tick { floor, ceil }
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clock")
            .field("origin", &self.origin)
            .finish()
    }
}

/// A reading of the clock in milliseconds since its origin, rounded both ways: deadlines are
/// computed from the reading rounded up and checked against readings rounded down, so an open
/// period never ends early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tick {
    pub(crate) floor: u64,
    pub(crate) ceil: u64,
}

impl Tick {
    /// A reading that falls on a whole millisecond.
    #[cfg(test)]
    pub(crate) fn exact(ms: u64) -> Tick {
        Tick {
            floor: ms,
            ceil: ms,
        }
    }
}
