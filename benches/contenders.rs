//! The in-process contenders of `benches/retry.rs` and `benches/stack.rs`, shared with the
//! callgrind driver (`benches/callgrind.rs`) so that both measure the same services.
//!
//! - [`Ok200`]: the inner service, always ready, answering `200` with an empty `Full<Bytes>`
//!   body at once; [`Flaky503`]: the same, answering `503` and `200` in turn;
//! - [`request()`]: a GET with three headers and an empty `Full<Bytes>` body;
//! - [`drive()`]: `poll_ready`, `call`, one poll of the response future with a no-op waker;
//! - tower's retry policies ([`Retry5xx`], [`Retry5xxBudget`]) and the layers of each retry
//!   contender;
//! - the client stack with one piece or another removed.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use resile::stack::{http_client, ClientStack, DEFAULT_ATTEMPT_TIMEOUT};
use resile_breaker::{ByAuthority, KeyedCircuitBreakerLayer};
use resile_ratelimit::ServerPauseLayer;
use resile_retry::{AttemptTimeoutLayer, Constant, RetryLayer, RetryPolicy};
use tower::layer::util::Identity;
use tower::retry::budget::{Budget, TpsBudget};
use tower::retry::{Policy, RetryLayer as TowerRetryLayer};
use tower::Service;

/// The request type of every in-process contender.
pub type Req = Request<Full<Bytes>>;
/// The response type of [`Ok200`].
pub type Res = Response<Full<Bytes>>;

/// An always-ready service answering `200 OK`.
#[derive(Clone, Copy, Debug)]
pub struct Ok200;

impl Service<Req> for Ok200 {
    type Response = Res;
    type Error = Infallible;
    type Future = Ready<Result<Res, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        black_box(&req);
        ready(Ok(Response::new(Full::new(Bytes::new()))))
    }
}

/// A service that answers `503` and `200` in turn (`503` first), shared by its clones: through
/// a retry layer that retries at once, every request takes exactly one retry.
#[derive(Clone, Debug)]
pub struct Flaky503 {
    fail_next: Rc<Cell<bool>>,
}

impl Flaky503 {
    /// The next call answers `503`.
    pub fn new() -> Self {
        Flaky503 {
            fail_next: Rc::new(Cell::new(true)),
        }
    }
}

impl Default for Flaky503 {
    fn default() -> Self {
        Flaky503::new()
    }
}

impl Service<Req> for Flaky503 {
    type Response = Res;
    type Error = Infallible;
    type Future = Ready<Result<Res, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        black_box(&req);
        let fail = self.fail_next.replace(!self.fail_next.get());
        let mut res = Response::new(Full::new(Bytes::new()));
        if fail {
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        ready(Ok(res))
    }
}

/// tower's side: clone the request, retry 5xx responses, at most three times.
#[derive(Clone, Copy, Debug)]
pub struct Retry5xx {
    remaining: u32,
}

impl<E> Policy<Req, Res, E> for Retry5xx {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        match result {
            Ok(res) if res.status().is_server_error() && self.remaining > 0 => {
                self.remaining -= 1;
                Some(ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// tower's side with tower's budget: deposit per request not retried, withdraw per retry.
#[derive(Clone, Debug)]
pub struct Retry5xxBudget {
    remaining: u32,
    budget: Arc<TpsBudget>,
}

impl<E> Policy<Req, Res, E> for Retry5xxBudget {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        match result {
            Ok(res) if res.status().is_server_error() && self.remaining > 0 => {
                if !self.budget.withdraw() {
                    return None;
                }
                self.remaining -= 1;
                Some(ready(()))
            }
            _ => {
                self.budget.deposit();
                None
            }
        }
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// The request every in-process contender serves.
#[inline]
pub fn request() -> Req {
    Request::get("http://api.example.com/v1/items?id=42")
        .header("accept", "application/json")
        .header("user-agent", "resile-bench/0.1")
        .header("x-request-id", "0f8fad5b-d9cb-469f-a165-70867728950e")
        .body(Full::new(Bytes::new()))
        .expect("a valid request")
}

/// `poll_ready`, `call`, one poll: the same steps for every contender.
///
/// # Panics
///
/// If the service is not ready, fails, or does not answer on the first poll.
#[inline]
pub fn drive<S: Service<Req>>(svc: &mut S, req: Req) -> S::Response
where
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("the bench service is always ready"),
    }
    let fut = pin!(svc.call(req));
    match fut.poll(&mut cx) {
        Poll::Ready(Ok(res)) => res,
        _ => panic!("the bench service answers at once"),
    }
}

/// `tower_retry`: tower's `Retry` with [`Retry5xx`] (what a tower user writes by hand).
pub fn tower_retry() -> TowerRetryLayer<Retry5xx> {
    TowerRetryLayer::new(Retry5xx { remaining: 3 })
}

/// `tower_retry_budget`: tower's `Retry` with [`Retry5xxBudget`] and tower's own `TpsBudget`
/// (10 s, 10/s, 20 %).
pub fn tower_retry_budget() -> TowerRetryLayer<Retry5xxBudget> {
    TowerRetryLayer::new(Retry5xxBudget {
        remaining: 3,
        budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
    })
}

/// `resile_no_budget`: resile's retry layer with the default policy minus the budget.
pub fn resile_no_budget() -> RetryLayer {
    RetryLayer::new(RetryPolicy::builder().no_budget().build())
}

/// `resile_zero_wait`: resile's retry layer retrying at once (a constant zero backoff, at most
/// three retries, no budget): the same retries as [`tower_retry()`], which does not wait either.
pub fn resile_zero_wait() -> RetryLayer<Constant> {
    RetryLayer::new(
        RetryPolicy::builder()
            .backoff(Constant::new(Duration::ZERO).max_retries(3))
            .no_budget()
            .build(),
    )
}

/// `resile_default`: resile's retry layer with the default policy (and its shared budget).
pub fn resile_default() -> RetryLayer {
    RetryLayer::default()
}

/// `full_stack`: the client stack's defaults.
pub fn full_stack() -> ClientStack {
    http_client()
}

/// `full_stack_no_timeout`: the client stack without its per-attempt timeout.
pub fn full_stack_no_timeout(
) -> ClientStack<RetryLayer, KeyedCircuitBreakerLayer<ByAuthority>, ServerPauseLayer, Identity> {
    http_client().no_attempt_timeout()
}

/// `full_stack_attempt_timeout`: the client stack with an explicit [`AttemptTimeoutLayer`] of
/// [`DEFAULT_ATTEMPT_TIMEOUT`] as its per-attempt timeout.
pub fn full_stack_attempt_timeout() -> ClientStack {
    http_client().attempt_timeout_layer(AttemptTimeoutLayer::new(DEFAULT_ATTEMPT_TIMEOUT))
}

/// `retry_only`: the client stack with its retry layer alone.
pub fn retry_only() -> ClientStack<RetryLayer, Identity, Identity, Identity> {
    http_client()
        .no_circuit_breaker()
        .no_rate_limit()
        .no_attempt_timeout()
}

/// `breaker_only`: the client stack with its circuit breaker alone.
pub fn breaker_only(
) -> ClientStack<Identity, KeyedCircuitBreakerLayer<ByAuthority>, Identity, Identity> {
    http_client()
        .no_retry()
        .no_rate_limit()
        .no_attempt_timeout()
}

/// `limiter_only`: the client stack with its rate limiter alone.
pub fn limiter_only() -> ClientStack<Identity, Identity, ServerPauseLayer, Identity> {
    http_client()
        .no_retry()
        .no_circuit_breaker()
        .no_attempt_timeout()
}

/// `timeout_only`: the client stack with its default per-attempt timeout alone.
pub fn timeout_only() -> ClientStack<Identity, Identity, Identity, AttemptTimeoutLayer> {
    http_client()
        .no_retry()
        .no_circuit_breaker()
        .no_rate_limit()
}

/// `attempt_timeout_only`: the client stack with an explicit [`AttemptTimeoutLayer`] of
/// [`DEFAULT_ATTEMPT_TIMEOUT`] alone.
pub fn attempt_timeout_only() -> ClientStack<Identity, Identity, Identity, AttemptTimeoutLayer> {
    http_client()
        .no_retry()
        .no_circuit_breaker()
        .no_rate_limit()
        .attempt_timeout_layer(AttemptTimeoutLayer::new(DEFAULT_ATTEMPT_TIMEOUT))
}

/// Times one contender in `group` under `name`: the request built and the response dropped
/// outside the timed section (`iter_batched`), [`drive()`] inside it.
pub fn bench_driven<S: Service<Req>>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    svc: &mut S,
) where
    S::Error: std::fmt::Debug,
{
    group.bench_function(name, |b| {
        b.iter_batched(request, |req| drive(svc, req), BatchSize::SmallInput)
    });
}
