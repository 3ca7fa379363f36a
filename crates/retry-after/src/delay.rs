//! delay-seconds: parsing (saturating) and formatting (rounded up).

use std::fmt;
use std::time::Duration;

use crate::error::ParseErrorKind as Kind;

/// The longest delay this crate returns: 2<sup>32</sup> − 1 seconds (about 136 years).
///
/// Larger delay-seconds (up to any number of digits) saturate to it instead of failing or
/// wrapping, and every delay computed from a date or a server hint is capped by it. The cap keeps
/// the result safe to add to an `Instant` or a `SystemTime` on every platform (a delay of
/// `u64::MAX` seconds would make `Instant::now() + delay` panic), while still reading as "not
/// within any sane retry deadline".
pub const MAX_DELAY: Duration = Duration::from_secs(MAX_DELAY_SECS);

pub(crate) const MAX_DELAY_SECS: u64 = u32::MAX as u64;

/// delay-seconds (`1*DIGIT`, already trimmed, starting with a digit) as whole seconds, saturating
/// at [`MAX_DELAY`].
#[inline(always)]
pub(crate) fn parse_seconds(s: &[u8]) -> Result<u64, Kind> {
    // One to four digits (`1`, `30`, `120`, `3600`: nearly every real value) in straight-line
    // code: independent loads and one branch. Any non-digit falls through to the loop below,
    // which says which error it is.
    let dv = |b: u8| b.wrapping_sub(b'0');
    let quick = match *s {
        [a] => Some((dv(a) > 9, u64::from(dv(a)))),
        [a, b] => {
            let (a, b) = (dv(a), dv(b));
            Some(((a > 9) | (b > 9), u64::from(a) * 10 + u64::from(b)))
        }
        [a, b, c] => {
            let (a, b, c) = (dv(a), dv(b), dv(c));
            let v = u64::from(a) * 100 + u64::from(b) * 10 + u64::from(c);
            Some(((a > 9) | (b > 9) | (c > 9), v))
        }
        [a, b, c, d] => {
            let (a, b, c, d) = (dv(a), dv(b), dv(c), dv(d));
            let v = u64::from(a) * 1000 + u64::from(b) * 100 + u64::from(c) * 10 + u64::from(d);
            Some(((a > 9) | (b > 9) | (c > 9) | (d > 9), v))
        }
        _ => None,
    };
    if let Some((false, v)) = quick {
        return Ok(v);
    }
    // Up to 19 digits cannot overflow a u64 (10^19 - 1 < 2^64): no overflow checks.
    if s.len() <= 19 {
        let mut v: u64 = 0;
        for &b in s {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return Err(not_a_digit(b));
            }
            v = v * 10 + u64::from(d);
        }
        return Ok(v.min(MAX_DELAY_SECS));
    }
    parse_long_seconds(s)
}

/// More than 19 digits: every byte still checked, the value saturating (any number of digits,
/// in one pass, without overflow).
#[cold]
fn parse_long_seconds(s: &[u8]) -> Result<u64, Kind> {
    let mut v: u64 = 0;
    for &b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(not_a_digit(b));
        }
        v = v.saturating_mul(10).saturating_add(u64::from(d));
    }
    Ok(v.min(MAX_DELAY_SECS))
}

#[inline]
fn not_a_digit(b: u8) -> Kind {
    if b == b'.' {
        Kind::Fraction
    } else {
        Kind::InvalidDelay
    }
}

/// Whole seconds in `delay`, rounded UP: what a server puts in `Retry-After` so a client never
/// comes back early (300 ms → 1, 1 s → 1, 1.001 s → 2, 0 → 0). Saturates at `u64::MAX`.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use resile_retry_after::ceil_seconds;
///
/// assert_eq!(ceil_seconds(Duration::from_millis(300)), 1);
/// assert_eq!(ceil_seconds(Duration::from_secs(2)), 2);
/// assert_eq!(ceil_seconds(Duration::ZERO), 0);
/// ```
#[inline]
pub const fn ceil_seconds(delay: Duration) -> u64 {
    delay
        .as_secs()
        .saturating_add((delay.subsec_nanos() > 0) as u64)
}

/// Formats `delay` as a `Retry-After` delay-seconds value: whole seconds rounded UP, like
/// [`ceil_seconds`] (a 300 ms wait is `1`, never `0`). Never allocates.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use resile_retry_after::format_delay;
///
/// assert_eq!(format_delay(Duration::from_millis(300)).to_string(), "1");
/// assert_eq!(format_delay(Duration::from_millis(2_500)).as_str(), "3");
/// ```
#[inline]
pub fn format_delay(delay: Duration) -> FormattedDelay {
    FormattedDelay::from_secs(ceil_seconds(delay))
}

/// A delay-seconds value formatted on the stack (at most 20 ASCII digits).
///
/// Made by [`format_delay`]; [`as_str`](FormattedDelay::as_str) gives the digits to put in a
/// `Retry-After` header.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FormattedDelay {
    buf: [u8; 20],
    start: u8,
}

impl FormattedDelay {
    #[inline]
    fn from_secs(mut secs: u64) -> Self {
        let mut buf = [b'0'; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (secs % 10) as u8;
            secs /= 10;
            if secs == 0 {
                break;
            }
        }
        Self {
            buf,
            start: start as u8,
        }
    }

    /// The digits.
    #[inline]
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever written, so this never falls back.
        std::str::from_utf8(&self.buf[usize::from(self.start)..]).unwrap_or_default()
    }

    /// The value in whole seconds.
    #[inline]
    pub fn seconds(&self) -> u64 {
        self.buf[usize::from(self.start)..]
            .iter()
            .fold(0, |v, &b| v * 10 + u64::from(b - b'0'))
    }
}

impl fmt::Display for FormattedDelay {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for FormattedDelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl AsRef<str> for FormattedDelay {
    #[inline]
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_every_magnitude() {
        for secs in [0, 1, 9, 10, 99, 100, 4_294_967_295, u64::MAX / 10, u64::MAX] {
            let f = FormattedDelay::from_secs(secs);
            assert_eq!(f.as_str(), secs.to_string());
            assert_eq!(f.seconds(), secs);
        }
    }

    #[test]
    fn ceil_seconds_rounds_up_and_saturates() {
        assert_eq!(ceil_seconds(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_seconds(Duration::from_millis(1_001)), 2);
        assert_eq!(ceil_seconds(Duration::MAX), u64::MAX);
        assert_eq!(format_delay(Duration::MAX).as_str(), u64::MAX.to_string());
    }

    #[test]
    fn parse_seconds_saturates_instead_of_wrapping() {
        assert_eq!(parse_seconds(b"4294967295"), Ok(MAX_DELAY_SECS));
        assert_eq!(parse_seconds(b"4294967296"), Ok(MAX_DELAY_SECS));
        assert_eq!(parse_seconds(b"18446744073709551616"), Ok(MAX_DELAY_SECS));
        assert_eq!(parse_seconds(&[b'9'; 4096]), Ok(MAX_DELAY_SECS));
        assert_eq!(parse_seconds(b"0000000000000000000000000000007"), Ok(7));
        // Both sides of the 19-digit fast path.
        assert_eq!(parse_seconds(b"9999999999999999999"), Ok(MAX_DELAY_SECS));
        assert_eq!(parse_seconds(b"0000000000000000012"), Ok(12));
        assert_eq!(parse_seconds(b"00000000000000000012"), Ok(12));
        assert_eq!(parse_seconds(b"0000000000000000001.5"), Err(Kind::Fraction));
        assert_eq!(
            parse_seconds(b"00000000000000000001x"),
            Err(Kind::InvalidDelay)
        );
        assert_eq!(parse_seconds(b"1x"), Err(Kind::InvalidDelay));
    }

    #[test]
    fn short_values_take_the_straight_line_path_and_agree_with_the_loop() {
        // Every one- to four-byte value over digits and a few non-digits.
        let alphabet = b"0123456789./: a\xff";
        let mut values: Vec<Vec<u8>> = vec![];
        for &a in alphabet {
            values.push(vec![a]);
            for &b in alphabet {
                values.push(vec![a, b]);
                for &c in alphabet {
                    values.push(vec![a, b, c]);
                    for &d in b"0947.x" {
                        values.push(vec![a, b, c, d]);
                    }
                }
            }
        }
        for v in values {
            if !v[0].is_ascii_digit() {
                continue; // the caller only passes values starting with a digit
            }
            let text = String::from_utf8_lossy(&v).into_owned();
            let expected = match text.parse::<u64>() {
                Ok(n) if v.iter().all(u8::is_ascii_digit) => Ok(n),
                _ => Err(not_a_digit(
                    *v.iter().find(|b| !b.is_ascii_digit()).unwrap(),
                )),
            };
            assert_eq!(parse_seconds(&v), expected, "{text:?}");
        }
    }
}
