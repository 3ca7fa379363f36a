//! A bounded chaos run of the full client stack against a real hyper server on 127.0.0.1.
//!
//! 200 concurrent clients share one stack (retry > breaker > limiter > timeout over a hyper-util
//! client) and send 10 requests each: GETs, PUTs and POSTs, every one with a unique id and a
//! checksum of its body. The server fails at random (seeded, and decided per request id and
//! attempt, so the run does not depend on scheduling): 30 % `503`, some `429`s with a hint, and
//! some dropped connections, before or after it processed the request.
//!
//! Checked: no request is lost (each ends with a response or a typed error), no body arrives
//! altered, a non-idempotent request is never processed twice, and the server's hits stay under
//! the retry budget's bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Method, Request, Response, StatusCode};
use http_body_util::Full;
use resile::backoff::{Exponential, Jitter};
use resile::breaker::{BreakerOpen, CircuitBreakerLayer, SlidingWindow};
use resile::ratelimit::client::WaitTooLong;
use resile::retry::{RetryBudget, RetryPolicy};
use resile_tests::{body_bytes, checksum, hyper_client, request, DropConnection, FnServer};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower::ServiceExt;

const CLIENTS: u64 = 200;
const PER_CLIENT: u64 = 10;
const SEED: u64 = 0x5eed_2024_c4a0_5eed;

const ID: &str = "x-request-id";
const SUM: &str = "x-body-checksum";
const ATTEMPT: &str = "x-attempt";

/// The budget of the run: Finagle's defaults.
const RATIO_PERCENT: u64 = 20;
const MIN_PER_SECOND: u64 = 10;
const TTL_SECS: u64 = 10;

#[derive(Default)]
struct Ledger {
    /// How many times the server processed each POST id.
    posts: Mutex<HashMap<u64, u32>>,
    /// Every id the server processed (any method), with the attempt that did it.
    processed: Mutex<HashMap<u64, u32>>,
    /// Requests whose body did not match their checksum or their id.
    bad_bodies: AtomicU64,
}

fn header_u64(req: &Request<Bytes>, name: &str) -> Option<u64> {
    req.headers().get(name)?.to_str().ok()?.parse().ok()
}

/// What the server does with one attempt: decided by the seed, the request id and the attempt
/// number alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Unavailable,
    TooMany,
    DropBefore,
    DropAfter,
    Process,
}

fn fate(id: u64, attempt: u64) -> Fate {
    let mut rng = fastrand::Rng::with_seed(SEED ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ attempt);
    match rng.u32(0..100) {
        0..30 => Fate::Unavailable,
        30..34 => Fate::TooMany,
        34..36 => Fate::DropBefore,
        36..38 => Fate::DropAfter,
        _ => Fate::Process,
    }
}

async fn handle(
    ledger: Arc<Ledger>,
    req: Request<Bytes>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let (Some(id), Some(sum)) = (header_u64(&req, ID), header_u64(&req, SUM)) else {
        ledger.bad_bodies.fetch_add(1, Ordering::SeqCst);
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    let attempt = header_u64(&req, ATTEMPT).unwrap_or(1);
    // A little work, the same whatever the fate, so that requests overlap.
    tokio::time::sleep(Duration::from_micros((id + attempt) % 7 * 300)).await;
    let body = req.body();
    let prefix = format!("{id}:");
    let body_ok = checksum(body) == sum
        && (req.method() == Method::GET && body.is_empty() || body.starts_with(prefix.as_bytes()));
    if !body_ok {
        ledger.bad_bodies.fetch_add(1, Ordering::SeqCst);
        return Ok(status(StatusCode::BAD_REQUEST));
    }
    let process = || {
        if req.method() == Method::POST {
            *ledger.posts.lock().unwrap().entry(id).or_default() += 1;
        }
        ledger
            .processed
            .lock()
            .unwrap()
            .insert(id, u32::try_from(attempt).unwrap_or(u32::MAX));
    };
    match fate(id, attempt) {
        Fate::Unavailable => Ok(status(StatusCode::SERVICE_UNAVAILABLE)),
        Fate::TooMany => {
            let mut res = status(StatusCode::TOO_MANY_REQUESTS);
            res.headers_mut()
                .insert("retry-after-ms", http::HeaderValue::from_static("20"));
            Ok(res)
        }
        Fate::DropBefore => Err(DropConnection),
        Fate::DropAfter => {
            process();
            Err(DropConnection)
        }
        Fate::Process => {
            process();
            Ok(Response::new(Full::new(Bytes::from(id.to_string()))))
        }
    }
}

fn status(s: StatusCode) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = s;
    res
}

/// How a request of the run ended.
#[derive(Debug)]
enum End {
    Response(StatusCode),
    Breaker,
    Limiter,
    Timeout,
    Transport,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_run_loses_nothing_repeats_no_post_and_stays_in_budget() {
    let ledger = Arc::new(Ledger::default());
    let l = ledger.clone();
    let server = FnServer::start(move |req| handle(l.clone(), req)).await;

    let budget = RetryBudget::builder()
        .ratio_percent(RATIO_PERCENT as u32)
        .min_retries_per_second(MIN_PER_SECOND as u32)
        .ttl(Duration::from_secs(TTL_SECS))
        .build()
        .unwrap();
    let policy = RetryPolicy::builder()
        .backoff(
            Exponential::builder()
                .initial(Duration::from_millis(5))
                .jitter(Jitter::Full)
                .max_retries(3)
                .build()
                .unwrap(),
        )
        .budget(budget.clone())
        .attempt_header(HeaderName::from_static(ATTEMPT))
        .build();
    // A 30 % failure rate is the weather of this run, not an outage: trip at 80 %.
    let breaker = CircuitBreakerLayer::builder()
        .failure_rate(0.8, SlidingWindow::Count(200), 100)
        .open_duration(Duration::from_millis(200))
        .build()
        .unwrap();
    let breaker_handle = breaker.handle();
    let stack = resile::stack::http_client()
        .retry(policy)
        .circuit_breaker(breaker)
        .attempt_timeout(Duration::from_secs(5));
    let client = ServiceBuilder::new().layer(stack).service(hyper_client());

    let start = Instant::now();
    let mut clients = JoinSet::new();
    for c in 0..CLIENTS {
        let client = client.clone();
        let url = server.url("/items");
        clients.spawn(async move {
            let mut ends = Vec::new();
            let mut rng = fastrand::Rng::with_seed(SEED ^ c);
            for k in 0..PER_CLIENT {
                let id = c * PER_CLIENT + k;
                let (method, body) = match id % 4 {
                    0 => (
                        Method::POST,
                        format!("{id}:{}", "p".repeat(rng.usize(0..2000))),
                    ),
                    1 => (
                        Method::PUT,
                        format!("{id}:{}", "u".repeat(rng.usize(0..2000))),
                    ),
                    _ => (Method::GET, String::new()),
                };
                let mut req = request(method.clone(), &url, body.clone());
                req.headers_mut().insert(ID, id.into());
                req.headers_mut()
                    .insert(SUM, checksum(body.as_bytes()).into());
                let end = match client.clone().oneshot(req).await {
                    Ok(res) => {
                        let status = res.status();
                        let got = body_bytes(res).await.expect("a whole response body");
                        if status == StatusCode::OK {
                            // Answers are not crossed between requests.
                            assert_eq!(got, id.to_string(), "response of request {id}");
                        }
                        End::Response(status)
                    }
                    Err(err) => {
                        if err.is::<BreakerOpen>() {
                            End::Breaker
                        } else if err.is::<WaitTooLong>() {
                            End::Limiter
                        } else if err.is::<tower::timeout::error::Elapsed>() {
                            End::Timeout
                        } else if err.is::<hyper_util::client::legacy::Error>() {
                            End::Transport
                        } else {
                            panic!("request {id}: an error of no known type: {err:?}");
                        }
                    }
                };
                ends.push((id, method, end));
            }
            ends
        });
    }
    let mut ends = Vec::new();
    while let Some(done) = clients.join_next().await {
        ends.extend(done.expect("a client task"));
    }
    let elapsed = start.elapsed();
    let n = CLIENTS * PER_CLIENT;

    // Nothing lost: every request ended, once.
    assert_eq!(ends.len() as u64, n);
    let mut ids: Vec<u64> = ends.iter().map(|(id, _, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, n);

    // No body altered on the way, first attempt or replay.
    assert_eq!(ledger.bad_bodies.load(Ordering::SeqCst), 0);

    // A POST the server processed was never sent again.
    let posts = ledger.posts.lock().unwrap().clone();
    for (id, times) in &posts {
        assert_eq!(*times, 1, "POST {id} processed {times} times");
    }

    // Every 200 was processed by the server; every processed request that got its answer
    // ended 200.
    let processed = ledger.processed.lock().unwrap().clone();
    let mut counts: HashMap<&'static str, u64> = HashMap::new();
    for (id, method, end) in &ends {
        let name = match end {
            End::Response(StatusCode::OK) => {
                assert!(
                    processed.contains_key(id),
                    "{method} {id} answered 200 unprocessed"
                );
                "200"
            }
            End::Response(StatusCode::SERVICE_UNAVAILABLE) => "503",
            End::Response(StatusCode::TOO_MANY_REQUESTS) => "429",
            End::Response(s) => panic!("{method} {id}: unexpected status {s}"),
            End::Breaker => "breaker",
            End::Limiter => "limiter",
            End::Timeout => "timeout",
            End::Transport => "transport",
        };
        *counts.entry(name).or_default() += 1;
    }

    // The load stayed under the budget's bound: first attempts, plus 20 % of them, plus the
    // floor's reserve, plus the floor's rate over the run.
    let hits = server.hits();
    let bound = n
        + RATIO_PERCENT * n / 100
        + MIN_PER_SECOND * TTL_SECS
        + MIN_PER_SECOND * (elapsed.as_secs() + 1);
    let retried = processed.values().filter(|a| **a > 1).count();
    println!(
        "{n} requests in {elapsed:?}: {hits} server hits (bound {bound}), outcomes {counts:?}, \
         {retried} processed on a retry, {} POSTs processed, budget left {}",
        posts.len(),
        budget.available_retries()
    );
    println!("breaker: {:?}", breaker_handle.metrics());
    assert!(hits <= bound, "{hits} hits over the bound of {bound}");
    // The stack did retry, and retries did rescue requests.
    assert!(hits > n, "{hits} hits for {n} requests");
    assert!(retried > 0);
    assert!(
        counts.get("200").copied().unwrap_or(0) > n / 2,
        "{counts:?}"
    );
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
}
