//! `ApiError` end to end: a real server on loopback answers each recognised error shape;
//! hyper-util behind the client stack with `.error_for_status()`, and reqwest with
//! `ApiError::from_reqwest`, turn each into the messages it holds.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use resile::api_error::ApiError;
use resile_tests::{hyper_client, reqwest_client, FnServer};
use tower::{ServiceBuilder, ServiceExt};

/// (path, status, content type, body, the message expected, the code expected)
type Shape = (
    &'static str,
    u16,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

const SHAPES: &[Shape] = &[
    (
        "/errors",
        400,
        "application/json",
        r#"{"errors": ["VLANs are not enabled for this network"]}"#,
        "VLANs are not enabled for this network",
        None,
    ),
    (
        "/errors-objects",
        422,
        "application/json",
        r#"{"errors": [{"message": "name is taken", "code": 1001}]}"#,
        "name is taken",
        Some("1001"),
    ),
    (
        "/error",
        404,
        "application/json",
        r#"{"error": "no such network"}"#,
        "no such network",
        None,
    ),
    (
        "/error-object",
        429,
        "application/json",
        r#"{"error": {"message": "slow down", "code": "rate_limited", "type": "requests"}}"#,
        "slow down",
        Some("rate_limited"),
    ),
    (
        "/message",
        403,
        "application/json",
        r#"{"message": "forbidden for this key"}"#,
        "forbidden for this key",
        None,
    ),
    (
        "/detail",
        401,
        "application/json",
        r#"{"detail": "token expired"}"#,
        "token expired",
        None,
    ),
    (
        "/oauth",
        400,
        "application/json",
        r#"{"error": "invalid_grant", "error_description": "refresh token revoked"}"#,
        "refresh token revoked",
        Some("invalid_grant"),
    ),
    (
        "/problem",
        409,
        "application/problem+json",
        r#"{"type": "https://example.com/conflict", "title": "Conflict", "detail": "version 3 is older than 4", "status": 409}"#,
        "version 3 is older than 4",
        None,
    ),
    (
        "/text",
        500,
        "text/plain",
        "database unavailable\nstack trace follows",
        "database unavailable",
        None,
    ),
];

async fn server() -> FnServer {
    FnServer::start(|req: Request<Bytes>| async move {
        let path = req.uri().path().to_owned();
        if path == "/ok" {
            return Ok(Response::new(Full::new(Bytes::from_static(b"all good"))));
        }
        let (_, status, ct, body, _, _) = SHAPES.iter().find(|s| s.0 == path).copied().unwrap_or((
            "",
            418,
            "text/plain",
            "unknown path",
            "",
            None,
        ));
        Ok(Response::builder()
            .status(status)
            .header("content-type", ct)
            .header("x-request-id", format!("req{}", path.len()))
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap())
    })
    .await
}

#[tokio::test]
async fn hyper_client_behind_the_stack_sees_each_shape() {
    let server = server().await;
    let stack = resile::stack::http_client()
        .no_retry()
        .attempt_timeout(Duration::from_secs(5))
        .error_for_status();
    let client = ServiceBuilder::new().layer(stack).service(hyper_client());
    for (path, status, _, _, message, code) in SHAPES {
        let req = Request::get(server.url(path))
            .body(Full::default())
            .unwrap();
        let err = client.clone().oneshot(req).await.unwrap_err();
        let e = err
            .downcast_ref::<ApiError>()
            .unwrap_or_else(|| panic!("{path}: {err}"));
        assert_eq!(e.status(), *status, "{path}");
        assert_eq!(e.message(), Some(*message), "{path}");
        assert_eq!(e.code(), *code, "{path}");
        assert_eq!(e.request_id(), Some(format!("req{}", path.len()).as_str()));
        assert!(e.to_string().contains(message), "{e}");
    }
    let problem = {
        let req = Request::get(server.url("/problem"))
            .body(Full::default())
            .unwrap();
        let err = client.clone().oneshot(req).await.unwrap_err();
        err.downcast::<ApiError>().unwrap()
    };
    let p = problem.problem().unwrap();
    assert_eq!(
        (p.title.as_deref(), p.status),
        (Some("Conflict"), Some(409))
    );
    // A success passes through, its body streamed to the caller as the server sent it.
    let req = Request::get(server.url("/ok"))
        .body(Full::default())
        .unwrap();
    let res = client.oneshot(req).await.unwrap();
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "all good"
    );
}

#[tokio::test]
async fn a_retried_503_ends_as_an_error_counting_the_attempts() {
    let server = FnServer::start(|_req: Request<Bytes>| async move {
        Ok(Response::builder()
            .status(503)
            .header("content-type", "application/json")
            .header("retry-after", "0")
            .body(Full::new(Bytes::from_static(
                br#"{"message": "maintenance"}"#,
            )))
            .unwrap())
    })
    .await;
    let stack = resile::stack::http_client()
        .no_circuit_breaker()
        .error_for_status();
    let client = ServiceBuilder::new().layer(stack).service(hyper_client());
    let req = Request::get(server.url("/")).body(Full::default()).unwrap();
    let err = client.oneshot(req).await.unwrap_err();
    let e = err.downcast_ref::<ApiError>().unwrap();
    assert_eq!(
        server.hits(),
        4,
        "the first attempt and the default 3 retries"
    );
    assert_eq!(e.attempts(), 4);
    assert_eq!(
        e.to_string(),
        "503 Service Unavailable: maintenance (retry after 0 s, 4 attempts)"
    );
}

#[tokio::test]
async fn reqwest_responses_read_into_the_same_error() {
    let server = server().await;
    let client = reqwest_client();
    for (path, status, _, _, message, code) in SHAPES {
        let res = client.get(server.url(path)).send().await.unwrap();
        let e = ApiError::from_reqwest(res).await;
        assert_eq!(e.status(), *status, "{path}");
        assert_eq!(e.message(), Some(*message), "{path}");
        assert_eq!(e.code(), *code, "{path}");
    }
}
