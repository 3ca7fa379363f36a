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
//!
//! `retry/retried_once`: the price of the retry path. The inner service answers `503` and `200`
//! in turn, so every request is sent twice; both layers retry at once (no timer), so one poll
//! still completes the request. Contenders: `tower_retry` (as above: its retry clones the kept
//! request again) and `resile_zero_wait` (a constant zero backoff, three retries, no budget: the
//! retry is built from the packed copy, classified, and sent).

use criterion::{criterion_group, criterion_main, Criterion};
use resile_benches::contenders::{self, bench_driven, drive, request, Flaky503, Ok200};
use tower::Layer;

fn success_first_time(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry/success_first_time");

    bench_driven(&mut group, "bare", &mut Ok200);

    let mut tower = contenders::tower_retry().layer(Ok200);
    bench_driven(&mut group, "tower_retry", &mut tower);

    let mut tower_budget = contenders::tower_retry_budget().layer(Ok200);
    bench_driven(&mut group, "tower_retry_budget", &mut tower_budget);

    let mut resile = contenders::resile_no_budget().layer(Ok200);
    bench_driven(&mut group, "resile_no_budget", &mut resile);

    let mut resile_default = contenders::resile_default().layer(Ok200);
    bench_driven(&mut group, "resile_default", &mut resile_default);

    group.finish();

    // The layers really are on the path: a 200 passes through both unchanged.
    assert_eq!(drive(&mut tower, request()).status(), 200);
    assert_eq!(drive(&mut resile_default, request()).status(), 200);
}

fn retried_once(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry/retried_once");

    let mut tower = contenders::tower_retry().layer(Flaky503::new());
    bench_driven(&mut group, "tower_retry", &mut tower);

    let mut resile = contenders::resile_zero_wait().layer(Flaky503::new());
    bench_driven(&mut group, "resile_zero_wait", &mut resile);

    group.finish();

    // Both really retried: each answers 200 after the 503 the service gave first.
    assert_eq!(drive(&mut tower, request()).status(), 200);
    assert_eq!(drive(&mut resile, request()).status(), 200);
}

criterion_group!(benches, success_first_time, retried_once);
criterion_main!(benches);
