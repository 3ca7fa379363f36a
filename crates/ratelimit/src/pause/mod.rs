//! Obeying servers that say "slow down": [`ServerPauseLayer`].
//!
//! A `429 Too Many Requests` or `503 Service Unavailable` whose headers carry a server hint
//! (`Retry-After` as seconds or an HTTP-date, `retry-after-ms`, the IETF `RateLimit` field,
//! `X-RateLimit-Reset`) pauses the requests that go to the same place until the server's time
//! is up. The layer has no quota of its own: nothing is held back until a server asks.
//!
//! # Per host by default
//!
//! [`ServerPauseLayer::per_host()`] keeps one pause per authority (`host:port`, through
//! [`ByAuthority`]): a `503` with `Retry-After: 3600` from one host never holds back requests to
//! another. [`ServerPauseLayer::client_wide()`] keeps one pause for every request, and
//! [`ServerPauseLayerBuilder::build`] takes any [`KeyExtractor`]. A request without a key (no
//! authority) is never paused and pauses nothing.
//!
//! Memory is bounded: only hosts with a pause in force are kept (an entry goes once its pause
//! ends), at most [`max_keys`](ServerPauseLayerBuilder::max_keys) of them (1,024 by default).
//! When the table is full, a new pause takes the place of the one that ends first. Keys are
//! kept as 64-bit hashes (SipHash with a key of the layer's own), so two hosts share a pause
//! only if their hashes collide.
//!
//! # Waiting
//!
//! While a request's host is paused, its response future sleeps until the pause ends, then polls
//! the inner service ready again and sends the request; every request waiting on one pause
//! wakes at its end. A request that would wait longer than the
//! [`max_wait`](ServerPauseLayerBuilder::max_wait) (30 s by default) fails at once with
//! [`WaitTooLong`], a local rejection (not retried, neutral for circuit breakers); a request
//! whose pause a server extends while it waits waits for the extension too, within the maximum
//! wait counted from its first wait. Pauses overlap by the longest: a shorter hint never
//! shortens a pause in force. Each hint is cut to the policy's maximum pause (10 minutes by
//! default, [`PausePolicy`]).
//!
//! The pause is kept on tokio's clock, so under tokio's paused test clock a pause of 2 s holds
//! requests for exactly 2 s.
//!
//! # Cost
//!
//! While no pause is in force anywhere, a request costs its key extraction (for an
//! `http::Request`, a clone of its URI's authority) and one atomic load; the table's lock is
//! taken only while some pause is in force, and by responses that carry a hint.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use resile_ratelimit::pause::ServerPauseLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower::BoxError> {
//! // Host `a` answers `429` with `Retry-After: 2` once; host `b` always answers.
//! let first = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
//! let client = ServiceBuilder::new()
//!     .layer(ServerPauseLayer::per_host())
//!     .service(service_fn(move |req: http::Request<()>| {
//!         let limited = req.uri().host() == Some("a")
//!             && first.swap(false, std::sync::atomic::Ordering::SeqCst);
//!         let res = if limited {
//!             http::Response::builder().status(429).header("retry-after", "2")
//!         } else {
//!             http::Response::builder().status(200)
//!         };
//!         std::future::ready(Ok::<_, Infallible>(res.body(()).unwrap()))
//!     }));
//! let get = |host: &str| http::Request::get(format!("http://{host}/")).body(()).unwrap();
//!
//! let start = tokio::time::Instant::now();
//! assert_eq!(client.clone().oneshot(get("a")).await?.status(), 429);
//! // Host `b` is not held back...
//! assert_eq!(client.clone().oneshot(get("b")).await?.status(), 200);
//! assert_eq!(start.elapsed(), Duration::ZERO);
//! // ...host `a` waits for the server's 2 s.
//! assert_eq!(client.clone().oneshot(get("a")).await?.status(), 200);
//! assert_eq!(start.elapsed(), Duration::from_secs(2));
//! # Ok(())
//! # }
//! ```

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use resile_classify::{AllRequests, ByAuthority};

#[cfg(doc)]
use resile_classify::KeyExtractor;
use tokio::time::Instant;
use tower_layer::Layer;

mod future;
mod policy;
mod service;

pub use crate::client::WaitTooLong;
pub use future::ResponseFuture;
pub(crate) use policy::hint_of;
pub use policy::PausePolicy;
pub use service::ServerPause;

/// The default maximum wait for a server's pause to end: 30 s.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);
/// The default number of keys with a pause in force kept at once: 1,024.
pub const DEFAULT_MAX_KEYS: usize = 1024;

/// Pauses the requests to a server that answered `429`/`503` with a hint, until its time is up
/// (a tower [`Layer`]). See the [module documentation](self).
///
/// Every service it makes, and every clone of them, shares one table of pauses.
///
/// # Default
///
/// Per host ([`ByAuthority`]); maximum wait 30 s; hints of `429` and `503` obeyed up to 10
/// minutes; at most 1,024 hosts paused at once.
pub struct ServerPauseLayer<E = ByAuthority> {
    shared: Arc<Shared<E>>,
}

/// What every service of one layer shares.
pub(crate) struct Shared<E> {
    pub(crate) extractor: E,
    pub(crate) policy: PausePolicy,
    pub(crate) max_wait: Duration,
    max_keys: usize,
    hasher: RandomState,
    /// The end of each pause in force, by the hash of its key.
    pauses: Mutex<HashMap<u64, Instant>>,
    /// The number of entries of `pauses`, read without the lock.
    paused: AtomicUsize,
}

impl ServerPauseLayer {
    /// A layer with one pause per host, and the defaults.
    pub fn per_host() -> ServerPauseLayer {
        ServerPauseLayer::builder().build(ByAuthority)
    }

    /// A layer with one pause for every request, and the defaults.
    pub fn client_wide() -> ServerPauseLayer<AllRequests> {
        ServerPauseLayer::builder().build(AllRequests)
    }

    /// A builder starting from the defaults.
    pub fn builder() -> ServerPauseLayerBuilder {
        ServerPauseLayerBuilder {
            policy: PausePolicy::default(),
            max_wait: DEFAULT_MAX_WAIT,
            max_keys: DEFAULT_MAX_KEYS,
        }
    }
}

impl Default for ServerPauseLayer {
    fn default() -> Self {
        ServerPauseLayer::per_host()
    }
}

impl<E> ServerPauseLayer<E> {
    /// The time left of the pause of `key` (zero if none is in force), on tokio's clock. `key`
    /// is of the extractor's key type (for [`ByAuthority`], a
    /// [`HostKey`](resile_classify::HostKey)).
    pub fn remaining<K: Hash>(&self, key: &K) -> Duration {
        self.shared.remaining(key, Instant::now())
    }

    /// The number of keys with a pause in force (or ended and not yet cleared).
    pub fn paused_keys(&self) -> usize {
        self.shared.paused.load(Ordering::Relaxed)
    }
}

impl<E> Clone for ServerPauseLayer<E> {
    fn clone(&self) -> Self {
        ServerPauseLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for ServerPauseLayer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

impl<E: fmt::Debug> fmt::Debug for Shared<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerPauseLayer")
            .field("keys", &self.extractor)
            .field("policy", &self.policy)
            .field("max_wait", &self.max_wait)
            .field("max_keys", &self.max_keys)
            .field("paused_keys", &self.paused.load(Ordering::Relaxed))
            .finish()
    }
}

impl<S, E> Layer<S> for ServerPauseLayer<E> {
    type Service = ServerPause<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerPause::new(inner, Arc::clone(&self.shared))
    }
}

/// Builds a [`ServerPauseLayer`]; see its `# Default`.
#[derive(Debug, Clone)]
pub struct ServerPauseLayerBuilder {
    policy: PausePolicy,
    max_wait: Duration,
    max_keys: usize,
}

impl ServerPauseLayerBuilder {
    /// The longest a request may wait for a pause to end; a request that would wait longer
    /// fails at once with [`WaitTooLong`]. `Duration::ZERO` never waits: every request to a
    /// paused host fails while the pause is in force.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Which responses pause, and for how long at most ([`PausePolicy::ignore`] makes a layer
    /// that does nothing).
    pub fn policy(mut self, policy: PausePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The most keys with a pause in force kept at once (at least 1).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(1);
        self
    }

    /// The layer, keeping one pause per key of `keys` (e.g. [`ByAuthority`], [`AllRequests`],
    /// or a closure `Fn(&Req) -> Option<K>` with `K: Hash`).
    pub fn build<E>(self, keys: E) -> ServerPauseLayer<E> {
        ServerPauseLayer {
            shared: Arc::new(Shared {
                extractor: keys,
                policy: self.policy,
                max_wait: self.max_wait,
                max_keys: self.max_keys,
                hasher: RandomState::new(),
                pauses: Mutex::new(HashMap::new()),
                paused: AtomicUsize::new(0),
            }),
        }
    }
}

/// What a request must do about its key's pause.
pub(crate) enum Check {
    /// No pause in force.
    Go,
    /// Wait until `until`.
    Wait(Instant),
}

impl<E> Shared<E> {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Instant>> {
        // The map is left consistent by every operation: a panic elsewhere cannot break it.
        self.pauses.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether any pause is in force (one atomic load).
    #[inline]
    pub(crate) fn any_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed) != 0
    }

    /// The pause of `key` at `now`; an ended one is cleared.
    pub(crate) fn check<K: Hash>(&self, key: &K, now: Instant) -> Check {
        let h = self.hasher.hash_one(key);
        let mut pauses = self.lock();
        match pauses.get(&h) {
            Some(&until) if until > now => Check::Wait(until),
            Some(_) => {
                pauses.remove(&h);
                self.paused.store(pauses.len(), Ordering::Relaxed);
                Check::Go
            }
            None => Check::Go,
        }
    }

    /// Pauses `key` for `delay` from `now` (a longer pause in force stays).
    pub(crate) fn pause<K: Hash>(&self, key: &K, delay: Duration, now: Instant) {
        let Some(until) = now.checked_add(delay).filter(|_| !delay.is_zero()) else {
            return;
        };
        let h = self.hasher.hash_one(key);
        let mut pauses = self.lock();
        if !pauses.contains_key(&h) && pauses.len() >= self.max_keys {
            pauses.retain(|_, end| *end > now);
            if pauses.len() >= self.max_keys {
                // Full of pauses in force: the one that ends first makes room.
                if let Some(first) = pauses.iter().min_by_key(|(_, end)| **end).map(|(k, _)| *k) {
                    pauses.remove(&first);
                }
            }
        }
        let end = pauses.entry(h).or_insert(until);
        *end = (*end).max(until);
        self.paused.store(pauses.len(), Ordering::Relaxed);
    }

    fn remaining<K: Hash>(&self, key: &K, now: Instant) -> Duration {
        let h = self.hasher.hash_one(key);
        self.lock()
            .get(&h)
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now))
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
