//! What one request ended as, and the resilience events recorded beside requests.

use std::error::Error as StdError;
use std::fmt;

use resile_classify::{transport_failure, LocalRejection, RejectedBy, TransportFailure};

/// How a request that produced no response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The connection could not be made (refused, unreachable, DNS): the request was not sent.
    Connect,
    /// A timeout (the request may or may not have been processed).
    Timeout,
    /// Any other transport error: reset, broken pipe, a malformed response.
    Transport,
    /// An open circuit breaker refused the request locally.
    BreakerOpen,
    /// A rate limiter (or a server-hint pause) refused the request locally.
    RateLimited,
    /// Another resile layer refused the request locally.
    Rejected,
    /// The caller dropped the response future before it completed.
    Cancelled,
}

impl ErrorKind {
    pub(crate) const COUNT: usize = 7;
    pub(crate) const ALL: [ErrorKind; Self::COUNT] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Transport,
        ErrorKind::BreakerOpen,
        ErrorKind::RateLimited,
        ErrorKind::Rejected,
        ErrorKind::Cancelled,
    ];

    /// A short, stable name: the value of OpenTelemetry's `error.type` attribute.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Transport => "transport",
            ErrorKind::BreakerOpen => "breaker_open",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Rejected => "rejected",
            ErrorKind::Cancelled => "cancelled",
        }
    }

    /// Whether a resile layer refused the request before it reached the server.
    pub const fn is_local_rejection(self) -> bool {
        matches!(
            self,
            ErrorKind::BreakerOpen | ErrorKind::RateLimited | ErrorKind::Rejected
        )
    }

    /// Classifies an error by its source chain ([`resile_classify::transport_failure`]).
    pub fn of(err: &(dyn StdError + 'static)) -> ErrorKind {
        match transport_failure(err) {
            TransportFailure::NotSent => ErrorKind::Connect,
            TransportFailure::Timeout => ErrorKind::Timeout,
            TransportFailure::Rejected => {
                match LocalRejection::find(err).map(LocalRejection::rejected_by) {
                    Some(RejectedBy::CircuitBreaker) => ErrorKind::BreakerOpen,
                    Some(RejectedBy::RateLimiter) => ErrorKind::RateLimited,
                    _ => ErrorKind::Rejected,
                }
            }
            _ => ErrorKind::Transport,
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resilience event, recorded with [`Telemetry::record_event`](crate::Telemetry::record_event)
/// beside the requests of the same interval.
///
/// The layer records [`Event::ServerPause`] itself; the client stack of the `resile` crate
/// records breaker transitions; retry events come from the retry policy's hooks (see the crate
/// documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Event {
    /// A retry is about to be sent (`reason`: the outcome that caused it, e.g. `status_503`).
    Retry {
        /// Why, as a short stable name.
        reason: &'static str,
    },
    /// A retryable outcome was returned without retrying (`reason`, e.g. `budget_exhausted`).
    GaveUp {
        /// Why, as a short stable name.
        reason: &'static str,
    },
    /// A circuit breaker changed state, named as resile-breaker's `State::as_str` names them
    /// (`closed`, `open`, `half-open`, `forced-open`, `disabled`).
    BreakerTransition {
        /// The state before.
        from: &'static str,
        /// The state after.
        to: &'static str,
    },
    /// A response asked the client to pause (a `429` or `503` with a `Retry-After`).
    ServerPause,
}

/// The per-interval event counters, by index.
pub(crate) const EVENTS: usize = 6;
pub(crate) const EV_RETRY: usize = 0;
pub(crate) const EV_BUDGET: usize = 1;
pub(crate) const EV_OPENED: usize = 2;
pub(crate) const EV_HALF_OPENED: usize = 3;
pub(crate) const EV_CLOSED: usize = 4;
pub(crate) const EV_PAUSE: usize = 5;

impl Event {
    /// The counter this event adds to, if any.
    pub(crate) fn counter(&self) -> Option<usize> {
        match self {
            Event::Retry { .. } => Some(EV_RETRY),
            Event::GaveUp { reason } if *reason == "budget_exhausted" => Some(EV_BUDGET),
            Event::GaveUp { .. } => None,
            Event::BreakerTransition { to, .. } => match *to {
                "open" | "forced-open" => Some(EV_OPENED),
                "half-open" => Some(EV_HALF_OPENED),
                "closed" => Some(EV_CLOSED),
                _ => None,
            },
            Event::ServerPause => Some(EV_PAUSE),
        }
    }
}

/// What one request ended as: an index into the status counters (`0`: a status outside
/// 100-599, `1..=500`: 100-599) or an error kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    Status(usize),
    Error(ErrorKind),
}

pub(crate) const STATUSES: usize = 501;

#[inline]
pub(crate) fn status_index(code: u16) -> usize {
    if (100..=599).contains(&code) {
        usize::from(code - 99)
    } else {
        0
    }
}

/// The status code of counter `i` (`None` for the "other" counter).
pub(crate) fn status_of(i: usize) -> Option<u16> {
    (i != 0).then(|| i as u16 + 99)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_indexes_are_exact_for_100_to_599_and_other_elsewhere() {
        assert_eq!(status_index(100), 1);
        assert_eq!(status_index(599), 500);
        assert_eq!(status_of(status_index(503)), Some(503));
        for odd in [0, 99, 600, 999, u16::MAX] {
            assert_eq!(status_index(odd), 0);
        }
        assert_eq!(status_of(0), None);
    }

    #[test]
    fn local_rejections_are_told_apart_by_their_layer() {
        #[derive(Debug)]
        struct Wrap(LocalRejection);
        impl fmt::Display for Wrap {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl StdError for Wrap {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let breaker = Wrap(LocalRejection::new(RejectedBy::CircuitBreaker));
        let limiter = Wrap(*LocalRejection::RATE_LIMITER);
        let other = Wrap(*LocalRejection::STATIC);
        assert_eq!(ErrorKind::of(&breaker), ErrorKind::BreakerOpen);
        assert_eq!(ErrorKind::of(&limiter), ErrorKind::RateLimited);
        assert_eq!(ErrorKind::of(&other), ErrorKind::Rejected);
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(ErrorKind::of(&io), ErrorKind::Connect);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(ErrorKind::of(&reset), ErrorKind::Transport);
        assert!(ErrorKind::BreakerOpen.is_local_rejection());
        assert!(!ErrorKind::Timeout.is_local_rejection());
    }
}
