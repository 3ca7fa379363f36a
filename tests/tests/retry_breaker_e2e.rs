//! End to end: retry outside a circuit breaker, over a hyper-util client and a real hyper server
//! on 127.0.0.1. With a deadline, a request the open breaker refuses is retried when the
//! breaker's next probe comes before the deadline; without one (or when the probe comes too
//! late) the breaker's error is returned at once.

use std::time::Duration;

use http::StatusCode;
use resile::backoff::Constant;
use resile::breaker::CircuitBreakerLayer;
use resile::classify::RetryRefused;
use resile::retry::{RetryLayer, RetryPolicy};
use resile_tests::{get, hyper_client, ScriptedServer, Step};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

/// Trips after two consecutive failures, stays open for `open`.
fn breaker(open: Duration) -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .consecutive_failures(2)
        .open_duration(open)
        .build()
        .unwrap()
}

/// Retries at once (no backoff delay), up to five times, with `deadline` if any.
fn policy(deadline: Option<Duration>) -> RetryPolicy<Constant> {
    let builder = RetryPolicy::builder().backoff(Constant::new(Duration::ZERO).max_retries(5));
    match deadline {
        Some(d) => builder.deadline(d).build(),
        None => builder.build(),
    }
}

#[tokio::test]
async fn an_open_breaker_is_retried_after_its_probe_inside_the_deadline() {
    let server =
        ScriptedServer::start([Step::status(500), Step::status(500), Step::ok("recovered")]).await;
    let client = ServiceBuilder::new()
        .layer(RetryLayer::new(policy(Some(Duration::from_secs(5)))))
        .layer(breaker(Duration::from_millis(300)))
        .service(hyper_client());

    let start = Instant::now();
    let res = client.oneshot(get(&server.url("/"))).await.unwrap();
    let elapsed = start.elapsed();
    // Two 500s trip the breaker; the third attempt is refused locally (not sent); the layer
    // waits for the probe and the fourth attempt reaches the recovered server.
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(server.hits(), 3);
    assert!(
        elapsed >= Duration::from_millis(290) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn an_open_breaker_is_not_retried_without_a_deadline_or_past_it() {
    for deadline in [None, Some(Duration::from_millis(200))] {
        let server =
            ScriptedServer::start([Step::status(500), Step::status(500), Step::ok("too late")])
                .await;
        let client = ServiceBuilder::new()
            .layer(RetryLayer::new(policy(deadline)))
            .layer(breaker(Duration::from_secs(2)))
            .service(hyper_client());

        let start = Instant::now();
        // The retry after the second 500 is refused: the caller gets that 500, marked.
        let res = client.oneshot(get(&server.url("/"))).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{deadline:?}"
        );
        let refused = res.extensions().get::<RetryRefused>();
        assert_eq!(refused.map(|r| r.attempt), Some(3), "{deadline:?}");
        assert_eq!(server.hits(), 2, "{deadline:?}");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{deadline:?}: no wait"
        );
    }
}
