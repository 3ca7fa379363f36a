//! The parse error.

use std::fmt;

/// Why a value is not a valid `Retry-After` value (or HTTP-date).
///
/// A small `Copy` value: [`kind`](ParseError::kind) tells what was wrong. The parser never
/// allocates, so neither does the error; it carries no copy of the (hostile) input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParseError {
    kind: ParseErrorKind,
}

/// What was wrong with a rejected value. See [`ParseError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The value is empty, or only spaces and tabs.
    Empty,
    /// delay-seconds carries a sign (`+5`, `-5`): RFC 9110 allows digits only.
    Signed,
    /// delay-seconds has a fractional part (`1.5`): RFC 9110 allows whole seconds only.
    Fraction,
    /// A value starting with a digit holds something other than digits (`12a`, `1 2`, `1e3`).
    InvalidDelay,
    /// The value is not in any of the three HTTP-date forms (IMF-fixdate, RFC 850, asctime):
    /// wrong shape, unknown day or month name, a non-digit where a digit belongs, wrong case
    /// (HTTP-dates are case-sensitive).
    InvalidDate,
    /// The date has the right shape but names no real instant: day 31 of November, 29 February
    /// of a non-leap year, day 0, hour 24, minute 60, second 61.
    InvalidCalendarDate,
    /// The date is followed by a time zone other than `GMT` (`UTC`, `+0000`, `EST`, `gmt`).
    NotGmt,
    /// The day name disagrees with the date (`Mon, 06 Nov 1994`: that day was a Sunday).
    /// RFC 5322 §3.3, which IMF-fixdate comes from, says the day name MUST be the day implied by
    /// the date; a date that contradicts itself is not trusted.
    WeekdayMismatch,
    /// The date is valid but outside what this crate represents: years 0000 to 9999, and what the
    /// platform's [`SystemTime`](std::time::SystemTime) can hold (on Windows, not before 1601). An
    /// RFC 850 two-digit year resolved against a `now` far from the present can land here too.
    OutOfRange,
}

impl ParseError {
    /// An error of the given kind.
    #[inline]
    pub const fn new(kind: ParseErrorKind) -> Self {
        Self { kind }
    }

    /// What was wrong with the value.
    #[inline]
    pub const fn kind(&self) -> ParseErrorKind {
        self.kind
    }
}

impl From<ParseErrorKind> for ParseError {
    #[inline]
    fn from(kind: ParseErrorKind) -> Self {
        Self { kind }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            ParseErrorKind::Empty => "empty Retry-After value",
            ParseErrorKind::Signed => "delay-seconds must not carry a sign",
            ParseErrorKind::Fraction => "delay-seconds must be whole seconds",
            ParseErrorKind::InvalidDelay => "delay-seconds must be ASCII digits only",
            ParseErrorKind::InvalidDate => "not an HTTP-date (IMF-fixdate, RFC 850 or asctime)",
            ParseErrorKind::InvalidCalendarDate => {
                "HTTP-date names a day or time that does not exist"
            }
            ParseErrorKind::NotGmt => "HTTP-date must be in GMT",
            ParseErrorKind::WeekdayMismatch => "HTTP-date day name does not match the date",
            ParseErrorKind::OutOfRange => "HTTP-date out of the representable range",
        })
    }
}

impl std::error::Error for ParseError {}
