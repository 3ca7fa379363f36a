//! The client stack's telemetry records the breaker's transitions as the breaker names them.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use resile::breaker::{CircuitBreakerLayer, State};
use resile::telemetry::Telemetry;
use tower::{service_fn, ServiceBuilder, ServiceExt};

#[tokio::test(start_paused = true)]
async fn breaker_transitions_reach_the_report() {
    let healthy = Arc::new(AtomicBool::new(false));
    let backend = {
        let healthy = healthy.clone();
        service_fn(move |_req: Request<String>| {
            let status = if healthy.load(Ordering::SeqCst) {
                200
            } else {
                503
            };
            async move {
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(status)
                        .body(String::new())
                        .unwrap(),
                )
            }
        })
    };
    let breaker = CircuitBreakerLayer::builder()
        .consecutive_failures(3)
        .open_duration(Duration::from_secs(1))
        .build()
        .unwrap();
    let telemetry = Telemetry::new();
    let stack = resile::stack::http_client()
        .no_retry()
        .circuit_breaker(breaker)
        .telemetry(&telemetry);
    let handle = stack.breaker_handle();
    let client = ServiceBuilder::new().layer(stack).service(backend);
    let get = || {
        Request::get("http://api.test/")
            .body(String::new())
            .unwrap()
    };

    for _ in 0..3 {
        client.clone().oneshot(get()).await.unwrap();
    }
    assert_eq!(handle.state(), State::Open);
    healthy.store(true, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(2)).await;
    let res = client.clone().oneshot(get()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(handle.state(), State::Closed);

    let e = telemetry.report().requests.total.events;
    assert_eq!(
        (e.breaker_opened, e.breaker_half_opened, e.breaker_closed),
        (1, 1, 1)
    );
}
