//! A server throttle keyed on a client-supplied header, under a flood of 1,000,000 distinct
//! keys: the key table stays within its cap, and the clients it already knows are still served.

use std::convert::Infallible;
use std::future::Future;
use std::num::NonZeroU32;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use resile_ratelimit::clock::ManualClock;
use resile_ratelimit::server::HeaderKey;
use resile_ratelimit::{KeyedStore, Quota, ThrottleLayer};
use tower::{service_fn, Layer, Service};

const CAP: usize = 10_000;
const FLOOD: u32 = 1_000_000;

fn call<S>(svc: &mut S, key: HeaderValue) -> StatusCode
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let mut req = Request::new(());
    req.headers_mut().insert("x-api-key", key);
    let mut fut = std::pin::pin!(svc.call(req));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(res) => res.unwrap().status(),
        Poll::Pending => panic!("an in-memory throttle decides at once"),
    }
}

#[test]
fn a_flood_of_distinct_keys_stays_within_the_cap_and_known_clients_are_served() {
    let clock = ManualClock::new();
    let store = KeyedStore::builder()
        .max_keys(CAP)
        .clock(clock.clone())
        .build();
    // 10 requests per minute per key, burst 10: one request keeps a key active for 6 s, so the
    // flood's keys are live, not idle, and fill the table.
    let quota = Quota::per_minute(NonZeroU32::new(10).unwrap());
    let layer = ThrottleLayer::builder(quota, HeaderKey::new(HeaderName::from_static("x-api-key")))
        .store(store)
        .build();
    let mut svc = layer.layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let legit: Vec<HeaderValue> = (0..10)
        .map(|i| HeaderValue::from_str(&format!("legit-{i}")).unwrap())
        .collect();
    for key in &legit {
        assert_eq!(call(&mut svc, key.clone()), StatusCode::OK);
    }

    let (mut flood_ok, mut flood_refused, mut legit_ok) = (0u32, 0u32, 0u32);
    for i in 0..FLOOD {
        let status = call(&mut svc, HeaderValue::from(i));
        match status {
            StatusCode::OK => flood_ok += 1,
            StatusCode::TOO_MANY_REQUESTS => flood_refused += 1,
            other => panic!("flood key answered {other}"),
        }
        // 10 s of flood in all; each known client sends once a second.
        if i % 1_000 == 0 {
            clock.advance(Duration::from_millis(10));
        }
        if i % 100_000 == 0 {
            for key in &legit {
                assert_eq!(
                    call(&mut svc, key.clone()),
                    StatusCode::OK,
                    "a known client refused"
                );
                legit_ok += 1;
            }
        }
        if i % 10_000 == 0 {
            assert!(
                layer.store().len() <= CAP + 64,
                "{} keys held",
                layer.store().len()
            );
        }
    }
    let held = layer.store().len();
    eprintln!(
        "flood: {flood_ok} new keys admitted, {flood_refused} refused, {held} keys held (cap {CAP}); known clients: {legit_ok} served"
    );
    assert!(held <= CAP + 64, "{held} keys held");
    assert!(flood_refused > 0);
    assert_eq!(legit_ok, 10 * FLOOD / 100_000);
    assert!(layer.store().refused_new_keys() > 0);
}
