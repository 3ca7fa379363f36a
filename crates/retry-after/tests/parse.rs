//! Parsing rules: the RFC 9110 examples, every error kind, saturation, the 50-year rule, and
//! hostile input.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use resile_retry_after::{
    format_http_date, parse_http_date, parse_http_date_at, ParseErrorKind as K, RetryAfter,
    MAX_DELAY,
};

/// Sun, 06 Nov 1994 08:49:37 GMT, the date of RFC 9110's examples.
const RFC_EXAMPLE_SECS: u64 = 784_111_777;

fn at(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// An instant from an IMF-fixdate, for readable tests.
fn date(s: &str) -> SystemTime {
    parse_http_date(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn now_2025() -> SystemTime {
    date("Wed, 01 Jan 2025 00:00:00 GMT")
}

fn kind(value: &[u8]) -> K {
    match RetryAfter::parse_at(value, now_2025()) {
        Ok(v) => panic!("{:?} parsed as {v:?}", String::from_utf8_lossy(value)),
        Err(e) => e.kind(),
    }
}

#[test]
fn rfc9110_http_date_examples_name_the_same_instant() {
    // RFC 9110 §5.6.7.
    let expected = RetryAfter::Date(UNIX_EPOCH + Duration::from_secs(RFC_EXAMPLE_SECS));
    for value in [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(
            RetryAfter::parse_at(value.as_bytes(), now_2025()),
            Ok(expected),
            "{value}"
        );
        assert_eq!(value.parse::<RetryAfter>(), Ok(expected), "{value}");
    }
}

#[test]
fn rfc9110_retry_after_examples() {
    // RFC 9110 §10.2.3.
    assert_eq!(
        RetryAfter::parse(b"Fri, 31 Dec 1999 23:59:59 GMT"),
        Ok(RetryAfter::Date(
            UNIX_EPOCH + Duration::from_secs(946_684_799)
        ))
    );
    assert_eq!(
        RetryAfter::parse(b"120"),
        Ok(RetryAfter::Delay(Duration::from_secs(120)))
    );
}

#[test]
fn asctime_day_may_be_zero_padded() {
    assert_eq!(
        parse_http_date(b"Sun Nov 06 08:49:37 1994"),
        parse_http_date(b"Sun Nov  6 08:49:37 1994")
    );
    assert_eq!(parse_http_date(b"Thu Jan  1 00:00:00 1970"), Ok(UNIX_EPOCH));
}

#[test]
fn surrounding_spaces_and_tabs_are_tolerated() {
    let delay = Ok(RetryAfter::Delay(Duration::from_secs(120)));
    for value in [" 120", "120 ", "\t120\t", " \t 120 \t "] {
        assert_eq!(RetryAfter::parse(value.as_bytes()), delay, "{value:?}");
    }
    let date = Ok(RetryAfter::Date(
        UNIX_EPOCH + Duration::from_secs(RFC_EXAMPLE_SECS),
    ));
    for value in [
        "  Sun, 06 Nov 1994 08:49:37 GMT\t",
        "\tSunday, 06-Nov-94 08:49:37 GMT ",
        " Sun Nov  6 08:49:37 1994 ",
    ] {
        assert_eq!(RetryAfter::parse_at(value.as_bytes(), now_2025()), date);
    }
    // Other whitespace is not OWS.
    assert_eq!(kind(b"120\r\n"), K::InvalidDelay);
    assert_eq!(kind(b"\n120"), K::InvalidDate);
    assert_eq!(kind(b"\x0b120"), K::InvalidDate);
}

#[test]
fn delay_seconds_errors() {
    assert_eq!(kind(b""), K::Empty);
    assert_eq!(kind(b"   "), K::Empty);
    assert_eq!(kind(b" \t"), K::Empty);
    assert_eq!(kind(b"+5"), K::Signed);
    assert_eq!(kind(b"-5"), K::Signed);
    assert_eq!(kind(b"-0"), K::Signed);
    assert_eq!(kind(b"1.5"), K::Fraction);
    assert_eq!(kind(b"1."), K::Fraction);
    assert_eq!(kind(b".5"), K::Fraction);
    assert_eq!(kind(b"12a"), K::InvalidDelay);
    assert_eq!(kind(b"1 2"), K::InvalidDelay);
    assert_eq!(kind(b"1e3"), K::InvalidDelay);
    assert_eq!(kind(b"0x10"), K::InvalidDelay);
    assert_eq!(kind(b"1,2"), K::InvalidDelay);
    assert_eq!(kind(b"1994-11-06T08:49:37Z"), K::InvalidDelay); // ISO 8601 is not an HTTP-date
    assert_eq!(kind(b"\xd9\xa3"), K::InvalidDate); // Arabic-Indic digit three
    assert_eq!(kind(b"soon"), K::InvalidDate);
}

#[test]
fn leading_zeros_are_fine() {
    assert_eq!(
        RetryAfter::parse(b"000"),
        Ok(RetryAfter::Delay(Duration::ZERO))
    );
    assert_eq!(
        RetryAfter::parse(b"0000000000000000000000000000000000042"),
        Ok(RetryAfter::Delay(Duration::from_secs(42)))
    );
}

#[test]
fn huge_delays_saturate_to_the_documented_maximum() {
    assert_eq!(MAX_DELAY, Duration::from_secs(u32::MAX as u64));
    let max = Ok(RetryAfter::Delay(MAX_DELAY));
    assert_eq!(RetryAfter::parse(b"4294967295"), max);
    assert_eq!(RetryAfter::parse(b"4294967296"), max);
    assert_eq!(RetryAfter::parse(b"18446744073709551615"), max); // u64::MAX
    assert_eq!(RetryAfter::parse(b"18446744073709551616"), max); // u64::MAX + 1
    assert_eq!(RetryAfter::parse(b"1000000000000000000000000000000"), max); // 10^30
    let many = vec![b'9'; 100_000];
    assert_eq!(RetryAfter::parse(&many), max);
    assert_eq!(
        RetryAfter::parse(b"4294967294"),
        Ok(RetryAfter::Delay(Duration::from_secs(4_294_967_294)))
    );
}

#[test]
fn invalid_calendar_dates_are_errors() {
    for value in [
        "Wed, 31 Nov 1994 08:49:37 GMT", // November has 30 days
        "Wed, 29 Feb 1995 08:49:37 GMT", // 1995 is not a leap year
        "Thu, 29 Feb 1900 08:49:37 GMT", // 1900 is not a leap year (century)
        "Sun, 00 Nov 1994 08:49:37 GMT", // day 0
        "Sun, 32 Dec 1994 08:49:37 GMT", // day 32
        "Sun, 06 Nov 1994 24:00:00 GMT", // hour 24
        "Sun, 06 Nov 1994 08:60:00 GMT", // minute 60
        "Sun, 06 Nov 1994 08:49:61 GMT", // second 61
        "Sun, 06 Nov 1994 99:99:99 GMT",
        "Sunday, 31-Jun-94 08:49:37 GMT", // June has 30 days
        "Sun Feb 30 08:49:37 1994",
        "Sun Nov  0 08:49:37 1994",
    ] {
        assert_eq!(kind(value.as_bytes()), K::InvalidCalendarDate, "{value}");
    }
    // Leap days that exist.
    assert!(parse_http_date(b"Tue, 29 Feb 2000 00:00:00 GMT").is_ok());
    assert!(parse_http_date(b"Thu, 29 Feb 2024 00:00:00 GMT").is_ok());
    assert!(parse_http_date(b"Tue, 29 Feb 1600 00:00:00 GMT").is_ok());
}

#[test]
fn a_leap_second_is_the_next_minute() {
    assert_eq!(
        parse_http_date(b"Sat, 31 Dec 2016 23:59:60 GMT"),
        Ok(date("Sun, 01 Jan 2017 00:00:00 GMT"))
    );
    // The day name is that of the date as written, not of the next minute's.
    assert_eq!(kind(b"Sun, 31 Dec 2016 23:59:60 GMT"), K::WeekdayMismatch);
    // Would pass the end of year 9999.
    assert_eq!(kind(b"Fri, 31 Dec 9999 23:59:60 GMT"), K::OutOfRange);
}

#[test]
fn zones_other_than_gmt_are_errors() {
    for value in [
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 +0000",
        "Sun, 06 Nov 1994 08:49:37 gmt",
        "Sun, 06 Nov 1994 08:49:37 EST",
        "Sun, 06 Nov 1994 08:49:37 Z",
        "Sun, 06 Nov 1994 08:49:37",
        "Sun, 06 Nov 1994 08:49:37 GMT+1",
        "Sun, 06 Nov 1994 08:49:37  GMT",
        "Sunday, 06-Nov-94 08:49:37 UTC",
        "Sunday, 06-Nov-94 08:49:37 PST",
    ] {
        assert_eq!(kind(value.as_bytes()), K::NotGmt, "{value}");
    }
    // asctime has no zone at all.
    assert_eq!(kind(b"Sun Nov  6 08:49:37 1994 GMT"), K::InvalidDate);
}

#[test]
fn http_dates_are_case_sensitive_and_exactly_shaped() {
    for value in [
        "sun, 06 Nov 1994 08:49:37 GMT",
        "SUN, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Sun, 06 NOV 1994 08:49:37 GMT",
        "Sun,06 Nov 1994 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06-Nov-1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08.49.37 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 06 Nov 199x 08:49:37 GMT",
        "Sun, 06 Nov +994 08:49:37 GMT",
        "Sun, 06 Nov 1994T08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Xyz, 31 Nov 1994 08:49:37 GMT", // the unknown name is reported, not the bad day
        "Sun, 31 Xyz 1994 08:49:37 GMT",
        "Sunday, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06-Nov-94 08:49:37 GMT",
        "sunday, 06-Nov-94 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sunday, 6-Nov-94 08:49:37 GMT",
        "Sunday 06-Nov-94 08:49:37 GMT",
        "Sundays, 06-Nov-94 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",
        "Sun Nov  6 08:49:37 94",
        "Sun Nov  6 08:49:37  1994",
        "Sun nov  6 08:49:37 1994",
        "Sun Nov  6 08:49 1994",
        "Sun",
        "S",
    ] {
        assert_eq!(kind(value.as_bytes()), K::InvalidDate, "{value}");
    }
}

#[test]
fn a_day_name_that_contradicts_the_date_is_an_error() {
    assert_eq!(kind(b"Mon, 06 Nov 1994 08:49:37 GMT"), K::WeekdayMismatch);
    assert_eq!(kind(b"Monday, 06-Nov-94 08:49:37 GMT"), K::WeekdayMismatch);
    assert_eq!(kind(b"Mon Nov  6 08:49:37 1994"), K::WeekdayMismatch);
    // Checked after the RFC 850 year is resolved: 06-Nov-94 in 2080 is 2094, a Saturday.
    let now_2080 = date("Mon, 01 Jan 2080 00:00:00 GMT");
    assert_eq!(
        RetryAfter::parse_at(b"Saturday, 06-Nov-94 08:49:37 GMT", now_2080),
        Ok(RetryAfter::Date(date("Sat, 06 Nov 2094 08:49:37 GMT")))
    );
    assert_eq!(
        RetryAfter::parse_at(b"Sunday, 06-Nov-94 08:49:37 GMT", now_2080)
            .unwrap_err()
            .kind(),
        K::WeekdayMismatch
    );
}

#[test]
fn years_0000_to_9999_are_accepted() {
    assert_eq!(
        parse_http_date(b"Sat, 01 Jan 0000 00:00:00 GMT"),
        Ok(at(-62_167_219_200))
    );
    assert_eq!(
        parse_http_date(b"Fri, 31 Dec 9999 23:59:59 GMT"),
        Ok(at(253_402_300_799))
    );
    assert_eq!(
        parse_http_date(b"Wed, 31 Dec 1969 23:59:59 GMT"),
        Ok(at(-1))
    );
}

/// Formats `t` in RFC 850 form (two-digit year).
fn rfc850(t: SystemTime) -> String {
    let imf = format_http_date(t).to_string(); // "Sun, 06 Nov 1994 08:49:37 GMT"
    let long = match &imf[..3] {
        "Sun" => "Sunday",
        "Mon" => "Monday",
        "Tue" => "Tuesday",
        "Wed" => "Wednesday",
        "Thu" => "Thursday",
        "Fri" => "Friday",
        "Sat" => "Saturday",
        other => unreachable!("{other}"),
    };
    format!(
        "{long}, {}-{}-{} {} GMT",
        &imf[5..7],
        &imf[8..11],
        &imf[14..16],
        &imf[17..25]
    )
}

#[test]
fn rfc850_fifty_year_rule_at_several_nows() {
    // (now, two-digit date, expected IMF-fixdate)
    let cases = [
        // httpdate pins 70..99 to the 1900s: wrong from 2020 on for "70".
        (
            "Wed, 01 Jan 2025 00:00:00 GMT",
            "Wednesday, 01-Jan-70 00:00:00 GMT",
            "Wed, 01 Jan 2070 00:00:00 GMT",
        ),
        (
            "Wed, 01 Jan 2025 00:00:00 GMT",
            "Thursday, 01-Jan-76 00:00:00 GMT",
            "Thu, 01 Jan 1976 00:00:00 GMT",
        ),
        (
            "Wed, 01 Jan 2025 00:00:00 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT",
        ),
        (
            "Wed, 01 Jan 2025 00:00:00 GMT",
            "Saturday, 01-Jan-00 00:00:00 GMT",
            "Sat, 01 Jan 2000 00:00:00 GMT",
        ),
        // The boundary is a timestamp, not a year: exactly 50 years ahead is still ahead, one
        // second more is the past.
        (
            "Wed, 01 Jan 2025 00:00:00 GMT",
            "Tuesday, 01-Jan-75 00:00:00 GMT",
            "Tue, 01 Jan 2075 00:00:00 GMT",
        ),
        (
            "Wed, 01 Jan 2025 00:00:00 GMT",
            "Wednesday, 01-Jan-75 00:00:01 GMT",
            "Wed, 01 Jan 1975 00:00:01 GMT",
        ),
        (
            "Wed, 01 Jan 2025 00:00:00 GMT",
            "Monday, 31-Dec-74 23:59:59 GMT",
            "Mon, 31 Dec 2074 23:59:59 GMT",
        ),
        // In 1994, as in RFC 2616's day.
        (
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT",
        ),
        (
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Thursday, 01-Jan-70 00:00:00 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
        ),
        (
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 01-Jan-40 00:00:00 GMT",
            "Sun, 01 Jan 2040 00:00:00 GMT",
        ),
        (
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Monday, 01-Jan-45 00:00:00 GMT",
            "Mon, 01 Jan 1945 00:00:00 GMT",
        ),
        // Across a century: in 2080, "05" is 2105 (25 years ahead), "31" would be 2131.
        (
            "Mon, 01 Jan 2080 00:00:00 GMT",
            "Thursday, 01-Jan-05 00:00:00 GMT",
            "Thu, 01 Jan 2105 00:00:00 GMT",
        ),
        (
            "Mon, 01 Jan 2080 00:00:00 GMT",
            "Wednesday, 01-Jan-31 00:00:00 GMT",
            "Wed, 01 Jan 2031 00:00:00 GMT",
        ),
        (
            "Mon, 01 Jan 2080 00:00:00 GMT",
            "Sunday, 01-Jan-30 00:00:00 GMT",
            "Sun, 01 Jan 2130 00:00:00 GMT",
        ),
        (
            "Mon, 01 Jan 2080 00:00:00 GMT",
            "Monday, 01-Jan-80 00:00:00 GMT",
            "Mon, 01 Jan 2080 00:00:00 GMT",
        ),
        (
            "Thu, 31 Dec 2099 23:59:59 GMT",
            "Wednesday, 31-Dec-49 23:59:59 GMT",
            "Wed, 31 Dec 2149 23:59:59 GMT",
        ),
        (
            "Thu, 31 Dec 2099 23:59:59 GMT",
            "Saturday, 01-Jan-50 00:00:00 GMT",
            "Sat, 01 Jan 2050 00:00:00 GMT",
        ),
        (
            "Sat, 01 Jan 2000 00:00:00 GMT",
            "Friday, 31-Dec-99 23:59:59 GMT",
            "Fri, 31 Dec 1999 23:59:59 GMT",
        ),
        (
            "Sat, 01 Jan 2000 00:00:00 GMT",
            "Saturday, 01-Jan-50 00:00:00 GMT",
            "Sat, 01 Jan 2050 00:00:00 GMT",
        ),
        (
            "Sat, 01 Jan 2000 00:00:00 GMT",
            "Monday, 01-Jan-51 00:00:00 GMT",
            "Mon, 01 Jan 1951 00:00:00 GMT",
        ),
    ];
    for (now, value, expected) in cases {
        let now = date(now);
        // The day names above are those of the expected year: a wrong year choice would fail
        // with WeekdayMismatch.
        match parse_http_date_at(value.as_bytes(), now) {
            Ok(t) => assert_eq!(format_http_date(t).as_str(), expected, "{value}"),
            Err(e) => panic!("{value} at {}: {e}", format_http_date(now)),
        }
    }
}

#[test]
fn rfc850_dates_round_trip_within_fifty_years_of_now() {
    for now in [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Wed, 01 Jan 2025 00:00:00 GMT",
        "Wed, 01 Jan 2070 12:00:00 GMT",
        "Thu, 31 Dec 2099 23:59:59 GMT",
    ] {
        let now = date(now);
        let now_secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        // Every ~37 days across the 100-year window (-50y, +50y].
        let window = 50 * 365 * 86_400;
        let mut t = now_secs - window + 86_400;
        while t <= now_secs + window - 86_400 {
            let s = rfc850(at(t));
            assert_eq!(parse_http_date_at(s.as_bytes(), now), Ok(at(t)), "{s}");
            t += 37 * 86_400 + 3_607;
        }
    }
}

#[test]
fn rfc850_far_from_the_present_is_out_of_range_not_a_panic() {
    // A now in year 0010: "99" resolves to year -1.
    let now = date("Fri, 01 Jan 0010 00:00:00 GMT");
    assert_eq!(
        parse_http_date_at(b"Friday, 01-Jan-99 00:00:00 GMT", now)
            .unwrap_err()
            .kind(),
        K::OutOfRange
    );
    // A now past year 9999 (SystemTime can hold it on this platform).
    let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
    assert_eq!(
        parse_http_date_at(b"Friday, 01-Jan-99 00:00:00 GMT", far)
            .unwrap_err()
            .kind(),
        K::OutOfRange
    );
    // The most extreme instants a SystemTime holds here.
    for now in [
        UNIX_EPOCH + Duration::from_secs(i64::MAX as u64),
        UNIX_EPOCH - Duration::from_secs(i64::MAX as u64),
    ] {
        assert!(parse_http_date_at(b"Friday, 01-Jan-99 00:00:00 GMT", now).is_err());
    }
}

#[test]
fn the_clock_matters_only_for_rfc850() {
    let rfc_example = Ok(RetryAfter::Date(
        UNIX_EPOCH + Duration::from_secs(RFC_EXAMPLE_SECS),
    ));
    for now in [UNIX_EPOCH, far_future(), far_past()] {
        assert_eq!(
            RetryAfter::parse_at(b"Sun, 06 Nov 1994 08:49:37 GMT", now),
            rfc_example
        );
        assert_eq!(
            RetryAfter::parse_at(b"Sun Nov  6 08:49:37 1994", now),
            rfc_example
        );
        assert_eq!(
            RetryAfter::parse_at(b"17", now),
            Ok(RetryAfter::Delay(Duration::from_secs(17)))
        );
    }
}

fn far_future() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(i64::MAX as u64)
}

fn far_past() -> SystemTime {
    UNIX_EPOCH - Duration::from_secs(i64::MAX as u64)
}

#[test]
fn delay_from() {
    let t = date("Sun, 06 Nov 1994 08:49:37 GMT");
    let ra = RetryAfter::Date(t);
    assert_eq!(
        ra.delay_from(t - Duration::from_millis(1_500)),
        Duration::from_millis(1_500)
    );
    assert_eq!(ra.delay_from(t), Duration::ZERO);
    assert_eq!(ra.delay_from(t + Duration::from_secs(3600)), Duration::ZERO);
    // A far date is capped like any delay.
    let far = RetryAfter::Date(date("Fri, 31 Dec 9999 23:59:59 GMT"));
    assert_eq!(far.delay_from(UNIX_EPOCH), MAX_DELAY);
    assert_eq!(
        RetryAfter::Delay(Duration::MAX).delay_from(UNIX_EPOCH),
        MAX_DELAY
    );
    assert_eq!(
        RetryAfter::Delay(Duration::from_secs(9)).delay_from(t),
        Duration::from_secs(9)
    );
}

#[test]
fn display_writes_what_a_server_sends() {
    assert_eq!(
        RetryAfter::Delay(Duration::from_secs(120)).to_string(),
        "120"
    );
    assert_eq!(
        RetryAfter::Delay(Duration::from_millis(300)).to_string(),
        "1"
    );
    assert_eq!(RetryAfter::Delay(Duration::ZERO).to_string(), "0");
    assert_eq!(
        RetryAfter::Date(UNIX_EPOCH + Duration::from_secs(RFC_EXAMPLE_SECS)).to_string(),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
    // Width and padding flags are honoured like any string.
    assert_eq!(
        format!("{:>5}", RetryAfter::Delay(Duration::from_secs(7))),
        "    7"
    );
    // Obsolete forms are written back as IMF-fixdate.
    let ra = RetryAfter::parse_at(b"Sunday, 06-Nov-94 08:49:37 GMT", now_2025()).unwrap();
    assert_eq!(ra.to_string(), "Sun, 06 Nov 1994 08:49:37 GMT");
}

#[test]
fn format_http_date_clamps_and_truncates() {
    assert_eq!(
        format_http_date(UNIX_EPOCH + Duration::from_millis(999)).as_str(),
        "Thu, 01 Jan 1970 00:00:00 GMT"
    );
    assert_eq!(
        format_http_date(UNIX_EPOCH - Duration::from_millis(1)).as_str(),
        "Wed, 31 Dec 1969 23:59:59 GMT"
    );
    assert_eq!(
        format_http_date(UNIX_EPOCH + Duration::from_secs(i64::MAX as u64)).as_str(),
        "Fri, 31 Dec 9999 23:59:59 GMT"
    );
    assert_eq!(
        format_http_date(UNIX_EPOCH - Duration::from_secs(i64::MAX as u64)).as_str(),
        "Sat, 01 Jan 0000 00:00:00 GMT"
    );
    assert_eq!(
        format!("{:?}", format_http_date(UNIX_EPOCH)),
        "\"Thu, 01 Jan 1970 00:00:00 GMT\""
    );
}

#[test]
fn errors_display_and_are_std_errors() {
    let err = RetryAfter::parse(b"-1").unwrap_err();
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
    assert_eq!(boxed.to_string(), "delay-seconds must not carry a sign");
    assert_eq!(
        "Sun, 06 Nov 1994 08:49:37 UTC"
            .parse::<RetryAfter>()
            .unwrap_err()
            .to_string(),
        "HTTP-date must be in GMT"
    );
}

#[test]
fn hostile_inputs_never_panic() {
    let imf = b"Sun, 06 Nov 1994 08:49:37 GMT";
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![b'1'; 1 << 20],
        vec![b' '; 1 << 20],
        vec![b'\t'; 1 << 20],
        vec![b'a'; 1 << 20],
        vec![0; 1 << 20],
        vec![0xff; 1 << 20],
        [&imf[..], &vec![b'x'; 1 << 20][..]].concat(),
        [&b"Sunday,"[..], &vec![b' '; 1 << 16][..]].concat(),
        [
            &vec![b' '; 1 << 16][..],
            &b"1"[..],
            &vec![b' '; 1 << 16][..],
        ]
        .concat(),
        b"1000000000000000000000000000000".to_vec(), // 10^30
        b"\0".to_vec(),
        b"12\0".to_vec(),
        b"\x0012".to_vec(),
        b"Sun, 06 Nov 1994 08:49:37 GMT\0".to_vec(),
        b"Sun, 06 Nov 1994 08:49:37\0GMT".to_vec(),
        b"Sun,\x0006 Nov 1994 08:49:37 GMT".to_vec(),
        "Sün, 06 Nov 1994 08:49:37 GMT".as_bytes().to_vec(),
        "Sun, 06 Növ 1994 08:49:37 GMT".as_bytes().to_vec(),
        "Sunday, 06-Nov-94 08:49:37 GMT\u{202e}".as_bytes().to_vec(),
        "Søndag, 06-Nov-94 08:49:37 GMT".as_bytes().to_vec(),
        "١٢٠".as_bytes().to_vec(),
        "１２０".as_bytes().to_vec(),
        "Sun, ０6 Nov 1994 08:49:37 GMT".as_bytes().to_vec(),
        b"\xff\xfe\xfd,".to_vec(),
        b"Wednesday,".to_vec(),
        b"Wednesday, ".to_vec(),
        b",,,,".to_vec(),
        b"   ,".to_vec(),
    ];
    // Every truncation and every single-byte corruption of the three example dates.
    for example in [
        &b"Sun, 06 Nov 1994 08:49:37 GMT"[..],
        &b"Sunday, 06-Nov-94 08:49:37 GMT"[..],
        &b"Sun Nov  6 08:49:37 1994"[..],
    ] {
        for len in 0..=example.len() {
            inputs.push(example[..len].to_vec());
            inputs.push(example[len..].to_vec());
        }
        for i in 0..example.len() {
            for b in [
                0u8, b' ', b'0', b'9', b':', b',', b'-', 0x80, 0xff, b'A', b'z',
            ] {
                let mut v = example.to_vec();
                v[i] = b;
                inputs.push(v);
            }
        }
    }
    for input in &inputs {
        for now in [UNIX_EPOCH, now_2025(), far_future(), far_past()] {
            // Must return, Ok or Err; every Ok value must format and re-parse to itself.
            if let Ok(v) = RetryAfter::parse_at(input, now) {
                let again = RetryAfter::parse_at(v.to_string().as_bytes(), now);
                assert_eq!(again, Ok(v), "{:?}", String::from_utf8_lossy(input));
            }
            let _ = parse_http_date_at(input, now);
        }
    }
}
