//! `AdaptiveRateLimitLayer`: configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use resile_classify::{AllRequests, ByAuthority};

use super::policy::{per_second, Aimd};
use super::{Shared, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_HOSTS};
use crate::client::RateLimitLayer;
use crate::gcra::Quota;
use crate::pause::{PausePolicy, DEFAULT_MAX_WAIT};

/// Paces the requests to each host at a rate learned from its answers (a tower
/// [`Layer`](tower_layer::Layer)). See the [module documentation](super).
///
/// Every service it makes, and every clone of them, shares one table of hosts.
pub struct AdaptiveRateLimitLayer<E = ByAuthority> {
    shared: Arc<Shared<E>>,
}

impl<E> AdaptiveRateLimitLayer<E> {
    pub(crate) fn shared(&self) -> &Arc<Shared<E>> {
        &self.shared
    }
}

impl RateLimitLayer {
    /// A builder of an [`AdaptiveRateLimitLayer`] whose hosts start at `initial`'s rate (its
    /// burst is not used: see [`burst`](AdaptiveRateLimitLayerBuilder::burst)). The defaults
    /// are in the [`adaptive`](crate::adaptive) module's documentation.
    pub fn adaptive(initial: Quota) -> AdaptiveRateLimitLayerBuilder {
        AdaptiveRateLimitLayerBuilder {
            aimd: Aimd::new(&initial),
            max_wait: DEFAULT_MAX_WAIT,
            pause: PausePolicy::default(),
            follow_published: true,
            max_hosts: DEFAULT_MAX_HOSTS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl<E> Clone for AdaptiveRateLimitLayer<E> {
    fn clone(&self) -> Self {
        AdaptiveRateLimitLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for AdaptiveRateLimitLayer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

/// Builds an [`AdaptiveRateLimitLayer`]; made by [`RateLimitLayer::adaptive`].
#[derive(Debug, Clone)]
pub struct AdaptiveRateLimitLayerBuilder {
    pub(super) aimd: Aimd,
    pub(super) max_wait: Duration,
    pub(super) pause: PausePolicy,
    pub(super) follow_published: bool,
    pub(super) max_hosts: usize,
    pub(super) idle_timeout: Duration,
}

impl AdaptiveRateLimitLayerBuilder {
    /// The lowest rate a throttle can take a host to (default: the initial rate / 100, at
    /// most 1 request per second). A floor above the ceiling swaps them; the initial rate is
    /// moved into the range.
    pub fn floor(mut self, floor: Quota) -> Self {
        self.aimd.floor = per_second(&floor);
        self
    }

    /// The highest rate a host can reach (default: the initial rate × 100). A quota the host
    /// publishes (`limit / window`) lowers it for that host.
    pub fn ceiling(mut self, ceiling: Quota) -> Self {
        self.aimd.ceiling = per_second(&ceiling);
        self
    }

    /// The requests that may go at once to an idle host (default 1: smooth pacing).
    pub fn burst(mut self, burst: u32) -> Self {
        self.aimd.burst = burst;
        self
    }

    /// The factor a throttle multiplies the rate by (default 0.8; kept within 0.05..=0.99, a
    /// non-finite value is ignored).
    pub fn decrease(mut self, factor: f64) -> Self {
        self.aimd.decrease = factor;
        self
    }

    /// The share of the rate set at the last decrease that each window without a throttle
    /// adds (default 0.02; kept within 0..=1, a non-finite value is ignored).
    pub fn increase(mut self, share: f64) -> Self {
        self.aimd.increase = share;
        self
    }

    /// The window over which successes raise the rate (default 1 s, at least 1 ms).
    pub fn window(mut self, window: Duration) -> Self {
        self.aimd.window = window;
        self
    }

    /// The most requests queued per host (default 1,024); past it a request fails at once
    /// with [`QueueFull`](super::QueueFull). `0` never queues.
    pub fn max_queued(mut self, max_queued: usize) -> Self {
        self.aimd.max_queued = max_queued;
        self
    }

    /// The longest a request may wait for its slot, pauses included (default 30 s); a longer
    /// wait fails the request at once with [`WaitTooLong`](super::WaitTooLong).
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// How servers' pauses are obeyed (default: `429`/`503` hints up to 10 minutes).
    pub fn pause_policy(mut self, pause: PausePolicy) -> Self {
        self.pause = pause;
        self
    }

    /// Whether quotas published in response headers are followed (default `true`).
    pub fn follow_published(mut self, follow: bool) -> Self {
        self.follow_published = follow;
        self
    }

    /// The most hosts kept (default 4,096, at least 1).
    pub fn max_hosts(mut self, max_hosts: usize) -> Self {
        self.max_hosts = max_hosts;
        self
    }

    /// How long an idle host's learned state is kept (default 10 minutes).
    pub fn idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }

    /// The layer, one learned rate per host ([`ByAuthority`]).
    pub fn build(self) -> AdaptiveRateLimitLayer {
        self.build_with(ByAuthority)
    }

    /// The layer, one learned rate for every request.
    pub fn client_wide(self) -> AdaptiveRateLimitLayer<AllRequests> {
        self.build_with(AllRequests)
    }

    /// The layer, one learned rate per key of `keys` (any
    /// [`KeyExtractor`](resile_classify::KeyExtractor), e.g. a closure `Fn(&Req) -> Option<K>`
    /// with `K: Hash`).
    pub fn build_with<E>(self, keys: E) -> AdaptiveRateLimitLayer<E> {
        AdaptiveRateLimitLayer {
            shared: Arc::new(Shared::new(keys, self)),
        }
    }
}
