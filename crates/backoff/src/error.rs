//! The error [`ExponentialBuilder::build`](crate::ExponentialBuilder::build) returns.

use std::fmt;
use std::time::Duration;

/// A configuration that [`ExponentialBuilder::build`](crate::ExponentialBuilder::build) refuses.
///
/// Every configuration the builder accepts is safe: no delay computation can overflow or panic
/// afterwards. Everything it refuses is listed here, checked in this order.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum BackoffConfigError {
    /// The multiplier is NaN or infinite.
    MultiplierNotFinite {
        /// The multiplier that was given.
        multiplier: f64,
    },
    /// The multiplier is below 1: the delays would shrink towards zero instead of backing off.
    MultiplierBelowOne {
        /// The multiplier that was given.
        multiplier: f64,
    },
    /// The initial delay is zero.
    ///
    /// Zero times any multiplier stays zero, and a decorrelated range `[0, 3 × 0]` is zero too:
    /// every retry would be immediate, which is the opposite of backing off. Use
    /// [`Constant::new(Duration::ZERO)`](crate::Constant::new) if immediate retries are meant.
    ZeroInitial,
    /// `max_delay` is shorter than the initial delay.
    MaxDelayBelowInitial {
        /// The initial delay that was given.
        initial: Duration,
        /// The cap that was given.
        max_delay: Duration,
    },
}

impl fmt::Display for BackoffConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackoffConfigError::MultiplierNotFinite { multiplier } => {
                write!(f, "backoff multiplier must be finite, got {multiplier}")
            }
            BackoffConfigError::MultiplierBelowOne { multiplier } => {
                write!(f, "backoff multiplier must be at least 1, got {multiplier}")
            }
            BackoffConfigError::ZeroInitial => {
                f.write_str("initial backoff delay must not be zero")
            }
            BackoffConfigError::MaxDelayBelowInitial { initial, max_delay } => write!(
                f,
                "max_delay ({max_delay:?}) must not be shorter than the initial delay ({initial:?})"
            ),
        }
    }
}

impl std::error::Error for BackoffConfigError {}

impl BackoffConfigError {
    /// The checks every strategy makes of its starting delay and its cap.
    pub(crate) fn check_initial_and_cap(
        initial: Duration,
        max_delay: Duration,
    ) -> Result<(), BackoffConfigError> {
        if initial.is_zero() {
            return Err(BackoffConfigError::ZeroInitial);
        }
        if max_delay < initial {
            return Err(BackoffConfigError::MaxDelayBelowInitial { initial, max_delay });
        }
        Ok(())
    }
}
