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
//! adds. The `loopback_*` contenders send `<iterations>` requests (in whole batches of 64 at
//! once) to a hyper server on 127.0.0.1 and count the client's thread only: divide by the
//! requests. `docs/benchmarks.md` gives the shell loop.
//!
//! Every iteration does what the criterion benches time, with the request built and the
//! response dropped inside the loop (criterion keeps those out of its timing; here they cancel
//! out against `bare`).

use std::hint::black_box;

use resile_benches::contenders::{self, drive, request, Flaky503, Ok200, Req};
use resile_benches::loopback::{self, send_batch, BATCH};
use tower::{Layer, Service};

/// The measured loop: under `--toggle-collect='callgrind::measured*'` only this (and what it
/// calls) is counted, so set-up (such as a clock's one-time calibration) stays out.
#[inline(never)]
fn measured<F: FnMut()>(n: u64, mut one: F) {
    for _ in 0..n {
        one();
    }
}

/// `n` checks of a direct limiter whose quota always admits, as `ratelimit/direct/admitting`.
fn ratelimit_direct(which: &str, n: u64) {
    let admit = std::num::NonZeroU32::MAX;
    match which {
        "resile" => {
            let l = resile_ratelimit::RateLimiter::new(resile_ratelimit::Quota::per_second(admit));
            let _ = black_box(l.check());
            measured(n, || {
                let _ = black_box(l.check());
            });
        }
        "governor" => {
            let l = governor::RateLimiter::direct(governor::Quota::per_second(admit));
            let _ = black_box(l.check());
            measured(n, || {
                let _ = black_box(l.check());
            });
        }
        _ => unreachable!("checked above"),
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
    "tower_retry_once",
    "resile_zero_wait_once",
    // what keeping a copy of the request costs on its own: `Request::clone`, and resile's
    // packed copy
    "request_clone",
    "tower_retry_timeout",
    // benches/stack.rs
    "full_stack",
    "full_stack_no_timeout",
    "full_stack_attempt_timeout",
    "retry_only",
    "breaker_only",
    "limiter_only",
    "timeout_only",
    "attempt_timeout_only",
    // benches/ratelimit.rs: one `check()` of a direct limiter that admits (the default clocks:
    // the CPU's time-stamp counter for both)
    "ratelimit_direct_resile",
    "ratelimit_direct_governor",
    // benches/stack.rs, over loopback: `<iterations>` requests, in batches of 64 at once
    // (only the client's thread is counted: the server runs on a thread of its own)
    "loopback_bare",
    "loopback_full_stack",
    "loopback_bare_timeout",
    "loopback_full_stack_no_timeout",
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
    if let Some(client) = which.strip_prefix("loopback_") {
        return loopback(client, n);
    }
    if let Some(limiter) = which.strip_prefix("ratelimit_direct_") {
        return ratelimit_direct(limiter, n);
    }

    // The timeouts need a runtime's time driver, as in the stack bench.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let _enter = rt.enter();

    match which.as_str() {
        "bare" => run(Ok200, n),
        "tower_retry" => run(contenders::tower_retry().layer(Ok200), n),
        "tower_retry_budget" => run(contenders::tower_retry_budget().layer(Ok200), n),
        "resile_no_budget" => run(contenders::resile_no_budget().layer(Ok200), n),
        "resile_default" => run(contenders::resile_default().layer(Ok200), n),
        "tower_retry_once" => run(contenders::tower_retry().layer(Flaky503::new()), n),
        "resile_zero_wait_once" => run(contenders::resile_zero_wait().layer(Flaky503::new()), n),
        "request_clone" => measured(n, || {
            let req = request();
            let copy = black_box(&req).clone();
            black_box(drive(&mut Ok200, req));
            black_box(copy);
        }),
        "tower_retry_timeout" => run(
            contenders::tower_retry().layer(
                tower::timeout::TimeoutLayer::new(resile::stack::DEFAULT_ATTEMPT_TIMEOUT)
                    .layer(Ok200),
            ),
            n,
        ),
        "full_stack" => run(contenders::full_stack().layer(Ok200), n),
        "full_stack_no_timeout" => run(contenders::full_stack_no_timeout().layer(Ok200), n),
        "full_stack_attempt_timeout" => {
            run(contenders::full_stack_attempt_timeout().layer(Ok200), n)
        }
        "retry_only" => run(contenders::retry_only().layer(Ok200), n),
        "breaker_only" => run(contenders::breaker_only().layer(Ok200), n),
        "limiter_only" => run(contenders::limiter_only().layer(Ok200), n),
        "timeout_only" => run(contenders::timeout_only().layer(Ok200), n),
        "attempt_timeout_only" => run(contenders::attempt_timeout_only().layer(Ok200), n),
        _ => unreachable!("checked above"),
    }
}

/// `n` requests from `client` over loopback, in concurrent batches of [`BATCH`], on a
/// current-thread runtime in this thread (as `benches/stack.rs` runs them): the measured loop
/// covers the requests and the runtime's own work between them; the clients (and a clock's
/// one-time calibration) are made before it, and one batch warms the pool.
fn loopback(client: &str, n: u64) {
    let (uri, rt) = loopback::server_and_client_runtime();
    let _enter = rt.enter();
    let batches = n.div_ceil(BATCH as u64);
    fn go<S>(rt: &tokio::runtime::Runtime, svc: S, uri: &http::Uri, batches: u64)
    where
        S: Service<Req, Response = http::Response<hyper::body::Incoming>> + Clone + Send + 'static,
        S::Error: std::fmt::Debug + Send,
        S::Future: Send,
    {
        rt.block_on(send_batch(&svc, uri, true));
        measured(batches, || rt.block_on(send_batch(&svc, uri, true)));
    }
    match client {
        "bare" => go(&rt, loopback::bare(), &uri, batches),
        "full_stack" => go(
            &rt,
            resile::stack::http_client().layer(loopback::bare()),
            &uri,
            batches,
        ),
        "bare_timeout" => go(&rt, loopback::bare_timeout(), &uri, batches),
        "full_stack_no_timeout" => go(
            &rt,
            resile::stack::http_client()
                .no_attempt_timeout()
                .layer(loopback::bare()),
            &uri,
            batches,
        ),
        _ => unreachable!("checked above"),
    }
}
