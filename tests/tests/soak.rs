//! Soak: 1,000,000 in-process requests through the full client stack from 2 threads, with the
//! per-host circuit breaker seeing 10,000 hosts, over a server-side throttle keyed on 100,000
//! client keys. After a warm-up, resident memory must not grow past a stated bound, the key
//! tables must stay within their caps, and the runtime's alive tasks must return to their
//! baseline.

use std::convert::Infallible;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, Request, Response};
use http_body_util::Full;
use resile_ratelimit::server::HeaderKey;
use resile_ratelimit::{KeyedStore, Quota, ThrottleLayer};
use tower::{service_fn, Layer, ServiceBuilder, ServiceExt};

const REQUESTS: u64 = 1_000_000;
const WORKERS: u64 = 2;
const HOSTS: u64 = 10_000;
const KEYS: u64 = 100_000;
const KEY_CAP: usize = 100_000;
/// Growth of resident memory allowed between the end of the warm-up and the end of the run.
const RSS_GROWTH_BOUND: u64 = 32 * 1024 * 1024;

/// Resident memory in bytes, from `/proc/self/statm` (Linux).
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn a_million_requests_through_the_stack_do_not_grow_memory() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let baseline_tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();

        // The server side: a throttle per client key (100 per second, burst 100), a cap on keys.
        let store = KeyedStore::builder().max_keys(KEY_CAP).build();
        let throttle = ThrottleLayer::builder(
            Quota::per_second(NonZeroU32::new(100).unwrap()),
            HeaderKey::new(HeaderName::from_static("x-client")),
        )
        .store(store)
        .build();
        // One request in 50 is answered 503: the breaker and the retries have work to do.
        let n = Arc::new(AtomicU64::new(0));
        let server = throttle.layer(service_fn(move |_req: Request<Full<Bytes>>| {
            let i = n.fetch_add(1, Ordering::Relaxed);
            let status = if i % 50 == 7 { 503 } else { 200 };
            let res = Response::builder()
                .status(status)
                .body(Full::new(Bytes::new()))
                .unwrap();
            async move { Ok::<_, Infallible>(res) }
        }));

        // Retries without a backoff delay: the soak measures state, not sleeping.
        let policy = resile::retry::RetryPolicy::builder()
            .backoff(resile_backoff::Constant::new(std::time::Duration::ZERO))
            .build();
        let stack = resile::stack::http_client().retry(policy);
        let breaker = stack.breaker_handle();
        let client = ServiceBuilder::new().layer(stack).service(server);

        let run = |from: u64, to: u64| {
            let mut tasks = Vec::new();
            for w in 0..WORKERS {
                let client = client.clone();
                tasks.push(tokio::spawn(async move {
                    let mut ok = 0u64;
                    for i in (from + w..to).step_by(WORKERS as usize) {
                        let req = Request::get(format!("http://h{}.test/", i % HOSTS))
                            .header("x-client", (i * 7_919) % KEYS)
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                        if let Ok(res) = client.clone().oneshot(req).await {
                            ok += u64::from(res.status().is_success());
                        }
                    }
                    ok
                }));
            }
            async move {
                let mut ok = 0;
                for t in tasks {
                    ok += t.await.unwrap();
                }
                ok
            }
        };

        let warm_up = REQUESTS / 10;
        let ok_warm = run(0, warm_up).await;
        let rss_warm = rss();
        let ok_rest = run(warm_up, REQUESTS).await;
        let rss_end = rss();

        let ok = ok_warm + ok_rest;
        let keys = throttle.store().len();
        eprintln!(
            "soak: {ok} of {REQUESTS} succeeded; throttle keys {keys}; breaker hosts kept {}; rss after warm-up {:?} MiB, at the end {:?} MiB",
            breaker.keys().len(),
            rss_warm.map(|b| b / (1024 * 1024)),
            rss_end.map(|b| b / (1024 * 1024)),
        );
        // Every request was answered (503s are retried; the throttle's quota is never reached).
        assert!(ok >= REQUESTS * 99 / 100, "{ok} succeeded");
        assert!(keys <= KEY_CAP + 64, "{keys} throttle keys");
        let hosts = breaker.keys().len();
        assert!(hosts <= breaker.capacity(), "{hosts} breaker hosts, capacity {}", breaker.capacity());
        if let (Some(a), Some(b)) = (rss_warm, rss_end) {
            assert!(b.saturating_sub(a) < RSS_GROWTH_BOUND, "rss grew by {} bytes", b - a);
        }
        drop(client);
        // Every task the run spawned is gone.
        tokio::task::yield_now().await;
        let alive = tokio::runtime::Handle::current().metrics().num_alive_tasks();
        assert_eq!(alive, baseline_tasks, "tasks left behind");
    });
    // And the runtime shuts down without hanging.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
}
