//! Telemetry exported to Prometheus: a client stack records into a `Telemetry` with the
//! `metrics` exporter, and an axum server on 127.0.0.1 serves the Prometheus text on `/metrics`.
//!
//! ```text
//! cargo run -p resile --example prometheus --features metrics
//! ```
//!
//! Sends a few requests through the stack to a local API that fails now and then, prints the
//! telemetry report and the scraped `/metrics` page, then stops.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use resile::telemetry::{MetricsExporter, Telemetry};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), tower::BoxError> {
    // The recorder every `metrics` call goes to, and the handle that renders it.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let prometheus = recorder.handle();
    metrics::set_global_recorder(recorder)?;

    // An API answering 503 to one request in three, and the scrape endpoint.
    let calls = Arc::new(AtomicU32::new(0));
    let app = Router::new()
        .route(
            "/api",
            get(move || {
                let n = calls.fetch_add(1, Ordering::Relaxed);
                async move {
                    if n % 3 == 2 {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let p = prometheus.clone();
                async move { p.render() }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The client: resile's stack with telemetry of both views, exported to `metrics` too.
    let telemetry = Telemetry::builder()
        .name("api client")
        .metrics(MetricsExporter::client())
        .build();
    let stack = resile::stack::http_client().telemetry(&telemetry);
    let client = ServiceBuilder::new()
        .layer(stack)
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    for _ in 0..12 {
        let req = http::Request::get(format!("http://{addr}/api")).body(Empty::new())?;
        let res = client.clone().oneshot(req).await?;
        assert!(res.status().is_success(), "the 503s were retried");
    }

    println!("{}\n", telemetry.report());
    let scrape = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let res = scrape
        .get(format!("http://{addr}/metrics").parse()?)
        .await?;
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await?
        .to_bytes();
    println!("GET /metrics\n\n{}", String::from_utf8_lossy(&body));
    Ok(())
}
