//! The server layer: answer requests over a quota with `429 Too Many Requests`, `Retry-After`
//! and the IETF `RateLimit` fields.
//!
//! See [`ThrottleLayer`] (configuration, response format) and the [`KeyExtractor`]s.

mod future;
mod headers;
mod layer;
mod policy;
mod service;

pub use future::ResponseFuture;
pub use layer::{ThrottleLayer, ThrottleLayerBuilder};
pub use policy::{Fallback, HeaderKey, KeyOf, PeerIp, RequestHead};
pub use resile_classify::key::{AllRequests, KeyExtractor};
pub use service::Throttle;
