//! Ready-made stacks: the layers in the right order, with sensible defaults.
//!
//! [`http_client()`] returns a [`ClientStack`]: a `tower::Layer` that wraps an HTTP client
//! (hyper-util's `Client`, any `tower::Service<http::Request<B>>`, or with the `reqwest` feature
//! `reqwest::Client` as it is) in, from the outside in:
//!
//! ```text
//! retry  ->  circuit breaker  ->  rate limiter  ->  per-attempt timeout  ->  the client
//! ```
//!
//! # Why this order
//!
//! - **Retry outside the breaker.** Each attempt, first or retry, passes the breaker: the breaker
//!   counts every failure the server produced and sees recovery on the first good attempt. When
//!   the breaker is open its error, [`BreakerOpen`](resile_breaker::BreakerOpen), carries
//!   [`LocalRejection`](resile_classify::LocalRejection) in its source chain, which the retry
//!   layer does not retry: an open breaker is not hammered by retries. (The one exception: a
//!   retry policy with a [`deadline`](resile_retry::RetryPolicyBuilder::deadline) waits for the
//!   breaker's next probe when it comes before the deadline, and tries once more then.) A retry
//!   layer inside the breaker would send several attempts per breaker decision and hide the
//!   failures from it.
//! - **Retry outside the limiter.** Each retry takes a limiter permit like any request, so retries
//!   never push the client past its quota (when the limiter has one), and a pause a `429` asked
//!   for holds retries back too.
//!   A limiter refusal ([`WaitTooLong`](resile_ratelimit::client::WaitTooLong)) is a local
//!   rejection as well, marked the same way: not retried, and neutral for the breaker. Every
//!   [`Classifier`](resile_classify::Classifier), the default or one from its builder, reads the
//!   marker (unless a custom closure of yours decides otherwise), so replacement pieces keep that
//!   behaviour without extra configuration.
//! - **Breaker outside the limiter.** An open breaker fails before a permit is taken, so requests
//!   that will not be sent do not spend the quota; and the limiter's refusals never reach the
//!   breaker's count as failures (they are neutral: being throttled locally says nothing about
//!   the server).
//! - **Timeout innermost.** It bounds one attempt ([`AttemptTimeoutLayer`], which arms no timer
//!   for an attempt answered on its first poll; any timeout layer fits, tower's `TimeoutLayer`
//!   too); its [`Elapsed`](tower::timeout::error::Elapsed) error is a transport failure to the
//!   layers above: retried for idempotent requests, counted by the breaker. Bound the whole request,
//!   waits included, with the retry policy's `deadline` or a timeout outside the stack.
//!
//! # Defaults
//!
//! | piece | default |
//! |---|---|
//! | classifier (retry and breaker) | [`Classifier::default()`](resile_classify::Classifier): the table of resile-classify; local rejections never retried, neutral for the breaker |
//! | retry | [`default_retry_policy()`]: exponential backoff 100 ms ×2 to 20 s with full jitter, 3 retries, server hints up to 30 s, a retry budget of 20 % + 10/s |
//! | breaker | [`default_breaker()`]: opens after 5 consecutive failures, open 5 s to 60 s (jittered, growing), one probe |
//! | limiter | [`default_limiter()`]: [`RateLimitLayer::hints_only()`], no quota (it never paces by itself; its `poll_ready` is one atomic load while no pause is in force) that **pauses every request** when a `429`/`503` carries `Retry-After` (up to 10 minutes; a pause past 30 s fails the call at once) |
//! | per-attempt timeout | [`DEFAULT_ATTEMPT_TIMEOUT`] (10 s) |
//!
//! Give the stack a pacing limiter with the server's published quota if it has one
//! (`.rate_limit(RateLimitLayer::new(quota))`); the default only holds the client back when the
//! server asks.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use http::{Request, Response, StatusCode};
//! use resile::breaker::CircuitBreakerLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower::BoxError> {
//! // A backend that answers 503 with `Retry-After: 1` once, then 200.
//! let calls = Arc::new(AtomicU32::new(0));
//! let backend = {
//!     let calls = calls.clone();
//!     service_fn(move |_req: Request<String>| {
//!         let n = calls.fetch_add(1, Ordering::SeqCst);
//!         async move {
//!             let res = if n == 0 {
//!                 Response::builder().status(503).header("retry-after", "1")
//!             } else {
//!                 Response::builder().status(200)
//!             };
//!             Ok::<_, Infallible>(res.body(String::new()).unwrap())
//!         }
//!     })
//! };
//!
//! let breaker = resile::stack::default_breaker();
//! let handle = breaker.handle();
//! let stack = resile::stack::http_client()
//!     .circuit_breaker(breaker)
//!     .attempt_timeout(Duration::from_secs(2));
//! let client = ServiceBuilder::new().layer(stack).service(backend);
//!
//! let start = tokio::time::Instant::now();
//! let res = client.oneshot(Request::get("http://example.com/").body(String::new())?).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(calls.load(Ordering::SeqCst), 2);
//! assert!(start.elapsed() >= Duration::from_secs(1)); // the server's hint was honoured
//! assert_eq!(handle.metrics().failures, 1);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use resile_breaker::{BreakerHandle, CircuitBreakerLayer};
use resile_ratelimit::RateLimitLayer;
use resile_retry::{AttemptTimeoutLayer, RetryLayer, RetryPolicy};
use tower::layer::util::Identity;
use tower_layer::Layer;

/// The default per-attempt timeout of [`http_client()`]: 10 seconds.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The limiter of [`http_client()`]: [`RateLimitLayer::hints_only()`]. It has no quota and
/// never paces by itself (its `poll_ready` is one atomic load while no pause is in force); it obeys
/// servers: a `429` or `503` with `Retry-After` (or another server hint) pauses every request
/// sharing it, for up to 10 minutes, and a request that would wait more than 30 s for the pause
/// to end fails at once with [`WaitTooLong`](resile_ratelimit::client::WaitTooLong).
pub fn default_limiter() -> RateLimitLayer {
    RateLimitLayer::hints_only()
}

/// The retry policy of [`http_client()`]: [`RetryPolicy::default()`] (whose classifier is
/// [`Classifier::default()`](resile_classify::Classifier)).
pub fn default_retry_policy() -> RetryPolicy {
    RetryPolicy::default()
}

/// The breaker of [`http_client()`]: [`CircuitBreakerLayer::new()`] (whose classifier is
/// [`Classifier::default()`](resile_classify::Classifier)).
pub fn default_breaker() -> CircuitBreakerLayer {
    CircuitBreakerLayer::new()
}

/// An HTTP client stack with the defaults: see the [module documentation](self).
///
/// Every piece is replaceable and removable; the order is fixed.
pub fn http_client() -> ClientStack {
    ClientStack {
        retry: RetryLayer::new(default_retry_policy()),
        breaker: default_breaker(),
        limiter: default_limiter(),
        timeout: AttemptTimeoutLayer::new(DEFAULT_ATTEMPT_TIMEOUT),
    }
}

/// A client stack: retry → circuit breaker → rate limiter → per-attempt timeout → the service.
///
/// A `Clone + Debug` [`Layer`]: every service it wraps shares the breaker, the limiter and the
/// retry budget of its pieces (they are `Arc`s inside). Built by [`http_client()`]; the type
/// parameters are the four pieces, [`Identity`] for a removed one.
///
/// # Default
///
/// See the [module documentation](self).
#[derive(Clone)]
pub struct ClientStack<
    R = RetryLayer,
    B = CircuitBreakerLayer,
    L = RateLimitLayer,
    T = AttemptTimeoutLayer,
> {
    retry: R,
    breaker: B,
    limiter: L,
    timeout: T,
}

impl Default for ClientStack {
    fn default() -> Self {
        http_client()
    }
}

impl<R: fmt::Debug, B: fmt::Debug, L: fmt::Debug, T: fmt::Debug> fmt::Debug
    for ClientStack<R, B, L, T>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientStack")
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("limiter", &self.limiter)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<R, B, L, T> ClientStack<R, B, L, T> {
    /// Retries under `policy` (replaces [`default_retry_policy()`]).
    pub fn retry<P>(self, policy: RetryPolicy<P>) -> ClientStack<RetryLayer<P>, B, L, T> {
        self.retry_layer(RetryLayer::new(policy))
    }

    /// Any layer in the retry position (outermost).
    pub fn retry_layer<R2>(self, layer: R2) -> ClientStack<R2, B, L, T> {
        ClientStack {
            retry: layer,
            breaker: self.breaker,
            limiter: self.limiter,
            timeout: self.timeout,
        }
    }

    /// No retry layer.
    pub fn no_retry(self) -> ClientStack<Identity, B, L, T> {
        self.retry_layer(Identity::new())
    }

    /// Uses `layer`'s breaker (keep [`CircuitBreakerLayer::handle`] to watch or control it). Any
    /// layer fits here, such as a `KeyedCircuitBreakerLayer` for one breaker per host.
    pub fn circuit_breaker<B2>(self, layer: B2) -> ClientStack<R, B2, L, T> {
        ClientStack {
            retry: self.retry,
            breaker: layer,
            limiter: self.limiter,
            timeout: self.timeout,
        }
    }

    /// No circuit breaker.
    pub fn no_circuit_breaker(self) -> ClientStack<R, Identity, L, T> {
        self.circuit_breaker(Identity::new())
    }

    /// Uses `layer` as the rate limiter (e.g. a [`RateLimitLayer`] with the server's published
    /// quota, or one on a Redis store shared by several processes).
    pub fn rate_limit<L2>(self, layer: L2) -> ClientStack<R, B, L2, T> {
        ClientStack {
            retry: self.retry,
            breaker: self.breaker,
            limiter: layer,
            timeout: self.timeout,
        }
    }

    /// No rate limiter (server `429` hints are then honoured per request by the retry layer
    /// only).
    pub fn no_rate_limit(self) -> ClientStack<R, B, Identity, T> {
        self.rate_limit(Identity::new())
    }

    /// Bounds each attempt to `timeout` (replaces [`DEFAULT_ATTEMPT_TIMEOUT`]).
    pub fn attempt_timeout(self, timeout: Duration) -> ClientStack<R, B, L, AttemptTimeoutLayer> {
        self.attempt_timeout_layer(AttemptTimeoutLayer::new(timeout))
    }

    /// Any layer in the per-attempt timeout position (innermost).
    pub fn attempt_timeout_layer<T2>(self, layer: T2) -> ClientStack<R, B, L, T2> {
        ClientStack {
            retry: self.retry,
            breaker: self.breaker,
            limiter: self.limiter,
            timeout: layer,
        }
    }

    /// No per-attempt timeout.
    pub fn no_attempt_timeout(self) -> ClientStack<R, B, L, Identity> {
        self.attempt_timeout_layer(Identity::new())
    }

    /// The retry piece.
    pub fn retry_piece(&self) -> &R {
        &self.retry
    }

    /// The breaker piece.
    pub fn breaker_piece(&self) -> &B {
        &self.breaker
    }

    /// The limiter piece.
    pub fn limiter_piece(&self) -> &L {
        &self.limiter
    }

    /// The timeout piece.
    pub fn timeout_piece(&self) -> &T {
        &self.timeout
    }
}

impl<R, C, L, T> ClientStack<R, CircuitBreakerLayer<C>, L, T> {
    /// The handle of the stack's breaker: its state, metrics and transitions.
    pub fn breaker_handle(&self) -> BreakerHandle {
        self.breaker.handle()
    }
}

impl<S, R, B, L, T> Layer<S> for ClientStack<R, B, L, T>
where
    T: Layer<S>,
    L: Layer<T::Service>,
    B: Layer<L::Service>,
    R: Layer<B::Service>,
{
    type Service = R::Service;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = self.timeout.layer(inner);
        let inner = self.limiter.layer(inner);
        let inner = self.breaker.layer(inner);
        self.retry.layer(inner)
    }
}
