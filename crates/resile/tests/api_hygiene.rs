//! Public API hygiene, checked at compile time: every error type is a `std::error::Error` that
//! can travel in a `tower::BoxError` (`Send + Sync + 'static`, `Debug + Display`), and every
//! layer is a `Clone + Debug` configuration value.

#![cfg(all(feature = "retry", feature = "breaker", feature = "ratelimit"))]

use std::error::Error;
use std::fmt::{Debug, Display};

fn error_type<E: Error + Debug + Display + Send + Sync + 'static>() {}
fn layer_type<L: Clone + Debug + Send + Sync + 'static>() {}

#[test]
fn error_types_are_boxable_errors() {
    error_type::<resile::backoff::BackoffConfigError>();
    error_type::<resile::retry_after::ParseError>();
    error_type::<resile::classify::LocalRejection>();
    error_type::<resile::retry::BudgetError>();
    error_type::<resile::retry::ReplayError>();
    error_type::<resile::breaker::BreakerOpen>();
    error_type::<resile::breaker::BreakerConfigError>();
    error_type::<resile::ratelimit::QuotaError>();
    error_type::<resile::ratelimit::InsufficientCapacity>();
    error_type::<resile::ratelimit::StoreError>();
    error_type::<resile::ratelimit::client::WaitTooLong>();
    error_type::<resile::ratelimit::client::NotReady>();
}

#[cfg(feature = "redis")]
#[test]
fn redis_error_types_are_boxable_errors() {
    error_type::<resile::ratelimit::redis::RedisUnavailable>();
    error_type::<resile::ratelimit::redis::UnexpectedReply>();
}

#[test]
fn layers_are_clone_debug_config_values() {
    layer_type::<resile::retry::RetryLayer>();
    layer_type::<resile::retry::AttemptTimeoutLayer>();
    layer_type::<resile::breaker::CircuitBreakerLayer>();
    layer_type::<resile::breaker::KeyedCircuitBreakerLayer<String>>();
    layer_type::<resile::breaker::http::ServiceUnavailableLayer>();
    layer_type::<resile::ratelimit::RateLimitLayer>();
    layer_type::<resile::ratelimit::ThrottleLayer<resile::ratelimit::server::PeerIp>>();
    layer_type::<resile::ratelimit::ThrottleLayer<resile::ratelimit::server::AllRequests>>();
}
