//! The client layer under tokio's paused clock.

use std::convert::Infallible;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use resile_classify::{
    transport_failure, BreakerVerdict, Classifier, LocalRejection, Outcome, OutcomeKind,
    RetryClass, TransportFailure,
};
use tokio::time::Instant;
use tower::{service_fn, Service, ServiceExt};
use tower_layer::Layer;

use super::{nz, FailingStore, SlowStore};
use crate::client::{NotReady, PausePolicy, WaitTooLong};
use crate::clock::TokioClock;
use crate::{MemoryStore, Quota, RateLimitLayer, StoreError};

type Req = Request<()>;

fn ok_service(
) -> impl Service<Req, Response = Response<()>, Error = Infallible, Future: Send> + Clone {
    service_fn(|_req: Req| async { Ok::<_, Infallible>(Response::new(())) })
}

fn layer(rate: u32, burst: u32) -> RateLimitLayer<MemoryStore<TokioClock>> {
    RateLimitLayer::builder(Quota::per_second(nz(rate)).with_burst(nz(burst)).unwrap())
        .clock(TokioClock::new())
        .build()
}

async fn send<S>(svc: &mut S) -> Result<Response<()>, tower::BoxError>
where
    S: Service<Req, Response = Response<()>, Error = tower::BoxError>,
{
    svc.ready().await?.call(Request::new(())).await
}

#[tokio::test(start_paused = true)]
async fn paces_n_requests_in_the_expected_time() {
    // 2 per second, burst 2: 10 requests take (10 - 2) x 500 ms.
    let mut svc = layer(2, 2).layer(ok_service());
    let start = Instant::now();
    for _ in 0..10 {
        send(&mut svc).await.unwrap();
    }
    assert_eq!(start.elapsed(), Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_limiter_first_come_first_served() {
    let layer = layer(10, 1);
    let svc = layer.layer(ok_service());
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let mut svc = svc.clone();
        let order = Arc::clone(&order);
        tasks.push(tokio::spawn(async move {
            send(&mut svc).await.unwrap();
            order.lock().unwrap().push((i, start.elapsed()));
        }));
        // Stagger the arrivals so that the reservation order is known.
        tokio::task::yield_now().await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let order = order.lock().unwrap();
    // 20 requests at 10 per second, burst 1: the last one 1.9 s after the first.
    assert_eq!(
        order.iter().map(|&(_, at)| at).max(),
        Some(Duration::from_millis(1900))
    );
    // Each caller got its own 100 ms slot, in arrival order.
    for &(i, at) in order.iter() {
        assert_eq!(at, Duration::from_millis(100 * i));
    }
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_maximum_fails_at_once() {
    let layer = RateLimitLayer::builder(Quota::per_second(nz(1)))
        .clock(TokioClock::new())
        .max_wait(Duration::from_secs(1))
        .build();
    let mut a = layer.layer(ok_service());
    let mut b = a.clone();
    let mut c = a.clone();
    // a holds the slot at 0, b waits for the slot at 1 s, c would wait 2 s: refused.
    assert!(matches!(
        poll_fn(|cx| Poll::Ready(a.poll_ready(cx))).await,
        Poll::Ready(Ok(()))
    ));
    assert!(poll_fn(|cx| Poll::Ready(b.poll_ready(cx)))
        .await
        .is_pending());
    let start = Instant::now();
    c.ready().await.unwrap();
    let err = c.call(Request::new(())).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    let err = err.downcast_ref::<WaitTooLong>().expect("WaitTooLong");
    assert_eq!(err.wait, Duration::from_secs(2));
    assert_eq!(err.max_wait, Duration::from_secs(1));
    // The refusal consumed nothing; a and b still go.
    a.call(Request::new(())).await.unwrap();
    b.ready().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    b.call(Request::new(())).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_unused_permit_is_given_back_on_drop() {
    let layer = layer(1, 1);
    let mut a = layer.layer(ok_service());
    let mut b = a.clone();
    a.ready().await.unwrap();
    // a holds the only permit; b would wait a second, but a is dropped unused.
    drop(a);
    let start = Instant::now();
    send(&mut b).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);

    // A caller dropped while waiting for its slot gives the slot back too.
    let mut c = b.clone();
    assert!(poll_fn(|cx| Poll::Ready(c.poll_ready(cx)))
        .await
        .is_pending());
    drop(c);
    let mut d = b.clone();
    send(&mut d).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_clone_starts_without_a_permit() {
    let layer = layer(1, 1);
    let mut a = layer.layer(ok_service());
    a.ready().await.unwrap();
    let mut b = a.clone();
    let err = b.call(Request::new(())).await.unwrap_err();
    assert!(err.is::<NotReady>());
    a.call(Request::new(())).await.unwrap();
}

fn scripted(
    statuses: Vec<(StatusCode, Option<&'static str>)>,
) -> impl Service<Req, Response = Response<()>, Error = Infallible, Future: Send> + Clone {
    let n = Arc::new(AtomicUsize::new(0));
    service_fn(move |_req: Req| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        let (status, retry_after) = statuses.get(i).copied().unwrap_or((StatusCode::OK, None));
        async move {
            let mut res = Response::new(());
            *res.status_mut() = status;
            if let Some(v) = retry_after {
                res.headers_mut().insert("retry-after", v.parse().unwrap());
            }
            Ok::<_, Infallible>(res)
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_pauses_every_caller() {
    let layer = layer(100, 100);
    let mut a = layer.layer(scripted(vec![(StatusCode::TOO_MANY_REQUESTS, Some("3"))]));
    let mut b = a.clone();
    let start = Instant::now();
    assert_eq!(send(&mut a).await.unwrap().status(), 429);
    // b never saw the 429, and still waits for the server's 3 s.
    send(&mut b).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    // Then the quota paces again, one per emission interval, not a burst.
    send(&mut a).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(3010));
}

#[tokio::test(start_paused = true)]
async fn hints_only_from_429_and_503_and_only_when_obeyed() {
    let layer = layer(100, 100);
    let mut svc = layer.layer(scripted(vec![
        (StatusCode::INTERNAL_SERVER_ERROR, Some("5")),
        (StatusCode::SERVICE_UNAVAILABLE, None),
        (StatusCode::OK, Some("5")),
    ]));
    let start = Instant::now();
    for _ in 0..4 {
        send(&mut svc).await.unwrap();
    }
    assert_eq!(start.elapsed(), Duration::ZERO);

    let ignoring = RateLimitLayer::builder(Quota::per_second(nz(100)))
        .clock(TokioClock::new())
        .pause_policy(PausePolicy::ignore())
        .build();
    let mut svc = ignoring.layer(scripted(vec![(StatusCode::TOO_MANY_REQUESTS, Some("5"))]));
    send(&mut svc).await.unwrap();
    send(&mut svc).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn an_absurd_hint_is_cut_and_then_fails_fast() {
    let layer = RateLimitLayer::builder(Quota::per_second(nz(100)))
        .clock(TokioClock::new())
        .max_wait(Duration::from_secs(30))
        .pause_policy(PausePolicy::obey(Duration::from_secs(60)))
        .build();
    let mut svc = layer.layer(scripted(vec![(
        StatusCode::TOO_MANY_REQUESTS,
        Some("99999999999999999999"),
    )]));
    send(&mut svc).await.unwrap();
    let start = Instant::now();
    let err = send(&mut svc).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(err.downcast_ref::<WaitTooLong>().unwrap().wait <= Duration::from_secs(60));
    tokio::time::advance(Duration::from_secs(60)).await;
    send(&mut svc).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn works_over_a_store_that_answers_later() {
    let layer = RateLimitLayer::builder(Quota::per_second(nz(4)).with_burst(nz(1)).unwrap())
        .store(SlowStore(MemoryStore::with_clock(TokioClock::new())), ())
        .build();
    let mut svc = layer.layer(ok_service());
    let start = Instant::now();
    for _ in 0..5 {
        send(&mut svc).await.unwrap();
    }
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_store_failure_fails_the_call() {
    let layer = RateLimitLayer::builder(Quota::per_second(nz(4)))
        .store(FailingStore, ())
        .build();
    let mut svc = layer.layer(ok_service());
    let err = send(&mut svc).await.unwrap_err();
    assert!(matches!(
        err.downcast_ref::<StoreError>(),
        Some(StoreError::Timeout(_))
    ));
    // The service stays usable.
    assert!(send(&mut svc).await.is_err());
    assert!(!format!("{layer:?}").is_empty());
}

/// What resile's default classifier makes of an error the layer returned.
fn assert_local_rejection(err: &tower::BoxError) {
    assert!(
        err.source().is_some_and(|s| s.is::<LocalRejection>()),
        "{err:?} carries no LocalRejection"
    );
    assert_eq!(transport_failure(&**err), TransportFailure::Rejected);
    let c = Classifier::default().classify(Outcome::error(&**err));
    assert_eq!(c.kind, OutcomeKind::Rejected);
    assert_eq!(c.retry, RetryClass::Never);
    assert_eq!(c.breaker, BreakerVerdict::Neutral);
    assert!(!c.retry_allowed(true));
}

#[tokio::test(start_paused = true)]
async fn wait_too_long_is_a_local_rejection_never_retried_neutral_for_breakers() {
    let layer = RateLimitLayer::builder(Quota::per_minute(nz(1)))
        .clock(TokioClock::new())
        .max_wait(Duration::ZERO)
        .build();
    let mut svc = layer.layer(ok_service());
    send(&mut svc).await.unwrap();
    let err = send(&mut svc).await.unwrap_err();
    assert!(err.is::<WaitTooLong>(), "{err:?}");
    assert_local_rejection(&err);

    // Boxed again by an outer layer (a `BoxError` wrapping the `BoxError`), still recognised.
    let outer: tower::BoxError = Box::new(std::io::Error::other(err));
    let c = Classifier::default().classify(Outcome::error(&*outer));
    assert_eq!(c.kind, OutcomeKind::Rejected);
}

#[tokio::test(start_paused = true)]
async fn not_ready_is_a_local_rejection() {
    let layer = layer(1, 1);
    let mut a = layer.layer(ok_service());
    let err = a.call(Request::new(())).await.unwrap_err();
    assert!(err.is::<NotReady>(), "{err:?}");
    assert_local_rejection(&err);
}

#[tokio::test(start_paused = true)]
async fn a_store_failure_is_not_a_local_rejection() {
    let layer = RateLimitLayer::builder(Quota::per_second(nz(4)))
        .store(FailingStore, ())
        .build();
    let mut svc = layer.layer(ok_service());
    let err = send(&mut svc).await.unwrap_err();
    assert!(err.is::<StoreError>(), "{err:?}");
    assert_ne!(transport_failure(&*err), TransportFailure::Rejected);
    let c = Classifier::default().classify(Outcome::error(&*err));
    assert_ne!(c.kind, OutcomeKind::Rejected);
    assert_eq!(c.breaker, BreakerVerdict::Failure);
}

/// `reqwest::Response`s are read like `http::Response`s: a 429's hint pauses every caller.
#[cfg(feature = "reqwest")]
#[tokio::test(start_paused = true)]
async fn a_reqwest_429_with_retry_after_pauses_every_caller() {
    let n = Arc::new(AtomicUsize::new(0));
    let backend = service_fn(move |_req: Req| {
        let first = n.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            let res = if first {
                Response::builder().status(429).header("retry-after", "2")
            } else {
                Response::builder().status(200)
            };
            Ok::<_, Infallible>(reqwest::Response::from(res.body(String::new()).unwrap()))
        }
    });
    let svc = layer(100, 100).layer(backend);
    let start = Instant::now();
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}
