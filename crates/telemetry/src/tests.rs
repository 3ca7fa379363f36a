use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use resile_classify::clock::ManualClock;
use resile_classify::{BoxError, LocalRejection, RejectedBy};
use tower::{service_fn, Layer, Service, ServiceExt};

use crate::*;

/// A service answering each request with the status in its `x-status` header, after the
/// latency in its `x-ms` header, read from a manual clock.
fn backend(
    clock: ManualClock,
) -> impl Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone {
    service_fn(move |req: Request<()>| {
        let clock = clock.clone();
        async move {
            let h = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
            };
            clock.advance(Duration::from_millis(h("x-ms").unwrap_or(0)));
            let status = StatusCode::from_u16(h("x-status").unwrap_or(200) as u16).unwrap();
            Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
        }
    })
}

fn req(status: u16, ms: u64) -> Request<()> {
    Request::get("http://api.test/")
        .header("x-status", status)
        .header("x-ms", ms)
        .body(())
        .unwrap()
}

fn telemetry(clock: &ManualClock) -> TelemetryBuilder {
    Telemetry::builder()
        .clock(clock.clone())
        .interval(Duration::from_secs(1))
        .windows([Duration::from_secs(5), Duration::from_secs(20)])
}

async fn send<S>(svc: &S, status: u16, ms: u64, n: usize)
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone,
{
    for _ in 0..n {
        svc.clone().oneshot(req(status, ms)).await.unwrap();
    }
}

#[tokio::test]
async fn counts_each_status_and_latency_exactly() {
    let clock = ManualClock::new();
    let t = telemetry(&clock).build();
    let svc = t.layer().layer(backend(clock.clone()));
    send(&svc, 200, 10, 7).await;
    send(&svc, 404, 2, 2).await;
    send(&svc, 503, 100, 1).await;
    send(&svc, 502, 1, 1).await;
    let r = t.report();
    let f = &r.requests.total;
    assert_eq!(f.requests, 11);
    assert_eq!(f.responses, 11);
    assert_eq!((f.status(200), f.status(404), f.status(503)), (7, 2, 1));
    assert_eq!(f.by_status[0].code, Some(200), "most frequent first");
    assert!((f.success_rate - 7.0 / 11.0).abs() < 1e-9);
    assert!((f.server_error_rate - 2.0 / 11.0).abs() < 1e-9);
    assert!((f.gateway_share - 1.0 / 11.0).abs() < 1e-9);
    assert!((f.client_error_rate - 2.0 / 11.0).abs() < 1e-9);
    let p50 = f.latency.p50.unwrap().as_secs_f64();
    assert!((p50 - 0.010).abs() / 0.010 < 0.02, "{p50}");
    let max = f.latency.max.unwrap().as_secs_f64();
    assert!((max - 0.100).abs() / 0.100 < 0.02, "{max}");
    // Everything happened in one interval: every window agrees with the total.
    for w in &r.requests.windows {
        assert_eq!(w.requests, 11);
    }
    assert!(r.attempts.is_none());
}

#[tokio::test]
async fn windows_rotate_and_expire_while_totals_keep_everything() {
    let clock = ManualClock::new();
    let t = telemetry(&clock).build();
    let svc = t.layer().layer(backend(clock.clone()));
    send(&svc, 500, 0, 4).await;
    clock.advance(Duration::from_secs(3));
    send(&svc, 200, 0, 6).await;
    let r = t.report();
    assert_eq!(r.requests.windows[0].requests, 10);
    // 5 s later the 500s are out of the 5 s window, still in the 20 s one.
    clock.advance(Duration::from_secs(3));
    let r = t.report();
    assert_eq!(r.requests.windows[0].requests, 6);
    assert_eq!(r.requests.windows[0].server_error_rate, 0.0);
    assert_eq!(r.requests.windows[1].requests, 10);
    // Long after, every window is empty, the totals are intact (the ring wrapped many times).
    clock.advance(Duration::from_secs(300));
    send(&svc, 201, 0, 1).await;
    let r = t.report();
    assert_eq!(r.requests.windows[0].requests, 1);
    assert_eq!(r.requests.windows[1].requests, 1);
    assert_eq!(r.requests.total.requests, 11);
    assert_eq!(r.requests.total.status(500), 4);
    // The trend has one point per interval of the longest window, newest last.
    assert_eq!(r.requests.trend.len(), 20);
    assert_eq!(r.requests.trend.last().unwrap().requests, 1);
}

#[tokio::test]
async fn trend_points_follow_the_intervals() {
    let clock = ManualClock::new();
    let t = telemetry(&clock).build();
    let svc = t.layer().layer(backend(clock.clone()));
    for i in 0..5u64 {
        send(&svc, 200, 0, i as usize + 1).await;
        send(&svc, 503, 0, (i % 2) as usize).await;
        clock.advance(Duration::from_secs(1));
    }
    let r = t.report();
    let trend = &r.requests.trend;
    let last6: Vec<u64> = trend[trend.len() - 6..]
        .iter()
        .map(|p| p.requests)
        .collect();
    assert_eq!(last6, [1, 3, 3, 5, 5, 0]);
    assert_eq!(trend[trend.len() - 5].server_error_rate, 1.0 / 3.0);
    let text = r.to_string();
    assert!(text.contains("trend per 1.0 s"), "{text}");
}

#[tokio::test]
async fn the_server_error_alert_raises_clears_with_hysteresis_and_needs_enough_requests() {
    let clock = ManualClock::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let t = telemetry(&clock)
        .no_alerts()
        .alert(
            AlertRule::server_errors()
                .window(Duration::from_secs(5))
                .min_requests(20),
        )
        .on_alert(move |e| seen.lock().unwrap().push((e.state, e.at)))
        .build();
    let svc = t.layer().layer(backend(clock.clone()));

    // 10 requests, all 503: too few to raise.
    send(&svc, 503, 0, 10).await;
    clock.advance(Duration::from_secs(1));
    t.tick();
    assert!(events.lock().unwrap().is_empty());
    assert!(t.active_alerts().is_empty());

    // 20 more at 50 % 5xx: raised when the interval closes, not before.
    send(&svc, 503, 0, 10).await;
    send(&svc, 200, 0, 10).await;
    assert!(events.lock().unwrap().is_empty(), "evaluated per request");
    clock.advance(Duration::from_secs(1));
    t.tick();
    assert_eq!(
        events.lock().unwrap().as_slice(),
        [(AlertState::Raised, Duration::from_secs(2))]
    );
    assert_eq!(t.active_alerts(), ["server_errors"]);

    // 4 % over the window: below the raise threshold, above the clear one: stays raised.
    clock.advance(Duration::from_secs(5));
    send(&svc, 503, 0, 2).await;
    send(&svc, 200, 0, 48).await;
    clock.advance(Duration::from_secs(1));
    t.tick();
    assert_eq!(events.lock().unwrap().len(), 1);
    assert_eq!(t.active_alerts(), ["server_errors"]);

    // 2 %: cleared.
    clock.advance(Duration::from_secs(5));
    send(&svc, 503, 0, 1).await;
    send(&svc, 200, 0, 49).await;
    clock.advance(Duration::from_secs(1));
    t.tick();
    let got = events.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].0, AlertState::Cleared);
    assert!(t.active_alerts().is_empty());
    let r = t.report();
    assert_eq!(r.alerts.len(), 2);
    let line = r.alerts[0].to_string();
    assert!(
        line.contains("RAISED server_errors: 5xx rate 66.7 %") && line.contains("30 requests"),
        "{line}"
    );
}

#[tokio::test]
async fn the_client_error_spike_compares_with_its_baseline() {
    let clock = ManualClock::new();
    let t = telemetry(&clock)
        .no_alerts()
        .alert(
            AlertRule::client_error_spike()
                .window(Duration::from_secs(2))
                .baseline(Duration::from_secs(20)),
        )
        .build();
    let svc = t.layer().layer(backend(clock.clone()));
    // A steady 4xx rate of 5 % for 15 s: no spike.
    for _ in 0..15 {
        send(&svc, 404, 0, 1).await;
        send(&svc, 200, 0, 19).await;
        clock.advance(Duration::from_secs(1));
    }
    t.tick();
    assert!(t.active_alerts().is_empty());
    // Then 50 %: a spike.
    for _ in 0..2 {
        send(&svc, 401, 0, 10).await;
        send(&svc, 200, 0, 10).await;
        clock.advance(Duration::from_secs(1));
    }
    t.tick();
    assert_eq!(t.active_alerts(), ["client_error_spike"]);
}

#[tokio::test]
async fn p99_and_gateway_rules() {
    let clock = ManualClock::new();
    let t = telemetry(&clock)
        .no_alerts()
        .alert(AlertRule::p99_above(Duration::from_millis(50)).window(Duration::from_secs(2)))
        .alert(AlertRule::gateway_errors().window(Duration::from_secs(2)))
        .build();
    let svc = t.layer().layer(backend(clock.clone()));
    send(&svc, 200, 1, 18).await;
    send(&svc, 504, 200, 2).await;
    clock.advance(Duration::from_secs(1));
    t.tick();
    let mut active = t.active_alerts();
    active.sort_unstable();
    assert_eq!(active, ["gateway_errors", "p99_latency"]);
}

#[tokio::test]
async fn a_panicking_alert_callback_loses_nothing() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let t = telemetry(&clock)
        .on_alert(|_| panic!("a broken alert sink"))
        .on_alert(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .build();
    let svc = t.layer().layer(backend(clock.clone()));
    send(&svc, 500, 0, 30).await;
    clock.advance(Duration::from_secs(1));
    // The first request of the next interval runs the callbacks: it still gets its answer.
    send(&svc, 200, 0, 1).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the next callback still ran"
    );
    send(&svc, 200, 0, 1).await;
    let r = t.report();
    assert_eq!(r.requests.total.requests, 32);
    assert_eq!(r.active_alerts, ["server_errors"]);
}

#[tokio::test]
async fn statuses_outside_100_to_599_count_as_other() {
    let clock = ManualClock::new();
    let t = telemetry(&clock).build();
    let svc = t.layer().layer(backend(clock.clone()));
    send(&svc, 600, 0, 1).await;
    send(&svc, 999, 0, 2).await;
    send(&svc, 599, 0, 1).await;
    send(&svc, 100, 0, 1).await;
    let f = t.report().requests.total;
    assert_eq!(f.requests, 5);
    assert_eq!(
        f.by_status,
        [
            StatusCount {
                code: None,
                count: 3
            },
            StatusCount {
                code: Some(100),
                count: 1
            },
            StatusCount {
                code: Some(599),
                count: 1
            },
        ]
    );
    assert_eq!(f.server_error_rate, 0.2);
}

/// A future that never completes.
struct Never;
impl Future for Never {
    type Output = Result<Response<()>, Infallible>;
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Pending
    }
}

#[tokio::test]
async fn a_dropped_future_counts_as_cancelled_once() {
    let clock = ManualClock::new();
    let t = telemetry(&clock).build();
    let mut svc = t.layer().layer(service_fn(|_: Request<()>| Never));
    let fut = svc.call(req(200, 0));
    let r = t.report();
    assert_eq!(
        r.requests.total.requests, 0,
        "in flight is not recorded yet"
    );
    drop(fut);
    let fut = svc.call(req(200, 0));
    drop(fut);
    let f = t.report().requests.total;
    assert_eq!(f.requests, 2);
    assert_eq!(f.errors(ErrorKind::Cancelled), 2);
    assert_eq!(f.cancelled, 2);
}

#[tokio::test]
async fn errors_are_classified_by_kind() {
    #[derive(Debug)]
    struct Open;
    impl std::fmt::Display for Open {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("open")
        }
    }
    impl std::error::Error for Open {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            static R: LocalRejection = LocalRejection::new(RejectedBy::CircuitBreaker);
            Some(&R)
        }
    }
    let clock = ManualClock::new();
    let t = telemetry(&clock).build();
    let svc = t.layer().layer(service_fn(|req: Request<()>| async move {
        let err: BoxError = match req.uri().path() {
            "/refused" => std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
            "/timeout" => tokio::time::timeout(Duration::ZERO, std::future::pending::<()>())
                .await
                .unwrap_err()
                .into(),
            "/open" => Open.into(),
            "/limited" => Box::new(*LocalRejection::RATE_LIMITER),
            _ => std::io::Error::from(std::io::ErrorKind::ConnectionReset).into(),
        };
        Err::<Response<()>, _>(err)
    }));
    for path in [
        "/refused", "/timeout", "/open", "/open", "/limited", "/reset",
    ] {
        let req = Request::get(path).body(()).unwrap();
        svc.clone().oneshot(req).await.unwrap_err();
    }
    let f = t.report().requests.total;
    assert_eq!(f.requests, 6);
    assert_eq!(f.errors(ErrorKind::Connect), 1);
    assert_eq!(f.errors(ErrorKind::Timeout), 1);
    assert_eq!(f.errors(ErrorKind::BreakerOpen), 2);
    assert_eq!(f.errors(ErrorKind::RateLimited), 1);
    assert_eq!(f.errors(ErrorKind::Transport), 1);
    assert_eq!(f.local_rejections, 3);
    assert_eq!(f.sent, 3);
    assert!(
        (f.transport_error_rate - 1.0).abs() < 1e-9,
        "over the requests sent"
    );
    assert_eq!(f.by_error[0].kind, ErrorKind::BreakerOpen);
}

#[tokio::test]
async fn both_views_give_the_resend_ratio_and_pauses_count_once() {
    let clock = ManualClock::new();
    let t = telemetry(&clock).build();
    // An "inner" attempt layer seeing three attempts per call, the last answered 200, and an
    // outer layer seeing one call.
    let attempts = t
        .attempt_layer()
        .layer(service_fn(|req: Request<()>| async move {
            let status = if req.uri().path() == "/last" {
                200
            } else {
                429
            };
            let res = Response::builder()
                .status(status)
                .header("retry-after", "1")
                .body(())
                .unwrap();
            Ok::<_, Infallible>(res)
        }));
    let outer = t.layer().layer(service_fn(move |_: Request<()>| {
        let attempts = attempts.clone();
        async move {
            for path in ["/a", "/b"] {
                attempts
                    .clone()
                    .oneshot(Request::get(path).body(()).unwrap())
                    .await?;
            }
            attempts
                .oneshot(Request::get("/last").body(()).unwrap())
                .await
        }
    }));
    for _ in 0..4 {
        outer.clone().oneshot(req(200, 0)).await.unwrap();
    }
    let r = t.report();
    assert_eq!(r.requests.total.requests, 4);
    let a = r.attempts.as_ref().unwrap();
    assert_eq!(a.total.requests, 12);
    assert_eq!(a.total.status(429), 8);
    assert_eq!(r.resend_ratio(), Some(3.0));
    assert_eq!(r.requests.total.events.server_pauses, 8);
    let text = r.to_string();
    assert!(text.contains("resend ratio 3.00"), "{text}");
}

#[tokio::test]
async fn the_retry_layers_attempts_mark_counts_the_retries_of_each_call() {
    let clock = ManualClock::new();
    let t = telemetry(&clock).build();
    let svc = t.layer().layer(service_fn(|req: Request<()>| async move {
        let mut res = Response::new(());
        if req.uri().path() == "/retried" {
            res.extensions_mut().insert(resile_classify::Attempts(3));
        }
        Ok::<_, Infallible>(res)
    }));
    for path in ["/retried", "/", "/", "/retried"] {
        svc.clone()
            .oneshot(Request::get(path).body(()).unwrap())
            .await
            .unwrap();
    }
    let r = t.report();
    assert_eq!(r.requests.total.retries, 4);
    assert_eq!(r.resend_ratio(), Some(2.0));
}

#[tokio::test]
async fn events_are_counted_per_interval() {
    let clock = ManualClock::new();
    let t = telemetry(&clock).build();
    t.record_event(Event::Retry {
        reason: "status_503",
    });
    t.record_event(Event::GaveUp {
        reason: "budget_exhausted",
    });
    t.record_event(Event::GaveUp {
        reason: "retries_exhausted",
    });
    t.record_event(Event::BreakerTransition {
        from: "closed",
        to: "open",
    });
    clock.advance(Duration::from_secs(30));
    t.record_event(Event::BreakerTransition {
        from: "open",
        to: "half-open",
    });
    let r = t.report();
    let e = r.requests.total.events;
    assert_eq!(
        (
            e.retries,
            e.budget_refusals,
            e.breaker_opened,
            e.breaker_half_opened
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(r.requests.windows[0].events.breaker_opened, 0);
    assert_eq!(r.requests.windows[0].events.breaker_half_opened, 1);
}

#[test]
fn odd_settings_follow_the_documented_rules() {
    let clock = ManualClock::new();
    let t = Telemetry::builder()
        .clock(clock.clone())
        .interval(Duration::ZERO)
        .windows([Duration::ZERO, Duration::from_secs(3_600)])
        .no_alerts()
        .build();
    let r = t.report();
    // 1 ms intervals, the zero window dropped, the hour cut to 1,000 intervals.
    assert_eq!(r.requests.interval, Duration::from_millis(1));
    assert_eq!(r.requests.windows.len(), 1);
    assert_eq!(r.requests.windows[0].window, Some(Duration::from_secs(1)));
    assert_eq!(r.requests.trend.len(), MAX_INTERVALS);
}

#[test]
fn concurrent_recorders_lose_no_count_across_interval_boundaries() {
    let clock = ManualClock::new();
    let t = Telemetry::builder()
        .clock(clock.clone())
        .interval(Duration::from_millis(1))
        .windows([Duration::from_millis(4)])
        .build();
    let threads = 4;
    let per = 20_000;
    std::thread::scope(|s| {
        for th in 0..threads {
            let t = t.clone();
            let clock = clock.clone();
            s.spawn(move || {
                for i in 0..per {
                    let now = resile_classify::clock::Clock::now(&clock);
                    t.inner.record(
                        View::Requests,
                        now,
                        crate::outcome::Recorded::Status(crate::outcome::status_index(200)),
                        Some(1_000),
                        0,
                    );
                    // One thread moves time on, wrapping the ring hundreds of times.
                    if th == 0 && i % 50 == 0 {
                        clock.advance(Duration::from_micros(700));
                    }
                }
            });
        }
    });
    let r = t.report();
    assert_eq!(r.requests.total.requests, threads * per);
    assert_eq!(r.requests.total.status(200), threads * per);
}

#[cfg(feature = "serde")]
#[tokio::test]
async fn the_report_serializes_to_json() {
    let clock = ManualClock::new();
    let t = telemetry(&clock).build();
    let svc = t.layer().layer(backend(clock.clone()));
    send(&svc, 503, 0, 1).await;
    let json = serde_json::to_value(t.report()).unwrap();
    assert_eq!(json["requests"]["total"]["requests"], 1);
    assert_eq!(json["requests"]["total"]["by_status"][0]["code"], 503);
    assert_eq!(json["requests"]["view"], "requests");
}
