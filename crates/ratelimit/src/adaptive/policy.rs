//! The adaptive limiter's settings.

use std::time::Duration;

use crate::gcra::Quota;

/// How the adaptive limiter learns a host's rate (AIMD); set through
/// [`AdaptiveRateLimitLayerBuilder`](super::AdaptiveRateLimitLayerBuilder).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Aimd {
    /// Requests per second a new host starts at.
    pub(crate) initial: f64,
    pub(crate) floor: f64,
    pub(crate) ceiling: f64,
    /// Requests that may go at once (GCRA burst, in requests).
    pub(crate) burst: u32,
    /// The rate is multiplied by this on a throttle.
    pub(crate) decrease: f64,
    /// Each window without a throttle adds this share of the rate set at the last decrease.
    pub(crate) increase: f64,
    pub(crate) window: Duration,
    pub(crate) max_queued: usize,
}

/// The default multiplicative decrease: 0.8.
pub const DEFAULT_DECREASE: f64 = 0.8;
/// The default additive increase per window: 2 % of the rate set at the last decrease.
pub const DEFAULT_INCREASE: f64 = 0.02;
/// The default window over which successes raise the rate: 1 s.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(1);
/// The default most requests queued per host: 1,024.
pub const DEFAULT_MAX_QUEUED: usize = 1024;

/// A quota as requests per second.
pub(crate) fn per_second(q: &Quota) -> f64 {
    1e9 / q.emission_interval_nanos().max(1) as f64
}

impl Aimd {
    pub(crate) fn new(initial: &Quota) -> Aimd {
        let initial = per_second(initial);
        Aimd {
            initial,
            floor: (initial / 100.0).min(1.0),
            ceiling: initial * 100.0,
            burst: 1,
            decrease: DEFAULT_DECREASE,
            increase: DEFAULT_INCREASE,
            window: DEFAULT_WINDOW,
            max_queued: DEFAULT_MAX_QUEUED,
        }
    }

    /// Puts the settings in order: `floor <= initial <= ceiling` (the initial rate is moved
    /// into the range), a decrease in `[0.05, 0.99]`, an increase in `[0, 1]`, a window of at
    /// least 1 ms.
    pub(crate) fn normalized(mut self) -> Aimd {
        if self.floor > self.ceiling {
            std::mem::swap(&mut self.floor, &mut self.ceiling);
        }
        self.initial = self.initial.clamp(self.floor, self.ceiling);
        self.decrease = if self.decrease.is_finite() {
            self.decrease.clamp(0.05, 0.99)
        } else {
            DEFAULT_DECREASE
        };
        self.increase = if self.increase.is_finite() {
            self.increase.clamp(0.0, 1.0)
        } else {
            DEFAULT_INCREASE
        };
        self.window = self.window.max(Duration::from_millis(1));
        self.burst = self.burst.max(1);
        self
    }
}
