//! The response future.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Method, StatusCode};
use pin_project_lite::pin_project;
use resile_classify::{BoxError, ResponseLike};

use crate::handle::Telemetry;
use crate::outcome::{status_index, ErrorKind, Event, Recorded};
use crate::window::View;

pin_project! {
    /// The future of [`TelemetryService`](crate::TelemetryService): the inner future, and the
    /// record it completes (a future dropped before it completes is recorded as cancelled).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        pending: Pending,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, pending: Pending) -> Self {
        ResponseFuture { inner, pending }
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<R, E>>,
    R: ResponseLike,
    E: 'static,
{
    type Output = Result<R, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        match &out {
            Ok(res) => this.pending.response(res),
            Err(err) => this.pending.error(ErrorKind::of_any(err)),
        }
        Poll::Ready(out)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("recorded", &self.pending.telemetry.is_none())
            .finish_non_exhaustive()
    }
}

/// The record of one request in flight; recorded as cancelled if dropped unfinished.
pub(crate) struct Pending {
    /// `None` once recorded.
    telemetry: Option<Telemetry>,
    view: View,
    start: u64,
    /// Kept only for an exporter.
    method: Option<Method>,
}

impl Pending {
    #[inline]
    pub(crate) fn start(telemetry: &Telemetry, view: View, method: &Method) -> Self {
        Pending {
            start: telemetry.inner.clock.now(),
            method: telemetry.inner.exporters.any().then(|| method.clone()),
            telemetry: Some(telemetry.clone()),
            view,
        }
    }

    #[inline]
    fn response<R: ResponseLike>(&mut self, res: &R) {
        let Some(t) = self.telemetry.take() else {
            return;
        };
        let inner = &*t.inner;
        let now = inner.clock.now();
        let status = res.status();
        let latency = now.saturating_sub(self.start);
        if self.method.is_some() {
            inner.exporters.request(
                self.view,
                inner.ring.has_attempts(),
                self.method.as_ref(),
                Ok(status),
                latency,
            );
        }
        // The retry layer inside marks a response that took several attempts.
        let retries = resile_classify::attempts(res).saturating_sub(1);
        inner.record(
            self.view,
            now,
            Recorded::Status(status_index(status.as_u16())),
            Some(latency),
            retries,
        );
        if is_pause(status, res) && (self.view == View::Attempts || !inner.ring.has_attempts()) {
            // The response's own time: no second clock read.
            inner.record_event(now, Event::ServerPause);
        }
    }

    fn error(&mut self, kind: ErrorKind) {
        let Some(t) = self.telemetry.take() else {
            return;
        };
        let inner = &*t.inner;
        let now = inner.clock.now();
        if self.method.is_some() {
            inner.exporters.request(
                self.view,
                inner.ring.has_attempts(),
                self.method.as_ref(),
                Err(kind),
                now.saturating_sub(self.start),
            );
        }
        inner.record(self.view, now, Recorded::Error(kind), None, 0);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.telemetry.is_some() {
            self.error(ErrorKind::Cancelled);
        }
    }
}

/// A `429` or `503` carrying a `Retry-After`: what makes a client pause.
#[inline]
fn is_pause<R: ResponseLike>(status: StatusCode, res: &R) -> bool {
    (status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE)
        && res.headers().contains_key(http::header::RETRY_AFTER)
}

impl ErrorKind {
    /// Classifies an error of any type: through its source chain when it is a `BoxError` (or
    /// `Box<dyn Error + Send>`), `std::io::Error`, or hyper's, hyper-util's or reqwest's error
    /// (with their features); any other type is a [`Transport`](ErrorKind::Transport) error.
    pub fn of_any<E: 'static>(err: &E) -> ErrorKind {
        let any = err as &dyn Any;
        if let Some(e) = any.downcast_ref::<BoxError>() {
            return ErrorKind::of(&**e);
        }
        if let Some(e) = any.downcast_ref::<Box<dyn StdError + Send>>() {
            return ErrorKind::of(&**e);
        }
        if let Some(e) = any.downcast_ref::<std::io::Error>() {
            return ErrorKind::of(e);
        }
        #[cfg(feature = "hyper")]
        {
            if let Some(e) = any.downcast_ref::<hyper_util::client::legacy::Error>() {
                return ErrorKind::of(e);
            }
            if let Some(e) = any.downcast_ref::<hyper::Error>() {
                return ErrorKind::of(e);
            }
        }
        #[cfg(feature = "reqwest")]
        if let Some(e) = any.downcast_ref::<reqwest::Error>() {
            return ErrorKind::of(e);
        }
        ErrorKind::Transport
    }
}
