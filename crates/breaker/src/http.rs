//! For servers: answer `503 Service Unavailable` with `Retry-After` when the breaker is open.
//!
//! A breaker inside a server (guarding a handler's dependency, say) fails fast with a
//! [`BreakerOpen`] error. [`ServiceUnavailableLayer`], placed above it, turns that error into a
//! response the client understands:
//!
//! - status `503 Service Unavailable`;
//! - `Retry-After`: the time until the breaker's next probe in whole seconds, rounded up, and at
//!   least 1 (a half-open breaker whose probe slots are taken says 1, never 0, so clients do not
//!   come straight back); no `Retry-After` when the breaker was forced open (there is no time
//!   to promise);
//! - an empty body (`Default` of the response body type).
//!
//! Every other error passes through unchanged.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use resile_breaker::{http::ServiceUnavailableLayer, CircuitBreakerLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let breaker = CircuitBreakerLayer::new();
//! let handle = breaker.handle();
//! let svc = ServiceBuilder::new()
//!     .layer(ServiceUnavailableLayer)
//!     .layer(breaker)
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello"))))
//!     }));
//!
//! handle.force_open();
//! let res = svc.oneshot(Request::new(())).await.unwrap();
//! assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{header, HeaderValue, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::BreakerOpen;
use crate::BoxError;

/// Turns [`BreakerOpen`] errors into `503 Service Unavailable` responses with `Retry-After`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServiceUnavailableLayer;

impl<S> Layer<S> for ServiceUnavailableLayer {
    type Service = ServiceUnavailable<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServiceUnavailable { inner }
    }
}

/// See [`ServiceUnavailableLayer`].
#[derive(Debug, Clone)]
pub struct ServiceUnavailable<S> {
    inner: S,
}

impl<S> ServiceUnavailable<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        ServiceUnavailable { inner }
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The `503` response for a rejection.
pub fn service_unavailable<B: Default>(open: &BreakerOpen) -> Response<B> {
    let mut res = Response::new(B::default());
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    if let Some(d) = open.until_probe() {
        let secs = resile_retry_after::ceil_seconds(d).max(1);
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

impl<S, Req, B> Service<Req> for ServiceUnavailable<S>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Default,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = ServiceUnavailableFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        ServiceUnavailableFuture {
            fut: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The future of [`ServiceUnavailable`].
    #[derive(Debug)]
    pub struct ServiceUnavailableFuture<F> {
        #[pin]
        fut: F,
    }
}

impl<F, B, E> Future for ServiceUnavailableFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Default,
{
    type Output = Result<Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().fut.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(res)) => Poll::Ready(Ok(res)),
            Poll::Ready(Err(e)) => {
                let e: BoxError = e.into();
                match e.downcast_ref::<BreakerOpen>() {
                    Some(open) => Poll::Ready(Ok(service_unavailable(open))),
                    None => Poll::Ready(Err(e)),
                }
            }
        }
    }
}
