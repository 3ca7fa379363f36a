//! Replaying requests: cloneable bodies, `reqwest` requests, and [`ReplayBody`] for streams.
//!
//! A retry sends the same request again, so the layer keeps a copy of every request before it
//! sends it. [`ReplayableRequest`] says how a copy is made:
//!
//! - `http::Request<B>` with a `Clone` body (`Full<Bytes>`, `Empty<Bytes>`, `String`, `Bytes`,
//!   `Vec<u8>`, `()`, ...) is copied with `Request::clone`;
//! - `reqwest::Request` (feature `reqwest`) uses [`reqwest::Request::try_clone`], which fails for
//!   streaming bodies: such a request is sent once and never retried;
//! - `http::Request<ReplayBody<B>>` wraps any streaming body (hyper's `Incoming` in a proxy, a
//!   file upload) in a buffer that records the bytes as the first attempt sends them, so a retry
//!   replays exactly the same bytes.
//!
//! # How [`ReplayBody`] works
//!
//! The design follows Linkerd's replay body. Every copy of the request shares one state: the
//! chunks read so far, the trailers, and the rest of the original body. The copy that is being
//! sent holds that state while it streams; it hands it back when it reaches the end of the body
//! or is dropped. A copy sent later replays the recorded chunks first, then carries on reading the
//! original body where the previous attempt stopped, recording as it goes.
//!
//! Retrying is refused (the layer returns the last response or error instead) when:
//!
//! - the body grew past the limit (64 KiB by default, Linkerd's choice): the recording is dropped
//!   at that point to bound memory, so no copy could replay the whole body — unless the body was
//!   never read at all, as when the connection was refused, in which case it is sent whole;
//! - the previous attempt still holds the body when the retry is decided, for instance because
//!   the server answered before it read the whole upload and the client is still sending it: the
//!   layer does not know how much of the body the next attempt would get, so it does not retry;
//! - reading the original body failed.
//!
//! A retry therefore never sends a truncated or empty body in place of the original one.
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, StreamBody};
//! use http_body::Frame;
//! use resile_retry::{ReplayBody, ReplayableRequest};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let chunks = vec![Ok::<_, std::io::Error>(Frame::data(Bytes::from("hello ")))
//!     , Ok(Frame::data(Bytes::from("world")))];
//! let stream = StreamBody::new(futures_util::stream::iter(chunks));
//! let req = http::Request::post("http://example.com/").body(ReplayBody::new(stream)).unwrap();
//!
//! let copy = req.try_copy().unwrap();
//! // The first attempt reads the body...
//! let sent = req.into_body().collect().await.unwrap().to_bytes();
//! // ...and a retry built from the copy replays the very same bytes.
//! let retry: http::Request<ReplayBody<_>> =
//!     ReplayableRequest::replay(&copy).expect("the whole body was recorded");
//! let replayed = retry.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(sent, replayed);
//! # }
//! ```

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use resile_classify::RequestLike;

use crate::error::ReplayError;
use crate::BoxError;

/// A request the retry layer can send again.
///
/// Before the first attempt the layer keeps a copy ([`try_copy`](Self::try_copy)); for each
/// retry it builds the request to send from that copy ([`replay`](Self::replay)). The copy is
/// made for every request and dropped unused by every request that succeeds the first time;
/// building from it happens only on a retry.
#[diagnostic::on_unimplemented(
    message = "the retry layer cannot replay `{Self}`",
    note = "wrap a streaming body (such as hyper's `Incoming`) in `resile_retry::ReplayBody`: \
            `req.map(ReplayBody::new)`"
)]
pub trait ReplayableRequest: RequestLike + Sized {
    /// The copy to build retries from; `None` if the request cannot be copied, in which case it
    /// is sent once and never retried.
    fn try_copy(&self) -> Option<Self>;

    /// The request of the next attempt, built from the copy made before the first attempt;
    /// `None` if it cannot be sent now (for [`ReplayBody`]: an earlier attempt's body went past
    /// the buffer limit, failed, or is still being sent). The retry is then refused.
    fn replay(copy: &Self) -> Option<Self>;

    /// The request headers, to set the attempt-number header.
    fn headers_mut(&mut self) -> &mut HeaderMap;
}

/// A request with a `Clone` body: copied with `Request::clone`.
impl<B: Clone> ReplayableRequest for http::Request<B> {
    #[inline]
    fn try_copy(&self) -> Option<Self> {
        Some(self.clone())
    }

    fn replay(copy: &Self) -> Option<Self> {
        Some(copy.clone())
    }

    #[inline]
    fn headers_mut(&mut self) -> &mut HeaderMap {
        http::Request::headers_mut(self)
    }
}

/// A request with a [`ReplayBody`]: the copy's body is a replaying handle on the recording.
impl<B> ReplayableRequest for http::Request<ReplayBody<B>> {
    fn try_copy(&self) -> Option<Self> {
        Some(with_body(self, self.body().replay()))
    }

    fn replay(copy: &Self) -> Option<Self> {
        if !copy.body().can_replay() {
            return None;
        }
        Some(with_body(copy, copy.body().replay()))
    }

    fn headers_mut(&mut self) -> &mut HeaderMap {
        http::Request::headers_mut(self)
    }
}

/// A request with `req`'s head (method, URI, version, headers, extensions) and `body`.
fn with_body<T, U>(req: &http::Request<T>, body: U) -> http::Request<U> {
    let mut copy = http::Request::new(body);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    *copy.extensions_mut() = req.extensions().clone();
    copy
}

/// A `reqwest::Request`: copied with [`reqwest::Request::try_clone`], which fails for streaming
/// bodies (such a request is sent once).
#[cfg(feature = "reqwest")]
impl ReplayableRequest for reqwest::Request {
    #[inline]
    fn try_copy(&self) -> Option<Self> {
        self.try_clone()
    }

    fn replay(copy: &Self) -> Option<Self> {
        copy.try_clone()
    }

    #[inline]
    fn headers_mut(&mut self) -> &mut HeaderMap {
        reqwest::Request::headers_mut(self)
    }
}

/// The default replay buffer limit: 64 KiB.
pub const DEFAULT_REPLAY_LIMIT: usize = 64 * 1024;

/// A body adapter that records a streaming body as it is sent so that a retry can replay it.
///
/// Wrap the body of a request whose body is not `Clone` (`req.map(ReplayBody::new)`); the retry
/// layer then keeps a copy of the request that shares the recording. See the
/// [module documentation](self) for when a replay is refused.
///
/// Data frames are yielded as [`Bytes`]; errors of the inner body are boxed, and a copy polled
/// when it cannot replay the whole body yields a [`ReplayError`] rather than a short body.
///
/// # Default
///
/// The limit is [`DEFAULT_REPLAY_LIMIT`] (64 KiB): a body of at most that many bytes can be
/// replayed.
pub struct ReplayBody<B> {
    shared: Arc<Shared<B>>,
    /// The state, while this copy is the one being sent.
    state: Option<BodyState<B>>,
    /// The next recorded chunk this copy yields.
    pos: usize,
    trailers_sent: bool,
    done: bool,
}

struct Shared<B> {
    /// The state, while no copy holds it.
    slot: Mutex<Option<BodyState<B>>>,
    capped: AtomicBool,
    limit: usize,
    size_hint: SizeHint,
    was_empty: bool,
}

struct BodyState<B> {
    chunks: Vec<Bytes>,
    len: usize,
    trailers: Option<HeaderMap>,
    /// The rest of the original body; `None` once it has ended (or failed).
    rest: Option<Pin<Box<B>>>,
    /// Some copy has started reading.
    started: bool,
    /// The recording was dropped at the limit.
    capped: bool,
    /// The original body failed.
    failed: bool,
}

impl<B> Shared<B> {
    fn slot(&self) -> MutexGuard<'_, Option<BodyState<B>>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<B: Body> ReplayBody<B> {
    /// Wraps `body` with the default 64 KiB limit.
    pub fn new(body: B) -> Self {
        Self::with_limit(body, DEFAULT_REPLAY_LIMIT)
    }

    /// Wraps `body`, recording at most `limit` bytes. A body whose size hint already says it is
    /// longer than `limit` is not recorded at all.
    pub fn with_limit(body: B, limit: usize) -> Self {
        let size_hint = body.size_hint();
        let was_empty = body.is_end_stream();
        let capped = usize::try_from(size_hint.lower()).map_or(true, |lower| lower > limit);
        let state = BodyState {
            chunks: Vec::new(),
            len: 0,
            trailers: None,
            rest: Some(Box::pin(body)),
            started: false,
            capped,
            failed: false,
        };
        ReplayBody {
            shared: Arc::new(Shared {
                slot: Mutex::new(Some(state)),
                capped: AtomicBool::new(capped),
                limit,
                size_hint,
                was_empty,
            }),
            state: None,
            pos: 0,
            trailers_sent: false,
            done: false,
        }
    }
}

impl<B> ReplayBody<B> {
    /// A copy that replays this body. Poll it only after this copy has been sent (or dropped):
    /// [`can_replay`](Self::can_replay) says when.
    pub fn replay(&self) -> Self {
        ReplayBody {
            shared: self.shared.clone(),
            state: None,
            pos: 0,
            trailers_sent: false,
            done: false,
        }
    }

    /// Whether this copy can be sent now with the whole body: no other copy is sending the body,
    /// and either no copy has read any of it yet, or everything read so far was recorded (the
    /// limit was not crossed) and the original body did not fail.
    pub fn can_replay(&self) -> bool {
        let state = match &self.state {
            Some(state) => return !state.started || (!state.capped && !state.failed),
            None => self.shared.slot(),
        };
        match &*state {
            Some(state) => !state.started || (!state.capped && !state.failed),
            None => false,
        }
    }

    /// Whether the body went past the limit (or was known to be longer from its size hint), so
    /// that it can no longer be replayed once it has been read.
    pub fn is_capped(&self) -> bool {
        self.shared.capped.load(Ordering::Acquire)
    }

    /// The replay buffer's limit in bytes.
    pub fn limit(&self) -> usize {
        self.shared.limit
    }

    fn release(&mut self) {
        if let Some(state) = self.state.take() {
            *self.shared.slot() = Some(state);
        }
    }
}

impl<B> Drop for ReplayBody<B> {
    fn drop(&mut self) {
        self.release();
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayBody")
            .field("limit", &self.shared.limit)
            .field("capped", &self.is_capped())
            .field("sending", &self.state.is_some())
            .field("done", &self.done)
            .finish()
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.state.is_none() {
            let Some(state) = this.shared.slot().take() else {
                this.done = true;
                return Poll::Ready(Some(Err(ReplayError::Busy.into())));
            };
            if state.started && (state.capped || state.failed) {
                let err = if state.failed {
                    ReplayError::Failed
                } else {
                    ReplayError::Capped
                };
                *this.shared.slot() = Some(state);
                this.done = true;
                return Poll::Ready(Some(Err(err.into())));
            }
            this.state = Some(state);
        }
        let limit = this.shared.limit;
        let Some(state) = this.state.as_mut() else {
            return Poll::Ready(None);
        };
        state.started = true;

        // First the recorded chunks.
        if let Some(chunk) = state.chunks.get(this.pos) {
            this.pos += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
        }

        // Then the rest of the original body, recorded as it goes.
        while let Some(rest) = state.rest.as_mut() {
            match rest.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(mut data) => {
                        let bytes = data.copy_to_bytes(data.remaining());
                        if !state.capped {
                            if state.len.saturating_add(bytes.len()) > limit {
                                state.capped = true;
                                this.shared.capped.store(true, Ordering::Release);
                                state.chunks = Vec::new();
                                state.len = 0;
                            } else {
                                state.len += bytes.len();
                                state.chunks.push(bytes.clone());
                            }
                        }
                        this.pos = state.chunks.len();
                        return Poll::Ready(Some(Ok(Frame::data(bytes))));
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            state.trailers = Some(trailers.clone());
                            this.trailers_sent = true;
                            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                        }
                        // A frame kind this version of http-body does not know: skip it.
                    }
                },
                Poll::Ready(Some(Err(err))) => {
                    state.rest = None;
                    state.failed = true;
                    this.done = true;
                    this.release();
                    return Poll::Ready(Some(Err(err.into())));
                }
                Poll::Ready(None) => state.rest = None,
            }
        }

        // Then the trailers, if the original had some and this copy has not sent them.
        if !this.trailers_sent {
            if let Some(trailers) = &state.trailers {
                this.trailers_sent = true;
                return Poll::Ready(Some(Ok(Frame::trailers(trailers.clone()))));
            }
        }
        this.done = true;
        this.release();
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        if self.done {
            return true;
        }
        match &self.state {
            None => self.shared.was_empty,
            Some(state) => {
                self.pos >= state.chunks.len()
                    && state.rest.as_ref().is_none_or(|rest| rest.is_end_stream())
                    && (self.trailers_sent || state.trailers.is_none())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        if self.done {
            return SizeHint::with_exact(0);
        }
        match &self.state {
            None => self.shared.size_hint,
            Some(state) => {
                let buffered: u64 = state.chunks[self.pos.min(state.chunks.len())..]
                    .iter()
                    .map(|c| c.len() as u64)
                    .sum();
                match &state.rest {
                    None => SizeHint::with_exact(buffered),
                    Some(rest) => {
                        let hint = rest.size_hint();
                        let mut out = SizeHint::new();
                        out.set_lower(hint.lower().saturating_add(buffered));
                        if let Some(upper) = hint.upper() {
                            out.set_upper(upper.saturating_add(buffered));
                        }
                        out
                    }
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};
    use std::convert::Infallible;

    type Chunks =
        futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>;

    fn stream(parts: &[&'static [u8]]) -> StreamBody<Chunks> {
        let frames: Vec<_> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    async fn collect<B>(body: B) -> Result<(Bytes, Option<HeaderMap>), BoxError>
    where
        B: Body<Data = Bytes, Error = BoxError>,
    {
        let collected = body.collect().await?;
        let trailers = collected.trailers().cloned();
        Ok((collected.to_bytes(), trailers))
    }

    #[tokio::test]
    async fn replays_the_same_bytes_twice() {
        let original = ReplayBody::new(stream(&[b"ab", b"cd", b"ef"]));
        let copy1 = original.replay();
        let copy2 = original.replay();
        assert!(copy1.can_replay());
        let (first, _) = collect(original).await.unwrap();
        assert_eq!(first, "abcdef");
        assert!(copy1.can_replay());
        assert_eq!(collect(copy1).await.unwrap().0, "abcdef");
        assert!(copy2.can_replay());
        assert_eq!(collect(copy2).await.unwrap().0, "abcdef");
    }

    #[tokio::test]
    async fn a_partly_read_body_is_finished_by_the_replay() {
        let mut original = ReplayBody::new(stream(&[b"ab", b"cd", b"ef"]));
        let copy = original.replay();
        let frame = original.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "ab");
        // Still held by the first attempt: not replayable yet.
        assert!(!copy.can_replay());
        drop(original);
        assert!(copy.can_replay());
        assert_eq!(collect(copy).await.unwrap().0, "abcdef");
    }

    #[tokio::test]
    async fn over_the_limit_is_not_replayable_but_sent_whole() {
        let original = ReplayBody::with_limit(stream(&[b"abcd", b"efgh", b"ij"]), 8);
        let copy = original.replay();
        let (first, _) = collect(original).await.unwrap();
        assert_eq!(first, "abcdefghij");
        assert!(!copy.can_replay());
        // Polled anyway, the copy refuses rather than sending a short body.
        let err = collect(copy).await.unwrap_err();
        assert_eq!(
            err.downcast_ref::<ReplayError>(),
            Some(&ReplayError::Capped)
        );
    }

    #[tokio::test]
    async fn exactly_the_limit_is_replayable() {
        let original = ReplayBody::with_limit(stream(&[b"abcd", b"efgh"]), 8);
        let copy = original.replay();
        collect(original).await.unwrap();
        assert!(copy.can_replay());
        assert_eq!(collect(copy).await.unwrap().0, "abcdefgh");
    }

    #[tokio::test]
    async fn known_size_over_the_limit_is_never_recorded_but_can_go_unread() {
        let original = ReplayBody::with_limit(Full::new(Bytes::from(vec![7u8; 100])), 10);
        assert!(original.is_capped());
        let copy = original.replay();
        // Never read (the connection was refused): the copy can still send it whole.
        drop(original);
        assert!(copy.can_replay());
        assert_eq!(collect(copy).await.unwrap().0.len(), 100);
    }

    #[tokio::test]
    async fn trailers_are_replayed() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", "42".parse().unwrap());
        let frames = vec![
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"data"))),
            Ok(Frame::trailers(trailers.clone())),
        ];
        let original = ReplayBody::new(StreamBody::new(futures_util::stream::iter(frames)));
        let copy = original.replay();
        let (a, ta) = collect(original).await.unwrap();
        let (b, tb) = collect(copy).await.unwrap();
        assert_eq!((a, ta.as_ref()), (b, tb.as_ref()));
        assert_eq!(ta, Some(trailers));
    }

    #[tokio::test]
    async fn a_failed_body_is_not_replayable() {
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(b"data"))),
            Err(std::io::Error::other("disk gone")),
        ];
        let original = ReplayBody::new(StreamBody::new(futures_util::stream::iter(frames)));
        let copy = original.replay();
        assert!(collect(original).await.is_err());
        assert!(!copy.can_replay());
        let err = collect(copy).await.unwrap_err();
        assert_eq!(
            err.downcast_ref::<ReplayError>(),
            Some(&ReplayError::Failed)
        );
    }

    #[tokio::test]
    async fn polling_two_copies_at_once_is_an_error_not_a_short_body() {
        let mut original = ReplayBody::new(stream(&[b"ab", b"cd"]));
        let copy = original.replay();
        original.frame().await.unwrap().unwrap();
        let err = collect(copy).await.unwrap_err();
        assert_eq!(err.downcast_ref::<ReplayError>(), Some(&ReplayError::Busy));
        // The original is unaffected.
        assert_eq!(
            original
                .frame()
                .await
                .unwrap()
                .unwrap()
                .into_data()
                .unwrap(),
            "cd"
        );
    }

    #[test]
    fn hints_and_end_of_stream() {
        let body = ReplayBody::new(Full::new(Bytes::from_static(b"12345")));
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
        let empty = ReplayBody::new(http_body_util::Empty::<Bytes>::new());
        assert!(empty.is_end_stream());
        assert!(empty.replay().is_end_stream());
        assert_eq!(empty.replay().size_hint().exact(), Some(0));
    }

    fn replay<B>(copy: &http::Request<ReplayBody<B>>) -> Option<http::Request<ReplayBody<B>>> {
        ReplayableRequest::replay(copy)
    }

    #[tokio::test]
    async fn request_copies_keep_method_uri_headers_and_extensions() {
        #[derive(Clone, Debug, PartialEq)]
        struct Tag(u8);
        let mut req = http::Request::put("http://example.com/x?y=1")
            .header("x-a", "1")
            .body(ReplayBody::new(stream(&[b"payload"])))
            .unwrap();
        req.extensions_mut().insert(Tag(3));
        let kept = req.try_copy().unwrap();
        // Still held by nobody: a retry could be built now.
        assert!(replay(&kept).is_some());
        let (_, mut body) = req.into_parts();
        body.frame().await.unwrap().unwrap();
        // The first attempt is still sending the body: no retry can be built.
        assert!(replay(&kept).is_none());
        collect(body).await.unwrap();
        let copy = replay(&kept).unwrap();
        assert_eq!(copy.method(), http::Method::PUT);
        assert_eq!(copy.uri(), "http://example.com/x?y=1");
        assert_eq!(copy.headers()["x-a"], "1");
        assert_eq!(copy.extensions().get::<Tag>(), Some(&Tag(3)));
        assert_eq!(collect(copy.into_body()).await.unwrap().0, "payload");
        // Every retry built from the copy replays the whole body.
        let again = replay(&kept).unwrap();
        assert_eq!(collect(again.into_body()).await.unwrap().0, "payload");
    }

    #[tokio::test]
    async fn no_retry_is_built_past_the_limit() {
        let req = http::Request::post("/")
            .body(ReplayBody::with_limit(
                stream(&[b"abcd", b"efgh", b"ij"]),
                8,
            ))
            .unwrap();
        let kept = req.try_copy().unwrap();
        collect(req.into_body()).await.unwrap();
        assert!(replay(&kept).is_none());
    }
}
