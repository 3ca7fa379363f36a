//! resile-ratelimit beside governor: direct and keyed checks, 1 and 2 threads, same run.
//!
//! `cargo bench -p resile-benches --bench ratelimit`
//!
//! Both limiters read the same kind of clock (the CPU's time-stamp counter through quanta: our
//! `QuantaClock` default, governor's default `QuantaClock`); the direct group also runs both on
//! `std::time::Instant`. Each benchmark keeps the whole result of a check (our `Decision`,
//! governor's `Result<(), NotUntil>`). `ratelimit/clock` measures the clocks themselves: the
//! numbers behind the choice of the default clock.
//!
//! 2-thread figures are the wall time per check of each thread while both hammer the same
//! limiter (direct: one key; keyed: 1024 keys, the threads half a cycle apart).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use governor::clock::Clock as _;

const KEYS: usize = 1024;

fn keys() -> Vec<IpAddr> {
    (0..KEYS as u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i * 7919)))
        .collect()
}

/// Runs `op(thread, i)` `iters` times on each of `threads` threads at once; returns the wall time
/// (so the figure per iteration is the time each thread spends per operation while the others
/// run too).
fn parallel<F>(threads: usize, iters: u64, op: F) -> Duration
where
    F: Fn(usize, u64) + Send + Sync + 'static,
{
    let op = Arc::new(op);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let op = Arc::clone(&op);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..iters {
                    op(t, i);
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().expect("bench thread");
    }
    start.elapsed()
}

/// Benchmarks `op(thread, i)` under `name` on two threads at once (see [`parallel`]).
fn bench_two_threads<F>(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, op: F)
where
    F: Fn(usize, u64) + Clone + Send + Sync + 'static,
{
    g.bench_function(name, |b| {
        b.iter_custom(|iters| parallel(2, iters, op.clone()))
    });
}

fn clocks(c: &mut Criterion) {
    let mut g = c.benchmark_group("ratelimit/clock");
    g.bench_function("std Instant::now", |b| b.iter(|| black_box(Instant::now())));
    let ours = resile_ratelimit::clock::MonotonicClock::new();
    g.bench_function("resile MonotonicClock", |b| {
        b.iter(|| black_box(resile_ratelimit::clock::Clock::now(&ours)))
    });
    let quanta_ours = resile_ratelimit::clock::QuantaClock::new();
    g.bench_function("resile QuantaClock (default)", |b| {
        b.iter(|| black_box(resile_ratelimit::clock::Clock::now(&quanta_ours)))
    });
    let tokio_clock = resile_ratelimit::clock::TokioClock::new();
    g.bench_function("resile TokioClock (no runtime)", |b| {
        b.iter(|| black_box(resile_ratelimit::clock::Clock::now(&tokio_clock)))
    });
    let quanta = governor::clock::QuantaClock::default();
    g.bench_function("governor QuantaClock (rdtsc)", |b| {
        b.iter(|| black_box(quanta.now()))
    });
    let cached = AtomicU64::new(1);
    g.bench_function("cached AtomicU64 load (coarse clock read)", |b| {
        b.iter(|| black_box(cached.load(Ordering::Relaxed)))
    });
    g.finish();
}

fn direct(c: &mut Criterion) {
    let (admit, refuse) = (NonZeroU32::MAX, NonZeroU32::MIN);
    let cases = [
        (
            "admitting",
            resile_ratelimit::Quota::per_second(admit),
            governor::Quota::per_second(admit),
        ),
        (
            "refusing",
            resile_ratelimit::Quota::per_hour(refuse),
            governor::Quota::per_hour(refuse),
        ),
    ];
    for (name, ours_quota, gov_quota) in cases {
        let mut g = c.benchmark_group(format!("ratelimit/direct/{name}"));
        let make_ours = || Arc::new(resile_ratelimit::RateLimiter::new(ours_quota));
        let make_gov = || Arc::new(governor::RateLimiter::direct(gov_quota));
        let make_gov_std = || {
            Arc::new(governor::RateLimiter::direct_with_clock(
                gov_quota,
                governor::clock::MonotonicClock,
            ))
        };

        let l = make_ours();
        g.bench_function("resile 1 thread", |b| b.iter(|| l.check()));
        let l = make_gov();
        g.bench_function("governor 1 thread", |b| b.iter(|| l.check()));
        let l = resile_ratelimit::RateLimiter::with_clock(
            ours_quota,
            resile_ratelimit::clock::MonotonicClock::new(),
        );
        g.bench_function("resile (std Instant clock) 1 thread", |b| {
            b.iter(|| l.check())
        });
        let l = make_gov_std();
        g.bench_function("governor (std Instant clock) 1 thread", |b| {
            b.iter(|| l.check())
        });

        let l = make_ours();
        bench_two_threads(&mut g, "resile 2 threads", move |_, _| {
            let _ = black_box(l.check());
        });
        let l = make_gov();
        bench_two_threads(&mut g, "governor 2 threads", move |_, _| {
            let _ = black_box(l.check());
        });
        g.finish();
    }
}

fn keyed(c: &mut Criterion) {
    // hot: one cell per 100 µs per key with an unbounded burst; every key is checked every few
    // µs, so every check is admitted (a CAS) and no key ever goes idle.
    // idle: 1,000,000 per second per key; a key refills between two visits, so it is idle (its
    // bucket full) most of the time: resile drops and re-creates such keys, governor keeps them.
    let interval = Duration::from_micros(100);
    let burst = NonZeroU32::MAX;
    let rate = NonZeroU32::new(1_000_000).expect("nonzero");
    keyed_workload(
        c,
        "hot",
        resile_ratelimit::Quota::with_interval(interval)
            .and_then(|q| q.with_burst(burst))
            .expect("valid quota"),
        governor::Quota::with_period(interval)
            .expect("valid quota")
            .allow_burst(burst),
    );
    keyed_workload(
        c,
        "idle",
        resile_ratelimit::Quota::per_second(rate),
        governor::Quota::per_second(rate),
    );
}

fn keyed_workload(
    c: &mut Criterion,
    name: &str,
    ours_quota: resile_ratelimit::Quota,
    gov_quota: governor::Quota,
) {
    let mut g = c.benchmark_group(format!("ratelimit/keyed/{name}"));
    let keys = Arc::new(keys());
    let ours = Arc::new(resile_ratelimit::KeyedRateLimiter::<IpAddr>::new(
        ours_quota,
    ));
    let gov = Arc::new(governor::RateLimiter::<IpAddr, _, _>::dashmap(gov_quota));
    for k in keys.iter() {
        let _ = ours.check_key(k);
        let _ = gov.check_key(k);
    }

    {
        let (l, keys) = (Arc::clone(&ours), Arc::clone(&keys));
        let mut i = 0usize;
        g.bench_function("resile 1 thread", move |b| {
            b.iter(|| {
                i = (i + 1) % KEYS;
                l.check_key(&keys[i])
            })
        });
    }
    {
        let (l, keys) = (Arc::clone(&gov), Arc::clone(&keys));
        let mut i = 0usize;
        g.bench_function("governor dashmap 1 thread", move |b| {
            b.iter(|| {
                i = (i + 1) % KEYS;
                l.check_key(&keys[i])
            })
        });
    }
    {
        let (l, keys) = (Arc::clone(&ours), Arc::clone(&keys));
        bench_two_threads(&mut g, "resile 2 threads", move |t, i| {
            let k = &keys[(i as usize + t * KEYS / 2) % KEYS];
            let _ = black_box(l.check_key(k));
        });
    }
    {
        let (l, keys) = (Arc::clone(&gov), Arc::clone(&keys));
        bench_two_threads(&mut g, "governor dashmap 2 threads", move |t, i| {
            let k = &keys[(i as usize + t * KEYS / 2) % KEYS];
            let _ = black_box(l.check_key(k));
        });
    }
    g.finish();
}

criterion_group!(benches, clocks, direct, keyed);
criterion_main!(benches);
