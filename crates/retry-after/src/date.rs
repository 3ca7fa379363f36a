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

/// Day names, index 0 = Sunday.
const DAY_NAMES: [[u8; 3]; 7] = [
    *b"Sun", *b"Mon", *b"Tue", *b"Wed", *b"Thu", *b"Fri", *b"Sat",
];
const DAY_NAMES_PACKED: [u32; 7] = {
    let mut packed = [0; 7];
    let mut i = 0;
    while i < 7 {
        packed[i] = pack3(DAY_NAMES[i]);
        i += 1;
    }
    packed
};
const MONTH_NAMES: [[u8; 3]; 12] = [
    *b"Jan", *b"Feb", *b"Mar", *b"Apr", *b"May", *b"Jun", *b"Jul", *b"Aug", *b"Sep", *b"Oct",
    *b"Nov", *b"Dec",
];

/// Days from 1970-01-01 to `y-m-d` of the proleptic Gregorian calendar, for years 0 to 9999
/// (`m` in 1..=12, `d` in 1..=31).
#[inline]
pub(crate) const fn days_from_civil(y: u32, m: u32, d: u32) -> i64 {
    days_and_weekday(y, m, d).0
}

/// [`days_from_civil`] and the day of the week (0 = Sunday).
///
/// Hinnant's `days_from_civil`, shifted by one 400-year era so the year stays non-negative and
/// every division is unsigned. The weekday comes from the day of the era: an era is 146 097
/// days, a whole number of weeks, so no signed division is needed.
#[inline]
const fn days_and_weekday(y: u32, m: u32, d: u32) -> (i64, u32) {
    // March-based year: January and February belong to the previous year.
    let y = y + 400 - (m <= 2) as u32;
    let era = y / 400;
    let yoe = y - era * 400; // [0, 399]
    let mp = if m > 2 { m - 3 } else { m + 9 }; // [0, 11], March = 0
    let doy = (153 * mp + 2) / 5 + d - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    let days = (era as i64 - 1) * 146_097 + doe as i64 - 719_468;
    // Day 0 of an era, a March 1st, is a Wednesday (3).
    (days, (doe + 3) % 7)
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

#[inline]
const fn is_leap(y: u32) -> bool {
    y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400))
}

/// Days in month `m` (1..=12) of year `y`.
#[inline]
const fn days_in_month(y: u32, m: u32) -> u32 {
    if m == 2 {
        28 + is_leap(y) as u32
    } else {
        // Bit m set for the 31-day months: 1, 3, 5, 7, 8, 10, 12.
        30 + ((0b1_0101_1010_1010 >> m) & 1)
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fields {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// The three-letter day name as written, packed by [`pack3`] (RFC 850's full name is checked
    /// by the parser and stands here as its first three letters).
    day_name: u32,
}

impl Fields {
    /// The fields a bytewise parser read, the day name given as the index of a weekday.
    #[inline]
    fn parsed(
        year: u32,
        month: u32,
        day: u32,
        (hour, minute, second): (u32, u32, u32),
        weekday: u32,
    ) -> Fields {
        Fields {
            year,
            month,
            day,
            hour,
            minute,
            second,
            day_name: DAY_NAMES_PACKED[weekday as usize],
        }
    }

    /// Validates the calendar date, the time of day and the day name; seconds from the epoch.
    #[inline]
    fn to_unix_secs(self) -> Result<i64, Kind> {
        // One branch for all ranges. Day 0 wraps around to u32::MAX and fails too. Second 60 is
        // a leap second (RFC 5322 §3.3 allows 00-60): it means the next minute's :00.
        let out_of_range = (self.day.wrapping_sub(1) >= days_in_month(self.year, self.month))
            | (self.hour > 23)
            | (self.minute > 59)
            | (self.second > 60);
        if out_of_range {
            return Err(Kind::InvalidCalendarDate);
        }
        let (days, weekday) = days_and_weekday(self.year, self.month, self.day);
        if DAY_NAMES_PACKED[weekday as usize] != self.day_name {
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

/// Three bytes packed into the low 24 bits of a `u32`.
#[inline(always)]
const fn pack3(n: [u8; 3]) -> u32 {
    n[0] as u32 | (n[1] as u32) << 8 | (n[2] as u32) << 16
}

/// A perfect-hash table of three-letter names: one load and one compare per lookup, no chain of
/// string comparisons. Each slot holds a name (low 24 bits) and its value (high 8 bits). An unused
/// slot holds the first name, which hashes to another slot and so can never match there.
const fn name_table<const N: usize, const S: usize>(
    names: [[u8; 3]; N],
    first_value: u32,
    hashes: [usize; N],
) -> [u32; S] {
    let mut table = [pack3(names[0]) | first_value << 24; S];
    let mut used = [false; S];
    let mut i = 0;
    while i < N {
        let h = hashes[i];
        // A collision would be a compile-time error (const evaluation), never a runtime panic.
        assert!(!used[h], "hash collision");
        used[h] = true;
        table[h] = pack3(names[i]) | (first_value + i as u32) << 24;
        i += 1;
    }
    table
}

#[inline(always)]
const fn lookup<const S: usize>(table: &[u32; S], name: [u8; 3], h: usize) -> Option<u32> {
    let entry = table[h];
    if entry & 0x00ff_ffff == pack3(name) {
        Some(entry >> 24)
    } else {
        None
    }
}

const fn month_hash(n: [u8; 3]) -> usize {
    (((n[0] as usize) << 3) + n[1] as usize + n[2] as usize) >> 1 & 15
}

const fn weekday_hash(n: [u8; 3]) -> usize {
    (n[0] as usize + n[1] as usize + ((n[2] as usize) << 3)) >> 2 & 7
}

const MONTH_TABLE: [u32; 16] = {
    let mut hashes = [0; 12];
    let mut i = 0;
    while i < 12 {
        hashes[i] = month_hash(MONTH_NAMES[i]);
        i += 1;
    }
    name_table(MONTH_NAMES, 1, hashes)
};

const WEEKDAY_TABLE: [u32; 8] = {
    let mut hashes = [0; 7];
    let mut i = 0;
    while i < 7 {
        hashes[i] = weekday_hash(DAY_NAMES[i]);
        i += 1;
    }
    name_table(DAY_NAMES, 0, hashes)
};

/// Month 1..=12 from its three-letter name (case-sensitive).
#[inline(always)]
fn month(name: [u8; 3]) -> Option<u32> {
    lookup(&MONTH_TABLE, name, month_hash(name))
}

/// Weekday 0 = Sunday .. 6 from its three-letter name (case-sensitive).
#[inline(always)]
fn short_weekday(name: [u8; 3]) -> Option<u32> {
    lookup(&WEEKDAY_TABLE, name, weekday_hash(name))
}

/// Full day names (RFC 850's day-name-l), index 0 = Sunday.
const LONG_DAY_NAMES: [&[u8]; 7] = [
    b"Sunday",
    b"Monday",
    b"Tuesday",
    b"Wednesday",
    b"Thursday",
    b"Friday",
    b"Saturday",
];

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

/// A mask of the given byte positions of a little-endian `u64`.
const fn byte_mask(positions: &[u32]) -> u64 {
    let mut mask = 0;
    let mut i = 0;
    while i < positions.len() {
        mask |= 0xff << (8 * positions[i]);
        i += 1;
    }
    mask
}

/// `bytes` spread over the byte positions of a little-endian `u64`, from `first` on.
const fn bytes_at(first: u32, bytes: &[u8]) -> u64 {
    let mut word = 0;
    let mut i = 0;
    while i < bytes.len() {
        word |= (bytes[i] as u64) << (8 * (first + i as u32));
        i += 1;
    }
    word
}

/// The bits that are wrong if the bytes of `word` under `mask` are not all ASCII digits: zero
/// iff every such byte is a digit. No branch per byte.
///
/// A byte is a digit iff its high nibble is 3 and adding 6 keeps it 3 (0x3A..0x3F become 0x4_).
/// Adding 6 to a byte >= 0xFA carries into the next byte, but such a byte already fails the first
/// test, so the answer stays right.
#[inline(always)]
const fn non_digits(word: u64, mask: u64) -> u64 {
    let high = 0xf0f0_f0f0_f0f0_f0f0 & mask;
    let three = 0x3030_3030_3030_3030 & mask;
    ((word & high) ^ three) | ((word.wrapping_add(0x0606_0606_0606_0606 & mask) & high) ^ three)
}

/// Byte `i` of a little-endian word.
#[inline(always)]
const fn digit_at(word: u64, i: u32) -> u32 {
    ((word >> (8 * i)) & 0xff) as u32
}

/// IMF-fixdate of exactly 29 bytes, all fields checked with four 8-byte loads, masks and
/// no branch per byte. `None` when anything is off: [`imf_fixdate`] then re-parses byte by byte
/// to tell which error it is.
#[inline(always)]
fn imf_fixdate_fast(s: &[u8; 29]) -> Option<Fields> {
    // "Sun, 06 " | "Nov 1994" | " 08:49:3" | "9:37 GMT" (the last overlaps the third)
    let load = |at: usize| {
        u64::from_le_bytes([
            s[at],
            s[at + 1],
            s[at + 2],
            s[at + 3],
            s[at + 4],
            s[at + 5],
            s[at + 6],
            s[at + 7],
        ])
    };
    let (w0, w1, w2, w3) = (load(0), load(8), load(16), load(21));

    const SEP0: u64 = byte_mask(&[3, 4, 7]);
    const SEP1: u64 = byte_mask(&[3]);
    const SEP2: u64 = byte_mask(&[0, 3, 6]);
    const SEP3: u64 = byte_mask(&[4, 5, 6, 7]);
    const LIT0: u64 = bytes_at(3, b", ") | bytes_at(7, b" ");
    const LIT1: u64 = bytes_at(3, b" ");
    const LIT2: u64 = bytes_at(0, b" ") | bytes_at(3, b":") | bytes_at(6, b":");
    const LIT3: u64 = bytes_at(4, b" GMT");
    const DIG0: u64 = byte_mask(&[5, 6]);
    const DIG1: u64 = byte_mask(&[4, 5, 6, 7]);
    const DIG2: u64 = byte_mask(&[1, 2, 4, 5, 7]);
    const DIG3: u64 = byte_mask(&[3]);

    // Every wrong bit of every field, ORed together: one branch for the whole shape.
    let wrong = ((w0 & SEP0) ^ LIT0)
        | ((w1 & SEP1) ^ LIT1)
        | ((w2 & SEP2) ^ LIT2)
        | ((w3 & SEP3) ^ LIT3)
        | non_digits(w0, DIG0)
        | non_digits(w1, DIG1)
        | non_digits(w2, DIG2)
        | non_digits(w3, DIG3);
    if wrong != 0 {
        return None;
    }
    // The day name is not looked up: it is compared with the name of the computed weekday.
    let day_name = (w0 & 0x00ff_ffff) as u32;
    let month = month([s[8], s[9], s[10]])?;
    // Digit values 0-9 in their bytes, then every byte i becomes 10 * digit i + digit i+1: all
    // two-digit numbers at once (at most 99 per byte, so no carry between bytes).
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let pairs = |w: u64, digits: u64| {
        let d = (w ^ ZEROS) & digits;
        d * 10 + (d >> 8)
    };
    let (p0, p1, p2) = (pairs(w0, DIG0), pairs(w1, DIG1), pairs(w2, DIG2));
    Some(Fields {
        year: digit_at(p1, 4) * 100 + digit_at(p1, 6),
        month,
        day: digit_at(p0, 5),
        hour: digit_at(p2, 1),
        minute: digit_at(p2, 4),
        // Byte 7 of the third word holds 10 * the tens digit (nothing follows it in that word).
        second: digit_at(p2, 7) + (digit_at(w3, 3) & 0x0f),
        day_name,
    })
}

/// IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`: 29 bytes at fixed positions.
///
/// The fast path settles every valid date; anything it rejects (including a day name it does
/// not look up but only compares) goes to the bytewise parser, which says which error it is.
#[inline(always)]
fn imf_fixdate(s: &[u8]) -> Result<i64, Kind> {
    if let Ok(fixed) = <&[u8; 29]>::try_from(s) {
        if let Some(Ok(secs)) = imf_fixdate_fast(fixed).map(Fields::to_unix_secs) {
            return Ok(secs);
        }
    }
    imf_fixdate_bytewise(s)
}

/// IMF-fixdate parsed byte by byte: the reference the fast path is tested against, and the
/// path that tells one error from another.
#[cold]
fn imf_fixdate_bytewise(s: &[u8]) -> Result<i64, Kind> {
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
    Fields::parsed(year, month, day, (hour, minute, second), weekday).to_unix_secs()
}

/// asctime, `Sun Nov  6 08:49:37 1994` (or `Sun Nov 06 ...`): 24 bytes, no zone (GMT implied).
#[inline(never)]
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
    Fields::parsed(year, month, day, (hour, minute, second), weekday).to_unix_secs()
}

/// RFC 850, `Sunday, 06-Nov-94 08:49:37 GMT`, the two-digit year resolved against `now`.
///
/// Kept out of line: it is the rare form, and inlined its registers and stack would burden the
/// prologue of the common paths.
#[inline(never)]
fn rfc850(s: &[u8], now: impl FnOnce() -> SystemTime) -> Result<i64, Kind> {
    // The day name is 6 to 9 letters, then ", "; its first three letters tell which it is.
    let Some(comma) = (6..=9).find(|&i| s.get(i) == Some(&b',')) else {
        return Err(Kind::InvalidDate);
    };
    let Some(weekday) =
        short_weekday(arr(s, 0)).filter(|&w| LONG_DAY_NAMES[w as usize] == &s[..comma])
    else {
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
    Fields::parsed(year, month, day, (hour, minute, second), weekday).to_unix_secs()
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
    let mut year = ny - ny.rem_euclid(100) + i64::from(yy);
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
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    match s {
        [b' ' | b'\t', ..] | [.., b' ' | b'\t'] => trim_ows_slow(s),
        _ => s,
    }
}

#[cold]
fn trim_ows_slow(mut s: &[u8]) -> &[u8] {
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
    /// The date as 29 ASCII bytes, e.g. for `http::HeaderValue::from_bytes` (no UTF-8 check).
    #[inline]
    pub fn as_bytes(&self) -> &[u8; 29] {
        &self.buf
    }

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
    // Seconds since -0400-03-01, the start of a 400-year era before year 0: never negative in the
    // clamped range, so Hinnant's civil_from_days runs on unsigned integers.
    const ERA_START: i64 = (719_468 + 146_097) * SECS_PER_DAY;
    let t = (secs + ERA_START) as u64;
    let (days, sod) = ((t / 86_400) as u32, (t % 86_400) as u32);
    let era = days / 146_097;
    let doe = days - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    // Within the clamp, 0..=9999.
    let year = yoe + era * 400 + (month <= 2) as u32 - 400;
    // Day 0 of an era, a March 1st, is a Wednesday: the era is a whole number of weeks.
    let weekday = (doe + 3) % 7;
    let (hour, minute, second) = (sod / 3600, sod / 60 % 60, sod % 60);

    let mut buf = *b"Sun, 00 Jan 0000 00:00:00 GMT";
    buf[..3].copy_from_slice(&DAY_NAMES[weekday as usize]);
    buf[8..11].copy_from_slice(&MONTH_NAMES[(month - 1) as usize]);
    for (at, v) in [
        (5, day),
        (12, year / 100),
        (14, year % 100),
        (17, hour),
        (20, minute),
        (23, second),
    ] {
        buf[at..at + 2].copy_from_slice(&TWO_DIGITS[v as usize]);
    }
    FormattedDate { buf }
}

/// "00" to "99".
const TWO_DIGITS: [[u8; 2]; 100] = {
    let mut table = [[0; 2]; 100];
    let mut i = 0;
    while i < 100 {
        table[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Day of the week of a day count from 1970-01-01: 0 = Sunday .. 6 = Saturday.
    fn weekday(days: i64) -> u32 {
        // 1970-01-01 was a Thursday.
        (days + 4).rem_euclid(7) as u32
    }

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
    fn name_lookups_accept_exactly_the_names() {
        for (i, name) in MONTH_NAMES.iter().enumerate() {
            assert_eq!(month(*name), Some(i as u32 + 1));
        }
        for (i, name) in DAY_NAMES.iter().enumerate() {
            assert_eq!(short_weekday(*name), Some(i as u32));
        }
        // Every other three-byte value over a wide alphabet is rejected.
        let alphabet: Vec<u8> = (0u8..=255).step_by(3).chain(b'A'..=b'z').collect();
        for &a in &alphabet {
            for &b in &alphabet {
                for &c in &alphabet {
                    let n = [a, b, c];
                    assert_eq!(month(n).is_some(), MONTH_NAMES.contains(&n), "{n:?}");
                    assert_eq!(short_weekday(n).is_some(), DAY_NAMES.contains(&n), "{n:?}");
                }
            }
        }
    }

    /// The fast path agrees with the byte-by-byte parser on every single-byte change (all 256
    /// values at all 29 positions) and every two-byte change of neighbouring positions of a few
    /// dates, and accepts nothing the byte-by-byte parser rejects.
    #[test]
    fn imf_fast_path_agrees_with_the_bytewise_parser() {
        let check = |b: &[u8; 29]| {
            // Whatever the fast path accepts, the bytewise parser accepts as the same instant.
            if let Some(Ok(fast)) = imf_fixdate_fast(b).map(Fields::to_unix_secs) {
                assert_eq!(
                    Ok(fast),
                    imf_fixdate_bytewise(b),
                    "{:?}",
                    String::from_utf8_lossy(b)
                );
            }
            assert_eq!(
                imf_fixdate(b),
                imf_fixdate_bytewise(b),
                "{:?}",
                String::from_utf8_lossy(b)
            );
        };
        for date in [
            b"Sun, 06 Nov 1994 08:49:37 GMT",
            b"Tue, 29 Feb 2000 23:59:60 GMT",
            b"Sat, 01 Jan 0000 00:00:00 GMT",
            b"Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            let mut accepted = 0;
            for i in 0..29 {
                for v in 0..=255u8 {
                    let mut b = *date;
                    b[i] = v;
                    check(&b);
                    accepted += imf_fixdate(&b).is_ok() as u32;
                    if i + 1 < 29 {
                        for w in [b'0', b'9', b' ', b':', 0x2f, 0x3a, 0xff, 0xfa] {
                            b[i + 1] = w;
                            check(&b);
                        }
                    }
                }
            }
            // Some changes keep the date valid (another digit that still makes a real date).
            assert!(accepted > 29, "{accepted}");
        }
    }

    #[test]
    fn month_lengths() {
        let lengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        for (m, len) in (1..=12).zip(lengths) {
            assert_eq!(days_in_month(2023, m), len);
            assert_eq!(days_in_month(2024, m), len + (m == 2) as u32);
        }
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
    }

    #[test]
    fn weekday_from_the_era_matches_the_day_count() {
        for y in 0..=9999 {
            for (m, d) in [(1, 1), (2, 28), (3, 1), (12, 31)] {
                let (days, wd) = days_and_weekday(y, m, d);
                assert_eq!(days, days_from_civil(y, m, d));
                assert_eq!(wd, weekday(days), "{y}-{m}-{d}");
            }
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
