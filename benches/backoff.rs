//! resile-backoff's `next_delay` with full jitter, beside backon's exponential backoff with
//! jitter, in the same run and the same criterion groups.
//!
//! Both are configured alike: 100 ms initial, ×2, 20 s cap, jitter on.
//!
//! - `backoff/next_delay_full_jitter`: one call on a long-lived backoff with no retry limit
//!   (after a few calls the curve sits at the cap, the steady state of a long outage).
//! - `backoff/build_and_10_delays`: a fresh backoff per "request" (unseeded, so it draws its
//!   own seed) and its first 10 delays, through the growth phase and into the cap.

use std::hint::black_box;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder as BackonBuilder};
use criterion::{criterion_group, criterion_main, Criterion};
use resile_backoff::{Backoff, Exponential, Jitter};

const INITIAL: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(20);

fn ours() -> resile_backoff::ExponentialBuilder {
    Exponential::builder()
        .initial(INITIAL)
        .multiplier(2.0)
        .max_delay(MAX)
        .jitter(Jitter::Full)
}

fn backon() -> BackonBuilder {
    BackonBuilder::default()
        .with_jitter()
        .with_min_delay(INITIAL)
        .with_factor(2.0)
        .with_max_delay(MAX)
}

fn next_delay(c: &mut Criterion) {
    let mut group = c.benchmark_group("backoff/next_delay_full_jitter");

    let mut resile = ours()
        .no_max_retries()
        .build()
        .expect("valid configuration");
    group.bench_function("resile", |b| b.iter(|| black_box(resile.next_delay())));

    let mut peer = backon().without_max_times().build();
    group.bench_function("backon", |b| b.iter(|| black_box(peer.next())));

    group.finish();
}

fn build_and_sequence(c: &mut Criterion) {
    let mut group = c.benchmark_group("backoff/build_and_10_delays");

    let resile = ours().max_retries(10);
    group.bench_function("resile", |b| {
        b.iter(|| {
            let mut backoff = black_box(&resile).build().expect("valid configuration");
            let mut sum = Duration::ZERO;
            while let Some(d) = backoff.next_delay() {
                sum += d;
            }
            black_box(sum)
        })
    });

    let peer = backon().with_max_times(10);
    group.bench_function("backon", |b| {
        b.iter(|| {
            let backoff = black_box(&peer).build();
            let mut sum = Duration::ZERO;
            for d in backoff {
                sum += d;
            }
            black_box(sum)
        })
    });

    group.finish();
}

criterion_group!(benches, next_delay, build_and_sequence);
criterion_main!(benches);
