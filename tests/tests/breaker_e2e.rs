//! End to end: a real hyper server on 127.0.0.1 that fails with 500 for a while and then
//! recovers; a hyper-util client behind resile-breaker, driven by concurrent callers.
//!
//! Checks that once the breaker opens the server sees at most the configured probes per open
//! period (plus the calls already in flight when it opened), and that traffic resumes after the
//! server recovers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use resile_breaker::{BreakerOpen, CircuitBreakerLayer, State, Transition};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};

/// A server answering 500 while `failing`, 200 after; it notes when each request arrived.
struct FlakyServer {
    addr: SocketAddr,
    failing: Arc<AtomicBool>,
    hits: Arc<Mutex<Vec<Instant>>>,
}

impl FlakyServer {
    async fn start() -> FlakyServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let failing = Arc::new(AtomicBool::new(true));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (f, h) = (failing.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (f, h) = (f.clone(), h.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |_req: Request<Incoming>| {
                        h.lock().unwrap().push(Instant::now());
                        let status = if f.load(Ordering::SeqCst) {
                            StatusCode::INTERNAL_SERVER_ERROR
                        } else {
                            StatusCode::OK
                        };
                        async move {
                            let mut res = Response::new(Full::new(Bytes::from_static(b"hi")));
                            *res.status_mut() = status;
                            Ok::<_, Infallible>(res)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FlakyServer {
            addr,
            failing,
            hits,
        }
    }

    fn hits_between(&self, from: Instant, to: Instant) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|t| **t >= from && **t < to)
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_only_while_open_and_traffic_resumes_after_recovery() {
    const CALLERS: usize = 4;
    const PROBES: u32 = 1;
    let open_for = Duration::from_millis(150);
    let server = FlakyServer::start().await;

    let transitions: Arc<Mutex<Vec<(Instant, State, State)>>> = Arc::default();
    let log = transitions.clone();
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(3)
        .open_duration(open_for)
        .half_open_probes(PROBES)
        .on_transition(move |t: &Transition| {
            log.lock().unwrap().push((Instant::now(), t.from, t.to))
        })
        .build()
        .unwrap();
    let breaker = layer.handle();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = layer.layer(client);

    let url = format!("http://{}/", server.addr);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, rejected, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let mut svc = svc.clone();
            let (url, stop) = (url.clone(), stop.clone());
            let (ok, rejected, failed) = (ok.clone(), rejected.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let req = Request::get(url.as_str())
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    match svc.ready().await.unwrap().call(req).await {
                        Ok(res) => {
                            let status = res.status();
                            res.into_body().collect().await.unwrap();
                            if status.is_success() {
                                ok.fetch_add(1, Ordering::SeqCst);
                            } else {
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Err(e) => {
                            assert!(e.is::<BreakerOpen>(), "unexpected error: {e}");
                            rejected.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();

    // Failing for 800 ms: about five open periods.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let recovered_at = Instant::now();
    server.failing.store(false, Ordering::SeqCst);
    // Recovered for 700 ms: enough to finish the open period, probe, close and carry traffic.
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::SeqCst);
    for c in callers {
        c.await.unwrap();
    }
    let end = Instant::now();

    let transitions = transitions.lock().unwrap().clone();
    let first_open = transitions
        .iter()
        .find(|(_, _, to)| *to == State::Open)
        .map(|(t, _, _)| *t)
        .expect("the breaker opened");
    assert!(first_open < recovered_at);

    // Each open period: no call reaches the server until it ends, then at most PROBES probes
    // until the next transition. Only the calls in flight when the breaker first opened
    // (admitted while closed, at most CALLERS - 1) may land in between.
    let half_opens_while_failing = transitions
        .iter()
        .filter(|(t, _, to)| *to == State::HalfOpen && *t < recovered_at)
        .count();
    let hits_after_open = server.hits_between(first_open, recovered_at);
    assert!(
        hits_after_open <= half_opens_while_failing * PROBES as usize + (CALLERS - 1),
        "{hits_after_open} calls reached the failing server after the breaker opened, for \
         {half_opens_while_failing} half-open periods: {transitions:?}"
    );
    assert!(
        half_opens_while_failing >= 2,
        "several open periods: {transitions:?}"
    );
    for pair in transitions.windows(2) {
        let ((opened, _, to), (next, _, _)) = (pair[0], pair[1]);
        if to == State::Open {
            assert!(
                next.duration_since(opened) >= open_for,
                "an open period ended early: {transitions:?}"
            );
            let straggler_bound = if opened == first_open { CALLERS - 1 } else { 0 };
            assert!(
                server.hits_between(opened + Duration::from_millis(5), next) <= straggler_bound,
                "the server was called during an open period: {transitions:?}"
            );
        }
    }

    // Recovery: closed, and traffic flows again.
    let closed_at = transitions
        .iter()
        .find(|(t, _, to)| *to == State::Closed && *t >= recovered_at)
        .map(|(t, _, _)| *t)
        .expect("the breaker closed after the server recovered");
    assert!(closed_at.duration_since(recovered_at) <= open_for + Duration::from_millis(400));
    assert_eq!(breaker.state(), State::Closed);
    let hits_after_close = server.hits_between(closed_at, end);
    assert!(
        hits_after_close >= 20,
        "traffic resumed: {hits_after_close} calls"
    );
    assert!(rejected.load(Ordering::SeqCst) > 0);
    assert!(ok.load(Ordering::SeqCst) >= 20);
    let m = breaker.metrics();
    assert_eq!(m.rejections, rejected.load(Ordering::SeqCst));
    assert_eq!(m.successes, ok.load(Ordering::SeqCst));
    assert_eq!(m.failures, failed.load(Ordering::SeqCst));
}
