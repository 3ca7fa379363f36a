//! A scripted server on loopback answers a known multiset of codes (and drops some connections
//! without answering); hyper-util and reqwest clients drive it from 4 concurrent tasks each;
//! the report's counts equal the script exactly.
#![cfg(feature = "reqwest")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use resile_telemetry::{ErrorKind, Figures, Telemetry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, Service, ServiceExt};

/// Per task: (path, how many). `/drop` closes the connection without an answer.
const SCRIPT: &[(&str, u64)] = &[
    ("/200", 12),
    ("/201", 2),
    ("/404", 3),
    ("/429", 2),
    ("/500", 1),
    ("/502", 2),
    ("/503", 1),
    ("/504", 2),
    ("/drop", 2),
];
const TASKS: u64 = 4;

/// Answers `GET /NNN` with status NNN on keep-alive connections; `/drop` closes the connection.
async fn server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve(conn));
        }
    });
    addr
}

async fn serve(mut conn: TcpStream) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 1024];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        if path == "/drop" {
            return;
        }
        let code: u16 = path[1..].parse().unwrap_or(400);
        let res = format!("HTTP/1.1 {code} Scripted\r\ncontent-length: 0\r\n\r\n");
        if conn.write_all(res.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn expected() -> (BTreeMap<u16, u64>, u64) {
    let mut codes = BTreeMap::new();
    let mut dropped = 0;
    for (path, n) in SCRIPT {
        match path[1..].parse::<u16>() {
            Ok(code) => *codes.entry(code).or_default() += n * TASKS,
            Err(_) => dropped += n * TASKS,
        }
    }
    (codes, dropped)
}

fn check(f: &Figures) {
    let (codes, dropped) = expected();
    let total: u64 = codes.values().sum::<u64>() + dropped;
    assert_eq!(f.requests, total);
    assert_eq!(f.responses, total - dropped);
    for (code, n) in &codes {
        assert_eq!(f.status(*code), *n, "status {code}");
    }
    assert_eq!(f.by_status.len(), codes.len());
    assert_eq!(f.errors(ErrorKind::Transport), dropped);
    assert_eq!(f.by_error.len(), 1);
    let gateway = (codes[&502] + codes[&504]) as f64 / total as f64;
    assert!((f.gateway_share - gateway).abs() < 1e-9);
}

fn paths() -> Vec<&'static str> {
    let mut v: Vec<&str> = SCRIPT
        .iter()
        .flat_map(|(p, n)| std::iter::repeat_n(*p, *n as usize))
        .collect();
    fastrand::shuffle(&mut v);
    v
}

/// Sends the script from `TASKS` concurrent tasks through `svc`, `request(url)` building each
/// request; only `/drop` may fail, and nothing may hang.
async fn drive<S, Req>(svc: S, addr: SocketAddr, request: fn(String) -> Req)
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: std::fmt::Debug + Send,
    Req: Send + 'static,
{
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                for path in paths() {
                    let req = request(format!("http://{addr}{path}"));
                    let out =
                        tokio::time::timeout(Duration::from_secs(10), svc.clone().oneshot(req))
                            .await
                            .expect("no request hangs");
                    assert_eq!(out.is_err(), path == "/drop", "{path}: {:?}", out.err());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_util_client_counts_equal_the_script() {
    let addr = server().await;
    let telemetry = Telemetry::new();
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let svc = telemetry.layer().layer(client);
    drive(svc, addr, |url| {
        http::Request::get(url).body(Empty::new()).unwrap()
    })
    .await;
    let report = telemetry.report();
    check(&report.requests.total);
    check(&report.requests.windows[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_client_counts_equal_the_script() {
    let addr = server().await;
    let telemetry = Telemetry::new();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let svc = telemetry.layer().layer(client);
    drive(svc, addr, |url| {
        reqwest::Request::new(http::Method::GET, url.parse().unwrap())
    })
    .await;
    check(&telemetry.report().requests.total);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    // A port that was just free: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let telemetry = Telemetry::new();
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let svc = telemetry.layer().layer(client);
    let req = http::Request::get(format!("http://{addr}/"))
        .body(Empty::new())
        .unwrap();
    svc.oneshot(req).await.unwrap_err();
    assert_eq!(
        telemetry.report().requests.total.errors(ErrorKind::Connect),
        1
    );
}
