//! The `Store` trait: where the GCRA state lives.
//!
//! Both layers talk to their state through this one async trait, so a state that lives elsewhere
//! (Redis, behind the `redis` feature) plugs in with identical semantics. The in-memory stores
//! ([`MemoryStore`](crate::MemoryStore) for one key, [`KeyedStore`](crate::KeyedStore) for many)
//! answer synchronously and return [`std::future::Ready`], so going through the trait costs
//! nothing.
//!
//! The quota is an argument of every call, not a property of the store: one store can serve
//! several quotas (per route, per plan), and the state of a key is its TAT alone.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use crate::gcra::{Decision, InsufficientCapacity, Quota};

/// A GCRA state store: one TAT per key, updated atomically.
///
/// # Contract
///
/// - [`reserve`](Store::reserve) is one atomic test-and-update, exact GCRA: for a key at TAT
///   `tat`, with `base = max(tat, now)`, the request conforms iff
///   `base + cost·T <= now + burst·T + max_wait`; if it does the TAT becomes `base + cost·T`,
///   otherwise nothing changes. The returned [`Decision`] follows its field docs.
/// - [`decide`](Store::decide) is `reserve` with `max_wait = 0`.
/// - `cost > burst` is [`StoreError::InsufficientCapacity`], never a refusal.
/// - [`release`](Store::release) and [`pause`](Store::pause) are fire-and-forget: they are called
///   from `Drop` and from response futures that must not wait on them. A store that needs I/O
///   for them spawns it (and may lose it if no runtime is there: the only effect is a stricter
///   limit for a moment, or a missed pause).
/// - A future returned by `reserve`/`decide` that is dropped before completing may or may not have
///   taken its cells. (The in-memory stores decide at once. The Redis store finishes an abandoned
///   decision in a spawned task and gives back the cells it took: see
///   `RedisStoreFuture`.)
///
/// Keys are borrowed: `K` may be unsized (`str`, `[u8]`). The direct (single-key) stores use
/// `K = ()`.
pub trait Store<K: ?Sized>: Send + Sync {
    /// The future of a decision. `'static` and `Unpin`, so layers can keep it across polls
    /// without borrowing the store or the key and without pinning it in place: a store that
    /// answers synchronously returns [`std::future::Ready`]; one that does I/O returns a
    /// `Pin<Box<dyn Future<Output = ...> + Send>>` or its own `Unpin` future.
    type Future: Future<Output = Result<Decision, StoreError>> + Send + Unpin + 'static;

    /// Takes `cost` cells for `key` now if they conform, else refuses and changes nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError::InsufficientCapacity`] if `cost` exceeds the quota's burst;
    /// [`StoreError::Backend`] / [`StoreError::Timeout`] when the store could not decide.
    fn decide(&self, key: &K, quota: &Quota, cost: NonZeroU32) -> Self::Future {
        self.reserve(key, quota, cost, Duration::ZERO)
    }

    /// Reserves `cost` cells for `key` at the earliest moment they conform, provided that is at
    /// most `max_wait` from now. Allowed: the cells are taken and `retry_after` is the wait before
    /// they may be used (zero if now). Refused: nothing changes and `retry_after` is the wait
    /// that would have been needed.
    ///
    /// Reservations are served in the order they are made (the TAT is a queue position).
    ///
    /// # Errors
    ///
    /// As [`decide`](Store::decide).
    fn reserve(&self, key: &K, quota: &Quota, cost: NonZeroU32, max_wait: Duration)
        -> Self::Future;

    /// Gives back `cost` cells taken by an earlier allowed decision that were never used
    /// (`TAT -= cost·T`). Fire-and-forget.
    fn release(&self, key: &K, quota: &Quota, cost: NonZeroU32);

    /// Admits nothing for `key` until `delay` from now, then one cell per emission interval (the
    /// burst refills gradually): `TAT = max(TAT, now + delay + τ)`. Used when a server says "wait".
    /// Fire-and-forget.
    fn pause(&self, key: &K, quota: &Quota, delay: Duration);
}

impl<K: ?Sized, S: Store<K> + ?Sized> Store<K> for Arc<S> {
    type Future = S::Future;

    #[inline]
    fn decide(&self, key: &K, quota: &Quota, cost: NonZeroU32) -> Self::Future {
        (**self).decide(key, quota, cost)
    }

    #[inline]
    fn reserve(
        &self,
        key: &K,
        quota: &Quota,
        cost: NonZeroU32,
        max_wait: Duration,
    ) -> Self::Future {
        (**self).reserve(key, quota, cost, max_wait)
    }

    #[inline]
    fn release(&self, key: &K, quota: &Quota, cost: NonZeroU32) {
        (**self).release(key, quota, cost)
    }

    #[inline]
    fn pause(&self, key: &K, quota: &Quota, delay: Duration) {
        (**self).pause(key, quota, delay)
    }
}

pub use resile_classify::BoxError;

/// Why a store could not decide.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The request asks for more cells than the burst: it can never conform.
    InsufficientCapacity(InsufficientCapacity),
    /// The store did not answer within its time limit.
    Timeout(Duration),
    /// The backend failed (connection refused, protocol error, script error...).
    Backend(BoxError),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(err: impl Into<BoxError>) -> StoreError {
        StoreError::Backend(err.into())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::InsufficientCapacity(e) => fmt::Display::fmt(e, f),
            StoreError::Timeout(d) => write!(f, "rate-limit store did not answer within {d:?}"),
            StoreError::Backend(_) => f.write_str("rate-limit store failed"),
        }
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            StoreError::InsufficientCapacity(e) => Some(e),
            StoreError::Timeout(_) => None,
            StoreError::Backend(e) => Some(&**e),
        }
    }
}

impl From<InsufficientCapacity> for StoreError {
    fn from(e: InsufficientCapacity) -> Self {
        StoreError::InsufficientCapacity(e)
    }
}
