//! Adaptive throttling against model servers, on tokio's paused clock.

use std::convert::Infallible;
use std::future::ready;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use resile_classify::LocalRejection;
use tokio::time::Instant;
use tower::ServiceExt;

use super::*;

/// A server that accepts at most `capacity` requests per second (each second's first ones)
/// and answers `503` to the rest, while `healthy` is false; everything while it is true.
fn server(
    capacity: u64,
    received: Arc<AtomicU64>,
    healthy: Arc<std::sync::atomic::AtomicBool>,
) -> impl tower::Service<
    Request<()>,
    Response = Response<()>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<()>, Infallible>>,
> + Clone {
    let start = Instant::now();
    let this_second = Arc::new(AtomicU64::new(0));
    tower::service_fn(move |_: Request<()>| {
        received.fetch_add(1, Ordering::SeqCst);
        let second = start.elapsed().as_secs();
        // The count of this second, reset when a new second starts (seconds in the top bits).
        let prev = this_second.load(Ordering::SeqCst);
        let n = if prev >> 32 == second {
            prev & 0xffff_ffff
        } else {
            0
        };
        this_second.store((second << 32) | (n + 1), Ordering::SeqCst);
        let status = if healthy.load(Ordering::SeqCst) || n < capacity {
            200
        } else {
            503
        };
        ready(Ok(Response::builder().status(status).body(()).unwrap()))
    })
}

/// Sends `per_second` requests per second for `secs` seconds; returns (sent, refused).
async fn drive<S>(svc: &S, per_second: u32, secs: u64) -> (u64, u64)
where
    S: tower::Service<Request<()>, Response = Response<()>, Error = tower::BoxError> + Clone,
{
    let gap = Duration::from_secs(1) / per_second;
    let end = Instant::now() + Duration::from_secs(secs);
    let (mut sent, mut refused) = (0, 0);
    while Instant::now() < end {
        match svc.clone().oneshot(Request::new(())).await {
            Ok(_) => sent += 1,
            Err(e) => {
                assert!(e.is::<Throttled>());
                assert!(LocalRejection::find(&*e).is_some());
                refused += 1;
            }
        }
        tokio::time::sleep(gap).await;
    }
    (sent, refused)
}

#[tokio::test(start_paused = true)]
async fn an_overloaded_server_sees_about_k_times_what_it_accepts() {
    let received = Arc::new(AtomicU64::new(0));
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let throttle = AdaptiveThrottleLayer::new();
    let svc = tower::ServiceBuilder::new()
        .layer(throttle.clone())
        .service(server(30, received.clone(), healthy.clone()));
    // Demand 100/s, capacity 30/s: the server accepts 30 % of the demand.
    drive(&svc, 100, 240).await;
    let before = received.load(Ordering::SeqCst);
    drive(&svc, 100, 120).await;
    let load = (received.load(Ordering::SeqCst) - before) as f64 / 120.0;
    eprintln!(
        "demand 100/s, capacity 30/s: the server saw {load:.1}/s (K x accepted = 60/s), p = {:.2}",
        throttle.probability()
    );
    assert!(
        (51.0..=69.0).contains(&load),
        "load {load}/s, want 60 +- 15 %"
    );

    // Healed: the refusals fade within the window.
    healthy.store(true, Ordering::SeqCst);
    drive(&svc, 100, 150).await;
    assert_eq!(throttle.probability(), 0.0);
    let (sent, refused) = drive(&svc, 100, 10).await;
    assert_eq!((sent, refused), (1000, 0));
}

#[tokio::test(start_paused = true)]
async fn a_healthy_server_is_never_throttled() {
    let received = Arc::new(AtomicU64::new(0));
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let throttle = AdaptiveThrottleLayer::new();
    let svc = tower::ServiceBuilder::new()
        .layer(throttle.clone())
        .service(server(0, received.clone(), healthy));
    assert_eq!(drive(&svc, 50, 20).await, (1000, 0));
    assert_eq!(throttle.counts(), (1000, 1000));
    assert_eq!(throttle.probability(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn local_rejections_of_inner_layers_are_not_counted() {
    let throttle = AdaptiveThrottleLayer::builder().k(1.0).build();
    let svc = tower::ServiceBuilder::new()
        .layer(throttle.clone())
        .service(tower::service_fn(|_: Request<()>| {
            let err: tower::BoxError = Box::new(crate::client::WaitTooLong {
                wait: Duration::from_secs(1),
                max_wait: Duration::ZERO,
            });
            ready(Err::<Response<()>, _>(err))
        }));
    for _ in 0..100 {
        let err = svc.clone().oneshot(Request::new(())).await.unwrap_err();
        assert!(err.is::<crate::client::WaitTooLong>());
    }
    assert_eq!(throttle.counts(), (0, 0));
    // A transport error counts as not accepted.
    let failing = tower::ServiceBuilder::new()
        .layer(throttle.clone())
        .service(tower::service_fn(|_: Request<()>| {
            ready(Err::<Response<()>, tower::BoxError>(
                "connection reset".into(),
            ))
        }));
    let _ = failing.oneshot(Request::new(())).await;
    assert_eq!(throttle.counts(), (1, 0));
}

#[test]
fn settings_are_kept_in_range() {
    let l = AdaptiveThrottleLayer::builder()
        .k(0.2)
        .k(f64::NAN)
        .window(Duration::ZERO)
        .build();
    let dbg = format!("{l:?}");
    assert!(dbg.contains("k: 1.0"), "{dbg}");
    assert!(dbg.contains("window: 24ms"), "{dbg}");
}
