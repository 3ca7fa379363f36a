//! The server layer over tower services.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Request, Response, StatusCode};
use tower::{service_fn, Service, ServiceExt};
use tower_layer::Layer;

use super::{nz, FailingStore, SlowStore};
use crate::clock::ManualClock;
use crate::server::{AllRequests, Fallback, HeaderKey, KeyExtractor, PeerIp, RequestHead};
use crate::{KeyedStore, Quota, ThrottleLayer};

type Req = Request<()>;

fn counting() -> (
    Arc<AtomicUsize>,
    impl Service<Req, Response = Response<String>, Error = Infallible, Future: Send> + Clone,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let svc = service_fn(move |_req: Req| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(String::from("hello"))) }
    });
    (calls, svc)
}

fn from(peer: &str) -> Req {
    let mut req = Request::new(());
    req.extensions_mut()
        .insert(peer.parse::<SocketAddr>().unwrap());
    req
}

fn store(clock: &ManualClock) -> KeyedStore<IpAddr, ManualClock> {
    KeyedStore::builder().clock(clock.clone()).build()
}

#[tokio::test]
async fn refuses_with_429_retry_after_and_ratelimit_fields() {
    let clock = ManualClock::new();
    // 4 per second, burst 2.
    let layer = ThrottleLayer::builder(
        Quota::per_second(nz(4)).with_burst(nz(2)).unwrap(),
        PeerIp::new(),
    )
    .store(store(&clock))
    .policy_name("api")
    .build();
    let (calls, inner) = counting();
    let svc = layer.layer(inner);

    let res = svc.clone().oneshot(from("192.0.2.1:1000")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.body(), "hello");
    assert_eq!(res.headers()["ratelimit-policy"], "\"api\";q=4;w=1");
    // One cell left; the next one comes back 250 ms from now: t rounds up to 1.
    assert_eq!(res.headers()["ratelimit"], "\"api\";r=1;t=1");
    assert!(res.headers().get("retry-after").is_none());

    let res = svc.clone().oneshot(from("192.0.2.1:1001")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["ratelimit"], "\"api\";r=0;t=1");

    let res = svc.clone().oneshot(from("192.0.2.1:1002")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.body().is_empty());
    // A 250 ms wait is "1", never "0".
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["ratelimit-policy"], "\"api\";q=4;w=1");
    assert_eq!(res.headers()["ratelimit"], "\"api\";r=0;t=1");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Another peer has its own bucket.
    let res = svc.clone().oneshot(from("192.0.2.2:1000")).await.unwrap();
    assert_eq!(res.status(), 200);

    // After the wait, the first peer is served again.
    clock.advance(Duration::from_millis(250));
    let res = svc.clone().oneshot(from("192.0.2.1:1003")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn retry_after_is_whole_seconds_rounded_up() {
    let clock = ManualClock::new();
    // One per 2.5 s.
    let layer = ThrottleLayer::builder(
        Quota::with_interval(Duration::from_millis(2500)).unwrap(),
        PeerIp::new(),
    )
    .store(store(&clock))
    .fields_on_allowed(false)
    .build();
    let (_, inner) = counting();
    let svc = layer.layer(inner);
    let res = svc.clone().oneshot(from("[2001:db8::1]:80")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("ratelimit").is_none());
    let res = svc.clone().oneshot(from("[2001:db8::1]:80")).await.unwrap();
    assert_eq!(res.headers()["retry-after"], "3");
    assert_eq!(res.headers()["ratelimit-policy"], "\"default\";q=1;w=3");
    clock.advance(Duration::from_millis(2499));
    let res = svc.clone().oneshot(from("[2001:db8::1]:80")).await.unwrap();
    assert_eq!(res.headers()["retry-after"], "1");
}

#[tokio::test]
async fn missing_key_and_store_errors_follow_their_fallbacks() {
    let q = Quota::per_second(nz(1));
    let (calls, inner) = counting();

    let svc = ThrottleLayer::new(q, PeerIp::new()).layer(inner.clone());
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);

    let svc = ThrottleLayer::builder(q, PeerIp::new())
        .on_missing_key(Fallback::Allow)
        .build()
        .layer(inner.clone());
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("ratelimit").is_none());

    let svc = ThrottleLayer::builder(q, AllRequests)
        .store(FailingStore)
        .build()
        .layer(inner.clone());
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);

    let svc = ThrottleLayer::builder(q, AllRequests)
        .store(FailingStore)
        .on_store_error(Fallback::Allow)
        .build()
        .layer(inner);
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        format!("{:?}", Fallback::Respond(StatusCode::IM_A_TEAPOT)),
        "Respond(418)"
    );
}

#[tokio::test]
async fn keys_from_a_header_or_a_closure() {
    let clock = ManualClock::new();
    let q = Quota::per_minute(nz(1));
    let api_key = HeaderName::from_static("x-api-key");
    let layer = ThrottleLayer::builder(q, HeaderKey::new(api_key.clone()))
        .store(KeyedStore::builder().clock(clock.clone()).build())
        .build();
    let (_, inner) = counting();
    let svc = layer.layer(inner.clone());
    let with_key = |k: &'static str| {
        let mut req = Request::new(());
        req.headers_mut()
            .insert(api_key.clone(), k.parse().unwrap());
        req
    };
    assert_eq!(
        svc.clone().oneshot(with_key("a")).await.unwrap().status(),
        200
    );
    assert_eq!(
        svc.clone().oneshot(with_key("b")).await.unwrap().status(),
        200
    );
    assert_eq!(
        svc.clone().oneshot(with_key("a")).await.unwrap().status(),
        429
    );
    assert_eq!(layer.store().len(), 2);

    let by_path = |req: &RequestHead<'_>| Some(req.uri.path().to_owned());
    let svc = ThrottleLayer::new(q, by_path).layer(inner);
    let get = |p: &str| Request::get(p).body(()).unwrap();
    assert_eq!(svc.clone().oneshot(get("/a")).await.unwrap().status(), 200);
    assert_eq!(svc.clone().oneshot(get("/b")).await.unwrap().status(), 200);
    assert_eq!(svc.clone().oneshot(get("/a")).await.unwrap().status(), 429);
}

#[tokio::test]
async fn a_store_that_answers_later_gets_the_same_responses() {
    let clock = ManualClock::new();
    let layer = ThrottleLayer::builder(Quota::per_second(nz(1)), PeerIp::new())
        .store(SlowStore(store(&clock)))
        .build();
    let (calls, inner) = counting();
    let mut svc = layer.layer(inner);
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(from("192.0.2.9:1"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["ratelimit"], "\"default\";r=0;t=1");
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(from("192.0.2.9:1"))
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn peer_ip_keys() {
    let head = |req: &Req| PeerIp::new().extract(&RequestHead::from(req));
    assert_eq!(
        head(&from("192.0.2.1:5")),
        Some("192.0.2.1".parse().unwrap())
    );
    // IPv4-mapped IPv6 is the IPv4 peer.
    assert_eq!(
        head(&from("[::ffff:192.0.2.1]:5")),
        Some("192.0.2.1".parse().unwrap())
    );
    let by64 = PeerIp::new().ipv6_prefix(64);
    let req = from("[2001:db8:1:2:3:4:5:6]:9");
    assert_eq!(
        by64.extract(&RequestHead::from(&req)),
        Some("2001:db8:1:2::".parse().unwrap())
    );
    assert_eq!(
        PeerIp::new()
            .ipv6_prefix(0)
            .extract(&RequestHead::from(&req)),
        Some("::".parse().unwrap())
    );
    assert_eq!(head(&Request::new(())), None);
    #[cfg(feature = "axum")]
    {
        let mut req = Request::new(());
        req.extensions_mut().insert(axum::extract::ConnectInfo(
            "198.51.100.3:7".parse::<SocketAddr>().unwrap(),
        ));
        assert_eq!(head(&req), Some("198.51.100.3".parse().unwrap()));
    }
}

#[test]
fn policy_names_are_escaped() {
    let layer = ThrottleLayer::builder(Quota::per_second(nz(1)), AllRequests)
        .policy_name("a \"q\" \\ é\n")
        .build();
    assert!(!format!("{layer:?}").is_empty());
    let res = futures_free_call(&layer);
    assert_eq!(
        res.headers()["ratelimit-policy"],
        "\"a \\\"q\\\" \\\\ \";q=1;w=1"
    );
}

fn futures_free_call(layer: &ThrottleLayer<AllRequests>) -> Response<String> {
    let (_, inner) = counting();
    let mut svc = layer.layer(inner);
    let fut = svc.call(Request::new(()));
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(fut)
        .unwrap()
}

#[tokio::test]
async fn a_cost_above_the_burst_is_a_configuration_error_and_a_fitting_one_takes_that_many_cells() {
    let quota = Quota::per_second(nz(4)).with_burst(nz(3)).unwrap();
    let Err(err) = ThrottleLayer::builder(quota, PeerIp::new()).cost(nz(4)) else {
        panic!("a cost above the burst can never be admitted");
    };
    assert_eq!((err.requested, err.burst), (nz(4), nz(3)));

    let clock = ManualClock::new();
    let layer = ThrottleLayer::builder(quota, PeerIp::new())
        .store(store(&clock))
        .cost(nz(3))
        .expect("a cost equal to the burst fits")
        .build();
    let (calls, inner) = counting();
    let svc = layer.layer(inner);
    // The first request takes the whole burst; the second is refused.
    let res = svc.clone().oneshot(from("192.0.2.9:1")).await.unwrap();
    assert_eq!(res.status(), 200);
    let res = svc.clone().oneshot(from("192.0.2.9:2")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A `MakeWriter` that keeps everything logged.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[test]
fn a_missing_peer_address_is_reported_once_with_the_fix() {
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_max_level(tracing::Level::ERROR)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (_, inner) = counting();
            let svc = ThrottleLayer::new(Quota::per_second(nz(1)), PeerIp::new()).layer(inner);
            for _ in 0..3 {
                let res = svc.clone().oneshot(Request::new(())).await.unwrap();
                assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
            }
        });
    });
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.matches("ERROR").count(), 1, "{text}");
    assert!(
        text.contains("into_make_service_with_connect_info"),
        "{text}"
    );
}
