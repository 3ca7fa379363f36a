//! Every hint an HTTP response carries about when to come back (feature `http`).
//!
//! [`server_hint`] reads a response's headers and returns the first hint found, in this order:
//!
//! 1. **`Retry-After`** (RFC 9110 §10.2.3), parsed by [`RetryAfter`]. A date is turned into a delay
//!    against the response's own `Date` header when it has a valid one — both timestamps come from
//!    the server's clock, so the client's clock skew does not matter — else against `now`.
//!    `Retry-After` is a singleton field; if a response carries several, the **first valid one**
//!    wins and invalid ones are skipped. A decimal delay such as `1.5`, which RFC 9110 does not
//!    allow but servers send, is read as its ceiling in whole seconds (`2`: never shorter than
//!    the server asked), when no valid value is present; [`RetryAfter::parse`] itself stays
//!    strict.
//! 2. **`retry-after-ms`**, then **`x-ms-retry-after-ms`** (Azure and OpenAI-style APIs): a
//!    non-negative integer count of milliseconds; the first valid value wins.
//! 3. **`RateLimit`** (IETF draft-ietf-httpapi-ratelimit-headers), a structured-field list of
//!    policies such as `"default";r=0;t=30`: a policy whose remaining quota `r` is 0 asks to wait
//!    `t` seconds. If several policies (over all `RateLimit` field lines) are exhausted, the
//!    longest `t` wins — every exhausted quota must have reset before a request can pass. The older
//!    draft's dictionary form, `limit=10, remaining=0, reset=30`, is read the same way. Parsing is
//!    tolerant: a malformed member (missing or non-integer `r` / `t`, negative values, an
//!    unterminated string) is skipped, the other members still count.
//! 4. **`X-RateLimit-Reset`**, only when **`X-RateLimit-Remaining: 0`** (GitHub, Twitter/X,
//!    Discord, many others). Servers disagree on what it holds, so the value (an integer, or a
//!    decimal such as Discord's `1470173023.123`) is told apart by size: **at least
//!    [`EPOCH_THRESHOLD`] (10<sup>9</sup> s, September 2001) it is an instant in Unix epoch
//!    seconds**, converted to a delay against the response's `Date` (else `now`) like a
//!    `Retry-After` date; **below it, a delay in seconds**. No server asks a client to wait 31
//!    years, and no reset instant lies before 2001.
//!
//! A malformed hint is never an error: it is ignored and the next source is tried. Every delay is
//! capped at [`MAX_DELAY`]; an instant in the past gives a zero delay. Nothing allocates, and the
//! clock is read at most once: only when a date or an epoch value must be measured and the
//! response has no valid `Date`, or an RFC 850 date needs its century.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use http::HeaderMap;
//! use resile_retry_after::{server_hint, server_hint_at, HintSource};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("ratelimit", r#""default";r=0;t=30"#.parse().unwrap());
//! let hint = server_hint(&headers).unwrap();
//! assert_eq!((hint.delay, hint.source), (Duration::from_secs(30), HintSource::RateLimit));
//!
//! // Retry-After comes first; its date is measured against the response's Date header,
//! // whatever the local clock says.
//! headers.insert("retry-after", "Sun, 06 Nov 1994 08:50:37 GMT".parse().unwrap());
//! headers.insert("date", "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap());
//! let skewed_clock = UNIX_EPOCH;
//! let hint = server_hint_at(&headers, skewed_clock).unwrap();
//! assert_eq!((hint.delay, hint.source), (Duration::from_secs(60), HintSource::RetryAfter));
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, DATE, RETRY_AFTER};

use crate::date::{parse_system_time, trim_ows};
use crate::{RetryAfter, MAX_DELAY};

/// How long a response asks the client to wait, and which header said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerHint {
    /// How long to wait from when the response was received; at most [`MAX_DELAY`].
    pub delay: Duration,
    /// The header the delay comes from.
    pub source: HintSource,
}

/// The header a [`ServerHint`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HintSource {
    /// `Retry-After` (delay-seconds or an HTTP-date).
    RetryAfter,
    /// `retry-after-ms` or `x-ms-retry-after-ms`.
    RetryAfterMs,
    /// The IETF draft `RateLimit` field, a policy with no remaining quota.
    RateLimit,
    /// `X-RateLimit-Reset` with `X-RateLimit-Remaining: 0`.
    XRateLimitReset,
}

/// The size rule of `X-RateLimit-Reset`: a value of at least this many seconds (10<sup>9</sup>,
/// 2001-09-09T01:46:40Z) is an instant in Unix epoch seconds; a smaller one is a delay.
pub const EPOCH_THRESHOLD: Duration = Duration::from_secs(1_000_000_000);

// The non-standard names, built at compile time (no parsing per lookup).
mod names {
    use http::HeaderName;
    pub(super) const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
    pub(super) const X_MS_RETRY_AFTER_MS: HeaderName =
        HeaderName::from_static("x-ms-retry-after-ms");
    pub(super) const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
    pub(super) const X_RATELIMIT_REMAINING: HeaderName =
        HeaderName::from_static("x-ratelimit-remaining");
    pub(super) const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
}

/// The server's hint of when to come back, read from a response's headers in the precedence
/// order of the [module docs](self), or `None` if it gives no valid hint. Dates and epoch values
/// are measured against the response's `Date` header, else the system clock (read only then).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use http::HeaderMap;
/// use resile_retry_after::{server_hint, HintSource};
///
/// let mut headers = HeaderMap::new();
/// assert_eq!(server_hint(&headers), None);
///
/// headers.insert("retry-after", "soon".parse().unwrap()); // malformed: ignored
/// headers.insert("retry-after-ms", "1500".parse().unwrap());
/// let hint = server_hint(&headers).unwrap();
/// assert_eq!(hint.delay, Duration::from_millis(1500));
/// assert_eq!(hint.source, HintSource::RetryAfterMs);
/// ```
#[inline]
pub fn server_hint(headers: &HeaderMap) -> Option<ServerHint> {
    hint(headers, &mut Now::new(SystemTime::now))
}

/// The server's hint like [`server_hint`], with `now` as the local time the response was
/// received (used when the response has no valid `Date`, and for RFC 850 years).
///
/// # Example
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use http::HeaderMap;
/// use resile_retry_after::{server_hint_at, HintSource};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
/// headers.insert("x-ratelimit-reset", "1700000060".parse().unwrap()); // epoch seconds
/// let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let hint = server_hint_at(&headers, now).unwrap();
/// assert_eq!(hint.delay, Duration::from_secs(60));
/// assert_eq!(hint.source, HintSource::XRateLimitReset);
/// ```
#[inline]
pub fn server_hint_at(headers: &HeaderMap, now: SystemTime) -> Option<ServerHint> {
    hint(headers, &mut Now::new(|| now))
}

/// The local clock, read at most once.
pub(crate) struct Now<F> {
    read: F,
    cached: Option<SystemTime>,
}

impl<F: FnMut() -> SystemTime> Now<F> {
    pub(crate) fn new(read: F) -> Self {
        Self { read, cached: None }
    }

    pub(crate) fn get(&mut self) -> SystemTime {
        match self.cached {
            Some(t) => t,
            None => *self.cached.insert((self.read)()),
        }
    }
}

impl ServerHint {
    #[inline]
    fn new(delay: Duration, source: HintSource) -> Self {
        Self {
            delay: delay.min(MAX_DELAY),
            source,
        }
    }
}

/// Which of the hint fields after `Retry-After` a header map holds, one bit each.
const HAS_RETRY_AFTER_MS: u8 = 1;
const HAS_X_MS_RETRY_AFTER_MS: u8 = 1 << 1;
const HAS_RATELIMIT: u8 = 1 << 2;
const HAS_X_RATELIMIT_REMAINING: u8 = 1 << 3;

/// One pass over the field names says which of the other hint fields are present. Most
/// responses carry none, and a scan of the (few) names is far cheaper than one hash lookup per
/// candidate: `HeaderMap` hashes a non-standard name byte by byte.
#[inline]
fn present_fields(headers: &HeaderMap) -> u8 {
    let mut present = 0;
    for name in headers.keys() {
        present |= match name.as_str() {
            "retry-after-ms" => HAS_RETRY_AFTER_MS,
            "x-ms-retry-after-ms" => HAS_X_MS_RETRY_AFTER_MS,
            "ratelimit" => HAS_RATELIMIT,
            "x-ratelimit-remaining" => HAS_X_RATELIMIT_REMAINING,
            _ => 0,
        };
    }
    present
}

fn hint<F: FnMut() -> SystemTime>(headers: &HeaderMap, now: &mut Now<F>) -> Option<ServerHint> {
    if headers.is_empty() {
        return None;
    }

    // `Retry-After` is a standard name (hashed cheaply) and the usual hint: look it up directly.
    let mut decimal = None;
    for value in headers.get_all(RETRY_AFTER) {
        match RetryAfter::parse_with(value.as_bytes(), || now.get()) {
            Ok(RetryAfter::Delay(d)) => return Some(ServerHint::new(d, HintSource::RetryAfter)),
            Ok(RetryAfter::Date(at)) => {
                let delay = until(at, reference_time(headers, now));
                return Some(ServerHint::new(delay, HintSource::RetryAfter));
            }
            Err(_) if decimal.is_none() => decimal = parse_decimal(value.as_bytes()),
            Err(_) => {}
        }
    }
    if let Some(d) = decimal {
        let secs = Duration::from_secs(crate::ceil_seconds(d));
        return Some(ServerHint::new(secs, HintSource::RetryAfter));
    }

    let present = present_fields(headers);
    if present == 0 {
        return None;
    }

    for (bit, name) in [
        (HAS_RETRY_AFTER_MS, names::RETRY_AFTER_MS),
        (HAS_X_MS_RETRY_AFTER_MS, names::X_MS_RETRY_AFTER_MS),
    ] {
        if present & bit == 0 {
            continue;
        }
        let ms = headers
            .get_all(&name)
            .iter()
            .find_map(|v| parse_u64(v.as_bytes()));
        if let Some(ms) = ms {
            return Some(ServerHint::new(
                Duration::from_millis(ms),
                HintSource::RetryAfterMs,
            ));
        }
    }

    if present & HAS_RATELIMIT != 0 {
        let reset = headers
            .get_all(names::RATELIMIT)
            .iter()
            .filter_map(|v| ratelimit_reset(v.as_bytes()))
            .max();
        if let Some(secs) = reset {
            return Some(ServerHint::new(
                Duration::from_secs(secs),
                HintSource::RateLimit,
            ));
        }
    }

    if present & HAS_X_RATELIMIT_REMAINING != 0 {
        let remaining = headers
            .get_all(names::X_RATELIMIT_REMAINING)
            .iter()
            .find_map(|v| parse_u64(v.as_bytes()));
        if remaining == Some(0) {
            let reset = headers
                .get_all(names::X_RATELIMIT_RESET)
                .iter()
                .find_map(|v| parse_decimal(v.as_bytes()));
            if let Some(reset) = reset {
                let delay = if reset >= EPOCH_THRESHOLD {
                    match UNIX_EPOCH.checked_add(reset) {
                        Some(at) => until(at, reference_time(headers, now)),
                        // Too far in the future for this platform's SystemTime.
                        None => MAX_DELAY,
                    }
                } else {
                    reset
                };
                return Some(ServerHint::new(delay, HintSource::XRateLimitReset));
            }
        }
    }
    None
}

/// Time from `from` until `at`, zero if `at` is not later.
#[inline]
pub(crate) fn until(at: SystemTime, from: SystemTime) -> Duration {
    at.duration_since(from).unwrap_or(Duration::ZERO)
}

/// The server's "now": the first valid `Date` header, else the local clock.
pub(crate) fn reference_time<F: FnMut() -> SystemTime>(
    headers: &HeaderMap,
    now: &mut Now<F>,
) -> SystemTime {
    for value in headers.get_all(DATE) {
        if let Ok(t) = parse_system_time(trim_ows(value.as_bytes()), || now.get()) {
            return t;
        }
    }
    now.get()
}

/// A non-negative decimal integer (ASCII digits, optional surrounding spaces/tabs), saturating at
/// `u64::MAX`.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    let s = trim_ows(s);
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.saturating_mul(10).saturating_add(u64::from(d));
    }
    Some(v)
}

/// A non-negative decimal number of seconds, `123` or `123.456` (nanosecond precision, further
/// digits truncated), saturating at `u64::MAX` seconds.
pub(crate) fn parse_decimal(s: &[u8]) -> Option<Duration> {
    let s = trim_ows(s);
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(dot) => (&s[..dot], Some(&s[dot + 1..])),
        None => (s, None),
    };
    let secs = parse_u64(int).filter(|_| int == trim_ows(int))?;
    let mut nanos = 0u32;
    if let Some(frac) = frac {
        if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut scale = 100_000_000;
        for &b in frac.iter().take(9) {
            nanos += u32::from(b - b'0') * scale;
            scale /= 10;
        }
    }
    Some(Duration::new(secs, nanos))
}

/// Splits at the first `sep` outside a double-quoted string (structured-field strings may hold
/// `,` and `;`, and escape `"` with a backslash). Returns the part before and the part after.
pub(crate) fn split_unquoted(s: &[u8], sep: u8) -> (&[u8], &[u8]) {
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in s.iter().enumerate() {
        if quoted {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = false;
            }
        } else if b == b'"' {
            quoted = true;
        } else if b == sep {
            return (&s[..i], &s[i + 1..]);
        }
    }
    (s, &[])
}

/// `key=value` where key is a structured-field key (`[a-z*][a-z0-9_.*-]*`); both trimmed.
pub(crate) fn key_value(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = s.iter().position(|&b| b == b'=')?;
    let key = trim_ows(&s[..eq]);
    let is_key = matches!(key.first(), Some(b'a'..=b'z' | b'*'))
        && key
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*'));
    is_key.then(|| (key, trim_ows(&s[eq + 1..])))
}

/// From one `RateLimit` field line, the longest reset `t` (seconds) among policies whose
/// remaining quota `r` is 0; also reads the older dictionary form (`remaining=0, reset=30`).
fn ratelimit_reset(value: &[u8]) -> Option<u64> {
    let mut longest: Option<u64> = None;
    let (mut dict_remaining, mut dict_reset) = (None, None);
    let mut rest = value;
    while !rest.is_empty() {
        let (member, tail) = split_unquoted(rest, b',');
        rest = tail;
        let (item, mut params) = split_unquoted(member, b';');
        let item = trim_ows(item);
        if let Some((key, val)) = key_value(item) {
            // Dictionary member of the older draft: the whole field line is one policy.
            match key {
                b"remaining" => dict_remaining = parse_u64(val),
                b"reset" => dict_reset = parse_u64(val),
                _ => {}
            }
            continue;
        }
        let (mut r, mut t) = (None, None);
        while !params.is_empty() {
            let (param, tail) = split_unquoted(params, b';');
            params = tail;
            if let Some((key, val)) = key_value(trim_ows(param)) {
                match key {
                    b"r" => r = parse_u64(val),
                    b"t" => t = parse_u64(val),
                    _ => {}
                }
            }
        }
        if r == Some(0) {
            longest = longest.max(t);
        }
    }
    if dict_remaining == Some(0) {
        longest = longest.max(dict_reset);
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_fields_sees_each_name_whatever_else_is_there() {
        let mut headers = HeaderMap::new();
        assert_eq!(present_fields(&headers), 0);
        headers.insert("content-type", "text/plain".parse().unwrap());
        headers.insert("retry-after", "5".parse().unwrap()); // looked up directly, not scanned
        headers.insert("x-ratelimit-reset", "5".parse().unwrap()); // useless without remaining
        assert_eq!(present_fields(&headers), 0);
        for (name, bit) in [
            ("retry-after-ms", HAS_RETRY_AFTER_MS),
            ("x-ms-retry-after-ms", HAS_X_MS_RETRY_AFTER_MS),
            ("ratelimit", HAS_RATELIMIT),
            ("x-ratelimit-remaining", HAS_X_RATELIMIT_REMAINING),
        ] {
            let before = present_fields(&headers);
            headers.append(name, "1".parse().unwrap());
            headers.append(name, "2".parse().unwrap());
            assert_eq!(present_fields(&headers), before | bit, "{name}");
        }
        assert_eq!(present_fields(&headers), 0b1111);
    }

    #[test]
    fn ratelimit_list_form() {
        assert_eq!(ratelimit_reset(br#""default";r=0;t=30"#), Some(30));
        assert_eq!(ratelimit_reset(br#""default";r=5;t=30"#), None);
        assert_eq!(ratelimit_reset(br#""default";r=0"#), None);
        assert_eq!(ratelimit_reset(br#"default;t=30;r=0"#), Some(30));
        assert_eq!(
            ratelimit_reset(br#""burst";r=0;t=1, "day";r=0;t=3600, "hour";r=9;t=60"#),
            Some(3600)
        );
        // Strings hold separators; params in any order, with spaces after ';'.
        assert_eq!(ratelimit_reset(br#""a,b;r=0;t=9"; r=0; t=4"#), Some(4));
        assert_eq!(ratelimit_reset(br#""a\"b";r=0;t=4"#), Some(4));
        // Byte-sequence items may end in '=' padding.
        assert_eq!(ratelimit_reset(b":cHJvamVjdA==:;r=0;t=7"), Some(7));
        // Partition keys and unknown params are skipped.
        assert_eq!(ratelimit_reset(br#""p";pk=:YWJj:;r=0;q=?1;t=12"#), Some(12));
    }

    #[test]
    fn ratelimit_malformed_members_are_skipped() {
        assert_eq!(ratelimit_reset(br#""a";r=0;t=-5, "b";r=0;t=8"#), Some(8));
        assert_eq!(ratelimit_reset(br#""a";r=0;t=1.5"#), None);
        assert_eq!(ratelimit_reset(br#""a";r=-0;t=5"#), None);
        assert_eq!(ratelimit_reset(br#""unterminated;r=0;t=5"#), None);
        assert_eq!(ratelimit_reset(b";;;,,,=,"), None);
        assert_eq!(ratelimit_reset(b""), None);
        assert_eq!(ratelimit_reset(b"r=0;t=5"), None); // a dictionary without remaining/reset
    }

    #[test]
    fn ratelimit_dictionary_form() {
        assert_eq!(
            ratelimit_reset(b"limit=100, remaining=0, reset=50"),
            Some(50)
        );
        assert_eq!(ratelimit_reset(b"limit=100, remaining=3, reset=50"), None);
        assert_eq!(ratelimit_reset(b"reset=50, remaining=0"), Some(50));
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal(b"12"), Some(Duration::from_secs(12)));
        assert_eq!(
            parse_decimal(b" 12.5 "),
            Some(Duration::from_millis(12_500))
        );
        assert_eq!(
            parse_decimal(b"1.1234567899"),
            Some(Duration::new(1, 123_456_789))
        );
        assert_eq!(parse_decimal(b"1."), None);
        assert_eq!(parse_decimal(b".5"), None);
        assert_eq!(parse_decimal(b"1 .5"), None);
        assert_eq!(parse_decimal(b"-1"), None);
        assert_eq!(parse_decimal(b"1e9"), None);
        assert_eq!(
            parse_decimal(b"99999999999999999999999.9"),
            Some(Duration::new(u64::MAX, 900_000_000))
        );
    }

    #[test]
    fn the_clock_is_read_at_most_once_and_only_when_needed() {
        let mut reads = 0;
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "5".parse().unwrap());
        let _ = hint(
            &headers,
            &mut Now::new(|| {
                reads += 1;
                UNIX_EPOCH
            }),
        );
        assert_eq!(reads, 0);

        let mut reads = 0;
        headers.insert(
            RETRY_AFTER,
            "Sunday, 06-Nov-94 08:49:37 GMT".parse().unwrap(),
        );
        headers.insert(DATE, "Saturday, 05-Nov-94 08:49:37 GMT".parse().unwrap());
        let got = hint(
            &headers,
            &mut Now::new(|| {
                reads += 1;
                UNIX_EPOCH + Duration::from_secs(1_000_000_000)
            }),
        );
        assert_eq!(reads, 1);
        assert_eq!(got.map(|h| h.delay), Some(Duration::from_secs(86_400)));
    }
}
