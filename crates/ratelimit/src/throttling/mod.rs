//! Client-side adaptive throttling (Google SRE, "Handling Overload"): [`AdaptiveThrottleLayer`].
//!
//! The layer counts, over a sliding window (2 minutes by default), the requests the client
//! made and the ones the server accepted, and refuses a new request locally with probability
//!
//! ```text
//! max(0, (requests - K * accepts) / (requests + 1))
//! ```
//!
//! with `K = 2` by default. While the server accepts everything nothing is refused; once it
//! rejects more than half of what it gets (for `K = 2`), the client sends about `K` times what
//! the server accepts, and refuses the rest **without sending them**: the server spends nothing
//! on requests it would reject anyway, and the client learns of an overload at once instead of
//! after a round trip. Refused requests count as requests, so the probability falls as soon as
//! the server accepts again.
//!
//! # What counts
//!
//! - accepted: a response whose status is not in the layer's rejected set (`429` and `503` by
//!   default, [`rejected_statuses`](AdaptiveThrottleLayerBuilder::rejected_statuses));
//! - not accepted: a status in that set, and an error without a response (a timeout, a
//!   transport error, as resile-classify tells them apart);
//! - not counted: an error another layer made locally ([`LocalRejection`]), and a call dropped
//!   before it finished. Refusals of this layer count as requests not accepted.
//!
//! A refusal is a [`Throttled`] error marked [`LocalRejection`]: never retried, neutral for
//! circuit breakers.
//!
//! # Which layer for which failure
//!
//! | layer | reacts to | does |
//! |---|---|---|
//! | circuit breaker | a server that is *down* (5xx, timeouts) | stops sending, probes, reopens |
//! | retry budget | retries only | caps retries to a share of first attempts |
//! | adaptive rate limit | a server's *rate limit* (429 + hints, published quotas) | paces to the learned rate, queues |
//! | adaptive throttling | a server *overloaded* (rejecting a share of requests) | sends about `K` × accepted, refuses the rest at once |
//!
//! Put it inside the retry layer (per attempt): a refused attempt then ends the retries too.
//! Use a smaller `K` (down to 1) for a more aggressive cut, a larger one for a server whose
//! rejections are cheap.
//!
//! # Cost and memory
//!
//! The window is a ring of 24 buckets, each one `AtomicU64` (no lock). Admitting a request
//! loads one atomic (the refusal probability, recomputed from the window every 8 answers and at
//! each new bucket) and draws a random number only while the probability is not zero; each
//! answer reads the clock and does one compare-and-swap. Memory is fixed: one layer is about
//! 250 bytes.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use resile_ratelimit::throttling::AdaptiveThrottleLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! let throttle = AdaptiveThrottleLayer::new();
//! let client = ServiceBuilder::new()
//!     .layer(throttle.clone())
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         Ok::<_, Infallible>(http::Response::new(()))
//!     }));
//! client.oneshot(http::Request::new(())).await?;
//! assert_eq!(throttle.probability(), 0.0);
//! # Ok(())
//! # }
//! ```

mod error;
mod future;
mod layer;
mod service;
mod window;

pub use error::Throttled;
pub use future::ResponseFuture;
pub use layer::{AdaptiveThrottleLayer, AdaptiveThrottleLayerBuilder, DEFAULT_K, DEFAULT_WINDOW};
pub use service::AdaptiveThrottle;

#[cfg(doc)]
use resile_classify::LocalRejection;

pub(crate) use window::Window;

#[cfg(all(test, not(loom)))]
mod tests;
