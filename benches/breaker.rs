//! The closed path of a circuit breaker: `poll_ready` + `call` + completing the future (which
//! records the outcome), on an inner service that is always ready and answers `200` at once.
//!
//! Four services in the same criterion group, at 1 and 2 threads:
//!
//! - `bare`: the inner service alone (the floor: building the request and the response);
//! - `resile`: resile-breaker's `CircuitBreaker`, default classifier, 5 consecutive failures;
//! - `tower-resilience`: tower-resilience's circuit breaker, 5 consecutive failures, a response
//!   classifier on the status (failure if 5xx);
//! - `failsafe`: failsafe's state machine (5 consecutive failures) wrapped as a tower service the
//!   way its own futures adapter works: `is_call_permitted` in `poll_ready`, a clone of the
//!   breaker in the response future, `on_success` / `on_error` on completion by status.
//!
//! At 2 threads each thread drives its own clone of the service (sharing one breaker), both
//! start together, and the figure is wall time divided by the calls of one thread: a breaker
//! that does not contend shows the same figure at 1 and 2 threads.
//!
//! Futures are polled by hand with a no-op waker (a future that is not ready is polled again),
//! so no executor cost is measured.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use failsafe::failure_policy::ConsecutiveFailures;
use failsafe::{backoff, failure_policy, StateMachine};
use http::{Request, Response};
use resile_benches::threads::{run, Ok200};
use resile_breaker::CircuitBreakerLayer;
use tower::{Layer, Service};

/// failsafe as a tower service (see the module docs).
#[derive(Clone)]
struct Failsafe<S> {
    inner: S,
    breaker: StateMachine<ConsecutiveFailures<backoff::Constant>, ()>,
    permitted: bool,
}

#[derive(Debug)]
struct Rejected;

impl<S> Service<Request<()>> for Failsafe<S>
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Future: Unpin,
{
    type Response = Response<()>;
    type Error = Rejected;
    type Future = FailsafeFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Rejected>> {
        self.permitted = self.breaker.is_call_permitted();
        if !self.permitted {
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_ready(cx).map_err(|_| Rejected)
    }

    #[inline]
    fn call(&mut self, req: Request<()>) -> Self::Future {
        if !std::mem::take(&mut self.permitted) {
            return FailsafeFuture {
                fut: None,
                breaker: self.breaker.clone(),
            };
        }
        FailsafeFuture {
            fut: Some(self.inner.call(req)),
            breaker: self.breaker.clone(),
        }
    }
}

struct FailsafeFuture<F> {
    fut: Option<F>,
    breaker: StateMachine<ConsecutiveFailures<backoff::Constant>, ()>,
}

impl<F, E> Future for FailsafeFuture<F>
where
    F: Future<Output = Result<Response<()>, E>> + Unpin,
{
    type Output = Result<Response<()>, Rejected>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(fut) = self.fut.as_mut() else {
            return Poll::Ready(Err(Rejected));
        };
        match Pin::new(fut).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(res)) => {
                if res.status().is_server_error() {
                    self.breaker.on_error();
                } else {
                    self.breaker.on_success();
                }
                Poll::Ready(Ok(res))
            }
            Poll::Ready(Err(_)) => {
                self.breaker.on_error();
                Poll::Ready(Err(Rejected))
            }
        }
    }
}

/// `poll_ready` + `call` + polling the future to completion, by hand.
#[inline]
fn resile() -> impl Service<Request<()>, Response = Response<()>> + Clone + Send {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(5)
        .build()
        .expect("valid configuration");
    layer.layer(Ok200)
}

fn tower_resilience() -> impl Service<Request<()>, Response = Response<()>> + Clone + Send {
    let layer = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .consecutive_failures(5)
        .classify_response(|res: &Response<()>| res.status().is_server_error())
        .build()
        .expect("valid configuration");
    layer.layer(Ok200)
}

fn failsafe() -> Failsafe<Ok200> {
    let policy = failure_policy::consecutive_failures(5, backoff::constant(Duration::from_secs(5)));
    Failsafe {
        inner: Ok200,
        breaker: failsafe::Config::new().failure_policy(policy).build(),
        permitted: false,
    }
}

fn closed_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker/closed_path");
    let bare = Ok200;
    let ours = resile();
    let peer = tower_resilience();
    let fs = failsafe();
    for threads in [1usize, 2] {
        group.bench_function(BenchmarkId::new("bare", threads), |b| {
            b.iter_custom(|iters| run(&bare, threads, iters))
        });
        group.bench_function(BenchmarkId::new("resile", threads), |b| {
            b.iter_custom(|iters| run(&ours, threads, iters))
        });
        group.bench_function(BenchmarkId::new("tower-resilience", threads), |b| {
            b.iter_custom(|iters| run(&peer, threads, iters))
        });
        group.bench_function(BenchmarkId::new("failsafe", threads), |b| {
            b.iter_custom(|iters| run(&fs, threads, iters))
        });
    }
    group.finish();
}

criterion_group!(benches, closed_path);
criterion_main!(benches);
