//! The layer against tower-test's mock on tokio's paused clock: every wait is checked exactly.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderName, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use resile_classify::{LocalRejection, OutcomeKind};
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tower_test::mock;

use crate::*;

type Req = Request<String>;
type Res = Response<String>;

fn respond(status: u16) -> Res {
    Response::builder()
        .status(status)
        .body(String::new())
        .unwrap()
}

fn respond_with(status: u16, headers: &[(&str, String)]) -> Res {
    let mut res = respond(status);
    for (k, v) in headers {
        res.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    res
}

fn retry_after(status: u16, value: &str) -> Res {
    respond_with(status, &[("retry-after", value.to_string())])
}

fn get() -> Req {
    Request::get("http://example.com/")
        .body(String::new())
        .unwrap()
}

fn post() -> Req {
    Request::post("http://example.com/")
        .body("order".to_string())
        .unwrap()
}

fn exponential(initial_ms: u64, retries: u32) -> Exponential {
    Exponential::builder()
        .initial(Duration::from_millis(initial_ms))
        .multiplier(2.0)
        .max_delay(Duration::from_secs(60))
        .max_retries(retries)
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

fn constant(ms: u64, retries: u32) -> Constant {
    Constant::new(Duration::from_millis(ms)).max_retries(retries)
}

/// Records the hooks' events.
#[derive(Clone, Default)]
struct Events {
    retries: Arc<Mutex<Vec<RetryEvent>>>,
    give_ups: Arc<Mutex<Vec<GiveUpEvent>>>,
}

impl Events {
    /// The policy `builder` builds, its hooks recording into these events.
    fn policy<B>(&self, builder: RetryPolicyBuilder<B>) -> RetryPolicy<B> {
        let (r, g) = (self.retries.clone(), self.give_ups.clone());
        builder
            .on_retry(move |e| r.lock().unwrap().push(*e))
            .on_give_up(move |e| g.lock().unwrap().push(*e))
            .build()
    }
    fn retries(&self) -> Vec<RetryEvent> {
        self.retries.lock().unwrap().clone()
    }
    fn give_ups(&self) -> Vec<GiveUp> {
        self.give_ups
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.cause)
            .collect()
    }
}

type Pending<T> = tokio::task::JoinHandle<Result<T, BoxError>>;
type Started<B> = (
    Pending<Res>,
    mock::Handle<Req, Res>,
    Retry<mock::Mock<Req, Res>, B>,
);

/// Sends `req` through a fresh `Retry` over a mock; returns the call and the mock's handle.
fn start<B>(policy: RetryPolicy<B>, req: Req) -> Started<B>
where
    B: resile_backoff::Backoff + Clone + Send + Sync + 'static,
{
    let (svc, handle) = mock::pair::<Req, Res>();
    let svc = Retry::new(svc, policy);
    let task = tokio::spawn(svc.clone().oneshot(req));
    (task, handle, svc)
}

/// Answers the next attempts with `statuses`, returning when each attempt arrived (since `t0`).
async fn answer(
    handle: &mut mock::Handle<Req, Res>,
    t0: Instant,
    answers: Vec<Res>,
) -> Vec<Duration> {
    let mut at = Vec::new();
    for res in answers {
        let (_req, send) = handle.next_request().await.expect("an attempt");
        at.push(t0.elapsed());
        send.send_response(res);
    }
    at
}

fn assert_no_more_attempts(handle: &mut mock::Handle<Req, Res>) {
    assert!(
        handle.next_request().now_or_never().flatten().is_none(),
        "an unexpected extra attempt"
    );
}

/// One request through a fresh `Retry` over a mock, its attempts answered in order.
struct Called {
    /// When each attempt arrived, since the request was sent.
    at: Vec<Duration>,
    /// When the request returned, since it was sent.
    took: Duration,
    /// What it returned.
    res: Res,
    handle: mock::Handle<Req, Res>,
}

/// Sends `req` through a fresh `Retry` with `policy`, answers its attempts with `answers`, and
/// waits for its response.
async fn call<B>(policy: RetryPolicy<B>, req: Req, answers: Vec<Res>) -> Called
where
    B: resile_backoff::Backoff + Clone + Send + Sync + 'static,
{
    let t0 = Instant::now();
    let (task, mut handle, _) = start(policy, req);
    let at = answer(&mut handle, t0, answers).await;
    let res = task.await.unwrap().unwrap();
    Called {
        at,
        took: t0.elapsed(),
        res,
        handle,
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn retries_503_with_exact_exponential_waits() {
    let events = Events::default();
    let policy = events.policy(RetryPolicy::builder().backoff(exponential(100, 3)));
    let mut c = call(
        policy,
        get(),
        vec![respond(503), respond(503), respond(200)],
    )
    .await;
    assert_eq!(c.at, vec![ms(0), ms(100), ms(300)]);
    assert_eq!(c.res.status(), 200);
    assert_no_more_attempts(&mut c.handle);
    let retries = events.retries();
    assert_eq!(retries.len(), 2);
    assert_eq!((retries[0].attempt, retries[0].wait), (2, ms(100)));
    assert_eq!((retries[1].attempt, retries[1].wait), (3, ms(200)));
    assert_eq!(retries[0].reason, OutcomeKind::RetryableServerError);
    assert_eq!(retries[0].status, Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(events.give_ups().is_empty());
    assert_eq!(
        resile_classify::attempts(&c.res),
        3,
        "the attempts, for the layers outside"
    );
}

#[tokio::test(start_paused = true)]
async fn a_response_of_one_attempt_carries_no_attempts_mark() {
    let policy = RetryPolicy::builder().backoff(constant(10, 2)).build();
    let c = call(policy, get(), vec![respond(200)]).await;
    assert!(c
        .res
        .extensions()
        .get::<resile_classify::Attempts>()
        .is_none());
    let policy = RetryPolicy::builder().backoff(constant(10, 1)).build();
    let c = call(policy, get(), vec![respond(503), respond(503)]).await;
    assert_eq!(
        resile_classify::attempts(&c.res),
        2,
        "the given-up response too"
    );
}

#[tokio::test(start_paused = true)]
async fn exhausted_backoff_returns_the_last_response_not_an_error() {
    let events = Events::default();
    let policy = events.policy(RetryPolicy::builder().backoff(constant(10, 2)));
    let mut c = call(
        policy,
        get(),
        vec![respond(503), respond(502), respond(504)],
    )
    .await;
    assert_eq!(c.at, vec![ms(0), ms(10), ms(20)]);
    assert_eq!(c.res.status(), 504);
    assert_eq!(c.took, ms(20));
    assert_no_more_attempts(&mut c.handle);
    assert_eq!(events.give_ups(), vec![GiveUp::RetriesExhausted]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_wins_over_a_shorter_backoff() {
    let events = Events::default();
    let policy = events.policy(RetryPolicy::builder().backoff(exponential(100, 3)));
    let first = retry_after(503, "3");
    let c = call(policy, get(), vec![first, respond(200)]).await;
    assert_eq!(c.at, vec![ms(0), ms(3000)]);
    assert_eq!(c.res.status(), 200);
    let e = events.retries()[0];
    assert_eq!((e.wait, e.server_hint), (ms(3000), Some(ms(3000))));
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_wins_over_a_shorter_backoff() {
    // The date is measured against the response's own `Date`: no clock skew, exact in tests.
    let date = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let headers = [
        (
            "date",
            resile_retry_after::format_http_date(date).to_string(),
        ),
        (
            "retry-after",
            resile_retry_after::format_http_date(date + Duration::from_secs(5)).to_string(),
        ),
    ];
    let policy = RetryPolicy::builder().backoff(exponential(100, 3)).build();
    // 429: a POST is retried too.
    let c = call(
        policy,
        post(),
        vec![respond_with(429, &headers), respond(201)],
    )
    .await;
    assert_eq!(c.at, vec![ms(0), ms(5000)]);
    assert_eq!(c.res.status(), 201);
}

#[tokio::test(start_paused = true)]
async fn backoff_wins_over_a_shorter_hint() {
    let policy = RetryPolicy::builder().backoff(constant(2500, 3)).build();
    let first = retry_after(503, "1");
    let c = call(policy, get(), vec![first, respond(200)]).await;
    assert_eq!(c.at, vec![ms(0), ms(2500)]);
    assert_eq!(c.res.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_hint_beyond_max_wait_returns_at_once() {
    let events = Events::default();
    let policy = events.policy(
        RetryPolicy::builder()
            .backoff(constant(10, 3))
            .max_wait(Duration::from_secs(10)),
    );
    let first = retry_after(503, "11");
    let mut c = call(policy, get(), vec![first]).await;
    assert_eq!(c.res.status(), 503);
    assert_eq!(c.res.headers()["retry-after"], "11");
    assert_eq!(c.took, Duration::ZERO);
    assert_no_more_attempts(&mut c.handle);
    assert_eq!(events.give_ups(), vec![GiveUp::HintTooLong]);
}

#[tokio::test(start_paused = true)]
async fn a_hint_equal_to_max_wait_is_waited_for() {
    let policy = RetryPolicy::builder()
        .backoff(constant(10, 3))
        .max_wait(Duration::from_secs(10))
        .build();
    let first = retry_after(503, "10");
    let c = call(policy, get(), vec![first, respond(200)]).await;
    assert_eq!(c.at, vec![ms(0), ms(10_000)]);
    assert_eq!(c.res.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn an_absurd_hint_is_refused_at_once() {
    let events = Events::default();
    let policy = events.policy(RetryPolicy::builder().backoff(constant(10, 3)));
    let first = retry_after(503, "99999999999999999999");
    let mut c = call(policy, get(), vec![first]).await;
    assert_eq!(c.res.status(), 503);
    assert_eq!(c.took, Duration::ZERO);
    assert_no_more_attempts(&mut c.handle);
    assert_eq!(events.give_ups(), vec![GiveUp::HintTooLong]);
}

#[tokio::test(start_paused = true)]
async fn a_malformed_hint_is_ignored_and_the_backoff_used() {
    let policy = RetryPolicy::builder().backoff(constant(70, 3)).build();
    let first = retry_after(503, "soon, maybe");
    let c = call(policy, get(), vec![first, respond(200)]).await;
    assert_eq!(c.at, vec![ms(0), ms(70)]);
    assert_eq!(c.res.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_stops_retries_that_would_cross_it() {
    let events = Events::default();
    let policy = events.policy(
        RetryPolicy::builder()
            .backoff(constant(400, 100))
            .deadline(Duration::from_secs(1)),
    );
    let mut c = call(
        policy,
        get(),
        vec![respond(503), respond(503), respond(503)],
    )
    .await;
    assert_eq!(c.at, vec![ms(0), ms(400), ms(800)]);
    // The next retry would start at 1200 ms, past the 1 s deadline: the 503 comes back at once.
    assert_eq!(c.res.status(), 503);
    assert_eq!(c.took, ms(800));
    assert_no_more_attempts(&mut c.handle);
    assert_eq!(events.give_ups(), vec![GiveUp::Deadline]);
}

#[tokio::test(start_paused = true)]
async fn a_hint_past_the_deadline_is_not_waited_for() {
    let events = Events::default();
    let policy = events.policy(
        RetryPolicy::builder()
            .backoff(constant(10, 3))
            .deadline(Duration::from_secs(2)),
    );
    let first = retry_after(503, "5");
    let c = call(policy, get(), vec![first]).await;
    assert_eq!(c.res.status(), 503);
    assert_eq!(c.took, Duration::ZERO);
    assert_eq!(events.give_ups(), vec![GiveUp::Deadline]);
}

#[tokio::test(start_paused = true)]
async fn the_budget_is_shared_by_clones_and_runs_out() {
    let events = Events::default();
    let budget = RetryBudget::builder()
        .ratio_percent(0)
        .min_retries_per_second(1)
        .ttl(Duration::from_secs(2))
        .build()
        .unwrap();
    assert_eq!(budget.reserve(), 2);
    let policy = events.policy(
        RetryPolicy::builder()
            .backoff(constant(0, 10))
            .budget(budget.clone()),
    );
    let t0 = Instant::now();
    let (task, mut handle, svc) = start(policy, get());
    // Reserve of two retries: three attempts, then the budget says no.
    answer(
        &mut handle,
        t0,
        vec![respond(503), respond(503), respond(503)],
    )
    .await;
    assert_eq!(task.await.unwrap().unwrap().status(), 503);
    assert_no_more_attempts(&mut handle);
    // A clone of the service shares the spent budget: one attempt only.
    let task = tokio::spawn(svc.clone().oneshot(get()));
    answer(&mut handle, t0, vec![respond(503)]).await;
    assert_eq!(task.await.unwrap().unwrap().status(), 503);
    assert_no_more_attempts(&mut handle);
    assert_eq!(
        events.give_ups(),
        vec![GiveUp::BudgetExhausted, GiveUp::BudgetExhausted]
    );
    // The floor refills at one retry per second.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(budget.available_retries(), 1);
    let task = tokio::spawn(svc.clone().oneshot(get()));
    answer(&mut handle, t0, vec![respond(503), respond(200)]).await;
    assert_eq!(task.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn the_budget_earns_retries_from_first_attempts() {
    let budget = RetryBudget::builder()
        .ratio_percent(50)
        .min_retries_per_second(0)
        .build()
        .unwrap();
    let policy = RetryPolicy::builder()
        .backoff(constant(0, 10))
        .budget(budget.clone())
        .build();
    let (svc, mut handle) = mock::pair::<Req, Res>();
    let svc = Retry::new(svc, policy);
    let t0 = Instant::now();
    // Two successful requests deposit 2 × 50 units: one retry.
    for _ in 0..2 {
        let task = tokio::spawn(svc.clone().oneshot(get()));
        answer(&mut handle, t0, vec![respond(200)]).await;
        task.await.unwrap().unwrap();
    }
    assert_eq!(budget.available_retries(), 1);
    // The third request deposits 50 more (150): one retry, then 50 left is not enough.
    let task = tokio::spawn(svc.clone().oneshot(get()));
    answer(&mut handle, t0, vec![respond(503), respond(503)]).await;
    assert_eq!(task.await.unwrap().unwrap().status(), 503);
    assert_no_more_attempts(&mut handle);
}

#[tokio::test(start_paused = true)]
async fn a_post_answered_500_is_not_retried() {
    let events = Events::default();
    let policy = events.policy(RetryPolicy::builder().backoff(constant(10, 3)));
    let mut c = call(policy, post(), vec![respond(500)]).await;
    assert_eq!(c.res.status(), 500);
    assert_no_more_attempts(&mut c.handle);
    assert_eq!(events.give_ups(), vec![GiveUp::NotIdempotent]);
}

#[tokio::test(start_paused = true)]
async fn a_post_with_an_idempotency_key_is_retried_after_500() {
    let policy = RetryPolicy::builder().backoff(constant(10, 3)).build();
    let mut req = post();
    req.headers_mut()
        .insert("idempotency-key", "8e03978e".parse().unwrap());
    let c = call(policy, req, vec![respond(500), respond(200)]).await;
    assert_eq!(c.res.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn errors_are_retried_by_what_they_say_about_the_request() {
    let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    let reset = || std::io::Error::from(std::io::ErrorKind::ConnectionReset);

    // A POST refused at connect time never reached the server: retried.
    let policy = RetryPolicy::builder().backoff(constant(10, 3)).build();
    let (task, mut handle, _) = start(policy, post());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(refused());
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.body(), "order");
    send.send_response(respond(201));
    assert_eq!(task.await.unwrap().unwrap().status(), 201);

    // A POST whose connection was reset may have been processed: returned as the error.
    let policy = RetryPolicy::builder().backoff(constant(10, 3)).build();
    let (task, mut handle, _) = start(policy, post());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(reset());
    let err = task.await.unwrap().unwrap_err();
    let io = err
        .downcast_ref::<std::io::Error>()
        .expect("the inner error");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
    assert_no_more_attempts(&mut handle);

    // A GET whose connection was reset is retried.
    let policy = RetryPolicy::builder().backoff(constant(10, 3)).build();
    let (task, mut handle, _) = start(policy, get());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(reset());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(respond(200));
    assert_eq!(task.await.unwrap().unwrap().status(), 200);
}

#[derive(Debug)]
struct BreakerOpen;

impl std::fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("breaker open")
    }
}

impl std::error::Error for BreakerOpen {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(LocalRejection::STATIC)
    }
}

#[tokio::test(start_paused = true)]
async fn a_local_rejection_is_never_retried() {
    let policy = RetryPolicy::builder().backoff(constant(10, 3)).build();
    let (task, mut handle, _) = start(policy, get());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(BreakerOpen);
    let err = task.await.unwrap().unwrap_err();
    assert!(err.is::<BreakerOpen>());
    assert_no_more_attempts(&mut handle);
}

fn unavailable(body: &str) -> Res {
    let mut res = retry_after(503, "0");
    *res.body_mut() = body.to_string();
    res
}

fn refused(res: &Res) -> Option<RetryRefused> {
    res.extensions().get::<RetryRefused>().copied()
}

#[tokio::test(start_paused = true)]
async fn a_retry_refused_locally_returns_the_servers_last_response() {
    let events = Events::default();
    let policy = events.policy(RetryPolicy::builder().backoff(constant(10, 3)));
    let (task, mut handle, _) = start(policy, get());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(unavailable("down for maintenance"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(BreakerOpen);
    let res = task
        .await
        .unwrap()
        .expect("the server's 503, not the refusal");
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "0");
    assert_eq!(res.body(), "down for maintenance");
    assert_eq!(
        refused(&res),
        Some(RetryRefused::new(2, *LocalRejection::STATIC))
    );
    assert_eq!(resile_classify::attempts(&res), 2);
    assert_eq!(events.give_ups(), vec![GiveUp::RejectedLocally]);
    assert_no_more_attempts(&mut handle);
}

#[tokio::test(start_paused = true)]
async fn a_retry_refused_in_poll_ready_returns_the_servers_last_response() {
    let events = Events::default();
    let policy = events.policy(RetryPolicy::builder().backoff(constant(10, 3)));
    let (task, mut handle, _) = start(policy, get());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(unavailable("busy"));
    // The retry waits 10 ms, then finds the inner service refusing before any call.
    handle.send_error(BreakerOpen);
    let res = task.await.unwrap().expect("the server's 503");
    assert_eq!(res.body(), "busy");
    assert_eq!(refused(&res).map(|r| r.attempt), Some(2));
    assert_eq!(resile_classify::attempts(&res), 2);
    assert_eq!(events.give_ups(), vec![GiveUp::RejectedLocally]);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_with_no_earlier_response_is_returned_as_the_error() {
    // A transport failure is newer news than the response before it: the response is dropped.
    let policy = RetryPolicy::builder().backoff(constant(10, 3)).build();
    let (task, mut handle, _) = start(policy, get());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(unavailable("busy"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(BreakerOpen);
    assert!(task.await.unwrap().unwrap_err().is::<BreakerOpen>());
    assert_no_more_attempts(&mut handle);
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_probe_keeps_the_servers_response() {
    let events = Events::default();
    let policy = events.policy(
        RetryPolicy::builder()
            .backoff(constant(10, 3))
            .deadline(Duration::from_secs(5)),
    );
    let (task, mut handle, _) = start(policy, get());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(unavailable("first"));
    // Refused with a probe in 100 ms (retried then), then refused for good.
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(open_for(100));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(OpenFor(LocalRejection::default()));
    let res = task.await.unwrap().expect("the server's 503");
    assert_eq!(res.body(), "first");
    assert_eq!(
        refused(&res),
        Some(RetryRefused::new(3, LocalRejection::default()))
    );
    assert_eq!(resile_classify::attempts(&res), 3);
    assert_eq!(events.give_ups(), vec![GiveUp::RejectedLocally]);

    // The backoff runs out while the breaker stays open: still the server's answer.
    let policy = RetryPolicy::builder()
        .backoff(constant(10, 1))
        .deadline(Duration::from_secs(5))
        .build();
    let (task, mut handle, _) = start(policy, get());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(unavailable("second"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(open_for(100));
    let res = task.await.unwrap().expect("the server's 503");
    assert_eq!(res.body(), "second");
    assert_eq!(refused(&res).map(|r| r.attempt), Some(2));
}

/// A local rejection that says when it passes again (as an open breaker does).
#[derive(Debug)]
struct OpenFor(LocalRejection);

impl std::fmt::Display for OpenFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("breaker open for a while")
    }
}

impl std::error::Error for OpenFor {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn open_for(ms: u64) -> OpenFor {
    OpenFor(LocalRejection::passing_in(Duration::from_millis(ms)))
}

#[tokio::test(start_paused = true)]
async fn a_rejection_passing_before_the_deadline_is_retried_after_it() {
    let events = Events::default();
    let policy = events.policy(
        RetryPolicy::builder()
            .backoff(constant(10, 3))
            .deadline(Duration::from_secs(5)),
    );
    // Any method: a rejected request was never sent.
    let t0 = Instant::now();
    let (task, mut handle, _) = start(policy, post());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(open_for(1500));
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(
        t0.elapsed(),
        Duration::from_millis(1500),
        "waits for the probe"
    );
    assert_eq!(req.body(), "order");
    send.send_response(respond(200));
    assert_eq!(task.await.unwrap().unwrap().status(), 200);
    let retries = events.retries();
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].reason, OutcomeKind::Rejected);
    assert_eq!(retries[0].wait, Duration::from_millis(1500));
    assert_eq!(retries[0].server_hint, Some(Duration::from_millis(1500)));
}

#[tokio::test(start_paused = true)]
async fn a_rejection_is_not_retried_without_a_deadline_or_past_it() {
    // No deadline: returned at once, as any local rejection.
    let policy = RetryPolicy::builder().backoff(constant(10, 3)).build();
    let (task, mut handle, _) = start(policy, get());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(open_for(100));
    assert!(task.await.unwrap().unwrap_err().is::<OpenFor>());
    assert_no_more_attempts(&mut handle);

    // The probe comes after the deadline: returned at once, without waiting.
    let events = Events::default();
    let policy = events.policy(
        RetryPolicy::builder()
            .backoff(constant(10, 3))
            .deadline(Duration::from_secs(1)),
    );
    let t0 = Instant::now();
    let (task, mut handle, _) = start(policy, get());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(open_for(1000));
    assert!(task.await.unwrap().unwrap_err().is::<OpenFor>());
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_no_more_attempts(&mut handle);
    assert_eq!(events.give_ups(), vec![GiveUp::Deadline]);

    // A rejection that names no moment (forced open, probe slots taken) is not retried.
    let policy = RetryPolicy::builder()
        .backoff(constant(10, 3))
        .deadline(Duration::from_secs(5))
        .build();
    for err in [OpenFor(LocalRejection::default()), open_for(0)] {
        let (task, mut handle, _) = start(policy.clone(), get());
        let (_, send) = handle.next_request().await.unwrap();
        send.send_error(err);
        assert!(task.await.unwrap().unwrap_err().is::<OpenFor>());
        assert_no_more_attempts(&mut handle);
    }
}

#[tokio::test(start_paused = true)]
async fn retries_after_rejections_count_against_the_backoff() {
    let events = Events::default();
    let policy = events.policy(
        RetryPolicy::builder()
            .backoff(constant(10, 2))
            .deadline(Duration::from_secs(60)),
    );
    let (task, mut handle, _) = start(policy, get());
    for _ in 0..3 {
        let (_, send) = handle.next_request().await.unwrap();
        send.send_error(open_for(100));
    }
    assert!(task.await.unwrap().unwrap_err().is::<OpenFor>());
    assert_no_more_attempts(&mut handle);
    assert_eq!(events.retries().len(), 2);
    assert_eq!(events.give_ups(), vec![GiveUp::RetriesExhausted]);
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_breaker_does_not_spend_the_budget() {
    // An empty budget: no retry of a server failure is allowed.
    let budget = RetryBudget::builder()
        .ratio_percent(0)
        .min_retries_per_second(0)
        .build()
        .unwrap();
    let events = Events::default();
    let policy = events.policy(
        RetryPolicy::builder()
            .backoff(constant(10, 3))
            .budget(budget.clone())
            .deadline(Duration::from_secs(5)),
    );
    let (task, mut handle, svc) = start(policy, get());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(open_for(200));
    // Retried after the probe wait, budget or not.
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(respond(200));
    assert_eq!(task.await.unwrap().unwrap().status(), 200);
    assert_eq!(budget.available_retries(), 0);

    // A 503 with the same empty budget is not retried.
    let task = tokio::spawn(svc.clone().oneshot(get()));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(respond(503));
    assert_eq!(task.await.unwrap().unwrap().status(), 503);
    assert_no_more_attempts(&mut handle);
    assert_eq!(events.give_ups(), vec![GiveUp::BudgetExhausted]);
}

#[tokio::test(start_paused = true)]
async fn success_and_client_errors_are_returned_as_they_are() {
    for status in [200, 204, 301, 400, 404, 501] {
        let policy = RetryPolicy::builder().backoff(constant(10, 3)).build();
        let mut c = call(policy, get(), vec![respond(status)]).await;
        assert_eq!(c.res.status(), status);
        assert_no_more_attempts(&mut c.handle);
    }
}

#[tokio::test(start_paused = true)]
async fn each_request_has_its_own_backoff() {
    let policy = RetryPolicy::builder().backoff(exponential(100, 2)).build();
    let (svc, mut handle) = mock::pair::<Req, Res>();
    let svc = Retry::new(svc, policy);
    for _ in 0..2 {
        let t0 = Instant::now();
        let task = tokio::spawn(svc.clone().oneshot(get()));
        let at = answer(
            &mut handle,
            t0,
            vec![respond(503), respond(503), respond(503)],
        )
        .await;
        // The second request starts from 100 ms again: the first did not advance the policy's.
        assert_eq!(at, vec![ms(0), ms(100), ms(300)]);
        assert_eq!(task.await.unwrap().unwrap().status(), 503);
    }
}

#[tokio::test(start_paused = true)]
async fn unseeded_jitter_differs_between_requests() {
    let backoff = Exponential::builder()
        .initial(Duration::from_secs(10))
        .max_retries(1)
        .jitter(Jitter::Full)
        .build()
        .unwrap();
    let events = Events::default();
    let policy = events.policy(RetryPolicy::builder().backoff(backoff));
    let (svc, mut handle) = mock::pair::<Req, Res>();
    let svc = Retry::new(svc, policy);
    for _ in 0..4 {
        let task = tokio::spawn(svc.clone().oneshot(get()));
        answer(
            &mut handle,
            Instant::now(),
            vec![respond(503), respond(200)],
        )
        .await;
        task.await.unwrap().unwrap();
    }
    let mut waits: Vec<_> = events.retries().iter().map(|e| e.wait).collect();
    assert_eq!(waits.len(), 4);
    assert!(waits.iter().all(|w| *w <= Duration::from_secs(10)));
    waits.dedup();
    // Four draws out of ten seconds of nanoseconds: equal draws would mean shared randomness.
    assert!(
        waits.len() > 1,
        "every request got the same jitter: {waits:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_seeded_backoff_replays_the_same_jittered_waits() {
    let backoff = Exponential::builder()
        .initial(Duration::from_millis(100))
        .max_retries(3)
        .jitter(Jitter::Full)
        .seed(7)
        .build()
        .unwrap();
    let expected: Vec<_> = backoff.clone().collect();
    assert_eq!(expected.len(), 3);
    let events = Events::default();
    let policy = events.policy(RetryPolicy::builder().backoff(backoff));
    let (svc, mut handle) = mock::pair::<Req, Res>();
    let svc = Retry::new(svc, policy);
    for round in 0..2 {
        let t0 = Instant::now();
        let task = tokio::spawn(svc.clone().oneshot(get()));
        let at = answer(&mut handle, t0, vec![respond(503); 4]).await;
        assert_eq!(task.await.unwrap().unwrap().status(), 503);
        let waits: Vec<_> = events.retries()[3 * round..]
            .iter()
            .map(|e| e.wait)
            .collect();
        assert_eq!(waits, expected);
        // tokio's timer fires on the next whole millisecond.
        for (gap, wait) in at.windows(2).map(|w| w[1] - w[0]).zip(&expected) {
            assert!(gap >= *wait && gap < *wait + ms(1), "{gap:?} for {wait:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_attempt_header_counts_attempts() {
    let policy = RetryPolicy::builder()
        .backoff(constant(0, 3))
        .attempt_header(HeaderName::from_static("x-attempt"))
        .build();
    let (task, mut handle, _) = start(policy, get());
    let mut seen = Vec::new();
    for status in [503, 503, 200] {
        let (req, send) = handle.next_request().await.unwrap();
        seen.push(req.headers()["x-attempt"].to_str().unwrap().to_string());
        send.send_response(respond(status));
    }
    assert_eq!(seen, ["1", "2", "3"]);
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn no_attempt_header_by_default() {
    let policy = RetryPolicy::builder().backoff(constant(0, 3)).build();
    let (task, mut handle, _) = start(policy, get());
    let (req, send) = handle.next_request().await.unwrap();
    assert!(req.headers().is_empty());
    send.send_response(respond(200));
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_cloneable_body_is_sent_whole_on_every_attempt() {
    type FReq = Request<Full<Bytes>>;
    let (svc, mut handle) = mock::pair::<FReq, Res>();
    let policy = RetryPolicy::builder().backoff(constant(0, 3)).build();
    let svc = Retry::new(svc, policy);
    let req = Request::put("http://example.com/doc")
        .body(Full::new(Bytes::from_static(b"the document")))
        .unwrap();
    let task = tokio::spawn(svc.oneshot(req));
    for status in [503, 200] {
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(req.method(), Method::PUT);
        let body = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "the document");
        send.send_response(respond(status));
    }
    assert_eq!(task.await.unwrap().unwrap().status(), 200);
}

type Chunk = Result<Frame<Bytes>, Infallible>;
type Streaming = ReplayBody<StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Chunk>>>>;
type SReq = Request<Streaming>;

fn streaming(total: usize, chunk: usize, limit: usize) -> (SReq, Bytes) {
    let data: Bytes = (0..total)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let frames: Vec<Chunk> = data
        .chunks(chunk)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let body = ReplayBody::with_limit(StreamBody::new(futures_util::stream::iter(frames)), limit);
    let req = Request::put("http://example.com/upload")
        .body(body)
        .unwrap();
    (req, data)
}

#[tokio::test(start_paused = true)]
async fn a_streaming_body_is_replayed_byte_for_byte() {
    let (svc, mut handle) = mock::pair::<SReq, Res>();
    let policy = RetryPolicy::builder().backoff(constant(5, 3)).build();
    let (req, data) = streaming(40 * 1024, 1000, DEFAULT_REPLAY_LIMIT);
    let task = tokio::spawn(Retry::new(svc, policy).oneshot(req));
    for status in [503, 503, 200] {
        let (req, send) = handle.next_request().await.unwrap();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, data);
        send.send_response(respond(status));
    }
    assert_eq!(task.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_streaming_body_over_the_limit_gets_exactly_one_whole_attempt() {
    let events = Events::default();
    let (svc, mut handle) = mock::pair::<SReq, Res>();
    let policy = events.policy(RetryPolicy::builder().backoff(constant(5, 3)));
    let (req, data) = streaming(100 * 1024, 4096, DEFAULT_REPLAY_LIMIT);
    let task = tokio::spawn(Retry::new(svc, policy).oneshot(req));
    let (req, send) = handle.next_request().await.unwrap();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), 100 * 1024);
    assert_eq!(body, data);
    send.send_response(respond(503));
    assert_eq!(task.await.unwrap().unwrap().status(), 503);
    assert!(handle.next_request().now_or_never().flatten().is_none());
    assert_eq!(events.give_ups(), vec![GiveUp::NotReplayable]);
}

#[tokio::test(start_paused = true)]
async fn a_body_still_being_sent_is_not_replayed() {
    let events = Events::default();
    let (svc, mut handle) = mock::pair::<SReq, Res>();
    let policy = events.policy(RetryPolicy::builder().backoff(constant(5, 3)));
    let (req, _) = streaming(8 * 1024, 1024, DEFAULT_REPLAY_LIMIT);
    let task = tokio::spawn(Retry::new(svc, policy).oneshot(req));
    let (req, send) = handle.next_request().await.unwrap();
    // The server answers after one chunk while the client still holds the body.
    let mut body = req.into_body();
    body.frame().await.unwrap().unwrap();
    send.send_response(respond(503));
    assert_eq!(task.await.unwrap().unwrap().status(), 503);
    assert!(handle.next_request().now_or_never().flatten().is_none());
    assert_eq!(events.give_ups(), vec![GiveUp::NotReplayable]);
    drop(body);
}

#[tokio::test(start_paused = true)]
async fn a_body_dropped_half_way_is_replayed_whole() {
    let (svc, mut handle) = mock::pair::<SReq, Res>();
    let policy = RetryPolicy::builder().backoff(constant(5, 3)).build();
    let (req, data) = streaming(8 * 1024, 1024, DEFAULT_REPLAY_LIMIT);
    let task = tokio::spawn(Retry::new(svc, policy).oneshot(req));
    let (req, send) = handle.next_request().await.unwrap();
    let mut body = req.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body); // the connection died with the body half sent
    send.send_error(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.into_body().collect().await.unwrap().to_bytes(), data);
    send.send_response(respond(200));
    assert_eq!(task.await.unwrap().unwrap().status(), 200);
}

/// A request type that can never be copied.
#[derive(Debug)]
struct OneShot(Req);

impl resile_classify::RequestLike for OneShot {
    fn method(&self) -> &Method {
        self.0.method()
    }
    fn headers(&self) -> &http::HeaderMap {
        self.0.headers()
    }
}

impl ReplayableRequest for OneShot {
    fn try_copy(&self) -> Option<Self> {
        None
    }
    fn replay(_: &Self) -> Option<Self> {
        None
    }
    fn headers_mut(&mut self) -> &mut http::HeaderMap {
        self.0.headers_mut()
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_be_copied_is_sent_once() {
    let events = Events::default();
    let (svc, mut handle) = mock::pair::<OneShot, Res>();
    let policy = events.policy(RetryPolicy::builder().backoff(constant(5, 3)));
    let task = tokio::spawn(Retry::new(svc, policy).oneshot(OneShot(get())));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(respond(503));
    assert_eq!(task.await.unwrap().unwrap().status(), 503);
    assert!(handle.next_request().now_or_never().flatten().is_none());
    assert_eq!(events.give_ups(), vec![GiveUp::NotReplayable]);
}

/// A service whose readiness fails once a retry needs it.
#[derive(Clone)]
struct FailsWhenPolledAgain {
    calls: Arc<Mutex<u32>>,
}

impl Service<Req> for FailsWhenPolledAgain {
    type Response = Res;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Res, std::io::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        if *self.calls.lock().unwrap() > 0 {
            std::task::Poll::Ready(Err(std::io::Error::other("pool closed")))
        } else {
            std::task::Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, _: Req) -> Self::Future {
        *self.calls.lock().unwrap() += 1;
        std::future::ready(Ok(respond(503)))
    }
}

#[tokio::test(start_paused = true)]
async fn a_readiness_error_before_a_retry_ends_the_request() {
    let svc = FailsWhenPolledAgain {
        calls: Arc::default(),
    };
    let policy = RetryPolicy::builder().backoff(constant(5, 3)).build();
    let err = Retry::new(svc.clone(), policy)
        .oneshot(get())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "pool closed");
    assert_eq!(*svc.calls.lock().unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn zero_waits_retry_without_a_timer() {
    let policy = RetryPolicy::builder().backoff(constant(0, 5)).build();
    let c = call(
        policy,
        get(),
        vec![respond(503), respond(429), respond(200)],
    )
    .await;
    assert_eq!(c.at, vec![Duration::ZERO; 3]);
    assert_eq!(c.res.status(), 200);
}

#[test]
fn the_layer_and_its_pieces_are_clone_debug_send_sync() {
    fn clone_debug<T: Clone + std::fmt::Debug + Send + Sync>() {}
    fn send<T: Send>() {}
    clone_debug::<RetryLayer>();
    clone_debug::<RetryLayer<Constant>>();
    clone_debug::<RetryPolicy>();
    clone_debug::<RetryBudget>();
    clone_debug::<Retry<mock::Mock<Req, Res>>>();
    send::<ResponseFuture<mock::Mock<Req, Res>, Req, Exponential>>();
    send::<ResponseFuture<mock::Mock<SReq, Res>, SReq, Exponential>>();
    let layer = RetryLayer::default();
    let printed = format!("{layer:?}");
    assert!(printed.contains("RetryBudget"), "{printed}");
}

#[tokio::test(start_paused = true)]
async fn the_layer_composes_with_service_builder() {
    let (svc, mut handle) = mock::pair::<Req, Res>();
    let layer = RetryLayer::new(RetryPolicy::builder().backoff(constant(1, 1)).build());
    let svc = tower::ServiceBuilder::new().layer(layer).service(svc);
    let task = tokio::spawn(svc.oneshot(get()));
    answer(
        &mut handle,
        Instant::now(),
        vec![respond(503), respond(200)],
    )
    .await;
    assert_eq!(task.await.unwrap().unwrap().status(), 200);
}

/// A service that counts its clones and calls, answers the n-th call with `statuses[n]` (then
/// `200`), and tags every response with its `tag`.
struct Counted {
    clones: Arc<std::sync::atomic::AtomicUsize>,
    calls: Arc<std::sync::atomic::AtomicUsize>,
    statuses: Arc<Vec<u16>>,
    tag: u32,
}

impl Counted {
    fn new(statuses: Vec<u16>) -> Self {
        Counted {
            clones: Arc::default(),
            calls: Arc::default(),
            statuses: Arc::new(statuses),
            tag: 0,
        }
    }

    fn clones(&self) -> usize {
        self.clones.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.clones
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Counted {
            clones: self.clones.clone(),
            calls: self.calls.clone(),
            statuses: self.statuses.clone(),
            tag: self.tag,
        }
    }
}

impl Service<Req> for Counted {
    type Response = Res;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Res, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Req) -> Self::Future {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let status = self.statuses.get(n).copied().unwrap_or(200);
        std::future::ready(Ok(respond_with(status, &[("x-tag", self.tag.to_string())])))
    }
}

fn no_budget_at_once(retries: u32) -> RetryPolicy<Constant> {
    RetryPolicy::builder()
        .backoff(constant(0, retries))
        .no_budget()
        .build()
}

#[tokio::test(start_paused = true)]
async fn each_request_clones_the_service_once_as_towers_retry_does() {
    let inner = Counted::new(vec![200; 100]);
    let clones = inner.clones.clone();
    let mut svc = Retry::new(inner, no_budget_at_once(3));
    for _ in 0..10 {
        let res = svc.ready().await.unwrap().call(get()).await.unwrap();
        assert_eq!(res.status(), 200);
    }
    assert_eq!(clones.load(std::sync::atomic::Ordering::SeqCst), 10);
}

#[tokio::test(start_paused = true)]
async fn a_retried_request_sends_its_retries_through_its_one_clone() {
    // The first request: 503, 503, then 200 — two retries through the clone taken at `call`.
    let inner = Counted::new(vec![503, 503]);
    let mut svc = Retry::new(inner, no_budget_at_once(3));
    let res = svc.ready().await.unwrap().call(get()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        svc.get_ref()
            .calls
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    assert_eq!(svc.get_ref().clones(), 1);
}

#[tokio::test(start_paused = true)]
async fn after_get_mut_retries_go_through_the_changed_service() {
    let inner = Counted::new(vec![200, 503]);
    let mut svc = Retry::new(inner, no_budget_at_once(1));
    let res = svc.ready().await.unwrap().call(get()).await.unwrap();
    assert_eq!(res.headers()["x-tag"], "0");
    svc.get_mut().tag = 7;
    // 503 then 200: the retry is sent through a clone of the changed service.
    let res = svc.ready().await.unwrap().call(get()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tag"], "7");
    // A clone made before the change keeps its own service (clones are independent values).
    let mut other = Retry::new(Counted::new(vec![200]), no_budget_at_once(1));
    let before = other.clone();
    other.get_mut().tag = 9;
    assert_eq!(before.get_ref().tag, 0);
}

#[test]
fn a_send_but_not_sync_service_makes_a_send_future() {
    fn send<T: Send>() {}
    type Boxed = tower::util::BoxCloneService<Req, Res, tower::BoxError>;
    send::<Retry<Boxed>>();
    send::<<Retry<Boxed> as Service<Req>>::Future>();
}
