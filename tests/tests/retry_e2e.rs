//! resile-retry end to end: a real hyper server on 127.0.0.1, driven through a hyper-util client
//! and a reqwest client, each wrapped in the retry layer.
//!
//! Every scenario runs once per client. Waits are real (the server's `Retry-After: 1`), so the
//! elapsed time is checked within a loose upper margin for a loaded machine.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use resile_retry::{
    BoxError, Exponential, GiveUp, Jitter, Retry, RetryEvent, RetryLayer, RetryPolicy,
};
use resile_tests::{hyper_client, reqwest_client, ScriptedServer, Step};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};

/// Which client the layer wraps.
#[derive(Debug, Clone, Copy)]
enum Via {
    Hyper,
    Reqwest,
}

/// What one call saw: the final status and body, or the error; and the layer's events.
struct Outcome {
    result: Result<(StatusCode, Bytes), BoxError>,
    elapsed: Duration,
    retries: Vec<RetryEvent>,
    give_ups: Vec<GiveUp>,
}

/// A short exponential backoff without jitter: any wait near a second is the server's hint.
fn policy(retries: Arc<Mutex<Vec<RetryEvent>>>, give_ups: Arc<Mutex<Vec<GiveUp>>>) -> RetryPolicy {
    let backoff = Exponential::builder()
        .initial(Duration::from_millis(20))
        .jitter(Jitter::None)
        .max_retries(3)
        .build()
        .expect("a valid backoff");
    RetryPolicy::builder()
        .backoff(backoff)
        .on_retry(move |e| retries.lock().unwrap().push(*e))
        .on_give_up(move |e| give_ups.lock().unwrap().push(e.cause))
        .build()
}

/// Sends one request through a fresh client wrapped in the retry layer.
async fn send(via: Via, method: Method, url: &str, body: &'static str) -> Outcome {
    let retries = Arc::new(Mutex::new(Vec::new()));
    let give_ups = Arc::new(Mutex::new(Vec::new()));
    let layer = RetryLayer::new(policy(retries.clone(), give_ups.clone()));
    let start = Instant::now();
    let result = match via {
        Via::Hyper => {
            let client: Retry<_> = layer.layer(hyper_client());
            let req = http::Request::builder()
                .method(method)
                .uri(url)
                .body(Full::new(Bytes::from_static(body.as_bytes())))
                .expect("a valid request");
            match client.oneshot(req).await {
                Ok(res) => {
                    let status = res.status();
                    res.into_body()
                        .collect()
                        .await
                        .map(|b| (status, b.to_bytes()))
                        .map_err(BoxError::from)
                }
                Err(e) => Err(e),
            }
        }
        Via::Reqwest => {
            let http = reqwest_client();
            let client = layer.layer(http.clone());
            let req = http
                .request(method, url)
                .body(body)
                .build()
                .expect("a valid request");
            match client.oneshot(req).await {
                Ok(res) => {
                    let status = res.status();
                    res.bytes()
                        .await
                        .map(|b| (status, b))
                        .map_err(BoxError::from)
                }
                Err(e) => Err(e),
            }
        }
    };
    let elapsed = start.elapsed();
    let retries = retries.lock().unwrap().clone();
    let give_ups = give_ups.lock().unwrap().clone();
    Outcome {
        result,
        elapsed,
        retries,
        give_ups,
    }
}

/// Generous for a shared, loaded machine; the lower bounds are exact.
const SLACK: Duration = Duration::from_millis(900);

async fn retry_after_seconds_then_ok(via: Via) {
    let server = ScriptedServer::start([Step::status(503).header("retry-after", "1")]).await;
    let out = send(via, Method::GET, &server.url("/item"), "").await;
    let (status, body) = out.result.expect("a response");
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"done"[..]));
    assert_eq!(server.hits(), 2);
    assert!(out.elapsed >= Duration::from_secs(1), "{:?}", out.elapsed);
    assert!(
        out.elapsed < Duration::from_secs(1) + SLACK,
        "{:?}",
        out.elapsed
    );
    assert_eq!(out.retries.len(), 1);
    assert_eq!(out.retries[0].wait, Duration::from_secs(1));
    assert_eq!(out.retries[0].server_hint, Some(Duration::from_secs(1)));
    let seen = server.seen();
    assert!(seen[1].at - seen[0].at >= Duration::from_secs(1));
}

#[tokio::test]
async fn hyper_503_retry_after_seconds_then_200() {
    retry_after_seconds_then_ok(Via::Hyper).await;
}

#[tokio::test]
async fn reqwest_503_retry_after_seconds_then_200() {
    retry_after_seconds_then_ok(Via::Reqwest).await;
}

async fn too_many_requests_with_a_date_then_ok(via: Via) {
    // The hint is measured against the response's own `Date`: exactly one second here, whatever
    // the clocks say. A POST is retried after a 429: the server did not process it.
    let date = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let server = ScriptedServer::start([Step::status(429)
        .header("date", resile_retry_after::format_http_date(date).as_ref())
        .header(
            "retry-after",
            resile_retry_after::format_http_date(date + Duration::from_secs(1)).as_ref(),
        )])
    .await;
    let out = send(via, Method::POST, &server.url("/orders"), "order-7").await;
    let (status, _) = out.result.expect("a response");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.hits(), 2);
    let seen = server.seen();
    assert!(seen
        .iter()
        .all(|s| s.method == Method::POST && s.body == "order-7"));
    assert!(out.elapsed >= Duration::from_secs(1), "{:?}", out.elapsed);
    assert!(
        out.elapsed < Duration::from_secs(1) + SLACK,
        "{:?}",
        out.elapsed
    );
    assert_eq!(out.retries[0].status, Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(out.retries[0].wait, Duration::from_secs(1));
}

#[tokio::test]
async fn hyper_429_http_date_then_200() {
    too_many_requests_with_a_date_then_ok(Via::Hyper).await;
}

#[tokio::test]
async fn reqwest_429_http_date_then_200() {
    too_many_requests_with_a_date_then_ok(Via::Reqwest).await;
}

async fn post_answered_500_is_returned(via: Via) {
    let server = ScriptedServer::start([Step::status(500).body("boom")]).await;
    let out = send(via, Method::POST, &server.url("/orders"), "order-8").await;
    let (status, body) = out.result.expect("a response");
    assert_eq!(
        (status, &body[..]),
        (StatusCode::INTERNAL_SERVER_ERROR, &b"boom"[..])
    );
    assert_eq!(server.hits(), 1);
    assert!(out.retries.is_empty());
    assert_eq!(out.give_ups, vec![GiveUp::NotIdempotent]);
    assert!(out.elapsed < SLACK, "{:?}", out.elapsed);
}

#[tokio::test]
async fn hyper_post_500_not_retried() {
    post_answered_500_is_returned(Via::Hyper).await;
}

#[tokio::test]
async fn reqwest_post_500_not_retried() {
    post_answered_500_is_returned(Via::Reqwest).await;
}

async fn get_500_is_retried_with_backoff(via: Via) {
    let server = ScriptedServer::start([Step::status(500), Step::status(502)]).await;
    let out = send(via, Method::GET, &server.url("/item"), "").await;
    assert_eq!(out.result.expect("a response").0, StatusCode::OK);
    assert_eq!(server.hits(), 3);
    let waits: Vec<_> = out.retries.iter().map(|e| e.wait).collect();
    assert_eq!(
        waits,
        [Duration::from_millis(20), Duration::from_millis(40)]
    );
    assert!(out.elapsed >= Duration::from_millis(60));
}

#[tokio::test]
async fn hyper_get_500_502_then_200() {
    get_500_is_retried_with_backoff(Via::Hyper).await;
}

#[tokio::test]
async fn reqwest_get_500_502_then_200() {
    get_500_is_retried_with_backoff(Via::Reqwest).await;
}

async fn dropped_connection_is_retried_for_get(via: Via) {
    let server = ScriptedServer::start([Step::drop_connection()]).await;
    let out = send(via, Method::GET, &server.url("/item"), "").await;
    let (status, body) = out.result.expect("a response");
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"done"[..]));
    assert_eq!(server.hits(), 2);
    assert_eq!(out.retries.len(), 1);
}

#[tokio::test]
async fn hyper_dropped_connection_then_200() {
    dropped_connection_is_retried_for_get(Via::Hyper).await;
}

#[tokio::test]
async fn reqwest_dropped_connection_then_200() {
    dropped_connection_is_retried_for_get(Via::Reqwest).await;
}

/// A raw HTTP/1.1 server that resets (TCP RST) the first `resets` connections once it has read a
/// request's head, then answers `200 ok` and closes.
struct ResetServer {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl ResetServer {
    async fn start(resets: u64) -> ResetServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("an address");
        let requests = Arc::new(AtomicU64::new(0));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let n = seen.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    // Read the head (the bodies here are tiny and arrive with it).
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    if n < resets {
                        let _ = stream.set_zero_linger();
                        drop(stream); // RST
                    } else {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                            .await;
                        let _ = stream.shutdown().await;
                    }
                });
            }
        });
        ResetServer {
            addr,
            requests,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for ResetServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connection_reset(via: Via) {
    // A GET whose connection is reset is retried on a new connection.
    let server = ResetServer::start(1).await;
    let out = send(via, Method::GET, &server.url(), "").await;
    let (status, body) = out.result.expect("a response after the reset");
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
    assert_eq!(server.requests(), 2);
    assert_eq!(out.retries.len(), 1);

    // A POST whose connection is reset may have been processed: the error comes back.
    let server = ResetServer::start(1).await;
    let out = send(via, Method::POST, &server.url(), "pay 10").await;
    assert!(
        out.result.is_err(),
        "a POST must not be replayed after a reset"
    );
    assert_eq!(server.requests(), 1);
    assert!(out.retries.is_empty());
    assert_eq!(out.give_ups, vec![GiveUp::NotIdempotent]);
}

#[tokio::test]
async fn hyper_connection_reset() {
    connection_reset(Via::Hyper).await;
}

#[tokio::test]
async fn reqwest_connection_reset() {
    connection_reset(Via::Reqwest).await;
}

async fn refused_post_is_retried_then_the_error_returned(via: Via) {
    // A port nobody listens on: the POST never reaches a server, so it may be retried.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("an address")
    };
    let out = send(via, Method::POST, &format!("http://{addr}/"), "x").await;
    let err = out.result.expect_err("nothing listens");
    assert_eq!(
        out.retries.len(),
        3,
        "every retry of the backoff is used: {err}"
    );
    assert!(out
        .retries
        .iter()
        .all(|e| e.reason == resile_retry::OutcomeKind::NotSent));
    assert_eq!(out.give_ups, vec![GiveUp::RetriesExhausted]);
}

#[tokio::test]
async fn hyper_refused_post_is_retried() {
    refused_post_is_retried_then_the_error_returned(Via::Hyper).await;
}

#[tokio::test]
async fn reqwest_refused_post_is_retried() {
    refused_post_is_retried_then_the_error_returned(Via::Reqwest).await;
}

#[tokio::test]
async fn reqwest_streaming_body_is_sent_once() {
    // reqwest cannot copy a streaming body: the request goes out once, and the 503 comes back.
    let server = ScriptedServer::start([Step::status(503)]).await;
    let http = reqwest_client();
    let give_ups = Arc::new(Mutex::new(Vec::new()));
    let g = give_ups.clone();
    let layer = RetryLayer::new(
        RetryPolicy::builder()
            .on_give_up(move |e| g.lock().unwrap().push(e.cause))
            .build(),
    );
    let frames = [Ok::<_, std::io::Error>(http_body::Frame::data(
        Bytes::from_static(b"chunk"),
    ))];
    let stream = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    let req = http
        .put(server.url("/upload"))
        .body(reqwest::Body::wrap(stream))
        .build()
        .expect("a request");
    let res = layer.layer(http).oneshot(req).await.expect("a response");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.hits(), 1);
    assert_eq!(server.seen()[0].body, "chunk");
    assert_eq!(*give_ups.lock().unwrap(), vec![GiveUp::NotReplayable]);
}

#[tokio::test]
async fn hyper_streaming_body_in_a_replay_body_is_replayed_whole() {
    use http_body::Frame;
    use resile_retry::ReplayBody;
    let server = ScriptedServer::start([Step::status(503)]).await;
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = (0..8)
        .map(|i| Ok(Frame::data(Bytes::from(vec![b'a' + i as u8; 1000]))))
        .collect();
    let body = ReplayBody::new(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<ReplayBody<_>>();
    let policy = RetryPolicy::builder()
        .backoff(resile_retry::Constant::new(Duration::from_millis(10)))
        .build();
    let req = http::Request::put(server.url("/upload"))
        .body(body)
        .expect("a request");
    let res = RetryLayer::new(policy)
        .layer(client)
        .oneshot(req)
        .await
        .expect("a response");
    assert_eq!(res.status(), StatusCode::OK);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body.len(), 8000);
    assert_eq!(seen[0].body, seen[1].body);
}

#[tokio::test]
async fn the_attempt_header_reaches_the_server() {
    let server = ScriptedServer::start([Step::status(503), Step::status(503)]).await;
    let policy = RetryPolicy::builder()
        .backoff(resile_retry::Constant::new(Duration::from_millis(5)))
        .attempt_header(http::HeaderName::from_static("x-retry-attempt"))
        .build();
    let http = reqwest_client();
    let req = http.get(server.url("/")).build().expect("a request");
    let res = RetryLayer::new(policy)
        .layer(http)
        .oneshot(req)
        .await
        .expect("a response");
    assert_eq!(res.status(), StatusCode::OK);
    let attempts: Vec<_> = server
        .seen()
        .iter()
        .map(|s| s.headers["x-retry-attempt"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
}
