//! The client layer: pace outgoing requests to a quota, and obey servers that say "slow down".
//!
//! See [`RateLimitLayer`] (configuration) and [`RateLimit`] (the service: fairness,
//! cancellation, bounded waits).

mod error;
mod future;
mod layer;
mod policy;
mod service;

pub use error::{NotReady, WaitTooLong};
pub use future::ResponseFuture;
pub use layer::{RateLimitLayer, RateLimitLayerBuilder};
pub use policy::{PacedResponse, ServerHints};
pub use service::RateLimit;
