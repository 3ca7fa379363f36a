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

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::{pin, Pin};
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use failsafe::failure_policy::ConsecutiveFailures;
use failsafe::{backoff, failure_policy, StateMachine};
use http::{Request, Response};
use resile_breaker::CircuitBreakerLayer;
use tower::{Layer, Service};

/// Always ready; answers 200.
#[derive(Clone, Copy, Debug)]
struct Ok200;

impl Service<Request<()>> for Ok200 {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(())))
    }
}

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
fn one_call<S>(svc: &mut S, cx: &mut Context<'_>) -> Response<()>
where
    S: Service<Request<()>, Response = Response<()>>,
{
    loop {
        match svc.poll_ready(cx) {
            Poll::Ready(Ok(())) => break,
            Poll::Ready(Err(_)) => panic!("the breaker rejected a closed-path call"),
            Poll::Pending => std::hint::spin_loop(),
        }
    }
    let mut fut = pin!(svc.call(Request::new(())));
    loop {
        match fut.as_mut().poll(cx) {
            Poll::Ready(Ok(res)) => return res,
            Poll::Ready(Err(_)) => panic!("the breaker rejected a closed-path call"),
            Poll::Pending => std::hint::spin_loop(),
        }
    }
}

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

/// `iters` calls on each of `threads` clones of `svc`, started together; the slowest thread's
/// time.
fn run<S>(svc: &S, threads: usize, iters: u64) -> Duration
where
    S: Service<Request<()>, Response = Response<()>> + Clone + Send,
{
    if threads == 1 {
        let mut svc = svc.clone();
        let mut cx = Context::from_waker(Waker::noop());
        // Warm the clone (its first calls may set up per-clone state).
        for _ in 0..4 {
            black_box(one_call(&mut svc, &mut cx));
        }
        let start = Instant::now();
        for _ in 0..iters {
            black_box(one_call(&mut svc, &mut cx));
        }
        return start.elapsed();
    }
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let mut svc = svc.clone();
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut cx = Context::from_waker(Waker::noop());
                    for _ in 0..4 {
                        black_box(one_call(&mut svc, &mut cx));
                    }
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(one_call(&mut svc, &mut cx));
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
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
