//! The client layer's own errors.
//!
//! Both are refusals of the layer itself: the request was not sent. Their
//! [`source`](StdError::source) is [`LocalRejection`], the marker every resile layer recognises,
//! so a [`resile_classify::Classifier`] says "never retry, neutral for breakers" for them, as for
//! an open breaker. A failure of the store behind the limiter is not a refusal and carries no
//! marker: it is returned as the store's own error ([`StoreError`](crate::StoreError)).

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use resile_classify::LocalRejection;

/// The wait for a permit (or a pause a server asked for) exceeds the layer's maximum wait: the
/// request was not sent.
///
/// Returned at once (like tower's `LoadShed`), never after waiting out the maximum. (The one
/// case of a request that waited first: under a
/// [`ServerPauseLayer`](crate::pause::ServerPauseLayer), a request waiting for a server's pause
/// fails as soon as it sees a server extend the pause past its maximum wait; `wait` then counts
/// from its first wait.) Downcast a
/// [`tower::BoxError`](https://docs.rs/tower/latest/tower/type.BoxError.html) to it with
/// `err.downcast_ref::<WaitTooLong>()`.
///
/// Its [`source`](StdError::source) is [`LocalRejection`]: a retry layer does not retry it (a
/// retry would only queue for the same far-away slot) and a circuit breaker does not count it
/// (being throttled locally says nothing about the server's health).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTooLong {
    /// How long the request would have had to wait.
    pub wait: Duration,
    /// The layer's maximum wait.
    pub max_wait: Duration,
}

impl fmt::Display for WaitTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate limited: a permit is {:?} away, past the maximum wait of {:?}",
            self.wait, self.max_wait
        )
    }
}

impl StdError for WaitTooLong {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(LocalRejection::RATE_LIMITER)
    }
}

/// `call` was invoked without a successful `poll_ready` before it (a breach of the `Service`
/// contract). The request was not sent.
///
/// Its [`source`](StdError::source) is [`LocalRejection`]: the server never saw the request, so
/// a circuit breaker does not count it as the server's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NotReady;

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rate-limit service called before poll_ready returned Ready")
    }
}

impl StdError for NotReady {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(LocalRejection::RATE_LIMITER)
    }
}
