//! A client limiter that learns each server's limit: [`AdaptiveRateLimitLayer`].
//!
//! Built with [`RateLimitLayer::adaptive`](crate::RateLimitLayer::adaptive) from an initial
//! rate. It paces the requests to each host (authority, through [`ByAuthority`]) with a GCRA
//! whose rate it learns from the host's answers:
//!
//! - **Published quotas are followed.** A response that publishes its quota (the IETF
//!   `RateLimit` / `RateLimit-Policy` fields, the older `RateLimit-*` fields, or
//!   `X-RateLimit-Remaining` / `-Reset`, read by [`resile_retry_after::published_quota`]) sets
//!   how many requests are left until the reset: the limiter spends them **evenly** until the
//!   reset instead of bursting into a `429`, and waits for the reset when none are left. The
//!   requests queued or in flight when a reading arrives are taken off it (the server may not
//!   have counted them yet). A published `limit / window` caps the learned rate. Readings whose
//!   numbers contradict each other are ignored (the reader's documented rule).
//! - **Adapting when nothing is published (AIMD).** A `429`, or a `503` carrying a server hint,
//!   is a *throttle*: the rate is multiplied by the decrease (0.8), taken from the lower of the
//!   current rate and what the server actually accepted over about the last window; a throttle
//!   of a request sent before the last decrease does not decrease again (one decrease per
//!   event, as TCP does per round trip). Each window (1 s) in which the client used at least
//!   half its rate with no throttle raises the rate: doubling until the first throttle (slow
//!   start), then by a fixed step, 2 % of the rate set at the last decrease. The rate stays
//!   within the floor and ceiling. A `503` without a hint is a failure, the circuit breaker's
//!   business, not a throttle.
//! - **No herd after a pause.** The server's hint (`Retry-After`, ...) pauses the host, as a
//!   [`ServerPauseLayer`](crate::ServerPauseLayer) does, and the requests queued for it keep
//!   their order and move behind the pause, spaced at the decreased rate: the queue is released
//!   one slot at a time, not all at once.
//! - **A bounded queue.** A request whose slot is in the future waits in its response future,
//!   first come first served (slots are handed out in order). At most
//!   [`max_queued`](AdaptiveRateLimitLayerBuilder::max_queued) requests (1,024) wait per host;
//!   past it a request fails at once with [`QueueFull`], and one whose slot is further than the
//!   [`max_wait`](AdaptiveRateLimitLayerBuilder::max_wait) (30 s) with
//!   [`WaitTooLong`]: both are local rejections (never retried, neutral for breakers). A
//!   request dropped while queued frees its place, and gives its slot back when it was the
//!   last one.
//!
//! # Defaults and why
//!
//! | setting | default | why |
//! |---|---|---|
//! | floor | initial / 100, at most 1 req/s | a client this slow is not what overloads a server; the server's pauses hold it back further |
//! | ceiling | initial × 100 | two orders of magnitude above the guess; a published quota lowers it |
//! | burst | 1 | smooth pacing: bursts are what trips a limit nobody published |
//! | decrease | × 0.8 | a limit is a fixed line, not a congested link: a gentler cut than TCP's 0.5 keeps throughput near the limit |
//! | increase | + 2 % of the rate set at the last decrease, per window | back to the previous peak in about 12 windows, so throttles stay rare |
//! | window | 1 s | the common unit of published quotas |
//! | queue | 1,024 per host | bounded memory, room for bursts of a busy client |
//! | hosts | 4,096, idle ones forgotten after 10 min | bounded memory under any number of hosts |
//!
//! # Memory
//!
//! One entry (about 300 bytes) per host, in a hash table behind a `Mutex` (taken once per
//! request sent, once per response, and once more by a queued request when its slot comes).
//! A host idle (nothing queued or in flight) for the idle timeout starts afresh. At most
//! [`max_hosts`](AdaptiveRateLimitLayerBuilder::max_hosts) are kept: when the table is full, the
//! timed-out hosts go, then the least recently used idle ones; if every host is busy, a request
//! to a new host is sent unpaced (it is never refused for want of room). Keys are kept as 64-bit
//! hashes (SipHash with a key of the layer's own). A request without a key (no authority) is
//! sent unpaced.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::num::NonZeroU32;
//! use resile_ratelimit::{Quota, RateLimitLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower::BoxError> {
//! let limiter = RateLimitLayer::adaptive(Quota::per_second(NonZeroU32::new(10).unwrap()))
//!     .build();
//! let client = ServiceBuilder::new()
//!     .layer(limiter.clone())
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         Ok::<_, Infallible>(http::Response::new(()))
//!     }));
//! let req = http::Request::get("http://api.example/").body(()).unwrap();
//! client.oneshot(req).await?;
//! let host = resile_classify::HostKey::from(http::uri::Authority::from_static("api.example"));
//! assert_eq!(limiter.host(&host).unwrap().rate, 10.0);
//! # Ok(())
//! # }
//! ```

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hashbrown::HashTable;
use http::StatusCode;
#[cfg(doc)]
use resile_classify::ByAuthority;
use resile_classify::ResponseLike;
use tokio::time::Instant;
use tower_layer::Layer;

mod error;
mod future;
mod layer;
mod policy;
mod service;
mod state;

pub use crate::client::WaitTooLong;
pub use error::QueueFull;
pub use future::ResponseFuture;
pub use layer::{AdaptiveRateLimitLayer, AdaptiveRateLimitLayerBuilder};
pub use policy::{DEFAULT_DECREASE, DEFAULT_INCREASE, DEFAULT_MAX_QUEUED, DEFAULT_WINDOW};
pub use service::AdaptiveRateLimit;

use crate::pause::{hint_of, PausePolicy};
use policy::Aimd;
use state::{Feedback, Host, Refusal, Slot, Wake};

/// The default most hosts kept: 4,096.
pub const DEFAULT_MAX_HOSTS: usize = 4096;
/// The default time after which an idle host's learned state is forgotten: 10 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// What the limiter knows of one host, from
/// [`AdaptiveRateLimitLayer::host`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct HostState {
    /// The learned rate, requests per second.
    pub rate: f64,
    /// Requests waiting for their slot.
    pub queued: usize,
    /// Requests sent and not answered yet.
    pub in_flight: usize,
    /// Requests left of the host's published quota (an estimate), while a reading is current.
    pub remaining: Option<u64>,
}

/// What every service of one layer shares.
pub(crate) struct Shared<E> {
    pub(crate) extractor: E,
    pub(crate) aimd: Aimd,
    pub(crate) max_wait: Duration,
    pub(crate) pause: PausePolicy,
    pub(crate) follow_published: bool,
    pub(crate) max_hosts: usize,
    pub(crate) idle_timeout: Duration,
    hasher: RandomState,
    /// Each host under the hash of its key (already a SipHash: not hashed again).
    hosts: Mutex<HashTable<(u64, Host)>>,
}

impl<E> Shared<E> {
    pub(crate) fn new(extractor: E, b: AdaptiveRateLimitLayerBuilder) -> Self {
        Shared {
            extractor,
            aimd: b.aimd.normalized(),
            max_wait: b.max_wait,
            pause: b.pause,
            follow_published: b.follow_published,
            max_hosts: b.max_hosts.max(1),
            idle_timeout: b.idle_timeout,
            hasher: RandomState::new(),
            hosts: Mutex::new(HashTable::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashTable<(u64, Host)>> {
        // Every operation leaves the table consistent: a panic elsewhere cannot break it.
        self.hosts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn hash<K: Hash>(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Runs `f` on the host `h`, if it is kept.
    pub(crate) fn with_host<T>(&self, h: u64, f: impl FnOnce(&mut Host) -> T) -> Option<T> {
        self.lock().find_mut(h, |e| e.0 == h).map(|e| f(&mut e.1))
    }

    /// Reserves a slot for a new request to `h`; `None` when the table has no room for a new
    /// host (the request goes unpaced).
    pub(crate) fn reserve(&self, h: u64, now: Instant) -> Option<Result<Slot, Refusal>> {
        let mut hosts = self.lock();
        if let Some((_, host)) = hosts.find_mut(h, |e| e.0 == h) {
            if host.is_idle(now)
                && now.saturating_duration_since(host.last_used) >= self.idle_timeout
            {
                *host = Host::new(&self.aimd, now);
            }
            return Some(host.reserve(&self.aimd, now, self.max_wait));
        }
        if hosts.len() >= self.max_hosts && !self.make_room(&mut hosts, now) {
            return None;
        }
        let mut host = Host::new(&self.aimd, now);
        let decided = host.reserve(&self.aimd, now, self.max_wait);
        hosts.insert_unique(h, (h, host), |e| e.0);
        Some(decided)
    }

    /// Drops the timed-out hosts, else the least recently used eighth of the idle ones.
    #[cold]
    fn make_room(&self, hosts: &mut HashTable<(u64, Host)>, now: Instant) -> bool {
        let timeout = self.idle_timeout;
        hosts.retain(|(_, host)| {
            !(host.is_idle(now) && now.saturating_duration_since(host.last_used) >= timeout)
        });
        if hosts.len() < self.max_hosts {
            return true;
        }
        let mut idle: Vec<(Instant, u64)> = hosts
            .iter()
            .filter(|(_, host)| host.is_idle(now))
            .map(|(k, host)| (host.last_used, *k))
            .collect();
        if idle.is_empty() {
            return false;
        }
        let evict = (self.max_hosts / 8).clamp(1, idle.len());
        idle.select_nth_unstable(evict - 1);
        for &(_, k) in &idle[..evict] {
            if let Ok(e) = hosts.find_entry(k, |e| e.0 == k) {
                e.remove();
            }
        }
        true
    }

    /// A queued request woke: it goes now, sleeps again, or waited too long.
    pub(crate) fn wake(&self, h: u64, slot: Slot, now: Instant, started: Instant) -> Wake {
        let (aimd, max_wait) = (&self.aimd, self.max_wait);
        self.with_host(h, |host| host.wake(aimd, slot, now, started, max_wait))
            .unwrap_or(Wake::Go)
    }

    /// What a response tells the host.
    pub(crate) fn feedback<R: ResponseLike + ?Sized>(&self, res: &R, sent_at: Instant) -> Feedback {
        let hint = hint_of(res);
        let throttled = res.status() == StatusCode::TOO_MANY_REQUESTS || hint.is_some();
        let published = if self.follow_published {
            resile_retry_after::published_quota(res.headers())
        } else {
            None
        };
        Feedback {
            throttled,
            pause: hint.and_then(|h| self.pause.cap(h)),
            published,
            sent_at,
        }
    }

    /// A response to a request sent at `sent_at` came back.
    pub(crate) fn answered<R: ResponseLike + ?Sized>(&self, h: u64, res: &R, sent_at: Instant) {
        let fb = self.feedback(res, sent_at);
        if !fb.throttled && fb.published.is_none() {
            // The common answer needs no clock: it is counted in the window open now.
            self.with_host(h, Host::accepted);
            return;
        }
        let (aimd, now) = (&self.aimd, Instant::now());
        self.with_host(h, |host| host.on_response(aimd, now, fb));
    }

    fn host_state(&self, h: u64, now: Instant) -> Option<HostState> {
        self.with_host(h, |host| HostState {
            rate: host.rate(),
            queued: host.queued,
            in_flight: host.in_flight,
            remaining: host.remaining(now),
        })
    }

    fn hosts(&self) -> usize {
        self.lock().len()
    }
}

impl<E: fmt::Debug> fmt::Debug for Shared<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveRateLimitLayer")
            .field("keys", &self.extractor)
            .field("initial", &self.aimd.initial)
            .field("floor", &self.aimd.floor)
            .field("ceiling", &self.aimd.ceiling)
            .field("burst", &self.aimd.burst)
            .field("decrease", &self.aimd.decrease)
            .field("increase", &self.aimd.increase)
            .field("window", &self.aimd.window)
            .field("max_queued", &self.aimd.max_queued)
            .field("max_wait", &self.max_wait)
            .field("pause", &self.pause)
            .field("follow_published", &self.follow_published)
            .field("max_hosts", &self.max_hosts)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

impl<E> AdaptiveRateLimitLayer<E> {
    /// What the limiter knows of the host `key` (of the extractor's key type: for
    /// [`ByAuthority`], a [`HostKey`](resile_classify::HostKey)), if it is kept.
    pub fn host<K: Hash>(&self, key: &K) -> Option<HostState> {
        let shared = self.shared();
        shared.host_state(shared.hash(key), Instant::now())
    }

    /// The number of hosts kept.
    pub fn hosts(&self) -> usize {
        self.shared().hosts()
    }
}

impl<S, E> Layer<S> for AdaptiveRateLimitLayer<E> {
    type Service = AdaptiveRateLimit<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveRateLimit::new(inner, Arc::clone(self.shared()))
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
