//! resile-ratelimit end to end: the server layer in a real axum / hyper server on 127.0.0.1, and
//! the client layer in front of real hyper and reqwest clients.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use resile_ratelimit::server::{HeaderKey, PeerIp};
use resile_ratelimit::{Quota, RateLimitLayer, ThrottleLayer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::{Layer, ServiceBuilder, ServiceExt};

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("nonzero")
}

/// A server task on a loopback port, stopped on drop.
struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` with axum's connect info (`ConnectInfo<SocketAddr>` in every request, what
/// `PeerIp` reads with the `axum` feature).
async fn serve_axum(router: Router) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });
    Server { addr, task }
}

/// Serves a throttled hyper service, inserting each connection's peer `SocketAddr` into its
/// requests (what `PeerIp` reads without the axum feature).
async fn serve_hyper(layer: ThrottleLayer<PeerIp>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let svc = layer.layer(tower::service_fn(
        |_req: Request<hyper::body::Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        },
    ));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let svc = svc.clone();
            tokio::spawn(async move {
                let hyper_svc = hyper::service::service_fn(move |mut req| {
                    req.extensions_mut().insert(peer);
                    svc.clone().oneshot(req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper_svc)
                    .await;
            });
        }
    });
    Server { addr, task }
}

type HyperClient = Client<HttpConnector, Full<Bytes>>;

/// A client that opens a new connection for every request.
fn fresh_connections() -> HyperClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http()
}

fn get_req(url: &str) -> Request<Full<Bytes>> {
    Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("request")
}

#[tokio::test]
async fn axum_answers_429_with_retry_after_and_ratelimit_fields() {
    // One request per 900 ms: the second one, right after, waits less than a second.
    let layer = ThrottleLayer::builder(
        Quota::with_interval(Duration::from_millis(900)).expect("quota"),
        PeerIp::new(),
    )
    .policy_name("e2e")
    .build();
    let router = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer);
    let server = serve_axum(router).await;
    let client = fresh_connections();

    let res = client
        .request(get_req(&server.url("/")))
        .await
        .expect("first");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["ratelimit-policy"], "\"e2e\";q=1;w=1");
    assert_eq!(res.headers()["ratelimit"], "\"e2e\";r=0;t=1");

    let res = client
        .request(get_req(&server.url("/")))
        .await
        .expect("second");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // A sub-second wait is announced as 1 second, never 0.
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["ratelimit"], "\"e2e\";r=0;t=1");
    assert_eq!(res.headers()["ratelimit-policy"], "\"e2e\";q=1;w=1");
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .expect("body")
        .to_bytes();
    assert!(body.is_empty());
}

#[tokio::test]
async fn the_limit_holds_across_connections_and_clones() {
    // Five per minute for the whole client (all requests come from 127.0.0.1).
    let layer = ThrottleLayer::new(Quota::per_minute(nz(5)), PeerIp::new());
    let router = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer.clone());
    let server = serve_axum(router).await;
    // A second server built from a clone of the same layer shares the buckets.
    let router2 = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer.clone());
    let server2 = serve_axum(router2).await;

    let mut tasks = Vec::new();
    for i in 0..16 {
        let url = if i % 2 == 0 {
            server.url("/")
        } else {
            server2.url("/")
        };
        tasks.push(tokio::spawn(async move {
            // Every request on its own connection (its own client).
            let res = fresh_connections()
                .request(get_req(&url))
                .await
                .expect("request");
            res.status()
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.expect("task") {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, limited), (5, 11));
    assert_eq!(layer.store().len(), 1);
}

#[tokio::test]
async fn hyper_server_keys_on_the_peer_or_a_header() {
    let server = serve_hyper(ThrottleLayer::new(Quota::per_minute(nz(2)), PeerIp::new())).await;
    let client = fresh_connections();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let res = client
            .request(get_req(&server.url("/")))
            .await
            .expect("request");
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);

    // Keyed on an API key header: each key has its own bucket, over one keep-alive connection.
    let api_key = HeaderName::from_static("x-api-key");
    let layer = ThrottleLayer::new(Quota::per_minute(nz(1)), HeaderKey::new(api_key.clone()));
    let router = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer);
    let server = serve_axum(router).await;
    let client: HyperClient = Client::builder(TokioExecutor::new()).build_http();
    let mut statuses = Vec::new();
    for key in ["a", "b", "a", "b", "c"] {
        let req = Request::get(server.url("/"))
            .header(&api_key, key)
            .body(Full::new(Bytes::new()))
            .expect("request");
        statuses.push(
            client
                .request(req)
                .await
                .expect("request")
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 429, 429, 200]);
}

#[tokio::test]
async fn the_client_obeys_the_servers_429() {
    // The server: one request per second. The client: a generous local quota, but it obeys.
    let router = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(ThrottleLayer::new(Quota::per_second(nz(1)), PeerIp::new()));
    let server = serve_axum(router).await;
    let client = ServiceBuilder::new()
        .layer(RateLimitLayer::new(Quota::per_second(nz(100))))
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    let res = client
        .clone()
        .oneshot(get_req(&server.url("/")))
        .await
        .expect("first");
    assert_eq!(res.status(), StatusCode::OK);
    let res = client
        .clone()
        .oneshot(get_req(&server.url("/")))
        .await
        .expect("second");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "1");

    // The 429 paused the shared limiter: a clone's next request waits ~1 s, then passes.
    let start = Instant::now();
    let res = client
        .clone()
        .oneshot(get_req(&server.url("/")))
        .await
        .expect("third");
    let waited = start.elapsed();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        waited >= Duration::from_millis(900),
        "the client did not wait for the server: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
}

#[tokio::test]
async fn a_reqwest_client_obeys_the_servers_429() {
    // The server: `429` with `Retry-After: 1` to the first request, then `200`.
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let router = Router::new().route(
        "/",
        get(move || {
            let first = c.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "1")],
                        "slow down",
                    )
                        .into_response()
                } else {
                    "ok".into_response()
                }
            }
        }),
    );
    let server = serve_axum(router).await;
    // `reqwest::Client` under the layer as it is: the layer reads `reqwest::Response`s.
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client");
    let client = ServiceBuilder::new()
        .layer(RateLimitLayer::new(Quota::per_second(nz(100))))
        .service(http.clone());

    let res: reqwest::Response = client
        .clone()
        .oneshot(http.get(server.url("/")).build().expect("request"))
        .await
        .expect("first");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "1");

    // The 429 paused the shared limiter: a clone's next request waits ~1 s, then passes.
    let start = Instant::now();
    let res = client
        .clone()
        .oneshot(http.get(server.url("/")).build().expect("request"))
        .await
        .expect("second");
    let waited = start.elapsed();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.expect("body"), "ok");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(
        waited >= Duration::from_millis(900),
        "the client did not wait for the server: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
}
