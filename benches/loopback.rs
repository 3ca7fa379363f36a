//! The loopback set-up of `benches/stack.rs`, shared with the callgrind driver
//! (`benches/callgrind.rs`) so that both measure the same clients against the same server.
//!
//! - [`server_and_client_runtime()`]: a hyper server on 127.0.0.1 answering `200 ok`, on a
//!   thread and current-thread runtime of its own, and the clients' runtime;
//! - [`bare()`] and [`bare_timeout()`]: the bare hyper-util client, and the same with the
//!   stack's per-attempt timeout alone (the stacks are layered on [`bare()`] by the benches);
//! - [`send_batch()`]: [`BATCH`] GETs through a client, one after the other or all at once,
//!   each body read whole;
//! - [`ShareOfBare`] and [`paired_batches()`]: a contender's throughput as a share of the bare
//!   client's, measured on batches of the two sent in alternation (see [`ShareOfBare`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use resile::stack::DEFAULT_ATTEMPT_TIMEOUT;
use resile_retry::AttemptTimeoutLayer;
use tower::{Layer, Service, ServiceExt};

use crate::contenders::Req;

/// Requests per batch.
pub const BATCH: usize = 64;

/// Starts a hyper server on 127.0.0.1 answering `200 ok` to everything, on a thread and
/// current-thread runtime of its own (one core for the server, one for the client on a 2-core
/// machine), and returns its address.
fn spawn_server() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let server_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        server_rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a loopback port");
            let addr = listener.local_addr().expect("an address");
            if tx.send(addr).is_err() {
                return;
            }
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        })
    });
    rx.recv().expect("the server's address")
}

/// Starts the server (`spawn_server()`) and returns its URI and a current-thread runtime for
/// the clients (to run in the calling thread: one core for the server, one for the clients).
pub fn server_and_client_runtime() -> (http::Uri, tokio::runtime::Runtime) {
    let addr = spawn_server();
    let uri = format!("http://{addr}/").parse().expect("a uri");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    (uri, rt)
}

/// The bare hyper-util client (keep-alive pool).
pub type Bare = Client<HttpConnector, Full<Bytes>>;

/// A new bare client; call it inside the client's runtime.
pub fn bare() -> Bare {
    Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()
}

/// The bare client with the stack's per-attempt timeout alone: the timer any client with a
/// timeout pays per request sent.
pub fn bare_timeout() -> resile_retry::AttemptTimeout<Bare> {
    AttemptTimeoutLayer::new(DEFAULT_ATTEMPT_TIMEOUT).layer(bare())
}

/// Sends [`BATCH`] GETs to `uri` through `svc`, one after the other or all at once, reading
/// every body.
pub async fn send_batch<S>(svc: &S, uri: &http::Uri, concurrent: bool)
where
    S: Service<Req, Response = Response<Incoming>> + Clone + Send + 'static,
    S::Error: std::fmt::Debug + Send,
    S::Future: Send,
{
    let one = |svc: S| {
        let req = Request::get(uri.clone())
            .body(Full::new(Bytes::new()))
            .expect("a valid request");
        async move {
            let res = svc.oneshot(req).await.expect("a response");
            assert_eq!(res.status(), 200);
            let body = res.into_body().collect().await.expect("a body").to_bytes();
            assert_eq!(body, "ok");
        }
    };
    if concurrent {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..BATCH {
            set.spawn(one(svc.clone()));
        }
        while let Some(r) = set.join_next().await {
            r.expect("a request task");
        }
    } else {
        for _ in 0..BATCH {
            one(svc.clone()).await;
        }
    }
}

/// A criterion measurement whose value is a contender's throughput as a percentage of the bare
/// client's, each iteration one batch of each sent in alternation (see [`paired_batches()`]).
///
/// Why: the throughputs of two benchmarks run one after the other differ by the machine's drift
/// between them (on a shared 2-core machine, up to 3 % for the same client from one run to the
/// next), which is as large as what is measured. Batches of the two clients alternated every
/// millisecond or so share that drift, and their ratio cancels it. A bare client measured against
/// another bare client (the `bare` contender of the paired group) shows what is left: the
/// method's own error.
///
/// Only for `iter_custom` (with [`paired_batches()`]): `iter`'s start and end have no ratio to
/// give and measure nothing (zero).
#[derive(Debug, Clone, Copy, Default)]
pub struct ShareOfBare;

impl Measurement for ShareOfBare {
    type Intermediate = ();
    type Value = f64;

    fn start(&self) -> Self::Intermediate {}

    fn end(&self, _: Self::Intermediate) -> Self::Value {
        0.0
    }

    fn add(&self, v1: &f64, v2: &f64) -> f64 {
        v1 + v2
    }

    fn zero(&self) -> f64 {
        0.0
    }

    fn to_f64(&self, value: &f64) -> f64 {
        *value
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &PercentOfBare
    }
}

/// Formats [`ShareOfBare`] values: percent of the bare client's throughput.
struct PercentOfBare;

impl ValueFormatter for PercentOfBare {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        "% of bare"
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        _: &Throughput,
        _values: &mut [f64],
    ) -> &'static str {
        "% of bare"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "percent"
    }
}

/// `iters` iterations of [`ShareOfBare`]: each sends one concurrent batch through `bare` and
/// one through `contender` (in turn the first) and times each. Returns `iters` times the bare
/// batches' total time as a percentage of the contender's (the contender's throughput as a share
/// of the bare client's), so that criterion's per-iteration value is that share over the sample.
/// (A ratio of totals, not a mean of each iteration's ratio: the mean of ratios of noisy times
/// is biased upwards, +0.4 % for a bare client against another.)
pub fn paired_batches<B, S>(
    rt: &tokio::runtime::Runtime,
    bare: &B,
    contender: &S,
    uri: &http::Uri,
    iters: u64,
) -> f64
where
    B: Service<Req, Response = Response<Incoming>> + Clone + Send + 'static,
    B::Error: std::fmt::Debug + Send,
    B::Future: Send,
    S: Service<Req, Response = Response<Incoming>> + Clone + Send + 'static,
    S::Error: std::fmt::Debug + Send,
    S::Future: Send,
{
    let (mut bare_total, mut contender_total) = (Duration::ZERO, Duration::ZERO);
    for i in 0..iters {
        // In turn first: whatever the order costs falls on both alike.
        for bare_now in [i % 2 == 0, i % 2 != 0] {
            let start = Instant::now();
            if bare_now {
                rt.block_on(send_batch(bare, uri, true));
                bare_total += start.elapsed();
            } else {
                rt.block_on(send_batch(contender, uri, true));
                contender_total += start.elapsed();
            }
        }
    }
    iters as f64 * 100.0 * bare_total.as_secs_f64() / contender_total.as_secs_f64()
}
