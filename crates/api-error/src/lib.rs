//! Failed HTTP responses as errors that explain themselves.
//!
//! When the status code is not specific enough, the reason is in the body:
//! `{"errors": ["VLANs are not enabled for this network"]}`. [`ErrorForStatusLayer`] turns a
//! final `4xx` or `5xx` response into `Err(ApiError)`, its body read up to a limit (64 KiB)
//! within a time bound (5 s) and parsed; other responses pass untouched, their bodies unread.
//! [`ApiError::from_response`] does the same for one response (and
//! [`ApiError::from_reqwest`], feature `reqwest`, for a `reqwest::Response`).
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use resile_api_error::{ApiError, ErrorForStatusLayer};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let api = service_fn(|_req: Request<()>| async {
//!     let body = r#"{"errors": ["VLANs are not enabled for this network"]}"#;
//!     Ok::<_, Infallible>(
//!         Response::builder()
//!             .status(400)
//!             .header("content-type", "application/json")
//!             .header("x-request-id", "7f3a")
//!             .body(http_body_util::Full::new(bytes::Bytes::from(body)))
//!             .unwrap(),
//!     )
//! });
//! let client = ErrorForStatusLayer::new().layer(api);
//! let err = client.oneshot(Request::new(())).await.unwrap_err();
//! let api_err = err.downcast_ref::<ApiError>().unwrap();
//! assert_eq!(api_err.message(), Some("VLANs are not enabled for this network"));
//! assert_eq!(
//!     api_err.to_string(),
//!     "400 Bad Request: VLANs are not enabled for this network (request id 7f3a)"
//! );
//! # }
//! ```
//!
//! # Recognised bodies
//!
//! JSON is parsed when the body looks like JSON (whatever the content type says); your own
//! [`Shape`]s are tried first, then, in order:
//!
//! | body | messages | code |
//! |---|---|---|
//! | RFC 9457 `application/problem+json` (or an object with `type` and `title`/`detail`) | `detail`, else `title` | `code` |
//! | `{"errors": ["..."]}` | each string | |
//! | `{"errors": [{"message": "...", "code": ...}]}` | each `message` | the first `code` |
//! | `{"errors": {"field": ["..."]}}` | `field message` | |
//! | `{"error": "...", "error_description": "..."}` (OAuth 2) | `error_description` | `error` |
//! | `{"error": "..."}` | `error` | `code` |
//! | `{"error": {"message": "...", "code": ..., "type": "..."}}` | `message` | `code`, else `type` |
//! | `{"message": "..."}`, `{"detail": "..."}`, `{"title": "..."}`, `{"msg": "..."}` | it | `code` |
//! | `["...", ...]` | each string | |
//! | anything else but HTML | the first non-empty line, trimmed | |
//!
//! # Bounds
//!
//! Hostile bodies cost bounded memory and time and never panic: at most the body limit is read
//! (`truncated` says when more was sent); reading stops at the time bound keeping what arrived
//! (`timed_out`); a body error keeps what arrived and becomes the error's `source`; invalid UTF-8
//! is replaced; nesting deeper than 128 levels is not parsed as JSON; at most 16 messages of at
//! most 1 KiB each are kept, codes cut to 256 bytes.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod future;
mod layer;
mod parse;
mod read;
mod service;

pub use error::ApiError;
pub use future::ResponseFuture;
pub use layer::{client_and_server_errors, ErrorForStatusLayer};
pub use parse::{Found, Problem, Shape, MAX_MESSAGES, MAX_MESSAGE_BYTES};
pub use read::{
    ApiErrorReader, ReadBody, DEFAULT_BODY_LIMIT, DEFAULT_REQUEST_ID_HEADERS, DEFAULT_TIME_LIMIT,
};
pub use service::ErrorForStatus;

#[cfg(test)]
mod tests;

// The README (shown on crates.io): its example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
