//! The response fields: `Retry-After`, and the IETF `RateLimit-Policy` / `RateLimit` fields
//! (draft-ietf-httpapi-ratelimit-headers).

use std::fmt::Write as _;

use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::HeaderMap;

use crate::gcra::{Decision, Quota};

/// `RateLimit-Policy`.
pub(crate) static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub(crate) static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// `name` as a structured-field string: printable ASCII only (others dropped), `"` and `\`
/// escaped.
pub(crate) fn sf_string(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {}
        }
    }
    out.push('"');
    out
}

/// `"name";q=..;w=..`, once per layer (`name` already quoted by [`sf_string`]).
pub(crate) fn policy_value(name: &str, quota: &Quota) -> HeaderValue {
    let (q, w) = quota.policy();
    let mut v = name.to_owned();
    let _ = write!(v, ";q={q};w={w}");
    // sf_string keeps printable ASCII only, so this cannot fail; fall back to the bare numbers.
    HeaderValue::try_from(v).unwrap_or_else(|_| HeaderValue::from_static("\"default\""))
}

/// `"name";r=<remaining>;t=<seconds until more quota is available>` (`name` already quoted).
pub(crate) fn ratelimit_value(name: &str, quota: &Quota, d: &Decision) -> HeaderValue {
    let t = resile_retry_after::ceil_seconds(d.replenish_after(quota));
    let mut v = String::with_capacity(name.len() + 24);
    v.push_str(name);
    let _ = write!(v, ";r={};t={t}", d.remaining);
    HeaderValue::try_from(v).unwrap_or_else(|_| HeaderValue::from_static("\"default\""))
}

/// `Retry-After` for a refused decision: whole seconds rounded up, never 0.
pub(crate) fn retry_after_value(d: &Decision) -> HeaderValue {
    let secs = resile_retry_after::ceil_seconds(d.retry_after).max(1);
    HeaderValue::from(secs)
}

pub(crate) fn insert_retry_after(headers: &mut HeaderMap, d: &Decision) {
    headers.insert(RETRY_AFTER, retry_after_value(d));
}
