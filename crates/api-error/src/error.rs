//! `ApiError`: a failed response that explains itself.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use resile_classify::BoxError;

use crate::parse::Problem;

/// A response whose status said the request failed, with what its body and headers say about
/// why.
///
/// `Display` is one line a person can read:
/// `503 Service Unavailable: VLANs are not enabled for this network (request id 7f3a, retry
/// after 30 s)`. Its [`source`](StdError::source) is the error that cut the body short, if one
/// did.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) messages: Vec<String>,
    pub(crate) code: Option<String>,
    pub(crate) problem: Option<Problem>,
    pub(crate) request_id: Option<String>,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) attempts: u32,
    pub(crate) body: Bytes,
    pub(crate) truncated: bool,
    pub(crate) timed_out: bool,
    pub(crate) source: Option<BoxError>,
}

impl ApiError {
    /// The response's status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response's headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The human messages found in the body (at most 16, each at most 1 KiB), in its order.
    pub fn messages(&self) -> &[String] {
        &self.messages
    }

    /// The first message, if any.
    pub fn message(&self) -> Option<&str> {
        self.messages.first().map(String::as_str)
    }

    /// The body's error code (a string, or a number in decimal), if it has one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The RFC 9457 problem details, for an `application/problem+json` body (or a body of that
    /// shape).
    pub fn problem(&self) -> Option<&Problem> {
        self.problem.as_ref()
    }

    /// The request id from the first of the configured headers the response has.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The server's hint of when to retry (`Retry-After` and the other hint headers).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// How many attempts the retry layer inside made (1 without one).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The body bytes read, at most the reader's limit.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the body was cut short: past the limit, past the time bound, or by an error.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Whether reading the body stopped at the time bound.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// The response's content type, if it has a readable one.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status.as_str())?;
        if let Some(reason) = self.status.canonical_reason() {
            write!(f, " {reason}")?;
        }
        let title = self.problem.as_ref().and_then(|p| p.title.as_deref());
        match (self.messages.as_slice(), title) {
            ([], None) => {}
            ([], Some(t)) => write!(f, ": {}", one_line(t))?,
            ([first, rest @ ..], _) => {
                write!(f, ": {}", one_line(first))?;
                if !rest.is_empty() {
                    write!(f, " (and {} more)", rest.len())?;
                }
            }
        }
        let mut extra = Vec::new();
        if let Some(code) = &self.code {
            extra.push(format!("code {}", one_line(code)));
        }
        if let Some(id) = &self.request_id {
            extra.push(format!("request id {id}"));
        }
        if let Some(d) = self.retry_after {
            extra.push(format!("retry after {}", fmt_wait(d)));
        }
        if self.attempts > 1 {
            extra.push(format!("{} attempts", self.attempts));
        }
        if !extra.is_empty() {
            write!(f, " ({})", extra.join(", "))?;
        }
        Ok(())
    }
}

impl StdError for ApiError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// Control characters (a newline in a message) would break the one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn fmt_wait(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
