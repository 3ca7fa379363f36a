//! resile's layers as a [`reqwest_middleware::Middleware`] (feature `reqwest-middleware`), for a
//! `reqwest_middleware::ClientWithMiddleware`.
//!
//! [`ResileMiddleware`] wraps any tower layer over reqwest requests, the client stack
//! ([`stack::http_client()`](crate::stack::http_client)) or one layer, and runs it around the
//! rest of the middleware chain. Each attempt the layers make (the first and each retry) goes
//! through the middleware registered after this one, then the client.
//!
//! ```no_run
//! use reqwest_middleware::ClientBuilder;
//! use resile::reqwest_middleware::ResileMiddleware;
//!
//! # async fn run() -> Result<(), reqwest_middleware::Error> {
//! // retry (backoff + Retry-After + budget) > breaker > server pause > per-attempt timeout
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(ResileMiddleware::new(resile::stack::http_client()))
//!     .build();
//! let res = client.get("http://127.0.0.1:8080/").send().await?;
//! println!("{}", res.status());
//! # Ok(())
//! # }
//! ```
//!
//! # What differs from the tower stack
//!
//! - **Errors.** An error of the chain after this middleware, or of the client, comes back as
//!   it was (`reqwest_middleware::Error::Reqwest`, or the other middleware's own). An error made
//!   by a resile layer (an open breaker's `BreakerOpen`, a limiter's `WaitTooLong`, an attempt
//!   timeout) comes back as `reqwest_middleware::Error::Middleware` holding a [`LayerError`];
//!   [`LayerError::find`] reaches the layer's own error type. The `LocalRejection` marker stays
//!   in the source chain, so classifiers outside still see a local refusal.
//! - **Extensions.** Each attempt runs the rest of the chain with its own copy of the request's
//!   `http::Extensions`, taken when the request enters this middleware: what the middleware after
//!   it writes there is not seen by the middleware before it.
//! - **Bodies.** A request is retried when `reqwest::Request::try_clone` can copy it; a streaming
//!   body cannot be copied, so such a request is sent once.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use tower::{Layer, Service, ServiceExt};

use crate::BoxError;

/// A tower layer over reqwest requests as a `reqwest_middleware::Middleware`.
///
/// The layer is applied once per request, to the rest of the chain: the layers' shared state
/// (breaker, budget, limiter) lives in the layer and is shared by every request, as it is when
/// the same layer wraps a `reqwest::Client` directly.
#[derive(Clone, Debug)]
pub struct ResileMiddleware<L> {
    layer: L,
}

impl<L> ResileMiddleware<L> {
    /// Runs `layer` around the rest of the middleware chain.
    pub fn new(layer: L) -> Self {
        ResileMiddleware { layer }
    }

    /// The layer.
    pub fn get_ref(&self) -> &L {
        &self.layer
    }
}

#[async_trait::async_trait]
impl<L> Middleware for ResileMiddleware<L>
where
    L: for<'a> Layer<RestOfChain<'a>> + Send + Sync + 'static,
    for<'a> <L as Layer<RestOfChain<'a>>>::Service: Service<Request, Response = Response> + Send,
    for<'a> <<L as Layer<RestOfChain<'a>>>::Service as Service<Request>>::Error: Into<BoxError>,
    for<'a> <<L as Layer<RestOfChain<'a>>>::Service as Service<Request>>::Future: Send,
{
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let rest = RestOfChain {
            next,
            extensions: extensions.clone(),
        };
        self.layer
            .layer(rest)
            .oneshot(req)
            .await
            .map_err(|e| into_middleware_error(e.into()))
    }
}

/// The middleware after a [`ResileMiddleware`] and the client, as the tower service its layer
/// wraps. Each call runs the rest of the chain once, with a copy of the request's extensions.
///
/// Its error is the client's `reqwest::Error` itself (not wrapped in
/// `reqwest_middleware::Error::Reqwest`), so that the layers classify it exactly (a refused
/// connection, a timeout); another middleware's error is passed on boxed, as it is.
#[derive(Clone)]
pub struct RestOfChain<'a> {
    next: Next<'a>,
    extensions: Extensions,
}

impl fmt::Debug for RestOfChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestOfChain").finish_non_exhaustive()
    }
}

impl<'a> Service<Request> for RestOfChain<'a> {
    type Response = Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response, BoxError>> + Send + 'a>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let next = self.next.clone();
        let mut extensions = self.extensions.clone();
        Box::pin(async move {
            next.run(req, &mut extensions).await.map_err(|e| match e {
                reqwest_middleware::Error::Reqwest(e) => BoxError::from(e),
                other => BoxError::from(other),
            })
        })
    }
}

/// The chain's own errors back as they were; a resile layer's inside a [`LayerError`].
fn into_middleware_error(err: BoxError) -> reqwest_middleware::Error {
    match err.downcast::<reqwest_middleware::Error>() {
        Ok(err) => *err,
        Err(err) => match err.downcast::<reqwest::Error>() {
            Ok(err) => reqwest_middleware::Error::Reqwest(*err),
            Err(err) => reqwest_middleware::Error::Middleware(anyhow::Error::new(LayerError(err))),
        },
    }
}

/// An error made by a resile layer inside [`ResileMiddleware`] (an open breaker, a limiter's
/// refusal, an attempt timeout), as `reqwest_middleware::Error::Middleware` holds it.
///
/// Its [`source`](StdError::source) is the layer's error, so the error chain (and the
/// `LocalRejection` marker in it) is the layer's.
pub struct LayerError(BoxError);

impl LayerError {
    /// The resile layer's error in `err`, as type `E` (`BreakerOpen`, `WaitTooLong`, ...).
    pub fn find<E: StdError + 'static>(err: &reqwest_middleware::Error) -> Option<&E> {
        match err {
            reqwest_middleware::Error::Middleware(e) => {
                e.downcast_ref::<LayerError>()?.0.downcast_ref::<E>()
            }
            reqwest_middleware::Error::Reqwest(_) => None,
        }
    }

    /// The layer's error.
    pub fn get_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.0
    }

    /// The layer's error, owned.
    pub fn into_inner(self) -> BoxError {
        self.0
    }
}

impl fmt::Debug for LayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for LayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("resile layer: ")?;
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for LayerError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.0)
    }
}
