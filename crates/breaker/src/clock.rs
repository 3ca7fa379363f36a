//! Where the breaker reads "now".
//!
//! The breaker reads its clock only when it has to: to see whether an open period is over, on a
//! transition (to compute when the open period ends), and on every recorded call of a
//! time-based failure-rate window. The closed path of the consecutive-failures and count-window
//! policies never reads it.

pub use resile_classify::clock::{Clock, TokioClock};
use std::fmt;

/// A shared clock with its origin: the breaker keeps times as milliseconds since `origin`.
pub(crate) struct Ticker {
    clock: Box<dyn Clock>,
    origin: u64,
}

impl Ticker {
    pub(crate) fn new(clock: Box<dyn Clock>) -> Self {
        let origin = clock.now();
        Ticker { clock, origin }
    }

    /// Milliseconds since the origin.
    #[inline]
    pub(crate) fn now(&self) -> Tick {
        let ns = self.clock.now().saturating_sub(self.origin);
        let floor = ns / 1_000_000;
        let ceil = floor + u64::from(!ns.is_multiple_of(1_000_000));
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
