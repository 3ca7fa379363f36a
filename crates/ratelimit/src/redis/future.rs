//! The future of a Redis store decision.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use crate::gcra::Decision;
use crate::store::StoreError;

/// How an abandoned decision gives its cells back: a release sent to Redis, or to the local
/// fallback limiter that took them.
pub(crate) type GiveBack = Box<dyn FnOnce() + Send + 'static>;

type Remote = Pin<
    Box<dyn Future<Output = (Result<Decision, StoreError>, Option<GiveBack>)> + Send + 'static>,
>;

/// The future of a [`RedisStore`](super::RedisStore) decision
/// ([`Store::Future`](crate::Store::Future)).
///
/// Either ready at once (the failure policy decided without asking Redis, or the request can never
/// conform) or waiting for Redis, bounded by the store's decision timeout.
///
/// Dropped while waiting (a client layer's service dropped during `poll_ready`, a server's
/// request cancelled), it does not leave cells taken for a request that will not be made: the
/// wait goes on in a task spawned on the current tokio runtime, and if the decision took cells
/// they are given back where they were taken (a release sent to Redis, or to the local fallback
/// limiter). Outside a tokio runtime there is nowhere to finish it, and the cells the script may
/// have taken stay taken until they drain (a stricter limit for a moment).
///
/// The wait holds the Redis client's own command future, whose type cannot be named, in one box:
/// one allocation beside the several the client makes to encode and send a command, and far
/// below the cost of the round trip itself.
#[must_use = "futures do nothing unless polled"]
pub struct RedisStoreFuture {
    state: State,
}

enum State {
    Ready(Option<Result<Decision, StoreError>>),
    /// `None` once it completed.
    Remote(Option<Remote>),
}

impl RedisStoreFuture {
    pub(crate) fn ready(result: Result<Decision, StoreError>) -> Self {
        RedisStoreFuture {
            state: State::Ready(Some(result)),
        }
    }

    pub(crate) fn remote(
        fut: impl Future<Output = (Result<Decision, StoreError>, Option<GiveBack>)> + Send + 'static,
    ) -> Self {
        RedisStoreFuture {
            state: State::Remote(Some(Box::pin(fut))),
        }
    }
}

impl Future for RedisStoreFuture {
    type Output = Result<Decision, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            State::Ready(result) => Poll::Ready(
                result
                    .take()
                    .expect("RedisStoreFuture polled after completion"),
            ),
            State::Remote(slot) => {
                let fut = slot
                    .as_mut()
                    .expect("RedisStoreFuture polled after completion");
                // Completed: the caller owns the decision (and gives its cells back itself).
                let (result, _give_back) = ready!(fut.as_mut().poll(cx));
                *slot = None;
                Poll::Ready(result)
            }
        }
    }
}

impl Drop for RedisStoreFuture {
    fn drop(&mut self) {
        let State::Remote(slot) = &mut self.state else {
            return;
        };
        let Some(fut) = slot.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let (_, Some(give_back)) = fut.await {
                    give_back();
                }
            });
        }
    }
}

impl fmt::Debug for RedisStoreFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Ready(Some(_)) => "ready",
            State::Ready(None) => "done",
            State::Remote(Some(_)) => "waiting for Redis",
            State::Remote(None) => "done",
        };
        f.debug_struct("RedisStoreFuture")
            .field("state", &state)
            .finish()
    }
}
