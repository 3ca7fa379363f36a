//! resile's client stack in a `reqwest_middleware::ClientWithMiddleware` (feature
//! `reqwest-middleware`).
//!
//! ```text
//! cargo run -p resile --features reqwest-middleware --example reqwest_middleware
//! ```
//!
//! Starts a small server on 127.0.0.1 that answers `503` with `Retry-After: 1` to the first
//! request and `200` afterwards. The client has resile's stack, then a middleware that prints
//! each attempt it passes on: every retry goes through the middleware registered after resile's.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Extensions, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use reqwest_middleware::{ClientBuilder, Middleware, Next};
use resile::reqwest_middleware::ResileMiddleware;
use tokio::net::TcpListener;

/// A server that is unavailable for its first request.
async fn flaky_server() -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let calls = Arc::new(AtomicU32::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let calls = calls.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                    let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                    async move {
                        let res = if first {
                            Response::builder()
                                .status(StatusCode::SERVICE_UNAVAILABLE)
                                .header("retry-after", "1")
                                .body(Full::new(Bytes::new()))
                        } else {
                            Response::builder().body(Full::new(Bytes::from("hello")))
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

/// Prints each request it passes on and the status it got.
struct PrintAttempts(Instant);

#[async_trait::async_trait]
impl Middleware for PrintAttempts {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let line = format!("{} {}", req.method(), req.url());
        let res = next.run(req, extensions).await;
        match &res {
            Ok(res) => println!(
                "  {:>6.3} s  {line} -> {}",
                self.0.elapsed().as_secs_f64(),
                res.status()
            ),
            Err(err) => println!(
                "  {:>6.3} s  {line} -> {err}",
                self.0.elapsed().as_secs_f64()
            ),
        }
        res
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let addr = flaky_server().await?;
    let start = Instant::now();
    let client = ClientBuilder::new(reqwest::Client::builder().no_proxy().build()?)
        // retry (backoff + Retry-After + budget) > breaker > server pause > 5 s per attempt
        .with(ResileMiddleware::new(
            resile::stack::http_client().attempt_timeout(Duration::from_secs(5)),
        ))
        .with(PrintAttempts(start))
        .build();

    println!("GET http://{addr}/, through resile's stack, then the printing middleware:");
    let res = client.get(format!("http://{addr}/")).send().await?;
    println!(
        "caller: {} {:?} after {:.1} s (the server asked for 1 s)",
        res.status(),
        res.text().await?,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
