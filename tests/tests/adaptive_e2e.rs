//! The adaptive rate limiter and adaptive throttling against a real hyper server on 127.0.0.1
//! that enforces limits it does not publish.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use resile_ratelimit::throttling::{AdaptiveThrottleLayer, Throttled};
use resile_ratelimit::{Quota, RateLimitLayer, RateLimiter};
use resile_tests::{get, hyper_client, FnServer};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

/// Counts of what a client got.
#[derive(Debug, Default)]
struct Tally {
    ok: AtomicU64,
    too_many: AtomicU64,
    other: AtomicU64,
    refused: AtomicU64,
}

/// A server that admits `rate` requests per second (burst `burst`, a GCRA it keeps to itself)
/// and answers `429` with `Retry-After: 1` past it. No quota headers.
async fn hidden_limit(rate: u32, burst: u32) -> FnServer {
    let quota = Quota::per_second(NonZeroU32::new(rate).unwrap())
        .with_burst(NonZeroU32::new(burst).unwrap())
        .unwrap();
    let limiter = Arc::new(RateLimiter::new(quota));
    FnServer::start(move |_req| {
        let allowed = limiter.check().allowed;
        async move {
            let res = if allowed {
                Response::new(Full::new(Bytes::from_static(b"ok")))
            } else {
                Response::builder()
                    .status(StatusCode::TOO_MANY_REQUESTS)
                    .header("retry-after", "1")
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            };
            Ok(res)
        }
    })
    .await
}

/// `workers` tasks sending back to back through `client` until `deadline`.
async fn run<S>(client: S, url: String, workers: usize, deadline: Instant) -> Arc<Tally>
where
    S: tower::Service<
            http::Request<Full<Bytes>>,
            Response = Response<hyper::body::Incoming>,
            Error = tower::BoxError,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let tally = Arc::new(Tally::default());
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (client, url, tally) = (client.clone(), url.clone(), tally.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let counter = match client.clone().oneshot(get(&url)).await {
                        Ok(res) if res.status() == StatusCode::OK => &tally.ok,
                        Ok(res) if res.status() == StatusCode::TOO_MANY_REQUESTS => &tally.too_many,
                        Ok(_) => &tally.other,
                        Err(e) if e.is::<Throttled>() => {
                            // Refused locally: nothing was sent, so do not spin.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            &tally.refused
                        }
                        Err(e) => panic!("unexpected error: {e}"),
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(40), t)
            .await
            .expect("a worker hung")
            .unwrap();
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adaptive_client_learns_an_unpublished_limit() {
    let server = hidden_limit(100, 20).await;
    let url = server.url("/");
    let secs = 5;

    // A naive client: every worker sends back to back.
    let naive = ServiceBuilder::new()
        .map_err(tower::BoxError::from)
        .service(hyper_client());
    let deadline = Instant::now() + Duration::from_secs(2);
    let naive = run(naive, url.clone(), 16, deadline).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let limiter = RateLimitLayer::adaptive(Quota::per_second(NonZeroU32::new(25).unwrap()))
        // A short wait bound: a worker never sits out the full 30 s default on loopback.
        .max_wait(Duration::from_secs(5))
        .build();
    let client = ServiceBuilder::new()
        .layer(limiter.clone())
        .service(hyper_client());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let adaptive = run(client, url, 16, deadline).await;

    let n_ok = naive.ok.load(Ordering::Relaxed);
    let n_429 = naive.too_many.load(Ordering::Relaxed);
    let ok = adaptive.ok.load(Ordering::Relaxed);
    let too_many = adaptive.too_many.load(Ordering::Relaxed);
    let share = too_many as f64 / (ok + too_many) as f64;
    eprintln!(
        "naive: {n_ok} ok, {n_429} 429 in 2 s; adaptive: {ok} ok, {too_many} 429 ({:.1} %) in {secs} s",
        share * 100.0
    );
    // The naive client mostly hits the limit; the adaptive one rarely does, and still gets
    // a good share of the server's capacity (100/s, minus the slow start from 25/s).
    assert!(n_429 > n_ok, "naive: {n_ok} ok, {n_429} 429");
    assert!(share < 0.05, "{:.1} % 429", share * 100.0);
    assert!(ok >= 250, "{ok} successes in {secs} s");
    assert_eq!(adaptive.other.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_throttling_sheds_what_an_overloaded_server_rejects() {
    // The server accepts 50/s and answers 429 (no hint) to the rest.
    let quota = Quota::per_second(NonZeroU32::new(50).unwrap());
    let limiter = Arc::new(RateLimiter::new(quota));
    let received = Arc::new(AtomicU64::new(0));
    let server = {
        let received = received.clone();
        FnServer::start(move |_req| {
            received.fetch_add(1, Ordering::Relaxed);
            let status = if limiter.check().allowed { 200 } else { 429 };
            async move {
                Ok(Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::new()))
                    .unwrap())
            }
        })
        .await
    };
    let throttle = AdaptiveThrottleLayer::builder()
        .window(Duration::from_secs(2))
        .build();
    let client = ServiceBuilder::new()
        .layer(throttle.clone())
        .service(hyper_client());
    let deadline = Instant::now() + Duration::from_secs(3);
    let tally = run(client, server.url("/"), 8, deadline).await;
    let refused = tally.refused.load(Ordering::Relaxed);
    eprintln!("{tally:?}, p = {:.2}", throttle.probability());
    assert!(refused > 0, "nothing refused locally: {tally:?}");
    assert!(
        throttle.probability() > 0.3,
        "p = {}",
        throttle.probability()
    );
}
