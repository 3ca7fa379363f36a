//! The client layer: pace outgoing requests to a quota, and obey servers that say "slow down".
//!
//! See [`RateLimitLayer`] (configuration) and [`RateLimit`] (the service: fairness,
//! cancellation, bounded waits). [`RateLimitLayer::hints_only`] makes a layer with no quota that
//! only obeys servers' pauses, its `poll_ready` being one atomic load while none is in force.
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
pub(crate) mod pause;
mod policy;
pub(crate) mod registry;
mod service;

pub use error::{NotReady, WaitTooLong};
pub use future::ResponseFuture;
pub use layer::{HintsOnlyBuilder, RateLimitLayer, RateLimitLayerBuilder};
pub use policy::ServerHints;
pub use resile_classify::ResponseLike;
pub use service::RateLimit;
