//! The adaptive client layers' admit paths over a bare in-process service: `poll_ready` +
//! `call` + completing the future, on an inner service that is always ready and answers `200`
//! at once. Each request is `GET http://api.example/` (one host), built in every iteration for
//! every service alike.
//!
//! - `adaptive/admit`: `bare`; `fixed`, resile's `RateLimitLayer` with a quota so high that no
//!   request waits (one shared GCRA, the fixed-quota limiter's admit path); `adaptive`, the
//!   per-host `AdaptiveRateLimitLayer` (key extraction, a hash, the table's lock at admission
//!   and again at the answer, which reads the response for a throttle and a published quota);
//!   `adaptive-client-wide`, the same with one state for every request.
//! - `throttling/admit`: `bare`; `throttle`, `AdaptiveThrottleLayer` with the defaults (one
//!   atomic load to admit; a clock read and a compare-and-swap at the answer); `throttle-quanta`,
//!   the same on `QuantaClock`.
//!
//! Futures are polled by hand with a no-op waker, so no executor cost is measured.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use resile_benches::threads::{call_with, Ok200};
use resile_ratelimit::clock::QuantaClock;
use resile_ratelimit::throttling::AdaptiveThrottleLayer;
use resile_ratelimit::{Quota, RateLimitLayer};
use tower::{Layer, Service};

fn req() -> Request<()> {
    Request::get("http://api.example/").body(()).unwrap()
}

fn time<S>(svc: &S, iters: u64) -> Duration
where
    S: Service<Request<()>, Response = Response<()>> + Clone,
{
    let mut svc = svc.clone();
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..16 {
        black_box(call_with(&mut svc, &mut cx, req()));
    }
    let start = Instant::now();
    for _ in 0..iters {
        black_box(call_with(&mut svc, &mut cx, req()));
    }
    start.elapsed()
}

fn admit(c: &mut Criterion) {
    let high = Quota::per_second(NonZeroU32::MAX);
    let fixed = RateLimitLayer::new(high).layer(Ok200);
    let adaptive_layer = RateLimitLayer::adaptive(high).build();
    let adaptive = adaptive_layer.layer(Ok200);
    let wide = RateLimitLayer::adaptive(high).client_wide().layer(Ok200);
    let mut g = c.benchmark_group("adaptive/admit");
    g.bench_function("bare", |b| b.iter_custom(|n| time(&Ok200, n)));
    g.bench_function("fixed", |b| b.iter_custom(|n| time(&fixed, n)));
    g.bench_function("adaptive", |b| b.iter_custom(|n| time(&adaptive, n)));
    g.bench_function("adaptive-client-wide", |b| {
        b.iter_custom(|n| time(&wide, n))
    });
    g.finish();
    // The adaptive layer paced its host: the bench went through its admit path.
    assert_eq!(adaptive_layer.hosts(), 1);

    let throttle_layer = AdaptiveThrottleLayer::new();
    let throttle = throttle_layer.layer(Ok200);
    let quanta = AdaptiveThrottleLayer::builder()
        .clock(QuantaClock::new())
        .build()
        .layer(Ok200);
    let mut g = c.benchmark_group("throttling/admit");
    g.bench_function("bare", |b| b.iter_custom(|n| time(&Ok200, n)));
    g.bench_function("throttle", |b| b.iter_custom(|n| time(&throttle, n)));
    g.bench_function("throttle-quanta", |b| b.iter_custom(|n| time(&quanta, n)));
    g.finish();
    // Every answer was counted: the bench went through the recording path.
    assert!(throttle_layer.counts().0 > 0);
}

criterion_group!(benches, admit);
criterion_main!(benches);
