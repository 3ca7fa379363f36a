//! Both limiter layers on the Redis store, unchanged: the server layer's `429`s and the client
//! layer's pacing hold across two instances ("machines") that share one Redis.
#![cfg(feature = "redis")]

mod redis_harness;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use redis_harness::{bounded, nz, RedisServer};
use resile_ratelimit::client::WaitTooLong;
use resile_ratelimit::redis::{OnFailure, RedisStore};
use resile_ratelimit::server::{Fallback, PeerIp};
use resile_ratelimit::{Quota, RateLimitLayer, ThrottleLayer};
use tower::{service_fn, Layer, ServiceBuilder, ServiceExt};

type Client = tower::util::BoxCloneService<Request<()>, Response<()>, tower::BoxError>;

const TEST_DEADLINE: Duration = Duration::from_secs(10);

async fn store(server: &RedisServer, policy: OnFailure) -> RedisStore {
    RedisStore::builder()
        .prefix("t:layer:")
        .timeout(Duration::from_millis(200))
        .on_failure(policy)
        .connect(server.url())
        .await
        .expect("connect to the test server")
}

fn from(peer: &str) -> Request<()> {
    let mut req = Request::new(());
    req.extensions_mut()
        .insert(peer.parse::<SocketAddr>().unwrap());
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_layer_answers_429_across_two_instances() {
    let mut server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        // Two server instances, each with its own store and connection, one Redis.
        let quota = Quota::per_minute(nz(3));
        let instance = |store: RedisStore| {
            ServiceBuilder::new()
                .layer(
                    ThrottleLayer::builder(quota, PeerIp::new())
                        .store(store)
                        .on_store_error(Fallback::Respond(StatusCode::SERVICE_UNAVAILABLE))
                        .build(),
                )
                .service(service_fn(|_req: Request<()>| async {
                    Ok::<_, Infallible>(Response::new(String::from("ok")))
                }))
        };
        let a = instance(store(&server, OnFailure::Error).await);
        let b = instance(store(&server, OnFailure::Error).await);

        let mut statuses = Vec::new();
        for i in 0..5 {
            let svc = if i % 2 == 0 { a.clone() } else { b.clone() };
            let res = svc.oneshot(from("192.0.2.1:1000")).await.unwrap();
            statuses.push(res.status());
            if res.status() == StatusCode::OK {
                assert_eq!(res.headers()["ratelimit-policy"], "\"default\";q=3;w=60");
            } else {
                // T = 20 s: the wait, a little under 20 s on the server's clock, rounds up to 20.
                assert_eq!(res.headers()["retry-after"], "20");
                assert_eq!(res.headers()["ratelimit"], "\"default\";r=0;t=20");
            }
        }
        assert_eq!(
            statuses,
            [
                StatusCode::OK,
                StatusCode::OK,
                StatusCode::OK,
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::TOO_MANY_REQUESTS
            ]
        );
        // Another peer has its own bucket.
        let res = b.clone().oneshot(from("192.0.2.2:1000")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);

        // Redis gone, store policy `Error`: the layer's own store-error rule answers.
        server.kill();
        let start = Instant::now();
        let res = a.clone().oneshot(from("192.0.2.3:1000")).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(start.elapsed() < Duration::from_secs(1));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_layer_paces_two_clients_on_one_redis() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        // 20 per second with burst 1: one request every 50 ms, for both clients together.
        let quota = Quota::per_second(nz(20)).with_burst(nz(1)).unwrap();
        let client = |store: RedisStore| {
            ServiceBuilder::new()
                .layer(
                    RateLimitLayer::builder(quota)
                        .store(store, ())
                        .max_wait(Duration::from_secs(2))
                        .build(),
                )
                .service(service_fn(|_req: Request<()>| async {
                    Ok::<_, Infallible>(Response::new(()))
                }))
        };
        let a = client(store(&server, OnFailure::Error).await);
        let b = client(store(&server, OnFailure::Error).await);
        let start = Instant::now();
        let run = |svc: Client| async move {
            for _ in 0..4 {
                svc.clone().oneshot(Request::new(())).await.unwrap();
            }
        };
        let (ra, rb) = tokio::join!(
            tokio::spawn(run(Client::new(a))),
            tokio::spawn(run(Client::new(b)))
        );
        ra.unwrap();
        rb.unwrap();
        // 8 requests, one slot every 50 ms: the last begins 350 ms after the first.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(340),
            "8 paced requests took {took:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_hint_pauses_every_instance() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        let quota = Quota::per_second(nz(100));
        let store_a = store(&server, OnFailure::Error).await;
        // Instance A talks to a server that says "429, retry after 5 s".
        let a = ServiceBuilder::new()
            .layer(
                RateLimitLayer::builder(quota)
                    .store(store_a.clone(), ())
                    .build(),
            )
            .service(service_fn(|_req: Request<()>| async {
                let mut res = Response::new(());
                *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                res.headers_mut()
                    .insert("retry-after", http::HeaderValue::from_static("5"));
                Ok::<_, Infallible>(res)
            }));
        let res = a.oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        // The pause travels to Redis in the background.
        while store_a.metrics().updates < 1 {
            assert_eq!(store_a.metrics().errors, 0);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Instance B, which never saw the 429, is paused too.
        let b = ServiceBuilder::new()
            .layer(
                RateLimitLayer::builder(quota)
                    .store(store(&server, OnFailure::Error).await, ())
                    .max_wait(Duration::ZERO)
                    .build(),
            )
            .service(service_fn(|_req: Request<()>| async {
                Ok::<_, Infallible>(Response::new(()))
            }));
        let err = b.oneshot(Request::new(())).await.unwrap_err();
        let wait = err.downcast_ref::<WaitTooLong>().expect("WaitTooLong").wait;
        assert!(
            wait > Duration::from_secs(4) && wait <= Duration::from_secs(5),
            "{wait:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_client_dropped_while_redis_decides_gives_its_permit_back() {
    let server = RedisServer::start();
    bounded(TEST_DEADLINE, async {
        // One request an hour: a permit lost would hold the next request for an hour.
        let quota = Quota::per_hour(nz(1));
        let store = store(&server, OnFailure::Error).await;
        let layer = RateLimitLayer::builder(quota)
            .store(store.clone(), ())
            .max_wait(Duration::ZERO)
            .build();
        let inner =
            service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
        // A caller that gives up while Redis decides: its service is dropped in `poll_ready`.
        let mut gave_up = layer.layer(inner);
        let pending = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(tower::Service::poll_ready(&mut gave_up, cx).is_pending())
        })
        .await;
        assert!(pending, "the reservation waits for Redis");
        drop(gave_up);
        // The reservation is finished in the background and its cell given back.
        while store.metrics().updates < 1 {
            assert_eq!(store.metrics().errors, 0);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // So the next caller gets the hour's one request at once.
        let res = layer.layer(inner).oneshot(Request::new(())).await;
        assert!(res.is_ok(), "{:?}", res.err());
    })
    .await;
}
