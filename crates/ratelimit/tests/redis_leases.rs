//! The Redis store's leased mode against a real `redis-server`: the fleet-wide bound with three
//! instances, equality with the per-decision store for leases of one cell, unused cells given
//! back, one script call per lease, and Redis restarted mid-lease.
#![cfg(feature = "redis")]

mod redis_harness;

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_harness::{admin, bounded, command_calls, nz, reset_stats, RedisServer, Rng};
use resile_ratelimit::redis::{Leases, OnFailure, RedisStore, RedisStoreBuilder};
use resile_ratelimit::{Quota, Store};

const TEST_DEADLINE: Duration = Duration::from_secs(20);

fn builder(prefix: &str) -> RedisStoreBuilder {
    RedisStore::builder()
        .prefix(prefix)
        .timeout(Duration::from_secs(2))
        .on_failure(OnFailure::Error)
}

/// A store with leases of 16 cells.
async fn leased_16(server: &RedisServer, prefix: &str) -> RedisStore {
    builder(prefix)
        .leases(Leases::fixed(nz(16)))
        .connect(server.url())
        .await
        .unwrap()
}

/// Whether one decision on key `k` is allowed.
async fn allowed(store: &RedisStore, quota: &Quota) -> bool {
    store
        .decide("k", quota, NonZeroU32::MIN)
        .await
        .unwrap()
        .allowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_admit_within_the_stated_bound() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        const MAX_LEASE: u32 = 16;
        const INSTANCES: usize = 3;
        let leases = Leases::default()
            .cells(NonZeroU32::MIN, nz(MAX_LEASE))
            .interval(Duration::from_millis(50));
        let mut stores = Vec::new();
        for _ in 0..INSTANCES {
            // Separate connections: three "machines".
            stores.push(
                builder("t:lease:")
                    .leases(leases)
                    .connect(server.url())
                    .await
                    .unwrap(),
            );
        }
        // 3,000 per second, burst 100; the 12 callers ask for more than that.
        let quota = Quota::per_second(nz(3000)).with_burst(nz(100)).unwrap();
        let start = Instant::now();
        let run = Duration::from_secs(3);
        let mut tasks = Vec::new();
        for (i, store) in stores.iter().enumerate() {
            for _ in 0..4 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    let mut admitted = Vec::new();
                    while start.elapsed() < run {
                        let d = store.decide("hot", &quota, NonZeroU32::MIN).await.unwrap();
                        if d.allowed {
                            admitted.push(start.elapsed());
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    (i, admitted)
                }));
            }
        }
        let mut times = Vec::new();
        for t in tasks {
            times.extend(t.await.unwrap().1);
        }
        times.sort();
        let elapsed = start.elapsed().as_secs_f64();
        let bound = |t: f64| 100.0 + 3000.0 * t + (INSTANCES as u32 * MAX_LEASE) as f64;
        // Every window of these lengths (client timestamps: a slack of 20 ms for the round trip).
        for w in [0.1, 0.25, 0.5, 1.0, 2.0] {
            let mut lo = 0;
            let mut worst = 0;
            for hi in 0..times.len() {
                while times[hi] - times[lo] > Duration::from_secs_f64(w) {
                    lo += 1;
                }
                worst = worst.max(hi - lo + 1);
            }
            assert!(
                worst as f64 <= bound(w + 0.02),
                "{worst} admitted within {w} s; bound {}",
                bound(w + 0.02)
            );
        }
        let total = times.len() as f64;
        assert!(
            total <= bound(elapsed),
            "{total} admitted in {elapsed:.2} s"
        );
        // And the fleet used most of its quota.
        assert!(
            total >= 0.8 * 3000.0 * elapsed,
            "{total} admitted in {elapsed:.2} s"
        );
        let local: u64 = stores.iter().map(|s| s.metrics().local_decisions).sum();
        let remote: u64 = stores.iter().map(|s| s.metrics().decisions).sum();
        println!("admitted {total} in {elapsed:.2} s; local decisions {local}, Redis {remote}");
        assert!(local > 0, "no decision came from a lease");
    })
    .await;
}

#[tokio::test]
async fn leases_of_one_cell_decide_as_the_per_decision_store() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let exact = builder("t:exact:").connect(server.url()).await.unwrap();
        let leased = builder("t:one:")
            .leases(Leases::fixed(NonZeroU32::MIN))
            .connect(server.url())
            .await
            .unwrap();
        // 300 per hour (T = 12 s), burst 8: nothing refills during the test.
        let quota = Quota::per_hour(nz(300)).with_burst(nz(8)).unwrap();
        let mut rng = Rng::new(7);
        for step in 0..40 {
            let cost = nz(1 + rng.below(3) as u32);
            let max_wait = Duration::from_secs(rng.below(3) * 20);
            let a = exact.reserve("k", &quota, cost, max_wait).await.unwrap();
            let b = leased.reserve("k", &quota, cost, max_wait).await.unwrap();
            assert_eq!(
                (a.allowed, a.remaining, a.limit),
                (b.allowed, b.remaining, b.limit),
                "step {step}"
            );
            let near = |x: Duration, y: Duration| x.abs_diff(y) < Duration::from_millis(200);
            assert!(
                near(a.retry_after, b.retry_after),
                "step {step}: {a:?} {b:?}"
            );
            assert!(
                near(a.reset_after, b.reset_after),
                "step {step}: {a:?} {b:?}"
            );
        }
        assert_eq!(leased.metrics().local_decisions, 0);
    })
    .await;
}

/// The key's TAT as Redis holds it (ns since the epoch), 0 when absent.
async fn tat(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> u128 {
    let raw: Option<String> = conn.get(key).await.unwrap();
    raw.map_or(0, |s| s.parse().unwrap())
}

#[tokio::test]
async fn unused_cells_come_back_on_return_and_on_drop() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let quota = Quota::per_hour(nz(100)).with_burst(nz(20)).unwrap();
        let other = builder("t:ret:").connect(server.url()).await.unwrap();
        let mut conn = admin(&server).await;

        // Returned explicitly: a lease of 16, one used, 15 back.
        let a = leased_16(&server, "t:ret:").await;
        let d = a.decide("k", &quota, NonZeroU32::MIN).await.unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 19));
        let d = other.decide("k", &quota, NonZeroU32::MIN).await.unwrap();
        assert_eq!(
            (d.allowed, d.remaining),
            (true, 3),
            "the lease holds 15 cells"
        );
        a.return_leases().await.unwrap();
        let d = other.decide("k", &quota, NonZeroU32::MIN).await.unwrap();
        assert_eq!(
            (d.allowed, d.remaining),
            (true, 17),
            "the 15 cells are back"
        );

        // Dropped: the cells come back without waiting for anything.
        let b = leased_16(&server, "t:ret:").await;
        assert!(
            b.decide("k", &quota, NonZeroU32::MIN)
                .await
                .unwrap()
                .allowed
        );
        assert_eq!(b.leased_keys(), 1);
        let held = tat(&mut conn, "t:ret:k").await;
        drop(b);
        let start = Instant::now();
        while tat(&mut conn, "t:ret:k").await == held {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "cells not given back on drop"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // 20 - 3 used so far by `other` and `a` - 1 used by `b` - this one.
        let d = other.decide("k", &quota, NonZeroU32::MIN).await.unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 15));
    })
    .await;
}

#[tokio::test]
async fn one_script_call_per_lease() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let store = leased_16(&server, "t:calls:").await;
        let mut conn = admin(&server).await;
        reset_stats(&mut conn).await;
        let quota = Quota::per_second(NonZeroU32::MAX);
        for _ in 0..1600 {
            assert!(allowed(&store, &quota).await);
        }
        let calls = command_calls(&mut conn).await;
        let evalsha = calls.iter().find(|c| c.0 == "evalsha").map_or(0, |c| c.1);
        assert_eq!(evalsha, 100, "{calls:?}");
        let m = store.metrics();
        assert_eq!((m.decisions, m.local_decisions), (100, 1500), "{m:?}");
    })
    .await;
}

#[tokio::test]
async fn a_pause_forfeits_the_lease() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let store = leased_16(&server, "t:pause:").await;
        let quota = Quota::per_second(nz(10)).with_burst(nz(20)).unwrap();
        assert!(allowed(&store, &quota).await);
        store.pause("k", &quota, Duration::from_secs(5));
        // The pause reaches Redis in a spawned task (as in per-decision mode); the lease's 15
        // cells are forfeited at once.
        let start = Instant::now();
        while store.metrics().updates == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "the pause did not reach Redis"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let d = store.decide("k", &quota, NonZeroU32::MIN).await.unwrap();
        assert!(
            !d.allowed && d.retry_after > Duration::from_secs(4),
            "{d:?}"
        );
        assert_eq!(
            store.metrics().local_decisions,
            0,
            "a paused lease was spent"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_lease() {
    let mut server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let timeout = Duration::from_millis(100);
        let store = builder("t:restart:")
            .timeout(timeout)
            .probe_interval(Duration::from_millis(50))
            .on_failure(OnFailure::FailClosed)
            .leases(Leases::fixed(nz(8)).interval(Duration::from_secs(10)))
            .connect(server.url())
            .await
            .unwrap();
        let quota = Quota::per_second(nz(100)).with_burst(nz(50)).unwrap();
        assert!(allowed(&store, &quota).await);
        server.kill();
        // The lease's 7 cells were granted: they are spent; then the policy refuses, each
        // decision within the timeout.
        let mut admitted = 0;
        for _ in 0..20 {
            let start = Instant::now();
            let d = store.decide("k", &quota, NonZeroU32::MIN).await.unwrap();
            assert!(start.elapsed() < timeout + Duration::from_millis(400));
            admitted += u32::from(d.allowed);
        }
        assert_eq!(admitted, 7);
        assert!(store.metrics().fallbacks >= 13);
        server.restart();
        let start = Instant::now();
        let decisions = store.metrics().decisions;
        while store.metrics().decisions == decisions {
            let _ = store.decide("k", &quota, NonZeroU32::MIN).await.unwrap();
            assert!(
                start.elapsed() < Duration::from_secs(8),
                "Redis not asked again"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Leases again: the next decisions are local.
        let local = store.metrics().local_decisions;
        for _ in 0..5 {
            assert!(allowed(&store, &quota).await);
        }
        assert_eq!(store.metrics().local_decisions, local + 5);
    })
    .await;
}
