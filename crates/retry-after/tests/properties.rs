//! Property tests: format-then-parse round trips, agreement with `httpdate` on everything it
//! accepts, and arbitrary bytes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use resile_retry_after::{
    ceil_seconds, format_delay, format_http_date, parse_http_date, parse_http_date_at,
    ParseErrorKind, RetryAfter, MAX_DELAY,
};

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z in Unix seconds.
const MIN_SECS: i64 = -62_167_219_200;
const MAX_SECS: i64 = 253_402_300_799;

fn at(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn now_2025() -> SystemTime {
    at(1_735_689_600)
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn whole_second_delays_round_trip(secs in any::<u64>()) {
        let text = format_delay(Duration::from_secs(secs)).to_string();
        prop_assert_eq!(&text, &secs.to_string());
        let expected = Duration::from_secs(secs).min(MAX_DELAY);
        prop_assert_eq!(RetryAfter::parse(text.as_bytes()), Ok(RetryAfter::Delay(expected)));
    }

    #[test]
    fn any_delay_formats_rounded_up_and_parses_back(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
        let d = Duration::new(secs, nanos);
        let up = ceil_seconds(d);
        prop_assert!(u128::from(up) * 1_000_000_000 >= d.as_nanos() || up == u64::MAX);
        prop_assert!(u128::from(up) * 1_000_000_000 < d.as_nanos() + 1_000_000_000);
        let text = RetryAfter::Delay(d).to_string();
        prop_assert_eq!(&text, &format_delay(d).to_string());
        prop_assert_eq!(
            RetryAfter::parse(text.as_bytes()),
            Ok(RetryAfter::Delay(Duration::from_secs(up).min(MAX_DELAY)))
        );
    }

    #[test]
    fn dates_round_trip_over_the_whole_range(secs in MIN_SECS..=MAX_SECS, nanos in 0u32..1_000_000_000) {
        let whole = at(secs);
        let t = whole + Duration::from_nanos(u64::from(nanos));
        let text = format_http_date(t);
        // Formatting truncates to the second; parsing gives exactly that second back.
        prop_assert_eq!(parse_http_date(text.as_str().as_bytes()), Ok(whole));
        let ra = RetryAfter::Date(whole);
        prop_assert_eq!(ra.to_string(), text.as_str());
        prop_assert_eq!(RetryAfter::parse(ra.to_string().as_bytes()), Ok(ra));
    }

    #[test]
    fn agrees_with_httpdate_on_every_date_it_formats(secs in 0i64..=MAX_SECS) {
        let t = at(secs);
        let text = httpdate::fmt_http_date(t);
        prop_assert_eq!(format_http_date(t).to_string(), text.as_str());
        prop_assert_eq!(httpdate::parse_http_date(&text).ok(), Some(t));
        prop_assert_eq!(parse_http_date(text.as_bytes()), Ok(t));
    }

    /// Dates assembled from fields, valid or not (day 0-31 of any month, hour up to 24, a random
    /// day name): wherever httpdate accepts one, this parser accepts it as the same instant.
    /// Where only this parser accepts it, the reason is one it documents.
    #[test]
    fn agrees_with_httpdate_on_every_imf_fixdate_and_asctime_it_accepts(
        wday in 0usize..7,
        day in 0u32..=32,
        month in 0usize..12,
        year in prop_oneof![1960u32..=2110, 0u32..=9999],
        hour in 0u32..=24,
        minute in 0u32..=60,
        second in 0u32..=61,
        right_weekday in any::<bool>(),
    ) {
        // Half the cases get the right day name, so valid dates are well covered.
        let wday = if right_weekday {
            let probe = format!("Sun, {day:02} {} {year:04} 00:00:00 GMT", MONTHS[month]);
            match parse_http_date(probe.as_bytes()) {
                Err(e) if e.kind() == ParseErrorKind::WeekdayMismatch => {
                    // Find the day name that fits.
                    (0..7).find(|&w| {
                        let p = format!("{}, {day:02} {} {year:04} 00:00:00 GMT", DAYS[w], MONTHS[month]);
                        parse_http_date(p.as_bytes()).is_ok()
                    }).unwrap_or(wday)
                }
                _ => 0,
            }
        } else {
            wday
        };
        let imf = format!(
            "{}, {day:02} {} {year:04} {hour:02}:{minute:02}:{second:02} GMT",
            DAYS[wday], MONTHS[month]
        );
        let asctime = format!(
            "{} {} {day:>2} {hour:02}:{minute:02}:{second:02} {year:04}",
            DAYS[wday], MONTHS[month]
        );
        for text in [imf, asctime] {
            let ours = parse_http_date(text.as_bytes());
            match httpdate::parse_http_date(&text) {
                Ok(theirs) => prop_assert_eq!(ours, Ok(theirs), "{}", text),
                Err(_) => {
                    if let Ok(t) = ours {
                        // httpdate rejects years before 1970 and leap seconds; nothing else.
                        prop_assert!(year < 1970 || second == 60, "{} -> {:?}", text, t);
                    }
                }
            }
        }
    }

    /// RFC 850: for any `now` and any date within 50 years of it (either side), the two-digit
    /// year resolves to the right century.
    #[test]
    fn rfc850_resolves_within_fifty_years_of_any_now(
        now in 0i64..=(MAX_SECS - 60 * 366 * 86_400),
        offset in -(49 * 365 * 86_400i64)..=(49 * 365 * 86_400),
    ) {
        let t = now + offset;
        prop_assume!((MIN_SECS..=MAX_SECS).contains(&t));
        let imf = format_http_date(at(t)).to_string();
        let long = match &imf[..3] {
            "Sun" => "Sunday", "Mon" => "Monday", "Tue" => "Tuesday", "Wed" => "Wednesday",
            "Thu" => "Thursday", "Fri" => "Friday", _ => "Saturday",
        };
        let rfc850 = format!("{long}, {}-{}-{} {} GMT", &imf[5..7], &imf[8..11], &imf[14..16], &imf[17..25]);
        prop_assert_eq!(parse_http_date_at(rfc850.as_bytes(), at(now)), Ok(at(t)), "{}", rfc850);
    }

    /// Arbitrary bytes: never a panic; anything accepted formats and parses back to itself.
    #[test]
    fn arbitrary_bytes_never_panic_and_accepted_values_round_trip(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        now in MIN_SECS..=MAX_SECS,
    ) {
        if let Ok(v) = RetryAfter::parse_at(&bytes, at(now)) {
            prop_assert_eq!(RetryAfter::parse_at(v.to_string().as_bytes(), at(now)), Ok(v));
        }
    }

    /// Valid dates with one byte replaced: never a panic; anything accepted round-trips.
    #[test]
    fn corrupted_dates_never_panic(secs in MIN_SECS..=MAX_SECS, form in 0usize..3, pos in 0usize..40, byte in any::<u8>()) {
        let imf = format_http_date(at(secs)).to_string();
        let mut text = match form {
            0 => imf.into_bytes(),
            1 => format!("Sunday, {}-{}-{} {} GMT", &imf[5..7], &imf[8..11], &imf[14..16], &imf[17..25]).into_bytes(),
            _ => format!("{} {} {} {} {}", &imf[..3], &imf[8..11], &imf[5..7], &imf[17..25], &imf[12..16]).into_bytes(),
        };
        let pos = pos % text.len();
        text[pos] = byte;
        if let Ok(v) = RetryAfter::parse_at(&text, now_2025()) {
            prop_assert_eq!(RetryAfter::parse_at(v.to_string().as_bytes(), now_2025()), Ok(v));
        }
    }
}
