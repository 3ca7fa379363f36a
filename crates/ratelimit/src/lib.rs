//! GCRA rate limiting for tower: lock-free direct and keyed limiters, client pacing, and server
//! `429`s with `Retry-After` and the IETF `RateLimit` fields.
//!
//! # The pieces
//!
//! - **GCRA core** ([`Quota`], [`Decision`]): the Generic Cell Rate Algorithm on integer
//!   nanoseconds. A quota is `rate` per `period` with a `burst`; the state of a key is a single
//!   theoretical arrival time (TAT). It is exact: over any window of length `t`, at most
//!   `burst + t / T` cells are admitted (`T` = period / rate, rounded up).
//! - **Limiters** ([`RateLimiter`], [`KeyedRateLimiter`]): synchronous `check()` /
//!   `check_n(n)` / `check_key(&k)`. Each key's TAT is one `AtomicU64` updated by a
//!   compare-and-swap loop: no mutex, no allocation. A request for more cells than the burst is
//!   a distinct error ([`InsufficientCapacity`]), not a refusal.
//! - **Stores** ([`Store`]): where the TATs live, behind one async trait with one
//!   [`Decision`]. In memory by default ([`MemoryStore`] for one key, [`KeyedStore`] for many,
//!   whose memory stays bounded by itself — idle keys are dropped, an optional cap holds the
//!   total); on Redis with the `redis` feature. Both layers take any store.
//! - **Clocks** ([`clock`]): the default [`QuantaClock`](clock::QuantaClock) reads the CPU's
//!   time-stamp counter; [`ManualClock`](clock::ManualClock) drives tests;
//!   [`TokioClock`](clock::TokioClock) follows tokio's paused clock.
//! - **Client layer** ([`RateLimitLayer`]): paces outgoing requests. Every clone shares one
//!   limiter; `poll_ready` reserves a slot and sleeps until it (first come, first served; an
//!   unused slot is given back), up to a maximum wait past which the call fails at once with
//!   [`WaitTooLong`](client::WaitTooLong). A `429`/`503` whose server hint says "wait" pauses the
//!   shared limiter for every caller. Responses are read through
//!   [`ResponseLike`](client::ResponseLike): `http::Response` (hyper-util's client) and, with the
//!   `reqwest` feature, `reqwest::Response` (`reqwest::Client` plugs in as it is). The layer's
//!   refusals carry [`LocalRejection`](resile_classify::LocalRejection) in their source chain,
//!   so resile's classifier never retries them and circuit breakers do not count them.
//! - **Server layer** ([`ThrottleLayer`]): keyed by a [`KeyExtractor`](server::KeyExtractor)
//!   (peer IP, a header, a closure); answers `429 Too Many Requests` with `Retry-After` in whole
//!   seconds rounded up (a 300 ms wait is `1`, never `0`) and the `RateLimit-Policy` /
//!   `RateLimit` fields. Works as an axum layer.
//!
//! # Example: a client
//!
//! ```
//! use std::convert::Infallible;
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//! use resile_ratelimit::client::WaitTooLong;
//! use resile_ratelimit::{Quota, RateLimitLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! // 5 requests per second, no burst beyond that; never wait more than 2 s for a slot.
//! let client = ServiceBuilder::new()
//!     .layer(
//!         RateLimitLayer::builder(Quota::per_second(NonZeroU32::new(5).unwrap()))
//!             .max_wait(Duration::from_secs(2))
//!             .build(),
//!     )
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         Ok::<_, Infallible>(http::Response::new("pong"))
//!     }));
//!
//! // Clones (one per task, say) share the limiter.
//! for _ in 0..5 {
//!     let res = client.clone().oneshot(http::Request::new(())).await?;
//!     assert_eq!(*res.body(), "pong");
//! }
//! # let _ = |e: tower::BoxError| e.is::<WaitTooLong>();
//! # Ok(())
//! # }
//! ```
//!
//! # Example: a reqwest client
//!
//! With the `reqwest` feature, `reqwest::Client` goes under the layer as it is: a `429` with
//! `Retry-After` pauses every clone of `client`.
//!
//! ```no_run
//! # #[cfg(feature = "reqwest")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! use std::num::NonZeroU32;
//! use resile_ratelimit::{Quota, RateLimitLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let http = reqwest::Client::new();
//! let client = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new(Quota::per_second(NonZeroU32::new(10).unwrap())))
//!     .service(http.clone());
//! let req = http.get("http://127.0.0.1:8080/").build()?;
//! let res: reqwest::Response = client.clone().oneshot(req).await?;
//! println!("{}", res.status());
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "reqwest"))]
//! # fn main() {}
//! ```
//!
//! # Example: an axum server
//!
//! ```
//! use std::net::SocketAddr;
//! use std::num::NonZeroU32;
//! use axum::{routing::get, Router};
//! use axum::extract::ConnectInfo;
//! use resile_ratelimit::server::RequestHead;
//! use resile_ratelimit::{Quota, ThrottleLayer};
//!
//! // 100 requests per minute per client address, in bursts of up to 20.
//! let quota = Quota::per_minute(NonZeroU32::new(100).unwrap())
//!     .with_burst(NonZeroU32::new(20).unwrap())
//!     .unwrap();
//! // With the `axum` feature, `server::PeerIp::new()` reads `ConnectInfo` by itself.
//! let peer = |req: &RequestHead<'_>| {
//!     req.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
//! };
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(ThrottleLayer::new(quota, peer));
//! // axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
//! ```
//!
//! # Limiters without tower
//!
//! ```
//! use std::num::NonZeroU32;
//! use resile_ratelimit::{KeyedRateLimiter, Quota};
//!
//! let limiter = KeyedRateLimiter::new(Quota::per_second(NonZeroU32::new(2).unwrap()));
//! assert!(limiter.check_key("alice").allowed);
//! assert!(limiter.check_key("alice").allowed);
//! let refused = limiter.check_key("alice");
//! assert!(!refused.allowed);
//! assert!(refused.retry_after <= std::time::Duration::from_millis(500));
//! assert!(limiter.check_key("bob").allowed);
//! ```
//!
//! # Features
//!
//! - `redis`: a [`Store`] on Redis (one atomic Lua script per decision, on the server's clock).
//! - `axum`: [`server::PeerIp`] also reads axum's `ConnectInfo<SocketAddr>`.
//! - `reqwest`: the client layer reads `reqwest::Response`s (resile-classify's `reqwest`
//!   feature), so it wraps `reqwest::Client`.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod adaptive;
pub mod client;
pub mod clock;
mod direct;
mod gcra;
mod keyed;
pub mod pause;
pub mod server;
mod state;
mod store;
pub mod throttling;

#[cfg(feature = "redis")]
pub mod redis;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use adaptive::{AdaptiveRateLimit, AdaptiveRateLimitLayer, QueueFull};
pub use client::{RateLimit, RateLimitLayer};
pub use direct::{MemoryStore, RateLimiter};
pub use gcra::{Decision, InsufficientCapacity, Quota, QuotaError, MAX_WINDOW};
pub use keyed::{KeyedRateLimiter, KeyedStore, KeyedStoreBuilder};
pub use pause::{ServerPause, ServerPauseLayer};
pub use server::{Throttle, ThrottleLayer};
pub use store::{BoxError, Store, StoreError};

// The README (shown on crates.io): its example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
