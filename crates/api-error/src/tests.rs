use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, StreamBody};
use proptest::prelude::*;
use serde_json::Value;
use tower::{service_fn, Layer, ServiceExt};

use crate::parse::{parse, Shapes};
use crate::*;

fn parsed(ct: Option<&str>, body: &str) -> (Vec<String>, Option<String>) {
    let p = parse(ct, body.as_bytes(), &Shapes::default());
    (p.messages, p.code)
}

fn msgs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const JSON: Option<&str> = Some("application/json");

#[test]
fn each_recognised_shape() {
    assert_eq!(
        parsed(
            JSON,
            r#"{"errors": ["VLANs are not enabled for this network"]}"#
        ),
        (msgs(&["VLANs are not enabled for this network"]), None)
    );
    assert_eq!(
        parsed(
            JSON,
            r#"{"errors": [{"message": "bad name", "code": 1001}, {"message": "bad age"}]}"#
        ),
        (msgs(&["bad name", "bad age"]), Some("1001".into()))
    );
    assert_eq!(
        parsed(
            JSON,
            r#"{"errors": {"name": ["is too short", "is taken"]}}"#
        ),
        (msgs(&["name is too short", "name is taken"]), None)
    );
    assert_eq!(
        parsed(JSON, r#"{"error": "not found"}"#),
        (msgs(&["not found"]), None)
    );
    assert_eq!(
        parsed(
            JSON,
            r#"{"error": {"message": "quota exceeded", "code": "rate_limit", "type": "requests"}}"#
        ),
        (msgs(&["quota exceeded"]), Some("rate_limit".into()))
    );
    assert_eq!(
        parsed(
            JSON,
            r#"{"error": {"message": "bad key", "type": "invalid_request_error"}}"#
        ),
        (msgs(&["bad key"]), Some("invalid_request_error".into()))
    );
    assert_eq!(
        parsed(JSON, r#"{"message": "Not Found", "code": 404}"#),
        (msgs(&["Not Found"]), Some("404".into()))
    );
    assert_eq!(
        parsed(JSON, r#"{"detail": "Authentication failed"}"#),
        (msgs(&["Authentication failed"]), None)
    );
    assert_eq!(
        parsed(
            JSON,
            r#"{"error": "invalid_grant", "error_description": "The refresh token expired"}"#
        ),
        (
            msgs(&["The refresh token expired"]),
            Some("invalid_grant".into())
        )
    );
    assert_eq!(
        parsed(JSON, r#"["one", "two"]"#),
        (msgs(&["one", "two"]), None)
    );
    assert_eq!(
        parsed(Some("text/plain"), "\n  upstream connect error  \nmore\n"),
        (msgs(&["upstream connect error"]), None)
    );
    assert_eq!(
        parsed(Some("text/html"), "<html><body>oops</body></html>"),
        (vec![], None)
    );
}

#[test]
fn problem_details() {
    let body = r#"{"type": "https://example.com/probs/out-of-credit", "title": "You do not have enough credit.",
        "status": 403, "detail": "Your current balance is 30, but that costs 50.",
        "instance": "/account/12345/msgs/abc", "balance": 30}"#;
    let p = parse(
        Some("application/problem+json"),
        body.as_bytes(),
        &Shapes::default(),
    );
    assert_eq!(
        p.messages,
        msgs(&["Your current balance is 30, but that costs 50."])
    );
    let problem = p.problem.unwrap();
    assert_eq!(
        problem.problem_type.as_deref(),
        Some("https://example.com/probs/out-of-credit")
    );
    assert_eq!(
        problem.title.as_deref(),
        Some("You do not have enough credit.")
    );
    assert_eq!(problem.status, Some(403));
    assert_eq!(problem.instance.as_deref(), Some("/account/12345/msgs/abc"));
    assert_eq!(problem.extensions["balance"], 30);
    // The shape alone is enough, whatever the content type.
    let p = parse(
        JSON,
        br#"{"type": "about:blank", "title": "Gone"}"#,
        &Shapes::default(),
    );
    assert_eq!(p.messages, msgs(&["Gone"]));
    assert!(p.problem.is_some());
}

#[test]
fn a_shape_of_ones_own_comes_first() {
    let shapes = Shapes(vec![Arc::new(|v: &Value| {
        let reason = v.get("fault")?.get("reason")?.as_str()?;
        Some(Found::message(reason).with_code("fault"))
    })]);
    let p = parse(
        JSON,
        br#"{"fault": {"reason": "disk full"}, "message": "ignored"}"#,
        &shapes,
    );
    assert_eq!(
        (p.messages, p.code),
        (msgs(&["disk full"]), Some("fault".into()))
    );
    // Not its shape: the built-in ones.
    let p = parse(JSON, br#"{"message": "used"}"#, &shapes);
    assert_eq!(p.messages, msgs(&["used"]));
}

#[test]
fn hostile_bodies_are_bounded() {
    // Nulls and wrong types where strings are expected: skipped.
    assert_eq!(
        parsed(JSON, r#"{"errors": [null, 5, {"message": null}, "real"]}"#),
        (msgs(&["real"]), None)
    );
    assert_eq!(
        parsed(JSON, r#"{"error": null, "message": 7, "detail": "d"}"#),
        (msgs(&["d"]), None)
    );
    // A content type that lies about JSON: the first line as text.
    assert_eq!(
        parsed(JSON, "Service down for maintenance"),
        (msgs(&["Service down for maintenance"]), None)
    );
    // Broken JSON: text.
    assert_eq!(
        parsed(JSON, r#"{"error": "unterminated"#),
        (msgs(&[r#"{"error": "unterminated"#]), None)
    );
    // Invalid UTF-8: replaced.
    let p = parse(Some("text/plain"), b"bad \xff\xfe byte", &Shapes::default());
    assert_eq!(p.messages, msgs(&["bad \u{fffd}\u{fffd} byte"]));
    // 100,000 levels of nesting: no stack overflow (serde_json stops at 128).
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let p = parse(JSON, deep.as_bytes(), &Shapes::default());
    assert!(p.messages.len() <= 1 && p.messages.iter().all(|m| m.len() <= MAX_MESSAGE_BYTES));
    let deep = format!("{}1{}", r#"{"error":"#.repeat(100_000), "}".repeat(100_000));
    let p = parse(JSON, deep.as_bytes(), &Shapes::default());
    assert!(p.messages.iter().all(|m| m.len() <= MAX_MESSAGE_BYTES));
    // A million messages, the first ones 2 KiB long: the first 16, each cut to 1 KiB (at a
    // character boundary).
    let long = format!("\"{}\"", "é".repeat(1024));
    let many = format!(
        r#"{{"errors": [{}]}}"#,
        std::iter::repeat_n(long.as_str(), 20)
            .chain(std::iter::repeat_n("\"x\"", 1_000_000 - 20))
            .collect::<Vec<_>>()
            .join(",")
    );
    let p = parse(JSON, many.as_bytes(), &Shapes::default());
    assert_eq!(p.messages.len(), MAX_MESSAGES);
    assert!(p
        .messages
        .iter()
        .all(|m| m.len() <= MAX_MESSAGE_BYTES && m.len() >= MAX_MESSAGE_BYTES - 1));
}

#[test]
fn blank_messages_are_no_messages() {
    // Found by the round-trip property: a blank `error.message` gave one empty message.
    assert_eq!(
        parsed(JSON, r#"{"error": {"message": " ", "code": 0}}"#),
        (vec![], Some("0".into()))
    );
    assert_eq!(
        parsed(JSON, r#"{"errors": ["", "  ", {"message": " "}]}"#),
        (vec![], None)
    );
    assert_eq!(parsed(JSON, r#"{"message": "  "}"#), (vec![], None));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsing_any_bytes_never_panics_and_is_bounded(body in proptest::collection::vec(any::<u8>(), 0..4096), json in any::<bool>()) {
        let p = parse(if json { JSON } else { None }, &body, &Shapes::default());
        prop_assert!(p.messages.len() <= MAX_MESSAGES);
        prop_assert!(p.messages.iter().all(|m| m.len() <= MAX_MESSAGE_BYTES));
        prop_assert!(p.code.as_ref().is_none_or(|c| c.len() <= 256));
    }

    #[test]
    fn any_error_message_is_found_again(message in "[a-zA-Z0-9 .,!?']{1,200}", code in 0u32..100_000) {
        let body = serde_json::json!({"error": {"message": message, "code": code}}).to_string();
        let p = parse(JSON, body.as_bytes(), &Shapes::default());
        prop_assert_eq!(p.messages, vec![message.trim().to_owned()].into_iter().filter(|m| !m.is_empty()).collect::<Vec<_>>());
        prop_assert_eq!(p.code, Some(code.to_string()));
    }
}

fn response(status: u16, headers: &[(&str, &str)], body: &'static str) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[tokio::test]
async fn the_error_carries_every_part_and_prints_one_line() {
    let res = response(
        503,
        &[
            ("content-type", "application/json"),
            ("x-amzn-requestid", "7f3a"),
            ("retry-after", "30"),
        ],
        r#"{"errors": ["VLANs are not enabled for this network", "and more"]}"#,
    );
    let e = ApiError::from_response(res).await;
    assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(e.request_id(), Some("7f3a"));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(e.content_type(), Some("application/json"));
    assert!(!e.truncated());
    assert_eq!(e.attempts(), 1);
    assert!(e.body_text().contains("VLANs"));
    assert_eq!(
        e.to_string(),
        "503 Service Unavailable: VLANs are not enabled for this network (and 1 more) (request id 7f3a, retry after 30 s)"
    );
    assert!(std::error::Error::source(&e).is_none());
    // A status with no message and no reason phrase.
    let e = ApiError::from_response(response(599, &[], "")).await;
    assert_eq!(e.to_string(), "599");
}

#[tokio::test]
async fn a_body_over_the_limit_stops_at_the_limit() {
    let reader = ApiErrorReader::new().body_limit(10);
    let e = reader.read(response(500, &[], "0123456789abcdef")).await;
    assert_eq!(e.body().as_ref(), b"0123456789");
    assert!(e.truncated());
    // Exactly at the limit is not truncated.
    let e = reader.read(response(500, &[], "0123456789")).await;
    assert!(!e.truncated());
}

/// A body that yields its chunks one at a time, `delay` apart, then maybe an error.
fn drip(
    chunks: Vec<&'static str>,
    delay: Duration,
    fail: bool,
) -> impl Body<Data = Bytes, Error = std::io::Error> {
    let stream = futures_util::stream::unfold(
        (chunks.into_iter(), fail),
        move |(mut it, fail)| async move {
            tokio::time::sleep(delay).await;
            match it.next() {
                Some(c) => Some((
                    Ok(Frame::data(Bytes::from_static(c.as_bytes()))),
                    (it, fail),
                )),
                None if fail => Some((
                    Err(std::io::Error::other("connection reset mid-body")),
                    (it, false),
                )),
                None => None,
            }
        },
    );
    StreamBody::new(stream)
}

#[tokio::test(start_paused = true)]
async fn a_slow_drip_past_the_time_bound_keeps_what_arrived() {
    let reader = ApiErrorReader::new().time_limit(Duration::from_secs(1));
    let body = drip(
        vec!["first line\n", "second", "third", "fourth"],
        Duration::from_millis(400),
        false,
    );
    let res = Response::builder().status(502).body(body).unwrap();
    let start = tokio::time::Instant::now();
    let e = reader.read(res).await;
    assert!(
        start.elapsed() <= Duration::from_millis(1_001),
        "{:?}",
        start.elapsed()
    );
    assert!(e.timed_out() && e.truncated());
    assert_eq!(e.body().as_ref(), b"first line\nsecond");
    assert_eq!(e.message(), Some("first line"));
}

#[tokio::test(start_paused = true)]
async fn a_body_error_keeps_what_arrived_and_becomes_the_source() {
    let body = drip(vec![r#"{"error": "cut"#], Duration::from_millis(1), true);
    let res = Response::builder().status(500).body(body).unwrap();
    let e = ApiError::from_response(res).await;
    assert!(e.truncated() && !e.timed_out());
    assert_eq!(e.body().as_ref(), br#"{"error": "cut"#);
    let source = std::error::Error::source(&e).expect("the body's error");
    assert!(source.to_string().contains("connection reset"));
}

/// A body that counts how often it is polled.
struct Counted(Arc<AtomicUsize>);

impl Body for Counted {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(None)
    }
}

#[tokio::test]
async fn successes_pass_untouched_with_their_body_unread() {
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let svc = ErrorForStatusLayer::new().layer(service_fn(move |_: Request<()>| {
        let p = p.clone();
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .status(201)
                    .header("x-a", "1")
                    .body(Counted(p))
                    .unwrap(),
            )
        }
    }));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["x-a"], "1");
    assert_eq!(
        polls.load(Ordering::SeqCst),
        0,
        "the layer never touched the body"
    );
    let _ = res.into_body().collect().await;
    assert_eq!(polls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_status_set_is_configurable() {
    let statuses = resile_classify::StatusSet::from_statuses([StatusCode::NOT_FOUND]);
    let svc = ErrorForStatusLayer::new()
        .statuses(statuses)
        .layer(service_fn(|req: Request<()>| async move {
            let status = if req.uri().path() == "/missing" {
                404
            } else {
                500
            };
            Ok::<_, Infallible>(response(status, &[], "no"))
        }));
    let res = svc
        .clone()
        .oneshot(Request::get("/other").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 500, "not in the set: passed through");
    let err = svc
        .oneshot(Request::get("/missing").body(()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.downcast_ref::<ApiError>().unwrap().status(), 404);
}

#[tokio::test]
async fn the_attempts_of_a_retry_layer_inside_are_counted() {
    let svc = ErrorForStatusLayer::new().layer(service_fn(|_: Request<()>| async {
        let mut res = response(503, &[], r#"{"message": "still down"}"#);
        res.extensions_mut().insert(resile_classify::Attempts(4));
        Ok::<_, Infallible>(res)
    }));
    let err = svc.oneshot(Request::new(())).await.unwrap_err();
    let e = err.downcast_ref::<ApiError>().unwrap();
    assert_eq!(e.attempts(), 4);
    assert_eq!(
        e.to_string(),
        "503 Service Unavailable: still down (4 attempts)"
    );
}

#[tokio::test]
async fn inner_errors_pass_through() {
    let svc = ErrorForStatusLayer::new().layer(service_fn(|_: Request<()>| async {
        Err::<Response<Full<Bytes>>, _>(std::io::Error::other("refused"))
    }));
    let err = svc.oneshot(Request::new(())).await.unwrap_err();
    assert!(err.is::<std::io::Error>());
}
