//! The small views of requests and responses the classifier needs.

use http::{HeaderMap, Method, StatusCode};

use crate::LocalRejection;

/// What the classifier reads of a request.
pub trait RequestLike {
    /// The request method.
    fn method(&self) -> &Method;
    /// The request headers.
    fn headers(&self) -> &HeaderMap;
}

/// What the classifier reads of a response.
pub trait ResponseLike {
    /// The response status.
    fn status(&self) -> StatusCode;
    /// The response headers.
    fn headers(&self) -> &HeaderMap;
    /// The response's extensions, for types that have them (`None` by default).
    fn extensions(&self) -> Option<&http::Extensions> {
        None
    }
    /// The response's extensions, mutably, for types that have them (`None` by default).
    fn extensions_mut(&mut self) -> Option<&mut http::Extensions> {
        None
    }
}

/// How many attempts a retry layer made for the response it returned, when it made more than
/// one: resile-retry puts it in the final response's extensions (`http::Response`,
/// `reqwest::Response`), where the layers outside it read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attempts(pub u32);

/// The attempts recorded in a response's extensions, 1 when none are.
pub fn attempts<R: ResponseLike + ?Sized>(res: &R) -> u32 {
    res.extensions()
        .and_then(|e| e.get::<Attempts>())
        .map_or(1, |a| a.0)
}

/// Why a response came back although the retry layer had decided to retry it: the retry was
/// refused locally (an open circuit breaker, a rate-limit wait past its bound), so resile-retry
/// returned the last response the server gave, and put this in its extensions.
///
/// The response is the server's own (status, headers and body of the attempt before the
/// refused one); [`rejection`](Self::rejection) says which layer refused the next attempt, and
/// [`Attempts`] counts the refused attempt too.
///
/// ```
/// use resile_classify::{LocalRejection, RejectedBy, RetryRefused};
///
/// # let res = http::Response::new(());
/// // After `client.call(req).await?` on a stack with a retry layer:
/// match res.extensions().get::<RetryRefused>() {
///     Some(refused) if refused.rejection.rejected_by() == RejectedBy::CircuitBreaker => {
///         // The server's last answer, and the breaker is now open for this host.
///     }
///     _ => {}
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RetryRefused {
    /// The attempt that was refused (the response is from the attempt before it).
    pub attempt: u32,
    /// The refusal, as the refusing layer's error carried it.
    pub rejection: LocalRejection,
}

impl RetryRefused {
    /// Attempt `attempt` was refused with `rejection`.
    pub const fn new(attempt: u32, rejection: LocalRejection) -> Self {
        RetryRefused { attempt, rejection }
    }
}

impl<B> RequestLike for http::Request<B> {
    fn method(&self) -> &Method {
        http::Request::method(self)
    }
    fn headers(&self) -> &HeaderMap {
        http::Request::headers(self)
    }
}

impl RequestLike for http::request::Parts {
    fn method(&self) -> &Method {
        &self.method
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

impl<B> ResponseLike for http::Response<B> {
    fn status(&self) -> StatusCode {
        http::Response::status(self)
    }
    fn headers(&self) -> &HeaderMap {
        http::Response::headers(self)
    }
    fn extensions(&self) -> Option<&http::Extensions> {
        Some(http::Response::extensions(self))
    }
    fn extensions_mut(&mut self) -> Option<&mut http::Extensions> {
        Some(http::Response::extensions_mut(self))
    }
}

impl ResponseLike for http::response::Parts {
    fn status(&self) -> StatusCode {
        self.status
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn extensions(&self) -> Option<&http::Extensions> {
        Some(&self.extensions)
    }
    fn extensions_mut(&mut self) -> Option<&mut http::Extensions> {
        Some(&mut self.extensions)
    }
}

#[cfg(feature = "reqwest")]
impl RequestLike for reqwest::Request {
    fn method(&self) -> &Method {
        reqwest::Request::method(self)
    }
    fn headers(&self) -> &HeaderMap {
        reqwest::Request::headers(self)
    }
}

#[cfg(feature = "reqwest")]
impl ResponseLike for reqwest::Response {
    fn status(&self) -> StatusCode {
        reqwest::Response::status(self)
    }
    fn headers(&self) -> &HeaderMap {
        reqwest::Response::headers(self)
    }
    fn extensions(&self) -> Option<&http::Extensions> {
        Some(reqwest::Response::extensions(self))
    }
    fn extensions_mut(&mut self) -> Option<&mut http::Extensions> {
        Some(reqwest::Response::extensions_mut(self))
    }
}
