//! The Redis store when Redis goes away: the server is killed (or frozen) mid-run, the failure
//! policy decides within the decision timeout, nothing panics or hangs, and once the server is
//! back the decisions are Redis's again without any help.
#![cfg(feature = "redis")]

mod redis_harness;

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_harness::{admin, bounded, nz, RedisServer};
use resile_ratelimit::redis::{OnFailure, QuotaShare, RedisStore, RedisUnavailable};
use resile_ratelimit::{Decision, Quota, Store, StoreError};

const TEST_DEADLINE: Duration = Duration::from_secs(12);
const TIMEOUT: Duration = Duration::from_millis(100);
/// How late past the decision timeout a decision may come on a loaded machine.
const LATE: Duration = Duration::from_millis(400);
const RECOVERY_DEADLINE: Duration = Duration::from_secs(6);

fn builder(policy: OnFailure) -> resile_ratelimit::redis::RedisStoreBuilder {
    RedisStore::builder()
        .prefix("t:fault:")
        .timeout(TIMEOUT)
        .probe_interval(Duration::from_millis(100))
        .on_failure(policy)
}

/// 10 per hour: nothing refills during a test.
fn quota() -> Quota {
    Quota::per_hour(nz(10))
}

/// One decision, timed: it must come within the decision timeout (plus scheduling slack).
async fn timed(store: &RedisStore, key: &str) -> Result<Decision, StoreError> {
    let start = Instant::now();
    let result = store.decide(key, &quota(), NonZeroU32::MIN).await;
    let took = start.elapsed();
    assert!(
        took <= TIMEOUT + LATE,
        "a decision took {took:?} with a {TIMEOUT:?} timeout"
    );
    result
}

/// Decides until Redis answers again (its decision counter moves), within the deadline.
///
/// A decision that timed out since the store counted `timeouts_before` timeouts may still have
/// run on the server once it answered again (the `Store` contract allows an abandoned decision to
/// take its cells), so the first decision Redis makes may find up to that many more cells taken:
/// returned with it, for [`remaining_after`].
async fn until_redis_decides(
    store: &RedisStore,
    key: &str,
    timeouts_before: u64,
) -> (Decision, u32) {
    let before = store.metrics();
    let start = Instant::now();
    loop {
        let result = timed(store, key).await;
        let now = store.metrics();
        if now.decisions > before.decisions {
            let late = u32::try_from(now.timeouts - timeouts_before).unwrap_or(u32::MAX);
            return (result.expect("a decision Redis made"), late);
        }
        assert!(
            start.elapsed() < RECOVERY_DEADLINE,
            "Redis did not take decisions back within {RECOVERY_DEADLINE:?}: {:?}",
            store.metrics()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `d` is allowed and leaves `expected` cells, or fewer by at most `late` (decisions that timed
/// out while Redis came back, which may have run late).
fn remaining_after(d: &Decision, expected: u32, late: u32) {
    assert!(d.allowed, "{d:?}");
    assert!(
        d.remaining <= expected && d.remaining + late >= expected,
        "{} cells left, expected {expected} (or up to {late} fewer)",
        d.remaining
    );
}

/// Runs the outage scenario for one policy: two cells taken on Redis, the server killed, `check`
/// applied to a burst of decisions made during the outage, the server restarted (empty), and
/// decisions back on Redis.
async fn outage(policy: OnFailure, check: impl FnOnce(&[Result<Decision, StoreError>])) {
    let mut server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let store = builder(policy).connect(server.url()).await.unwrap();
        for remaining in [9, 8] {
            let d = timed(&store, "k").await.unwrap();
            assert_eq!((d.allowed, d.remaining), (true, remaining));
        }
        assert!(store.is_healthy());

        server.kill();
        let timeouts_before = store.metrics().timeouts;
        let mut during = Vec::new();
        for _ in 0..12 {
            during.push(timed(&store, "k").await);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        check(&during);
        let m = store.metrics();
        assert!(!store.is_healthy());
        assert!(m.errors >= 1, "{m:?}");
        assert_eq!(m.decisions, 2, "{m:?}");
        let decided = during.iter().filter(|r| r.is_ok()).count() as u64;
        assert_eq!(m.fallbacks, decided, "{m:?}");

        server.restart();
        // The restarted server is empty: the first Redis decision sees a fresh key.
        let (d, late) = until_redis_decides(&store, "k", timeouts_before).await;
        remaining_after(&d, 9, late);
        assert!(store.is_healthy());
        let mut conn = admin(&server).await;
        let exists: bool = conn.exists("t:fault:k").await.unwrap();
        assert!(exists, "the decision after the restart did not reach Redis");
        let next = timed(&store, "k").await.unwrap();
        assert_eq!(next.remaining + 1, d.remaining);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_admits_while_redis_is_down() {
    outage(OnFailure::FailOpen, |during| {
        for r in during {
            let d = r.as_ref().expect("fail open decides");
            assert!(d.allowed);
            assert_eq!(d.remaining, 9);
            assert_eq!(d.reset_after, Duration::from_secs(360));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_refuses_while_redis_is_down() {
    outage(OnFailure::FailClosed, |during| {
        for r in during {
            let d = r.as_ref().expect("fail closed decides");
            assert!(!d.allowed);
            assert_eq!(d.remaining, 0);
            assert_eq!(d.retry_after, Duration::from_secs(360));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_enforces_its_share_while_redis_is_down() {
    // Two instances: each keeps half of the quota (burst 5, 5 per hour) on its own.
    let share = QuotaShare::one_of(nz(2));
    outage(OnFailure::Fallback { share }, |during| {
        let allowed: Vec<bool> = during
            .iter()
            .map(|r| r.as_ref().expect("fallback decides").allowed)
            .collect();
        assert_eq!(allowed.iter().filter(|a| **a).count(), 5, "{allowed:?}");
        assert!(allowed[..5].iter().all(|a| *a), "{allowed:?}");
        let d = during[4].as_ref().unwrap();
        assert_eq!((d.limit, d.remaining), (5, 0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_policy_returns_the_failure() {
    outage(OnFailure::Error, |during| {
        for r in during {
            match r {
                Err(StoreError::Timeout(t)) => assert_eq!(*t, TIMEOUT),
                Err(StoreError::Backend(e)) => assert!(
                    e.is::<redis::RedisError>() || e.is::<RedisUnavailable>(),
                    "{e:?}"
                ),
                other => panic!("expected a store error, got {other:?}"),
            }
        }
        // After the first failure the store skips Redis for its probe interval.
        assert!(during.iter().any(|r| matches!(
            r,
            Err(StoreError::Backend(e)) if e.is::<RedisUnavailable>()
        )));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_during_an_outage_are_bounded_by_the_share() {
    let mut server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let store = builder(OnFailure::Fallback {
            share: QuotaShare::one_of(nz(2)),
        })
        .connect(server.url())
        .await
        .unwrap();
        server.kill();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut admitted = 0;
                    for _ in 0..4 {
                        if timed(&store, "hot").await.unwrap().allowed {
                            admitted += 1;
                        }
                    }
                    admitted
                })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            admitted += t.await.unwrap();
        }
        assert_eq!(admitted, 5);
        assert_eq!(store.metrics().fallbacks, 64);
        assert_eq!(store.fallback_keys(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_times_out_then_recovers() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        // A probe interval long enough that a loaded machine cannot outlast it between two
        // decisions.
        let store = builder(OnFailure::FailClosed)
            .probe_interval(Duration::from_millis(500))
            .connect(server.url())
            .await
            .unwrap();
        assert!(timed(&store, "k").await.unwrap().allowed);
        server.freeze();
        // The connection is up but nothing answers: the timeout decides.
        let start = Instant::now();
        let d = timed(&store, "k").await.unwrap();
        assert!(start.elapsed() >= TIMEOUT - Duration::from_millis(5));
        assert!(!d.allowed);
        let m = store.metrics();
        assert_eq!((m.timeouts, m.errors, m.fallbacks), (1, 1, 1), "{m:?}");
        // Within the probe interval the policy answers at once.
        let start = Instant::now();
        assert!(!timed(&store, "k").await.unwrap().allowed);
        assert!(start.elapsed() < TIMEOUT, "{:?}", start.elapsed());
        server.thaw();
        // The same server, with its state: one cell was taken before the freeze, and the call
        // that timed out was still in the server's socket when it woke up: it ran and took its
        // cell (the `Store` contract allows an abandoned decision to take its cells).
        let (d, late) = until_redis_decides(&store, "k", 1).await;
        remaining_after(&d, 7, late);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_store_starts_while_redis_is_away() {
    let mut server = RedisServer::start();
    server.kill();
    bounded(TEST_DEADLINE, async {
        let store = builder(OnFailure::FailClosed)
            .connect_lazy(server.url())
            .unwrap();
        for _ in 0..3 {
            assert!(!timed(&store, "k").await.unwrap().allowed);
        }
        server.restart();
        let (d, late) = until_redis_decides(&store, "k", 0).await;
        remaining_after(&d, 9, late);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_during_an_outage_are_dropped_not_stuck() {
    let mut server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let store = builder(OnFailure::FailOpen)
            .probe_interval(Duration::from_secs(5))
            .connect(server.url())
            .await
            .unwrap();
        server.kill();
        let _ = timed(&store, "k").await;
        // In the probe interval: dropped at once and counted.
        Store::release(&store, "k", &quota(), NonZeroU32::MIN);
        Store::pause(&store, "k", &quota(), Duration::from_secs(1));
        assert_eq!(store.metrics().dropped_updates, 2);
        // Outside a runtime: dropped too, never a panic.
        let s = store.clone();
        std::thread::spawn(move || Store::release(&s, "k", &quota(), NonZeroU32::MIN))
            .join()
            .unwrap();
        assert_eq!(store.metrics().dropped_updates, 3);
    })
    .await;
}

/// A subscriber that keeps the level, message and `prefix` field of every event of the Redis
/// store.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Event>>>);

#[derive(Debug, Default)]
struct Event {
    level: Option<tracing::Level>,
    message: String,
    prefix: String,
}

impl tracing::field::Visit for Event {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "prefix" => self.prefix = format!("{value:?}"),
            _ => {}
        }
    }
}

impl tracing::Subscriber for Events {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.target().starts_with("resile_ratelimit::redis")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut e = Event {
            level: Some(*event.metadata().level()),
            ..Event::default()
        };
        event.record(&mut e);
        self.0.lock().unwrap().push(e);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_logs_one_warning_and_one_recovery() {
    // The global subscriber (the only test of this binary that sets one) sees every test's
    // events; this test's store has its own prefix to tell its events apart.
    let events = Events::default();
    tracing::subscriber::set_global_default(events.clone()).expect("one global subscriber");
    let prefix = "t:logged:";
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let store = builder(OnFailure::FailOpen)
            .prefix(prefix)
            .probe_interval(Duration::ZERO)
            .connect(server.url())
            .await
            .unwrap();
        server.freeze();
        for _ in 0..3 {
            let _ = timed(&store, "k").await;
        }
        server.thaw();
        let _ = until_redis_decides(&store, "k", 0).await;
    })
    .await;
    let events = events.0.lock().unwrap();
    let at = |level| {
        events
            .iter()
            .filter(|e| e.prefix == prefix && e.level == Some(level))
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
    };
    let warn = at(tracing::Level::WARN);
    assert_eq!(warn.len(), 1, "{events:?}");
    assert!(warn[0].contains("failure policy"), "{warn:?}");
    assert_eq!(at(tracing::Level::DEBUG).len(), 2, "{events:?}");
    let info = at(tracing::Level::INFO);
    assert_eq!(info.len(), 1, "{events:?}");
    assert!(info[0].contains("answers again"), "{info:?}");
}
