//! A reqwest client behind resile's client stack (feature `reqwest`).
//!
//! ```text
//! cargo run -p resile --example reqwest_client --features reqwest
//! ```
//!
//! `reqwest::Client` is a `tower::Service<reqwest::Request>` and goes under the stack as it is:
//! the retry layer copies requests with `try_clone`, the classifier reads `reqwest::Response` and
//! `reqwest::Error`, and the rate limiter reads the server's hints from `reqwest::Response`.
//!
//! Starts a small server on 127.0.0.1 that answers `429` with `Retry-After: 1` to the first
//! request, then sends a `POST` (not idempotent, but a `429` means it was not processed, so it is
//! retried) and prints what happened.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use resile::retry::RetryPolicy;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

/// A server that asks its first caller to come back in a second.
async fn pacing_server() -> std::io::Result<std::net::SocketAddr> {
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
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        let body = body.unwrap_or_default();
                        println!(
                            "  server: request #{} with body {:?}",
                            n + 1,
                            String::from_utf8_lossy(&body)
                        );
                        let res = if n == 0 {
                            Response::builder()
                                .status(StatusCode::TOO_MANY_REQUESTS)
                                .header("retry-after", "1")
                                .body(Full::new(Bytes::new()))
                        } else {
                            Response::builder()
                                .status(StatusCode::CREATED)
                                .body(Full::new(Bytes::from("order created")))
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
    let addr = pacing_server().await?;

    let http = reqwest::Client::builder().no_proxy().build()?;
    let policy = RetryPolicy::builder()
        .on_retry(|e| {
            println!(
                "  client: attempt {} after {:?} (status {:?})",
                e.attempt, e.wait, e.status
            )
        })
        .build();
    let client = ServiceBuilder::new()
        .layer(
            resile::stack::http_client()
                .retry(policy)
                .attempt_timeout(Duration::from_secs(5)),
        )
        .service(http.clone());

    let start = Instant::now();
    let req = http
        .post(format!("http://{addr}/orders"))
        .body("{\"item\": 42}")
        .build()?;
    let res = client.oneshot(req).await?;
    let status = res.status();
    let body = res.text().await?;
    println!(
        "\n{status} {body:?} after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
