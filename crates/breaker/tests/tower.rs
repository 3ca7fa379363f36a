//! The breaker as a tower service: tower-test's mock behind it, tokio's paused clock driving
//! the open periods.

use std::io;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use resile_backoff::{Exponential, Jitter};
use resile_breaker::http::ServiceUnavailableLayer;
use resile_breaker::{
    BoxError, BreakerHandle, BreakerOpen, ByAuthority, CircuitBreaker, CircuitBreakerBuilder,
    CircuitBreakerLayer, SlidingWindow, State, Transition,
};
use resile_classify::LocalRejection;
use tokio::time::advance;
use tower::{Layer, Service, ServiceExt};
use tower_test::mock::{self, Handle, Mock};

type Req = Request<()>;
type Res = Response<()>;
type Svc = CircuitBreaker<Mock<Req, Res>>;

#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    StatusRetryAfter(u16, u64),
    Transport,
}

/// Makes one call; answers it with `reply` if it reached the backend. Returns whether it did.
async fn call_on<S>(
    svc: &mut S,
    handle: &mut Handle<Req, Res>,
    req: Req,
    reply: Reply,
) -> (bool, Result<Res, BoxError>)
where
    S: Service<Req, Response = Res, Error = BoxError>,
{
    // Tokio's cooperative budget would make the mock's channel look empty after ~128
    // operations in one task poll: start each exchange with a fresh budget.
    tokio::task::yield_now().await;
    let fut = match svc.ready().await {
        Ok(svc) => svc.call(req),
        Err(e) => return (false, Err(e)),
    };
    let forwarded = match handle.poll_request() {
        Poll::Ready(Some((_, send))) => {
            match reply {
                Reply::Status(s) => send.send_response(status(s)),
                Reply::StatusRetryAfter(s, secs) => {
                    let mut res = status(s);
                    res.headers_mut()
                        .insert(http::header::RETRY_AFTER, secs.to_string().parse().unwrap());
                    send.send_response(res)
                }
                Reply::Transport => send.send_error(io::Error::other("connection reset")),
            }
            true
        }
        _ => false,
    };
    (forwarded, fut.await)
}

async fn call(
    svc: &mut Svc,
    handle: &mut Handle<Req, Res>,
    reply: Reply,
) -> (bool, Result<Res, BoxError>) {
    call_on(svc, handle, Request::new(()), reply).await
}

fn status(s: u16) -> Res {
    Response::builder().status(s).body(()).unwrap()
}

fn open_error(r: &Result<Res, BoxError>) -> BreakerOpen {
    let err = r.as_ref().expect_err("expected a rejection");
    *err.downcast_ref::<BreakerOpen>().expect("a BreakerOpen")
}

fn service(layer: &CircuitBreakerLayer) -> (Svc, Handle<Req, Res>) {
    let (mock, handle) = mock::pair::<Req, Res>();
    (layer.layer(mock), handle)
}

/// The breaker `builder` builds, over a fresh mock: its handle, the service and the mock's handle.
fn over_mock(builder: CircuitBreakerBuilder) -> (BreakerHandle, Svc, Handle<Req, Res>) {
    let layer = builder.build().unwrap();
    let (svc, h) = service(&layer);
    (layer.handle(), svc, h)
}

/// Makes `n` calls, each answered with `reply`, ignoring their results.
async fn calls(svc: &mut Svc, handle: &mut Handle<Req, Res>, reply: Reply, n: usize) {
    for _ in 0..n {
        let _ = call(svc, handle, reply).await;
    }
}

#[tokio::test(start_paused = true)]
async fn opens_after_consecutive_failures_and_fails_fast() {
    let (breaker, mut svc, mut h) = over_mock(
        CircuitBreakerLayer::builder()
            .consecutive_failures(5)
            .open_duration(Duration::from_secs(10)),
    );

    for i in 0..4 {
        let (sent, r) = call(&mut svc, &mut h, Reply::Status(500)).await;
        assert!(sent && r.unwrap().status() == 500, "call {i}");
        assert_eq!(breaker.state(), State::Closed);
    }
    let (sent, _) = call(&mut svc, &mut h, Reply::Transport).await;
    assert!(sent);
    assert_eq!(breaker.state(), State::Open);

    advance(Duration::from_secs(3)).await;
    let (sent, r) = call(&mut svc, &mut h, Reply::Status(200)).await;
    assert!(!sent, "an open breaker does not call the backend");
    let open = open_error(&r);
    assert_eq!(open.until_probe(), Some(Duration::from_secs(7)));
    assert!(!open.is_forced());
    // Every resile layer sees it as a local rejection.
    let err = r.unwrap_err();
    assert!(err.source().unwrap().is::<LocalRejection>());
    assert!(err.to_string().contains("open"));
    // ...which says when the next probe goes, for a retry layer with a deadline.
    assert_eq!(
        LocalRejection::find(&*err).unwrap().passes_in(),
        Some(Duration::from_secs(7))
    );

    let m = breaker.metrics();
    assert_eq!(
        (m.calls, m.failures, m.successes, m.rejections),
        (5, 5, 0, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn successes_end_a_streak_and_neutral_outcomes_do_not() {
    let (breaker, mut svc, mut h) =
        over_mock(CircuitBreakerLayer::builder().consecutive_failures(3));
    for reply in [500, 503, 200, 500, 429, 408, 502, 404] {
        let _ = call(&mut svc, &mut h, Reply::Status(reply)).await;
        assert_eq!(breaker.state(), State::Closed, "after {reply}");
    }
    // 404 was a success (the client's mistake): two more failures are not enough.
    let _ = call(&mut svc, &mut h, Reply::Status(500)).await;
    let _ = call(&mut svc, &mut h, Reply::Status(500)).await;
    assert_eq!(breaker.state(), State::Closed);
    // 429 between failures neither ends nor extends the streak.
    let _ = call(&mut svc, &mut h, Reply::Status(429)).await;
    let _ = call(&mut svc, &mut h, Reply::Status(500)).await;
    assert_eq!(breaker.state(), State::Open);
    let m = breaker.metrics();
    assert_eq!((m.neutral, m.failures, m.successes), (3, 7, 2));
}

#[tokio::test(start_paused = true)]
async fn failure_rate_over_a_count_window_waits_for_min_calls() {
    let (breaker, mut svc, mut h) =
        over_mock(CircuitBreakerLayer::builder().failure_rate(0.5, SlidingWindow::Count(10), 6));
    // 5 failures in a row: 100 %, but fewer than 6 calls.
    calls(&mut svc, &mut h, Reply::Status(500), 5).await;
    assert_eq!(breaker.state(), State::Closed);
    // The 6th call is a success: 5/6 >= 50 % with 6 calls: open.
    let _ = call(&mut svc, &mut h, Reply::Status(200)).await;
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn failure_rate_below_threshold_never_trips_where_consecutive_would_not_either() {
    let (breaker, mut svc, mut h) =
        over_mock(CircuitBreakerLayer::builder().failure_rate(0.5, SlidingWindow::Count(10), 4));
    // 40 % failures, interleaved: never opens.
    for i in 0..50 {
        let s = if i % 5 >= 3 { 500 } else { 200 };
        let _ = call(&mut svc, &mut h, Reply::Status(s)).await;
        assert_eq!(breaker.state(), State::Closed, "call {i}");
    }
    // 60 %: opens within a window.
    let mut opened = false;
    for i in 0..10 {
        let s = if i % 5 < 3 { 500 } else { 200 };
        let _ = call(&mut svc, &mut h, Reply::Status(s)).await;
        opened |= breaker.state() == State::Open;
    }
    assert!(opened);
}

#[tokio::test(start_paused = true)]
async fn failure_rate_over_a_time_window_forgets_old_failures() {
    let (breaker, mut svc, mut h) = over_mock(CircuitBreakerLayer::builder().failure_rate(
        0.5,
        SlidingWindow::Time {
            length: Duration::from_secs(10),
            buckets: 10,
        },
        4,
    ));
    calls(&mut svc, &mut h, Reply::Status(500), 3).await;
    // The three failures age out of the 10 s window.
    advance(Duration::from_secs(11)).await;
    let _ = call(&mut svc, &mut h, Reply::Status(500)).await;
    assert_eq!(
        breaker.state(),
        State::Closed,
        "1 call in the window: below min_calls"
    );
    calls(&mut svc, &mut h, Reply::Status(200), 2).await;
    assert_eq!(breaker.state(), State::Closed);
    let _ = call(&mut svc, &mut h, Reply::Status(500)).await;
    assert_eq!(breaker.state(), State::Open, "2 of 4 in the window");
}

#[tokio::test(start_paused = true)]
async fn open_periods_grow_and_restart_after_closing() {
    let backoff = Exponential::builder()
        .initial(Duration::from_secs(1))
        .multiplier(2.0)
        .max_delay(Duration::from_secs(8))
        .jitter(Jitter::None)
        .no_max_retries()
        .build()
        .unwrap();
    let opened = Arc::new(Mutex::new(Vec::new()));
    let seen = opened.clone();
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .open_backoff(backoff)
        .on_transition(move |t: &Transition| {
            if let Some(d) = t.open_for {
                seen.lock().unwrap().push(d.as_secs());
            }
        })
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut h) = service(&layer);

    let _ = call(&mut svc, &mut h, Reply::Status(500)).await;
    for expected in [1u64, 2, 4, 8, 8] {
        assert_eq!(breaker.state(), State::Open);
        assert_eq!(breaker.until_probe(), Some(Duration::from_secs(expected)));
        advance(Duration::from_millis(expected * 1000 - 1)).await;
        let (sent, r) = call(&mut svc, &mut h, Reply::Status(200)).await;
        assert!(!sent && open_error(&r).until_probe() == Some(Duration::from_millis(1)));
        advance(Duration::from_millis(1)).await;
        // The probe fails: open again, for longer.
        let (sent, _) = call(&mut svc, &mut h, Reply::Status(502)).await;
        assert!(sent);
    }
    advance(Duration::from_secs(8)).await;
    let (sent, r) = call(&mut svc, &mut h, Reply::Status(200)).await;
    assert!(sent && r.is_ok());
    assert_eq!(breaker.state(), State::Closed);
    // Closing restarted the backoff.
    let _ = call(&mut svc, &mut h, Reply::Status(500)).await;
    assert_eq!(breaker.until_probe(), Some(Duration::from_secs(1)));
    assert_eq!(*opened.lock().unwrap(), vec![1, 2, 4, 8, 8, 8, 1]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_on_the_tripping_response_extends_the_open_period() {
    let (breaker, mut svc, mut h) = over_mock(
        CircuitBreakerLayer::builder()
            .consecutive_failures(2)
            .open_duration(Duration::from_secs(5))
            .max_server_hint(Duration::from_secs(120)),
    );
    // A hint on a response that does not trip is not remembered.
    let _ = call(&mut svc, &mut h, Reply::StatusRetryAfter(503, 600)).await;
    let _ = call(&mut svc, &mut h, Reply::StatusRetryAfter(503, 30)).await;
    assert_eq!(breaker.until_probe(), Some(Duration::from_secs(30)));
    advance(Duration::from_secs(29)).await;
    let (sent, _) = call(&mut svc, &mut h, Reply::Status(200)).await;
    assert!(!sent);
    advance(Duration::from_secs(1)).await;
    // The probe fails with an absurd hint: capped at max_server_hint.
    let (sent, _) = call(&mut svc, &mut h, Reply::StatusRetryAfter(503, 86_400 * 365)).await;
    assert!(sent);
    assert_eq!(breaker.until_probe(), Some(Duration::from_secs(120)));
    advance(Duration::from_secs(120)).await;
    // A shorter hint than the backoff does not shorten it.
    let (sent, _) = call(&mut svc, &mut h, Reply::StatusRetryAfter(503, 1)).await;
    assert!(sent);
    assert_eq!(breaker.until_probe(), Some(Duration::from_secs(5)));
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_a_bounded_number_of_probes() {
    let (breaker, mut svc, mut h) = over_mock(
        CircuitBreakerLayer::builder()
            .consecutive_failures(1)
            .open_duration(Duration::from_secs(1))
            .half_open_probes(2)
            .close_after(3),
    );
    let _ = call(&mut svc, &mut h, Reply::Status(500)).await;
    advance(Duration::from_secs(1)).await;

    // Two probes in flight (not answered yet); the third caller is rejected.
    let mut a = svc.clone();
    let mut b = svc.clone();
    let fa = a.ready().await.unwrap().call(Request::new(()));
    assert_eq!(breaker.state(), State::HalfOpen);
    let fb = b.ready().await.unwrap().call(Request::new(()));
    let (_, sa) = h.next_request().await.unwrap();
    let (_, sb) = h.next_request().await.unwrap();
    let (sent, r) = call(&mut svc, &mut h, Reply::Status(200)).await;
    assert!(!sent);
    assert_eq!(open_error(&r).until_probe(), Some(Duration::ZERO));
    // Probe slots taken: nothing to wait for, so the rejection names no moment.
    let err = r.as_ref().unwrap_err();
    assert_eq!(LocalRejection::find(&**err).unwrap().passes_in(), None);
    sa.send_response(status(200));
    sb.send_response(status(200));
    fa.await.unwrap();
    fb.await.unwrap();
    // Two successes of three: still half-open, the slots are free again.
    assert_eq!(breaker.state(), State::HalfOpen);
    let (sent, _) = call(&mut svc, &mut h, Reply::Status(200)).await;
    assert!(sent);
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_gives_its_slot_back() {
    let (breaker, mut svc, mut h) = over_mock(
        CircuitBreakerLayer::builder()
            .consecutive_failures(1)
            .open_duration(Duration::from_secs(1)),
    );
    let _ = call(&mut svc, &mut h, Reply::Status(500)).await;
    advance(Duration::from_secs(1)).await;

    let probe = svc.ready().await.unwrap().call(Request::new(()));
    let (_, never_answered) = h.next_request().await.unwrap();
    let (sent, r) = call(&mut svc, &mut h, Reply::Status(200)).await;
    assert!(!sent, "the one slot is taken");
    assert!(r.is_err());
    drop(probe);
    drop(never_answered);
    assert_eq!(breaker.metrics().cancelled, 1);
    // The slot is back: the next call probes, and closes the breaker.
    let (sent, r) = call(&mut svc, &mut h, Reply::Status(200)).await;
    assert!(sent && r.is_ok());
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_slot_reserved_by_poll_ready_comes_back_when_the_service_is_dropped() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(1))
        .build()
        .unwrap();
    let (mut svc, mut h) = service(&layer);
    let _ = call(&mut svc, &mut h, Reply::Status(500)).await;
    advance(Duration::from_secs(1)).await;
    let mut other = svc.clone();
    other.ready().await.unwrap(); // reserves the probe slot
    let (sent, _) = call(&mut svc, &mut h, Reply::Status(200)).await;
    assert!(!sent);
    drop(other);
    let (sent, _) = call(&mut svc, &mut h, Reply::Status(200)).await;
    assert!(sent);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_is_ready_without_polling_the_backend() {
    let layer = CircuitBreakerLayer::new();
    let breaker = layer.handle();
    let (mut svc, mut h) = service(&layer);
    h.allow(0);
    // Closed: readiness is the backend's.
    assert!(futures_poll_once(svc.ready()).await.is_none());
    breaker.force_open();
    let ready = futures_poll_once(svc.ready()).await;
    assert!(matches!(ready, Some(Ok(_))));
    let err = svc.call(Request::new(())).await.unwrap_err();
    let open = err.downcast_ref::<BreakerOpen>().unwrap();
    assert!(open.is_forced() && open.until_probe().is_none());
    // Forced open: no moment to wait for.
    assert_eq!(LocalRejection::find(&*err).unwrap().passes_in(), None);
}

/// Polls a future once.
async fn futures_poll_once<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(|cx| {
        Poll::Ready(match f.as_mut().poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn the_handle_forces_disables_resets_and_reports() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let layer = CircuitBreakerLayer::builder()
        .name("backend")
        .consecutive_failures(2)
        .open_duration(Duration::from_secs(1))
        .build()
        .unwrap();
    let breaker = layer.handle();
    let sub = breaker.on_transition(move |t| {
        assert_eq!(t.breaker.as_deref(), Some("backend"));
        seen.lock().unwrap().push((t.from, t.to));
    });
    let (mut svc, mut h) = service(&layer);

    breaker.disable();
    for _ in 0..5 {
        let (sent, _) = call(&mut svc, &mut h, Reply::Status(500)).await;
        assert!(sent);
    }
    assert_eq!(breaker.state(), State::Disabled);
    assert_eq!(breaker.metrics().failures, 5, "disabled still counts");
    breaker.force_open();
    let (sent, _) = call(&mut svc, &mut h, Reply::Status(200)).await;
    assert!(!sent);
    breaker.reset();
    let _ = call(&mut svc, &mut h, Reply::Status(500)).await;
    let _ = call(&mut svc, &mut h, Reply::Status(500)).await;
    advance(Duration::from_secs(1)).await;
    let _ = call(&mut svc, &mut h, Reply::Status(200)).await;
    assert!(breaker.unsubscribe(sub));
    assert!(!breaker.unsubscribe(sub));
    breaker.force_open();
    use State::*;
    assert_eq!(
        *events.lock().unwrap(),
        vec![
            (Closed, Disabled),
            (Disabled, ForcedOpen),
            (ForcedOpen, Closed),
            (Closed, Open),
            (Open, HalfOpen),
            (HalfOpen, Closed)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn clones_and_services_of_one_layer_share_one_breaker() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(2)
        .build()
        .unwrap();
    let (mut a, mut ha) = service(&layer);
    let (mut b, mut hb) = service(&layer);
    let mut a2 = a.clone();
    let _ = call(&mut a2, &mut ha, Reply::Status(500)).await;
    let _ = call(&mut b, &mut hb, Reply::Status(500)).await;
    assert_eq!(layer.handle().state(), State::Open);
    let (sent, _) = call(&mut a, &mut ha, Reply::Status(200)).await;
    assert!(!sent);
    // Debug shows the state.
    assert!(format!("{layer:?}").contains("Open"));
}

#[tokio::test(start_paused = true)]
async fn rejections_of_a_breaker_below_are_neutral() {
    // An inner breaker that is forced open: the outer one must not count its rejections.
    let inner_layer = CircuitBreakerLayer::new();
    inner_layer.handle().force_open();
    let outer_layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .build()
        .unwrap();
    let (mock, mut h) = mock::pair::<Req, Res>();
    let mut svc = outer_layer.layer(inner_layer.layer(mock));
    for _ in 0..3 {
        let (sent, r) = call_on(&mut svc, &mut h, Request::new(()), Reply::Status(200)).await;
        assert!(!sent);
        assert!(r.unwrap_err().is::<BreakerOpen>());
    }
    assert_eq!(outer_layer.handle().state(), State::Closed);
    assert_eq!(outer_layer.handle().metrics().neutral, 3);
}

#[tokio::test(start_paused = true)]
async fn keyed_breakers_open_per_host() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(2)
        .open_duration(Duration::from_secs(5))
        .build_keyed(ByAuthority, 4)
        .unwrap();
    let handle = layer.handle();
    let (mock, mut h) = mock::pair::<Req, Res>();
    let mut svc = layer.layer(mock);
    let to = |host: &str| Request::get(format!("http://{host}/x")).body(()).unwrap();

    for _ in 0..2 {
        let _ = call_on(&mut svc, &mut h, to("A.example:80"), Reply::Status(500)).await;
    }
    let (sent, r) = call_on(&mut svc, &mut h, to("a.example:80"), Reply::Status(200)).await;
    assert!(!sent, "same host, other case: same breaker");
    assert_eq!(
        r.unwrap_err()
            .downcast_ref::<BreakerOpen>()
            .unwrap()
            .until_probe(),
        Some(Duration::from_secs(5))
    );
    let (sent, r) = call_on(&mut svc, &mut h, to("b.example:80"), Reply::Status(200)).await;
    assert!(sent && r.is_ok());
    assert_eq!(handle.state("a.example:80"), Some(State::Open));
    assert_eq!(handle.state("b.example:80"), Some(State::Closed));
    assert_eq!(handle.state("c.example:80"), None);
    let mut keys: Vec<_> = handle
        .keys()
        .into_iter()
        .map(|(k, _)| k.to_string())
        .collect();
    keys.sort();
    assert_eq!(keys, ["A.example:80", "b.example:80"]); // as first seen

    // Fill the table: two more hosts fit, the fifth evicts an idle closed one (never the open).
    for host in ["c.example", "d.example", "e.example", "f.example"] {
        let (sent, _) = call_on(&mut svc, &mut h, to(host), Reply::Status(200)).await;
        assert!(sent);
    }
    assert_eq!(handle.state("a.example:80"), Some(State::Open));
    assert_eq!(handle.keys().len(), 4);
    assert!(handle.reset("a.example:80"));
    let (sent, _) = call_on(&mut svc, &mut h, to("a.example:80"), Reply::Status(200)).await;
    assert!(sent);
}

#[tokio::test(start_paused = true)]
async fn keyed_table_full_of_open_breakers_lets_new_keys_through_unguarded() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .build_keyed(ByAuthority, 2)
        .unwrap();
    let handle = layer.handle();
    let (mock, mut h) = mock::pair::<Req, Res>();
    let mut svc = layer.layer(mock);
    let to = |host: &str| Request::get(format!("http://{host}/")).body(()).unwrap();
    let _ = call_on(&mut svc, &mut h, to("a"), Reply::Status(500)).await;
    let _ = call_on(&mut svc, &mut h, to("b"), Reply::Status(500)).await;
    assert_eq!(handle.state("a"), Some(State::Open));
    assert_eq!(handle.state("b"), Some(State::Open));
    let (sent, r) = call_on(&mut svc, &mut h, to("c"), Reply::Status(500)).await;
    assert!(sent && r.is_ok());
    assert_eq!(handle.overflow(), 1);
    assert_eq!(handle.state("c"), None);
}

#[tokio::test(start_paused = true)]
async fn servers_answer_503_with_retry_after() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .open_duration(Duration::from_millis(1500))
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mock, mut h) = mock::pair::<Req, Res>();
    let mut svc = ServiceUnavailableLayer.layer(layer.layer(mock));
    let _ = call_on(&mut svc, &mut h, Request::new(()), Reply::Status(500)).await;
    let (sent, r) = call_on(&mut svc, &mut h, Request::new(()), Reply::Status(200)).await;
    assert!(!sent);
    let res = r.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[http::header::RETRY_AFTER], "2");
    // Half-open with its slot taken: 1, never 0.
    advance(Duration::from_millis(1500)).await;
    let mut probe = svc.clone();
    let _probe_fut = probe.ready().await.unwrap().call(Request::new(()));
    let (_, r) = call_on(&mut svc, &mut h, Request::new(()), Reply::Status(200)).await;
    assert_eq!(r.unwrap().headers()[http::header::RETRY_AFTER], "1");
    // Forced open: 503 without a promise.
    breaker.force_open();
    let (_, r) = call_on(&mut svc, &mut h, Request::new(()), Reply::Status(200)).await;
    let res = r.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get(http::header::RETRY_AFTER).is_none());
    // Other errors pass through.
    breaker.reset();
    let (sent, r) = call_on(&mut svc, &mut h, Request::new(()), Reply::Transport).await;
    assert!(sent && r.is_err());
}

#[test]
fn bad_configurations_are_typed_errors() {
    use resile_breaker::BreakerConfigError;
    let b = CircuitBreakerLayer::builder;
    assert_eq!(
        b().consecutive_failures(0).build().unwrap_err(),
        BreakerConfigError::ZeroFailures
    );
    assert!(matches!(
        b().failure_rate(f64::NAN, SlidingWindow::Count(10), 1)
            .build()
            .unwrap_err(),
        BreakerConfigError::InvalidRate(_)
    ));
    assert!(matches!(
        b().failure_rate(1.5, SlidingWindow::Count(10), 1)
            .build()
            .unwrap_err(),
        BreakerConfigError::InvalidRate(_)
    ));
    assert_eq!(
        b().failure_rate(0.5, SlidingWindow::Count(0), 1)
            .build()
            .unwrap_err(),
        BreakerConfigError::InvalidCountWindow(0)
    );
    assert!(matches!(
        b().failure_rate(
            0.5,
            SlidingWindow::Time {
                length: Duration::from_millis(5),
                buckets: 10
            },
            1
        )
        .build()
        .unwrap_err(),
        BreakerConfigError::InvalidTimeWindow { .. }
    ));
    assert!(matches!(
        b().failure_rate(
            0.5,
            SlidingWindow::Time {
                length: Duration::from_secs(5),
                buckets: 0
            },
            1
        )
        .build()
        .unwrap_err(),
        BreakerConfigError::InvalidTimeWindow { .. }
    ));
    assert_eq!(
        b().half_open_probes(0).build().unwrap_err(),
        BreakerConfigError::InvalidProbes(0)
    );
    assert_eq!(
        b().close_after(0).build().unwrap_err(),
        BreakerConfigError::InvalidCloseAfter(0)
    );
    assert_eq!(
        b().build_keyed(ByAuthority, 0).unwrap_err(),
        BreakerConfigError::InvalidCapacity(0)
    );
    assert!(!BreakerConfigError::ZeroFailures.to_string().is_empty());
}

/// Polls a future to completion on the current thread (it must not need a runtime).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

#[tokio::test(start_paused = true)]
async fn outcomes_count_whichever_thread_completes_the_call() {
    let (breaker, mut svc, mut h) =
        over_mock(CircuitBreakerLayer::builder().consecutive_failures(3));
    // Futures made here, completed on fresh threads that never saw this breaker.
    for i in 0..3 {
        let fut = svc.ready().await.unwrap().call(Request::new(()));
        let (_, send) = h.next_request().await.unwrap();
        send.send_response(status(500));
        let res = std::thread::spawn(move || block_on(fut)).join().unwrap();
        assert_eq!(res.unwrap().status(), 500);
        let expected = if i < 2 { State::Closed } else { State::Open };
        assert_eq!(breaker.state(), expected);
    }
    let m = breaker.metrics();
    assert_eq!((m.calls, m.failures), (3, 3));
    // A probe cancelled on another thread gives its slot back too.
    breaker.reset();
    let fut = svc.ready().await.unwrap().call(Request::new(()));
    std::thread::spawn(move || drop(fut)).join().unwrap();
    assert_eq!(breaker.metrics().cancelled, 1);
}

#[tokio::test(start_paused = true)]
async fn a_call_outliving_its_breaker_completes_quietly() {
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .build()
        .unwrap();
    let (mut svc, mut h) = service(&layer);
    let fut = svc.ready().await.unwrap().call(Request::new(()));
    drop(svc);
    drop(layer);
    let (_, send) = h.next_request().await.unwrap();
    send.send_response(status(500));
    // Completed on another thread after the layer and the service are gone: the future's
    // breaker records it.
    let res = std::thread::spawn(move || block_on(fut)).join().unwrap();
    assert_eq!(res.unwrap().status(), 500);
}

#[tokio::test(start_paused = true)]
async fn many_breakers_on_one_thread_keep_their_own_counts() {
    // Many breakers used from one thread keep their own counts.
    let layers: Vec<_> = (0..40)
        .map(|_| {
            CircuitBreakerLayer::builder()
                .consecutive_failures(100)
                .build()
                .unwrap()
        })
        .collect();
    let mut services: Vec<_> = layers.iter().map(service).collect();
    for round in 0..3 {
        for (svc, h) in services.iter_mut() {
            let _ = call(svc, h, Reply::Status(if round == 0 { 500 } else { 200 })).await;
        }
    }
    for layer in &layers {
        let m = layer.handle().metrics();
        assert_eq!((m.calls, m.failures, m.successes), (3, 1, 2));
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_breaker_is_freed_with_its_last_service_and_future() {
    let sentinel = Arc::new(());
    let held = sentinel.clone();
    let layer = CircuitBreakerLayer::builder()
        .on_transition(move |_| {
            let _ = &held;
        })
        .build()
        .unwrap();
    let (mut svc, mut h) = service(&layer);
    let _ = call(&mut svc, &mut h, Reply::Status(200)).await;
    let fut = svc.ready().await.unwrap().call(Request::new(()));
    drop(svc);
    drop(layer);
    // The pending call's future still holds the breaker...
    assert_eq!(Arc::strong_count(&sentinel), 2);
    drop(fut);
    // ...and nothing else does.
    assert_eq!(
        Arc::strong_count(&sentinel),
        1,
        "the dropped breaker was freed"
    );
}

#[tokio::test(start_paused = true)]
async fn any_service_with_a_closure_classifier_and_closure_keys() {
    use resile_breaker::{classify_fn, BreakerVerdict};

    // Not HTTP: the "response" is a code; the classifier says what fails.
    let layer = CircuitBreakerLayer::builder()
        .consecutive_failures(2)
        .classifier(classify_fn(|r: Result<&u32, _>| match r {
            Ok(code) if *code >= 500 => BreakerVerdict::Failure,
            Ok(_) => BreakerVerdict::Success,
            Err(_) => BreakerVerdict::Failure,
        }))
        .build_keyed(|req: &(&'static str, u32)| Some(req.0), 8)
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(tower::service_fn(|req: (&'static str, u32)| async move {
        Ok::<u32, std::io::Error>(req.1)
    }));
    for _ in 0..2 {
        assert_eq!(
            svc.ready().await.unwrap().call(("db", 503)).await.unwrap(),
            503
        );
    }
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(("db", 200))
        .await
        .unwrap_err();
    assert!(err.is::<BreakerOpen>());
    assert_eq!(
        svc.ready()
            .await
            .unwrap()
            .call(("cache", 200))
            .await
            .unwrap(),
        200
    );
    assert_eq!(handle.state("db"), Some(State::Open));
    assert_eq!(handle.state("cache"), Some(State::Closed));
    let m = handle.metrics();
    assert_eq!((m.failures, m.successes, m.rejections), (2, 1, 1));
}
