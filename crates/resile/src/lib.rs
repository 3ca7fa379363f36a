//! Resilience middleware for [`tower`] HTTP clients and servers: retry with jittered backoff that
//! honours `Retry-After` and never amplifies an outage, a circuit breaker that fails fast, a GCRA
//! rate limiter that paces clients and answers `429` on servers, and the pieces they are made of.
//!
//! This crate is the front door: it re-exports the resile crates as modules, adds
//! [`ServiceBuilderExt`], and builds the client [`stack`] in the right order with sensible
//! defaults.
//!
//! | module | crate | what it does |
//! |---|---|---|
//! | [`backoff`] | `resile-backoff` | delays: exponential with full, equal, decorrelated jitter, capped after jitter; no tower needed |
//! | [`retry_after`] | `resile-retry-after` | RFC 9110 `Retry-After` / HTTP-date parsing, every server hint of a response |
//! | [`classify`] | `resile-classify` | the outcome table shared by retry and breaker (what is retried, what counts as a failure) |
//! | [`retry`] | `resile-retry` | `RetryLayer`: backoff, server hints, idempotency, retry budgets, body replay |
//! | [`breaker`] | `resile-breaker` | `CircuitBreakerLayer`: lock-free when closed, sliding windows, half-open probes |
//! | [`ratelimit`] | `resile-ratelimit` | GCRA limiters; client pacing (`RateLimitLayer`), server `429`s (`ThrottleLayer`), Redis store |
//! | [`api_error`] | `resile-api-error` | `ApiError`: a failed response's JSON error messages, problem details, request id, parsed within bounds; `ErrorForStatusLayer` |
//! | [`telemetry`] | `resile-telemetry` | `TelemetryLayer`: success, 4xx, 5xx and gateway rates, codes, latency quantiles, trends, alerts; `metrics` export |
//!
//! # Example
//!
//! A client stack around any `tower::Service<http::Request<B>>` (here a `service_fn` standing in
//! for hyper-util's `Client`, which is used the same way):
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use http::{Request, Response, StatusCode};
//! use resile::breaker::{BreakerOpen, CircuitBreakerLayer, State};
//! use resile::classify::{RejectedBy, RetryRefused};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower::BoxError> {
//! // A backend that is down: every call is answered 503.
//! let calls = Arc::new(AtomicU32::new(0));
//! let backend = {
//!     let calls = calls.clone();
//!     service_fn(move |_req: Request<String>| {
//!         calls.fetch_add(1, Ordering::SeqCst);
//!         async { Ok::<_, Infallible>(Response::builder().status(503).body(String::new()).unwrap()) }
//!     })
//! };
//!
//! let breaker = CircuitBreakerLayer::builder()
//!     .consecutive_failures(3)
//!     .open_duration(Duration::from_secs(30))
//!     .build()?;
//! let stack = resile::stack::http_client() // retry > breaker > limiter > timeout
//!     .circuit_breaker(breaker)
//!     .attempt_timeout(Duration::from_secs(2));
//! let handle = stack.breaker_handle();
//! let client = ServiceBuilder::new().layer(stack).service(backend);
//!
//! // The first request is retried (GET is idempotent) until the breaker opens after the third
//! // failure; the breaker's refusal is not retried, so the backend saw three calls, not four.
//! // The caller gets the backend's last answer, marked with the refusal of the retry after it.
//! let req = Request::get("http://example.com/").body(String::new())?;
//! let res = client.clone().oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
//! let refused = res.extensions().get::<RetryRefused>().expect("a refused retry");
//! assert_eq!(refused.rejection.rejected_by(), RejectedBy::CircuitBreaker);
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! assert_eq!(handle.state(), State::Open);
//!
//! // While it is open, requests fail at once without reaching the backend.
//! let req = Request::get("http://example.com/").body(String::new())?;
//! let err = client.oneshot(req).await.unwrap_err();
//! let open = err.downcast_ref::<BreakerOpen>().expect("the breaker's error");
//! assert!(open.until_probe().is_some());
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! # Ok(())
//! # }
//! ```
//!
//! # Order matters
//!
//! [`stack::http_client()`] puts the retry layer outermost, then the circuit breaker, then the
//! rate limiter, then a per-attempt timeout. Every retry passes the breaker (which counts it) and
//! takes a limiter permit (so retries respect the quota and a server's `429` pause). The
//! breaker's fast-fail and the limiter's refusal carry [`classify::LocalRejection`]: the
//! classifier of every piece ([`classify::Classifier::default()`]) never retries them and the
//! breaker does not count them. The [`stack`] module explains each choice; `docs/guide.md` in the
//! repository covers tuning.
//!
//! # Features
//!
//! All on by default except `redis`, `reqwest`, `reqwest-middleware`, `axum`, `tower-http`,
//! `metrics`, `opentelemetry` and `serde`:
//!
//! - `backoff`, `retry-after`, `classify`, `retry`, `breaker`, `ratelimit`, `telemetry`,
//!   `api-error`: the modules above (the [`stack`] module needs `retry`, `breaker` and `ratelimit`);
//! - `metrics`: telemetry exported through the `metrics` facade
//!   (`telemetry::MetricsExporter`); `opentelemetry`: through an OpenTelemetry `Meter`
//!   (`telemetry::OtelExporter`); `serde`: `Serialize` for the telemetry report;
//! - `redis`: the Redis store of the rate limiter (`ratelimit::redis`);
//! - `reqwest`: `reqwest::Client` as the service under the whole stack, as it is
//!   (classification of `reqwest::Response` / `reqwest::Error`, replay of `reqwest::Request`,
//!   server hints read from `reqwest::Response` by the rate limiter);
//! - `reqwest-middleware`: any layer, the client stack included, as a
//!   `reqwest_middleware::Middleware` ([`reqwest_middleware::ResileMiddleware`]);
//! - `axum`: `ratelimit::server::PeerIp` also reads axum's `ConnectInfo<SocketAddr>`;
//! - `tower-http`: `classify::Classifier` is a tower-http classifier (`MakeClassifier`), so
//!   `TraceLayer::new(classifier)` marks failures as the retry layer and the breaker count them
//!   (`classify::trace`).

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "api-error")]
pub use resile_api_error as api_error;
#[cfg(feature = "backoff")]
pub use resile_backoff as backoff;
#[cfg(feature = "breaker")]
pub use resile_breaker as breaker;
#[cfg(feature = "classify")]
pub use resile_classify as classify;
#[cfg(feature = "ratelimit")]
pub use resile_ratelimit as ratelimit;
#[cfg(feature = "retry")]
pub use resile_retry as retry;
#[cfg(feature = "retry-after")]
pub use resile_retry_after as retry_after;
#[cfg(feature = "telemetry")]
pub use resile_telemetry as telemetry;

mod ext;
pub use ext::ServiceBuilderExt;

#[cfg(all(feature = "retry", feature = "breaker", feature = "ratelimit"))]
pub mod stack;

#[cfg(feature = "reqwest-middleware")]
pub mod reqwest_middleware;

/// The error type of every resile layer (tower's). Downcast it to the layer's error
/// (`err.is::<breaker::BreakerOpen>()`) or to the inner service's.
pub use tower::BoxError;

// The README (shown on crates.io): its example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
