//! Builds a header map from arbitrary bytes (lines `<selector byte><value>`, the selector picking
//! one of the header names the quota reader looks at) and checks that reading the published
//! quota never panics and never returns a reading that contradicts itself.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use resile_retry_after::{published_quota_at, MAX_DELAY};

const NAMES: [&str; 11] = [
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-limit",
    "date",
    "retry-after",
    "x-unrelated",
];

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some((&selector, value)) = line.split_first() else {
            continue;
        };
        let name = HeaderName::from_static(NAMES[usize::from(selector) % NAMES.len()]);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    for now in [UNIX_EPOCH, UNIX_EPOCH + Duration::from_secs(1_735_689_600)] {
        if let Some(q) = published_quota_at(&headers, now) {
            assert!(q.reset <= MAX_DELAY, "{q:?} from {headers:?}");
            assert!(q.limit.is_none_or(|l| l > 0 && q.remaining <= l), "{q:?}");
            assert!(q.window.is_none_or(|w| !w.is_zero()), "{q:?}");
            assert!(q.spacing().is_none_or(|s| s <= q.reset), "{q:?}");
        }
    }
});
