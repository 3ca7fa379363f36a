//! The few errors the retry layer produces itself.
//!
//! The layer never turns a give-up into an error: when it stops retrying it returns the last
//! response or the last error of the inner service, unchanged apart from being boxed into a
//! [`tower::BoxError`](https://docs.rs/tower/latest/tower/type.BoxError.html). A request that
//! cannot be replayed is not an error either: it is sent once.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// A [`RetryBudget`](crate::RetryBudget) configuration outside its valid range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BudgetError {
    /// `ratio_percent` above 1000 (ten retries per request).
    RatioOutOfRange(u32),
    /// `ttl` outside 1 s..=60 s.
    TtlOutOfRange(Duration),
}

impl fmt::Display for BudgetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetError::RatioOutOfRange(r) => {
                write!(f, "retry budget ratio {r}% is above the maximum of 1000%")
            }
            BudgetError::TtlOutOfRange(d) => {
                write!(f, "retry budget ttl {d:?} is outside 1s..=60s")
            }
        }
    }
}

impl StdError for BudgetError {}

/// The error a [`ReplayBody`](crate::ReplayBody) yields when a copy of a request is polled but
/// the body cannot be replayed in full.
///
/// The retry layer checks that a body can be replayed before it sends a copy, so this only shows
/// if a copy is polled while another copy is still streaming the body, or after the first send
/// went past the buffer limit. It is an error rather than a short body: a retry never sends a
/// truncated or empty body in place of the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayError {
    /// The body grew past the replay buffer's limit; the bytes needed to replay it are gone.
    Capped,
    /// Another copy of the request still holds the body.
    Busy,
    /// The original body failed while it was read, so the rest of it cannot be replayed.
    Failed,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplayError::Capped => "request body exceeded the replay buffer limit",
            ReplayError::Busy => "request body is still being sent by another attempt",
            ReplayError::Failed => "request body failed on a previous attempt",
        })
    }
}

impl StdError for ReplayError {}
