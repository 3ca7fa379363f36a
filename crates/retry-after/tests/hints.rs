//! Server hints: each source, the precedence between them, the `Date`-header skew correction,
//! and malformed values falling through.
#![cfg(feature = "http")]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use resile_retry_after::{
    parse_http_date, server_hint, server_hint_at, HintSource, ServerHint, MAX_DELAY,
};

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for &(name, value) in pairs {
        map.append(
            name,
            HeaderValue::from_str(value).expect("valid header value"),
        );
    }
    map
}

fn date(s: &str) -> SystemTime {
    parse_http_date(s.as_bytes()).expect("valid date")
}

/// The response's `Date` in these tests.
const SERVER_NOW: &str = "Wed, 01 Jan 2025 00:00:00 GMT";

fn hint(pairs: &[(&'static str, &str)]) -> Option<(Duration, HintSource)> {
    server_hint_at(&headers(pairs), date(SERVER_NOW)).map(|h| (h.delay, h.source))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn no_hint_headers_no_hint() {
    assert_eq!(hint(&[]), None);
    assert_eq!(
        hint(&[("content-type", "text/plain"), ("date", SERVER_NOW)]),
        None
    );
    assert_eq!(server_hint(&HeaderMap::new()), None);
}

#[test]
fn retry_after_delay_seconds() {
    assert_eq!(
        hint(&[("retry-after", "120")]),
        Some((secs(120), HintSource::RetryAfter))
    );
    assert_eq!(
        hint(&[("retry-after", "0")]),
        Some((Duration::ZERO, HintSource::RetryAfter))
    );
    assert_eq!(
        hint(&[("retry-after", "99999999999999999999999999")]),
        Some((MAX_DELAY, HintSource::RetryAfter))
    );
}

#[test]
fn a_decimal_retry_after_is_read_as_its_ceiling_when_nothing_valid_is_there() {
    assert_eq!(
        hint(&[("retry-after", "1.5")]),
        Some((secs(2), HintSource::RetryAfter))
    );
    assert_eq!(
        hint(&[("retry-after", " 0.001 ")]),
        Some((secs(1), HintSource::RetryAfter))
    );
    assert_eq!(
        hint(&[("retry-after", "3.0")]),
        Some((secs(3), HintSource::RetryAfter))
    );
    // A valid value wins wherever it is; garbage stays garbage.
    assert_eq!(
        hint(&[("retry-after", "1.5"), ("retry-after", "7")]),
        Some((secs(7), HintSource::RetryAfter))
    );
    for bad in ["-1.5", "1.", ".5", "1.5s", "1e3", "1,5"] {
        assert_eq!(hint(&[("retry-after", bad)]), None, "{bad}");
    }
}

#[test]
fn retry_after_date_is_measured_against_the_response_date_not_the_local_clock() {
    let pairs = [
        ("date", SERVER_NOW),
        ("retry-after", "Wed, 01 Jan 2025 00:01:30 GMT"),
    ];
    // The local clock is an hour behind, or a day ahead, or right: the hint is the same.
    for local in [
        date(SERVER_NOW) - secs(3600),
        date(SERVER_NOW) + secs(86_400),
        date(SERVER_NOW),
        UNIX_EPOCH,
    ] {
        let got = server_hint_at(&headers(&pairs), local).unwrap();
        assert_eq!(
            got,
            ServerHint {
                delay: secs(90),
                source: HintSource::RetryAfter
            }
        );
    }
    // With the system clock too.
    assert_eq!(server_hint(&headers(&pairs)).unwrap().delay, secs(90));
}

#[test]
fn retry_after_date_without_a_valid_date_header_uses_now() {
    let now = date(SERVER_NOW);
    for pairs in [
        &[("retry-after", "Wed, 01 Jan 2025 00:00:10 GMT")][..],
        &[
            ("date", "yesterday"),
            ("retry-after", "Wed, 01 Jan 2025 00:00:10 GMT"),
        ][..],
        &[
            ("date", "Wed, 01 Jan 2025 00:00:00 UTC"),
            ("retry-after", "Wed, 01 Jan 2025 00:00:10 GMT"),
        ][..],
    ] {
        assert_eq!(
            server_hint_at(&headers(pairs), now).map(|h| h.delay),
            Some(secs(10)),
            "{pairs:?}"
        );
    }
    // A later valid Date header is used if the first is malformed.
    let pairs = [
        ("date", "garbage"),
        ("date", "Wed, 01 Jan 2025 00:00:04 GMT"),
        ("retry-after", "Wed, 01 Jan 2025 00:00:10 GMT"),
    ];
    assert_eq!(
        server_hint_at(&headers(&pairs), now).map(|h| h.delay),
        Some(secs(6))
    );
}

#[test]
fn retry_after_date_forms_and_past_dates() {
    // RFC 850 and asctime dates too; the Date header may itself use an obsolete form.
    assert_eq!(
        hint(&[
            ("date", "Wednesday, 01-Jan-25 00:00:00 GMT"),
            ("retry-after", "Wed Jan  1 00:00:05 2025"),
        ]),
        Some((secs(5), HintSource::RetryAfter))
    );
    // A date in the past means "now".
    assert_eq!(
        hint(&[
            ("date", SERVER_NOW),
            ("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")
        ]),
        Some((Duration::ZERO, HintSource::RetryAfter))
    );
    // A date far in the future is capped.
    assert_eq!(
        hint(&[
            ("date", SERVER_NOW),
            ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT")
        ]),
        Some((MAX_DELAY, HintSource::RetryAfter))
    );
}

#[test]
fn several_retry_after_fields_the_first_valid_wins() {
    assert_eq!(
        hint(&[("retry-after", "5"), ("retry-after", "10")]),
        Some((secs(5), HintSource::RetryAfter))
    );
    assert_eq!(
        hint(&[
            ("retry-after", "soon"),
            ("retry-after", "-1"),
            ("retry-after", "7"),
            ("retry-after", "10")
        ]),
        Some((secs(7), HintSource::RetryAfter))
    );
    // A list folded into one line is not a valid value: it falls through.
    assert_eq!(
        hint(&[("retry-after", "5, 10"), ("retry-after-ms", "250")]),
        Some((Duration::from_millis(250), HintSource::RetryAfterMs))
    );
}

#[test]
fn millisecond_variants() {
    assert_eq!(
        hint(&[("retry-after-ms", "1500")]),
        Some((Duration::from_millis(1500), HintSource::RetryAfterMs))
    );
    assert_eq!(
        hint(&[("x-ms-retry-after-ms", " 20 ")]),
        Some((Duration::from_millis(20), HintSource::RetryAfterMs))
    );
    // retry-after-ms before x-ms-retry-after-ms.
    assert_eq!(
        hint(&[("x-ms-retry-after-ms", "20"), ("retry-after-ms", "30")]),
        Some((Duration::from_millis(30), HintSource::RetryAfterMs))
    );
    // Malformed retry-after-ms falls through to x-ms-retry-after-ms.
    assert_eq!(
        hint(&[("retry-after-ms", "1.5"), ("x-ms-retry-after-ms", "20")]),
        Some((Duration::from_millis(20), HintSource::RetryAfterMs))
    );
    // Saturation: u64::MAX milliseconds is capped, not a panic.
    assert_eq!(
        hint(&[("retry-after-ms", "999999999999999999999999999")]),
        Some((MAX_DELAY, HintSource::RetryAfterMs))
    );
    for bad in ["-5", "", "abc", "5ms", "0x10"] {
        assert_eq!(hint(&[("retry-after-ms", bad)]), None, "{bad:?}");
    }
}

#[test]
fn ratelimit_field() {
    assert_eq!(
        hint(&[("ratelimit", r#""default";r=0;t=30"#)]),
        Some((secs(30), HintSource::RateLimit))
    );
    // Quota left: no hint.
    assert_eq!(hint(&[("ratelimit", r#""default";r=10;t=30"#)]), None);
    // The longest reset among exhausted policies, across field lines.
    assert_eq!(
        hint(&[
            ("ratelimit", r#""second";r=0;t=1"#),
            ("ratelimit", r#""day";r=0;t=3600, "hour";r=4;t=7200"#),
        ]),
        Some((secs(3600), HintSource::RateLimit))
    );
    // Malformed members are skipped, others count.
    assert_eq!(
        hint(&[("ratelimit", r#""a";r=0;t=abc, "b";r=0;t=12, garbage;;;"#)]),
        Some((secs(12), HintSource::RateLimit))
    );
    // The older dictionary form.
    assert_eq!(
        hint(&[("ratelimit", "limit=100, remaining=0, reset=45")]),
        Some((secs(45), HintSource::RateLimit))
    );
    // Entirely malformed: no hint.
    assert_eq!(hint(&[("ratelimit", r#""unterminated;r=0;t=5"#)]), None);
}

#[test]
fn x_ratelimit_reset_delta_and_epoch() {
    // A small value is a delay.
    assert_eq!(
        hint(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "42")]),
        Some((secs(42), HintSource::XRateLimitReset))
    );
    // Just below the threshold (~31.7 years) is still a delay (capped only by MAX_DELAY).
    assert_eq!(
        hint(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "999999999")
        ]),
        Some((secs(999_999_999), HintSource::XRateLimitReset))
    );
    // From 10^9 on it is an epoch instant, measured against the response's Date (GitHub style).
    let server_now = date(SERVER_NOW)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let reset = (server_now + 75).to_string();
    assert_eq!(
        hint(&[
            ("date", SERVER_NOW),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset),
        ]),
        Some((secs(75), HintSource::XRateLimitReset))
    );
    // Skew: the local clock is 10 minutes off; with a Date header it does not matter.
    let pairs = [
        ("date", SERVER_NOW),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", reset.as_str()),
    ];
    let skewed = date(SERVER_NOW) + secs(600);
    assert_eq!(
        server_hint_at(&headers(&pairs), skewed).unwrap().delay,
        secs(75)
    );
    // Without one, the local clock is used: the instant is already past.
    assert_eq!(
        server_hint_at(&headers(&pairs[1..]), skewed).unwrap().delay,
        Duration::ZERO
    );
    // Exactly 10^9 is an instant (2001-09-09), long past.
    assert_eq!(
        hint(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1000000000")
        ]),
        Some((Duration::ZERO, HintSource::XRateLimitReset))
    );
    // Decimal epoch (Discord style).
    let decimal = format!("{}.250", server_now + 2);
    assert_eq!(
        hint(&[
            ("date", SERVER_NOW),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &decimal),
        ]),
        Some((Duration::from_millis(2_250), HintSource::XRateLimitReset))
    );
    // An epoch beyond what SystemTime holds is capped, not a panic.
    assert_eq!(
        hint(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "99999999999999999999999999999")
        ]),
        Some((MAX_DELAY, HintSource::XRateLimitReset))
    );
}

#[test]
fn x_ratelimit_reset_needs_remaining_zero() {
    assert_eq!(hint(&[("x-ratelimit-reset", "42")]), None);
    assert_eq!(
        hint(&[("x-ratelimit-remaining", "1"), ("x-ratelimit-reset", "42")]),
        None
    );
    assert_eq!(
        hint(&[
            ("x-ratelimit-remaining", "zero"),
            ("x-ratelimit-reset", "42")
        ]),
        None
    );
    assert_eq!(
        hint(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "-42")]),
        None
    );
    assert_eq!(hint(&[("x-ratelimit-remaining", "0")]), None);
}

#[test]
fn precedence_retry_after_then_ms_then_ratelimit_then_x_ratelimit() {
    let all: [(&'static str, &str); 6] = [
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", "4"),
        ("ratelimit", r#""p";r=0;t=3"#),
        ("x-ms-retry-after-ms", "2000"),
        ("retry-after-ms", "1000"),
        ("retry-after", "9"),
    ];
    let expected = [
        (secs(9), HintSource::RetryAfter),
        (secs(1), HintSource::RetryAfterMs),
        (secs(2), HintSource::RetryAfterMs),
        (secs(3), HintSource::RateLimit),
        (secs(4), HintSource::XRateLimitReset),
    ];
    // Drop the sources from the highest down: the next one takes over each time.
    for (dropped, want) in expected.iter().enumerate() {
        let present = &all[..all.len() - dropped];
        assert_eq!(hint(present), Some(*want), "{present:?}");
    }
    // The same with each higher source present but malformed.
    let malformed: [(&'static str, &str); 6] = [
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", "4"),
        ("ratelimit", r#""p";r=0;t=-3"#),
        ("x-ms-retry-after-ms", "2s"),
        ("retry-after-ms", "+1000"),
        ("retry-after", "Mon, 06 Nov 1994 08:49:37 GMT"),
    ];
    assert_eq!(
        hint(&malformed),
        Some((secs(4), HintSource::XRateLimitReset))
    );
    // Header order in the map does not matter.
    let mut reversed = all;
    reversed.reverse();
    assert_eq!(hint(&reversed), Some((secs(9), HintSource::RetryAfter)));
}

#[test]
fn hostile_header_values_never_panic() {
    let long = "9".repeat(100_000);
    let nul_free_binary: String = (1u8..=255)
        .filter(|&b| b != 0x7f && (b >= 0x20 || b == b'\t'))
        .map(char::from)
        .collect();
    let quotes = "\"".repeat(10_001);
    let params = ";r=0".repeat(10_000);
    let values = [
        long.as_str(),
        nul_free_binary.as_str(),
        quotes.as_str(),
        params.as_str(),
        "",
        " ",
        "\t",
        r#""\"#,
        ";=;=;=,=,=",
        "1000000000000000000000000000000",
    ];
    let names = [
        "retry-after",
        "date",
        "retry-after-ms",
        "x-ms-retry-after-ms",
        "ratelimit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ];
    for name in names {
        for value in values {
            let mut map = headers(&[("x-ratelimit-remaining", "0")]);
            if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
                map.append(name, v);
            }
            // Non-UTF-8 (obs-text) bytes are legal in header values.
            map.append(name, HeaderValue::from_bytes(b"\xff\xfe 12 \x80").unwrap());
            for now in [UNIX_EPOCH, date(SERVER_NOW)] {
                if let Some(h) = server_hint_at(&map, now) {
                    assert!(h.delay <= MAX_DELAY);
                }
            }
        }
    }
}
