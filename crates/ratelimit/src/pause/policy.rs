//! What a client reads from responses: the server's "slow down".

use std::time::Duration;

use http::StatusCode;
use resile_classify::ResponseLike;

#[cfg(doc)]
use super::ServerPauseLayer;

/// How a client obeys servers that say "slow down": the policy of [`ServerPauseLayer`] and of
/// [`RateLimitLayer`](crate::RateLimitLayer).
///
/// A layer reads a response through [`ResponseLike`] (its status and headers), implemented for
/// `http::Response<B>` and, with the `reqwest` feature, `reqwest::Response`. A `429 Too Many
/// Requests` or `503 Service Unavailable` whose headers carry a server hint (`Retry-After`,
/// `retry-after-ms`, the IETF `RateLimit` field, `X-RateLimit-Reset`, as read by
/// [`resile_retry_after::server_hint`]) asks for a pause.
///
/// # Default
///
/// Enabled for `429` and `503`; pauses longer than 10 minutes are cut to 10 minutes (a server,
/// or a man in the middle, cannot lock every caller out for days with one header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PausePolicy {
    pub(crate) enabled: bool,
    pub(crate) max_pause: Duration,
}

impl Default for PausePolicy {
    fn default() -> Self {
        PausePolicy {
            enabled: true,
            max_pause: Duration::from_secs(600),
        }
    }
}

impl PausePolicy {
    /// Obey hints, pausing at most `max_pause` per hint.
    pub fn obey(max_pause: Duration) -> PausePolicy {
        PausePolicy {
            enabled: true,
            max_pause,
        }
    }

    /// Ignore hints: only the local quota paces requests.
    pub fn ignore() -> PausePolicy {
        PausePolicy {
            enabled: false,
            max_pause: Duration::ZERO,
        }
    }

    /// The pause `res` asks for, if it is a `429`/`503` with a hint, cut to the maximum.
    #[inline]
    pub(crate) fn pause_for<R: ResponseLike + ?Sized>(&self, res: &R) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        self.cap(hint_of(res)?)
    }

    /// The pause for a server's `hint`, cut to the maximum; `None` when hints are ignored.
    pub(crate) fn cap(&self, hint: Duration) -> Option<Duration> {
        self.enabled.then(|| hint.min(self.max_pause))
    }
}

/// The wait `res` asks for, if it is a `429`/`503` with a hint (whatever the layer's settings).
#[inline]
pub(crate) fn hint_of<R: ResponseLike + ?Sized>(res: &R) -> Option<Duration> {
    let status = res.status();
    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }
    parse_hint(res)
}

#[cold]
#[inline(never)]
fn parse_hint<R: ResponseLike + ?Sized>(res: &R) -> Option<Duration> {
    Some(resile_retry_after::server_hint(res.headers())?.delay)
}
