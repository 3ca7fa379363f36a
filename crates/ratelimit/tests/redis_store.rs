//! The Redis store against a real `redis-server`: exact GCRA decisions (the in-memory store's,
//! decision by decision), shared limits across instances, expiry, namespacing, one round trip
//! per decision.
#![cfg(feature = "redis")]

mod redis_harness;

use std::future::Future;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_harness::{admin, bounded, command_calls, nz, reset_stats, RedisServer, Rng};
use resile_ratelimit::clock::ManualClock;
use resile_ratelimit::redis::{OnFailure, RedisStore};
use resile_ratelimit::{Decision, KeyedStore, Quota, Store, StoreError};

const TEST_DEADLINE: Duration = Duration::from_secs(10);

async fn store(server: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::builder()
        .prefix(prefix)
        .timeout(Duration::from_secs(2))
        .on_failure(OnFailure::Error)
        .connect(server.url())
        .await
        .expect("connect to the test server")
}

/// `redis` is within `slack` below `memory`, never above it (the server's clock moved on since the
/// memory store's fixed instant).
fn close_below(redis: Duration, memory: Duration, slack: Duration, what: &str, step: usize) {
    assert!(
        redis <= memory && memory - redis <= slack,
        "step {step}: {what}: redis {redis:?} vs memory {memory:?} (slack {slack:?})"
    );
}

#[tokio::test]
async fn burst_then_refusal_with_exact_fields() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let store = store(&server, "t:burst:").await;
        // 5 per hour: T = 720 s, so the seconds this test takes cannot refill a cell.
        let quota = Quota::per_hour(nz(5));
        for remaining in (0..5).rev() {
            let d = store.decide("k", &quota, NonZeroU32::MIN).await.unwrap();
            assert!(d.allowed);
            assert_eq!((d.limit, d.remaining), (5, remaining));
            assert_eq!(d.retry_after, Duration::ZERO);
        }
        let d = store.decide("k", &quota, NonZeroU32::MIN).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        let slack = Duration::from_secs(2);
        close_below(
            d.retry_after,
            Duration::from_secs(720),
            slack,
            "retry_after",
            5,
        );
        close_below(
            d.reset_after,
            Duration::from_secs(3600),
            slack,
            "reset_after",
            5,
        );

        // The key expires when the bucket is full again (plus 1 ms).
        let mut conn = admin(&server).await;
        let pttl: i64 = conn.pttl("t:burst:k").await.unwrap();
        assert!(
            (3_598_000..=3_600_001).contains(&pttl),
            "PTTL {pttl} ms, expected about an hour"
        );
        // A refusal writes nothing.
        let before: String = conn.get("t:burst:k").await.unwrap();
        let d = store.decide("k", &quota, nz(2)).await.unwrap();
        assert!(!d.allowed);
        let after: String = conn.get("t:burst:k").await.unwrap();
        assert_eq!(before, after);
        assert_eq!(store.metrics().decisions, 7);
        assert_eq!(store.metrics().errors, 0);
    })
    .await;
}

#[tokio::test]
async fn matches_the_memory_store_decision_by_decision() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let store = store(&server, "t:same:").await;
        // The memory store's clock never moves; the server's does, by the test's duration, which
        // is far below T (one hour): every offset is a multiple of T, so only the durations move,
        // by less than the elapsed time, and never across a decision boundary.
        let memory: KeyedStore<String, ManualClock> = KeyedStore::<String>::builder()
            .clock(ManualClock::new())
            .build();
        // T = 1 h + 1 ns: not a whole number of microseconds, so any rounding in the script
        // would show.
        let quota = Quota::new(
            nz(8),
            Duration::from_secs(8 * 3600) + Duration::from_nanos(8),
        )
        .unwrap();
        let t = quota.emission_interval();
        assert_eq!(t.as_nanos(), 3_600_000_000_001);
        let weighted = quota.with_burst(nz(3)).unwrap();
        let keys = ["a", "b", "c"];
        let mut rng = Rng::new(0x5eed_1234);
        let start = Instant::now();
        let mut decisions = 0u64;
        let mut updates = 0u64;
        let (mut refused, mut waiting) = (0u32, 0u32);
        for step in 0..400 {
            let key = keys[rng.below(3) as usize].to_string();
            let q = if rng.below(4) == 0 { &weighted } else { &quota };
            match rng.below(20) {
                0..=4 => {
                    let cost = nz(1 + rng.below(4) as u32);
                    memory.release_now(&key[..], q, cost);
                    Store::release(&store, &key[..], q, cost);
                    // A cost above the burst is ignored by both stores (nothing to send).
                    if cost <= q.burst() {
                        updates += 1;
                        settle(&store, updates).await;
                    }
                }
                5 => {
                    let delay = t * rng.below(3) as u32;
                    let _ = memory.pause_now(&key[..], q, delay);
                    Store::pause(&store, &key[..], q, delay);
                    updates += 1;
                    settle(&store, updates).await;
                }
                _ => {
                    let cost = nz(1 + rng.below(9) as u32);
                    let max_wait = t * [0, 0, 1, 3][rng.below(4) as usize];
                    let m = memory.reserve_now(&key[..], q, cost, max_wait);
                    let r = store.reserve(&key[..], q, cost, max_wait).await;
                    let slack = start.elapsed() + Duration::from_millis(5);
                    match (m, r) {
                        (Err(m), Err(StoreError::InsufficientCapacity(r))) => assert_eq!(m, r),
                        (Ok(m), Ok(r)) => {
                            decisions += 1;
                            assert_eq!(
                                (m.allowed, m.limit, m.remaining),
                                (r.allowed, r.limit, r.remaining),
                                "step {step}: {m:?} vs {r:?}"
                            );
                            refused += u32::from(!m.allowed);
                            waiting += u32::from(m.allowed && !m.retry_after.is_zero());
                            close_below(r.retry_after, m.retry_after, slack, "retry_after", step);
                            close_below(r.reset_after, m.reset_after, slack, "reset_after", step);
                        }
                        (m, r) => panic!("step {step}: memory {m:?}, redis {r:?}"),
                    }
                }
            }
        }
        assert!(decisions > 200, "only {decisions} decisions compared");
        // The sequence exercised every branch: plain admissions, refusals, reservations that wait.
        assert!(
            refused > 20 && waiting > 20,
            "refused {refused}, waiting {waiting}"
        );
        assert_eq!(store.metrics().errors, 0);
    })
    .await;
}

/// Waits until Redis has applied `updates` fire-and-forget updates (release, pause) in all.
async fn settle(store: &RedisStore, updates: u64) {
    while store.metrics().updates < updates {
        assert_eq!(store.metrics().errors, 0);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_one_redis_admit_the_quota_exactly() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        // Two "machines": two stores, two connections, one Redis.
        let a = store(&server, "t:shared:").await;
        let b = store(&server, "t:shared:").await;
        // 300 per hour: T = 12 s, nothing refills during the test.
        let quota = Quota::per_hour(nz(300));
        let mut tasks = Vec::new();
        for i in 0..8u64 {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::new(i + 1);
                let mut cells = 0u32;
                for _ in 0..60 {
                    let cost = nz(1 + rng.below(3) as u32);
                    let d = s.decide("hot", &quota, cost).await.unwrap();
                    if d.allowed {
                        cells += cost.get();
                    }
                }
                cells
            }));
        }
        let mut admitted = 0;
        for t in tasks {
            admitted += t.await.unwrap();
        }
        assert!(
            admitted <= 300,
            "{admitted} cells admitted for a quota of 300"
        );
        // Whatever is left, one cell at a time: the total is exactly the burst.
        let mut rest = 0;
        while a
            .decide("hot", &quota, NonZeroU32::MIN)
            .await
            .unwrap()
            .allowed
        {
            rest += 1;
            assert!(rest <= 300);
        }
        assert_eq!(admitted + rest, 300);
        assert!(
            !b.decide("hot", &quota, NonZeroU32::MIN)
                .await
                .unwrap()
                .allowed
        );
    })
    .await;
}

#[tokio::test]
async fn keys_expire_once_the_bucket_is_full() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let store = store(&server, "t:exp:").await;
        let mut conn = admin(&server).await;
        // Burst 2, T = 100 ms: one cell taken is back after 100 ms.
        let quota = Quota::new(nz(2), Duration::from_millis(200)).unwrap();
        let d = store.decide("k", &quota, NonZeroU32::MIN).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
        let pttl: i64 = conn.pttl("t:exp:k").await.unwrap();
        assert!((1..=101).contains(&pttl), "PTTL {pttl}");
        tokio::time::sleep(Duration::from_millis(150)).await;
        let exists: bool = conn.exists("t:exp:k").await.unwrap();
        assert!(!exists, "the key outlived its bucket");
        // A fresh key again: the full burst.
        let d = store.decide("k", &quota, nz(2)).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
    })
    .await;
}

#[tokio::test]
async fn prefixes_keep_limiters_apart() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let a = store(&server, "app-a:").await;
        let b = store(&server, "app-b:").await;
        let quota = Quota::per_hour(nz(1));
        assert!(
            a.decide("user", &quota, NonZeroU32::MIN)
                .await
                .unwrap()
                .allowed
        );
        assert!(
            !a.decide("user", &quota, NonZeroU32::MIN)
                .await
                .unwrap()
                .allowed
        );
        assert!(
            b.decide("user", &quota, NonZeroU32::MIN)
                .await
                .unwrap()
                .allowed
        );
        // Direct limiters (key `()`) use the prefix alone; binary keys are kept as bytes.
        assert!(
            a.decide(&(), &quota, NonZeroU32::MIN)
                .await
                .unwrap()
                .allowed
        );
        let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        assert!(
            a.decide(&ip, &quota, NonZeroU32::MIN)
                .await
                .unwrap()
                .allowed
        );
        assert!(
            a.decide(&b"\x00\r\n"[..], &quota, NonZeroU32::MIN)
                .await
                .unwrap()
                .allowed
        );

        let mut conn = admin(&server).await;
        let mut keys: Vec<Vec<u8>> = conn.keys("*").await.unwrap();
        keys.sort();
        let expected: Vec<Vec<u8>> = vec![
            b"app-a:".to_vec(),
            b"app-a:\x00\r\n".to_vec(),
            b"app-a:192.0.2.7".to_vec(),
            b"app-a:user".to_vec(),
            b"app-b:user".to_vec(),
        ];
        assert_eq!(keys, expected);
        assert_eq!(a.redis_key("user"), b"app-a:user");
    })
    .await;
}

#[tokio::test]
async fn one_evalsha_per_decision_and_nothing_else() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let store = store(&server, "t:rt:").await;
        let mut conn = admin(&server).await;
        let quota = Quota::per_hour(nz(20));
        reset_stats(&mut conn).await;
        for i in 0..50u32 {
            let _ = store.decide(&i, &quota, NonZeroU32::MIN).await.unwrap();
        }
        let calls = command_calls(&mut conn).await;
        let evalsha = calls.iter().find(|(n, _)| n == "evalsha").map(|c| c.1);
        assert_eq!(evalsha, Some(50), "{calls:?}");
        // No other command from a client: besides this test's own CONFIG RESETSTAT (and INFO on
        // servers that count it before replying), only the commands the script runs inside the
        // server, which Redis 7 lists too (they are not round trips): TIME and GET once per
        // decision, SET once per admission.
        let count = |name: &str| calls.iter().find(|(n, _)| n == name).map_or(0, |c| c.1);
        for (name, n) in &calls {
            assert!(
                matches!(
                    name.as_str(),
                    "evalsha" | "time" | "get" | "set" | "config|resetstat" | "config" | "info"
                ),
                "unexpected command {name} x{n}: {calls:?}"
            );
        }
        assert!(count("time") <= 50 && count("get") <= 50 && count("set") <= 50);
        // A cost above the burst never reaches Redis.
        reset_stats(&mut conn).await;
        let err = store.decide("k", &quota, nz(21)).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InsufficientCapacity(_)),
            "{err:?}"
        );
        let calls = command_calls(&mut conn).await;
        assert!(calls.iter().all(|(n, _)| n != "evalsha"), "{calls:?}");
    })
    .await;
}

#[tokio::test]
async fn a_flushed_script_cache_costs_one_eval() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let store = store(&server, "t:flush:").await;
        let mut conn = admin(&server).await;
        let quota = Quota::per_hour(nz(3));
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut conn)
            .await
            .unwrap();
        reset_stats(&mut conn).await;
        let mut allowed = 0;
        for _ in 0..10 {
            if store
                .decide("k", &quota, NonZeroU32::MIN)
                .await
                .unwrap()
                .allowed
            {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 3);
        let calls = command_calls(&mut conn).await;
        let count = |name: &str| calls.iter().find(|(n, _)| n == name).map_or(0, |c| c.1);
        // The first EVALSHA meets NOSCRIPT (counted as a failed call on Redis 7, not at all on
        // older servers), one EVAL sends the script, and every later decision is one EVALSHA.
        assert_eq!(count("eval"), 1, "{calls:?}");
        assert!((9..=10).contains(&count("evalsha")), "{calls:?}");
        assert_eq!(store.metrics().errors, 0);
    })
    .await;
}

#[tokio::test]
async fn release_and_pause_reach_redis() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let store = store(&server, "t:upd:").await;
        let quota = Quota::per_hour(nz(5));
        let d = store.decide("k", &quota, nz(4)).await.unwrap();
        assert_eq!(d.remaining, 1);
        Store::release(&store, "k", &quota, nz(3));
        settle(&store, 1).await;
        let d = store.decide("k", &quota, NonZeroU32::MIN).await.unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 3));

        // A pause of an hour: nothing for an hour, then one cell per T.
        Store::pause(&store, "other", &quota, Duration::from_secs(3600));
        settle(&store, 2).await;
        let d = store
            .decide("other", &quota, NonZeroU32::MIN)
            .await
            .unwrap();
        assert!(!d.allowed);
        close_below(
            d.retry_after,
            Duration::from_secs(3600),
            Duration::from_secs(2),
            "retry_after",
            0,
        );
        assert_eq!(store.metrics().dropped_updates, 0);
    })
    .await;
}

#[tokio::test]
async fn foreign_values_under_the_prefix() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let store = RedisStore::builder()
            .prefix("t:bad:")
            .on_failure(OnFailure::FailClosed)
            .connect(server.url())
            .await
            .unwrap();
        let mut conn = admin(&server).await;
        let quota = Quota::per_hour(nz(2));
        // A string that is not a TAT: a full bucket, overwritten by the admission.
        let _: () = conn.set("t:bad:s", "not a time").await.unwrap();
        let d = store.decide("s", &quota, NonZeroU32::MIN).await.unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 1));
        let v: String = conn.get("t:bad:s").await.unwrap();
        assert!(v.bytes().all(|b| b.is_ascii_digit()), "{v}");
        // A key of another type: the call fails and the policy (fail closed) decides.
        let _: () = conn.rpush("t:bad:l", "x").await.unwrap();
        let d = store.decide("l", &quota, NonZeroU32::MIN).await.unwrap();
        assert_eq!(
            d,
            Decision {
                allowed: false,
                limit: 2,
                remaining: 0,
                retry_after: Duration::from_secs(1800),
                reset_after: Duration::from_secs(3600),
            }
        );
        let m = store.metrics();
        assert_eq!((m.errors, m.fallbacks, m.decisions), (1, 1, 1));
        assert!(!store.is_healthy());
    })
    .await;
}

/// Polls `fut` once (the command goes out), then drops it.
async fn abandon_after_one_poll(mut fut: resile_ratelimit::redis::RedisStoreFuture) {
    let pending = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::pin::Pin::new(&mut fut).poll(cx).is_pending())
    })
    .await;
    assert!(pending, "a remote decision is not ready on its first poll");
    drop(fut);
}

#[tokio::test]
async fn a_reservation_dropped_in_flight_gives_its_cells_back() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let store = store(&server, "t:abandon:").await;
        let quota = Quota::per_hour(nz(5));
        // Four of the five cells, reserved and abandoned while Redis decides.
        abandon_after_one_poll(Store::reserve(&store, "k", &quota, nz(4), Duration::ZERO)).await;
        // The decision is finished in the background, and its four cells are released.
        settle(&store, 1).await;
        assert_eq!(store.metrics().decisions, 1);
        let d = store.decide("k", &quota, nz(5)).await.unwrap();
        assert!(d.allowed, "all five cells are free again: {d:?}");

        // An abandoned refusal took nothing and gives nothing back.
        abandon_after_one_poll(Store::reserve(&store, "k", &quota, nz(1), Duration::ZERO)).await;
        while store.metrics().decisions < 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Time for a release to land, had one been sent.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(store.metrics().updates, 1);
        let d = store.decide("k", &quota, nz(1)).await.unwrap();
        assert!(!d.allowed, "the bucket is still empty: {d:?}");
    })
    .await;
}
