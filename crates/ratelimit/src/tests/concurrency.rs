//! Threads hammering one key under a frozen clock admit exactly the quota.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::Duration;

use super::nz;
use crate::clock::ManualClock;
use crate::{KeyedRateLimiter, KeyedStore, Quota, RateLimiter};

const THREADS: usize = 4;
const TRIES: usize = 5_000;

fn hammer(check: impl Fn() -> bool + Sync) -> u64 {
    let admitted = AtomicU64::new(0);
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                barrier.wait();
                let mut mine = 0;
                for _ in 0..TRIES {
                    if check() {
                        mine += 1;
                    }
                }
                admitted.fetch_add(mine, Ordering::Relaxed);
            });
        }
    });
    admitted.into_inner()
}

#[test]
fn direct_admits_exactly_the_burst() {
    for burst in [1, 7, 3_000, 19_999, 20_000] {
        let l = RateLimiter::with_clock(
            Quota::per_hour(nz(1)).with_burst(nz(burst)).unwrap(),
            ManualClock::new(),
        );
        assert_eq!(hammer(|| l.check().allowed), u64::from(burst));
        assert_eq!(l.peek().remaining, 0);
    }
}

#[test]
fn weighted_checks_never_overshoot() {
    let l = RateLimiter::with_clock(
        Quota::per_hour(nz(1)).with_burst(nz(10_000)).unwrap(),
        ManualClock::new(),
    );
    // Every take is 3 cells: at most floor(10000 / 3) succeed, and exactly that many since
    // nothing else competes.
    let admitted = hammer(|| l.check_n(nz(3)).unwrap().allowed);
    assert_eq!(admitted, 10_000 / 3);
}

#[test]
fn reservations_admit_exactly_burst_plus_wait() {
    // T = 1 ms, burst 100, max wait 2 s: 100 + 2000 slots.
    let l = RateLimiter::with_clock(
        Quota::per_second(nz(1_000)).with_burst(nz(100)).unwrap(),
        ManualClock::new(),
    );
    let admitted = hammer(|| l.reserve(nz(1), Duration::from_secs(2)).unwrap().allowed);
    assert_eq!(admitted, 2_100);
}

#[test]
fn keyed_admits_exactly_the_burst_even_while_inserting() {
    for round in 0..20u32 {
        let l = KeyedRateLimiter::with_store(
            Quota::per_hour(nz(1)).with_burst(nz(2_500)).unwrap(),
            KeyedStore::builder()
                .clock(ManualClock::new())
                .shards(2)
                .build(),
        );
        // All threads start on a key nobody has seen: the insert races too.
        let key = format!("client-{round}");
        assert_eq!(hammer(|| l.check_key(key.as_str()).allowed), 2_500);
        assert_eq!(l.len(), 1);
    }
}

#[test]
fn keyed_many_keys_in_parallel() {
    let l = KeyedRateLimiter::with_store(
        Quota::per_hour(nz(1)).with_burst(nz(5)).unwrap(),
        KeyedStore::builder()
            .clock(ManualClock::new())
            .min_sweep(4)
            .build(),
    );
    // 4 threads x 5000 tries over 500 keys: every key admits exactly 5.
    let counter = AtomicU64::new(0);
    let admitted = hammer(|| {
        let i = counter.fetch_add(1, Ordering::Relaxed) % 500;
        l.check_key(&i).allowed
    });
    assert_eq!(admitted, 500 * 5);
    assert_eq!(l.len(), 500);
}
