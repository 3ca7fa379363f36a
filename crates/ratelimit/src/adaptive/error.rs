//! The adaptive limiter's own refusal: a full queue.

use std::error::Error as StdError;
use std::fmt;

use resile_classify::LocalRejection;

/// The host's queue of requests waiting for their slot is full: the request was not sent.
///
/// Returned at once. Its [`source`](StdError::source) is [`LocalRejection`]: a retry layer does
/// not retry it and a circuit breaker does not count it. Downcast a `BoxError` to it with
/// `err.downcast_ref::<QueueFull>()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull {
    /// The most requests the layer queues per host.
    pub max_queued: usize,
}

impl fmt::Display for QueueFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate limited: {} requests are already queued for this host",
            self.max_queued
        )
    }
}

impl StdError for QueueFull {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(LocalRejection::RATE_LIMITER)
    }
}
