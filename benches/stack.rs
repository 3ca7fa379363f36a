//! The full client stack (`resile::stack::http_client()`: retry > circuit breaker > rate
//! limiter > per-attempt timeout) beside the bare service, in process and over loopback (three
//! criterion groups), and the per-attempt timer beside tower's `Timeout` in a fourth
//! (`stack/pending_attempt`, see `pending_attempt` below).
//!
//! `stack/in_process`: what the stack adds to one request that succeeds at once.
//!
//! - inner service: always ready, answers `200` with an empty `Full<Bytes>` body at once;
//! - request: a GET with three headers and an empty body, built outside the timed section
//!   (`iter_batched`), the response dropped outside it too;
//! - each iteration: `poll_ready`, `call`, one poll of the response future with a no-op waker;
//! - contenders: `bare`, `full_stack` (the defaults: retry with its budget, the breaker, the
//!   per-host breaker, the per-host server pause, the 10 s `AttemptTimeoutLayer`, which arms
//!   tokio's timer only for an attempt not ready on its first poll), `full_stack_no_timeout` to show what the timeout costs, and
//!   `full_stack_attempt_timeout`: the same stack with the `AttemptTimeoutLayer` set explicitly;
//! - references: `tower_retry_timeout` (tower's `Retry`, with the usual policy that clones the
//!   request, over tower's `Timeout` of 10 s: the stack's target is to add less than these two),
//!   `request_clone` (the bare service plus one `Request::clone`, made and dropped: the copy
//!   both retry layers keep) and each piece alone.
//!
//! `stack/hyper_loopback`: throughput over real sockets. A hyper server on 127.0.0.1 answers
//! `200 ok` (on a thread and tokio runtime of its own); a hyper-util client with a keep-alive
//! pool (on a current-thread runtime in the bench's thread) sends requests and reads each whole
//! response. Each iteration sends 64 requests, one after the other (`sequential`) or 64 at once
//! (`concurrent`); criterion reports requests per second (throughput in elements). Contenders:
//! `bare`, `full_stack` (the defaults), and two references: `bare_timeout` (the bare client with
//! the stack's per-attempt timeout alone: the tokio timer any client with a timeout registers per
//! request) and `full_stack_no_timeout`.
//!
//! `stack/hyper_loopback_paired`: the same clients, 64 requests at once, each measured against
//! the bare client on batches of the two sent in alternation; the value is the contender's
//! throughput as a percentage of the bare client's (`ShareOfBare`), free of the machine's drift
//! between two benchmarks run one after the other. Contenders: `bare` (a second bare client: the
//! method's own error), `full_stack`, `full_stack_no_timeout`, `bare_timeout`, and each of retry,
//! breaker and limiter alone.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use resile::stack::DEFAULT_ATTEMPT_TIMEOUT;
use resile_benches::contenders::{self, bench_driven, drive, request, Ok200};
use resile_benches::loopback::{self, paired_batches, send_batch, ShareOfBare, BATCH};
use resile_retry::AttemptTimeoutLayer;
use std::future::Future;
use tower::Layer;

fn in_process(c: &mut Criterion) {
    // The timeout layer arms a tokio timer per call: it needs a runtime's time driver.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let _enter = rt.enter();

    let mut group = c.benchmark_group("stack/in_process");

    let mut bare = Ok200;
    bench_driven(&mut group, "bare", &mut bare);

    let stack = contenders::full_stack();
    let breaker = stack.breaker_handle();
    let mut full = stack.layer(Ok200);
    bench_driven(&mut group, "full_stack", &mut full);

    let mut no_timeout = contenders::full_stack_no_timeout().layer(Ok200);
    bench_driven(&mut group, "full_stack_no_timeout", &mut no_timeout);

    let mut lazy_timeout = contenders::full_stack_attempt_timeout().layer(Ok200);
    bench_driven(&mut group, "full_stack_attempt_timeout", &mut lazy_timeout);

    // tower's `Retry` and `Timeout` together: the stack's target is to add less than these.
    let mut tower_pair = contenders::tower_retry()
        .layer(tower::timeout::TimeoutLayer::new(DEFAULT_ATTEMPT_TIMEOUT).layer(Ok200));
    bench_driven(&mut group, "tower_retry_timeout", &mut tower_pair);

    // The request copy alone: what keeping a request for a retry costs, whatever the layer
    // (`Request::clone`, made and dropped inside the timed section, as a retry layer does).
    group.bench_function("request_clone", |b| {
        b.iter_batched(
            request,
            |req| {
                let copy = black_box(&req).clone();
                let res = drive(&mut bare, req);
                drop(black_box(copy));
                res
            },
            BatchSize::SmallInput,
        )
    });
    // Each piece alone, to see where the time goes.
    let mut retry = contenders::retry_only().layer(Ok200);
    bench_driven(&mut group, "retry_only", &mut retry);
    let mut breaker_only = contenders::breaker_only().layer(Ok200);
    bench_driven(&mut group, "breaker_only", &mut breaker_only);
    let mut limiter_only = contenders::limiter_only().layer(Ok200);
    bench_driven(&mut group, "limiter_only", &mut limiter_only);
    let mut timeout_only = contenders::timeout_only().layer(Ok200);
    bench_driven(&mut group, "timeout_only", &mut timeout_only);
    let mut attempt_timeout_only = contenders::attempt_timeout_only().layer(Ok200);
    bench_driven(
        &mut group,
        "attempt_timeout_only",
        &mut attempt_timeout_only,
    );
    group.finish();

    // Every layer was on the path: the breaker counted the calls as successes.
    assert_eq!(drive(&mut full, request()).status(), 200);
    let m = breaker.metrics();
    assert!(m.successes > 0 && m.successes == m.calls, "{m:?}");
}

fn hyper_loopback(c: &mut Criterion) {
    // The server on a thread and runtime of its own, the clients on this thread's runtime: one
    // core each on a 2-core machine. (With both in one multi-thread runtime, the machine ran a
    // whole run at one of two throughputs ~35 % apart, at random.)
    let (uri, rt) = loopback::server_and_client_runtime();

    let stack = resile::stack::http_client();
    let breaker = stack.breaker_handle();
    let (bare, full, bare_timeout, no_timeout) = {
        let _enter = rt.enter();
        (
            loopback::bare(),
            stack.layer(loopback::bare()),
            loopback::bare_timeout(),
            // The same stack without its per-attempt timeout: what the timer costs over sockets.
            resile::stack::http_client()
                .no_attempt_timeout()
                .layer(loopback::bare()),
        )
    };
    // Warm the pools.
    rt.block_on(send_batch(&bare, &uri, true));
    rt.block_on(send_batch(&full, &uri, true));
    rt.block_on(send_batch(&no_timeout, &uri, true));
    rt.block_on(send_batch(&bare_timeout, &uri, true));

    let mut group = c.benchmark_group("stack/hyper_loopback");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (mode, concurrent) in [("sequential", false), ("concurrent", true)] {
        group.bench_function(format!("bare_{mode}"), |b| {
            b.iter(|| rt.block_on(send_batch(&bare, &uri, concurrent)))
        });
        group.bench_function(format!("full_stack_{mode}"), |b| {
            b.iter(|| rt.block_on(send_batch(&full, &uri, concurrent)))
        });
        group.bench_function(format!("bare_timeout_{mode}"), |b| {
            b.iter(|| rt.block_on(send_batch(&bare_timeout, &uri, concurrent)))
        });
        group.bench_function(format!("full_stack_no_timeout_{mode}"), |b| {
            b.iter(|| rt.block_on(send_batch(&no_timeout, &uri, concurrent)))
        });
    }
    group.finish();

    let m = breaker.metrics();
    assert!(m.successes > 0 && m.failures == 0, "{m:?}");
}

/// The timer of an attempt that is not answered on its first poll: `call` over an inner service
/// that never answers, one poll (which starts the timer), and the drop (which cancels it), inside
/// a tokio task on a current-thread runtime (its waker is the task's). `tower_timeout`: tower's
/// `Timeout` (a tokio timer per call); `attempt_timeout`: resile's `AttemptTimeout` (a tokio
/// timer armed at this first poll); `bare`: the inner service alone.
fn pending_attempt(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let never = || {
        tower::service_fn(|_: ()| std::future::pending::<Result<(), std::convert::Infallible>>())
    };
    let mut group = c.benchmark_group("stack/pending_attempt");
    /// Calls `svc` `iters` times, polls each response future once and drops it.
    async fn call_poll_drop<S: tower::Service<()>>(svc: &mut S, iters: u64) -> std::time::Duration {
        let start = std::time::Instant::now();
        for _ in 0..iters {
            let mut fut = std::pin::pin!(svc.call(()));
            std::future::poll_fn(|cx| {
                black_box(fut.as_mut().poll(cx).is_ready());
                std::task::Poll::Ready(())
            })
            .await;
        }
        start.elapsed()
    }
    group.bench_function("bare", |b| {
        let mut svc = never();
        b.iter_custom(|iters| rt.block_on(call_poll_drop(&mut svc, iters)))
    });
    group.bench_function("tower_timeout", |b| {
        let mut svc = tower::timeout::TimeoutLayer::new(DEFAULT_ATTEMPT_TIMEOUT).layer(never());
        b.iter_custom(|iters| rt.block_on(call_poll_drop(&mut svc, iters)))
    });
    group.bench_function("attempt_timeout", |b| {
        let mut svc = AttemptTimeoutLayer::new(DEFAULT_ATTEMPT_TIMEOUT).layer(never());
        b.iter_custom(|iters| rt.block_on(call_poll_drop(&mut svc, iters)))
    });
    group.finish();
}

/// `stack/hyper_loopback_paired`: the loopback clients of `stack/hyper_loopback`, 64 requests at
/// once, each measured against the bare client on batches sent in alternation, in
/// [`ShareOfBare`] (its throughput as a percentage of the bare client's: the quantity of the
/// stack's loopback target, without the drift between two benchmarks run one after the other).
/// `bare` is a second bare client against the first: the method's own error.
fn hyper_loopback_paired(c: &mut Criterion<ShareOfBare>) {
    let (uri, rt) = loopback::server_and_client_runtime();

    let stack = resile::stack::http_client();
    let breaker = stack.breaker_handle();
    let _enter = rt.enter();
    let bare = loopback::bare();
    let other_bare = loopback::bare();
    let full = stack.layer(loopback::bare());
    let bare_timeout = loopback::bare_timeout();
    let no_timeout = resile::stack::http_client()
        .no_attempt_timeout()
        .layer(loopback::bare());
    // Each piece alone: what one layer costs over sockets.
    let alone = resile::stack::http_client()
        .no_retry()
        .no_circuit_breaker()
        .no_rate_limit()
        .no_attempt_timeout();
    let retry_only = alone
        .clone()
        .retry(resile::stack::default_retry_policy())
        .layer(loopback::bare());
    let breaker_only = alone
        .clone()
        .circuit_breaker(resile::stack::default_breaker())
        .layer(loopback::bare());
    let limiter_only = alone
        .rate_limit(resile::stack::default_limiter())
        .layer(loopback::bare());

    let mut group = c.benchmark_group("stack/hyper_loopback_paired");
    let uri = &uri;
    let mut paired = |name: &str, contender: &dyn Fn(u64) -> f64| {
        group.bench_function(name, |b| b.iter_custom(contender));
    };
    paired("bare", &|n| paired_batches(&rt, &bare, &other_bare, uri, n));
    paired("full_stack", &|n| paired_batches(&rt, &bare, &full, uri, n));
    paired("bare_timeout", &|n| {
        paired_batches(&rt, &bare, &bare_timeout, uri, n)
    });
    paired("full_stack_no_timeout", &|n| {
        paired_batches(&rt, &bare, &no_timeout, uri, n)
    });
    paired("retry_only", &|n| {
        paired_batches(&rt, &bare, &retry_only, uri, n)
    });
    paired("breaker_only", &|n| {
        paired_batches(&rt, &bare, &breaker_only, uri, n)
    });
    paired("limiter_only", &|n| {
        paired_batches(&rt, &bare, &limiter_only, uri, n)
    });
    group.finish();

    let m = breaker.metrics();
    assert!(m.successes > 0 && m.failures == 0, "{m:?}");
}

criterion_group!(benches, in_process, pending_attempt, hyper_loopback);
criterion_group! {
    name = paired;
    config = Criterion::default().with_measurement(ShareOfBare);
    targets = hyper_loopback_paired
}
criterion_main!(benches, paired);
