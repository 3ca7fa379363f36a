//! Builds a header map from arbitrary bytes (lines `<selector byte><value>`, the selector picking
//! one of the header names the hint reader looks at) and checks that reading the server hint never
//! panics and never returns a delay above `MAX_DELAY`.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use resile_retry_after::{server_hint_at, MAX_DELAY};

const NAMES: [&str; 8] = [
    "retry-after",
    "date",
    "retry-after-ms",
    "x-ms-retry-after-ms",
    "ratelimit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
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
        if let Some(hint) = server_hint_at(&headers, now) {
            assert!(hint.delay <= MAX_DELAY, "{hint:?} from {headers:?}");
        }
    }
});
