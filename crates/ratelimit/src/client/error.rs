//! The client layer's own errors.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// The wait for a permit (or a pause a server asked for) exceeds the layer's maximum wait: the
/// request was not sent.
///
/// Returned at once (like tower's `LoadShed`), never after waiting. Downcast a
/// [`tower::BoxError`](https://docs.rs/tower/latest/tower/type.BoxError.html) to it with
/// `err.downcast_ref::<WaitTooLong>()`.
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

impl StdError for WaitTooLong {}

/// `call` was invoked without a successful `poll_ready` before it (a breach of the `Service`
/// contract). The request was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NotReady;

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rate-limit service called before poll_ready returned Ready")
    }
}

impl StdError for NotReady {}
