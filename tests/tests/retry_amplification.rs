//! A total outage through the retry layer: 1,000 requests against a server that always answers
//! 503. With the default budget (20 % of requests, 10 retries per second over a 10 s window) the
//! server may see at most
//!
//! ```text
//! 1000 first attempts + floor(20 × 1000 / 100) + reserve (10/s × 10 s) + 10/s × elapsed
//! ```
//!
//! requests, the exact bound of `resile_retry::budget`. Without a budget the same backoff would
//! let each request be tried four times. The backoff waits nothing here so that the test runs in
//! well under a second of real time; the budget, not time, is what bounds the retries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use resile_retry::{Constant, RetryBudget, RetryLayer, RetryPolicy};
use resile_tests::{hyper_client, FnServer};
use tower::{Layer, ServiceExt};

const REQUESTS: u64 = 1_000;
const CONCURRENCY: usize = 32;
const MAX_RETRIES: u32 = 3;

async fn always_503() -> FnServer {
    FnServer::start(|_req| async {
        let mut res = Response::new(Full::new(Bytes::from_static(b"down")));
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        Ok(res)
    })
    .await
}

/// Sends `REQUESTS` GETs through one retry layer (cloned per request, sharing its budget) and
/// returns how many requests the server saw and how many retries the layer made.
async fn outage(policy: RetryPolicy<Constant>, server: &FnServer) -> (u64, u64) {
    let client = RetryLayer::new(policy).layer(hyper_client());
    let url = server.url("/");
    let statuses = stream::iter(0..REQUESTS)
        .map(|_| {
            let client = client.clone();
            let req = http::Request::get(url.as_str())
                .body(Full::new(Bytes::new()))
                .expect("a valid request");
            async move {
                let res = client.oneshot(req).await.expect("a response");
                let status = res.status();
                let _ = res.into_body().collect().await;
                status
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    // Giving up returns the last response: every request ends with the server's 503.
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(statuses.len() as u64, REQUESTS);
    (server.hits(), server.hits() - REQUESTS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_budget_bounds_an_outage() {
    let server = always_503().await;
    // Taken before the budget is built: `elapsed` bounds the time the budget has existed.
    let started = Instant::now();
    let budget = RetryBudget::default();
    let retried = Arc::new(AtomicU64::new(0));
    let r = retried.clone();
    let policy = RetryPolicy::builder()
        .backoff(Constant::new(Duration::ZERO).max_retries(MAX_RETRIES))
        .budget(budget.clone())
        .on_retry(move |_| {
            r.fetch_add(1, Ordering::Relaxed);
        })
        .build();
    let (hits, retries) = outage(policy, &server).await;
    let elapsed = started.elapsed();

    let ratio = budget.ratio_percent() as u64;
    let floor = budget.min_retries_per_second() as u64;
    let reserve = budget.reserve();
    // The floor's rate term: floor(elapsed / interval) with interval = ceil(1 s / floor).
    let interval_ns = 1_000_000_000u64.div_ceil(floor);
    let refill = elapsed.as_nanos() as u64 / interval_ns;
    let bound = REQUESTS + ratio * REQUESTS / 100 + reserve + refill;
    let issue_bound = REQUESTS + ratio * REQUESTS / 100 + floor;

    println!(
        "outage: {REQUESTS} requests -> {hits} server hits, amplification {:.3} \
         ({retries} retries in {elapsed:?}; guaranteed bound {bound} = {REQUESTS} + {} + {reserve} + {refill}; \
         (1 + ratio) x N + floor = {issue_bound}; without a budget: up to {})",
        hits as f64 / REQUESTS as f64,
        ratio * REQUESTS / 100,
        REQUESTS * (1 + MAX_RETRIES as u64),
    );
    assert_eq!(retried.load(Ordering::Relaxed), retries);
    assert!(hits <= bound, "{hits} server hits > bound {bound}");
    // The budget did its job in both directions: retries happened, then stopped.
    assert!(
        retries > ratio * REQUESTS / 100 / 2,
        "only {retries} retries"
    );
    assert!(hits < REQUESTS * (1 + MAX_RETRIES as u64) / 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_budget_every_request_spends_every_retry() {
    // The comparison point, on a smaller run: the outage multiplies the load by 1 + max_retries.
    let server = always_503().await;
    let policy = RetryPolicy::builder()
        .backoff(Constant::new(Duration::ZERO).max_retries(MAX_RETRIES))
        .no_budget()
        .build();
    let client = RetryLayer::new(policy).layer(hyper_client());
    for _ in 0..50 {
        let req = http::Request::get(server.url("/"))
            .body(Full::new(Bytes::new()))
            .expect("a valid request");
        let res = client.clone().oneshot(req).await.expect("a response");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    println!(
        "no budget: 50 requests -> {} server hits, amplification {:.1}",
        server.hits(),
        server.hits() as f64 / 50.0
    );
    assert_eq!(server.hits(), 50 * (1 + MAX_RETRIES as u64));
}
