//! The hints-only client layer: no quota, only servers' pauses (tokio's paused clock).

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

use crate::client::pause::{PauseCheck, ServerPause};
use crate::client::registry;
use crate::client::{ServerHints, WaitTooLong};
use crate::RateLimitLayer;

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

/// The layer's pause word (0: no pause).
fn word(layer: &RateLimitLayer) -> u64 {
    layer.server_pause().expect("a hints-only layer").raw()
}

/// The store was never reserved from: its TAT is still zero (a full bucket, nothing queued).
fn assert_store_untouched(layer: &RateLimitLayer) {
    let d = layer.store().peek(layer.quota());
    assert!(d.allowed);
    assert_eq!(d.reset_after, Duration::ZERO, "{d:?}");
    assert_eq!(d.remaining, d.limit);
}

#[tokio::test(start_paused = true)]
async fn hints_only_no_pause_is_ready_at_once_and_leaves_the_store_untouched() {
    let layer = RateLimitLayer::hints_only();
    assert!(layer.is_hints_only());
    assert!(!RateLimitLayer::new(*layer.quota()).is_hints_only());
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
    // A pacing layer at 2^32 - 1 per second would have moved its TAT 1 ns per request.
    assert_store_untouched(&layer);
    assert_eq!(word(&layer), 0);
    assert_eq!(start.elapsed(), Duration::ZERO);
    // A permit held and dropped unused gives nothing back (nothing was taken).
    let mut held = svc.clone();
    held.ready().await.unwrap();
    drop(held);
    assert_store_untouched(&layer);
}

#[tokio::test(start_paused = true)]
async fn hints_only_a_429_through_one_clone_pauses_another_for_exactly_the_hint() {
    let layer = RateLimitLayer::hints_only();
    let mut a = layer.layer(scripted(vec![too_many("2")]));
    let mut b = a.clone();
    let start = Instant::now();
    assert_eq!(send(&mut a).await.unwrap().status(), 429);
    assert_ne!(word(&layer), 0);
    // The store records the pause for observers (on its own clock, the real one).
    let seen = layer.store().peek(layer.quota()).retry_after;
    assert!(
        seen > Duration::from_secs(1) && seen <= Duration::from_secs(2),
        "{seen:?}"
    );
    // b never saw the 429, and waits exactly the server's 2 s.
    assert!(poll_fn(|cx| Poll::Ready(b.poll_ready(cx)))
        .await
        .is_pending());
    send(&mut b).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    // Then nothing paces: a goes at once, and the expired pause was cleared.
    send(&mut a).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(word(&layer), 0);
}

#[tokio::test(start_paused = true)]
async fn hints_only_every_waiting_clone_wakes_at_the_end_of_the_pause() {
    let layer = RateLimitLayer::hints_only();
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
async fn hints_only_a_pause_past_the_maximum_wait_fails_fast() {
    let layer = RateLimitLayer::hints_only_builder()
        .max_wait(Duration::from_secs(1))
        .build();
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
    let layer = RateLimitLayer::hints_only_builder()
        .max_wait(Duration::ZERO)
        .build();
    let mut svc = layer.layer(scripted(vec![too_many("1")]));
    send(&mut svc).await.unwrap();
    assert!(send(&mut svc).await.unwrap_err().is::<WaitTooLong>());
}

#[tokio::test(start_paused = true)]
async fn hints_only_an_expired_pause_is_cleared_without_waiting() {
    let layer = RateLimitLayer::hints_only();
    let mut svc = layer.layer(scripted(vec![too_many("1")]));
    send(&mut svc).await.unwrap();
    assert_ne!(word(&layer), 0);
    tokio::time::advance(Duration::from_secs(1)).await;
    let start = Instant::now();
    send(&mut svc).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(word(&layer), 0);
}

#[tokio::test(start_paused = true)]
async fn hints_only_a_hostile_retry_after_is_cut_to_the_maximum_pause() {
    // The default hints: pauses cut to 10 minutes; a 30 s maximum wait fails fast.
    let layer = RateLimitLayer::hints_only();
    let mut svc = layer.layer(scripted(vec![too_many("99999999999999999999")]));
    send(&mut svc).await.unwrap();
    let err = send(&mut svc).await.unwrap_err();
    let e = err.downcast_ref::<WaitTooLong>().expect("WaitTooLong");
    assert_eq!(e.wait, Duration::from_secs(600));
    assert_eq!(e.max_wait, Duration::from_secs(30));

    // With room to wait, the pause holds exactly 10 minutes, not the header's eons.
    let layer = RateLimitLayer::hints_only_builder()
        .max_wait(Duration::from_secs(3600))
        .build();
    let mut svc = layer.layer(scripted(vec![too_many("99999999999999999999")]));
    send(&mut svc).await.unwrap();
    let start = Instant::now();
    send(&mut svc).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(600));

    // A hint of zero, or one from a status that is not 429/503, pauses nothing.
    let layer = RateLimitLayer::hints_only();
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
    assert_eq!(word(&layer), 0);
}

#[tokio::test(start_paused = true)]
async fn hints_only_ignoring_hints_never_waits() {
    let layer = RateLimitLayer::hints_only_builder()
        .server_hints(ServerHints::ignore())
        .build();
    let mut svc = layer.layer(scripted(vec![too_many("5")]));
    let start = Instant::now();
    assert_eq!(send(&mut svc).await.unwrap().status(), 429);
    send(&mut svc).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(word(&layer), 0);
    assert_store_untouched(&layer);
}

#[tokio::test(start_paused = true)]
async fn hints_only_the_layer_is_registered_while_a_layer_or_service_lives() {
    let layer = RateLimitLayer::hints_only();
    let id = layer
        .registered()
        .expect("a hints-only layer obeying hints is registered");
    assert!(registry::is_registered(id));
    let svc = layer.layer(scripted(Vec::new()));
    let clone = svc.clone();
    drop(layer);
    drop(svc);
    assert!(registry::is_registered(id));
    drop(clone);
    assert!(!registry::is_registered(id));
    // Nothing to reach for a layer that ignores hints, nor for a pacing layer.
    let ignoring = RateLimitLayer::hints_only_builder()
        .server_hints(ServerHints::ignore())
        .build();
    assert_eq!(ignoring.registered(), None);
    assert_eq!(RateLimitLayer::new(*ignoring.quota()).registered(), None);
}

#[tokio::test(start_paused = true)]
async fn hints_only_a_hint_reaches_a_clone_after_the_caller_is_dropped() {
    let layer = RateLimitLayer::hints_only();
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
async fn hints_only_a_future_outliving_every_owner_drops_its_hint() {
    let layer = RateLimitLayer::hints_only();
    let id = layer.registered().unwrap();
    let mut svc = layer.layer(scripted(vec![(
        StatusCode::TOO_MANY_REQUESTS,
        Some("2"),
        Duration::from_secs(1),
    )]));
    svc.ready().await.unwrap();
    let in_flight = svc.call(Request::new(()));
    drop(svc);
    drop(layer);
    assert!(!registry::is_registered(id));
    // Nobody left to pause: the response comes back as it is.
    assert_eq!(in_flight.await.unwrap().status(), 429);
}

#[tokio::test(start_paused = true)]
async fn hints_only_the_longest_pause_wins_and_holds_a_waiting_request() {
    // Three requests in flight: answered 429 "2" at once (a pause until 2 s), 429 "5" after 1 s
    // (until 6 s, while a fourth request already waits for the first pause to end), and 429 "1"
    // after 1.5 s (until 2.5 s: shorter, it does not shorten the pause in force).
    let layer = RateLimitLayer::hints_only();
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
    let layer = RateLimitLayer::hints_only_builder()
        .max_wait(Duration::from_secs(3))
        .build();
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

#[tokio::test(start_paused = true)]
async fn hints_only_layer_and_service_debug() {
    let layer = RateLimitLayer::hints_only();
    let svc = layer.layer(scripted(vec![too_many("4")]));
    let text = format!("{layer:?}");
    assert!(text.contains("hints_only: true"), "{text}");
    assert!(text.contains("paused: false"), "{text}");
    svc.clone().oneshot(Request::new(())).await.unwrap();
    let text = format!("{layer:?}");
    assert!(text.contains("remaining: 4s"), "{text}");
    let debuggable = layer.layer(DebugService);
    assert!(format!("{debuggable:?}").contains("hints_only: true"));
    assert!(format!("{:?}", RateLimitLayer::hints_only_builder()).contains("max_wait"));
}

#[derive(Debug, Clone)]
struct DebugService;

/// Many threads raise and clear one pause at once: a pause still running at the clearers'
/// reading of the clock is never lost, and the longest one raised is what stays.
#[test]
fn hints_only_concurrent_raises_and_clears_never_lose_a_live_pause() {
    let pause = Arc::new(ServerPause::new());
    let base = tokio::time::Instant::now();
    // Pauses set at `base` for 1..2000 ns; clearers read the clock at base + 1000 ns, so the
    // pauses up to 1000 ns are expired for them and the longer ones are live.
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let pause = Arc::clone(&pause);
            std::thread::spawn(move || {
                let mut longest = 0;
                for i in 0..20_000u64 {
                    let delay = 1 + (i * 7 + t * 13) % 1000 + if t == 0 { i / 20 } else { 0 };
                    longest = longest.max(delay);
                    pause.extend(Duration::from_nanos(delay), base);
                    let until = pause.until();
                    if until != 0 {
                        let _ = pause.check(until, base + Duration::from_nanos(1000));
                    }
                }
                longest
            })
        })
        .collect();
    let longest = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .max()
        .unwrap();
    assert!(longest > 1000);
    // The longest pause, live for every clearer, is what stays.
    assert_eq!(
        pause.remaining(base),
        Duration::from_nanos(longest),
        "a live pause was lost"
    );
    assert!(matches!(
        pause.check(pause.until(), base + Duration::from_nanos(1000)),
        PauseCheck::Wait { wait, .. } if wait == Duration::from_nanos(longest - 1000)
    ));
    // Once the clock passes it, it clears.
    assert!(matches!(
        pause.check(pause.until(), base + Duration::from_nanos(longest)),
        PauseCheck::Clear
    ));
    assert_eq!(pause.until(), 0);
}

/// A moving clock: one thread sets short pauses that keep expiring and checks after each that
/// its pause is in force, while others clear every pause they see expired. A clear that landed
/// on a pause raised after the clearer read the word would show as a lost pause.
#[test]
fn hints_only_clearing_an_expired_pause_never_clears_a_newer_one() {
    use std::sync::atomic::{AtomicBool, AtomicU64};

    use crate::client::pause::PauseWord;

    let word = Arc::new(PauseWord::new());
    let clock = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let cleared = Arc::new(AtomicU64::new(0));
    let clearers: Vec<_> = (0..3)
        .map(|_| {
            let (word, clock) = (Arc::clone(&word), Arc::clone(&clock));
            let (stop, cleared) = (Arc::clone(&stop), Arc::clone(&cleared));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let now = clock.load(Ordering::Relaxed);
                    let seen = word.load();
                    if seen != 0 && seen <= now && word.clear(seen) {
                        cleared.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let mut lost = 0u64;
    let mut i = 0u64;
    // At least 200,000 pauses, and on until the clearers have cleared some (bounded).
    while i < 200_000 || (cleared.load(Ordering::Relaxed) < 100 && i < 50_000_000) {
        i += 1;
        let now = i * 10;
        clock.store(now, Ordering::Relaxed);
        // Until 8 ns after `now`: the previous pause (until now - 2) is expired for a clearer
        // that read the clock at `now`; this one cannot be until the clock moves again.
        word.raise_to(now + 8);
        if word.load() < now + 8 {
            lost += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in clearers {
        t.join().unwrap();
    }
    let cleared = cleared.load(Ordering::Relaxed);
    assert_eq!(
        lost, 0,
        "pauses lost to a concurrent clear ({cleared} clears)"
    );
    assert!(cleared > 0, "the clearers never ran");
}
