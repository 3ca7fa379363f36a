//! Reading a failed response's body within bounds, and turning it into an `ApiError`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::HeaderName;
use http::response::Parts;
use http_body::Body;
use pin_project_lite::pin_project;
use resile_classify::BoxError;

use crate::error::ApiError;
use crate::parse::{cut, parse, Shape, Shapes};

/// The default body limit: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// The default time bound for reading a body: 5 s.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(5);
/// The request id headers read by default, first found wins.
pub const DEFAULT_REQUEST_ID_HEADERS: [&str; 5] = [
    "x-request-id",
    "x-amzn-requestid",
    "x-amz-request-id",
    "cf-ray",
    "traceparent",
];

/// How a failed response's body is read and parsed into an [`ApiError`]: a body limit
/// ([`DEFAULT_BODY_LIMIT`]), a time bound ([`DEFAULT_TIME_LIMIT`], applied under a tokio
/// runtime), the request id headers ([`DEFAULT_REQUEST_ID_HEADERS`]) and shapes of your own.
///
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiErrorReader {
    inner: Arc<ReaderInner>,
}

#[derive(Clone, Debug)]
struct ReaderInner {
    body_limit: usize,
    time_limit: Duration,
    request_id_headers: Vec<HeaderName>,
    shapes: Shapes,
}

impl Default for ApiErrorReader {
    fn default() -> Self {
        ApiErrorReader::new()
    }
}

impl ApiErrorReader {
    /// A reader with the defaults.
    pub fn new() -> Self {
        ApiErrorReader {
            inner: Arc::new(ReaderInner {
                body_limit: DEFAULT_BODY_LIMIT,
                time_limit: DEFAULT_TIME_LIMIT,
                request_id_headers: DEFAULT_REQUEST_ID_HEADERS
                    .iter()
                    .map(|h| HeaderName::from_static(h))
                    .collect(),
                shapes: Shapes::default(),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut ReaderInner)) -> Self {
        f(Arc::make_mut(&mut self.inner));
        self
    }

    /// Reads at most `bytes` of a body; what is past them is not read (`truncated`).
    pub fn body_limit(self, bytes: usize) -> Self {
        self.edit(|r| r.body_limit = bytes)
    }

    /// Stops reading a body after `d` and keeps what arrived (`truncated`, `timed_out`).
    pub fn time_limit(self, d: Duration) -> Self {
        self.edit(|r| r.time_limit = d)
    }

    /// The headers a request id is read from, first found wins (replaces the defaults).
    pub fn request_id_headers<I: IntoIterator<Item = HeaderName>>(self, headers: I) -> Self {
        let headers = headers.into_iter().collect();
        self.edit(|r| r.request_id_headers = headers)
    }

    /// Adds a shape of error body, tried (in the order added) before the built-in ones.
    pub fn shape<S: Shape>(self, shape: S) -> Self {
        let shape: Arc<dyn Shape> = Arc::new(shape);
        self.edit(|r| r.shapes.0.push(shape))
    }

    /// Reads `res`'s body within the bounds and returns what it says.
    pub fn read<B>(&self, res: http::Response<B>) -> ReadBody<B>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = res.into_parts();
        ReadBody::new(self.clone(), parts, body)
    }

    /// Reads a reqwest response's body within the bounds and returns what it says.
    #[cfg(feature = "reqwest")]
    pub async fn read_reqwest(&self, res: reqwest::Response) -> ApiError {
        // The same reader: reqwest's response as an `http::Response` keeps its status, headers
        // and extensions, and its body is an `http_body::Body`.
        self.read(http::Response::from(res)).await
    }

    fn finish(
        &self,
        status: http::StatusCode,
        headers: http::HeaderMap,
        attempts: u32,
        buf: Collected,
    ) -> ApiError {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let body = match buf.single {
            Some(b) if buf.bytes.is_empty() => b,
            _ => buf.bytes.freeze(),
        };
        let parsed = parse(content_type, &body, &self.inner.shapes);
        let request_id = self
            .inner
            .request_id_headers
            .iter()
            .find_map(|h| headers.get(h))
            .and_then(|v| v.to_str().ok())
            .map(|v| cut(v, 256))
            .filter(|v| !v.is_empty());
        let retry_after = resile_retry_after::server_hint(&headers).map(|h| h.delay);
        ApiError {
            status,
            messages: parsed.messages,
            code: parsed.code,
            problem: parsed.problem,
            request_id,
            retry_after,
            attempts,
            truncated: buf.over || buf.timed_out || buf.error.is_some(),
            timed_out: buf.timed_out,
            source: buf.error,
            body,
            headers,
        }
    }
}

/// The bytes of a body as they arrive, up to a limit.
struct Collected {
    /// A body of one chunk (the common case) is kept as it came, without a copy.
    single: Option<Bytes>,
    bytes: BytesMut,
    limit: usize,
    over: bool,
    timed_out: bool,
    error: Option<BoxError>,
}

impl Collected {
    fn new(limit: usize) -> Self {
        Collected {
            single: None,
            bytes: BytesMut::new(),
            limit,
            over: false,
            timed_out: false,
            error: None,
        }
    }

    fn len(&self) -> usize {
        self.single.as_ref().map_or(0, Bytes::len) + self.bytes.len()
    }

    /// Adds a chunk of a body's data; `true` once the limit is passed (stop reading).
    fn push_buf<D: Buf>(&mut self, mut data: D) -> bool {
        let room = self.limit - self.len();
        if self.len() == 0 && self.single.is_none() && data.remaining() <= room {
            // For `Bytes` data this takes the chunk as it is.
            self.single = Some(data.copy_to_bytes(data.remaining()));
            return false;
        }
        let mut full = false;
        while data.has_remaining() && !full {
            let chunk = data.chunk();
            let n = chunk.len();
            full = self.push(chunk);
            data.advance(n);
        }
        full
    }

    /// Adds a chunk; `true` once the limit is passed (stop reading).
    fn push(&mut self, chunk: &[u8]) -> bool {
        if let Some(first) = self.single.take() {
            self.bytes.extend_from_slice(&first);
        }
        let room = self.limit - self.bytes.len();
        if chunk.len() > room {
            self.bytes.extend_from_slice(&chunk[..room]);
            self.over = true;
            return true;
        }
        self.bytes.extend_from_slice(chunk);
        false
    }

    fn fail(&mut self, e: BoxError) {
        self.error = Some(e);
    }
}

impl fmt::Debug for Collected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collected")
            .field("len", &self.len())
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future of [`ApiErrorReader::read`]: the body read within its bounds, then parsed.
    pub struct ReadBody<B> {
        #[pin]
        body: B,
        reader: ApiErrorReader,
        parts: Option<Parts>,
        buf: Option<Collected>,
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<B> ReadBody<B> {
    pub(crate) fn new(reader: ApiErrorReader, parts: Parts, body: B) -> Self {
        // The time bound needs tokio's timer; outside a runtime the body is read unbounded in
        // time (still bounded in size).
        let deadline = tokio::runtime::Handle::try_current()
            .ok()
            .map(|_| Box::pin(tokio::time::sleep(reader.inner.time_limit)));
        let buf = Collected::new(reader.inner.body_limit);
        ReadBody {
            body,
            reader,
            parts: Some(parts),
            buf: Some(buf),
            deadline,
        }
    }
}

impl<B> Future for ReadBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = ApiError;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ApiError> {
        let mut this = self.project();
        let Some(buf) = this.buf.as_mut() else {
            panic!("ReadBody polled after it completed");
        };
        loop {
            match this.body.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers
                    };
                    if buf.push_buf(data) {
                        break;
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    buf.fail(e.into());
                    break;
                }
                Poll::Ready(None) => break,
                Poll::Pending => {
                    let expired = match this.deadline.as_mut() {
                        Some(d) => d.as_mut().poll(cx).is_ready(),
                        None => false,
                    };
                    if !expired {
                        return Poll::Pending;
                    }
                    buf.timed_out = true;
                    break;
                }
            }
        }
        let (Some(parts), Some(buf)) = (this.parts.take(), this.buf.take()) else {
            unreachable!("taken once, on completion");
        };
        let attempts = resile_classify::attempts(&parts);
        Poll::Ready(
            this.reader
                .finish(parts.status, parts.headers, attempts, buf),
        )
    }
}

impl<B> fmt::Debug for ReadBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadBody")
            .field("buf", &self.buf)
            .finish_non_exhaustive()
    }
}

impl ApiError {
    /// Reads `res` with the default [`ApiErrorReader`] (whatever its status).
    pub async fn from_response<B>(res: http::Response<B>) -> ApiError
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        ApiErrorReader::new().read(res).await
    }

    /// Reads a reqwest response with the default [`ApiErrorReader`] (whatever its status).
    #[cfg(feature = "reqwest")]
    pub async fn from_reqwest(res: reqwest::Response) -> ApiError {
        ApiErrorReader::new().read_reqwest(res).await
    }
}
