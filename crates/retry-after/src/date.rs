//! HTTP-date (RFC 9110 §5.6.7): parsing all three forms, formatting IMF-fixdate.
//!
//! Fixed-position parsing and Howard Hinnant's days-from-civil arithmetic
//! (<https://howardhinnant.github.io/date_algorithms.html>): no calendar library, no allocation,
//! no loop over months or years.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{ParseError, ParseErrorKind as Kind};

const SECS_PER_DAY: i64 = 86_400;

/// Seconds from the Unix epoch to 0000-01-01T00:00:00Z, the earliest instant an HTTP-date names.
pub(crate) const MIN_SECS: i64 = days_from_civil(0, 1, 1) * SECS_PER_DAY;
/// Seconds from the Unix epoch to 9999-12-31T23:59:59Z, the latest instant an HTTP-date names.
pub(crate) const MAX_SECS: i64 = days_from_civil(9999, 12, 31) * SECS_PER_DAY + SECS_PER_DAY - 1;

/// Day names, index 0 = Sunday (the weekday numbering of [`weekday`]).
const DAY_NAMES: [[u8; 3]; 7] = [
    *b"Sun", *b"Mon", *b"Tue", *b"Wed", *b"Thu", *b"Fri", *b"Sat",
];
const MONTH_NAMES: [[u8; 3]; 12] = [
    *b"Jan", *b"Feb", *b"Mar", *b"Apr", *b"May", *b"Jun", *b"Jul", *b"Aug", *b"Sep", *b"Oct",
    *b"Nov", *b"Dec",
];

/// Days from 1970-01-01 to `y-m-d` of the proleptic Gregorian calendar, for years 0 to 9999
/// (`m` in 1..=12, `d` in 1..=31).
///
/// Hinnant's `days_from_civil`, shifted by one 400-year era so the year stays non-negative and
/// every division is unsigned.
#[inline]
pub(crate) const fn days_from_civil(y: u32, m: u32, d: u32) -> i64 {
    // March-based year: January and February belong to the previous year.
    let y = y + 400 - (m <= 2) as u32;
    let era = y / 400;
    let yoe = y - era * 400; // [0, 399]
    let mp = if m > 2 { m - 3 } else { m + 9 }; // [0, 11], March = 0
    let doy = (153 * mp + 2) / 5 + d - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    (era as i64 - 1) * 146_097 + doe as i64 - 719_468
}

/// The civil date (year, month 1..=12, day 1..=31) of a day count from 1970-01-01; any `i64`
/// that is a day count of a representable second (`|z| <= i64::MAX / 86400`).
#[inline]
pub(crate) const fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe as i64 + era * 400 + (m <= 2) as i64;
    (y, m, d)
}

/// Day of the week of a day count from 1970-01-01: 0 = Sunday .. 6 = Saturday.
#[inline]
pub(crate) const fn weekday(days: i64) -> u32 {
    // 1970-01-01 was a Thursday.
    (days + 4).rem_euclid(7) as u32
}

#[inline]
const fn is_leap(y: u32) -> bool {
    y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400))
}

#[inline]
const fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 => 28 + is_leap(y) as u32,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Whole seconds from the Unix epoch to `t`, rounded toward the past; saturates at `i64` bounds.
pub(crate) fn unix_secs_floor(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).map_or(i64::MIN, |s| -s);
            if d.subsec_nanos() > 0 {
                secs.saturating_sub(1)
            } else {
                secs
            }
        }
    }
}

/// The instant `secs` seconds from the Unix epoch, if the platform's `SystemTime` holds it.
#[inline]
pub(crate) fn system_time(secs: i64) -> Option<SystemTime> {
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs as u64))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

/// The fields of a date as written, before calendar validation.
#[derive(Clone, Copy)]
struct Fields {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// The day name as written: 0 = Sunday .. 6 = Saturday.
    weekday: u32,
}

impl Fields {
    /// Validates the calendar date, the time of day and the day name; seconds from the epoch.
    #[inline]
    fn to_unix_secs(self) -> Result<i64, Kind> {
        if self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            // 60: a leap second (RFC 5322 §3.3 allows 00-60); it means the next minute's :00.
            || self.second > 60
        {
            return Err(Kind::InvalidCalendarDate);
        }
        let days = days_from_civil(self.year, self.month, self.day);
        if weekday(days) != self.weekday {
            return Err(Kind::WeekdayMismatch);
        }
        let secs = days * SECS_PER_DAY + (self.hour * 3600 + self.minute * 60 + self.second) as i64;
        // Only a leap second on 9999-12-31 can pass the end of year 9999.
        if secs > MAX_SECS {
            return Err(Kind::OutOfRange);
        }
        Ok(secs)
    }
}

/// A digit's value, or a value > 9 for anything else.
#[inline(always)]
fn dv(b: u8) -> u32 {
    b.wrapping_sub(b'0') as u32
}

/// Two digits, or `None`.
#[inline(always)]
fn two_digits(a: u8, b: u8) -> Option<u32> {
    let (a, b) = (dv(a), dv(b));
    if a < 10 && b < 10 {
        Some(a * 10 + b)
    } else {
        None
    }
}

/// Four digits, or `None`.
#[inline(always)]
fn four_digits(s: [u8; 4]) -> Option<u32> {
    let (a, b, c, d) = (dv(s[0]), dv(s[1]), dv(s[2]), dv(s[3]));
    if a < 10 && b < 10 && c < 10 && d < 10 {
        Some(a * 1000 + b * 100 + c * 10 + d)
    } else {
        None
    }
}

/// Month 1..=12 from its three-letter name (case-sensitive).
#[inline(always)]
fn month(name: [u8; 3]) -> Option<u32> {
    Some(match &name {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

/// Weekday 0 = Sunday .. 6 from its three-letter name (case-sensitive).
#[inline(always)]
fn short_weekday(name: [u8; 3]) -> Option<u32> {
    Some(match &name {
        b"Sun" => 0,
        b"Mon" => 1,
        b"Tue" => 2,
        b"Wed" => 3,
        b"Thu" => 4,
        b"Fri" => 5,
        b"Sat" => 6,
        _ => return None,
    })
}

/// Weekday from its full name (RFC 850's day-name-l), case-sensitive.
fn long_weekday(name: &[u8]) -> Option<u32> {
    Some(match name {
        b"Sunday" => 0,
        b"Monday" => 1,
        b"Tuesday" => 2,
        b"Wednesday" => 3,
        b"Thursday" => 4,
        b"Friday" => 5,
        b"Saturday" => 6,
        _ => return None,
    })
}

/// `HH:MM:SS` → (hour, minute, second), ranges not yet checked.
#[inline(always)]
fn time_of_day(t: [u8; 8]) -> Option<(u32, u32, u32)> {
    if t[2] != b':' || t[5] != b':' {
        return None;
    }
    Some((
        two_digits(t[0], t[1])?,
        two_digits(t[3], t[4])?,
        two_digits(t[6], t[7])?,
    ))
}

#[inline(always)]
fn arr<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&s[at..at + N]);
    out
}

/// `" GMT"` after a date: `Ok` if exactly that, `NotGmt` if something else follows the date.
#[inline(always)]
fn zone(rest: &[u8]) -> Result<(), Kind> {
    if rest == b" GMT" {
        Ok(())
    } else {
        Err(Kind::NotGmt)
    }
}

/// IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`: 29 bytes at fixed positions.
#[inline]
fn imf_fixdate(s: &[u8]) -> Result<i64, Kind> {
    // The date and time without the zone are 25 bytes; " GMT" must follow.
    if s.len() < 25 {
        return Err(Kind::InvalidDate);
    }
    let p: [u8; 25] = arr(s, 0);
    if p[4] != b' ' || p[7] != b' ' || p[11] != b' ' || p[16] != b' ' {
        return Err(Kind::InvalidDate);
    }
    let (Some(weekday), Some(day), Some(month), Some(year), Some((hour, minute, second))) = (
        short_weekday(arr(&p, 0)),
        two_digits(p[5], p[6]),
        month(arr(&p, 8)),
        four_digits(arr(&p, 12)),
        time_of_day(arr(&p, 17)),
    ) else {
        return Err(Kind::InvalidDate);
    };
    zone(&s[25..])?;
    Fields {
        year,
        month,
        day,
        hour,
        minute,
        second,
        weekday,
    }
    .to_unix_secs()
}

/// asctime, `Sun Nov  6 08:49:37 1994` (or `Sun Nov 06 ...`): 24 bytes, no zone (GMT implied).
fn asctime(s: &[u8]) -> Result<i64, Kind> {
    if s.len() != 24 {
        return Err(Kind::InvalidDate);
    }
    let p: [u8; 24] = arr(s, 0);
    if p[3] != b' ' || p[7] != b' ' || p[10] != b' ' || p[19] != b' ' {
        return Err(Kind::InvalidDate);
    }
    let day = if p[8] == b' ' {
        Some(dv(p[9])).filter(|d| *d < 10)
    } else {
        two_digits(p[8], p[9])
    };
    let (Some(weekday), Some(month), Some(day), Some((hour, minute, second)), Some(year)) = (
        short_weekday(arr(&p, 0)),
        month(arr(&p, 4)),
        day,
        time_of_day(arr(&p, 11)),
        four_digits(arr(&p, 20)),
    ) else {
        return Err(Kind::InvalidDate);
    };
    Fields {
        year,
        month,
        day,
        hour,
        minute,
        second,
        weekday,
    }
    .to_unix_secs()
}

/// RFC 850, `Sunday, 06-Nov-94 08:49:37 GMT`, the two-digit year resolved against `now`.
fn rfc850(s: &[u8], now: impl FnOnce() -> SystemTime) -> Result<i64, Kind> {
    // The day name is 6 to 9 letters, then ", ".
    let Some(comma) = s.iter().take(10).position(|&b| b == b',') else {
        return Err(Kind::InvalidDate);
    };
    let Some(weekday) = long_weekday(&s[..comma]) else {
        return Err(Kind::InvalidDate);
    };
    // ", 06-Nov-94 08:49:37" then the zone.
    let s = &s[comma..];
    if s.len() < 20 {
        return Err(Kind::InvalidDate);
    }
    let p: [u8; 20] = arr(s, 0);
    if p[1] != b' ' || p[4] != b'-' || p[8] != b'-' || p[11] != b' ' {
        return Err(Kind::InvalidDate);
    }
    let (Some(day), Some(month), Some(yy), Some((hour, minute, second))) = (
        two_digits(p[2], p[3]),
        month(arr(&p, 5)),
        two_digits(p[9], p[10]),
        time_of_day(arr(&p, 12)),
    ) else {
        return Err(Kind::InvalidDate);
    };
    zone(&s[20..])?;
    let year = resolve_two_digit_year(yy, (month, day, hour, minute, second), now())?;
    Fields {
        year,
        month,
        day,
        hour,
        minute,
        second,
        weekday,
    }
    .to_unix_secs()
}

/// RFC 9110 §5.6.7: "Recipients of a timestamp value in rfc850-date format, which uses a
/// two-digit year, MUST interpret a timestamp that appears to be more than 50 years in the future
/// as representing the most recent year in the past that had the same last two digits."
///
/// The year chosen is the one ending in `yy` whose timestamp is at most 50 calendar years after
/// `now` (compared field by field: year, month, day, time), and the latest such year: so a date
/// falls in the 100 years that end 50 years after `now`.
fn resolve_two_digit_year(
    yy: u32,
    (month, day, hour, minute, second): (u32, u32, u32, u32, u32),
    now: SystemTime,
) -> Result<u32, Kind> {
    let now = unix_secs_floor(now);
    let (days, sod) = (
        now.div_euclid(SECS_PER_DAY),
        now.rem_euclid(SECS_PER_DAY) as u32,
    );
    let (ny, nm, nd) = civil_from_days(days);
    let limit = (ny + 50, nm, nd, sod / 3600, sod / 60 % 60, sod % 60);
    let at = |year: i64| (year, month, day, hour, minute, second);
    let mut year = ny - ny.rem_euclid(100) + yy as i64;
    if at(year) > limit {
        year -= 100;
    } else if at(year + 100) <= limit {
        year += 100;
    }
    match u32::try_from(year) {
        Ok(y) if y <= 9999 => Ok(y),
        _ => Err(Kind::OutOfRange),
    }
}

/// Seconds from the epoch of an HTTP-date in any of the three forms; `s` is already trimmed.
/// `now` is read only for an RFC 850 date.
#[inline]
pub(crate) fn parse_unix_secs(s: &[u8], now: impl FnOnce() -> SystemTime) -> Result<i64, Kind> {
    match s.get(3) {
        Some(b',') => imf_fixdate(s),
        Some(b' ') => asctime(s),
        Some(_) => rfc850(s, now),
        None => Err(if s.is_empty() {
            Kind::Empty
        } else {
            Kind::InvalidDate
        }),
    }
}

/// An HTTP-date (already trimmed) as a `SystemTime`.
#[inline]
pub(crate) fn parse_system_time(
    s: &[u8],
    now: impl FnOnce() -> SystemTime,
) -> Result<SystemTime, ParseError> {
    let secs = parse_unix_secs(s, now)?;
    system_time(secs).ok_or(ParseError::new(Kind::OutOfRange))
}

/// Strips the spaces and horizontal tabs (HTTP's OWS) around a field value.
#[inline]
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parses an HTTP-date in any of the three forms of RFC 9110 §5.6.7 (IMF-fixdate, RFC 850,
/// asctime), reading the system clock only to resolve an RFC 850 two-digit year.
///
/// Spaces and tabs around the value are ignored; the date itself is case-sensitive and must be
/// in GMT. See [`RetryAfter`](crate::RetryAfter) for every rule.
///
/// # Errors
///
/// A [`ParseError`] saying what was wrong: see [`ParseErrorKind`](crate::ParseErrorKind).
///
/// # Example
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let t = resile_retry_after::parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
/// assert_eq!(t, UNIX_EPOCH + Duration::from_secs(784_111_777));
/// ```
#[inline]
pub fn parse_http_date(value: &[u8]) -> Result<SystemTime, ParseError> {
    parse_system_time(trim_ows(value), SystemTime::now)
}

/// Parses an HTTP-date like [`parse_http_date`], resolving an RFC 850 two-digit year against
/// `now` (the 50-year rule) instead of the system clock.
///
/// # Errors
///
/// A [`ParseError`] saying what was wrong: see [`ParseErrorKind`](crate::ParseErrorKind).
///
/// # Example
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use resile_retry_after::{format_http_date, parse_http_date_at};
///
/// // In 2060, "71" is 2071 (11 years ahead), not 1971.
/// let now = parse_http_date_at(b"Thu, 01 Jan 2060 00:00:00 GMT", UNIX_EPOCH).unwrap();
/// let t = parse_http_date_at(b"Wednesday, 01-Apr-71 12:00:00 GMT", now).unwrap();
/// assert_eq!(format_http_date(t).as_str(), "Wed, 01 Apr 2071 12:00:00 GMT");
/// ```
#[inline]
pub fn parse_http_date_at(value: &[u8], now: SystemTime) -> Result<SystemTime, ParseError> {
    parse_system_time(trim_ows(value), || now)
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), formatted on the stack.
///
/// Made by [`format_http_date`]; [`as_str`](FormattedDate::as_str) gives the 29 ASCII bytes to
/// put in a `Date`, `Retry-After`, `Expires` or `Last-Modified` header.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FormattedDate {
    buf: [u8; 29],
}

impl FormattedDate {
    /// The date as a 29-byte IMF-fixdate.
    #[inline]
    pub fn as_str(&self) -> &str {
        // Every byte written by `format_http_date` is ASCII, so this never falls back.
        std::str::from_utf8(&self.buf).unwrap_or_default()
    }
}

impl fmt::Display for FormattedDate {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for FormattedDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl AsRef<str> for FormattedDate {
    #[inline]
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Formats `time` as an IMF-fixdate, the form RFC 9110 requires senders to generate.
///
/// An HTTP-date has one-second resolution: the time is rounded down to the whole second (as
/// `Date` headers conventionally are). It names only years 0000 to 9999, so a `time` outside
/// that range is clamped to its nearest end. Never panics, never allocates.
///
/// # Example
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use resile_retry_after::format_http_date;
///
/// let t = UNIX_EPOCH + Duration::from_millis(784_111_777_900);
/// assert_eq!(format_http_date(t).as_str(), "Sun, 06 Nov 1994 08:49:37 GMT");
/// assert_eq!(format_http_date(UNIX_EPOCH).to_string(), "Thu, 01 Jan 1970 00:00:00 GMT");
/// ```
pub fn format_http_date(time: SystemTime) -> FormattedDate {
    let secs = unix_secs_floor(time).clamp(MIN_SECS, MAX_SECS);
    let (days, sod) = (
        secs.div_euclid(SECS_PER_DAY),
        secs.rem_euclid(SECS_PER_DAY) as u32,
    );
    let (year, month, day) = civil_from_days(days);
    // Within the clamp, the year is 0..=9999.
    let year = year as u32;
    let (hour, minute, second) = (sod / 3600, sod / 60 % 60, sod % 60);
    let mut buf = *b"Sun, 00 Jan 0000 00:00:00 GMT";
    buf[..3].copy_from_slice(&DAY_NAMES[weekday(days) as usize]);
    buf[8..11].copy_from_slice(&MONTH_NAMES[(month - 1) as usize]);
    let put2 = |buf: &mut [u8; 29], at: usize, v: u32| {
        buf[at] = b'0' + (v / 10) as u8;
        buf[at + 1] = b'0' + (v % 10) as u8;
    };
    put2(&mut buf, 5, day);
    put2(&mut buf, 12, year / 100);
    put2(&mut buf, 14, year % 100);
    put2(&mut buf, 17, hour);
    put2(&mut buf, 20, minute);
    put2(&mut buf, 23, second);
    FormattedDate { buf }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Days from 1970-01-01 by counting, for checking the closed forms.
    fn naive_days(y: u32, m: u32, d: u32) -> i64 {
        let mut days = 0i64;
        if y >= 1970 {
            for yy in 1970..y {
                days += 365 + is_leap(yy) as i64;
            }
        } else {
            for yy in y..1970 {
                days -= 365 + is_leap(yy) as i64;
            }
        }
        for mm in 1..m {
            days += days_in_month(y, mm) as i64;
        }
        days + d as i64 - 1
    }

    #[test]
    fn civil_arithmetic_matches_counting_every_day_of_every_year() {
        // Walk every day from 0000-01-01 to 9999-12-31 once.
        let mut expected = naive_days(0, 1, 1);
        assert_eq!(days_from_civil(0, 1, 1), expected);
        assert_eq!(MIN_SECS, -62_167_219_200);
        assert_eq!(MAX_SECS, 253_402_300_799);
        for y in 0..=9999u32 {
            for m in 1..=12 {
                for d in 1..=days_in_month(y, m) {
                    assert_eq!(days_from_civil(y, m, d), expected, "{y}-{m}-{d}");
                    assert_eq!(civil_from_days(expected), (y as i64, m, d));
                    expected += 1;
                }
            }
        }
        assert_eq!(naive_days(9999, 12, 31) + 1, expected);
    }

    #[test]
    fn civil_from_days_far_outside_four_digit_years_does_not_overflow() {
        for z in [
            i64::MAX / SECS_PER_DAY,
            i64::MIN / SECS_PER_DAY,
            -719_468,
            -719_469,
        ] {
            let (_, m, d) = civil_from_days(z);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d));
        }
    }

    #[test]
    fn weekdays_of_known_dates() {
        assert_eq!(weekday(0), 4); // 1970-01-01, Thursday
        assert_eq!(weekday(days_from_civil(1994, 11, 6)), 0); // Sunday
        assert_eq!(weekday(days_from_civil(2000, 2, 29)), 2); // Tuesday
        assert_eq!(weekday(days_from_civil(1969, 12, 31)), 3); // Wednesday
        assert_eq!(weekday(days_from_civil(0, 1, 1)), 6); // Saturday (proleptic)
    }

    #[test]
    fn unix_secs_floor_rounds_toward_the_past() {
        let ms = Duration::from_millis;
        assert_eq!(unix_secs_floor(UNIX_EPOCH + ms(1_500)), 1);
        assert_eq!(unix_secs_floor(UNIX_EPOCH - ms(1_500)), -2);
        assert_eq!(unix_secs_floor(UNIX_EPOCH - ms(1_000)), -1);
        assert_eq!(unix_secs_floor(UNIX_EPOCH), 0);
    }

    #[test]
    fn trim_ows_strips_only_spaces_and_tabs() {
        assert_eq!(trim_ows(b" \t 12 \t"), b"12");
        assert_eq!(trim_ows(b"\r\n12"), b"\r\n12");
        assert_eq!(trim_ows(b" \t "), b"");
        assert_eq!(trim_ows(b""), b"");
    }
}
