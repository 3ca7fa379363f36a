//! The adaptive limiter on tokio's paused clock, against model servers with hidden limits.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use resile_classify::{HostKey, LocalRejection};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

use super::state::{Feedback, Host, Slot, Wake};
use super::*;
use crate::tests::nz;
use crate::Quota;

/// A server with a GCRA limit of `rate` per second and `burst`, that answers `429` with
/// `Retry-After` (whole seconds, rounded up) past it, and optionally publishes
/// `X-RateLimit-Limit` / `-Remaining` / `-Reset` (seconds until the bucket is full, rounded up).
#[derive(Clone)]
struct Model {
    inner: Arc<Mutex<ModelState>>,
}

struct ModelState {
    interval: Duration,
    tolerance: Duration,
    tat: Instant,
    burst: u32,
    publish: bool,
    /// (time since start, status) of every request received.
    log: Vec<(Duration, u16)>,
    start: Instant,
}

impl Model {
    fn new(rate: u32, burst: u32, publish: bool) -> Model {
        let interval = Duration::from_secs(1) / rate;
        let now = Instant::now();
        Model {
            inner: Arc::new(Mutex::new(ModelState {
                interval,
                tolerance: interval * (burst - 1),
                tat: now,
                burst,
                publish,
                log: Vec::new(),
                start: now,
            })),
        }
    }

    fn log(&self) -> Vec<(Duration, u16)> {
        self.inner.lock().unwrap().log.clone()
    }
}

impl Service<Request<()>> for Model {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        let mut s = self.inner.lock().unwrap();
        let now = Instant::now();
        let tat = s.tat.max(now);
        let allowed = tat <= now + s.tolerance;
        let mut res = Response::builder();
        if allowed {
            s.tat = tat + s.interval;
        } else {
            let wait = tat - s.tolerance - now;
            res = res
                .status(429)
                .header("retry-after", resile_retry_after::ceil_seconds(wait).max(1));
        }
        if s.publish {
            let full_in = s.tat.saturating_duration_since(now);
            let used = full_in.as_nanos().div_ceil(s.interval.as_nanos()) as u32;
            res = res
                .header("x-ratelimit-limit", s.burst)
                .header("x-ratelimit-remaining", s.burst.saturating_sub(used))
                .header(
                    "x-ratelimit-reset",
                    resile_retry_after::ceil_seconds(full_in),
                );
        }
        let at = now - s.start;
        let res = res.body(()).unwrap();
        s.log.push((at, res.status().as_u16()));
        ready(Ok(res))
    }
}

fn get() -> Request<()> {
    Request::get("http://api.test/").body(()).unwrap()
}

fn host() -> HostKey {
    HostKey::from(http::uri::Authority::from_static("api.test"))
}

/// `workers` tasks sending back to back through `layer` for `secs` seconds.
async fn drive(layer: &AdaptiveRateLimitLayer, model: &Model, workers: usize, secs: u64) {
    let end = Instant::now() + Duration::from_secs(secs);
    let svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(model.clone());
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                while Instant::now() < end {
                    svc.clone().oneshot(get()).await.expect("no local refusal");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Accepted per second and the share of 429s among requests received in `[from, to)`.
fn window(log: &[(Duration, u16)], from: u64, to: u64) -> (f64, f64) {
    let (from, to) = (Duration::from_secs(from), Duration::from_secs(to));
    let sent: Vec<u16> = log
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .map(|(_, s)| *s)
        .collect();
    let ok = sent.iter().filter(|s| **s == 200).count() as f64;
    let throttled = sent.iter().filter(|s| **s == 429).count() as f64;
    (
        ok / (to - from).as_secs_f64(),
        throttled / sent.len().max(1) as f64,
    )
}

fn adaptive(initial: u32) -> AdaptiveRateLimitLayerBuilder {
    crate::RateLimitLayer::adaptive(Quota::per_second(nz(initial)))
}

#[tokio::test(start_paused = true)]
async fn converges_on_a_hidden_limit() {
    let model = Model::new(50, 50, false);
    let layer = adaptive(10).build();
    drive(&layer, &model, 200, 20).await;
    let log = model.log();
    let (rate, throttled) = window(&log, 10, 20);
    let learned = layer.host(&host()).unwrap().rate;
    eprintln!(
        "hidden 50/s: accepted {rate}/s over 10-20 s, {:.2} % 429, learned {learned:.1}/s",
        throttled * 100.0
    );
    assert!(
        (45.0..=55.0).contains(&rate),
        "accepted {rate}/s, learned {learned}/s"
    );
    assert!(throttled < 0.05, "{:.1} % throttled", throttled * 100.0);
    let (_, all_throttled) = window(&log, 0, 20);
    assert!(
        all_throttled < 0.05,
        "{:.1} % throttled overall",
        all_throttled * 100.0
    );
}

#[tokio::test(start_paused = true)]
async fn converges_on_a_small_burst_too() {
    let model = Model::new(50, 10, false);
    let layer = adaptive(10).build();
    drive(&layer, &model, 200, 20).await;
    let (rate, throttled) = window(&model.log(), 10, 20);
    eprintln!(
        "hidden 50/s burst 10: accepted {rate}/s over 10-20 s, {:.2} % 429",
        throttled * 100.0
    );
    // Each 429's Retry-After: 1 idles the host for a second its small burst cannot make up.
    assert!((38.0..=55.0).contains(&rate), "accepted {rate}/s");
    assert!(throttled < 0.05, "{:.1} % throttled", throttled * 100.0);
}

#[tokio::test(start_paused = true)]
async fn a_published_quota_gets_no_429() {
    let model = Model::new(50, 50, true);
    let layer = adaptive(10).build();
    drive(&layer, &model, 200, 20).await;
    let log = model.log();
    assert!(
        log.iter().all(|(_, s)| *s == 200),
        "a 429 with a published quota"
    );
    let (rate, _) = window(&log, 10, 20);
    eprintln!(
        "published 50/s: accepted {rate}/s over 10-20 s, no 429 in {} requests",
        log.len()
    );
    assert!((45.0..=55.0).contains(&rate), "accepted {rate}/s");
}

#[tokio::test(start_paused = true)]
async fn a_pause_releases_the_queue_at_the_learned_rate() {
    // The first request is answered 429 with Retry-After: 2, every other one 200.
    let first = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let server = {
        let (first, sent) = (first.clone(), sent.clone());
        tower::service_fn(move |_: Request<()>| {
            sent.lock().unwrap().push(Instant::now());
            let res = if first.fetch_add(1, Ordering::SeqCst) == 0 {
                Response::builder().status(429).header("retry-after", "2")
            } else {
                Response::builder()
            };
            ready(Ok::<_, Infallible>(res.body(()).unwrap()))
        })
    };
    let layer = adaptive(100).build();
    let svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(server);
    let start = Instant::now();
    let tasks: Vec<_> = (0..200)
        .map(|_| tokio::spawn(svc.clone().oneshot(get())))
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let learned = layer.host(&host()).unwrap().rate;
    assert!(learned < 100.0, "decreased: {learned}");
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 200);
    let pause_end = start + Duration::from_secs(2);
    assert_eq!(
        sent.iter().filter(|t| **t < pause_end).count(),
        1,
        "sent during the pause"
    );
    let first_100ms = sent
        .iter()
        .filter(|t| **t >= pause_end && **t < pause_end + Duration::from_millis(100))
        .count();
    // The learned rate's burst (1) and 100 ms of the rate set by the 429 (100 x 0.8).
    let allowed = 1 + 8;
    assert!(
        first_100ms <= allowed,
        "{first_100ms} sent in the first 100 ms (allowed {allowed})"
    );
    // And the queue is served in order, one slot apart.
    assert!(sent.windows(2).all(|w| w[0] <= w[1]));
}

#[tokio::test(start_paused = true)]
async fn the_queue_is_bounded_and_every_caller_gets_an_answer() {
    let layer = adaptive(10).max_queued(100).build();
    let svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(|_: Request<()>| {
            ready(Ok::<_, Infallible>(Response::new(())))
        }));
    let peak = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (layer, peak) = (layer.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                let q = layer.host(&host()).map_or(0, |h| h.queued);
                peak.fetch_max(q, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let tasks: Vec<_> = (0..10_000)
        .map(|_| tokio::spawn(svc.clone().oneshot(get())))
        .collect();
    let (mut ok, mut full) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => {
                let q = e.downcast_ref::<QueueFull>().expect("QueueFull, typed");
                assert_eq!(q.max_queued, 100);
                assert!(LocalRejection::find(&*e).is_some());
                full += 1;
            }
        }
    }
    watcher.abort();
    // One sent at once, 100 queued, the rest refused at once.
    assert_eq!((ok, full), (101, 9_899));
    assert!(peak.load(Ordering::SeqCst) <= 100);
    let h = layer.host(&host()).unwrap();
    assert_eq!((h.queued, h.in_flight), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_request_frees_its_place_and_its_slot() {
    let layer = adaptive(1).max_queued(3).build();
    let svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(|_: Request<()>| {
            ready(Ok::<_, Infallible>(Response::new(())))
        }));
    svc.clone().oneshot(get()).await.unwrap();
    let queued: Vec<_> = (0..3)
        .map(|_| tokio::spawn(svc.clone().oneshot(get())))
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(layer.host(&host()).unwrap().queued, 3);
    let err = svc.clone().oneshot(get()).await.unwrap_err();
    assert!(err.is::<QueueFull>());
    for t in &queued {
        t.abort();
    }
    for t in queued {
        assert!(t.await.unwrap_err().is_cancelled());
    }
    assert_eq!(layer.host(&host()).unwrap().queued, 0);
    // The three slots were given back: the next request waits one interval, not four.
    let start = Instant::now();
    svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_slot_past_the_maximum_wait_fails_at_once() {
    let layer = adaptive(1).max_wait(Duration::from_millis(1500)).build();
    let svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(|_: Request<()>| {
            ready(Ok::<_, Infallible>(Response::new(())))
        }));
    let (a, b) = (svc.clone().oneshot(get()), svc.clone().oneshot(get()));
    let c = svc.clone().oneshot(get());
    let start = Instant::now();
    let (a, b, c) = tokio::join!(a, b, c);
    a.unwrap();
    b.unwrap();
    let err = c.unwrap_err();
    let w = err.downcast_ref::<WaitTooLong>().expect("WaitTooLong");
    assert_eq!(w.wait, Duration::from_secs(2));
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn hosts_learn_apart() {
    let layer = adaptive(100).build();
    let svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(|req: Request<()>| {
            let status = if req.uri().host() == Some("slow.test") {
                429
            } else {
                200
            };
            let res = Response::builder()
                .status(status)
                .header("retry-after", "3600")
                .body(())
                .unwrap();
            ready(Ok::<_, Infallible>(res))
        }));
    let to = |h: &str| Request::get(format!("http://{h}/")).body(()).unwrap();
    assert_eq!(
        svc.clone().oneshot(to("slow.test")).await.unwrap().status(),
        429
    );
    // The pause (capped at 10 minutes) is past the maximum wait for slow.test only.
    let err = svc.clone().oneshot(to("slow.test")).await.unwrap_err();
    assert!(err.is::<WaitTooLong>());
    let start = Instant::now();
    for _ in 0..5 {
        assert_eq!(
            svc.clone().oneshot(to("fast.test")).await.unwrap().status(),
            200
        );
    }
    assert!(start.elapsed() < Duration::from_millis(50));
    let slow = HostKey::from(http::uri::Authority::from_static("slow.test"));
    let fast = HostKey::from(http::uri::Authority::from_static("fast.test"));
    assert_eq!(layer.host(&slow).unwrap().rate, 80.0);
    assert_eq!(layer.host(&fast).unwrap().rate, 100.0);
}

#[tokio::test(start_paused = true)]
async fn the_host_table_is_capped_and_forgets_idle_hosts() {
    let layer = adaptive(1000)
        .max_hosts(64)
        .idle_timeout(Duration::from_secs(60))
        .build();
    let mut svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(|_: Request<()>| {
            ready(Ok::<_, Infallible>(Response::new(())))
        }));
    for i in 0..10_000 {
        let req = Request::get(format!("http://h{i}.test/")).body(()).unwrap();
        svc.ready().await.unwrap().call(req).await.unwrap();
        assert!(layer.hosts() <= 64);
    }
}

fn aimd(initial: f64) -> Aimd {
    Aimd {
        initial,
        floor: 1.0,
        ceiling: 1000.0,
        burst: 1,
        decrease: 0.8,
        increase: 0.02,
        window: Duration::from_secs(1),
        max_queued: 10,
    }
}

fn throttle(sent_at: Instant) -> Feedback {
    Feedback {
        throttled: true,
        pause: None,
        published: None,
        sent_at,
    }
}

#[tokio::test(start_paused = true)]
async fn one_decrease_per_event_and_the_floor_holds() {
    let a = aimd(100.0);
    let t0 = Instant::now();
    let mut h = Host::new(&a, t0);
    let slots: Vec<Slot> = (0..3)
        .map(|_| h.reserve(&a, t0, Duration::from_secs(10)).unwrap())
        .collect();
    assert_eq!(slots[2].at - t0, Duration::from_millis(20));
    h.on_response(&a, t0, throttle(t0));
    assert_eq!(h.rate(), 80.0);
    // Answers to requests sent before the decrease do not decrease again.
    h.on_response(&a, t0, throttle(t0));
    h.on_response(&a, t0, throttle(t0));
    assert_eq!(h.rate(), 80.0);
    for i in 1..100 {
        let later = t0 + Duration::from_millis(i);
        h.on_response(&a, later, throttle(later));
    }
    assert_eq!(h.rate(), 1.0);
}

/// A client that always has a request waiting, from `now` to `until`: each request goes at
/// its turn.
fn saturate(h: &mut Host, a: &Aimd, now: &mut Instant, until: Instant) {
    while *now < until {
        let slot = h.reserve(a, *now, Duration::MAX).unwrap();
        if slot.at > *now {
            loop {
                match h.wake(a, slot, (*now).max(slot.at), *now, Duration::MAX) {
                    Wake::Go => break,
                    Wake::Sleep(t) => *now = t,
                    Wake::TooLong(_) => unreachable!(),
                }
            }
            *now = (*now).max(slot.at);
        }
        h.on_response(
            a,
            *now,
            Feedback {
                throttled: false,
                pause: None,
                published: None,
                sent_at: *now,
            },
        );
    }
}

#[tokio::test(start_paused = true)]
async fn slow_start_then_additive_increase_within_the_ceiling() {
    let mut a = aimd(10.0);
    a.ceiling = 100.0;
    let t0 = Instant::now();
    let mut h = Host::new(&a, t0);
    let mut now = t0;
    let mut rates = Vec::new();
    for s in 1..=5 {
        saturate(&mut h, &a, &mut now, t0 + Duration::from_secs(s));
        rates.push(h.rate());
    }
    assert_eq!(rates, [20.0, 40.0, 80.0, 100.0, 100.0]);
    h.on_response(&a, now, throttle(now));
    assert_eq!(h.rate(), 80.0);
    // Additive from here: 2 % of 80 per window used.
    let t1 = now;
    saturate(&mut h, &a, &mut now, t1 + Duration::from_millis(3500));
    let steps = (h.rate() - 80.0) / 1.6;
    assert!(
        steps >= 1.99 && (steps - steps.round()).abs() < 1e-6,
        "{}",
        h.rate()
    );
    // Idle windows raise nothing (the first look closes the last window used).
    now += Duration::from_secs(5);
    h.reserve(&a, now, Duration::MAX).unwrap();
    let before = h.rate();
    now += Duration::from_secs(5);
    h.reserve(&a, now, Duration::MAX).unwrap();
    assert_eq!(h.rate(), before);
}

/// Where a modelled request stands (mirrors `ResponseFuture`).
#[derive(Clone, Copy, Debug)]
enum Req {
    New,
    Queued(Slot, Instant),
    InFlight(Instant),
    Done,
}

/// Every interleaving of three requests on one host, each reserving, then (when queued)
/// waking or being cancelled, then answered (200 or 429 with a pause) or failing. Every
/// operation runs under the table's lock, so an interleaving of threads is an order of these
/// calls. After every step the host's account of queued and in-flight requests matches the
/// requests' own states.
#[tokio::test(start_paused = true)]
async fn every_interleaving_keeps_the_account_exact() {
    fn explore(h: &Host, a: &Aimd, reqs: [Req; 3], now: Instant, seen: &mut u64) {
        let queued = reqs.iter().filter(|r| matches!(r, Req::Queued(..))).count();
        let in_flight = reqs
            .iter()
            .filter(|r| matches!(r, Req::InFlight(_)))
            .count();
        assert_eq!((h.queued, h.in_flight), (queued, in_flight), "{reqs:?}");
        if reqs.iter().all(|r| matches!(r, Req::Done)) {
            *seen += 1;
            return;
        }
        let max_wait = Duration::from_secs(2);
        for i in 0..3 {
            // Each request's possible next steps, each explored from a copy of the state.
            let mut next: Vec<(Host, Req, Instant)> = Vec::new();
            let now = now + Duration::from_millis(40);
            match reqs[i] {
                Req::New => {
                    let mut h = h.clone();
                    let r = match h.reserve(a, now, max_wait) {
                        Ok(s) if s.at <= now => Req::InFlight(now),
                        Ok(s) => Req::Queued(s, now),
                        Err(_) => Req::Done,
                    };
                    next.push((h, r, now));
                }
                Req::Queued(slot, started) => {
                    // Cancelled.
                    let mut c = h.clone();
                    c.cancel_queued(slot);
                    next.push((c, Req::Done, now));
                    // Woken (early, or at its turn), as `ResponseFuture` does.
                    let mut w = h.clone();
                    let (r, at) = match w.wake(a, slot, now, started, max_wait) {
                        Wake::Go => (Req::InFlight(now), now),
                        // Its next look is at `t`.
                        Wake::Sleep(t) => (Req::Queued(slot, started), t),
                        Wake::TooLong(_) => (Req::Done, now),
                    };
                    next.push((w, r, at));
                }
                Req::InFlight(sent_at) => {
                    for fb in [false, true] {
                        let mut h = h.clone();
                        h.on_response(
                            a,
                            now,
                            Feedback {
                                throttled: fb,
                                pause: fb.then_some(Duration::from_millis(500)),
                                published: None,
                                sent_at,
                            },
                        );
                        next.push((h, Req::Done, now));
                    }
                    let mut e = h.clone();
                    e.ended_without_response();
                    next.push((e, Req::Done, now));
                }
                Req::Done => {}
            }
            for (h, r, now) in next {
                let mut reqs = reqs;
                reqs[i] = r;
                explore(&h, a, reqs, now, seen);
            }
        }
    }
    let a = aimd(10.0);
    let t0 = Instant::now();
    let mut seen = 0;
    explore(&Host::new(&a, t0), &a, [Req::New; 3], t0, &mut seen);
    assert!(seen > 10_000, "{seen} interleavings");
}

#[tokio::test(start_paused = true)]
async fn a_failed_request_leaves_the_account_when_it_ends() {
    let layer = adaptive(10).build();
    let mut svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(|_: Request<()>| {
            ready(Err::<Response<()>, tower::BoxError>(
                "connection reset".into(),
            ))
        }));
    let mut fut = svc.ready().await.unwrap().call(get());
    assert!((&mut fut).await.is_err());
    // Settled at completion, not only when the future is dropped.
    let h = layer.host(&host()).unwrap();
    assert_eq!((h.queued, h.in_flight), (0, 0));
    drop(fut);
    assert_eq!(layer.host(&host()).unwrap().in_flight, 0);
}

#[test]
fn a_host_entry_is_about_300_bytes() {
    let size = std::mem::size_of::<(u64, Host)>();
    assert!((200..=320).contains(&size), "{size} bytes");
}
