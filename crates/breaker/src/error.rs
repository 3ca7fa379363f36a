//! The errors of the breaker.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use resile_classify::{LocalRejection, RejectedBy};

/// The breaker refused the call: it is open (or half-open with every probe slot taken, or
/// forced open).
///
/// Returned as a `tower::BoxError` by [`CircuitBreaker`](crate::CircuitBreaker); downcast it with
/// `err.downcast_ref::<BreakerOpen>()` or test with `err.is::<BreakerOpen>()`.
///
/// Its [`source`](StdError::source) is [`LocalRejection`], the marker every resile layer
/// recognises: another breaker does not count it, and a retry layer does not retry it — unless
/// the retry has a deadline and the breaker's next probe comes before it (resile-retry waits
/// for the probe and tries again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BreakerOpen {
    until_probe: Option<Duration>,
    /// The marker in the source chain: it carries the time until the next probe when there is
    /// one ahead (not when probe slots are merely taken, nor when forced open).
    rejection: LocalRejection,
}

impl BreakerOpen {
    pub(crate) fn new(until_probe: Option<Duration>) -> Self {
        let rejection = match until_probe {
            Some(d) if !d.is_zero() => LocalRejection::passing_in(d),
            _ => LocalRejection::default(),
        }
        .by(RejectedBy::CircuitBreaker);
        BreakerOpen {
            until_probe,
            rejection,
        }
    }

    /// How long until the breaker lets a probe call through: the rest of the open period.
    ///
    /// `Some(Duration::ZERO)` when the breaker is half-open and every probe slot is taken (a
    /// slot frees as soon as a probe completes); `None` when the breaker was forced open by its
    /// handle and will not probe until it is reset.
    pub fn until_probe(&self) -> Option<Duration> {
        self.until_probe
    }

    /// Whether the breaker was forced open by its handle (no probe will come on its own).
    pub fn is_forced(&self) -> bool {
        self.until_probe.is_none()
    }
}

impl fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.until_probe {
            None => f.write_str("circuit breaker is forced open"),
            Some(d) if d.is_zero() => {
                f.write_str("circuit breaker is half-open and its probe slots are taken")
            }
            Some(d) => write!(f, "circuit breaker is open; next probe in {d:?}"),
        }
    }
}

impl StdError for BreakerOpen {
    /// A [`LocalRejection`]; while the breaker waits for its next probe, the rejection carries
    /// that wait ([`LocalRejection::passes_in`]), which a retry layer with a deadline uses.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.rejection)
    }
}

/// A configuration the breaker cannot run with.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BreakerConfigError {
    /// A consecutive-failures threshold of zero.
    ZeroFailures,
    /// A failure-rate threshold outside `(0, 1]` (or NaN).
    InvalidRate(f64),
    /// A count window of zero calls or more than 2^20.
    InvalidCountWindow(u32),
    /// A time window with zero or more than 128 buckets, or buckets shorter than 1 ms.
    InvalidTimeWindow {
        /// The window's length.
        length: Duration,
        /// Its number of buckets.
        buckets: u32,
    },
    /// Zero half-open probes, or more than 2^20 - 1.
    InvalidProbes(u32),
    /// Zero successes to close, or more than 2^20 - 1.
    InvalidCloseAfter(u32),
    /// Zero keys for a keyed breaker, or more than 2^24.
    InvalidCapacity(usize),
}

impl fmt::Display for BreakerConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakerConfigError::ZeroFailures => f.write_str("consecutive failures threshold must be >= 1"),
            BreakerConfigError::InvalidRate(r) => write!(f, "failure rate {r} is not in (0, 1]"),
            BreakerConfigError::InvalidCountWindow(n) => {
                write!(f, "count window of {n} calls is not in 1..=1048576")
            }
            BreakerConfigError::InvalidTimeWindow { length, buckets } => write!(
                f,
                "time window of {length:?} in {buckets} buckets: buckets must be 1..=128 and at least 1 ms each"
            ),
            BreakerConfigError::InvalidProbes(n) => {
                write!(f, "half-open probes {n} is not in 1..=1048575")
            }
            BreakerConfigError::InvalidCloseAfter(n) => {
                write!(f, "successes to close {n} is not in 1..=1048575")
            }
            BreakerConfigError::InvalidCapacity(n) => write!(f, "key capacity {n} is not in 1..=16777216"),
        }
    }
}

impl StdError for BreakerConfigError {}
