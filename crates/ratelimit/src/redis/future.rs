//! The future of a Redis store decision.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::gcra::Decision;
use crate::store::StoreError;

type Remote = Pin<Box<dyn Future<Output = Result<Decision, StoreError>> + Send + 'static>>;

/// The future of a [`RedisStore`](super::RedisStore) decision
/// ([`Store::Future`](crate::Store::Future)).
///
/// Either ready at once (the failure policy decided without asking Redis, or the request can never
/// conform) or waiting for Redis, bounded by the store's decision timeout. Dropping it before it
/// completes abandons the wait; the script may still run on the server and take its cells (the
/// [`Store`](crate::Store) contract allows it).
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
    Remote(Remote),
}

impl RedisStoreFuture {
    pub(crate) fn ready(result: Result<Decision, StoreError>) -> Self {
        RedisStoreFuture {
            state: State::Ready(Some(result)),
        }
    }

    pub(crate) fn remote(
        fut: impl Future<Output = Result<Decision, StoreError>> + Send + 'static,
    ) -> Self {
        RedisStoreFuture {
            state: State::Remote(Box::pin(fut)),
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
            State::Remote(fut) => fut.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for RedisStoreFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Ready(Some(_)) => "ready",
            State::Ready(None) => "done",
            State::Remote(_) => "waiting for Redis",
        };
        f.debug_struct("RedisStoreFuture")
            .field("state", &state)
            .finish()
    }
}
