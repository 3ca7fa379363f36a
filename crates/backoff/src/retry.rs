//! An async retry loop on tokio's timer (feature `tokio`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::Backoff;

/// Runs `op` until it succeeds, retrying failures after the delays `backoff` gives.
///
/// The returned [`RetryFuture`] future calls `op` when first polled (not before), and after each
/// failure:
///
/// 1. if the [`when`](RetryFuture::when) predicate says the error is not retryable, resolves to it;
/// 2. else asks `backoff` for the next delay; on `None` (the backoff gave up), resolves to the
///    error;
/// 3. else calls the [`notify`](RetryFuture::notify) hook with the error and the delay, sleeps for the
///    delay on tokio's timer, and calls `op` again.
///
/// By default every error is retryable and nothing is notified. The backoff is used as given:
/// it is not reset first.
///
/// # Panics
///
/// Polling the future outside a tokio runtime with the time driver enabled panics, as
/// [`tokio::time::sleep`] does.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use resile_backoff::{retry, Exponential};
///
/// #[derive(Debug)]
/// enum Error { Busy, Invalid }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let backoff = Exponential::builder()
///     .initial(Duration::from_millis(50))
///     .max_retries(5)
///     .build()
///     .unwrap();
///
/// let mut calls = 0;
/// let result = retry(backoff, || {
///     calls += 1;
///     let n = calls;
///     async move { if n < 3 { Err(Error::Busy) } else { Ok(n) } }
/// })
/// .when(|err| matches!(err, Error::Busy))
/// .notify(|err, delay| println!("{err:?}, retrying in {delay:?}"))
/// .await;
///
/// assert_eq!(result.unwrap(), 3);
/// # }
/// ```
pub fn retry<B, F, Fut, T, E>(
    backoff: B,
    op: F,
) -> RetryFuture<B, F, Fut, RetryAnyError<E>, NoNotify<E>>
where
    B: Backoff,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    RetryFuture {
        backoff,
        op,
        when: retry_any,
        notify: notify_none,
        state: State::Idle,
    }
}

/// The predicate of a [`RetryFuture`] without [`when`](RetryFuture::when): every error is retryable.
pub type RetryAnyError<E> = fn(&E) -> bool;

/// The hook of a [`RetryFuture`] without [`notify`](RetryFuture::notify): does nothing.
pub type NoNotify<E> = fn(&E, Duration);

fn retry_any<E>(_: &E) -> bool {
    true
}

fn notify_none<E>(_: &E, _: Duration) {}

pin_project! {
    #[project = StateProj]
    enum State<Fut> {
        // `op` has not been called for this attempt yet.
        Idle,
        // An attempt is running.
        Running { #[pin] fut: Fut },
        // Waiting before the next attempt.
        Sleeping { #[pin] sleep: Sleep },
    }
}

pin_project! {
    /// The future [`retry`] returns: resolves to the first success, or to the error that ended
    /// the retries (not retryable, or the backoff gave up).
    ///
    /// A named state machine: no allocation per attempt; the sleep lives inside it.
    #[must_use = "futures do nothing unless awaited"]
    pub struct RetryFuture<B, F, Fut, W, N> {
        backoff: B,
        op: F,
        when: W,
        notify: N,
        #[pin]
        state: State<Fut>,
    }
}

impl<B, F, Fut, T, E, W, N> RetryFuture<B, F, Fut, W, N>
where
    Fut: Future<Output = Result<T, E>>,
{
    /// Retries only the errors for which `when` returns `true`; any other error is returned at
    /// once. Replaces the default (retry every error).
    pub fn when<P>(self, when: P) -> RetryFuture<B, F, Fut, P, N>
    where
        P: FnMut(&E) -> bool,
    {
        RetryFuture {
            backoff: self.backoff,
            op: self.op,
            when,
            notify: self.notify,
            state: self.state,
        }
    }

    /// Calls `notify(&error, delay)` before each sleep, i.e. once per retry, with the error that
    /// is being retried and the delay about to be waited.
    pub fn notify<M>(self, notify: M) -> RetryFuture<B, F, Fut, W, M>
    where
        M: FnMut(&E, Duration),
    {
        RetryFuture {
            backoff: self.backoff,
            op: self.op,
            when: self.when,
            notify,
            state: self.state,
        }
    }
}

impl<B, F, Fut, T, E, W, N> Future for RetryFuture<B, F, Fut, W, N>
where
    B: Backoff,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    W: FnMut(&E) -> bool,
    N: FnMut(&E, Duration),
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Idle => {
                    let fut = (this.op)();
                    this.state.set(State::Running { fut });
                }
                StateProj::Running { fut } => {
                    let err = match ready!(fut.poll(cx)) {
                        Ok(value) => return Poll::Ready(Ok(value)),
                        Err(err) => err,
                    };
                    if !(this.when)(&err) {
                        return Poll::Ready(Err(err));
                    }
                    let Some(delay) = this.backoff.next_delay() else {
                        return Poll::Ready(Err(err));
                    };
                    (this.notify)(&err, delay);
                    // Drop the finished attempt before sleeping; tokio clamps a deadline past
                    // its horizon rather than overflowing.
                    this.state.set(State::Sleeping {
                        sleep: tokio::time::sleep(delay),
                    });
                }
                StateProj::Sleeping { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Idle);
                }
            }
        }
    }
}

impl<B, F, Fut, W, N> fmt::Debug for RetryFuture<B, F, Fut, W, N>
where
    B: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle => "idle",
            State::Running { .. } => "running",
            State::Sleeping { .. } => "sleeping",
        };
        f.debug_struct("RetryFuture")
            .field("backoff", &self.backoff)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
