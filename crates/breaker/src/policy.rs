//! Trip policies, outcome classification and the breaker's configuration.
//!
//! # Choosing a trip policy
//!
//! - [`TripPolicy::ConsecutiveFailures`] (the default, 5 like Envoy and Finagle): trips after
//!   that many failures in a row. The cheapest: a success costs one atomic load. Best when a
//!   server either works or does not.
//! - [`TripPolicy::FailureRate`] over a [`SlidingWindow::Count`] (the last N calls) or a
//!   [`SlidingWindow::Time`] (the last T seconds in B buckets): trips when the failure ratio
//!   reaches a threshold with at least `min_calls` calls in the window. Catches a server that
//!   fails one call in two, which never makes 5 in a row. Every recorded call updates the window
//!   (one shared atomic add for the count window; a clock read and two for the time window).
//!
//! # Half-open
//!
//! When the open period ends, the next call turns the breaker half-open and becomes a probe; up
//! to [`half_open_probes`](CircuitBreakerBuilder::half_open_probes) probes (default 1) are in
//! flight at once, others are rejected. [`close_after`](CircuitBreakerBuilder::close_after)
//! probe successes (default 1) close the breaker; one probe failure reopens it, for the next
//! (longer) open period. A neutral probe outcome (a 429, say) frees its slot without counting,
//! and so does a probe whose future is dropped: the breaker cannot get stuck half-open.
//!
//! # Open periods
//!
//! Each opening lasts the next delay of a backoff (by default decorrelated jitter from 5 s
//! towards 60 s: every period is at least 5 s and at most 60 s, and on average grows with each
//! reopening), restarted when the breaker closes. If the response that opened the breaker
//! carried a server hint (`Retry-After`, `RateLimit`, ...; see
//! [`resile_retry_after::server_hint`]), the open period is at least that long, capped at
//! [`max_server_hint`](CircuitBreakerBuilder::max_server_hint) (default 5 minutes) so a hostile
//! or broken server cannot keep the breaker open for a day.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use resile_backoff::{Backoff, Constant, Exponential, Jitter};
use resile_classify::{BreakerVerdict, Classifier, Outcome, ResponseLike};

use crate::clock::{Clock, TokioClock};
use crate::error::BreakerConfigError;
use crate::handle::Transition;
use crate::shared::Listener;
use crate::state::Window;
use crate::state::{Policy, Trip, Verdict, MAX_PROBES};
use crate::window::{CountWindow, TimeWindow, MAX_BUCKETS, MAX_COUNT_WINDOW};

/// What opens the breaker.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum TripPolicy {
    /// Open after this many failures in a row. Successes end the streak; neutral outcomes
    /// neither end nor extend it.
    ConsecutiveFailures(u32),
    /// Open when `failures / calls >= threshold` in the window, once it holds at least
    /// `min_calls` calls. Checked after every recorded call.
    FailureRate {
        /// The failure ratio that opens the breaker, in `(0, 1]`.
        threshold: f64,
        /// The window the ratio is computed over.
        window: SlidingWindow,
        /// No decision before the window holds this many calls (0 is taken as 1).
        min_calls: u32,
    },
}

impl Default for TripPolicy {
    fn default() -> Self {
        TripPolicy::ConsecutiveFailures(5)
    }
}

/// The window of a [`TripPolicy::FailureRate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlidingWindow {
    /// The last N recorded calls (1 ..= 2^20).
    Count(u32),
    /// The calls of the last `length`, in `buckets` buckets (1 ..= 128) of `length / buckets`
    /// each (at least 1 ms). The window slides one bucket at a time: it covers between
    /// `length - length / buckets` and `length`. One bucket counts at most 2^24 - 1 calls;
    /// further calls in the same bucket are not recorded.
    Time {
        /// The window's length.
        length: Duration,
        /// How many buckets it slides by.
        buckets: u32,
    },
}

/// How the breaker counts the outcome of a call.
///
/// Implemented by [`resile_classify::Classifier`] for any [`ResponseLike`] response (the
/// defaults: 5xx and transport errors are failures, 408 and 429 are neutral, other statuses
/// are successes, resile's own rejections are neutral), and by [`FnClassifier`] for anything.
pub trait ClassifyOutcome<Res>: Send + Sync + 'static {
    /// The verdict on a response.
    fn classify_response(&self, res: &Res) -> BreakerVerdict;
    /// The verdict on an error of the inner service.
    fn classify_error(&self, err: &(dyn StdError + 'static)) -> BreakerVerdict;
    /// How long the server asked us to stay away, read only when this response opens the
    /// breaker.
    fn server_hint(&self, res: &Res) -> Option<Duration> {
        let _ = res;
        None
    }
}

impl<Res: ResponseLike> ClassifyOutcome<Res> for Classifier {
    #[inline]
    fn classify_response(&self, res: &Res) -> BreakerVerdict {
        self.breaker_verdict(Outcome::response(res))
    }

    fn classify_error(&self, err: &(dyn StdError + 'static)) -> BreakerVerdict {
        self.breaker_verdict(Outcome::error(err))
    }

    fn server_hint(&self, res: &Res) -> Option<Duration> {
        Classifier::server_hint(self, Outcome::response(res)).map(|h| h.delay)
    }
}

/// A classifier from a closure over the call's result, for responses that are not HTTP.
///
/// ```
/// use resile_breaker::{classify_fn, BreakerVerdict, CircuitBreakerLayer};
///
/// let layer = CircuitBreakerLayer::builder()
///     .classifier(classify_fn(|result: Result<&u32, _>| match result {
///         Ok(code) if *code >= 500 => BreakerVerdict::Failure,
///         Ok(_) => BreakerVerdict::Success,
///         Err(_) => BreakerVerdict::Failure,
///     }))
///     .build()
///     .unwrap();
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct FnClassifier<F>(F);

impl<F> fmt::Debug for FnClassifier<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnClassifier")
    }
}

/// Wraps a closure `Fn(Result<&Res, &(dyn Error + 'static)>) -> BreakerVerdict` as a
/// [`ClassifyOutcome`].
pub fn classify_fn<F, Res>(f: F) -> FnClassifier<F>
where
    F: Fn(Result<&Res, &(dyn StdError + 'static)>) -> BreakerVerdict
        + Clone
        + Send
        + Sync
        + 'static,
{
    FnClassifier(f)
}

impl<F, Res> ClassifyOutcome<Res> for FnClassifier<F>
where
    F: Fn(Result<&Res, &(dyn StdError + 'static)>) -> BreakerVerdict
        + Clone
        + Send
        + Sync
        + 'static,
{
    fn classify_response(&self, res: &Res) -> BreakerVerdict {
        (self.0)(Ok(res))
    }

    fn classify_error(&self, err: &(dyn StdError + 'static)) -> BreakerVerdict {
        (self.0)(Err(err))
    }
}

#[inline]
pub(crate) fn verdict(v: BreakerVerdict) -> Verdict {
    match v {
        BreakerVerdict::Success => Verdict::Success,
        BreakerVerdict::Failure => Verdict::Failure,
        BreakerVerdict::Neutral => Verdict::Neutral,
    }
}

type BackoffMaker = Arc<dyn Fn() -> Box<dyn Backoff + Send> + Send + Sync>;

/// The default open-period backoff: decorrelated jitter, at least 5 s, at most 60 s.
pub(crate) fn default_backoff() -> Box<dyn Backoff + Send> {
    match Exponential::builder()
        .initial(Duration::from_secs(5))
        .max_delay(Duration::from_secs(60))
        .jitter(Jitter::Decorrelated)
        .no_max_retries()
        .build()
    {
        Ok(b) => Box::new(b),
        // The configuration above is valid; keep a sane fallback rather than a panic path.
        Err(_) => Box::new(Constant::new(Duration::from_secs(5)).no_max_retries()),
    }
}

/// Configures a breaker; [`build`](Self::build) checks the configuration.
///
/// # Default
///
/// | setting | default |
/// |---|---|
/// | [`trip_policy`](Self::trip_policy) | 5 consecutive failures |
/// | [`open_backoff`](Self::open_backoff) | decorrelated jitter, 5 s to 60 s |
/// | [`half_open_probes`](Self::half_open_probes) | 1 |
/// | [`close_after`](Self::close_after) | 1 probe success |
/// | [`max_server_hint`](Self::max_server_hint) | 5 minutes |
/// | [`classifier`](Self::classifier) | [`resile_classify::Classifier::default()`] |
/// | [`clock`](Self::clock) | [`TokioClock`] |
pub struct CircuitBreakerBuilder<C = Classifier> {
    pub(crate) trip: TripPolicy,
    pub(crate) probes: u32,
    pub(crate) close_after: u32,
    pub(crate) max_hint: Duration,
    pub(crate) backoff: Option<(BackoffMaker, Duration)>,
    pub(crate) clock: Option<Box<dyn Clock>>,
    pub(crate) classifier: C,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) listeners: Vec<Listener>,
}

impl<C: fmt::Debug> fmt::Debug for CircuitBreakerBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("trip", &self.trip)
            .field("probes", &self.probes)
            .field("close_after", &self.close_after)
            .field("max_server_hint", &self.max_hint)
            .field("custom_backoff", &self.backoff.is_some())
            .field("custom_clock", &self.clock.is_some())
            .field("classifier", &self.classifier)
            .field("name", &self.name)
            .field("listeners", &self.listeners.len())
            .finish()
    }
}

impl Default for CircuitBreakerBuilder<Classifier> {
    fn default() -> Self {
        CircuitBreakerBuilder {
            trip: TripPolicy::default(),
            probes: 1,
            close_after: 1,
            max_hint: Duration::from_secs(300),
            backoff: None,
            clock: None,
            classifier: Classifier::default(),
            name: None,
            listeners: Vec::new(),
        }
    }
}

impl<C> CircuitBreakerBuilder<C> {
    /// What opens the breaker.
    pub fn trip_policy(mut self, policy: TripPolicy) -> Self {
        self.trip = policy;
        self
    }

    /// Open after `n` failures in a row (`n >= 1`).
    pub fn consecutive_failures(self, n: u32) -> Self {
        self.trip_policy(TripPolicy::ConsecutiveFailures(n))
    }

    /// Open when the failure ratio in `window` reaches `threshold` (in `(0, 1]`), once the
    /// window holds at least `min_calls` calls.
    pub fn failure_rate(self, threshold: f64, window: SlidingWindow, min_calls: u32) -> Self {
        self.trip_policy(TripPolicy::FailureRate {
            threshold,
            window,
            min_calls,
        })
    }

    /// How many probes may be in flight at once while half-open (`1 ..= 2^20 - 1`).
    pub fn half_open_probes(mut self, n: u32) -> Self {
        self.probes = n;
        self
    }

    /// How many probe successes close the breaker (`1 ..= 2^20 - 1`). With more than
    /// [`half_open_probes`](Self::half_open_probes), probes follow one another until enough
    /// succeeded; any failure reopens.
    pub fn close_after(mut self, successes: u32) -> Self {
        self.close_after = successes;
        self
    }

    /// The open periods: the breaker asks `backoff` for a delay at each opening and resets it
    /// when it closes. A backoff that runs out keeps its last delay (or the first of a backoff
    /// that yields none: then 5 s). Keyed breakers clone it per key.
    pub fn open_backoff<B>(mut self, backoff: B) -> Self
    where
        B: Backoff + Clone + Send + Sync + 'static,
    {
        let mut probe = backoff.clone();
        let first = probe.next_delay().unwrap_or(Duration::from_secs(5));
        self.backoff = Some((
            Arc::new(move || Box::new(backoff.clone()) as Box<dyn Backoff + Send>),
            first,
        ));
        self
    }

    /// Every open period lasts `d` (plus any server hint).
    pub fn open_duration(self, d: Duration) -> Self {
        self.open_backoff(Constant::new(d).no_max_retries())
    }

    /// The longest server hint that lengthens an open period; longer hints are cut to it.
    /// `Duration::ZERO` ignores server hints.
    pub fn max_server_hint(mut self, max: Duration) -> Self {
        self.max_hint = max;
        self
    }

    /// Where the breaker reads time.
    pub fn clock<K: Clock>(mut self, clock: K) -> Self {
        self.clock = Some(Box::new(clock));
        self
    }

    /// A name for logs and transition listeners.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Calls `f` on every transition (see [`BreakerHandle::on_transition`](crate::BreakerHandle::on_transition)).
    pub fn on_transition<F>(mut self, f: F) -> Self
    where
        F: Fn(&Transition) + Send + Sync + 'static,
    {
        self.listeners.push(Arc::new(f));
        self
    }

    /// How outcomes are counted.
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerBuilder<C2> {
        CircuitBreakerBuilder {
            trip: self.trip,
            probes: self.probes,
            close_after: self.close_after,
            max_hint: self.max_hint,
            backoff: self.backoff,
            clock: self.clock,
            classifier,
            name: self.name,
            listeners: self.listeners,
        }
    }

    /// Checks the configuration: the policy numbers and a factory of windows.
    pub(crate) fn check(&self) -> Result<(Policy, WindowSpec), BreakerConfigError> {
        let (trip, spec) = match self.trip {
            TripPolicy::ConsecutiveFailures(0) => return Err(BreakerConfigError::ZeroFailures),
            TripPolicy::ConsecutiveFailures(n) => {
                (Trip::Consecutive(u64::from(n)), WindowSpec::None)
            }
            TripPolicy::FailureRate {
                threshold,
                window,
                min_calls,
            } => {
                if !(threshold > 0.0 && threshold <= 1.0) {
                    return Err(BreakerConfigError::InvalidRate(threshold));
                }
                let ppm = ((threshold * 1_000_000.0).ceil() as u64).clamp(1, 1_000_000);
                let spec = match window {
                    SlidingWindow::Count(n) => {
                        if n == 0 || n > MAX_COUNT_WINDOW {
                            return Err(BreakerConfigError::InvalidCountWindow(n));
                        }
                        WindowSpec::Count(n)
                    }
                    SlidingWindow::Time { length, buckets } => {
                        let bucket_ms = if buckets == 0 {
                            0
                        } else {
                            (length / buckets).as_millis()
                        };
                        if buckets == 0 || buckets > MAX_BUCKETS || bucket_ms == 0 {
                            return Err(BreakerConfigError::InvalidTimeWindow { length, buckets });
                        }
                        WindowSpec::Time {
                            bucket_ms: u64::try_from(bucket_ms).unwrap_or(u64::MAX),
                            buckets,
                        }
                    }
                };
                (
                    Trip::Rate {
                        ppm,
                        min_calls: u64::from(min_calls.max(1)),
                    },
                    spec,
                )
            }
        };
        if self.probes == 0 || self.probes > MAX_PROBES {
            return Err(BreakerConfigError::InvalidProbes(self.probes));
        }
        if self.close_after == 0 || self.close_after > MAX_PROBES {
            return Err(BreakerConfigError::InvalidCloseAfter(self.close_after));
        }
        Ok((
            Policy {
                trip,
                probes: u64::from(self.probes),
                close_after: u64::from(self.close_after),
                max_hint: self.max_hint,
            },
            spec,
        ))
    }

    /// A fresh backoff and its first delay (the fallback when it yields none).
    pub(crate) fn make_backoff(&self) -> (Box<dyn Backoff + Send>, Duration) {
        match &self.backoff {
            Some((make, first)) => (make(), *first),
            None => (default_backoff(), Duration::from_secs(5)),
        }
    }

    pub(crate) fn take_clock(&mut self) -> Box<dyn Clock> {
        self.clock
            .take()
            .unwrap_or_else(|| Box::new(TokioClock::new()))
    }
}

/// How to build a slot's window.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WindowSpec {
    None,
    Count(u32),
    Time { bucket_ms: u64, buckets: u32 },
}

impl WindowSpec {
    pub(crate) fn make(self) -> Window {
        match self {
            WindowSpec::None => Window::None,
            WindowSpec::Count(n) => Window::Count(CountWindow::new(n)),
            WindowSpec::Time { bucket_ms, buckets } => {
                Window::Time(TimeWindow::new(bucket_ms, buckets))
            }
        }
    }
}
