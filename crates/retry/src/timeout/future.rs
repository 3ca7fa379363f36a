//! The response future of [`AttemptTimeout`](super::AttemptTimeout).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::runtime::{Handle, Id};
use tokio::time::{Instant, Sleep};

use super::Elapsed;
use crate::BoxError;

pin_project! {
    /// The future of [`AttemptTimeout`](super::AttemptTimeout): the inner response, and a tokio
    /// timer armed only when the inner future is not ready on its first poll.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        timer: Timer,
    }
}

pin_project! {
    #[project = TimerProj]
    enum Timer {
        // Not armed: the inner future has not been found pending yet.
        Idle { timeout: Duration },
        // A tokio timer of the runtime `runtime`, due at `deadline`.
        Armed { #[pin] sleep: Sleep, deadline: Instant, runtime: Option<Id> },
        // A deadline past what `Instant` can hold: never fires.
        Never,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, timeout: Duration) -> Self {
        ResponseFuture {
            inner,
            timer: Timer::Idle { timeout },
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
        if Timer::poll(this.timer, cx).is_ready() {
            return Poll::Ready(Err(Elapsed::new().into()));
        }
        Poll::Pending
    }
}

/// The current runtime's id, `None` outside one (tokio then panics on a timer, as it would for
/// tower's `Timeout`).
fn current_runtime() -> Option<Id> {
    Handle::try_current().ok().map(|h| h.id())
}

impl Timer {
    /// Arms the timer if it is idle (the clock starts now: the first poll that found the attempt
    /// unfinished), and polls it: ready when the attempt is due.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let runtime = current_runtime();
        let deadline = match self.as_mut().project() {
            TimerProj::Idle { timeout } => Instant::now().checked_add(*timeout),
            // A future moved to another runtime (its first one may be gone, and a tokio timer
            // polled after its runtime shut down panics): re-armed there for the time left.
            TimerProj::Armed {
                deadline,
                runtime: armed,
                ..
            } if *armed != runtime => Some(*deadline),
            TimerProj::Armed { sleep, .. } => return sleep.poll(cx),
            TimerProj::Never => return Poll::Pending,
        };
        match deadline {
            Some(deadline) => {
                self.set(Timer::Armed {
                    sleep: tokio::time::sleep_until(deadline),
                    deadline,
                    runtime,
                });
                match self.project() {
                    TimerProj::Armed { sleep, .. } => sleep.poll(cx),
                    _ => Poll::Pending,
                }
            }
            None => {
                self.set(Timer::Never);
                Poll::Pending
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let timer = match &self.timer {
            Timer::Idle { .. } => "idle",
            Timer::Armed { .. } => "armed",
            Timer::Never => "never",
        };
        f.debug_struct("ResponseFuture")
            .field("timer", &timer)
            .finish()
    }
}
