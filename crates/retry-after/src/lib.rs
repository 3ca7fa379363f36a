//! resile-retry-after: RFC 9110 `Retry-After` parsing and server hints.
//!
//! API skeleton; the implementation is being written.
#![allow(missing_docs, clippy::todo)]

use std::time::{Duration, SystemTime};

/// A parsed `Retry-After` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// delay-seconds.
    Delay(Duration),
    /// An HTTP-date.
    Date(SystemTime),
}

/// Why a value is not a valid `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError;

impl RetryAfter {
    pub fn parse_at(_value: &[u8], _now: SystemTime) -> Result<Self, ParseError> {
        todo!()
    }
    pub fn parse(_value: &[u8]) -> Result<Self, ParseError> {
        todo!()
    }
    pub fn delay_from(&self, _now: SystemTime) -> Duration {
        todo!()
    }
}

/// Whole seconds, rounded up.
pub fn ceil_seconds(_delay: Duration) -> u64 {
    todo!()
}

#[cfg(feature = "http")]
pub mod hints {
    use std::time::{Duration, SystemTime};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ServerHint {
        pub delay: Duration,
        pub source: HintSource,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum HintSource {
        RetryAfter,
        RetryAfterMs,
        RateLimit,
        XRateLimitReset,
    }

    pub fn server_hint(_headers: &http::HeaderMap) -> Option<ServerHint> {
        todo!()
    }
    pub fn server_hint_at(_headers: &http::HeaderMap, _now: SystemTime) -> Option<ServerHint> {
        todo!()
    }
}
#[cfg(feature = "http")]
pub use hints::{server_hint, server_hint_at, HintSource, ServerHint};
