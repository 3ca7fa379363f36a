//! The throttling layer's refusal.

use std::error::Error as StdError;
use std::fmt;

use resile_classify::LocalRejection;

/// The request was refused locally by client-side adaptive throttling: the server has been
/// rejecting much of what it gets, so this client sends only a share of its requests.
///
/// Its [`source`](StdError::source) is [`LocalRejection`]: never retried, neutral for
/// circuit breakers. Downcast a `BoxError` with `err.downcast_ref::<Throttled>()`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttled {
    /// The probability with which requests were being refused.
    pub probability: f64,
}

impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "throttled locally: the server is rejecting requests, {:.0} % are refused before sending",
            self.probability * 100.0
        )
    }
}

impl StdError for Throttled {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(LocalRejection::RATE_LIMITER)
    }
}
