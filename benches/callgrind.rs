//! A driver for instruction counts under callgrind: the contenders of `benches/retry.rs` and
//! `benches/stack.rs`, each run a given number of times in a plain loop, so that valgrind's
//! instruction counts (stable on a shared, noisy machine where wall-clock time is not) can be
//! compared per request.
//!
//! Usage: `callgrind <contender> <iterations>`; `callgrind list` prints the contenders. Run it
//! under `valgrind --tool=callgrind --toggle-collect='callgrind::measured*'`: only the measured
//! loop is counted (start-up and set-up, such as a clock's one-time calibration, are not), so the
//! total divided by the iterations is the cost of one iteration (building the request,
//! `poll_ready`, `call`, one poll, dropping the response). Subtract `bare` to get what a layer
//! adds. `docs/benchmarks.md` gives the shell loop.
//!
//! Every iteration does what the criterion benches time, with the request built and the
//! response dropped inside the loop (criterion keeps those out of its timing; here they cancel
//! out against `bare`).

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use resile_retry::{AttemptTimeoutLayer, RetryLayer, RetryPolicy};
use tower::retry::budget::{Budget, TpsBudget};
use tower::retry::{Policy, RetryLayer as TowerRetryLayer};
use tower::{Layer, Service};

type Req = Request<Full<Bytes>>;
type Res = Response<Full<Bytes>>;

/// An always-ready service answering `200 OK` (the same as in the criterion benches).
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

/// tower's side with tower's budget.
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

/// The measured loop: under `--toggle-collect='callgrind::measured*'` only this (and what it
/// calls) is counted, so set-up (such as a clock's one-time calibration) stays out.
#[inline(never)]
fn measured<F: FnMut()>(n: u64, mut one: F) {
    for _ in 0..n {
        one();
    }
}

fn run<S: Service<Req>>(mut svc: S, n: u64)
where
    S::Error: std::fmt::Debug,
{
    // One request before the measurement, so lazily initialised state is in place.
    black_box(drive(&mut svc, request()));
    measured(n, || {
        let res = drive(&mut svc, request());
        black_box(res);
    });
}

const CONTENDERS: &[&str] = &[
    // benches/retry.rs
    "bare",
    "tower_retry",
    "tower_retry_budget",
    "resile_no_budget",
    "resile_default",
    // what the request copy costs on its own
    "request_clone",
    // benches/stack.rs
    "full_stack",
    "full_stack_no_timeout",
    "full_stack_attempt_timeout",
    "retry_only",
    "breaker_only",
    "limiter_only",
    "timeout_only",
    "attempt_timeout_only",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "list".to_owned());
    if which == "list" || !CONTENDERS.contains(&which.as_str()) {
        for c in CONTENDERS {
            println!("{c}");
        }
        if which != "list" {
            eprintln!("unknown contender {which:?}");
            std::process::exit(2);
        }
        return;
    }
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);

    // The timeouts need a runtime's time driver, as in the stack bench.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let _enter = rt.enter();
    let pieces = resile::stack::http_client;
    let attempt_timeout = AttemptTimeoutLayer::new(resile::stack::DEFAULT_ATTEMPT_TIMEOUT);

    match which.as_str() {
        "bare" => run(Ok200, n),
        "tower_retry" => run(
            TowerRetryLayer::new(Retry5xx { remaining: 3 }).layer(Ok200),
            n,
        ),
        "tower_retry_budget" => run(
            TowerRetryLayer::new(Retry5xxBudget {
                remaining: 3,
                budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
            })
            .layer(Ok200),
            n,
        ),
        "resile_no_budget" => run(
            RetryLayer::new(RetryPolicy::builder().no_budget().build()).layer(Ok200),
            n,
        ),
        "resile_default" => run(RetryLayer::default().layer(Ok200), n),
        "request_clone" => measured(n, || {
            let req = request();
            let copy = black_box(&req).clone();
            black_box(drive(&mut Ok200, req));
            black_box(copy);
        }),
        "full_stack" => run(pieces().layer(Ok200), n),
        "full_stack_no_timeout" => run(pieces().no_attempt_timeout().layer(Ok200), n),
        "full_stack_attempt_timeout" => run(
            pieces().attempt_timeout_layer(attempt_timeout).layer(Ok200),
            n,
        ),
        "retry_only" => run(
            pieces()
                .no_circuit_breaker()
                .no_rate_limit()
                .no_attempt_timeout()
                .layer(Ok200),
            n,
        ),
        "breaker_only" => run(
            pieces()
                .no_retry()
                .no_rate_limit()
                .no_attempt_timeout()
                .layer(Ok200),
            n,
        ),
        "limiter_only" => run(
            pieces()
                .no_retry()
                .no_circuit_breaker()
                .no_attempt_timeout()
                .layer(Ok200),
            n,
        ),
        "timeout_only" => run(
            pieces()
                .no_retry()
                .no_circuit_breaker()
                .no_rate_limit()
                .layer(Ok200),
            n,
        ),
        "attempt_timeout_only" => run(
            pieces()
                .no_retry()
                .no_circuit_breaker()
                .no_rate_limit()
                .attempt_timeout_layer(attempt_timeout)
                .layer(Ok200),
            n,
        ),
        _ => unreachable!("checked above"),
    }
}
