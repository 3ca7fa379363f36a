//! Unit and property tests (the loom models live in `loom_tests`).

mod client;
mod concurrency;
mod exactness;
mod gcra;
mod keyed;
mod server;

use std::num::NonZeroU32;

pub(crate) fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("nonzero in tests")
}

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::{Decision, Quota, Store, StoreError};

/// A store that answers one poll late (like a store doing I/O), delegating to `inner`.
pub(crate) struct SlowStore<St>(pub(crate) St);

/// Pending once, then the result.
pub(crate) struct Late(Option<Result<Decision, StoreError>>, bool);

impl Future for Late {
    type Output = Result<Decision, StoreError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.1 {
            self.1 = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match self.0.take() {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }
}

impl<K, St> Store<K> for SlowStore<St>
where
    St: Store<K>,
    St::Future: Future<Output = Result<Decision, StoreError>>,
{
    type Future = Late;

    fn reserve(&self, key: &K, quota: &Quota, cost: NonZeroU32, max_wait: Duration) -> Late {
        let mut fut = self.0.reserve(key, quota, cost, max_wait);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(&mut fut).poll(&mut cx) {
            Poll::Ready(r) => Late(Some(r), false),
            Poll::Pending => Late(
                Some(Err(StoreError::backend("inner store not synchronous"))),
                false,
            ),
        }
    }

    fn release(&self, key: &K, quota: &Quota, cost: NonZeroU32) {
        self.0.release(key, quota, cost);
    }

    fn pause(&self, key: &K, quota: &Quota, delay: Duration) {
        self.0.pause(key, quota, delay);
    }
}

/// A store that always fails.
#[derive(Debug, Default)]
pub(crate) struct FailingStore;

impl<K> Store<K> for FailingStore {
    type Future = std::future::Ready<Result<Decision, StoreError>>;

    fn reserve(&self, _: &K, _: &Quota, _: NonZeroU32, _: Duration) -> Self::Future {
        std::future::ready(Err(StoreError::Timeout(Duration::from_millis(50))))
    }

    fn release(&self, _: &K, _: &Quota, _: NonZeroU32) {}

    fn pause(&self, _: &K, _: &Quota, _: Duration) {}
}
