//! RFC 9110 `Retry-After` and HTTP-date parsing and formatting, and (feature `http`) every server
//! hint an HTTP response carries.
//!
//! Servers tell clients when to come back: `Retry-After` on 429 and 503 responses, and a zoo of
//! rate-limit fields. This crate reads them exactly and fast:
//!
//! - [`RetryAfter`] parses `Retry-After` (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date in
//!   any of its three forms (§5.6.7) — IMF-fixdate, the obsolete RFC 850 form, and asctime.
//! - [`format_delay`] / [`ceil_seconds`] write a delay for a server, rounded UP to whole seconds
//!   (a 300 ms wait is `1`, never `0`); [`format_http_date`] writes an IMF-fixdate.
//! - With feature `http`, `server_hint` reads `Retry-After`, `retry-after-ms`,
//!   `x-ms-retry-after-ms`, the IETF `RateLimit` field and `X-RateLimit-Reset` from an
//!   `http::HeaderMap`, in that order (the `hints` module documents every rule).
//!
//! No dependencies by default (std only). Parsing and formatting never allocate and never panic,
//! whatever the input.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use resile_retry_after::{format_delay, RetryAfter};
//!
//! // delay-seconds
//! let ra = RetryAfter::parse(b"120").unwrap();
//! assert_eq!(ra, RetryAfter::Delay(Duration::from_secs(120)));
//!
//! // an HTTP-date, turned into a delay against a given "now"
//! let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
//! let ra: RetryAfter = "Sun, 06 Nov 1994 08:50:07 GMT".parse().unwrap();
//! assert_eq!(ra.delay_from(now), Duration::from_secs(30));
//! assert_eq!(ra.to_string(), "Sun, 06 Nov 1994 08:50:07 GMT");
//!
//! // what a server sends: whole seconds, rounded up
//! assert_eq!(format_delay(Duration::from_millis(1_200)).as_str(), "2");
//! ```
//!
//! # The parsing rules
//!
//! - **delay-seconds** is `1*DIGIT`: a sign (`+5`, `-5`), a fraction (`1.5`), or anything else
//!   after the digits is an error. Leading zeros are fine. A value too large to be a sane delay
//!   saturates to [`MAX_DELAY`] (2<sup>32</sup> − 1 s, about 136 years) — any number of digits,
//!   `10^30` included, is read without overflow, wrapping or panic.
//! - **HTTP-dates** are case-sensitive (RFC 9110 §5.6.7) and always GMT: `UTC`, `+0000` or a
//!   lower-case `gmt` is an error ([`ParseErrorKind::NotGmt`]). The date must exist (no 31
//!   November, no 29 February in a non-leap year) and the time must be valid; second `60` (a leap
//!   second, RFC 5322 §3.3) is accepted and means the next minute's `:00`. Years 0000 to 9999 are
//!   accepted (dates before 1970 are simply in the past).
//! - **The day name must match the date.** RFC 9110 asks recipients to be robust, but RFC 5322
//!   §3.3 (where IMF-fixdate comes from) says the day name MUST be the day implied by the date; a
//!   date that contradicts itself is likely garbled, so it is rejected
//!   ([`ParseErrorKind::WeekdayMismatch`]) rather than trusted — the same choice as the `httpdate`
//!   crate. A client then falls back to its own backoff.
//! - **RFC 850's two-digit year** follows the 50-year rule of RFC 9110 §5.6.7 against `now` (the
//!   system clock for [`RetryAfter::parse`], any instant for [`RetryAfter::parse_at`]): the year
//!   ending in those digits whose timestamp is at most 50 years after `now`, and the latest such
//!   — so in 2025, `75` is 2075 and `76` is 1976. The clock is read only for this form.
//! - **Whitespace**: spaces and horizontal tabs around the value are ignored (HTTP's OWS); any
//!   other byte, inside or around, is an error. Empty or blank input is
//!   [`ParseErrorKind::Empty`].
//!
//! Errors are a small `Copy` [`ParseError`] whose [`kind`](ParseError::kind) says what was wrong.
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

mod date;
mod delay;
mod error;

pub use date::{format_http_date, parse_http_date, parse_http_date_at, FormattedDate};
pub use delay::{ceil_seconds, format_delay, FormattedDelay, MAX_DELAY};
pub use error::{ParseError, ParseErrorKind};

#[cfg(feature = "http")]
pub mod hints;
#[cfg(feature = "http")]
pub use hints::{server_hint, server_hint_at, HintSource, ServerHint};
#[cfg(feature = "http")]
pub mod quota;
#[cfg(feature = "http")]
pub use quota::{published_quota, published_quota_at, PublishedQuota, QuotaSource};

/// A parsed `Retry-After` value (RFC 9110 §10.2.3): a delay, or a date to wait until.
///
/// Parse with [`parse`](RetryAfter::parse), [`parse_at`](RetryAfter::parse_at) or
/// [`FromStr`]; turn into a wait with [`delay_from`](RetryAfter::delay_from). `Display` writes the
/// value back as a server would send it: whole seconds (rounded up) for a delay, an IMF-fixdate
/// for a date. The crate docs list the exact parsing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryAfter {
    /// delay-seconds: wait this long after the response was received. Parsed values are whole
    /// seconds, at most [`MAX_DELAY`].
    Delay(Duration),
    /// An HTTP-date: wait until this instant. Parsed values are whole seconds.
    Date(SystemTime),
}

impl RetryAfter {
    /// Parses a `Retry-After` value, resolving an RFC 850 two-digit year against `now` (the
    /// 50-year rule). `now` is used for nothing else: a date stays a date, see
    /// [`delay_from`](RetryAfter::delay_from).
    ///
    /// # Errors
    ///
    /// A [`ParseError`] whose [`kind`](ParseError::kind) says what was wrong: empty, signed,
    /// fractional or non-digit delay-seconds, a malformed or non-GMT date, a date that does not
    /// exist or contradicts its day name, or a year out of range.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use resile_retry_after::{ParseErrorKind, RetryAfter};
    ///
    /// let now = UNIX_EPOCH;
    /// assert_eq!(
    ///     RetryAfter::parse_at(b" 5\t", now),
    ///     Ok(RetryAfter::Delay(Duration::from_secs(5)))
    /// );
    /// let err = RetryAfter::parse_at(b"-5", now).unwrap_err();
    /// assert_eq!(err.kind(), ParseErrorKind::Signed);
    /// ```
    #[inline]
    pub fn parse_at(value: &[u8], now: SystemTime) -> Result<Self, ParseError> {
        Self::parse_with(value, || now)
    }

    /// Parses a `Retry-After` value like [`parse_at`](RetryAfter::parse_at), reading the system
    /// clock only if the value is an RFC 850 date (to resolve its two-digit year).
    ///
    /// # Errors
    ///
    /// As [`parse_at`](RetryAfter::parse_at).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use resile_retry_after::RetryAfter;
    ///
    /// assert_eq!(RetryAfter::parse(b"0"), Ok(RetryAfter::Delay(Duration::ZERO)));
    /// assert_eq!(
    ///     RetryAfter::parse(b"Sun Nov  6 08:49:37 1994"),
    ///     Ok(RetryAfter::Date(UNIX_EPOCH + Duration::from_secs(784_111_777)))
    /// );
    /// assert!(RetryAfter::parse(b"1.5").is_err());
    /// ```
    #[inline]
    pub fn parse(value: &[u8]) -> Result<Self, ParseError> {
        Self::parse_with(value, SystemTime::now)
    }

    /// The parser behind every entry point; `now` is called at most once, for RFC 850 only.
    ///
    /// Small enough to inline: delay-seconds is parsed here, everything else out of line (so the
    /// date parser's registers and stack do not weigh on the common `Retry-After: 120`).
    #[inline]
    pub(crate) fn parse_with(
        value: &[u8],
        now: impl FnOnce() -> SystemTime,
    ) -> Result<Self, ParseError> {
        let s = date::trim_ows(value);
        if let Some(b'0'..=b'9') = s.first() {
            return match delay::parse_seconds(s) {
                Ok(secs) => Ok(Self::Delay(Duration::from_secs(secs))),
                Err(kind) => Err(kind.into()),
            };
        }
        Self::parse_not_digit(s, now)
    }

    /// A trimmed value that does not start with a digit: a date, or an error.
    #[inline(never)]
    fn parse_not_digit(s: &[u8], now: impl FnOnce() -> SystemTime) -> Result<Self, ParseError> {
        match s.first() {
            None => Err(ParseErrorKind::Empty.into()),
            Some(b'+' | b'-') => Err(ParseErrorKind::Signed.into()),
            Some(b'.') => Err(ParseErrorKind::Fraction.into()),
            Some(_) => date::parse_system_time(s, now).map(Self::Date),
        }
    }

    /// How long to wait, counted from `now`: the delay itself, or the time from `now` until the
    /// date (zero if the date is not after `now`). Capped at [`MAX_DELAY`].
    ///
    /// `now` should be when the response was received. To be immune to the client's clock skew,
    /// pass the response's own `Date` header as `now` — `server_hint` (feature `http`) does that.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use resile_retry_after::RetryAfter;
    ///
    /// let at = UNIX_EPOCH + Duration::from_secs(100);
    /// assert_eq!(RetryAfter::Date(at).delay_from(UNIX_EPOCH), Duration::from_secs(100));
    /// assert_eq!(RetryAfter::Date(UNIX_EPOCH).delay_from(at), Duration::ZERO);
    /// assert_eq!(RetryAfter::Delay(Duration::from_secs(7)).delay_from(at), Duration::from_secs(7));
    /// ```
    #[inline]
    pub fn delay_from(&self, now: SystemTime) -> Duration {
        match *self {
            Self::Delay(d) => d.min(MAX_DELAY),
            Self::Date(t) => t
                .duration_since(now)
                .unwrap_or(Duration::ZERO)
                .min(MAX_DELAY),
        }
    }
}

impl FromStr for RetryAfter {
    type Err = ParseError;

    /// As [`RetryAfter::parse`] (the system clock resolves RFC 850 years).
    #[inline]
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

impl fmt::Display for RetryAfter {
    /// Whole seconds rounded up for a delay ([`format_delay`]), an IMF-fixdate for a date
    /// ([`format_http_date`]: truncated to the second, clamped to years 0000-9999). Parsing the
    /// output gives the value back for every value the parser produced.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Delay(d) => fmt::Display::fmt(&format_delay(d), f),
            Self::Date(t) => fmt::Display::fmt(&format_http_date(t), f),
        }
    }
}

// The README (shown on crates.io): its example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
