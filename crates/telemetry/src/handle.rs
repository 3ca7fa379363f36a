//! The `Telemetry` handle: where layers record and where reports are read.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use resile_classify::clock::{nanos, Clock, TokioClock};

use crate::alert::{AlertEvent, AlertRule, AlertState};
use crate::export::Exporters;
use crate::layer::TelemetryLayer;
use crate::outcome::{Event, Recorded};
use crate::report::{Figures, Report, TrendPoint, ViewReport};
use crate::window::{lock, Folded, Ring, Tally, View};

type AlertCallback = Arc<dyn Fn(&AlertEvent) + Send + Sync>;

/// The most intervals a ring keeps (its memory is about 7 KiB per interval and view).
pub const MAX_INTERVALS: usize = 1_000;
/// Alert events kept for the report.
const ALERT_LOG: usize = 64;

/// A handle to one set of telemetry: the layers made from it record into it, and
/// [`report`](Self::report) reads it. Cheap to clone; clones share everything.
///
/// Memory is fixed when it is built: one slot per interval of the longest window (or alert
/// window) plus the current one, about 7 KiB per slot and view.
#[derive(Clone)]
pub struct Telemetry {
    pub(crate) inner: Arc<Inner>,
}

// Aligned so that the `Arc`'s reference counts, which every request in flight changes, do not
// share a cache line with the fields every request reads.
#[repr(align(128))]
pub(crate) struct Inner {
    name: Option<&'static str>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ring: Ring,
    windows: Vec<u64>,
    trend: u64,
    book: Mutex<AlertBook>,
    callbacks: Vec<AlertCallback>,
    pub(crate) exporters: Exporters,
}

struct AlertBook {
    rules: Vec<(AlertRule, bool)>,
    log: VecDeque<AlertEvent>,
}

impl Telemetry {
    /// Telemetry with the defaults: 10 s intervals, windows of 1 and 5 minutes, the default
    /// alert rules ([`AlertRule::server_errors`], [`AlertRule::client_error_spike`],
    /// [`AlertRule::gateway_errors`]) and tokio's clock.
    pub fn new() -> Telemetry {
        Telemetry::builder().build()
    }

    /// A builder to set intervals, windows, alerts and the clock.
    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder::default()
    }

    /// A layer recording what callers see ([`View::Requests`]): put it outermost.
    pub fn layer(&self) -> TelemetryLayer {
        TelemetryLayer::from_telemetry(self.clone(), View::Requests)
    }

    /// A layer recording each attempt ([`View::Attempts`]): put it inside the retry layer.
    pub fn attempt_layer(&self) -> TelemetryLayer {
        self.inner.ring.enable_attempts();
        TelemetryLayer::from_telemetry(self.clone(), View::Attempts)
    }

    /// Records a resilience event at the current time.
    pub fn record_event(&self, event: Event) {
        let inner = &*self.inner;
        inner.record_event(inner.clock.now(), event);
    }

    /// The rules currently raised.
    pub fn active_alerts(&self) -> Vec<&'static str> {
        let book = lock(&self.inner.book);
        book.rules
            .iter()
            .filter(|(_, raised)| *raised)
            .map(|(r, _)| r.name())
            .collect()
    }

    /// Closes any interval that ended since the last request (evaluating alerts), without
    /// recording anything. A service with long quiet periods calls it on a timer so that
    /// alerts clear on time; [`report`](Self::report) does it too.
    pub fn tick(&self) {
        let inner = &*self.inner;
        let e = inner.ring.interval_of(inner.clock.now());
        if let Some(moved) = inner.ring.advance(e) {
            inner.interval_closed(moved, e);
        }
    }

    /// The figures since the start and over each window, trends and alerts.
    pub fn report(&self) -> Report {
        self.tick();
        let inner = &*self.inner;
        let now = inner.clock.now();
        let e = inner.ring.interval_of(now);
        let held = inner.ring.lock();
        let e = inner.ring.newest(&held).unwrap_or(e).max(e);
        let requests = inner.view_report(&held, View::Requests, e);
        let attempts = inner
            .ring
            .has_attempts()
            .then(|| inner.view_report(&held, View::Attempts, e));
        drop(held);
        let book = lock(&inner.book);
        Report {
            name: inner.name,
            uptime: Duration::from_nanos(now),
            requests,
            attempts,
            active_alerts: book
                .rules
                .iter()
                .filter(|(_, raised)| *raised)
                .map(|(r, _)| r.name())
                .collect(),
            alerts: book.log.iter().cloned().collect(),
        }
    }
}

impl Inner {
    /// Called with the ring's lock when interval `e` opened: evaluates the rules over the
    /// interval that closed, then calls the callbacks with the lock released.
    pub(crate) fn interval_closed(&self, held: MutexGuard<'_, Folded>, e: u64) {
        let Some(closed) = e.checked_sub(1) else {
            return;
        };
        let default_view = if self.ring.has_attempts() {
            View::Attempts
        } else {
            View::Requests
        };
        let at = Duration::from_nanos((closed + 1).saturating_mul(self.ring.interval()));
        let mut fired = Vec::new();
        {
            let mut book = lock(&self.book);
            for (rule, raised) in &mut book.rules {
                let view = rule.view_or(default_view);
                let m = self.intervals(rule.window_len());
                let w = Figures::from_tally(
                    Some(rule.window_len()),
                    &self.ring.window(&held, view, closed, m),
                );
                let base = rule.baseline_len().map(|b| {
                    Figures::from_tally(
                        Some(b),
                        &self.ring.window(&held, view, closed, self.intervals(b)),
                    )
                });
                let Some(value) = rule.value(&w, base.as_ref()) else {
                    continue;
                };
                let next = rule.next(*raised, value, w.sent);
                if next != *raised {
                    *raised = next;
                    fired.push(AlertEvent {
                        rule: rule.name(),
                        state: if next {
                            AlertState::Raised
                        } else {
                            AlertState::Cleared
                        },
                        value,
                        requests: w.sent,
                        at,
                        rule_def: rule.clone(),
                    });
                }
            }
            for ev in &fired {
                if book.log.len() == ALERT_LOG {
                    book.log.pop_front();
                }
                book.log.push_back(ev.clone());
            }
        }
        drop(held);
        for ev in &fired {
            for cb in &self.callbacks {
                // A panicking callback must not take the request (or the counts) with it.
                let _ = catch_unwind(AssertUnwindSafe(|| cb(ev)));
            }
        }
    }

    fn intervals(&self, w: Duration) -> u64 {
        nanos(w).div_ceil(self.ring.interval()).max(1)
    }

    fn view_report(&self, held: &Folded, view: View, e: u64) -> ViewReport {
        let total = Figures::from_tally(None, &self.ring.total(held, view));
        let windows = self
            .windows
            .iter()
            .map(|w| {
                let d = Duration::from_nanos(*w);
                Figures::from_tally(Some(d), &self.ring.window(held, view, e, self.intervals(d)))
            })
            .collect();
        // A fixed number of points: intervals before the start are empty.
        let trend = (0..self.trend)
            .map(|back| {
                let mut t = Tally::new();
                if let Some(k) = e.checked_sub(self.trend - 1 - back) {
                    self.ring.add_interval(view, k, &mut t);
                }
                let f = Figures::from_tally(None, &t);
                TrendPoint {
                    requests: f.requests,
                    server_error_rate: f.server_error_rate,
                    p99: f.latency.p99,
                }
            })
            .collect();
        ViewReport {
            view,
            total,
            windows,
            interval: Duration::from_nanos(self.ring.interval()),
            trend,
        }
    }

    /// Records an event at `now`.
    pub(crate) fn record_event(&self, now: u64, event: Event) {
        self.exporters.event(&event);
        if let Some(counter) = event.counter() {
            if let Some(moved) = self.ring.record_event(now, counter) {
                self.interval_closed(moved, self.ring.interval_of(now));
            }
        }
    }

    /// Records one finished request.
    #[inline]
    pub(crate) fn record(
        &self,
        view: View,
        now: u64,
        what: Recorded,
        latency: Option<u64>,
        retries: u32,
    ) {
        if let Some(moved) = self.ring.record(view, now, what, latency, retries) {
            self.interval_closed(moved, self.ring.interval_of(now));
        }
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("name", &self.inner.name)
            .field(
                "interval",
                &Duration::from_nanos(self.inner.ring.interval()),
            )
            .field("windows", &self.inner.windows.len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Telemetry`].
///
/// Rules for odd settings (never an error): the interval is at least 1 ms; windows are rounded
/// up to whole intervals, zero-length ones are dropped, and the ring keeps at most
/// [`MAX_INTERVALS`] intervals (longer windows are cut to that).
pub struct TelemetryBuilder {
    name: Option<&'static str>,
    interval: Duration,
    windows: Vec<Duration>,
    rules: Vec<AlertRule>,
    callbacks: Vec<AlertCallback>,
    clock: Option<Arc<dyn Clock>>,
    exporters: Exporters,
}

impl Default for TelemetryBuilder {
    fn default() -> Self {
        TelemetryBuilder {
            name: None,
            interval: Duration::from_secs(10),
            windows: vec![Duration::from_secs(60), Duration::from_secs(300)],
            rules: vec![
                AlertRule::server_errors(),
                AlertRule::client_error_spike(),
                AlertRule::gateway_errors(),
            ],
            callbacks: Vec::new(),
            clock: None,
            exporters: Exporters::default(),
        }
    }
}

impl TelemetryBuilder {
    /// A name shown in the report.
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// The length of one interval: the step of trends and of alert evaluation (10 s by default).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The rolling windows of the report (1 and 5 minutes by default).
    pub fn windows<I: IntoIterator<Item = Duration>>(mut self, windows: I) -> Self {
        self.windows = windows.into_iter().collect();
        self
    }

    /// Adds an alert rule.
    pub fn alert(mut self, rule: AlertRule) -> Self {
        self.rules.retain(|r| r.name() != rule.name());
        self.rules.push(rule);
        self
    }

    /// Removes every alert rule (the defaults included).
    pub fn no_alerts(mut self) -> Self {
        self.rules.clear();
        self
    }

    /// Calls `f` when a rule raises or clears, after the interval closed (outside any lock; a
    /// panic in `f` is caught).
    pub fn on_alert<F>(mut self, f: F) -> Self
    where
        F: Fn(&AlertEvent) + Send + Sync + 'static,
    {
        self.callbacks.push(Arc::new(f));
        self
    }

    /// The clock (tokio's by default, so that tokio's paused clock moves it in tests).
    pub fn clock<C: Clock>(mut self, clock: C) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Exports every request and event through the `metrics` facade as well.
    #[cfg(feature = "metrics")]
    pub fn metrics(mut self, exporter: crate::export::MetricsExporter) -> Self {
        self.exporters.metrics = Some(exporter);
        self
    }

    /// Exports every request and event through an OpenTelemetry meter as well.
    #[cfg(feature = "opentelemetry")]
    pub fn opentelemetry(mut self, exporter: crate::export::OtelExporter) -> Self {
        self.exporters.otel = Some(exporter);
        self
    }

    /// Builds the telemetry.
    pub fn build(self) -> Telemetry {
        let interval = nanos(self.interval).max(1_000_000);
        let max = interval.saturating_mul(MAX_INTERVALS as u64);
        let round = |d: Duration| -> u64 {
            nanos(d)
                .div_ceil(interval)
                .saturating_mul(interval)
                .min(max)
        };
        let mut windows: Vec<u64> = self
            .windows
            .iter()
            .map(|d| round(*d))
            .filter(|w| *w > 0)
            .collect();
        windows.sort_unstable();
        windows.dedup();
        let longest = windows
            .iter()
            .copied()
            .chain(self.rules.iter().flat_map(|r| {
                [Some(r.window_len()), r.baseline_len()]
                    .into_iter()
                    .flatten()
                    .map(round)
            }))
            .max()
            .unwrap_or(interval)
            .max(interval);
        let intervals = (longest / interval) as usize;
        let trend = windows.last().copied().unwrap_or(interval) / interval;
        Telemetry {
            inner: Arc::new(Inner {
                name: self.name,
                clock: self.clock.unwrap_or_else(|| Arc::new(TokioClock::new())),
                ring: Ring::new(interval, intervals),
                windows,
                trend: trend.max(1),
                book: Mutex::new(AlertBook {
                    rules: self.rules.into_iter().map(|r| (r, false)).collect(),
                    log: VecDeque::new(),
                }),
                callbacks: self.callbacks,
                exporters: self.exporters,
            }),
        }
    }
}

impl fmt::Debug for TelemetryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryBuilder")
            .field("name", &self.name)
            .field("interval", &self.interval)
            .field("windows", &self.windows)
            .field("rules", &self.rules)
            .field("callbacks", &self.callbacks.len())
            .finish_non_exhaustive()
    }
}
