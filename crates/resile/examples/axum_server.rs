//! Server side: an axum app that answers `429 Too Many Requests` with `Retry-After` and the IETF
//! `RateLimit` fields when a client goes over its quota.
//!
//! ```text
//! cargo run -p resile --example axum_server
//! ```
//!
//! Serves the app on 127.0.0.1, sends it a quick burst of requests with a plain client (some are
//! refused, and the headers say when to come back), then one request through resile's client
//! stack, which waits as the server asks and gets through. Then it stops.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use resile::ratelimit::server::RequestHead;
use resile::ratelimit::{Quota, ThrottleLayer};
use resile::ServiceBuilderExt;
use tower::{ServiceBuilder, ServiceExt};

/// The key of a request: the client's IP address, from axum's connection info. (With the
/// `axum` feature, `resile::ratelimit::server::PeerIp` does the same.)
fn peer_ip(req: &RequestHead<'_>) -> Option<IpAddr> {
    req.extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

#[tokio::main]
async fn main() -> Result<(), tower::BoxError> {
    // 5 requests per second per client IP, in a burst of at most 5.
    let quota = Quota::per_second(NonZeroU32::new(5).ok_or("zero quota")?);
    let throttle = ThrottleLayer::builder(quota, peer_ip)
        .policy_name("per-ip")
        .build();

    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .layer(ServiceBuilder::new().throttle(throttle));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await
    });
    println!("serving on http://{addr}/ (5 requests per second per IP)\n");

    // A plain client sending 8 requests at once.
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let url: http::Uri = format!("http://{addr}/").parse()?;
    println!("a burst of 8 requests from a plain client:");
    for i in 1..=8 {
        let res = client.get(url.clone()).await?;
        let h = res.headers();
        let field = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string()
        };
        println!(
            "  #{i}  {}  retry-after: {:<2} ratelimit: {:<22} ratelimit-policy: {}",
            res.status().as_u16(),
            field("retry-after"),
            field("ratelimit"),
            field("ratelimit-policy"),
        );
    }

    // resile's client stack reads the 429's Retry-After and comes back when it is allowed.
    println!("\none more through resile::stack::http_client():");
    let resile_client = ServiceBuilder::new()
        .layer(resile::stack::http_client().attempt_timeout(Duration::from_secs(5)))
        .service(client);
    let start = Instant::now();
    let res = resile_client
        .oneshot(Request::get(url).body(Empty::new())?)
        .await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    println!(
        "  {status} {:?} after waiting {:.1} s, as the server asked",
        String::from_utf8_lossy(&body),
        start.elapsed().as_secs_f64()
    );

    server.abort();
    Ok(())
}
