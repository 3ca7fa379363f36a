use super::*;
use std::io;

fn res(status: u16) -> http::Response<()> {
    http::Response::builder().status(status).body(()).unwrap()
}

fn req(method: Method) -> http::Request<()> {
    http::Request::builder()
        .method(method)
        .uri("http://example.com/")
        .body(())
        .unwrap()
}

/// Every row of the default table for responses: (status, retry class, breaker verdict, kind).
#[test]
fn default_table_statuses() {
    use BreakerVerdict as B;
    use OutcomeKind as K;
    use RetryClass as R;
    let c = Classifier::default();
    let rows: &[(u16, R, B, K)] = &[
        (100, R::Never, B::Success, K::Success),
        (200, R::Never, B::Success, K::Success),
        (204, R::Never, B::Success, K::Success),
        (301, R::Never, B::Success, K::Success),
        (304, R::Never, B::Success, K::Success),
        (429, R::Always, B::Neutral, K::TooManyRequests),
        (408, R::Idempotent, B::Neutral, K::RequestTimeout),
        (400, R::Never, B::Success, K::ClientError),
        (401, R::Never, B::Success, K::ClientError),
        (404, R::Never, B::Success, K::ClientError),
        (409, R::Never, B::Success, K::ClientError),
        (499, R::Never, B::Success, K::ClientError),
        (500, R::Idempotent, B::Failure, K::RetryableServerError),
        (502, R::Idempotent, B::Failure, K::RetryableServerError),
        (503, R::Idempotent, B::Failure, K::RetryableServerError),
        (504, R::Idempotent, B::Failure, K::RetryableServerError),
        (501, R::Never, B::Failure, K::ServerError),
        (505, R::Never, B::Failure, K::ServerError),
        (507, R::Never, B::Failure, K::ServerError),
        (599, R::Never, B::Failure, K::ServerError),
        (600, R::Never, B::Failure, K::InvalidStatus),
        (999, R::Never, B::Failure, K::InvalidStatus),
    ];
    for &(status, retry, breaker, kind) in rows {
        let r = res(status);
        let got = c.classify(Outcome::response(&r));
        assert_eq!(
            got,
            Classification::new(kind, retry, breaker),
            "status {status}"
        );
        assert_eq!(c.breaker_verdict(Outcome::response(&r)), breaker);
        assert_eq!(c.classify_status(r.status()), got);
    }
}

#[test]
fn idempotent_methods_follow_rfc_9110() {
    let c = Classifier::default();
    for m in [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ] {
        assert!(c.is_idempotent(&req(m.clone())), "{m}");
    }
    for m in [
        Method::POST,
        Method::PATCH,
        Method::CONNECT,
        Method::from_bytes(b"PURGE").unwrap(),
    ] {
        assert!(!c.is_idempotent(&req(m.clone())), "{m}");
    }
}

#[test]
fn idempotency_key_makes_post_retryable_on_5xx() {
    let c = Classifier::default();
    let mut post = req(Method::POST);
    let r = res(503);
    let class = c.classify(Outcome::response(&r));
    assert!(!class.retry_allowed(c.is_idempotent(&post)));
    post.headers_mut()
        .insert("idempotency-key", "8e03978e-40d5".parse().unwrap());
    assert!(class.retry_allowed(c.is_idempotent(&post)));

    // The rule can be turned off.
    let strict = Classifier::builder().idempotency_key(None).build();
    assert!(!strict.is_idempotent(&post));
    // Or moved to another header.
    let custom = Classifier::builder()
        .idempotency_key(Some(HeaderName::from_static("x-request-id")))
        .build();
    assert!(!custom.is_idempotent(&post));
    post.headers_mut()
        .insert("x-request-id", "abc".parse().unwrap());
    assert!(custom.is_idempotent(&post));
}

/// The method rules of the table: POST + 500 no, POST + 429 yes, POST + never sent yes,
/// POST + other transport error no, GET + the same yes.
#[test]
fn method_awareness() {
    let c = Classifier::default();
    let post = c.is_idempotent(&req(Method::POST));
    let get = c.is_idempotent(&req(Method::GET));
    let r500 = res(500);
    let r429 = res(429);
    assert!(!c.should_retry(post, Outcome::response(&r500)));
    assert!(c.should_retry(get, Outcome::response(&r500)));
    assert!(c.should_retry(post, Outcome::response(&r429)));
    let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
    assert!(c.should_retry(post, Outcome::error(&refused)));
    let reset = io::Error::from(io::ErrorKind::ConnectionReset);
    assert!(!c.should_retry(post, Outcome::error(&reset)));
    assert!(c.should_retry(get, Outcome::error(&reset)));
}

#[derive(Debug)]
struct Wrapper(Box<dyn StdError + Send + Sync>);
impl fmt::Display for Wrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wrapper")
    }
}
impl StdError for Wrapper {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.0)
    }
}

#[derive(Debug)]
struct Open;
impl fmt::Display for Open {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("open")
    }
}
impl StdError for Open {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(LocalRejection::STATIC)
    }
}

#[test]
fn error_rows() {
    use BreakerVerdict as B;
    use OutcomeKind as K;
    use RetryClass as R;
    let c = Classifier::default();
    let cases: Vec<(Box<dyn StdError + Send + Sync>, K, R, B)> = vec![
        (
            Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)),
            K::NotSent,
            R::Always,
            B::Failure,
        ),
        (
            Box::new(io::Error::from(io::ErrorKind::AddrNotAvailable)),
            K::NotSent,
            R::Always,
            B::Failure,
        ),
        (
            Box::new(io::Error::from(io::ErrorKind::TimedOut)),
            K::Timeout,
            R::Idempotent,
            B::Failure,
        ),
        (
            Box::new(io::Error::from(io::ErrorKind::ConnectionReset)),
            K::Transport,
            R::Idempotent,
            B::Failure,
        ),
        (
            Box::new(io::Error::from(io::ErrorKind::BrokenPipe)),
            K::Transport,
            R::Idempotent,
            B::Failure,
        ),
        (
            Box::new(tower::timeout::error::Elapsed::new()),
            K::Timeout,
            R::Idempotent,
            B::Failure,
        ),
        // Wrapped: the chain is walked.
        (
            Box::new(Wrapper(Box::new(io::Error::from(
                io::ErrorKind::ConnectionRefused,
            )))),
            K::NotSent,
            R::Always,
            B::Failure,
        ),
        (Box::new(Open), K::Rejected, R::Never, B::Neutral),
        (
            Box::new(Wrapper(Box::new(Open))),
            K::Rejected,
            R::Never,
            B::Neutral,
        ),
        (
            "something else".into(),
            K::Transport,
            R::Idempotent,
            B::Failure,
        ),
    ];
    for (err, kind, retry, breaker) in cases {
        let got = c.classify(Outcome::error(&*err));
        assert_eq!(got, Classification::new(kind, retry, breaker), "{err:?}");
        assert_eq!(c.server_hint(Outcome::error(&*err)), None);
    }
}

#[test]
fn a_cyclic_or_endless_chain_terminates() {
    #[derive(Debug)]
    struct Endless;
    impl fmt::Display for Endless {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("endless")
        }
    }
    impl StdError for Endless {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            static E: Endless = Endless;
            Some(&E)
        }
    }
    assert_eq!(transport_failure(&Endless), TransportFailure::Other);
}

#[tokio::test]
async fn tokio_elapsed_is_a_timeout() {
    let err = tokio::time::timeout(
        std::time::Duration::from_millis(1),
        std::future::pending::<()>(),
    )
    .await
    .unwrap_err();
    assert_eq!(transport_failure(&err), TransportFailure::Timeout);
}

#[test]
fn overrides() {
    let c = Classifier::builder()
        .retry_idempotent_statuses([StatusCode::BAD_GATEWAY])
        .retry_any_method_statuses([StatusCode::SERVICE_UNAVAILABLE])
        .breaker_neutral_statuses([StatusCode::NOT_IMPLEMENTED])
        .idempotent_methods([Method::GET, Method::from_bytes(b"PURGE").unwrap()])
        .build();
    assert_eq!(
        c.classify_status(StatusCode::INTERNAL_SERVER_ERROR).retry,
        RetryClass::Never
    );
    assert_eq!(
        c.classify_status(StatusCode::BAD_GATEWAY).retry,
        RetryClass::Idempotent
    );
    assert_eq!(
        c.classify_status(StatusCode::SERVICE_UNAVAILABLE).retry,
        RetryClass::Always
    );
    // 429 no longer special for retry; still a success for the breaker (a 4xx).
    let c429 = c.classify_status(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(c429.retry, RetryClass::Never);
    assert_eq!(c429.breaker, BreakerVerdict::Success);
    assert_eq!(
        c.classify_status(StatusCode::NOT_IMPLEMENTED).breaker,
        BreakerVerdict::Neutral
    );
    assert!(c.is_idempotent(&req(Method::from_bytes(b"PURGE").unwrap())));
    assert!(!c.is_idempotent(&req(Method::PUT)));
}

#[test]
fn custom_closure_goes_first_and_can_fall_back() {
    let c = Classifier::builder()
        .custom(|o| match o {
            Outcome::Response { status, headers } if status.is_success() => headers
                .contains_key("x-app-error")
                .then_some(Classification::new(
                    OutcomeKind::Custom,
                    RetryClass::Idempotent,
                    BreakerVerdict::Failure,
                )),
            _ => None,
        })
        .build();
    let plain = res(200);
    assert_eq!(
        c.classify(Outcome::response(&plain)).kind,
        OutcomeKind::Success
    );
    let flagged = http::Response::builder()
        .header("x-app-error", "1")
        .body(())
        .unwrap();
    let got = c.classify(Outcome::response(&flagged));
    assert_eq!(got.kind, OutcomeKind::Custom);
    assert_eq!(got.breaker, BreakerVerdict::Failure);
    // Falls back to the table.
    assert_eq!(
        c.classify(Outcome::response(&res(503))).breaker,
        BreakerVerdict::Failure
    );
    // Debug does not try to print the closure.
    assert!(format!("{c:?}").contains("custom: Some"));
}

#[test]
fn status_and_method_sets() {
    let mut s = StatusSet::empty();
    assert!(!s.contains(StatusCode::OK));
    s.insert(StatusCode::OK);
    s.insert(StatusCode::from_u16(999).unwrap());
    assert!(s.contains(StatusCode::OK));
    assert!(s.contains(StatusCode::from_u16(999).unwrap()));
    assert!(!s.contains(StatusCode::CREATED));
    s.remove(StatusCode::OK);
    assert!(!s.contains(StatusCode::OK));
    assert_eq!(format!("{s:?}"), "{999}");

    let m = MethodSet::from_methods([Method::POST, Method::from_bytes(b"X").unwrap()]);
    assert!(m.contains(&Method::POST));
    assert!(m.contains(&Method::from_bytes(b"X").unwrap()));
    assert!(!m.contains(&Method::GET));
    assert_eq!(format!("{m:?}"), "{POST, X}");
}

#[test]
fn server_hint_of_a_429() {
    let c = Classifier::default();
    let r = http::Response::builder()
        .status(429)
        .header("retry-after", "7")
        .body(())
        .unwrap();
    let hint = c.server_hint(Outcome::response(&r)).unwrap();
    assert_eq!(hint.delay, std::time::Duration::from_secs(7));
    assert_eq!(hint.source, HintSource::RetryAfter);
    assert_eq!(c.server_hint(Outcome::response(&res(503))), None);
}

#[test]
fn parts_implement_the_traits() {
    let c = Classifier::default();
    let (parts, ()) = req(Method::PUT).into_parts();
    assert!(c.is_idempotent(&parts));
    let (parts, ()) = res(502).into_parts();
    assert_eq!(
        c.classify(Outcome::response(&parts)).kind,
        OutcomeKind::RetryableServerError
    );
}

#[test]
fn may_retry_status_agrees_with_classify() {
    let custom = Classifier::builder().custom(|_: &Outcome<'_>| None).build();
    let narrowed = Classifier::builder()
        .retry_idempotent_statuses([StatusCode::BAD_GATEWAY])
        .retry_any_method_statuses([])
        .build();
    let none = Classifier::builder()
        .retry_idempotent_statuses([])
        .retry_any_method_statuses([])
        .build();
    for c in [Classifier::default(), narrowed, none] {
        for n in 100..1000u16 {
            let r = res(n);
            let never = c.classify(Outcome::response(&r)).retry == RetryClass::Never;
            assert_eq!(c.may_retry_status(r.status()), !never, "status {n}");
        }
    }
    assert!(!Classifier::default().may_retry_status(StatusCode::OK));
    assert!(Classifier::default().may_retry_status(StatusCode::TOO_MANY_REQUESTS));
    // A custom closure can retry anything: never ruled out.
    assert!(custom.may_retry_status(StatusCode::OK));
}

#[test]
fn breaker_verdict_fast_path_agrees_with_classify() {
    let configs = [
        Classifier::default(),
        Classifier::builder()
            .breaker_neutral_statuses([StatusCode::NOT_IMPLEMENTED, StatusCode::OK])
            .build(),
        Classifier::builder().breaker_neutral_statuses([]).build(),
    ];
    for c in &configs {
        for n in 100..1000u16 {
            let status = StatusCode::from_u16(n).unwrap();
            let r = http::Response::builder().status(status).body(()).unwrap();
            let full = c.classify(Outcome::response(&r)).breaker;
            assert_eq!(c.breaker_verdict_status(status), full, "{n}");
            assert_eq!(c.breaker_verdict(Outcome::response(&r)), full, "{n}");
        }
    }
}

#[derive(Debug)]
struct OpenFor(LocalRejection);
impl fmt::Display for OpenFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("open for a while")
    }
}
impl StdError for OpenFor {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn a_rejection_says_when_it_passes_again() {
    let d = std::time::Duration::from_millis(1500);
    let err = Wrapper(Box::new(OpenFor(LocalRejection::passing_in(d))));
    let found = LocalRejection::find(&err).expect("the marker is in the chain");
    assert_eq!(found.passes_in(), Some(d));
    assert!(found.to_string().contains("1.5s"), "{found}");
    // Still a local rejection for the table: never retried, neutral.
    let class = Classifier::default().classify(Outcome::error(&err));
    assert_eq!(class.kind, OutcomeKind::Rejected);
    assert_eq!(class.retry, RetryClass::Never);

    assert_eq!(LocalRejection::find(&Open).unwrap().passes_in(), None);
    assert_eq!(LocalRejection::STATIC.passes_in(), None);
    assert!(LocalRejection::find(&io::Error::other("x")).is_none());
}

/// An error whose source is itself: the walk stops.
#[derive(Debug)]
struct Cycle;
impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cycle")
    }
}
impl StdError for Cycle {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&Cycle)
    }
}

#[test]
fn finding_a_rejection_in_a_cyclic_chain_ends() {
    assert!(LocalRejection::find(&Cycle).is_none());
}
