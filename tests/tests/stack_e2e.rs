//! The full client stack (`resile::stack::http_client()`: retry > breaker > limiter > timeout)
//! through real hyper-util and reqwest clients against real hyper servers on 127.0.0.1, and the
//! server-side layers inside an axum app hit by a real client.
//!
//! Scripted failure sequences; assertions on server hits, final statuses and elapsed time (real
//! time: lower bounds prove a wait was honoured, upper bounds are generous).

use std::convert::Infallible;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::error_handling::HandleErrorLayer;
use axum::response::IntoResponse;
use axum::routing;
use axum::Router;
use http::{Method, StatusCode};
use resile::backoff::{Constant, Exponential, Jitter};
use resile::breaker::http::ServiceUnavailableLayer;
use resile::breaker::{BreakerOpen, CircuitBreakerLayer, State};
use resile::classify::{RejectedBy, RetryRefused};
use resile::ratelimit::client::WaitTooLong;
use resile::ratelimit::server::PeerIp;
use resile::ratelimit::{Quota, RateLimitLayer, ThrottleLayer};
use resile::retry::{RetryBudget, RetryPolicy};
use resile::retry_after::format_http_date;
use resile::ServiceBuilderExt;
use resile_tests::{
    body_bytes, get, hyper_client, request, reqwest_client, serve_axum, ScriptedServer, Step,
};
use tokio::time::Instant;
use tower::{BoxError, Layer, ServiceBuilder, ServiceExt};

/// Short waits so that the tests stay fast: 20 ms, no jitter, 3 retries.
fn fast_policy() -> RetryPolicy {
    RetryPolicy::builder()
        .backoff(
            Exponential::builder()
                .initial(Duration::from_millis(20))
                .jitter(Jitter::None)
                .max_retries(3)
                .build()
                .unwrap(),
        )
        .build()
}

/// A constant-wait policy of `max_retries` and a count of the retries it made.
fn counted_policy(wait: Duration, max_retries: u32) -> (RetryPolicy<Constant>, Arc<AtomicU32>) {
    let retries = Arc::new(AtomicU32::new(0));
    let r = retries.clone();
    let policy = RetryPolicy::builder()
        .backoff(Constant::new(wait).max_retries(max_retries))
        .on_retry(move |_| {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .build();
    (policy, retries)
}

fn breaker(failures: u32, open: Duration) -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .consecutive_failures(failures)
        .open_duration(open)
        .build()
        .unwrap()
}

#[tokio::test]
async fn hyper_retries_a_503_after_the_servers_hint() {
    let server = ScriptedServer::start([
        Step::status(503).header("retry-after-ms", "300"),
        Step::ok("hello"),
    ])
    .await;
    let client = ServiceBuilder::new()
        .layer(resile::stack::http_client().retry(fast_policy()))
        .service(hyper_client());

    let start = Instant::now();
    let res = client.oneshot(get(&server.url("/a"))).await.unwrap();
    let elapsed = start.elapsed();

    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_bytes(res).await.unwrap(), "hello");
    assert_eq!(server.hits(), 2);
    let seen = server.seen();
    // The retry waited the hint (not the 20 ms backoff): on the server's clock as on ours.
    assert!(
        seen[1].at - seen[0].at >= Duration::from_millis(300),
        "{seen:?}"
    );
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn hyper_post_answered_500_is_not_repeated_but_a_429_is_with_the_same_body() {
    let server = ScriptedServer::start([
        Step::status(500),
        Step::status(429).header("retry-after-ms", "100"),
        Step::status(201),
    ])
    .await;
    let client = ServiceBuilder::new()
        .layer(resile::stack::http_client().retry(fast_policy()))
        .service(hyper_client());

    // 500 on a POST: the server may have acted on it; returned as it is.
    let res = client
        .clone()
        .oneshot(request(Method::POST, &server.url("/orders"), "order-1"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(server.hits(), 1);

    // 429 on a POST: not processed, retried after the hint, with the whole body again.
    let start = Instant::now();
    let res = client
        .oneshot(request(Method::POST, &server.url("/orders"), "order-2"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(start.elapsed() >= Duration::from_millis(100));
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].body, "order-2");
    assert_eq!(seen[2].body, "order-2");
    assert_eq!(seen[2].method, Method::POST);
}

#[tokio::test]
async fn hyper_dropped_connection_is_retried_for_get_only() {
    let server = ScriptedServer::start([
        Step::drop_connection(),
        Step::ok("again"),
        Step::drop_connection(),
    ])
    .await;
    let client = ServiceBuilder::new()
        .layer(resile::stack::http_client().retry(fast_policy()))
        .service(hyper_client());

    let res = client.clone().oneshot(get(&server.url("/"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(server.hits(), 2);

    // The server may have processed the POST before the connection went: it is not repeated,
    // and the caller gets the client's own error, typed.
    let err = client
        .oneshot(request(Method::POST, &server.url("/"), "pay"))
        .await
        .unwrap_err();
    assert!(
        err.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some(),
        "{err:?}"
    );
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn hyper_outage_opens_the_breaker_which_is_not_retried_and_fails_fast() {
    let server = ScriptedServer::start((0..20).map(|_| Step::status(503))).await;
    let stack = resile::stack::http_client()
        .retry(fast_policy())
        .circuit_breaker(breaker(3, Duration::from_secs(30)));
    let handle = stack.breaker_handle();
    let client = ServiceBuilder::new().layer(stack).service(hyper_client());

    // First request: 503, retry, retry: the third failure opens the breaker, which refuses the
    // third retry. The refusal is not retried, and the caller gets the server's third 503,
    // marked with the refusal.
    let res = client
        .clone()
        .oneshot(get(&server.url("/")))
        .await
        .expect("the server's last answer");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let refused = res
        .extensions()
        .get::<RetryRefused>()
        .expect("the refused retry");
    assert_eq!(refused.attempt, 4);
    assert_eq!(refused.rejection.rejected_by(), RejectedBy::CircuitBreaker);
    assert!(refused.rejection.passes_in().unwrap() > Duration::from_secs(25));
    assert_eq!(resile::classify::attempts(&res), 4);
    assert_eq!(server.hits(), 3);
    assert_eq!(handle.state(), State::Open);

    // While open: no request reaches the server, each fails at once.
    for _ in 0..20 {
        let start = Instant::now();
        let err = client
            .clone()
            .oneshot(get(&server.url("/")))
            .await
            .unwrap_err();
        assert!(err.is::<BreakerOpen>());
        assert!(start.elapsed() < Duration::from_millis(200));
    }
    assert_eq!(server.hits(), 3);
    assert_eq!(handle.metrics().rejections, 21);
    assert_eq!(handle.metrics().failures, 3);
}

#[tokio::test]
async fn hyper_breaker_probes_after_the_open_period_and_closes() {
    let server =
        ScriptedServer::start([Step::status(502), Step::status(502), Step::ok("back")]).await;
    let stack = resile::stack::http_client()
        .no_retry()
        .circuit_breaker(breaker(2, Duration::from_millis(300)));
    let handle = stack.breaker_handle();
    let client = ServiceBuilder::new().layer(stack).service(hyper_client());

    for _ in 0..2 {
        let res = client.clone().oneshot(get(&server.url("/"))).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    }
    assert_eq!(handle.state(), State::Open);
    let err = client
        .clone()
        .oneshot(get(&server.url("/")))
        .await
        .unwrap_err();
    assert!(err.is::<BreakerOpen>());
    tokio::time::sleep(Duration::from_millis(350)).await;
    let res = client.oneshot(get(&server.url("/"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn hyper_429_with_an_http_date_pauses_every_request_of_the_client() {
    // Retry-After one second after Date, both whole seconds: a delay of exactly 1 s on the
    // server's clock.
    let now = SystemTime::now();
    let date = format_http_date(now).as_str().to_owned();
    let until = format_http_date(now + Duration::from_secs(1))
        .as_str()
        .to_owned();
    let server = ScriptedServer::start([Step::status(429)
        .header("date", &date)
        .header("retry-after", &until)])
    .await;
    let client = ServiceBuilder::new()
        .layer(resile::stack::http_client().retry(fast_policy()))
        .service(hyper_client());

    let first = tokio::spawn(client.clone().oneshot(get(&server.url("/first"))));
    // Once the 429 is in, another request of the same client is held back as well.
    let start = Instant::now();
    while server.hits() == 0 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = client.oneshot(get(&server.url("/second"))).await.unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);

    let seen = server.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0].path, "/first");
    for later in &seen[1..] {
        let waited = later.at - seen[0].at;
        assert!(
            waited >= Duration::from_millis(900),
            "{later:?} after {waited:?}"
        );
        assert!(
            waited < Duration::from_secs(3),
            "{later:?} after {waited:?}"
        );
    }
}

#[tokio::test]
async fn hyper_limiter_refusal_is_local_not_retried_and_not_a_breaker_failure() {
    let server = ScriptedServer::start([]).await;
    // Both pieces on `Classifier::default()`: the refusal's `LocalRejection` marker is all they
    // need to tell it from a failure of the server.
    let (policy, retries) = counted_policy(Duration::from_millis(1), 3);
    // One request per minute, and no waiting for a permit.
    let limiter = RateLimitLayer::builder(Quota::per_minute(NonZeroU32::new(1).unwrap()))
        .max_wait(Duration::ZERO)
        .build();
    let stack = resile::stack::http_client()
        .retry(policy)
        .circuit_breaker(breaker(1, Duration::from_secs(30)))
        .rate_limit(limiter);
    let handle = stack.breaker_handle();
    let client = ServiceBuilder::new().layer(stack).service(hyper_client());

    let res = client.clone().oneshot(get(&server.url("/"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let start = Instant::now();
    let err = client.oneshot(get(&server.url("/"))).await.unwrap_err();
    let refused = err
        .downcast_ref::<WaitTooLong>()
        .expect("the limiter's error");
    assert!(refused.wait > Duration::from_secs(50), "{refused:?}");
    assert!(start.elapsed() < Duration::from_millis(200));
    // Not sent, not retried, and the breaker (tripping on a single failure) stays closed.
    assert_eq!(server.hits(), 1);
    assert_eq!(retries.load(Ordering::SeqCst), 0);
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.metrics().failures, 0);
}

#[tokio::test]
async fn hyper_attempt_timeout_is_retried_for_idempotent_requests() {
    let server = ScriptedServer::start([
        Step::ok("slow").after(Duration::from_secs(2)),
        Step::ok("fast"),
    ])
    .await;
    let client = ServiceBuilder::new()
        .layer(
            resile::stack::http_client()
                .retry(fast_policy())
                .attempt_timeout(Duration::from_millis(200)),
        )
        .service(hyper_client());

    let start = Instant::now();
    let res = client.oneshot(get(&server.url("/"))).await.unwrap();
    assert_eq!(body_bytes(res).await.unwrap(), "fast");
    assert_eq!(server.hits(), 2);
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

#[tokio::test]
async fn hyper_retry_budget_bounds_the_load_of_an_outage() {
    const REQUESTS: u64 = 100;
    let server = ScriptedServer::start((0..1000).map(|_| Step::status(503))).await;
    let budget = RetryBudget::builder()
        .ratio_percent(10)
        .min_retries_per_second(0)
        .build()
        .unwrap();
    let policy = RetryPolicy::builder()
        .backoff(Constant::new(Duration::from_millis(1)).max_retries(3))
        .budget(budget)
        .build();
    let client = ServiceBuilder::new()
        .layer(
            resile::stack::http_client()
                .retry(policy)
                .no_circuit_breaker(),
        )
        .service(hyper_client());

    for _ in 0..REQUESTS {
        let res = client.clone().oneshot(get(&server.url("/"))).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    // Without the budget: 4 hits per request. With it: 10 % more than the requests.
    let hits = server.hits();
    assert!(hits >= REQUESTS + 9, "{hits}");
    assert!(hits <= REQUESTS + REQUESTS / 10, "{hits}");
}

// ------------------------------------------------------------------------------------------------
// reqwest

/// `stack` over `reqwest::Client`, as it is: every layer reads `reqwest::Response`s.
fn reqwest_stack<L>(stack: L) -> L::Service
where
    L: Layer<reqwest::Client>,
{
    ServiceBuilder::new().layer(stack).service(reqwest_client())
}

#[tokio::test]
async fn reqwest_retries_503_and_429_and_keeps_the_post_body() {
    let server = ScriptedServer::start([
        Step::status(503).header("retry-after-ms", "150"),
        Step::ok("got it"),
        Step::status(429).header("retry-after", "1"),
        Step::status(201),
    ])
    .await;
    let client = reqwest_stack(resile::stack::http_client().retry(fast_policy()));
    let http = reqwest_client();

    let start = Instant::now();
    let res = client
        .clone()
        .oneshot(http.get(server.url("/a")).build().unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "got it");
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(server.hits(), 2);

    let start = Instant::now();
    let req = http
        .post(server.url("/orders"))
        .body("{\"id\":7}")
        .build()
        .unwrap();
    let res = client.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    let seen = server.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[2].body, "{\"id\":7}");
    assert_eq!(seen[3].body, "{\"id\":7}");
}

#[tokio::test]
async fn reqwest_outage_opens_the_breaker() {
    let server = ScriptedServer::start((0..10).map(|_| Step::status(500))).await;
    let stack = resile::stack::http_client()
        .retry(fast_policy())
        .circuit_breaker(breaker(4, Duration::from_secs(30)));
    let handle = stack.breaker_handle();
    let client = reqwest_stack(stack);
    let http = reqwest_client();

    // 500, then three retries: four failures open the breaker; the last response is returned.
    let res = client
        .clone()
        .oneshot(http.get(server.url("/")).build().unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(server.hits(), 4);
    assert_eq!(handle.state(), State::Open);

    let err = client
        .oneshot(http.get(server.url("/")).build().unwrap())
        .await
        .unwrap_err();
    assert!(err.is::<BreakerOpen>());
    assert_eq!(server.hits(), 4);
}

#[tokio::test]
async fn reqwest_connection_refused_is_retried_for_a_post_then_returned_typed() {
    // A port with nothing listening.
    let addr = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let (policy, attempts) = counted_policy(Duration::from_millis(30), 2);
    let client = reqwest_stack(
        resile::stack::http_client()
            .retry(policy)
            .circuit_breaker(breaker(10, Duration::from_secs(30))),
    );
    let http = reqwest_client();

    let start = Instant::now();
    let err = client
        .oneshot(
            http.post(format!("http://{addr}/"))
                .body("never sent")
                .build()
                .unwrap(),
        )
        .await
        .unwrap_err();
    // Never reached a server, so even a POST was retried (twice), then the error came back.
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert!(start.elapsed() >= Duration::from_millis(60));
    let err = err
        .downcast_ref::<reqwest::Error>()
        .expect("reqwest's error");
    assert!(err.is_connect(), "{err:?}");
}

// ------------------------------------------------------------------------------------------------
// Server side: axum

#[tokio::test]
async fn axum_throttle_answers_429_and_the_stack_waits_as_told() {
    let handled = Arc::new(AtomicU32::new(0));
    let h = handled.clone();
    let quota = Quota::per_second(NonZeroU32::new(2).unwrap());
    let app = Router::new()
        .route(
            "/",
            routing::get(move || {
                h.fetch_add(1, Ordering::SeqCst);
                async { "ok" }
            }),
        )
        .layer(ServiceBuilder::new().throttle(ThrottleLayer::new(quota, PeerIp::new())));
    let server = serve_axum(app).await;

    // A plain client: two pass, the third is refused with the headers that say when to return.
    let plain = hyper_client();
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..3 {
        let res = plain.request(get(&server.url("/"))).await.unwrap();
        statuses.push(res.status());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(res);
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let refused = refused.unwrap();
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(refused.headers().contains_key("ratelimit"));
    assert!(refused.headers().contains_key("ratelimit-policy"));
    assert_eq!(handled.load(Ordering::SeqCst), 2);

    // Through the stack: refused once more, waits the Retry-After, then passes.
    let client = ServiceBuilder::new()
        .layer(resile::stack::http_client().retry(fast_policy()))
        .service(hyper_client());
    let start = Instant::now();
    let res = client.oneshot(get(&server.url("/"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(handled.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn axum_breaker_answers_503_with_retry_after_when_a_dependency_fails() {
    // A handler whose dependency is down, guarded by a breaker that turns its rejections into
    // 503 + Retry-After.
    let dependency_calls = Arc::new(AtomicU32::new(0));
    let d = dependency_calls.clone();
    let breaker = breaker(2, Duration::from_secs(20));
    let handle = breaker.handle();
    let guarded = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|e: BoxError| async move {
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }))
        .layer(ServiceUnavailableLayer)
        .circuit_breaker(breaker)
        .service(tower::service_fn(
            move |_req: http::Request<axum::body::Body>| {
                d.fetch_add(1, Ordering::SeqCst);
                async {
                    Ok::<_, Infallible>(
                        (StatusCode::BAD_GATEWAY, "dependency down").into_response(),
                    )
                }
            },
        ));
    let app = Router::new().route_service("/", guarded);
    let server = serve_axum(app).await;

    let plain = hyper_client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let res = plain.request(get(&server.url("/"))).await.unwrap();
        statuses.push((res.status(), res.headers().get("retry-after").cloned()));
    }
    assert_eq!(statuses[0].0, StatusCode::BAD_GATEWAY);
    assert_eq!(statuses[1].0, StatusCode::BAD_GATEWAY);
    for (status, retry_after) in &statuses[2..] {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE);
        let secs: u64 = retry_after
            .as_ref()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((19..=21).contains(&secs), "{secs}");
    }
    assert_eq!(dependency_calls.load(Ordering::SeqCst), 2);
    assert_eq!(handle.state(), State::Open);

    // A resile client reads that 503's Retry-After (20 s, under the 30 s max wait)... and the
    // retry policy's deadline says not to wait that long: the 503 comes back at once.
    let policy = RetryPolicy::builder()
        .deadline(Duration::from_secs(2))
        .build();
    let client = ServiceBuilder::new()
        .layer(resile::stack::http_client().retry(policy))
        .service(hyper_client());
    let start = Instant::now();
    let res = client.oneshot(get(&server.url("/"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(dependency_calls.load(Ordering::SeqCst), 2);
}
