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

    /// Whole milliseconds since the origin (rounded down).
    #[inline]
    pub(crate) fn now_ms(&self) -> u64 {
        let d = self.clock.now().saturating_duration_since(self.origin);
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clock")
            .field("origin", &self.origin)
            .finish()
    }
}
