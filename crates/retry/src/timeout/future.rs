//! The response future of [`AttemptTimeout`](super::AttemptTimeout).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::board::Check;
use super::keeper::{self, Posted};
use super::Elapsed;
use crate::BoxError;

pin_project! {
    /// The future of [`AttemptTimeout`](super::AttemptTimeout): the inner response, and a timer
    /// started only when the inner future is not ready on its first poll.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        timer: Timer,
    }
}

/// An attempt's timer.
enum Timer {
    /// Not started: the inner future has not been found pending yet.
    Idle(Duration),
    /// Posted on the runtime's keeper board, which wakes the attempt when it is due.
    Posted(Posted),
    /// A tokio timer of its own (a timeout too short for a keeper, a full board, a keeper gone).
    Own(Pin<Box<Sleep>>),
    /// A deadline past what `Instant` can hold: never fires.
    Never,
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, timeout: Duration) -> Self {
        ResponseFuture {
            inner,
            timer: Timer::Idle(timeout),
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
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        if this.timer.poll(cx).is_ready() {
            return Poll::Ready(Err(Elapsed::new().into()));
        }
        Poll::Pending
    }
}

impl Timer {
    /// Starts the timer if it has not started (the clock starts now: the first poll that found
    /// the attempt unfinished), and polls it: ready when the attempt is due.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match self {
                Timer::Idle(timeout) => {
                    *self = Self::start(*timeout, cx);
                    if !matches!(self, Timer::Own(_)) {
                        // Posted with this waker (the keeper wakes it when due), or never due.
                        return Poll::Pending;
                    }
                }
                Timer::Posted(posted) => match posted.check(cx.waker()) {
                    Check::Armed => return Poll::Pending,
                    Check::Fired => return Poll::Ready(()),
                    // The keeper stopped (its runtime shut down): the rest of the time on a
                    // timer of the attempt's own.
                    Check::Lost => *self = Self::own(posted.deadline()),
                },
                Timer::Own(sleep) => return sleep.as_mut().poll(cx),
                Timer::Never => return Poll::Pending,
            }
        }
    }

    fn start(timeout: Duration, cx: &mut Context<'_>) -> Timer {
        if let Some(posted) = keeper::post(timeout, cx.waker()) {
            return Timer::Posted(posted);
        }
        Self::own(Instant::now().checked_add(timeout))
    }

    /// A tokio timer of the attempt's own, due at `deadline`; `None`, a deadline past what
    /// `Instant` can hold, never fires.
    fn own(deadline: Option<Instant>) -> Timer {
        match deadline {
            Some(at) => Timer::Own(Box::pin(tokio::time::sleep_until(at))),
            None => Timer::Never,
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let timer = match &self.timer {
            Timer::Idle(_) => "idle",
            Timer::Posted(_) => "posted",
            Timer::Own(_) => "own",
            Timer::Never => "never",
        };
        f.debug_struct("ResponseFuture")
            .field("timer", &timer)
            .finish()
    }
}
