//! The quota a server publishes on every response (feature `http`): how many requests are left,
//! and when the count resets.
//!
//! [`published_quota`] reads the first of these that gives a valid reading:
//!
//! 1. **`RateLimit`** (IETF draft-ietf-httpapi-ratelimit-headers), a list of policies such as
//!    `"default";r=50;t=30` (`r` remaining, `t` seconds to the reset), with the quota itself in
//!    **`RateLimit-Policy`** (`"default";q=100;w=60`: `q` requests per `w` seconds), matched by
//!    name. When several policies are listed, the **binding** one is read: the one that allows
//!    the slowest even pace (the largest `t / r`; an exhausted one, `r=0`, binds first). The
//!    older draft's dictionary form, `limit=100, remaining=50, reset=30`, is read as one policy.
//! 2. **`RateLimit-Remaining`** and **`RateLimit-Reset`** (earlier drafts), with
//!    `RateLimit-Limit` when present; the reset is a delay in seconds.
//! 3. **`X-RateLimit-Remaining`** and **`X-RateLimit-Reset`** (GitHub, Twitter/X, Discord, many
//!    others), with `X-RateLimit-Limit` when present. The reset follows the size rule of
//!    [`server_hint`](crate::server_hint): at least [`crate::hints::EPOCH_THRESHOLD`]
//!    it is an instant in Unix epoch seconds (measured against the response's `Date`, else
//!    `now`), below it a delay; a decimal is read to the nanosecond.
//!
//! # What is ignored
//!
//! A reading needs both a remaining count and a reset. A value that is not a non-negative
//! integer (a decimal for the `X-` reset) is ignored, and so is a reading whose remaining count
//! exceeds its own published limit, or whose limit or window is zero: numbers that contradict
//! each other are not trusted. A reset instant in the past reads as a zero delay. Every delay is
//! capped at [`MAX_DELAY`]. Nothing allocates.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http::HeaderMap;
//! use resile_retry_after::{published_quota, QuotaSource};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("ratelimit-policy", r#""burst";q=100;w=60, "daily";q=1000;w=86400"#.parse().unwrap());
//! headers.insert("ratelimit", r#""burst";r=60;t=30, "daily";r=10;t=3600"#.parse().unwrap());
//! let q = published_quota(&headers).unwrap();
//! // "daily" binds: 10 requests over an hour is the slower pace.
//! assert_eq!((q.remaining, q.reset), (10, Duration::from_secs(3600)));
//! assert_eq!((q.limit, q.window), (Some(1000), Some(Duration::from_secs(86400))));
//! assert_eq!(q.spacing(), Some(Duration::from_secs(360)));
//! assert_eq!(q.source, QuotaSource::RateLimit);
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName};

use crate::date::trim_ows;
use crate::hints::{
    key_value, parse_decimal, parse_u64, reference_time, split_unquoted, until, Now,
    EPOCH_THRESHOLD,
};
use crate::MAX_DELAY;

/// A server's published quota, read from one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublishedQuota {
    /// Requests left before the reset.
    pub remaining: u64,
    /// Time from the response until the quota resets; at most [`MAX_DELAY`].
    pub reset: Duration,
    /// The quota's size (requests per window), when published.
    pub limit: Option<u64>,
    /// The quota's window, when published (`RateLimit-Policy`'s `w`).
    pub window: Option<Duration>,
    /// The headers the reading comes from.
    pub source: QuotaSource,
}

impl PublishedQuota {
    /// The even spacing that spends the remaining requests by the reset (`reset / remaining`),
    /// or `None` when nothing remains (wait for the reset).
    pub fn spacing(&self) -> Option<Duration> {
        if self.remaining == 0 {
            return None;
        }
        let per = self.reset.as_nanos() / u128::from(self.remaining);
        Some(Duration::from_nanos(u64::try_from(per).unwrap_or(u64::MAX)))
    }

    /// The quota as a rate in requests per second (`limit / window`), when both are published.
    pub fn rate(&self) -> Option<f64> {
        let (limit, window) = (self.limit?, self.window?);
        Some(limit as f64 / window.as_secs_f64())
    }
}

/// The headers a [`PublishedQuota`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuotaSource {
    /// The IETF draft `RateLimit` field (and `RateLimit-Policy`).
    RateLimit,
    /// The earlier drafts' `RateLimit-Remaining` / `RateLimit-Reset` / `RateLimit-Limit`.
    RateLimitFields,
    /// `X-RateLimit-Remaining` / `X-RateLimit-Reset` / `X-RateLimit-Limit`.
    XRateLimit,
}

mod names {
    use http::HeaderName;
    pub(super) const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
    pub(super) const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
    pub(super) const RATELIMIT_REMAINING: HeaderName =
        HeaderName::from_static("ratelimit-remaining");
    pub(super) const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
    pub(super) const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
    pub(super) const X_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
    pub(super) const X_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
    pub(super) const X_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
}

/// The quota `headers` publish, by the rules of the [module docs](self), or `None`. Epoch
/// values are measured against the response's `Date`, else the system clock (read only then).
#[inline]
pub fn published_quota(headers: &HeaderMap) -> Option<PublishedQuota> {
    read(headers, &mut Now::new(SystemTime::now))
}

/// [`published_quota`] with `now` as the local time the response was received.
pub fn published_quota_at(headers: &HeaderMap, now: SystemTime) -> Option<PublishedQuota> {
    read(headers, &mut Now::new(|| now))
}

/// Which quota fields a header map holds, one bit each (one pass over the names: most
/// responses carry none).
const HAS_RATELIMIT: u8 = 1;
const HAS_FIELDS: u8 = 1 << 1;
const HAS_X: u8 = 1 << 2;

fn present(headers: &HeaderMap) -> u8 {
    let mut present = 0;
    for name in headers.keys() {
        present |= match name.as_str() {
            "ratelimit" => HAS_RATELIMIT,
            "ratelimit-remaining" => HAS_FIELDS,
            "x-ratelimit-remaining" => HAS_X,
            _ => 0,
        };
    }
    present
}

fn read<F: FnMut() -> SystemTime>(headers: &HeaderMap, now: &mut Now<F>) -> Option<PublishedQuota> {
    let present = present(headers);
    if present == 0 {
        return None;
    }
    if present & HAS_RATELIMIT != 0 {
        if let Some(q) = ietf(headers) {
            return Some(q);
        }
    }
    if present & HAS_FIELDS != 0 {
        let reading = fields(
            headers,
            [
                names::RATELIMIT_REMAINING,
                names::RATELIMIT_RESET,
                names::RATELIMIT_LIMIT,
            ],
        );
        if let Some((remaining, reset, limit)) = reading {
            let reset = Duration::from_secs(parse_u64(reset)?);
            if let Some(q) = checked(remaining, reset, limit, None, QuotaSource::RateLimitFields) {
                return Some(q);
            }
        }
    }
    if present & HAS_X != 0 {
        let (remaining, reset, limit) = fields(
            headers,
            [names::X_REMAINING, names::X_RESET, names::X_LIMIT],
        )?;
        let reset = parse_decimal(reset)?;
        let reset = if reset >= EPOCH_THRESHOLD {
            match UNIX_EPOCH.checked_add(reset) {
                Some(at) => until(at, reference_time(headers, now)),
                None => MAX_DELAY,
            }
        } else {
            reset
        };
        return checked(remaining, reset, limit, None, QuotaSource::XRateLimit);
    }
    None
}

/// The first valid remaining count, the first reset value, and the first valid limit of one
/// family of fields.
fn fields(
    headers: &HeaderMap,
    [rem, reset, limit]: [HeaderName; 3],
) -> Option<(u64, &[u8], Option<u64>)> {
    let remaining = headers
        .get_all(rem)
        .iter()
        .find_map(|v| parse_u64(v.as_bytes()))?;
    let reset = headers.get(reset)?.as_bytes();
    let limit = headers
        .get_all(limit)
        .iter()
        .find_map(|v| parse_u64(v.as_bytes()));
    Some((remaining, reset, limit))
}

/// A reading, unless its numbers contradict each other.
fn checked(
    remaining: u64,
    reset: Duration,
    limit: Option<u64>,
    window: Option<Duration>,
    source: QuotaSource,
) -> Option<PublishedQuota> {
    if limit.is_some_and(|l| l == 0 || remaining > l) || window.is_some_and(|w| w.is_zero()) {
        return None;
    }
    Some(PublishedQuota {
        remaining,
        reset: reset.min(MAX_DELAY),
        limit,
        window,
        source,
    })
}

/// One policy of a `RateLimit` field: its name (raw, quotes included), `r` and `t`.
struct Member<'a> {
    name: &'a [u8],
    remaining: u64,
    reset: u64,
}

impl Member<'_> {
    /// Whether `self` allows a slower even pace than `other` (`t / r`, exhausted first).
    fn binds_before(&self, other: &Member<'_>) -> bool {
        // t1 / r1 > t2 / r2  <=>  t1 * r2 > t2 * r1, with r = 0 as the slowest pace.
        match (self.remaining, other.remaining) {
            (0, 0) => self.reset > other.reset,
            (0, _) => true,
            (_, 0) => false,
            (r1, r2) => {
                u128::from(self.reset) * u128::from(r2) > u128::from(other.reset) * u128::from(r1)
            }
        }
    }
}

fn ietf(headers: &HeaderMap) -> Option<PublishedQuota> {
    let mut binding: Option<Member<'_>> = None;
    let (mut d_limit, mut d_remaining, mut d_reset) = (None, None, None);
    for value in headers.get_all(names::RATELIMIT) {
        let mut rest = value.as_bytes();
        while !rest.is_empty() {
            let (member, tail) = split_unquoted(rest, b',');
            rest = tail;
            let (item, params) = split_unquoted(member, b';');
            let item = trim_ows(item);
            if let Some((key, val)) = key_value(item) {
                match key {
                    b"limit" => d_limit = parse_u64(val),
                    b"remaining" => d_remaining = parse_u64(val),
                    b"reset" => d_reset = parse_u64(val),
                    _ => {}
                }
                continue;
            }
            let (mut r, mut t) = (None, None);
            for_params(params, |key, val| match key {
                b"r" => r = parse_u64(val),
                b"t" => t = parse_u64(val),
                _ => {}
            });
            if let (Some(remaining), Some(reset)) = (r, t) {
                let m = Member {
                    name: item,
                    remaining,
                    reset,
                };
                if binding.as_ref().is_none_or(|b| m.binds_before(b)) {
                    binding = Some(m);
                }
            }
        }
    }
    if let Some(m) = binding {
        let (limit, window) = policy(headers, m.name);
        return checked(
            m.remaining,
            Duration::from_secs(m.reset),
            limit,
            window,
            QuotaSource::RateLimit,
        );
    }
    let (remaining, reset) = (d_remaining?, d_reset?);
    checked(
        remaining,
        Duration::from_secs(reset),
        d_limit,
        None,
        QuotaSource::RateLimit,
    )
}

/// `q` and `w` of the `RateLimit-Policy` member called `name`.
fn policy(headers: &HeaderMap, name: &[u8]) -> (Option<u64>, Option<Duration>) {
    for value in headers.get_all(names::RATELIMIT_POLICY) {
        let mut rest = value.as_bytes();
        while !rest.is_empty() {
            let (member, tail) = split_unquoted(rest, b',');
            rest = tail;
            let (item, params) = split_unquoted(member, b';');
            if trim_ows(item) != name {
                continue;
            }
            let (mut q, mut w) = (None, None);
            for_params(params, |key, val| match key {
                b"q" => q = parse_u64(val),
                b"w" => w = parse_u64(val).map(Duration::from_secs),
                _ => {}
            });
            return (q, w);
        }
    }
    (None, None)
}

/// Calls `f` with each `key=value` parameter of `;`-separated `params`.
fn for_params<'a>(mut params: &'a [u8], mut f: impl FnMut(&'a [u8], &'a [u8])) {
    while !params.is_empty() {
        let (param, tail) = split_unquoted(params, b';');
        params = tail;
        if let Some((key, val)) = key_value(trim_ows(param)) {
            f(key, val);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn none_without_fields() {
        assert_eq!(published_quota(&HeaderMap::new()), None);
        assert_eq!(published_quota(&headers(&[("retry-after", "5")])), None);
    }

    #[test]
    fn ietf_list_picks_the_binding_policy_and_its_quota() {
        let h = headers(&[
            ("ratelimit", r#""a";r=50;t=10"#),
            ("ratelimit", r#""b";r=5;t=10, "c";r=100;t=1"#),
            ("ratelimit-policy", r#""a";q=100;w=10, "b";q=20;w=60"#),
        ]);
        let q = published_quota(&h).unwrap();
        assert_eq!((q.remaining, q.reset), (5, Duration::from_secs(10)));
        assert_eq!(
            (q.limit, q.window),
            (Some(20), Some(Duration::from_secs(60)))
        );
        assert_eq!(q.spacing(), Some(Duration::from_secs(2)));
        assert_eq!(q.rate(), Some(20.0 / 60.0));
        // An exhausted policy binds whatever the others say.
        let h = headers(&[("ratelimit", r#""a";r=1;t=1000, "b";r=0;t=2"#)]);
        let q = published_quota(&h).unwrap();
        assert_eq!(
            (q.remaining, q.reset, q.spacing()),
            (0, Duration::from_secs(2), None)
        );
        assert_eq!((q.limit, q.window), (None, None));
    }

    #[test]
    fn ietf_malformed_members_are_skipped() {
        let h = headers(&[(
            "ratelimit",
            r#""a";r=x;t=1, "b";r=3, "c";r=-1;t=4, "d";r=4;t=8"#,
        )]);
        let q = published_quota(&h).unwrap();
        assert_eq!((q.remaining, q.reset), (4, Duration::from_secs(8)));
        // Quoted separators do not split members.
        let h = headers(&[
            ("ratelimit", r#""x,;y";r=2;t=4"#),
            ("ratelimit-policy", r#""x,;y";q=9;w=3"#),
        ]);
        let q = published_quota(&h).unwrap();
        assert_eq!((q.remaining, q.limit), (2, Some(9)));
    }

    #[test]
    fn older_forms() {
        let h = headers(&[("ratelimit", "limit=10, remaining=4, reset=7")]);
        let q = published_quota(&h).unwrap();
        assert_eq!(
            (q.remaining, q.reset, q.limit),
            (4, Duration::from_secs(7), Some(10))
        );
        let h = headers(&[
            ("ratelimit-limit", "10"),
            ("ratelimit-remaining", "3"),
            ("ratelimit-reset", "5"),
        ]);
        let q = published_quota(&h).unwrap();
        assert_eq!(
            (q.remaining, q.reset, q.limit),
            (3, Duration::from_secs(5), Some(10))
        );
        assert_eq!(q.source, QuotaSource::RateLimitFields);
    }

    #[test]
    fn x_ratelimit_delay_and_epoch() {
        let h = headers(&[
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-remaining", "4999"),
            ("x-ratelimit-reset", "1.5"),
        ]);
        let q = published_quota_at(&h, at(0)).unwrap();
        assert_eq!(
            (q.remaining, q.reset, q.limit),
            (4999, Duration::from_millis(1500), Some(5000))
        );
        assert_eq!(q.source, QuotaSource::XRateLimit);
        let h = headers(&[
            ("x-ratelimit-remaining", "10"),
            ("x-ratelimit-reset", "1700000060"),
        ]);
        let q = published_quota_at(&h, at(1_700_000_000)).unwrap();
        assert_eq!(q.reset, Duration::from_secs(60));
        // Measured against the server's Date, not the local clock.
        let h = headers(&[
            ("x-ratelimit-remaining", "10"),
            ("x-ratelimit-reset", "784111837"),
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        let q = published_quota_at(&h, at(0)).unwrap();
        // 784111837 is below the epoch threshold: a delay, whatever Date says.
        assert_eq!(q.reset, Duration::from_secs(784_111_837));
        let h = headers(&[
            ("x-ratelimit-remaining", "10"),
            ("x-ratelimit-reset", "1700000030"),
            ("date", "Tue, 14 Nov 2023 22:13:20 GMT"), // 1_700_000_000
        ]);
        let q = published_quota_at(&h, at(5)).unwrap();
        assert_eq!(q.reset, Duration::from_secs(30));
    }

    #[test]
    fn contradictions_and_garbage_are_ignored() {
        for h in [
            headers(&[
                ("x-ratelimit-remaining", "11"),
                ("x-ratelimit-reset", "5"),
                ("x-ratelimit-limit", "10"),
            ]),
            headers(&[
                ("x-ratelimit-remaining", "1"),
                ("x-ratelimit-reset", "5"),
                ("x-ratelimit-limit", "0"),
            ]),
            headers(&[("x-ratelimit-remaining", "-1"), ("x-ratelimit-reset", "5")]),
            headers(&[("x-ratelimit-remaining", "3")]),
            headers(&[
                ("x-ratelimit-remaining", "3"),
                ("x-ratelimit-reset", "soon"),
            ]),
            headers(&[
                ("ratelimit", r#""a";r=5;t=5"#),
                ("ratelimit-policy", r#""a";q=4;w=1"#),
            ]),
            headers(&[
                ("ratelimit", r#""a";r=5;t=5"#),
                ("ratelimit-policy", r#""a";q=10;w=0"#),
            ]),
            headers(&[("ratelimit", "garbage")]),
        ] {
            assert_eq!(published_quota_at(&h, at(0)), None, "{h:?}");
        }
        // A huge reset is capped, a huge count saturates.
        let h = headers(&[
            ("x-ratelimit-remaining", "99999999999999999999999"),
            ("x-ratelimit-reset", "999999999999999999999"),
        ]);
        let q = published_quota_at(&h, at(0)).unwrap();
        assert_eq!((q.remaining, q.reset), (u64::MAX, MAX_DELAY));
        // An invalid IETF field falls through to the X- headers.
        let h = headers(&[
            ("ratelimit", "junk"),
            ("x-ratelimit-remaining", "2"),
            ("x-ratelimit-reset", "4"),
        ]);
        assert_eq!(
            published_quota_at(&h, at(0)).unwrap().source,
            QuotaSource::XRateLimit
        );
    }
}
