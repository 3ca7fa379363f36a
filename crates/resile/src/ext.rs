//! [`ServiceBuilderExt`]: resile's layers as `tower::ServiceBuilder` methods.

#[cfg(any(feature = "retry", feature = "breaker", feature = "ratelimit"))]
use tower::layer::util::Stack;
use tower::ServiceBuilder;

#[cfg(feature = "breaker")]
use resile_breaker::CircuitBreakerLayer;
#[cfg(feature = "ratelimit")]
use resile_ratelimit::server::{KeyExtractor, RequestHead};
#[cfg(feature = "ratelimit")]
use resile_ratelimit::{RateLimitLayer, ThrottleLayer};
#[cfg(feature = "retry")]
use resile_retry::{RetryLayer, RetryPolicy};

mod sealed {
    pub trait Sealed<L> {}
}

impl<L> sealed::Sealed<L> for ServiceBuilder<L> {}

/// resile's layers as methods of [`tower::ServiceBuilder`], in the style of tower-http's
/// extension trait.
///
/// The trait is sealed: it is implemented for `ServiceBuilder` only.
///
/// Layers added first are outermost. The order resile recommends for a client is the one of
/// [`stack::http_client`](crate::stack::http_client): retry, then the circuit breaker, then the
/// rate limiter, then a per-attempt timeout.
///
/// # Why `retry_with` and `rate_limit_with`
///
/// tower's `ServiceBuilder` has inherent `retry` and `rate_limit` methods (behind tower's `retry`
/// and `limit` features). An inherent method always wins over a trait method of the same name, so
/// in any program where some crate turns those tower features on, `.retry(..)` would silently
/// mean tower's layer and fail to compile with a resile policy. The names here cannot collide.
///
/// # Example
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
///
/// use http::{Request, Response};
/// use resile::breaker::CircuitBreakerLayer;
/// use resile::retry::RetryPolicy;
/// use resile::ServiceBuilderExt;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower::BoxError> {
/// let breaker = CircuitBreakerLayer::builder()
///     .consecutive_failures(3)
///     .open_duration(Duration::from_secs(10))
///     .build()?;
/// let client = ServiceBuilder::new()
///     .retry_with(RetryPolicy::default())
///     .circuit_breaker(breaker)
///     .timeout(Duration::from_secs(5))
///     .service(service_fn(|_req: Request<String>| async {
///         Ok::<_, Infallible>(Response::new(String::from("hello")))
///     }));
///
/// let res = client.oneshot(Request::new(String::new())).await?;
/// assert_eq!(res.body(), "hello");
/// # Ok(())
/// # }
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed<L> + Sized {
    /// Retries requests under `policy` (a [`resile_retry::RetryLayer`]).
    #[cfg(feature = "retry")]
    fn retry_with<B>(self, policy: RetryPolicy<B>) -> ServiceBuilder<Stack<RetryLayer<B>, L>>;

    /// Puts the circuit breaker of `layer` in front of the service. Every service built from
    /// the layer (and every clone of them) shares its breaker.
    #[cfg(feature = "breaker")]
    fn circuit_breaker<C>(
        self,
        layer: CircuitBreakerLayer<C>,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer<C>, L>>;

    /// Paces requests through the limiter of `layer` (client side: waits for a permit, and
    /// obeys the `429` hints of the server for every clone).
    #[cfg(feature = "ratelimit")]
    fn rate_limit_with<St, K>(
        self,
        layer: RateLimitLayer<St, K>,
    ) -> ServiceBuilder<Stack<RateLimitLayer<St, K>, L>>;

    /// Answers requests over the quota of `layer` with `429 Too Many Requests`, `Retry-After`
    /// and the IETF `RateLimit` fields (server side; works in an axum app).
    #[cfg(feature = "ratelimit")]
    fn throttle<E: KeyExtractor<RequestHead<'static>>, St>(
        self,
        layer: ThrottleLayer<E, St>,
    ) -> ServiceBuilder<Stack<ThrottleLayer<E, St>, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    #[cfg(feature = "retry")]
    fn retry_with<B>(self, policy: RetryPolicy<B>) -> ServiceBuilder<Stack<RetryLayer<B>, L>> {
        self.layer(RetryLayer::new(policy))
    }

    #[cfg(feature = "breaker")]
    fn circuit_breaker<C>(
        self,
        layer: CircuitBreakerLayer<C>,
    ) -> ServiceBuilder<Stack<CircuitBreakerLayer<C>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "ratelimit")]
    fn rate_limit_with<St, K>(
        self,
        layer: RateLimitLayer<St, K>,
    ) -> ServiceBuilder<Stack<RateLimitLayer<St, K>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "ratelimit")]
    fn throttle<E: KeyExtractor<RequestHead<'static>>, St>(
        self,
        layer: ThrottleLayer<E, St>,
    ) -> ServiceBuilder<Stack<ThrottleLayer<E, St>, L>> {
        self.layer(layer)
    }
}
