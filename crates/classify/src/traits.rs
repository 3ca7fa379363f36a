//! The small views of requests and responses the classifier needs.

use http::{HeaderMap, Method, StatusCode};

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
}

impl ResponseLike for http::response::Parts {
    fn status(&self) -> StatusCode {
        self.status
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
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
}
