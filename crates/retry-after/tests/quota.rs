//! Properties of `published_quota`: the stable twin of the `quota` fuzz target, and round trips
//! of each header family.
#![cfg(feature = "http")]

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use resile_retry_after::{published_quota_at, QuotaSource, MAX_DELAY};

const NAMES: [&str; 10] = [
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-limit",
    "date",
    "x-unrelated",
];

/// Header values made of the bytes these fields are built from, and some noise.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(b"0123456789;=,\" rtqwlimiaxnegs.-\\".to_vec()),
            any::<u8>(),
        ],
        0..40,
    )
}

proptest! {
    #[test]
    fn never_panics_and_never_contradicts_itself(
        fields in prop::collection::vec((0..NAMES.len(), value()), 0..8),
        now in 0u64..4_000_000_000,
    ) {
        let mut headers = HeaderMap::new();
        for (i, v) in fields {
            if let Ok(v) = HeaderValue::from_bytes(&v) {
                headers.append(HeaderName::from_static(NAMES[i]), v);
            }
        }
        if let Some(q) = published_quota_at(&headers, UNIX_EPOCH + Duration::from_secs(now)) {
            prop_assert!(q.reset <= MAX_DELAY);
            prop_assert!(q.limit.is_none_or(|l| l > 0 && q.remaining <= l));
            prop_assert!(q.window.is_none_or(|w| !w.is_zero()));
            prop_assert!(q.spacing().is_none_or(|s| s <= q.reset));
        }
    }

    #[test]
    fn ietf_fields_round_trip(r in 0u64..1_000_000, extra in 0u64..1_000, t in 0u64..100_000, w in 1u64..100_000) {
        let q = r + extra;
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit", format!("\"p\";r={r};t={t}").parse().unwrap());
        headers.insert("ratelimit-policy", format!("\"p\";q={q};w={w}").parse().unwrap());
        let got = published_quota_at(&headers, UNIX_EPOCH).unwrap();
        prop_assert_eq!(got.remaining, r);
        prop_assert_eq!(got.reset, Duration::from_secs(t));
        prop_assert_eq!(got.limit, Some(q));
        prop_assert_eq!(got.window, Some(Duration::from_secs(w)));
        prop_assert_eq!(got.source, QuotaSource::RateLimit);
    }

    #[test]
    fn x_ratelimit_round_trips(r in 0u64..1_000_000, extra in 0u64..1_000, reset_ms in 0u64..100_000_000) {
        let limit = r + extra;
        let reset = Duration::from_millis(reset_ms);
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-remaining", r.into());
        headers.insert("x-ratelimit-limit", limit.into());
        headers.insert("x-ratelimit-reset", format!("{}.{:03}", reset_ms / 1000, reset_ms % 1000).parse().unwrap());
        let got = published_quota_at(&headers, UNIX_EPOCH).unwrap();
        prop_assert_eq!((got.remaining, got.limit, got.reset), (r, Some(limit), reset));
        prop_assert_eq!(got.source, QuotaSource::XRateLimit);
    }
}
