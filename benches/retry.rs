//! The retry layer on a request that succeeds the first time (the path every request takes),
//! beside tower's `Retry` with an equivalent policy and the bare service, in one criterion group.
//!
//! - inner service: always ready, answers `200` with an empty `Full<Bytes>` body at once;
//! - request: a GET with three headers and an empty `Full<Bytes>` body, built outside the timed
//!   section (`iter_batched`), and the response dropped outside it too;
//! - each iteration: `poll_ready`, `call`, and one poll of the response future with a no-op
//!   waker (the future is ready on its first poll for all contenders).
//!
//! Contenders in `retry/success_first_time`:
//!
//! - `bare`: the inner service alone;
//! - `tower_retry`: `tower::retry::Retry` with a policy that clones the request and retries 5xx
//!   responses up to three times (what a tower user writes by hand);
//! - `resile_no_budget`: `resile_retry::Retry` with the default policy minus the budget (the
//!   same work as tower's: keep a copy of the request, classify the response);
//! - `tower_retry_budget`: the same tower policy with tower's own `TpsBudget` (10 s, 10/s, 20 %),
//!   deposited into on every request that is not retried, as tower's documentation does;
//! - `resile_default`: the default policy, which also deposits into its shared retry budget.
//!
//! The fair pairs are `resile_no_budget` / `tower_retry` and `resile_default` /
//! `tower_retry_budget`: both budgets read the monotonic clock on every deposit.

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{Request, Response};
use http_body_util::Full;
use resile_retry::{RetryLayer, RetryPolicy};
use std::sync::Arc;
use std::time::Duration;

use tower::retry::budget::{Budget, TpsBudget};
use tower::retry::{Policy, RetryLayer as TowerRetryLayer};
use tower::{Layer, Service};

type Req = Request<Full<Bytes>>;
type Res = Response<Full<Bytes>>;

/// An always-ready service answering `200 OK`.
#[derive(Clone, Copy)]
struct Ok200;

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

/// tower's side: clone the request, retry 5xx responses, at most three times.
#[derive(Clone, Copy)]
struct Retry5xx {
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
#[derive(Clone)]
struct Retry5xxBudget {
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

fn request() -> Req {
    Request::get("http://api.example.com/v1/items?id=42")
        .header("accept", "application/json")
        .header("user-agent", "resile-bench/0.1")
        .header("x-request-id", "0f8fad5b-d9cb-469f-a165-70867728950e")
        .body(Full::new(Bytes::new()))
        .expect("a valid request")
}

/// `poll_ready`, `call`, one poll: the same steps for every contender.
#[inline]
fn drive<S: Service<Req>>(svc: &mut S, req: Req) -> S::Response
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

fn success_first_time(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry/success_first_time");

    let mut bare = Ok200;
    group.bench_function("bare", |b| {
        b.iter_batched(request, |req| drive(&mut bare, req), BatchSize::SmallInput)
    });

    let mut tower = TowerRetryLayer::new(Retry5xx { remaining: 3 }).layer(Ok200);
    group.bench_function("tower_retry", |b| {
        b.iter_batched(request, |req| drive(&mut tower, req), BatchSize::SmallInput)
    });

    let mut tower_budget = TowerRetryLayer::new(Retry5xxBudget {
        remaining: 3,
        budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
    })
    .layer(Ok200);
    group.bench_function("tower_retry_budget", |b| {
        b.iter_batched(
            request,
            |req| drive(&mut tower_budget, req),
            BatchSize::SmallInput,
        )
    });

    let mut resile = RetryLayer::new(RetryPolicy::builder().no_budget().build()).layer(Ok200);
    group.bench_function("resile_no_budget", |b| {
        b.iter_batched(
            request,
            |req| drive(&mut resile, req),
            BatchSize::SmallInput,
        )
    });

    let mut resile_default = RetryLayer::default().layer(Ok200);
    group.bench_function("resile_default", |b| {
        b.iter_batched(
            request,
            |req| drive(&mut resile_default, req),
            BatchSize::SmallInput,
        )
    });

    group.finish();

    // The layers really are on the path: a 200 passes through both unchanged.
    assert_eq!(drive(&mut tower, request()).status(), 200);
    assert_eq!(drive(&mut resile_default, request()).status(), 200);
}

criterion_group!(benches, success_first_time);
criterion_main!(benches);
