//! The server-pause layer: no quota, only servers' pauses (tokio's paused clock).

use std::convert::Infallible;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use resile_classify::LocalRejection;
use tokio::time::Instant;
use tower::{service_fn, Service, ServiceExt};
use tower_layer::Layer;

use super::{PausePolicy, ServerPauseLayer, WaitTooLong};
use resile_classify::AllRequests;

type Req = Request<()>;

/// One scripted answer: status, `Retry-After`, and how long the server takes to send it.
type Answer = (StatusCode, Option<&'static str>, Duration);

/// A backend answering the n-th request with `answers[n]`, then `200` at once.
fn scripted(
    answers: Vec<Answer>,
) -> impl Service<Req, Response = Response<()>, Error = Infallible, Future: Send> + Clone {
    let n = Arc::new(AtomicUsize::new(0));
    service_fn(move |_req: Req| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        let (status, retry_after, latency) =
            answers
                .get(i)
                .copied()
                .unwrap_or((StatusCode::OK, None, Duration::ZERO));
        async move {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let mut res = Response::new(());
            *res.status_mut() = status;
            if let Some(v) = retry_after {
                res.headers_mut().insert("retry-after", v.parse().unwrap());
            }
            Ok::<_, Infallible>(res)
        }
    })
}

fn too_many(retry_after: &'static str) -> Answer {
    (
        StatusCode::TOO_MANY_REQUESTS,
        Some(retry_after),
        Duration::ZERO,
    )
}

async fn send<S>(svc: &mut S) -> Result<Response<()>, tower::BoxError>
where
    S: Service<Req, Response = Response<()>, Error = tower::BoxError>,
{
    svc.ready().await?.call(Request::new(())).await
}

/// The time left of the client-wide pause.
fn word(layer: &ServerPauseLayer<AllRequests>) -> Duration {
    layer.remaining(&())
}

#[tokio::test(start_paused = true)]
async fn no_pause_is_ready_at_once_and_never_waits() {
    let layer = ServerPauseLayer::client_wide();
    let mut svc = layer.layer(scripted(Vec::new()));
    let start = Instant::now();
    for _ in 0..1000 {
        // Ready on the first poll, never pending.
        assert!(matches!(
            poll_fn(|cx| Poll::Ready(svc.poll_ready(cx))).await,
            Poll::Ready(Ok(()))
        ));
        assert_eq!(svc.call(Request::new(())).await.unwrap().status(), 200);
    }
    assert_eq!(word(&layer), Duration::ZERO);
    assert_eq!(layer.paused_keys(), 0);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_429_through_one_clone_pauses_another_for_exactly_the_hint() {
    let layer = ServerPauseLayer::client_wide();
    let mut a = layer.layer(scripted(vec![too_many("2")]));
    let mut b = a.clone();
    let start = Instant::now();
    assert_eq!(send(&mut a).await.unwrap().status(), 429);
    assert_ne!(word(&layer), Duration::ZERO);
    assert_eq!(word(&layer), Duration::from_secs(2));
    // b never saw the 429, and waits exactly the server's 2 s.
    send(&mut b).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    // Then nothing paces: a goes at once, and the expired pause was cleared.
    send(&mut a).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(word(&layer), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn every_waiting_clone_wakes_at_the_end_of_the_pause() {
    let layer = ServerPauseLayer::client_wide();
    let svc = layer.layer(scripted(vec![too_many("3")]));
    let start = Instant::now();
    assert_eq!(
        svc.clone()
            .oneshot(Request::new(()))
            .await
            .unwrap()
            .status(),
        429
    );
    let mut tasks = Vec::new();
    for i in 0..50u64 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            // Arrivals spread over the pause.
            tokio::time::sleep(Duration::from_millis(50 * i)).await;
            svc.oneshot(Request::new(())).await.unwrap();
            start.elapsed()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Duration::from_secs(3));
    }
}

#[tokio::test(start_paused = true)]
async fn a_pause_past_the_maximum_wait_fails_fast() {
    let layer = ServerPauseLayer::builder()
        .max_wait(Duration::from_secs(1))
        .build(AllRequests);
    let mut svc = layer.layer(scripted(vec![too_many("5")]));
    send(&mut svc).await.unwrap();
    let start = Instant::now();
    let err = send(&mut svc).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    let e = err.downcast_ref::<WaitTooLong>().expect("WaitTooLong");
    assert_eq!(e.wait, Duration::from_secs(5));
    assert_eq!(e.max_wait, Duration::from_secs(1));
    assert!(err.source().is_some_and(|s| s.is::<LocalRejection>()));
    // Within the maximum wait, a request waits for the rest of the pause.
    tokio::time::advance(Duration::from_millis(4500)).await;
    send(&mut svc).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(5));

    // A zero maximum wait never waits.
    let layer = ServerPauseLayer::builder()
        .max_wait(Duration::ZERO)
        .build(AllRequests);
    let mut svc = layer.layer(scripted(vec![too_many("1")]));
    send(&mut svc).await.unwrap();
    assert!(send(&mut svc).await.unwrap_err().is::<WaitTooLong>());
}

#[tokio::test(start_paused = true)]
async fn an_expired_pause_is_cleared_without_waiting() {
    let layer = ServerPauseLayer::client_wide();
    let mut svc = layer.layer(scripted(vec![too_many("1")]));
    send(&mut svc).await.unwrap();
    assert_ne!(word(&layer), Duration::ZERO);
    tokio::time::advance(Duration::from_secs(1)).await;
    let start = Instant::now();
    send(&mut svc).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(word(&layer), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_hostile_retry_after_is_cut_to_the_maximum_pause() {
    // The default hints: pauses cut to 10 minutes; a 30 s maximum wait fails fast.
    let layer = ServerPauseLayer::client_wide();
    let mut svc = layer.layer(scripted(vec![too_many("99999999999999999999")]));
    send(&mut svc).await.unwrap();
    let err = send(&mut svc).await.unwrap_err();
    let e = err.downcast_ref::<WaitTooLong>().expect("WaitTooLong");
    assert_eq!(e.wait, Duration::from_secs(600));
    assert_eq!(e.max_wait, Duration::from_secs(30));

    // With room to wait, the pause holds exactly 10 minutes, not the header's eons.
    let layer = ServerPauseLayer::builder()
        .max_wait(Duration::from_secs(3600))
        .build(AllRequests);
    let mut svc = layer.layer(scripted(vec![too_many("99999999999999999999")]));
    send(&mut svc).await.unwrap();
    let start = Instant::now();
    send(&mut svc).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(600));

    // A hint of zero, or one from a status that is not 429/503, pauses nothing.
    let layer = ServerPauseLayer::client_wide();
    let mut svc = layer.layer(scripted(vec![
        too_many("0"),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("5"), Duration::ZERO),
        (StatusCode::OK, Some("5"), Duration::ZERO),
        (StatusCode::SERVICE_UNAVAILABLE, None, Duration::ZERO),
    ]));
    let start = Instant::now();
    for _ in 0..5 {
        send(&mut svc).await.unwrap();
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(word(&layer), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn ignoring_hints_never_waits() {
    let layer = ServerPauseLayer::builder()
        .policy(PausePolicy::ignore())
        .build(AllRequests);
    let mut svc = layer.layer(scripted(vec![too_many("5")]));
    let start = Instant::now();
    assert_eq!(send(&mut svc).await.unwrap().status(), 429);
    send(&mut svc).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(word(&layer), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_hint_reaches_a_clone_after_the_caller_is_dropped() {
    let layer = ServerPauseLayer::client_wide();
    let mut a = layer.layer(scripted(vec![(
        StatusCode::TOO_MANY_REQUESTS,
        Some("2"),
        Duration::from_secs(1),
    )]));
    let mut b = a.clone();
    a.ready().await.unwrap();
    let in_flight = a.call(Request::new(()));
    // The future outlives the layer and the service that made it; a clone still lives.
    drop(a);
    drop(layer);
    let start = Instant::now();
    assert_eq!(in_flight.await.unwrap().status(), 429);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    send(&mut b).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn the_longest_pause_wins_and_holds_a_waiting_request() {
    // Three requests in flight: answered 429 "2" at once (a pause until 2 s), 429 "5" after 1 s
    // (until 6 s, while a fourth request already waits for the first pause to end), and 429 "1"
    // after 1.5 s (until 2.5 s: shorter, it does not shorten the pause in force).
    let layer = ServerPauseLayer::client_wide();
    let svc = layer.layer(scripted(vec![
        too_many("2"),
        (
            StatusCode::TOO_MANY_REQUESTS,
            Some("5"),
            Duration::from_secs(1),
        ),
        (
            StatusCode::TOO_MANY_REQUESTS,
            Some("1"),
            Duration::from_millis(1500),
        ),
    ]));
    let start = Instant::now();
    let (mut a, mut c, mut d) = (svc.clone(), svc.clone(), svc.clone());
    a.ready().await.unwrap();
    c.ready().await.unwrap();
    d.ready().await.unwrap();
    let first = a.call(Request::new(()));
    let second = tokio::spawn(c.call(Request::new(())));
    let third = tokio::spawn(d.call(Request::new(())));
    assert_eq!(first.await.unwrap().status(), 429);
    let waiter = tokio::spawn(svc.clone().oneshot(Request::new(())));
    assert_eq!(second.await.unwrap().unwrap().status(), 429);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(third.await.unwrap().unwrap().status(), 429);
    assert_eq!(start.elapsed(), Duration::from_millis(1500));
    // The waiter woke at 2 s, saw the pause extended to 6 s, and went at 6 s.
    assert_eq!(waiter.await.unwrap().unwrap().status(), 200);
    assert_eq!(start.elapsed(), Duration::from_secs(6));
    send(&mut svc.clone()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(6));

    // The same with a maximum wait of 3 s: the extension (6 s in all) is past it, and the waiter
    // fails as soon as it sees it, at 2 s.
    let layer = ServerPauseLayer::builder()
        .max_wait(Duration::from_secs(3))
        .build(AllRequests);
    let svc = layer.layer(scripted(vec![
        too_many("2"),
        (
            StatusCode::TOO_MANY_REQUESTS,
            Some("5"),
            Duration::from_secs(1),
        ),
    ]));
    let start = Instant::now();
    let (mut a, mut c) = (svc.clone(), svc.clone());
    a.ready().await.unwrap();
    c.ready().await.unwrap();
    let first = a.call(Request::new(()));
    let second = tokio::spawn(c.call(Request::new(())));
    first.await.unwrap();
    let waiter = tokio::spawn(svc.clone().oneshot(Request::new(())));
    second.await.unwrap().unwrap();
    let err = waiter.await.unwrap().unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    let e = err.downcast_ref::<WaitTooLong>().expect("WaitTooLong");
    assert_eq!(e.wait, Duration::from_secs(6));
    assert_eq!(e.max_wait, Duration::from_secs(3));
}

/// A backend answering each host with its own script (host `a` or `b`), then `200`.
fn per_host(
    a: Vec<Answer>,
    b: Vec<Answer>,
) -> impl Service<Req, Response = Response<()>, Error = Infallible, Future: Send> + Clone {
    let (a, b) = (scripted(a), scripted(b));
    service_fn(move |req: Req| {
        let mut backend = if req.uri().host() == Some("a") {
            a.clone()
        } else {
            b.clone()
        };
        async move { backend.call(req).await }
    })
}

fn to(host: &str) -> Req {
    Request::get(format!("http://{host}/")).body(()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn one_host_asking_for_an_hour_never_holds_back_another() {
    let layer = ServerPauseLayer::per_host();
    let svc = layer.layer(per_host(
        vec![(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("3600"),
            Duration::ZERO,
        )],
        Vec::new(),
    ));
    let start = Instant::now();
    assert_eq!(svc.clone().oneshot(to("a")).await.unwrap().status(), 503);
    // Host b is not paused, whatever host a asked for.
    for _ in 0..10 {
        assert_eq!(svc.clone().oneshot(to("b")).await.unwrap().status(), 200);
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    // Host a (any case) fails fast: an hour is past the 30 s maximum wait.
    let err = svc.clone().oneshot(to("A")).await.unwrap_err();
    let e = err.downcast_ref::<WaitTooLong>().expect("WaitTooLong");
    assert_eq!(
        e.wait,
        Duration::from_secs(600),
        "cut to the 10-minute maximum pause"
    );
    assert_eq!(layer.paused_keys(), 1);
    // A request with no authority has no key: never paused, pauses nothing.
    assert_eq!(
        svc.clone()
            .oneshot(Request::new(()))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(start_paused = true)]
async fn a_host_waits_for_its_own_pause_only() {
    let layer = ServerPauseLayer::per_host();
    let svc = layer.layer(per_host(vec![too_many("2")], vec![too_many("5")]));
    let start = Instant::now();
    assert_eq!(svc.clone().oneshot(to("a")).await.unwrap().status(), 429);
    assert_eq!(svc.clone().oneshot(to("b")).await.unwrap().status(), 429);
    let a = tokio::spawn(svc.clone().oneshot(to("a")));
    let b = tokio::spawn(svc.clone().oneshot(to("b")));
    a.await.unwrap().unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    b.await.unwrap().unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    // Both pauses have ended and are cleared as their hosts are used again.
    svc.clone().oneshot(to("a")).await.unwrap();
    svc.clone().oneshot(to("b")).await.unwrap();
    assert_eq!(layer.paused_keys(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_table_of_pauses_is_bounded() {
    let layer = ServerPauseLayer::builder()
        .max_keys(4)
        .build(|req: &Req| Some(req.uri().host().unwrap_or_default().to_owned()));
    // Every host answers 429 "60".
    let svc = layer.layer(service_fn(|_req: Req| async {
        let mut res = Response::new(());
        *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        res.headers_mut()
            .insert("retry-after", "60".parse().unwrap());
        Ok::<_, Infallible>(res)
    }));
    for i in 0..100 {
        svc.clone().oneshot(to(&format!("h{i}"))).await.unwrap();
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(layer.paused_keys() <= 4);
    }
    assert_eq!(layer.paused_keys(), 4);
    // The latest hosts are the ones kept; the first ones' pauses made room.
    assert!(layer.remaining(&"h99".to_owned()) > Duration::ZERO);
    assert_eq!(layer.remaining(&"h0".to_owned()), Duration::ZERO);
    // Once the pauses end, the next pause clears them.
    tokio::time::advance(Duration::from_secs(61)).await;
    svc.clone().oneshot(to("late")).await.unwrap();
    assert_eq!(layer.paused_keys(), 1);
}

#[test]
fn the_layer_is_a_clone_and_debug_config_value() {
    let layer = ServerPauseLayer::builder()
        .max_wait(Duration::from_secs(3))
        .build(AllRequests);
    let text = format!("{:?}", layer.clone());
    assert!(text.contains("max_wait: 3s"), "{text}");
    assert!(text.contains("paused_keys: 0"), "{text}");
    let svc = layer.layer(DebugService);
    assert!(format!("{svc:?}").contains("ServerPause"));
}

#[derive(Debug, Clone)]
struct DebugService;
