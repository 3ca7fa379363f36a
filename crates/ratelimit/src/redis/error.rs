//! The errors the Redis store adds to [`StoreError::Backend`](crate::StoreError::Backend).
//!
//! A failed Redis call itself is passed on as the client's own [`redis::RedisError`]; the two
//! types here cover what the store detects on its own. Both are downcastable from the boxed
//! backend error.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// Redis failed recently and the store is not asking it again before its probe interval ends
/// (see [`RedisStoreBuilder::probe_interval`](super::RedisStoreBuilder::probe_interval)).
///
/// Only seen under [`OnFailure::Error`](super::OnFailure::Error); the other policies decide
/// instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisUnavailable {
    /// How long until the store asks Redis again.
    pub retry_in: Duration,
}

impl fmt::Display for RedisUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Redis rate-limit store failed recently; next attempt in {:?}",
            self.retry_in
        )
    }
}

impl StdError for RedisUnavailable {}

/// Redis answered the rate-limit script with a reply the script never gives (for instance a proxy
/// in between answered something else): treated as a failure of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnexpectedReply {
    pub(crate) detail: String,
}

impl UnexpectedReply {
    pub(crate) fn new(detail: impl Into<String>) -> Self {
        UnexpectedReply {
            detail: detail.into(),
        }
    }
}

impl fmt::Display for UnexpectedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unexpected reply from the Redis rate-limit script: {}",
            self.detail
        )
    }
}

impl StdError for UnexpectedReply {}
