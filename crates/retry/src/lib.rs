//! Tower retry middleware for HTTP clients: jittered exponential backoff keyed on 429 and 5xx,
//! server hints (`Retry-After` and friends), idempotency rules, retry budgets and body replay.
//!
//! tower's own `Retry` leaves everything HTTP to you: which statuses to retry, `Retry-After`,
//! which methods are safe to send twice, how to replay a streaming body. [`RetryLayer`] does all
//! of it, with defaults that do not amplify an outage.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use http::{Request, Response, StatusCode};
//! use resile_retry::{Exponential, Jitter, RetryLayer, RetryPolicy};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower::BoxError> {
//! // A server that is unavailable twice, then answers.
//! let calls = Arc::new(AtomicU32::new(0));
//! let server = {
//!     let calls = calls.clone();
//!     tower::service_fn(move |_req: Request<String>| {
//!         let n = calls.fetch_add(1, Ordering::SeqCst);
//!         async move {
//!             let status = if n < 2 { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
//!             Ok::<_, Infallible>(Response::builder().status(status).body(String::new()).unwrap())
//!         }
//!     })
//! };
//!
//! let policy = RetryPolicy::builder()
//!     .backoff(
//!         Exponential::builder()
//!             .initial(Duration::from_millis(100))
//!             .jitter(Jitter::None)
//!             .max_retries(3)
//!             .build()?,
//!     )
//!     .build();
//! let client = ServiceBuilder::new().layer(RetryLayer::new(policy)).service(server);
//!
//! let start = tokio::time::Instant::now();
//! let res = client.oneshot(Request::get("http://example.com/").body(String::new())?).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! assert_eq!(start.elapsed(), Duration::from_millis(100 + 200)); // two waits, no jitter
//! # Ok(())
//! # }
//! ```
//!
//! ## With a hyper-util client
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use resile_retry::RetryLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # async fn run() -> Result<(), tower::BoxError> {
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let client = ServiceBuilder::new().layer(RetryLayer::default()).service(client);
//!
//! let req = http::Request::get("http://127.0.0.1:8080/").body(Full::new(Bytes::new()))?;
//! let res = client.oneshot(req).await?;
//! println!("{} {:?}", res.status(), res.into_body().collect().await?.to_bytes());
//! # Ok(())
//! # }
//! ```
//!
//! ## With reqwest (feature `reqwest`)
//!
//! `reqwest::Client` is a `tower::Service<reqwest::Request>`; requests are copied with
//! `reqwest::Request::try_clone` (a streaming body cannot be copied: such a request is sent once).
//!
//! ```no_run
//! # #[cfg(feature = "reqwest")]
//! # async fn run() -> Result<(), tower::BoxError> {
//! use resile_retry::RetryLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let http = reqwest::Client::new();
//! let client = ServiceBuilder::new().layer(RetryLayer::default()).service(http.clone());
//!
//! let req = http.get("http://127.0.0.1:8080/").build()?;
//! let res = client.oneshot(req).await?;
//! println!("{}", res.status());
//! # Ok(())
//! # }
//! ```
//!
//! # What is retried
//!
//! The [`Classifier`] of resile-classify decides, per outcome and method: see [its table of
//! defaults](resile_classify#default-classification). In short: `429` and a refused connection
//! are retried for any method; `408`, `500`, `502`, `503`, `504`, other transport errors and
//! timeouts for idempotent requests (GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or any request with
//! an `Idempotency-Key` header); other statuses and a resile layer's own refusals never.
//!
//! So a `POST` answered `500` is returned as is (the server may have acted on it), while a `POST`
//! refused at connect time or answered `429` is retried. Every rule can be changed through
//! [`RetryPolicyBuilder::classifier`].
//!
//! # How long it waits
//!
//! Before each retry the layer waits the larger of the backoff's next delay and the server's
//! hint (`Retry-After` as seconds or an HTTP-date, `retry-after-ms`, `RateLimit`,
//! `X-RateLimit-Reset`; dates are measured against the response's own `Date` header). The
//! backoff is cloned per request, so requests neither share a delay sequence nor, with an
//! unseeded `Exponential`, their jitter.
//!
//! It does not retry, and returns the last response or error at once, when:
//!
//! - the server asks for longer than [`max_wait`](RetryPolicyBuilder::max_wait) (30 s by
//!   default): the caller learns now that the service is unavailable, rather than after waiting;
//! - the wait would reach the request's [`deadline`](RetryPolicyBuilder::deadline);
//! - the backoff has no retries left (`max_retries`);
//! - the [`RetryBudget`] is spent;
//! - the request cannot be replayed (see below).
//!
//! Giving up is not an error: an HTTP response is returned as the inner service produced it
//! (a `503` stays a `503` response), an error as the inner error. The inner error type is boxed
//! into [`BoxError`]; downcast it to the inner type.
//!
//! # Bodies
//!
//! A retry needs the request again, so the layer keeps a copy, made before the first attempt is
//! sent, and builds each retry from it ([`ReplayableRequest`]). An `http::Request` whose body is
//! `Clone` (`Full<Bytes>`, `String`, `Empty`, ...) is copied with `Request::clone`; `reqwest`
//! requests use `try_clone`. Streaming bodies go in a [`ReplayBody`], which records up to 64 KiB
//! as the first attempt sends them and refuses to replay past that limit: a retry never sends a
//! truncated or empty body. See the [`body`] module.
//!
//! # Why budgets and not max retries
//!
//! A per-request retry limit bounds how much one request can cost, and that is all. When a
//! service fails, every request fails, so every request spends all of its retries: with three
//! retries, the failing service receives four times its normal load at the very moment it is
//! least able to take it. Stack services that each retry three times and a single user click
//! becomes 16, then 64 requests at the bottom. This is a retry storm, and it is how a brief
//! overload becomes an outage that only ends when clients are turned off.
//!
//! A retry budget bounds retries as a share of traffic instead: retries may be at most 20 % of
//! first attempts (plus a small floor so that a client sending one request a minute can still
//! retry it). Sporadic failures — the ones retries are good at hiding — cost a few tokens and are
//! retried as before. A total outage spends the budget within the first few failures, after which
//! the extra load on the failing service is at most 20 %, however long the outage lasts and
//! however many layers retry. The `max_retries` of the backoff still bounds the latency of one
//! request; the budget bounds the load of all of them. Finagle, gRPC (retry throttling), Envoy
//! and Google's SRE practice all settled on this.
//!
//! [`RetryBudget`] is a token bucket shared by every clone of the layer: each first attempt
//! deposits `ratio_percent` units, each retry withdraws 100, deposits expire after a ten-second
//! window, and a floor of `min_retries_per_second` (with a reserve of that many per second of
//! the window) is always available. Integer arithmetic, atomics only, and an exact bound: see the
//! [`budget`] module. Every [`RetryPolicy`] gets its own budget unless you pass one to share it
//! between layers (or turn it off with [`no_budget`](RetryPolicyBuilder::no_budget)).
//!
//! # Observability
//!
//! The layer emits `tracing` events at `DEBUG` level: `retrying request` (attempt number, reason,
//! status, wait, server hint) and `not retrying` (attempts, reason, cause). The
//! [`on_retry`](RetryPolicyBuilder::on_retry) and [`on_give_up`](RetryPolicyBuilder::on_give_up)
//! hooks receive the same facts as [`RetryEvent`] and [`GiveUpEvent`], for metrics. An optional
//! [`attempt_header`](RetryPolicyBuilder::attempt_header) tells the server which attempt it sees.
//!
//! # Where it goes in a stack
//!
//! Outside a circuit breaker (a breaker's fast-fail is never retried, and each retry is counted
//! by the breaker), inside an overall timeout. A per-attempt timeout goes inside the retry layer;
//! its `Elapsed` error is retried for idempotent requests. [`AttemptTimeoutLayer`] is such a
//! timeout, on tokio's timer, armed only for an attempt not answered on its first poll (see
//! [`timeout`]).
//!
//! The layer needs a tokio runtime with the time driver when it has to wait.
//!
//! # Features
//!
//! - `reqwest`: `ReplayableRequest` for `reqwest::Request`, and the classification of
//!   `reqwest::Response` / `reqwest::Error`, so that `Retry<reqwest::Client>` works.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod body;
pub mod budget;
pub mod error;
mod future;
mod layer;
mod policy;
mod service;
pub mod timeout;

pub use body::{ReplayBody, ReplayableRequest, DEFAULT_REPLAY_LIMIT};
pub use budget::{RetryBudget, RetryBudgetBuilder};
pub use error::{BudgetError, ReplayError};
pub use future::ResponseFuture;
pub use layer::RetryLayer;
pub use policy::{
    GiveUp, GiveUpEvent, RetryEvent, RetryPolicy, RetryPolicyBuilder, DEFAULT_MAX_WAIT,
};
pub use service::Retry;
pub use timeout::{AttemptTimeout, AttemptTimeoutLayer};

pub use resile_backoff::{Backoff, Constant, Exponential, Jitter};
pub use resile_classify::{Classifier, OutcomeKind, RetryRefused};

pub use resile_classify::BoxError;

#[cfg(all(test, not(loom)))]
mod tests;

// The README (shown on crates.io): its example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
