//! A circuit breaker for `tower`: opens on repeated 5xx and transport failures, fails fast while
//! open, honours `Retry-After`, and costs a few atomic loads per call while closed.
//!
//! ```text
//!            failures reach the trip policy
//!   Closed ──────────────────────────────────▶ Open ◀──────────────┐
//!     ▲                                          │ open period over │ a probe fails
//!     │ enough probes succeed                    ▼                  │
//!     └──────────────────────────────────── HalfOpen ───────────────┘
//! ```
//!
//! - **Closed**: calls pass; outcomes are classified by [`resile_classify`] (5xx and transport
//!   errors fail, 408 and 429 are neutral, everything else succeeds) and counted against the
//!   [`TripPolicy`]: 5 consecutive failures by default, or a failure rate over a count- or
//!   time-based [`SlidingWindow`] with a minimum number of calls.
//! - **Open**: calls fail at once with a [`BreakerOpen`] error (`poll_ready` does not even poll
//!   the inner service), which says how long until the next probe and which every resile layer
//!   recognises as a local rejection: never retried, never counted by another breaker. The open
//!   period comes from a backoff (5 s to 60 s with jitter by default, growing with each
//!   reopening) and is never shorter than the `Retry-After` of the response that opened it.
//! - **Half-open**: a bounded number of probes pass (1 by default); enough successes close the
//!   breaker, a failure reopens it. A probe whose future is dropped gives its slot back.
//!
//! A [`BreakerHandle`] reads the state and the [`Metrics`], forces the breaker open, disables
//! it (always closed, still counting) or resets it, and subscribes to [`Transition`]s, which
//! are also `tracing` events (target `resile_breaker`). [`KeyedCircuitBreakerLayer`] keeps one
//! breaker per host in bounded memory; [`http::ServiceUnavailableLayer`] turns rejections into
//! `503` + `Retry-After` for servers.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use resile_breaker::{BreakerOpen, CircuitBreakerLayer, State};
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let breaker = CircuitBreakerLayer::builder()
//!     .consecutive_failures(3)
//!     .open_duration(Duration::from_secs(10))
//!     .build()?;
//! let handle = breaker.handle();
//!
//! // A backend that answers 503 to everything.
//! let mut svc = ServiceBuilder::new().layer(breaker).service(service_fn(|_req: Request<()>| async {
//!     let res = Response::builder().status(StatusCode::SERVICE_UNAVAILABLE).body(())?;
//!     Ok::<_, http::Error>(res)
//! }));
//!
//! for _ in 0..3 {
//!     let res = svc.ready().await?.call(Request::new(())).await?;
//!     assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
//! }
//! assert_eq!(handle.state(), State::Open);
//!
//! // Open: the backend is not called, the error says when the breaker probes again.
//! let err = svc.ready().await?.call(Request::new(())).await.unwrap_err();
//! let open = err.downcast_ref::<BreakerOpen>().expect("a BreakerOpen");
//! assert_eq!(open.until_probe(), Some(Duration::from_secs(10)));
//! assert_eq!(handle.metrics().rejections, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Readiness
//!
//! `poll_ready` asks the breaker before the inner service. While the breaker is open it returns
//! ready without polling the inner service, and `call` returns the [`BreakerOpen`] error at once
//! (tower's `LoadShed` pattern). A half-open probe slot is reserved by `poll_ready` and held
//! until `call`, or given back when the service is dropped; clones of the service start with no
//! reservation. The keyed breaker only learns the key in `call`, so its `poll_ready` is the
//! inner service's.
//!
//! # Concurrency and cost
//!
//! The state of a breaker is one `AtomicU64`; every transition is a compare-and-swap, so
//! exactly one thread trips, probes first, or closes the breaker (checked under loom, and
//! against a reference model under proptest). The closed path takes no lock, allocates
//! nothing and reads no clock (unless the policy is a time window): admission and a success are
//! atomic loads of the state word, the response future holds the breaker's `Arc` (as tower's
//! `ConcurrencyLimit` holds its semaphore), and each metric is one exact atomic counter. The
//! failure-rate windows are lock-free rings with
//! running totals, O(1) per record and per read. Figures beside tower-resilience and failsafe
//! are in the repository's `docs/benchmarks.md`.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
mod error;
mod future;
mod handle;
pub mod http;
pub mod keyed;
mod layer;
mod policy;
mod service;
mod shared;
mod state;
mod sync;
mod window;

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;

pub use clock::{Clock, TokioClock};
pub use error::{BreakerConfigError, BreakerOpen};
pub use future::ResponseFuture;
pub use handle::{BreakerHandle, Metrics, Subscription, Transition};
pub use keyed::{KeyedCircuitBreaker, KeyedCircuitBreakerLayer, KeyedHandle};
pub use layer::CircuitBreakerLayer;
pub use policy::{
    classify_fn, CircuitBreakerBuilder, ClassifyOutcome, FnClassifier, SlidingWindow, TripPolicy,
};
pub use resile_classify::key::{ByAuthority, KeyExtractor};
pub use resile_classify::{BreakerVerdict, Classifier};
pub use service::CircuitBreaker;
pub use state::State;

pub use resile_classify::BoxError;

// The README (shown on crates.io): its example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
