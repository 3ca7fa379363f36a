//! Ready-made stacks: the layers in the right order, with sensible defaults.
//!
//! [`http_client()`] returns a [`ClientStack`]: a `tower::Layer` that wraps an HTTP client
//! (hyper-util's `Client`, any `tower::Service<http::Request<B>>`, or with the `reqwest` feature
//! `reqwest::Client` as it is) in, from the outside in:
//!
//! ```text
//! retry  ->  circuit breaker  ->  server pause  ->  per-attempt timeout  ->  the client
//! ```
//!
//! With [`.telemetry(&telemetry)`](ClientStack::telemetry) (feature `telemetry`, on by
//! default), a telemetry layer goes around the whole (what callers see) and one just inside
//! the retry layer (what the server answered, per attempt). With
//! [`.error_for_status()`](ClientStack::error_for_status) (feature `api-error`, on by default;
//! the layer is off until asked for), final `4xx`/`5xx` responses become
//! `Err(ApiError)`, outermost of all.
//!
//! # Per host by default
//!
//! The breaker and the server pause keep one state per host (the request's authority,
//! `host:port`, through [`ByAuthority`]): five `5xx` from host A
//! open A's breaker only, and a `503` with `Retry-After: 3600` from host A never holds back a
//! request to host B. Memory is bounded: the breaker's table has [`DEFAULT_HOSTS`] slots (an
//! idle, closed host gives its slot to a new one; open ones are kept), and a pause is kept only
//! while it is in force (at most 1,024 hosts at once). A request with no authority is neither
//! guarded nor paused.
//!
//! One breaker (or one pause) for the whole client is an explicit choice:
//! `.circuit_breaker(CircuitBreakerLayer::new())`, `.rate_limit(ServerPauseLayer::client_wide())`.
//! [`breaker_handle()`](ClientStack::breaker_handle) returns the handle of whichever breaker the
//! stack holds: a [`KeyedHandle`] (state per host) by default, a [`BreakerHandle`] for a
//! client-wide one.
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
//!   failures from it. A retry the breaker refuses returns the server's last response, marked
//!   with [`RetryRefused`](resile_classify::RetryRefused), in place of the refusal.
//! - **Retry outside the limiter.** Each retry goes through the limiter like any request, so a
//!   pause a `429` asked for holds retries back too, and a pacing limiter (with a quota) never
//!   lets retries push the client past it.
//!   A limiter refusal ([`WaitTooLong`](resile_ratelimit::client::WaitTooLong)) is a local
//!   rejection as well, marked the same way: not retried, and neutral for the breaker. Every
//!   [`Classifier`](resile_classify::Classifier), the default or one from its builder, reads the
//!   marker (unless a custom closure of yours decides otherwise), so replacement pieces keep that
//!   behaviour without extra configuration.
//! - **Breaker outside the limiter.** An open breaker fails before a permit is taken, so requests
//!   that will not be sent do not spend the quota; and the limiter's refusals never reach the
//!   breaker's count as failures (they are neutral: being throttled locally says nothing about
//!   the server).
//! - **Timeout innermost.** It bounds one attempt ([`AttemptTimeoutLayer`], tokio's timer armed
//!   only for an attempt not answered on its first poll; any timeout layer fits, tower's
//!   `TimeoutLayer` too); its [`Elapsed`](tower::timeout::error::Elapsed) error is a transport failure to the
//!   layers above: retried for idempotent requests, counted by the breaker. Bound the whole request,
//!   waits included, with the retry policy's `deadline` or a timeout outside the stack.
//!
//! # Defaults
//!
//! | piece | default |
//! |---|---|
//! | classifier (retry and breaker) | [`Classifier::default()`](resile_classify::Classifier): the table of resile-classify; local rejections never retried, neutral for the breaker |
//! | retry | [`default_retry_policy()`]: exponential backoff 100 ms ×2 to 20 s with full jitter, 3 retries, server hints up to 30 s, a retry budget of 20 % + 10/s |
//! | breaker | [`default_breaker()`]: one breaker per host (up to [`DEFAULT_HOSTS`]); each opens after 5 consecutive failures, open 5 s to 60 s (jittered, growing), one probe |
//! | limiter | [`default_limiter()`]: [`ServerPauseLayer::per_host()`], no quota (it never paces by itself) that **pauses the requests to a host** when its `429`/`503` carries `Retry-After` (up to 10 minutes; a pause past 30 s fails the call at once) |
//! | per-attempt timeout | [`DEFAULT_ATTEMPT_TIMEOUT`] (10 s) |
//!
//! Give the stack a pacing limiter with the server's published quota if it has one
//! (`.rate_limit(RateLimitLayer::new(quota))`, which obeys the server's pauses too); the default
//! only holds the client back when the server asks.
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
//! let stack = resile::stack::http_client().attempt_timeout(Duration::from_secs(2));
//! let handle = stack.breaker_handle();
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

use std::time::Duration;

#[cfg(feature = "api-error")]
use resile_api_error::ErrorForStatusLayer;
use resile_breaker::{
    BreakerHandle, ByAuthority, CircuitBreakerLayer, KeyedCircuitBreakerLayer, KeyedHandle,
};
use resile_ratelimit::ServerPauseLayer;
use resile_retry::{AttemptTimeoutLayer, RetryLayer, RetryPolicy};
#[cfg(feature = "telemetry")]
use resile_telemetry::{Telemetry, TelemetryLayer};
use tower::layer::util::Identity;
use tower_layer::Layer;

/// The default per-attempt timeout of [`http_client()`]: 10 seconds.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The number of hosts the default breaker keeps a breaker for: 1,024.
pub const DEFAULT_HOSTS: usize = 1024;

/// The limiter of [`http_client()`]: [`ServerPauseLayer::per_host()`]. It has no quota and
/// never paces by itself; it obeys servers: a `429` or `503` with `Retry-After` (or another
/// server hint) pauses the requests to that host, for up to 10 minutes, and a request that would
/// wait more than 30 s for the pause to end fails at once with
/// [`WaitTooLong`](resile_ratelimit::client::WaitTooLong).
pub fn default_limiter() -> ServerPauseLayer {
    ServerPauseLayer::per_host()
}

/// The retry policy of [`http_client()`]: [`RetryPolicy::default()`] (whose classifier is
/// [`Classifier::default()`](resile_classify::Classifier)).
pub fn default_retry_policy() -> RetryPolicy {
    RetryPolicy::default()
}

/// The breaker of [`http_client()`]: one breaker per host ([`ByAuthority`]), each with the
/// defaults of [`CircuitBreakerLayer::new()`], in a table of [`DEFAULT_HOSTS`].
pub fn default_breaker() -> KeyedCircuitBreakerLayer<ByAuthority> {
    CircuitBreakerLayer::builder()
        .build_keyed(ByAuthority, DEFAULT_HOSTS)
        .unwrap_or_else(|e| unreachable!("the default breaker is valid: {e}"))
}

/// An HTTP client stack with the defaults: see the [module documentation](self).
///
/// Every piece is replaceable and removable; the order is fixed.
pub fn http_client() -> ClientStack {
    ClientStack {
        layers: Layers {
            errors: Identity::new(),
            telemetry: Identity::new(),
            retry: RetryLayer::new(default_retry_policy()),
            attempt_telemetry: Identity::new(),
            breaker: default_breaker(),
            limiter: default_limiter(),
            timeout: AttemptTimeoutLayer::new(DEFAULT_ATTEMPT_TIMEOUT),
        },
    }
}

/// The layers of a [`ClientStack`], outermost first.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Layers<R, B, L, T, O = Identity, A = Identity, E = Identity> {
    /// Failed final responses into errors (outermost; [`Identity`] unless
    /// [`error_for_status`](ClientStack::error_for_status) was called).
    pub errors: E,
    /// The telemetry of what callers see (outermost; [`Identity`] unless
    /// [`telemetry`](ClientStack::telemetry) was called).
    pub telemetry: O,
    /// The retry layer.
    pub retry: R,
    /// The telemetry of each attempt (inside the retry layer).
    pub attempt_telemetry: A,
    /// The circuit breaker.
    pub breaker: B,
    /// The rate limiter (by default, the per-host server pause).
    pub limiter: L,
    /// The per-attempt timeout (innermost).
    pub timeout: T,
}

/// A client stack: retry → circuit breaker → limiter → per-attempt timeout → the service, with
/// telemetry around the whole and around each attempt when asked for.
///
/// A `Clone + Debug` [`Layer`]: every service it wraps shares the breakers, the pauses and the
/// retry budget of its pieces (they are `Arc`s inside). Built by [`http_client()`]; the type
/// parameters are the pieces, [`Identity`] for a removed one.
///
/// # Default
///
/// See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct ClientStack<
    R = RetryLayer,
    B = KeyedCircuitBreakerLayer<ByAuthority>,
    L = ServerPauseLayer,
    T = AttemptTimeoutLayer,
    O = Identity,
    A = Identity,
    E = Identity,
> {
    layers: Layers<R, B, L, T, O, A, E>,
}

impl Default for ClientStack {
    fn default() -> Self {
        http_client()
    }
}

impl<R, B, L, T, O, A, E> ClientStack<R, B, L, T, O, A, E> {
    fn from_parts<R2, B2, L2, T2, O2, A2, E2>(
        layers: Layers<R2, B2, L2, T2, O2, A2, E2>,
    ) -> ClientStack<R2, B2, L2, T2, O2, A2, E2> {
        ClientStack { layers }
    }

    /// Retries under `policy` (replaces [`default_retry_policy()`]).
    pub fn retry<P>(self, policy: RetryPolicy<P>) -> ClientStack<RetryLayer<P>, B, L, T, O, A, E> {
        self.retry_layer(RetryLayer::new(policy))
    }

    /// Any layer in the retry position.
    pub fn retry_layer<R2>(self, layer: R2) -> ClientStack<R2, B, L, T, O, A, E> {
        let l = self.layers;
        Self::from_parts(Layers {
            errors: l.errors,
            telemetry: l.telemetry,
            retry: layer,
            attempt_telemetry: l.attempt_telemetry,
            breaker: l.breaker,
            limiter: l.limiter,
            timeout: l.timeout,
        })
    }

    /// No retry layer.
    pub fn no_retry(self) -> ClientStack<Identity, B, L, T, O, A, E> {
        self.retry_layer(Identity::new())
    }

    /// Uses `layer` as the breaker: a [`CircuitBreakerLayer`] for one breaker for the whole
    /// client, a [`KeyedCircuitBreakerLayer`] with other settings, or any layer.
    pub fn circuit_breaker<B2>(self, layer: B2) -> ClientStack<R, B2, L, T, O, A, E> {
        let l = self.layers;
        Self::from_parts(Layers {
            errors: l.errors,
            telemetry: l.telemetry,
            retry: l.retry,
            attempt_telemetry: l.attempt_telemetry,
            breaker: layer,
            limiter: l.limiter,
            timeout: l.timeout,
        })
    }

    /// No circuit breaker.
    pub fn no_circuit_breaker(self) -> ClientStack<R, Identity, L, T, O, A, E> {
        self.circuit_breaker(Identity::new())
    }

    /// Uses `layer` as the limiter: a [`RateLimitLayer`](resile_ratelimit::RateLimitLayer) with
    /// the server's published quota (it obeys the server's pauses too), one on a Redis store
    /// shared by several processes, [`ServerPauseLayer::client_wide()`], or any layer.
    pub fn rate_limit<L2>(self, layer: L2) -> ClientStack<R, B, L2, T, O, A, E> {
        let l = self.layers;
        Self::from_parts(Layers {
            errors: l.errors,
            telemetry: l.telemetry,
            retry: l.retry,
            attempt_telemetry: l.attempt_telemetry,
            breaker: l.breaker,
            limiter: layer,
            timeout: l.timeout,
        })
    }

    /// No limiter (server `429` hints are then honoured per request by the retry layer only).
    pub fn no_rate_limit(self) -> ClientStack<R, B, Identity, T, O, A, E> {
        self.rate_limit(Identity::new())
    }

    /// Bounds each attempt to `timeout` (replaces [`DEFAULT_ATTEMPT_TIMEOUT`]).
    pub fn attempt_timeout(
        self,
        timeout: Duration,
    ) -> ClientStack<R, B, L, AttemptTimeoutLayer, O, A, E> {
        self.attempt_timeout_layer(AttemptTimeoutLayer::new(timeout))
    }

    /// Any layer in the per-attempt timeout position (innermost).
    pub fn attempt_timeout_layer<T2>(self, layer: T2) -> ClientStack<R, B, L, T2, O, A, E> {
        let l = self.layers;
        Self::from_parts(Layers {
            errors: l.errors,
            telemetry: l.telemetry,
            retry: l.retry,
            attempt_telemetry: l.attempt_telemetry,
            breaker: l.breaker,
            limiter: l.limiter,
            timeout: layer,
        })
    }

    /// No per-attempt timeout.
    pub fn no_attempt_timeout(self) -> ClientStack<R, B, L, Identity, O, A, E> {
        self.attempt_timeout_layer(Identity::new())
    }

    /// Records into `telemetry` what callers see (a layer outermost) and what the server
    /// answered (a layer inside the retry layer, one record per attempt), and the breaker's
    /// transitions. See [`resile_telemetry`] for the report and the alerts.
    #[cfg(feature = "telemetry")]
    pub fn telemetry(
        self,
        telemetry: &Telemetry,
    ) -> ClientStack<R, B, L, T, TelemetryLayer, TelemetryLayer, E>
    where
        B: BreakerEvents,
    {
        let l = self.layers;
        l.breaker.report_transitions(telemetry);
        Self::from_parts(Layers {
            errors: l.errors,
            telemetry: telemetry.layer(),
            retry: l.retry,
            attempt_telemetry: telemetry.attempt_layer(),
            breaker: l.breaker,
            limiter: l.limiter,
            timeout: l.timeout,
        })
    }

    /// Turns final `4xx` and `5xx` responses into `Err(ApiError)` (outermost), their bodies
    /// read within bounds and parsed: see [`resile_api_error`]. Off by default. Retries happen
    /// inside it, so a `503` is still retried and the error describes the last attempt.
    #[cfg(feature = "api-error")]
    pub fn error_for_status(self) -> ClientStack<R, B, L, T, O, A, ErrorForStatusLayer> {
        self.error_for_status_layer(ErrorForStatusLayer::new())
    }

    /// Like [`error_for_status`](Self::error_for_status) with a layer of your settings
    /// (statuses, body limit, time bound, shapes).
    #[cfg(feature = "api-error")]
    pub fn error_for_status_layer(
        self,
        layer: ErrorForStatusLayer,
    ) -> ClientStack<R, B, L, T, O, A, ErrorForStatusLayer> {
        let l = self.layers;
        Self::from_parts(Layers {
            errors: layer,
            telemetry: l.telemetry,
            retry: l.retry,
            attempt_telemetry: l.attempt_telemetry,
            breaker: l.breaker,
            limiter: l.limiter,
            timeout: l.timeout,
        })
    }

    /// The layers.
    pub fn layers(&self) -> &Layers<R, B, L, T, O, A, E> {
        &self.layers
    }

    /// The layers, by value.
    pub fn into_layers(self) -> Layers<R, B, L, T, O, A, E> {
        self.layers
    }
}

/// A breaker layer whose state changes [`ClientStack::telemetry`] records as
/// [`Event::BreakerTransition`](resile_telemetry::Event::BreakerTransition).
#[cfg(feature = "telemetry")]
pub trait BreakerEvents {
    /// Subscribes `telemetry` to the breaker's transitions (nothing for a layer that has none).
    fn report_transitions(&self, telemetry: &Telemetry);
}

#[cfg(feature = "telemetry")]
fn transition_event(t: &resile_breaker::Transition) -> resile_telemetry::Event {
    resile_telemetry::Event::BreakerTransition {
        from: t.from.as_str(),
        to: t.to.as_str(),
    }
}

#[cfg(feature = "telemetry")]
impl<K, C> BreakerEvents for KeyedCircuitBreakerLayer<K, C> {
    fn report_transitions(&self, telemetry: &Telemetry) {
        let telemetry = telemetry.clone();
        self.handle()
            .on_transition(move |t| telemetry.record_event(transition_event(t)));
    }
}

#[cfg(feature = "telemetry")]
impl<C> BreakerEvents for CircuitBreakerLayer<C> {
    fn report_transitions(&self, telemetry: &Telemetry) {
        let telemetry = telemetry.clone();
        self.handle()
            .on_transition(move |t| telemetry.record_event(transition_event(t)));
    }
}

#[cfg(feature = "telemetry")]
impl BreakerEvents for Identity {
    fn report_transitions(&self, _: &Telemetry) {}
}

impl<R, K, C, L, T, O, A, E> ClientStack<R, KeyedCircuitBreakerLayer<K, C>, L, T, O, A, E> {
    /// The handle of the stack's per-host breakers: each host's state, the metrics of all, and
    /// their transitions.
    pub fn breaker_handle(&self) -> KeyedHandle {
        self.layers.breaker.handle()
    }
}

impl<R, C, L, T, O, A, E> ClientStack<R, CircuitBreakerLayer<C>, L, T, O, A, E> {
    /// The handle of the stack's client-wide breaker: its state, metrics and transitions.
    pub fn breaker_handle(&self) -> BreakerHandle {
        self.layers.breaker.handle()
    }
}

impl<S, R, B, L, T, O, A, E> Layer<S> for ClientStack<R, B, L, T, O, A, E>
where
    T: Layer<S>,
    L: Layer<T::Service>,
    B: Layer<L::Service>,
    A: Layer<B::Service>,
    R: Layer<A::Service>,
    O: Layer<R::Service>,
    E: Layer<O::Service>,
{
    type Service = E::Service;

    fn layer(&self, inner: S) -> Self::Service {
        let l = &self.layers;
        let inner = l.timeout.layer(inner);
        let inner = l.limiter.layer(inner);
        let inner = l.breaker.layer(inner);
        let inner = l.attempt_telemetry.layer(inner);
        let inner = l.retry.layer(inner);
        let inner = l.telemetry.layer(inner);
        l.errors.layer(inner)
    }
}
