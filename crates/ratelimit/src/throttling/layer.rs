//! `AdaptiveThrottleLayer`: configuration and the shared counts.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use resile_classify::clock::{nanos, Clock, TokioClock};
use resile_classify::StatusSet;
use tower_layer::Layer;

use super::service::AdaptiveThrottle;
use super::Window;

/// The default `K`: 2 (the SRE book's).
pub const DEFAULT_K: f64 = 2.0;
/// The default window: 2 minutes.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(120);
const BUCKETS: usize = 24;

/// Refuses requests locally while the server rejects many of them (a tower [`Layer`]). See
/// the [module documentation](super).
///
/// Every service it makes, and every clone of them, shares one window of counts.
///
/// # Default
///
/// `K = 2`, a window of 2 minutes, `429` and `503` count as not accepted, on the
/// [`TokioClock`].
pub struct AdaptiveThrottleLayer<C = TokioClock> {
    shared: Arc<Shared<C>>,
}

impl<C> Clone for AdaptiveThrottleLayer<C> {
    fn clone(&self) -> Self {
        AdaptiveThrottleLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

pub(crate) struct Shared<C> {
    clock: C,
    bucket_nanos: u64,
    k: f64,
    window: Window,
    /// The refusal probability as a fraction of `2^32` (0: refuse nothing).
    reject: AtomicU32,
    pub(crate) rejected: StatusSet,
}

impl AdaptiveThrottleLayer {
    /// A layer with the defaults.
    pub fn new() -> AdaptiveThrottleLayer {
        AdaptiveThrottleLayer::builder().build()
    }

    /// A builder starting from the defaults.
    pub fn builder() -> AdaptiveThrottleLayerBuilder {
        AdaptiveThrottleLayerBuilder {
            clock: TokioClock::new(),
            k: DEFAULT_K,
            window: DEFAULT_WINDOW,
            rejected: StatusSet::from_statuses([
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::SERVICE_UNAVAILABLE,
            ]),
        }
    }
}

impl Default for AdaptiveThrottleLayer {
    fn default() -> Self {
        AdaptiveThrottleLayer::new()
    }
}

impl<C: Clock> AdaptiveThrottleLayer<C> {
    /// The probability with which a request is refused now.
    pub fn probability(&self) -> f64 {
        f64::from(self.shared.reject.load(Ordering::Relaxed)) / 4_294_967_296.0
    }

    /// Requests and accepts counted over the window.
    pub fn counts(&self) -> (u64, u64) {
        let s = &*self.shared;
        s.window.totals(s.epoch())
    }
}

impl<C: Clock> Shared<C> {
    fn epoch(&self) -> u64 {
        self.clock.now() / self.bucket_nanos
    }

    /// Whether a request may be sent; a refused one is counted (not accepted). `Err` carries
    /// the probability it was refused with.
    #[inline]
    pub(crate) fn admit(&self) -> Result<(), f64> {
        let p = self.reject.load(Ordering::Relaxed);
        if p == 0 || fastrand::u32(..) >= p {
            return Ok(());
        }
        self.record(false);
        Err(f64::from(p) / 4_294_967_296.0)
    }

    /// Counts an answered (or refused) request.
    pub(crate) fn record(&self, accepted: bool) {
        let epoch = self.epoch();
        if self.window.record(epoch, accepted) {
            self.update(epoch);
        }
    }

    #[cold]
    fn update(&self, epoch: u64) {
        let (requests, accepts) = self.window.totals(epoch);
        let p = ((requests as f64 - self.k * accepts as f64) / (requests as f64 + 1.0)).max(0.0);
        let p = (p * 4_294_967_296.0).min(f64::from(u32::MAX)) as u32;
        self.reject.store(p, Ordering::Relaxed);
    }
}

impl<S, C> Layer<S> for AdaptiveThrottleLayer<C> {
    type Service = AdaptiveThrottle<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveThrottle::new(inner, Arc::clone(&self.shared))
    }
}

impl<C: Clock> fmt::Debug for AdaptiveThrottleLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &*self.shared;
        f.debug_struct("AdaptiveThrottleLayer")
            .field("k", &s.k)
            .field(
                "window",
                &Duration::from_nanos(s.bucket_nanos * BUCKETS as u64),
            )
            .field("rejected", &s.rejected)
            .field("probability", &self.probability())
            .finish()
    }
}

/// Builds an [`AdaptiveThrottleLayer`]; see its `# Default`.
#[derive(Debug, Clone)]
pub struct AdaptiveThrottleLayerBuilder<C = TokioClock> {
    clock: C,
    k: f64,
    window: Duration,
    rejected: StatusSet,
}

impl<C> AdaptiveThrottleLayerBuilder<C> {
    /// `K`, the multiple of the accepted requests the client keeps sending (default 2; at least
    /// 1, a non-finite value is ignored).
    pub fn k(mut self, k: f64) -> Self {
        if k.is_finite() {
            self.k = k.max(1.0);
        }
        self
    }

    /// The window the counts are kept over (default 2 minutes; at least 24 ms: 24 buckets of
    /// at least 1 ms).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The statuses that count as not accepted (default `429` and `503`).
    pub fn rejected_statuses<I: IntoIterator<Item = StatusCode>>(mut self, statuses: I) -> Self {
        self.rejected = StatusSet::from_statuses(statuses);
        self
    }

    /// Reads time on `clock` (e.g. `QuantaClock` on a hot path that does not need tokio's
    /// paused clock).
    pub fn clock<C2: Clock>(self, clock: C2) -> AdaptiveThrottleLayerBuilder<C2> {
        AdaptiveThrottleLayerBuilder {
            clock,
            k: self.k,
            window: self.window,
            rejected: self.rejected,
        }
    }

    /// The layer.
    pub fn build(self) -> AdaptiveThrottleLayer<C> {
        let bucket_nanos = (nanos(self.window) / BUCKETS as u64).max(1_000_000);
        AdaptiveThrottleLayer {
            shared: Arc::new(Shared {
                clock: self.clock,
                bucket_nanos,
                k: self.k,
                window: Window::new(BUCKETS),
                reject: AtomicU32::new(0),
                rejected: self.rejected,
            }),
        }
    }
}
