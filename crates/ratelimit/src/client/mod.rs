//! The client layer: pace outgoing requests to a quota, and obey servers that say "slow down".
//!
//! See [`RateLimitLayer`] (configuration) and [`RateLimit`] (the service: fairness,
//! cancellation, bounded waits). A client that has no quota to follow and should only obey
//! servers' pauses uses [`ServerPauseLayer`](crate::pause::ServerPauseLayer) instead.
//!
//! The layer wraps any `tower::Service` whose response is [`ResponseLike`] (status and headers,
//! from resile-classify): `http::Response<B>` (hyper-util's `Client`, any `http` service) and,
//! with the `reqwest` feature, `reqwest::Response`, so `reqwest::Client` plugs in directly. Its
//! refusals ([`WaitTooLong`], [`NotReady`]) carry
//! [`LocalRejection`](resile_classify::LocalRejection) in their source chain: never retried,
//! neutral for circuit breakers.

mod error;
mod future;
mod layer;
mod service;

pub use crate::pause::PausePolicy;
pub use error::{NotReady, WaitTooLong};
pub use future::ResponseFuture;
pub use layer::{RateLimitLayer, RateLimitLayerBuilder};
pub use resile_classify::ResponseLike;
pub use service::RateLimit;
