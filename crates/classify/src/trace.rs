//! [`Classifier`] as a tower-http classifier (feature `tower-http`), so that tower-http's
//! `TraceLayer` marks failures exactly as resile's retry layer and circuit breaker see them.
//!
//! [`Classifier`] implements tower-http's `MakeClassifier` and `ClassifyResponse`; its failure
//! class is [`Failure`]:
//!
//! - a response is a failure when the classifier would retry it (429, 408 and the retryable 5xx
//!   by default) or a breaker counts it as a failure (every 5xx by default). Anything else (2xx,
//!   3xx, the other 4xx) is a success to the trace, as it is to the breaker;
//! - an error is always a failure (tower-http's rule), classified by walking its source chain
//!   when it is a `BoxError`, a `std::io::Error`, a hyper or hyper-util error (feature `hyper`)
//!   or a `reqwest::Error` (feature `reqwest`). An error of another type is classified as a
//!   transport error of unknown cause, from its message.
//!
//! ```
//! use std::time::Duration;
//!
//! use resile_classify::{trace::Failure, Classifier};
//! use tower_http::trace::TraceLayer;
//!
//! // The same classifier as the retry layer and the breaker (here the default one).
//! let trace = TraceLayer::new(Classifier::default())
//!     .on_failure(|failure: Failure, _latency: Duration, _span: &tracing::Span| {
//!         tracing::warn!(%failure, retry = ?failure.classification.retry, "request failed");
//!     });
//! # let _ = trace;
//! ```

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;

use http::{Request, Response, StatusCode};
use tower_http::classify::{
    ClassifiedResponse, ClassifyResponse, MakeClassifier, NeverClassifyEos,
};

use crate::{BreakerVerdict, Classification, Classifier, Outcome, RetryClass};

/// A failure as tower-http's `TraceLayer` reports it: the response's status (none for an
/// error) and how [`Classifier`] classified the outcome.
///
/// Displays as the status and the kind of outcome, for tower-http's default `on_failure`
/// (`503 Service Unavailable (RetryableServerError)`, `error (Timeout)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Failure {
    /// The response's status, or `None` for an error.
    pub status: Option<StatusCode>,
    /// How the classifier classified it.
    pub classification: Classification,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{status}")?,
            None => f.write_str("error")?,
        }
        write!(f, " ({:?})", self.classification.kind)
    }
}

/// Whether a response with this classification is a failure to a trace: the classifier retries
/// it, or a breaker counts it as a failure.
fn is_failure(class: &Classification) -> bool {
    class.retry != RetryClass::Never || class.breaker == BreakerVerdict::Failure
}

impl ClassifyResponse for Classifier {
    type FailureClass = Failure;
    type ClassifyEos = NeverClassifyEos<Failure>;

    fn classify_response<B>(
        self,
        res: &Response<B>,
    ) -> ClassifiedResponse<Failure, Self::ClassifyEos> {
        let classification = self.classify(Outcome::response(res));
        if is_failure(&classification) {
            ClassifiedResponse::Ready(Err(Failure {
                status: Some(res.status()),
                classification,
            }))
        } else {
            ClassifiedResponse::Ready(Ok(()))
        }
    }

    fn classify_error<E>(self, error: &E) -> Failure
    where
        E: fmt::Display + 'static,
    {
        let classification = match as_std_error(error) {
            Some(err) => self.classify(Outcome::error(err)),
            None => self.classify(Outcome::error(&Opaque(error.to_string()))),
        };
        Failure {
            status: None,
            classification,
        }
    }
}

impl MakeClassifier for Classifier {
    type Classifier = Classifier;
    type FailureClass = Failure;
    type ClassifyEos = NeverClassifyEos<Failure>;

    fn make_classifier<B>(&self, _req: &Request<B>) -> Classifier {
        self.clone()
    }
}

/// `error` as a `std::error::Error` whose source chain the classifier can walk, for the error
/// types services return (tower-http only promises `Display`).
fn as_std_error<E: 'static>(error: &E) -> Option<&(dyn StdError + 'static)> {
    let any = error as &dyn Any;
    if let Some(e) = any.downcast_ref::<crate::BoxError>() {
        return Some(&**e);
    }
    if let Some(e) = any.downcast_ref::<Box<dyn StdError + Send>>() {
        return Some(&**e);
    }
    if let Some(e) = any.downcast_ref::<Box<dyn StdError>>() {
        return Some(&**e);
    }
    if let Some(e) = any.downcast_ref::<std::io::Error>() {
        return Some(e);
    }
    if let Some(e) = any.downcast_ref::<tower::timeout::error::Elapsed>() {
        return Some(e);
    }
    #[cfg(feature = "hyper")]
    {
        if let Some(e) = any.downcast_ref::<hyper_util::client::legacy::Error>() {
            return Some(e);
        }
        if let Some(e) = any.downcast_ref::<hyper::Error>() {
            return Some(e);
        }
    }
    #[cfg(feature = "reqwest")]
    {
        if let Some(e) = any.downcast_ref::<reqwest::Error>() {
            return Some(e);
        }
    }
    None
}

/// An error of a type the classifier cannot look into: only its message is known.
#[derive(Debug)]
struct Opaque(String);

impl fmt::Display for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Opaque {}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http::{Request, Response};
    use tower::{service_fn, BoxError, Service, ServiceBuilder, ServiceExt};
    use tower_http::trace::TraceLayer;

    use super::Failure;
    use crate::{Classifier, LocalRejection, OutcomeKind};

    /// Sends one request to a service answering `answer`, through a `TraceLayer` on
    /// `Classifier::default()`; returns the failure it reported, if any.
    async fn traced(answer: Result<u16, BoxError>) -> Option<Failure> {
        let seen = Arc::new(Mutex::new(None));
        let record = seen.clone();
        let answer = Arc::new(Mutex::new(Some(answer)));
        let svc = service_fn(move |_req: Request<String>| {
            let answer = answer.lock().unwrap().take().unwrap();
            async move {
                answer.map(|status| {
                    Response::builder()
                        .status(status)
                        .body(String::new())
                        .unwrap()
                })
            }
        });
        let mut svc = ServiceBuilder::new()
            .layer(TraceLayer::new(Classifier::default()).on_failure(
                move |failure: Failure, _latency, _span: &tracing::Span| {
                    *record.lock().unwrap() = Some(failure);
                },
            ))
            .service(svc);
        let req = Request::get("http://example.com/")
            .body(String::new())
            .unwrap();
        let _ = svc.ready().await.unwrap().call(req).await;
        let failure = *seen.lock().unwrap();
        failure
    }

    #[tokio::test]
    async fn responses_fail_as_the_retry_layer_and_breaker_count_them() {
        for ok in [200, 204, 301, 304, 400, 401, 404, 409] {
            assert_eq!(traced(Ok(ok)).await, None, "{ok}");
        }
        for (status, kind) in [
            (429, OutcomeKind::TooManyRequests),
            (408, OutcomeKind::RequestTimeout),
            (500, OutcomeKind::RetryableServerError),
            (503, OutcomeKind::RetryableServerError),
            (501, OutcomeKind::ServerError),
            (505, OutcomeKind::ServerError),
        ] {
            let failure = traced(Ok(status)).await.expect("a failure");
            assert_eq!(failure.status.map(|s| s.as_u16()), Some(status));
            assert_eq!(failure.classification.kind, kind, "{status}");
        }
        let failure = traced(Ok(503)).await.unwrap();
        assert_eq!(
            failure.to_string(),
            "503 Service Unavailable (RetryableServerError)"
        );
    }

    #[derive(Debug)]
    struct Refused;

    impl std::fmt::Display for Refused {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("refused")
        }
    }

    impl std::error::Error for Refused {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(LocalRejection::STATIC)
        }
    }

    #[tokio::test]
    async fn errors_are_classified_through_their_source_chain() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let failure = traced(Err(io.into())).await.unwrap();
        assert_eq!(failure.status, None);
        assert_eq!(failure.classification.kind, OutcomeKind::NotSent);
        assert_eq!(failure.to_string(), "error (NotSent)");

        let timeout = tower::timeout::error::Elapsed::new();
        let failure = traced(Err(timeout.into())).await.unwrap();
        assert_eq!(failure.classification.kind, OutcomeKind::Timeout);

        let failure = traced(Err(Refused.into())).await.unwrap();
        assert_eq!(failure.classification.kind, OutcomeKind::Rejected);
    }

    #[test]
    fn an_error_of_an_unknown_type_is_a_transport_error() {
        use tower_http::classify::ClassifyResponse;

        #[derive(Debug)]
        struct Custom;
        impl std::fmt::Display for Custom {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("custom")
            }
        }
        let failure = Classifier::default().classify_error(&Custom);
        assert_eq!(failure.classification.kind, OutcomeKind::Transport);
    }
}
