//! resile's stack as a `reqwest_middleware::Middleware`, beside reqwest-retry's
//! `RetryTransientMiddleware` (0.9) on the same scripted servers on 127.0.0.1: what each does
//! with a `503` and `Retry-After`, a `429` with an HTTP-date, and a `POST` answered `500`
//! (docs/guide.md, "Coming from reqwest-retry", records the results).

use std::time::{Duration, SystemTime};

use http::StatusCode;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::RetryTransientMiddleware;
use resile::backoff::Constant;
use resile::breaker::{BreakerOpen, CircuitBreakerLayer};
use resile::classify::RetryRefused;
use resile::reqwest_middleware::{LayerError, ResileMiddleware};
use resile::retry::RetryPolicy;
use resile::retry_after::format_http_date;
use resile_tests::{reqwest_client, ScriptedServer, Step};
use tokio::time::Instant;

/// resile's client stack with a short backoff (10 ms, 3 retries), as the middleware.
fn resile_client() -> ClientWithMiddleware {
    let policy = RetryPolicy::builder()
        .backoff(Constant::new(Duration::from_millis(10)).max_retries(3))
        .build();
    let stack = resile::stack::http_client().retry(policy);
    ClientBuilder::new(reqwest_client())
        .with(ResileMiddleware::new(stack))
        .build()
}

/// reqwest-retry with a backoff of the same order (10 to 20 ms, 3 retries).
fn reqwest_retry_client() -> ClientWithMiddleware {
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(10), Duration::from_millis(20))
        .build_with_max_retries(3);
    ClientBuilder::new(reqwest_client())
        .with(RetryTransientMiddleware::new_with_policy(policy))
        .build()
}

/// Sends `GET /` (or `POST /` with a body) to a fresh server playing `script`; returns the
/// status, the server's hits and how long the call took.
async fn run(client: &ClientWithMiddleware, post: bool, script: Vec<Step>) -> (u16, u64, Duration) {
    let server = ScriptedServer::start(script).await;
    let start = Instant::now();
    let req = if post {
        client.post(server.url("/")).body("order")
    } else {
        client.get(server.url("/"))
    };
    let res = req.send().await.expect("a response");
    (res.status().as_u16(), server.hits(), start.elapsed())
}

#[tokio::test]
async fn a_503_with_retry_after() {
    let script = || {
        vec![
            Step::status(503).header("retry-after", "1"),
            Step::ok("back"),
        ]
    };

    // resile waits the second the server asked for, then succeeds.
    let (status, hits, took) = run(&resile_client(), false, script()).await;
    assert_eq!((status, hits), (200, 2));
    assert!(took >= Duration::from_millis(990), "{took:?}");

    // reqwest-retry retries on its own backoff, before the server's second is up.
    let (status, hits, took) = run(&reqwest_retry_client(), false, script()).await;
    assert_eq!((status, hits), (200, 2));
    assert!(took < Duration::from_millis(900), "{took:?}");
}

#[tokio::test]
async fn a_429_with_an_http_date() {
    let script = || {
        let at = format_http_date(SystemTime::now() + Duration::from_secs(2));
        vec![
            Step::status(429).header("retry-after", at.as_str()),
            Step::ok("back"),
        ]
    };

    // resile waits until the date (whole seconds: between 1 and 2 s from now).
    let (status, hits, took) = run(&resile_client(), false, script()).await;
    assert_eq!((status, hits), (200, 2));
    assert!(took >= Duration::from_millis(900), "{took:?}");

    // reqwest-retry does not read the date.
    let (status, hits, took) = run(&reqwest_retry_client(), false, script()).await;
    assert_eq!((status, hits), (200, 2));
    assert!(took < Duration::from_millis(900), "{took:?}");
}

#[tokio::test]
async fn a_post_answered_500() {
    let script = || vec![Step::status(500), Step::ok("charged twice")];

    // resile does not send a POST twice after a 500: the server may have processed it.
    let (status, hits, _) = run(&resile_client(), true, script()).await;
    assert_eq!((status, hits), (500, 1));

    // reqwest-retry sends it again.
    let (status, hits, _) = run(&reqwest_retry_client(), true, script()).await;
    assert_eq!((status, hits), (200, 2));
}

#[tokio::test]
async fn an_open_breaker_is_a_typed_middleware_error() {
    let breaker = CircuitBreakerLayer::builder()
        .consecutive_failures(2)
        .open_duration(Duration::from_secs(30))
        .build()
        .unwrap();
    let policy = RetryPolicy::builder()
        .backoff(Constant::new(Duration::from_millis(10)).max_retries(3))
        .build();
    let stack = resile::stack::http_client()
        .retry(policy)
        .circuit_breaker(breaker);
    let client = ClientBuilder::new(reqwest_client())
        .with(ResileMiddleware::new(stack))
        .build();
    let server = ScriptedServer::start([Step::status(503), Step::status(503)]).await;

    // Two 503s open the breaker; the retry after them is refused, and the caller gets the
    // server's second 503, marked.
    let res = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.extensions().get::<RetryRefused>().map(|r| r.attempt),
        Some(3)
    );
    assert_eq!(server.hits(), 2);

    // While it is open, requests fail at once with the breaker's own error.
    let err = client.get(server.url("/")).send().await.unwrap_err();
    assert!(err.is_middleware(), "{err:?}");
    let open = LayerError::find::<BreakerOpen>(&err).expect("the breaker's error");
    assert!(open.until_probe().is_some());
    assert!(resile::classify::LocalRejection::find(&err).is_some());
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn a_refused_connection_is_the_clients_error() {
    let addr = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let err = resile_client()
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap_err();
    // Retried (never sent), then returned as reqwest's own error, as without the middleware.
    match err {
        reqwest_middleware::Error::Reqwest(e) => assert!(e.is_connect(), "{e:?}"),
        other => panic!("not reqwest's error: {other:?}"),
    }
}
