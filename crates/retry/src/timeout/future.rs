//! The response future of [`AttemptTimeout`](super::AttemptTimeout).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::Elapsed;
use crate::BoxError;

pin_project! {
    /// The future of [`AttemptTimeout`](super::AttemptTimeout): the inner response, and a timer
    /// created only when the inner future is not ready on its first poll.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
        timeout: Duration,
        // The timer has been considered (armed, or found unrepresentable): never re-armed.
        started: bool,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, timeout: Duration) -> Self {
        ResponseFuture {
            inner,
            sleep: None,
            timeout,
            started: false,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        if !*this.started {
            *this.started = true;
            // The clock starts now: the first poll that found the attempt unfinished. A
            // deadline past what `Instant` can hold never fires.
            if let Some(at) = Instant::now().checked_add(*this.timeout) {
                this.sleep.set(Some(tokio::time::sleep_until(at)));
                // The runtime has a time driver (the timer above needed one): keep registering
                // timers on it cheap.
                super::keeper::armed(*this.timeout);
            }
        }
        match this.sleep.as_pin_mut() {
            Some(sleep) => match sleep.poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(Elapsed::new().into())),
                Poll::Pending => Poll::Pending,
            },
            None => Poll::Pending,
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("timeout", &self.timeout)
            .field("armed", &self.sleep.is_some())
            .finish()
    }
}
