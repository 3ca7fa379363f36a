//! What the Redis store decides when Redis does not.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::gcra::{Decision, Quota};

/// What a [`RedisStore`](super::RedisStore) answers when Redis cannot decide: the connection is
/// down or reconnecting, the reply did not come within the decision timeout, or Redis returned an
/// error.
///
/// Every such decision is counted in [`RedisMetrics::fallbacks`](super::RedisMetrics::fallbacks)
/// (except under [`OnFailure::Error`], which makes no decision) and the first failure after a
/// success is logged at `WARN`.
///
/// # Default
///
/// [`OnFailure::FailOpen`]: a rate limiter should not take a service down with it. Choose
/// [`OnFailure::Fallback`] to keep limiting (per instance) during an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnFailure {
    /// Admit the request, as a fresh key would be admitted: `remaining = burst − cost`,
    /// `retry_after = 0`, `reset_after = cost × T`. Nothing is limited while Redis is away.
    #[default]
    FailOpen,
    /// Refuse the request, as an exhausted key would refuse it: `remaining = 0`,
    /// `retry_after = cost × T`, `reset_after = burst × T`. Nothing is admitted while Redis is
    /// away.
    FailClosed,
    /// Decide on a local in-memory limiter (a [`KeyedStore`](crate::KeyedStore) inside the
    /// store, keyed by the same Redis key) that enforces `share` of each quota. With the share
    /// set to `1/N` for `N` instances of the service, the instances together admit no more than
    /// the quota while each falls back on its own. See [`QuotaShare`] for the exact local quota.
    ///
    /// The local state lives as long as the store and is used only while Redis fails; decisions
    /// go back to Redis as soon as it answers, and the two states are never merged. Decisions
    /// made locally describe the local quota (`limit` is the local burst).
    Fallback {
        /// The part of each quota this instance enforces on its own.
        share: QuotaShare,
    },
    /// Make no decision: the call fails with [`StoreError::Timeout`](crate::StoreError::Timeout)
    /// or [`StoreError::Backend`](crate::StoreError::Backend), and the layer above handles it
    /// as it handles any store failure.
    Error,
}

/// A part `1/N` of a quota, for [`OnFailure::Fallback`].
///
/// For a quota of `rate` cells per `period` with burst `b`, the local quota is `rate` cells per
/// `N × period` (the emission interval `N × period / rate`, rounded up to whole nanoseconds) with
/// burst `max(1, ⌊b / N⌋)`. Over any window of length `t`, `N` instances on their local quotas
/// admit at most `N × max(1, ⌊b/N⌋) + rate × t`: no more than the quota itself whenever `b >= N`.
///
/// A request whose cost exceeds the local burst (while the quota's burst would take it) is
/// refused as under [`OnFailure::FailClosed`] until Redis answers again. A quota whose local
/// window would exceed [`MAX_WINDOW`](crate::MAX_WINDOW) is refused the same way.
///
/// # Example
///
/// ```
/// use std::num::NonZeroU32;
/// use resile_ratelimit::redis::{OnFailure, QuotaShare};
///
/// // Four instances behind a load balancer: each keeps a quarter of the quota.
/// let policy = OnFailure::Fallback { share: QuotaShare::one_of(NonZeroU32::new(4).unwrap()) };
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuotaShare {
    instances: NonZeroU32,
}

impl QuotaShare {
    /// The whole quota (`1/1`): right for a single instance.
    pub const WHOLE: QuotaShare = QuotaShare {
        instances: NonZeroU32::MIN,
    };

    /// One part in `instances`: the share of one of `instances` equal instances.
    pub const fn one_of(instances: NonZeroU32) -> QuotaShare {
        QuotaShare { instances }
    }

    /// `N`, the number of parts the quota is split into.
    pub const fn instances(&self) -> NonZeroU32 {
        self.instances
    }

    /// The local quota this share of `quota` gives (see the type's docs), or `None` when its
    /// window would exceed [`MAX_WINDOW`](crate::MAX_WINDOW).
    pub fn of(&self, quota: &Quota) -> Option<Quota> {
        let n = self.instances.get();
        if n == 1 {
            return Some(*quota);
        }
        // T' = ceil(N x period / rate): built as one cell per T' and then the burst, so that no
        // intermediate quota (burst = rate) can exceed the window limit where the final one does not.
        let interval =
            (quota.period().as_nanos() * u128::from(n)).div_ceil(u128::from(quota.rate().get()));
        let interval = Duration::from_nanos(u64::try_from(interval).ok()?);
        let burst = NonZeroU32::new(quota.burst().get() / n).unwrap_or(NonZeroU32::MIN);
        Quota::with_interval(interval).ok()?.with_burst(burst).ok()
    }
}

impl Default for QuotaShare {
    fn default() -> Self {
        QuotaShare::WHOLE
    }
}

/// The decision for a fresh key (full bucket): admitted, `cost_ns` taken.
pub(crate) fn open_decision(quota: &Quota, cost: NonZeroU32) -> Decision {
    let burst = quota.burst().get();
    Decision {
        allowed: true,
        limit: burst,
        remaining: burst.saturating_sub(cost.get()),
        retry_after: Duration::ZERO,
        reset_after: quota.emission_interval().saturating_mul(cost.get()),
    }
}

/// The decision for an exhausted key (TAT = now + burst × T): refused.
pub(crate) fn closed_decision(quota: &Quota, cost: NonZeroU32) -> Decision {
    Decision {
        allowed: false,
        limit: quota.burst().get(),
        remaining: 0,
        retry_after: quota.emission_interval().saturating_mul(cost.get()),
        reset_after: quota.window(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn share_splits_rate_and_burst() {
        let q = Quota::new(nz(10), Duration::from_secs(1)).unwrap();
        let local = QuotaShare::one_of(nz(3)).of(&q).unwrap();
        assert_eq!(local.burst().get(), 3);
        assert_eq!(local.emission_interval(), Duration::from_millis(300));
        // Three instances: 9 at once, then 10 per second together.
        assert!(local.burst().get() * 3 <= q.burst().get());

        let tiny = q.with_burst(nz(2)).unwrap();
        assert_eq!(
            QuotaShare::one_of(nz(4)).of(&tiny).unwrap().burst().get(),
            1
        );
        assert_eq!(QuotaShare::WHOLE.of(&q), Some(q));
    }

    #[test]
    fn share_of_a_huge_quota_is_none_not_a_panic() {
        let q = Quota::with_interval(crate::MAX_WINDOW).unwrap();
        assert_eq!(QuotaShare::one_of(nz(2)).of(&q), None);
        assert_eq!(QuotaShare::one_of(nz(u32::MAX)).of(&q), None);
    }

    #[test]
    fn open_and_closed_decisions_match_a_full_and_an_empty_bucket() {
        let q = Quota::per_second(nz(4));
        let d = open_decision(&q, nz(3));
        assert!(d.allowed);
        assert_eq!(
            (d.remaining, d.reset_after),
            (1, Duration::from_millis(750))
        );
        let d = closed_decision(&q, nz(3));
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_millis(750));
        assert_eq!(d.reset_after, Duration::from_secs(1));
    }
}
