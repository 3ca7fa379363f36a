//! The loopback set-up of `benches/stack.rs`, shared with the callgrind driver
//! (`benches/callgrind.rs`) so that both measure the same clients against the same server.
//!
//! - [`spawn_server()`]: a hyper server on 127.0.0.1 answering `200 ok`, on a thread and
//!   current-thread runtime of its own;
//! - [`bare()`] and [`bare_timeout()`]: the bare hyper-util client, and the same with the
//!   stack's per-attempt timeout alone (the stacks are layered on [`bare()`] by the benches);
//! - [`send_batch()`]: [`BATCH`] GETs through a client, one after the other or all at once,
//!   each body read whole.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
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
pub fn spawn_server() -> SocketAddr {
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
