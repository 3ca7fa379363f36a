//! Shared helpers for resile's end-to-end tests: scripted HTTP servers on 127.0.0.1.
//!
//! - [`ScriptedServer`]: a real hyper server that answers each request with the next [`Step`]
//!   of a script (a status with headers, a delay, a dropped connection), then `200 OK`, and
//!   records every request it saw.
//! - [`FnServer`]: a real hyper server running an async closure over the buffered request, for
//!   tests that need logic on the server (the chaos run).
//! - [`serve_axum`]: an axum router on a loopback port.
//! - [`hyper_client`] / [`reqwest_client`]: plain clients for those servers.
//!
//! Every server listens on an ephemeral port of 127.0.0.1, serves HTTP/1.1 with keep-alive, and
//! stops (with all its connections) when dropped.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// The hyper-util client type the tests use.
pub type HyperClient = Client<HttpConnector, Full<Bytes>>;

/// A plain hyper-util client (HTTP/1.1, keep-alive pool) for loopback servers.
pub fn hyper_client() -> HyperClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http()
}

/// A plain reqwest client for loopback servers (no proxy lookup, no TLS).
pub fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a scripted server does with one request.
#[derive(Debug, Clone)]
pub struct Step {
    action: Action,
    delay: Duration,
}

#[derive(Debug, Clone)]
enum Action {
    Reply {
        status: StatusCode,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    },
    Drop,
}

impl Step {
    /// Answer with `status` and an empty body.
    ///
    /// # Panics
    ///
    /// If `status` is not in 100..=999 (a mistake in the test itself).
    pub fn status(status: u16) -> Step {
        let status = StatusCode::from_u16(status).expect("a valid status in the test script");
        Step {
            action: Action::Reply {
                status,
                headers: Vec::new(),
                body: Bytes::new(),
            },
            delay: Duration::ZERO,
        }
    }

    /// Answer `200 OK` with `body`.
    pub fn ok(body: &'static str) -> Step {
        Step::status(200).body(body)
    }

    /// Close the connection without answering (the client sees an incomplete message).
    pub fn drop_connection() -> Step {
        Step {
            action: Action::Drop,
            delay: Duration::ZERO,
        }
    }

    /// Adds a response header.
    ///
    /// # Panics
    ///
    /// If the name or value is not valid in HTTP (a mistake in the test itself).
    pub fn header(mut self, name: &str, value: &str) -> Step {
        if let Action::Reply { headers, .. } = &mut self.action {
            headers.push((
                HeaderName::try_from(name).expect("a valid header name in the test script"),
                HeaderValue::try_from(value).expect("a valid header value in the test script"),
            ));
        }
        self
    }

    /// Sets the response body.
    pub fn body(mut self, body: &'static str) -> Step {
        if let Action::Reply { body: b, .. } = &mut self.action {
            *b = Bytes::from_static(body.as_bytes());
        }
        self
    }

    /// Waits this long before acting.
    pub fn after(mut self, delay: Duration) -> Step {
        self.delay = delay;
        self
    }
}

/// A request as a server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: Method,
    /// The path and query.
    pub path: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// When it arrived, since the server started.
    pub at: Duration,
}

struct Scripted {
    script: Mutex<VecDeque<Step>>,
    seen: Mutex<Vec<Seen>>,
    started: tokio::time::Instant,
}

/// A hyper server on 127.0.0.1 answering requests from a script; see [`Step`].
///
/// Requests after the end of the script get `200 OK` with the body `done`.
pub struct ScriptedServer {
    state: Arc<Scripted>,
    server: FnServer,
}

impl std::fmt::Debug for ScriptedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedServer")
            .field("addr", &self.server.addr)
            .field("hits", &self.hits())
            .finish()
    }
}

impl ScriptedServer {
    /// Starts a server that plays `script`.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub async fn start(script: impl IntoIterator<Item = Step>) -> ScriptedServer {
        let state = Arc::new(Scripted {
            script: Mutex::new(script.into_iter().collect()),
            seen: Mutex::new(Vec::new()),
            started: tokio::time::Instant::now(),
        });
        let s = state.clone();
        let server = FnServer::start(move |req: Request<Bytes>| {
            let s = s.clone();
            async move {
                let step = lock(&s.script).pop_front();
                let (parts, body) = req.into_parts();
                lock(&s.seen).push(Seen {
                    method: parts.method,
                    path: parts
                        .uri
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    headers: parts.headers,
                    body,
                    at: s.started.elapsed(),
                });
                let step = step.unwrap_or_else(|| Step::ok("done"));
                if !step.delay.is_zero() {
                    tokio::time::sleep(step.delay).await;
                }
                match step.action {
                    Action::Drop => Err(DropConnection),
                    Action::Reply {
                        status,
                        headers,
                        body,
                    } => {
                        let mut res = Response::new(Full::new(body));
                        *res.status_mut() = status;
                        for (name, value) in headers {
                            res.headers_mut().append(name, value);
                        }
                        Ok(res)
                    }
                }
            }
        })
        .await;
        ScriptedServer { state, server }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// How many requests reached the server (whatever it did with them).
    pub fn hits(&self) -> u64 {
        self.server.hits()
    }

    /// Every request the server saw, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state.seen).clone()
    }

    /// How many script steps are left.
    pub fn remaining(&self) -> usize {
        lock(&self.state.script).len()
    }
}

/// Returned by an [`FnServer`] handler to close the connection without a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the test server dropped the connection")
    }
}

impl std::error::Error for DropConnection {}

/// A hyper server on 127.0.0.1 running an async handler over buffered requests.
///
/// A handler returning `Err(DropConnection)` makes hyper close the connection without writing
/// a response. Stops, with every connection, when dropped.
pub struct FnServer {
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FnServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnServer")
            .field("addr", &self.addr)
            .field("hits", &self.hits())
            .finish()
    }
}

impl FnServer {
    /// Starts a server calling `handler` for every request (its body read in full first).
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub async fn start<F, Fut>(handler: F) -> FnServer
    where
        F: Fn(Request<Bytes>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Full<Bytes>>, DropConnection>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let hits = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let handler = Arc::new(handler);
        let (h, c) = (hits.clone(), connections.clone());
        let task = tokio::spawn(async move {
            // Dropping the set (when the accept task is aborted) aborts every connection.
            let mut conns = JoinSet::new();
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                    Some(_) = conns.join_next(), if !conns.is_empty() => continue,
                };
                c.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let hits = h.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        let hits = hits.clone();
                        async move {
                            hits.fetch_add(1, Ordering::Relaxed);
                            let (parts, body) = req.into_parts();
                            let body = match body.collect().await {
                                Ok(b) => b.to_bytes(),
                                Err(_) => return Err(DropConnection),
                            };
                            handler(Request::from_parts(parts, body)).await
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FnServer {
            addr,
            hits,
            connections,
            task,
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// How many requests reached the handler's connection (counted before the body is read).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// How many connections the server accepted.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for FnServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An axum router served on 127.0.0.1 (with the peer address available to extractors through
/// `ConnectInfo<SocketAddr>`); stops when dropped.
pub struct AxumServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for AxumServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AxumServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl AxumServer {
    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for AxumServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` on a loopback port.
///
/// # Panics
///
/// If no loopback port can be bound.
pub async fn serve_axum(router: axum::Router) -> AxumServer {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    let task = tokio::spawn(async move {
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });
    AxumServer { addr, task }
}

/// A `GET url` request with an empty body, for [`HyperClient`].
///
/// # Panics
///
/// If `url` is not a valid URI (a mistake in the test itself).
pub fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("a valid request")
}

/// A request with a body, for [`HyperClient`].
///
/// # Panics
///
/// If `url` is not a valid URI (a mistake in the test itself).
pub fn request(method: Method, url: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(body.into()))
        .expect("a valid request")
}

/// Reads a whole response body.
///
/// # Errors
///
/// The body's error, boxed.
pub async fn body_bytes<B>(res: Response<B>) -> Result<Bytes, tower::BoxError>
where
    B: http_body::Body,
    B::Error: Into<tower::BoxError>,
{
    Ok(res
        .into_body()
        .collect()
        .await
        .map_err(Into::into)?
        .to_bytes())
}

/// FNV-1a 64 over `data`: the checksum end-to-end tests put in a header so the server can verify
/// that a body arrived whole.
pub fn checksum(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A `Service` error never produced by a handler (for `Infallible`-typed plumbing).
pub type NoError = Infallible;

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn scripted_server_plays_its_script_then_answers_ok() {
        let server = ScriptedServer::start([
            Step::status(503).header("retry-after", "1"),
            Step::drop_connection(),
        ])
        .await;
        let client = hyper_client();
        let res = client.request(get(&server.url("/a"))).await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "1");
        let err = client.request(get(&server.url("/b"))).await.unwrap_err();
        assert!(!err.is_connect(), "{err:?}");
        let res = client
            .clone()
            .oneshot(request(Method::POST, &server.url("/c"), "xyz"))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(body_bytes(res).await.unwrap(), "done");
        let seen = server.seen();
        assert_eq!(server.hits(), 3);
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[2].method, Method::POST);
        assert_eq!(seen[2].path, "/c");
        assert_eq!(seen[2].body, "xyz");
        assert_eq!(server.remaining(), 0);
    }

    #[test]
    fn checksum_is_fnv1a() {
        assert_eq!(checksum(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(checksum(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(checksum(b"ab"), checksum(b"ba"));
    }
}
