//! Parses arbitrary bytes as a `Retry-After` value and checks, for every accepted value:
//! formatting it and parsing the output gives the same value back (parsed delays are already
//! saturated to `MAX_DELAY`, parsed dates are whole seconds in years 0000-9999, so the round trip
//! is exact), and an IMF-fixdate or asctime date that `httpdate` accepts is accepted here too,
//! as the same instant.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use resile_retry_after::{format_http_date, parse_http_date_at, RetryAfter, MAX_DELAY};

fuzz_target!(|data: &[u8]| {
    // The RFC 850 50-year rule depends on "now": try a few.
    let nows = [
        UNIX_EPOCH,
        UNIX_EPOCH + Duration::from_secs(1_735_689_600), // 2025-01-01
        UNIX_EPOCH + Duration::from_secs(3_471_292_800), // 2080-01-01
    ];
    for now in nows {
        let parsed = RetryAfter::parse_at(data, now);
        if let Ok(value) = parsed {
            match value {
                RetryAfter::Delay(d) => assert!(d <= MAX_DELAY && d.subsec_nanos() == 0),
                RetryAfter::Date(t) => {
                    assert_eq!(parse_http_date_at(data, now), Ok(t));
                    assert_eq!(
                        parse_http_date_at(format_http_date(t).as_str().as_bytes(), now),
                        Ok(t)
                    );
                }
            }
            let text = value.to_string();
            assert_eq!(
                RetryAfter::parse_at(text.as_bytes(), now),
                Ok(value),
                "round trip of {value:?} through {text:?}"
            );
            let _ = value.delay_from(now);
        }
    }

    // Differential check against httpdate on the forms whose meaning does not depend on "now"
    // (httpdate pins RFC 850 years to 1970-2069). httpdate trims Unicode whitespace, this parser
    // only spaces and tabs (HTTP's OWS): compare untrimmed, ASCII-only inputs.
    if let Ok(text) = std::str::from_utf8(data) {
        let fixed_form = matches!(data.get(3), Some(b',' | b' '));
        let untrimmed = text.trim() == text;
        if fixed_form && untrimmed {
            if let Ok(theirs) = httpdate::parse_http_date(text) {
                let ours: Result<SystemTime, _> = parse_http_date_at(data, nows[1]);
                assert_eq!(ours, Ok(theirs), "httpdate accepts {text:?}");
            }
        }
    }
});
