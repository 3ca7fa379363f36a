//! resile-retry-after's parsers and formatter beside `httpdate` (and, for delay-seconds, the
//! standard library's integer parser), in the same run and the same criterion groups.
//!
//! - `retry_after/delay_seconds`: `Retry-After: 120`. The peer is what a hand-rolled reader does:
//!   `str::from_utf8` + `u64::from_str` + `Duration::from_secs` (httpdate reads dates only).
//! - `retry_after/imf_fixdate`, `retry_after/rfc850`, `retry_after/asctime`: one HTTP-date in each
//!   form of RFC 9110 §5.6.7, parsed to a `SystemTime`, beside `httpdate::parse_http_date`. Ours
//!   is measured both through `RetryAfter::parse` (what a client calls on a `Retry-After` value:
//!   delay-or-date dispatch included) and `parse_http_date` (a date only). The RFC 850 case
//!   resolves its two-digit year against a fixed `now` (`parse_at`), so no clock read is timed.
//! - `retry_after/format_date`: an IMF-fixdate written into a reused `String`, beside httpdate's
//!   `Display` of `HttpDate::from(SystemTime)` (its only formatting path besides a fresh `String`).
//!   Ours both through `Display` (`write!`) and by pushing `FormattedDate::as_str()`.
//! - `retry_after/server_hint_429` / `server_hint_200`: reading the hint of a typical 429
//!   (`Retry-After: 120` among ordinary headers) and of a 200 with no hint at all, beside the
//!   minimal hand-rolled alternative (look up `Retry-After`, parse an integer or an httpdate).

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use http::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use resile_retry_after::{format_http_date, parse_http_date, server_hint, RetryAfter};

const IMF: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const RFC850: &str = "Sunday, 06-Nov-94 08:49:37 GMT";
const ASCTIME: &str = "Sun Nov  6 08:49:37 1994";

fn delay_seconds(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry_after/delay_seconds");
    let value: &[u8] = b"120";
    group.bench_function("resile RetryAfter::parse", |b| {
        b.iter(|| black_box(RetryAfter::parse(black_box(value))))
    });
    group.bench_function("std u64::from_str", |b| {
        b.iter(|| {
            let value = black_box(value);
            black_box(
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(Duration::from_secs),
            )
        })
    });
    group.finish();
}

fn date_form(c: &mut Criterion, name: &str, value: &'static str) {
    let mut group = c.benchmark_group(name);
    let now = UNIX_EPOCH + Duration::from_secs(1_735_689_600); // 2025-01-01, for RFC 850 years
                                                               // Both parsers agree on this value; a bench of a failing parse would measure something else.
    assert_eq!(
        RetryAfter::parse_at(value.as_bytes(), now),
        Ok(RetryAfter::Date(
            httpdate::parse_http_date(value).expect("httpdate parses it")
        ))
    );
    group.bench_function("resile RetryAfter::parse", |b| {
        b.iter(|| black_box(RetryAfter::parse_at(black_box(value.as_bytes()), now)))
    });
    group.bench_function("resile parse_http_date", |b| {
        b.iter(|| {
            black_box(resile_retry_after::parse_http_date_at(
                black_box(value.as_bytes()),
                now,
            ))
        })
    });
    group.bench_function("httpdate parse_http_date", |b| {
        b.iter(|| black_box(httpdate::parse_http_date(black_box(value))))
    });
    group.finish();
}

fn dates(c: &mut Criterion) {
    date_form(c, "retry_after/imf_fixdate", IMF);
    date_form(c, "retry_after/rfc850", RFC850);
    date_form(c, "retry_after/asctime", ASCTIME);
}

fn format_date(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry_after/format_date");
    let t: SystemTime = parse_http_date(IMF.as_bytes()).expect("valid date");
    assert_eq!(format_http_date(t).as_str(), httpdate::fmt_http_date(t));
    let mut buf = String::with_capacity(64);
    group.bench_function("resile format_http_date", |b| {
        b.iter(|| {
            buf.clear();
            let _ = write!(buf, "{}", format_http_date(black_box(t)));
            black_box(buf.len())
        })
    });
    group.bench_function("resile format_http_date as_str", |b| {
        b.iter(|| {
            buf.clear();
            buf.push_str(format_http_date(black_box(t)).as_str());
            black_box(buf.len())
        })
    });
    group.bench_function("httpdate HttpDate::from", |b| {
        b.iter(|| {
            buf.clear();
            let _ = write!(buf, "{}", httpdate::HttpDate::from(black_box(t)));
            black_box(buf.len())
        })
    });
    group.finish();
}

/// The hand-rolled alternative: `Retry-After` only, an integer or an httpdate.
fn naive_hint(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

fn typical_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("date", "Wed, 01 Jan 2025 00:00:00 GMT"),
        ("content-type", "application/json"),
        ("content-length", "128"),
        ("server", "nginx"),
        ("cache-control", "no-store"),
        ("x-request-id", "5f1c2a9e-6f7b-4a1c-9d2e-0b8a7c6d5e4f"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
}

fn hints(c: &mut Criterion) {
    let mut with_hint = typical_headers();
    with_hint.insert(RETRY_AFTER, HeaderValue::from_static("120"));
    let without_hint = typical_headers();
    assert_eq!(
        server_hint(&with_hint).map(|h| h.delay),
        naive_hint(&with_hint)
    );
    assert_eq!(server_hint(&without_hint), None);

    for (name, headers) in [
        ("retry_after/server_hint_429", &with_hint),
        ("retry_after/server_hint_200", &without_hint),
    ] {
        let mut group = c.benchmark_group(name);
        group.bench_function("resile server_hint (all sources)", |b| {
            b.iter(|| black_box(server_hint(black_box(headers))))
        });
        group.bench_function("hand-rolled Retry-After + httpdate", |b| {
            b.iter(|| black_box(naive_hint(black_box(headers))))
        });
        group.finish();
    }
}

criterion_group!(benches, delay_seconds, dates, format_date, hints);
criterion_main!(benches);
