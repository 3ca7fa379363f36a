//! A hyper-util client behind resile's client stack.
//!
//! ```text
//! cargo run -p resile --example hyper_client
//! ```
//!
//! Starts a small server on 127.0.0.1 that answers `503` with `Retry-After: 1` to the first
//! request and `200` afterwards, sends a `GET` through the stack, and prints what happened.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use resile::retry::RetryPolicy;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

/// A server that is unavailable for its first request.
async fn flaky_server() -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let calls = Arc::new(AtomicU32::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let calls = calls.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    async move {
                        println!(
                            "  server: {} {} (request #{})",
                            req.method(),
                            req.uri(),
                            n + 1
                        );
                        let res = if n == 0 {
                            Response::builder()
                                .status(StatusCode::SERVICE_UNAVAILABLE)
                                .header("retry-after", "1")
                                .body(Full::new(Bytes::new()))
                        } else {
                            Response::builder()
                                .body(Full::new(Bytes::from("hello from the server")))
                        };
                        Ok::<_, Infallible>(res.unwrap_or_default())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

#[tokio::main]
async fn main() -> Result<(), tower::BoxError> {
    let addr = flaky_server().await?;

    // The plain client...
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    // ...behind the stack: retry > breaker > limiter > 5 s per attempt.
    let policy = RetryPolicy::builder()
        .on_retry(|e| {
            println!(
                "  client: attempt {} after {:?} (status {:?}, server hint {:?})",
                e.attempt, e.wait, e.status, e.server_hint
            )
        })
        .build();
    let stack = resile::stack::http_client()
        .retry(policy)
        .attempt_timeout(Duration::from_secs(5));
    let breaker = stack.breaker_handle();
    let client = ServiceBuilder::new().layer(stack).service(client);

    let start = Instant::now();
    let req = Request::get(format!("http://{addr}/hello")).body(Full::new(Bytes::new()))?;
    let res = client.clone().oneshot(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    println!(
        "\n{status} {:?} after {:.1} s; breaker of {addr}: {:?}, {:?}",
        String::from_utf8_lossy(&body),
        start.elapsed().as_secs_f64(),
        breaker.state(&addr.to_string()),
        breaker.metrics()
    );
    Ok(())
}
