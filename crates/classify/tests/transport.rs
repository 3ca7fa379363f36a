//! Transport errors from real clients on 127.0.0.1, classified through their source chains.
#![cfg(all(feature = "hyper", feature = "reqwest"))]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use resile_classify::{
    BreakerVerdict, Classifier, Outcome, OutcomeKind, RetryClass, TransportFailure,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A loopback port with nothing listening on it.
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// A loopback server that hands each of its first four connections, one after the other, to
/// `conn`.
async fn server<F, Fut>(mut conn: F) -> SocketAddr
where
    F: FnMut(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((s, _)) = l.accept().await else {
                return;
            };
            conn(s).await;
        }
    });
    addr
}

/// A server that reads the request, then closes the connection without answering.
async fn hang_up_server() -> SocketAddr {
    server(|mut s| async move {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        drop(s);
    })
    .await
}

/// A server that answers every request with the given raw response, then closes.
async fn raw_server(response: &'static str) -> SocketAddr {
    server(move |mut s| async move {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(response.as_bytes()).await;
        let _ = s.shutdown().await;
    })
    .await
}

/// A server that accepts and never answers.
async fn silent_server() -> SocketAddr {
    let mut held = Vec::new();
    server(move |s| {
        held.push(s);
        std::future::ready(())
    })
    .await
}

/// A GET to `addr` through hyper-util's client.
async fn hyper_get(
    addr: SocketAddr,
) -> Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
    Client::builder(TokioExecutor::new())
        .build_http::<Empty<Bytes>>()
        .get(format!("http://{addr}/").parse().unwrap())
        .await
}

#[tokio::test]
async fn hyper_util_connect_refused_is_not_sent() {
    let addr = closed_port().await;
    let err = hyper_get(addr).await.unwrap_err();
    assert!(err.is_connect());
    let c = Classifier::default();
    let class = c.classify(Outcome::error(&err));
    assert_eq!(class.kind, OutcomeKind::NotSent);
    assert_eq!(class.retry, RetryClass::Always);
    assert_eq!(class.breaker, BreakerVerdict::Failure);
    // The same error boxed, as tower hands it over.
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
    assert_eq!(
        c.classify(Outcome::error(&*boxed)).kind,
        OutcomeKind::NotSent
    );
}

#[tokio::test]
async fn hyper_util_hang_up_after_send_is_other() {
    let addr = hang_up_server().await;
    let err = hyper_get(addr).await.unwrap_err();
    assert!(!err.is_connect());
    let class = Classifier::default().classify(Outcome::error(&err));
    assert_eq!(class.kind, OutcomeKind::Transport);
    assert_eq!(class.retry, RetryClass::Idempotent);
    assert_eq!(class.breaker, BreakerVerdict::Failure);
}

#[tokio::test]
async fn hyper_util_responses_are_classified() {
    let addr = raw_server(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 2\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await;
    let res = hyper_get(addr).await.unwrap();
    let c = Classifier::default();
    assert_eq!(
        c.classify(Outcome::response(&res)).kind,
        OutcomeKind::RetryableServerError
    );
    assert_eq!(
        c.server_hint(Outcome::response(&res)).unwrap().delay,
        Duration::from_secs(2)
    );
}

#[tokio::test]
async fn reqwest_connect_refused_is_not_sent() {
    let addr = closed_port().await;
    let err = reqwest::Client::new()
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap_err();
    let class = Classifier::default().classify(Outcome::error(&err));
    assert_eq!(class.kind, OutcomeKind::NotSent);
    assert_eq!(class.retry, RetryClass::Always);
}

#[tokio::test]
async fn reqwest_timeout_is_timeout() {
    let addr = silent_server().await;
    let err = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap()
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(
        resile_classify::transport_failure(&err),
        TransportFailure::Timeout
    );
    let class = Classifier::default().classify(Outcome::error(&err));
    assert_eq!(class.retry, RetryClass::Idempotent);
    assert_eq!(class.breaker, BreakerVerdict::Failure);
}

#[tokio::test]
async fn reqwest_hang_up_is_other() {
    let addr = hang_up_server().await;
    let err = reqwest::Client::new()
        .post(format!("http://{addr}/"))
        .body("x")
        .send()
        .await
        .unwrap_err();
    let c = Classifier::default();
    let class = c.classify(Outcome::error(&err));
    assert_eq!(class.kind, OutcomeKind::Transport);
    let post = reqwest::Client::new()
        .post(format!("http://{addr}/"))
        .build()
        .unwrap();
    assert!(!class.retry_allowed(c.is_idempotent(&post)));
}

/// Every response row of the table through reqwest's own types.
#[tokio::test]
async fn reqwest_types_follow_the_table() {
    let c = Classifier::default();
    let rows: &[(&'static str, OutcomeKind, RetryClass, BreakerVerdict)] = &[
        (
            "HTTP/1.1 200 OK\r\n",
            OutcomeKind::Success,
            RetryClass::Never,
            BreakerVerdict::Success,
        ),
        (
            "HTTP/1.1 404 Not Found\r\n",
            OutcomeKind::ClientError,
            RetryClass::Never,
            BreakerVerdict::Success,
        ),
        (
            "HTTP/1.1 408 Request Timeout\r\n",
            OutcomeKind::RequestTimeout,
            RetryClass::Idempotent,
            BreakerVerdict::Neutral,
        ),
        (
            "HTTP/1.1 429 Too Many Requests\r\nretry-after: 5\r\n",
            OutcomeKind::TooManyRequests,
            RetryClass::Always,
            BreakerVerdict::Neutral,
        ),
        (
            "HTTP/1.1 500 Internal Server Error\r\n",
            OutcomeKind::RetryableServerError,
            RetryClass::Idempotent,
            BreakerVerdict::Failure,
        ),
        (
            "HTTP/1.1 501 Not Implemented\r\n",
            OutcomeKind::ServerError,
            RetryClass::Never,
            BreakerVerdict::Failure,
        ),
        (
            "HTTP/1.1 504 Gateway Timeout\r\n",
            OutcomeKind::RetryableServerError,
            RetryClass::Idempotent,
            BreakerVerdict::Failure,
        ),
    ];
    for &(head, kind, retry, breaker) in rows {
        let raw: &'static str = Box::leak(
            format!("{head}content-length: 0\r\nconnection: close\r\n\r\n").into_boxed_str(),
        );
        let addr = raw_server(raw).await;
        let res = reqwest::Client::new()
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap();
        let got = c.classify(Outcome::response(&res));
        assert_eq!(
            (got.kind, got.retry, got.breaker),
            (kind, retry, breaker),
            "{head}"
        );
        if kind == OutcomeKind::TooManyRequests {
            assert_eq!(
                c.server_hint(Outcome::response(&res)).unwrap().delay,
                Duration::from_secs(5)
            );
        }
    }
    let get = reqwest::Client::new()
        .get("http://127.0.0.1/")
        .build()
        .unwrap();
    let post = reqwest::Client::new()
        .post("http://127.0.0.1/")
        .build()
        .unwrap();
    let keyed = reqwest::Client::new()
        .post("http://127.0.0.1/")
        .header("idempotency-key", "k1")
        .build()
        .unwrap();
    assert!(c.is_idempotent(&get));
    assert!(!c.is_idempotent(&post));
    assert!(c.is_idempotent(&keyed));
}
