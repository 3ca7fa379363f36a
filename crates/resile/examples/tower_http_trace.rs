//! tower-http's `TraceLayer` on resile's classifier (feature `tower-http`): the trace marks as
//! failures exactly the outcomes the retry layer retries or the breaker counts.
//!
//! ```text
//! cargo run -p resile --features tower-http --example tower_http_trace
//! ```
//!
//! Starts a small server on 127.0.0.1 (`/ok` answers `200`, `/missing` `404`, `/busy` `503`
//! with `Retry-After: 0`), and sends one `GET` to each, and one to a port with nothing
//! listening, through `TraceLayer` > the client stack > hyper-util's client. tower-http calls
//! `on_response` for every response and `on_failure` as well for a failure: the `404` is a
//! response only, the `503` (after its retries) and the refused connection are failures.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use resile::backoff::Constant;
use resile::classify::trace::Failure;
use resile::classify::Classifier;
use resile::retry::RetryPolicy;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::trace::TraceLayer;
use tracing::Span;

async fn server() -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let res = match req.uri().path() {
                        "/ok" => Response::builder().body(Full::new(Bytes::from("ok"))),
                        "/busy" => Response::builder()
                            .status(StatusCode::SERVICE_UNAVAILABLE)
                            .header("retry-after", "0")
                            .body(Full::new(Bytes::new())),
                        _ => Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Full::new(Bytes::new())),
                    };
                    Ok::<_, Infallible>(res.unwrap_or_default())
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
    let addr = server().await?;
    // A port with nothing listening: the connection is refused.
    let closed = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;

    // One classifier for all three: what the retry layer retries, what the breaker counts and
    // what the trace calls a failure cannot drift apart.
    let classifier = Classifier::default();
    let policy = RetryPolicy::builder()
        .classifier(classifier.clone())
        .backoff(Constant::new(Duration::from_millis(20)).max_retries(2))
        .build();
    let stack = resile::stack::http_client()
        .retry(policy)
        .attempt_timeout(Duration::from_secs(2));
    let trace = TraceLayer::new(classifier)
        .on_request(())
        .on_response(|res: &Response<_>, latency: Duration, _: &Span| {
            println!("  trace: response {} in {latency:.1?}", res.status());
        })
        .on_failure(|failure: Failure, latency: Duration, _: &Span| {
            println!(
                "  trace: FAILURE {failure} in {latency:.1?} (retry: {:?}, breaker: {:?})",
                failure.classification.retry, failure.classification.breaker
            );
        });
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let client = ServiceBuilder::new()
        .layer(trace)
        .layer(stack)
        .service(client);

    for url in [
        format!("http://{addr}/ok"),
        format!("http://{addr}/missing"),
        format!("http://{addr}/busy"),
        format!("http://{closed}/"),
    ] {
        println!("GET {url}");
        let req = Request::get(url).body(Full::new(Bytes::new()))?;
        match client.clone().oneshot(req).await {
            Ok(res) => println!(
                "  caller: {} after {} attempt(s)",
                res.status(),
                resile::classify::attempts(&res)
            ),
            Err(err) => println!("  caller: error: {err}"),
        }
    }
    Ok(())
}
