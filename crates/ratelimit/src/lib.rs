//! GCRA rate limiting for tower: lock-free direct and keyed limiters, client pacing, and server
//! `429`s with `Retry-After` and the IETF `RateLimit` fields.
//!
//! (Crate documentation in progress.)

pub mod client;
pub mod clock;
mod direct;
mod gcra;
mod keyed;
pub mod server;
mod state;
mod store;

#[cfg(feature = "redis")]
pub mod redis;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use client::{RateLimit, RateLimitLayer};
pub use direct::{MemoryStore, RateLimiter};
pub use gcra::{Decision, InsufficientCapacity, Quota, QuotaError, MAX_WINDOW};
pub use keyed::{KeyedRateLimiter, KeyedStore, KeyedStoreBuilder};
pub use server::{Throttle, ThrottleLayer};
pub use store::{BoxError, Store, StoreError};
