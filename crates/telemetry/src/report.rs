//! The report: figures since the start and over rolling windows, trends, events and alerts.

use std::fmt;
use std::time::Duration;

use crate::alert::{fmt_duration, AlertEvent};
use crate::histogram::Latency;
use crate::outcome::{
    status_of, ErrorKind, EV_BUDGET, EV_CLOSED, EV_HALF_OPENED, EV_OPENED, EV_PAUSE, EV_RETRY,
};
use crate::window::{Tally, View};

/// Requests answered with one status code (`code: None` for a status outside 100-599).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct StatusCount {
    /// The status code, `None` for "other" (outside 100-599).
    pub code: Option<u16>,
    /// How many requests it answered.
    pub count: u64,
}

/// Requests that ended in one kind of error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ErrorCount {
    /// The kind of error.
    pub kind: ErrorKind,
    /// How many requests ended in it.
    pub count: u64,
}

/// Resilience events counted over a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Events {
    /// Retries sent ([`Event::Retry`](crate::Event::Retry)).
    pub retries: u64,
    /// Retries refused by the retry budget.
    pub budget_refusals: u64,
    /// Breaker transitions to open.
    pub breaker_opened: u64,
    /// Breaker transitions to half-open.
    pub breaker_half_opened: u64,
    /// Breaker transitions to closed.
    pub breaker_closed: u64,
    /// Responses that asked the client to pause (`429` / `503` with `Retry-After`).
    pub server_pauses: u64,
}

/// The figures of one view over one period.
///
/// Rates are from 0 to 1 (0 when there is nothing to divide). The success rate is a share of
/// every request (what callers got); the error rates are shares of the requests `sent` to the
/// server (local rejections left out, so that an open breaker does not dilute the 5xx rate).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Figures {
    /// The window, `None` for the totals since the start.
    pub window: Option<Duration>,
    /// Requests recorded.
    pub requests: u64,
    /// Requests that reached the transport: `requests - local_rejections`.
    pub sent: u64,
    /// Requests answered with a response (any status).
    pub responses: u64,
    /// 2xx answers over `requests`.
    pub success_rate: f64,
    /// 4xx answers over `sent`.
    pub client_error_rate: f64,
    /// 5xx answers over `sent`.
    pub server_error_rate: f64,
    /// 502 and 504 answers over `sent` (gateway errors: the request likely never reached the
    /// API).
    pub gateway_share: f64,
    /// Transport errors (connect, timeout, other transport) over `sent`.
    pub transport_error_rate: f64,
    /// Requests refused locally by a resile layer (breaker, limiter, other).
    pub local_rejections: u64,
    /// Requests whose future was dropped before completion.
    pub cancelled: u64,
    /// Attempts beyond the first behind the answered requests, as the retry layer inside
    /// marked them on the responses (`resile_classify::Attempts`); 0 without a retry layer
    /// inside, and not known for requests that ended in an error.
    pub retries: u64,
    /// Answers by status code, most frequent first (ties by code).
    pub by_status: Vec<StatusCount>,
    /// Errors by kind, most frequent first.
    pub by_error: Vec<ErrorCount>,
    /// Latency to the response head of answered requests.
    pub latency: Latency,
    /// Resilience events (in the requests view; zero in the attempts view).
    pub events: Events,
}

impl Figures {
    pub(crate) fn from_tally(window: Option<Duration>, t: &Tally) -> Self {
        let responses: u64 = t.statuses.iter().sum();
        let errors: u64 = t.errors.iter().sum();
        let requests = responses + errors;
        let class = |lo: u16, hi: u16| -> u64 {
            (lo..=hi)
                .map(|c| t.statuses[crate::outcome::status_index(c)])
                .sum()
        };
        let err = |k: ErrorKind| t.errors[k.index()];
        let local =
            err(ErrorKind::BreakerOpen) + err(ErrorKind::RateLimited) + err(ErrorKind::Rejected);
        let sent = requests - local;
        let over = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        let mut by_status: Vec<StatusCount> = t
            .statuses
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| StatusCount {
                code: status_of(i),
                count: *c,
            })
            .collect();
        by_status.sort_by(|a, b| b.count.cmp(&a.count).then(a.code.cmp(&b.code)));
        let mut by_error: Vec<ErrorCount> = ErrorKind::ALL
            .iter()
            .map(|k| ErrorCount {
                kind: *k,
                count: err(*k),
            })
            .filter(|e| e.count > 0)
            .collect();
        by_error.sort_by(|a, b| b.count.cmp(&a.count).then(a.kind.cmp(&b.kind)));
        let transport =
            err(ErrorKind::Connect) + err(ErrorKind::Timeout) + err(ErrorKind::Transport);
        Figures {
            window,
            requests,
            sent,
            responses,
            success_rate: over(class(200, 299), requests),
            client_error_rate: over(class(400, 499), sent),
            server_error_rate: over(class(500, 599), sent),
            gateway_share: over(class(502, 502) + class(504, 504), sent),
            transport_error_rate: over(transport, sent),
            local_rejections: local,
            cancelled: err(ErrorKind::Cancelled),
            retries: t.retries,
            by_status,
            by_error,
            latency: t.latency.latency(),
            events: Events {
                retries: t.events[EV_RETRY],
                budget_refusals: t.events[EV_BUDGET],
                breaker_opened: t.events[EV_OPENED],
                breaker_half_opened: t.events[EV_HALF_OPENED],
                breaker_closed: t.events[EV_CLOSED],
                server_pauses: t.events[EV_PAUSE],
            },
        }
    }

    /// Answers with `code`.
    pub fn status(&self, code: u16) -> u64 {
        self.by_status
            .iter()
            .find(|s| s.code == Some(code))
            .map_or(0, |s| s.count)
    }

    /// Errors of `kind`.
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.by_error
            .iter()
            .find(|e| e.kind == kind)
            .map_or(0, |e| e.count)
    }
}

/// One interval of a trend.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TrendPoint {
    /// Requests in the interval.
    pub requests: u64,
    /// Share of 5xx answers in the interval.
    pub server_error_rate: f64,
    /// The interval's 99th percentile latency.
    pub p99: Option<Duration>,
}

/// The figures of one view: since the start, over each window, and per interval.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ViewReport {
    /// Which requests.
    pub view: View,
    /// Since the start.
    pub total: Figures,
    /// Over each configured window, shortest first; a window covers the current interval and
    /// the ones before it.
    pub windows: Vec<Figures>,
    /// The length of one trend interval.
    pub interval: Duration,
    /// One point per interval over the longest window, oldest first, the current interval last.
    pub trend: Vec<TrendPoint>,
}

/// What [`Telemetry::report`](crate::Telemetry::report) returns. Prints as a table
/// (`{}`), and serializes with the `serde` feature.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Report {
    /// The telemetry's name, if it was given one.
    pub name: Option<&'static str>,
    /// Since the telemetry was created.
    pub uptime: Duration,
    /// What callers saw.
    pub requests: ViewReport,
    /// What the server answered, per attempt (when an attempt layer records).
    pub attempts: Option<ViewReport>,
    /// Rules currently raised.
    pub active_alerts: Vec<&'static str>,
    /// The latest alert events (up to 64), oldest first.
    pub alerts: Vec<AlertEvent>,
}

impl Report {
    /// Attempts sent to the server per request since the start (1.0: no retries). With an
    /// attempt layer: the attempts that reached the transport over the requests; without one,
    /// from the retry layer's marks: `(requests + retries) / requests` (`None` when neither
    /// says anything).
    pub fn resend_ratio(&self) -> Option<f64> {
        let r = &self.requests.total;
        if r.requests == 0 {
            return None;
        }
        match &self.attempts {
            Some(a) => Some(a.total.sent as f64 / r.requests as f64),
            None if r.retries > 0 => Some((r.requests + r.retries) as f64 / r.requests as f64),
            None => None,
        }
    }
}

const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A text sparkline of `values`, scaled to their maximum.
pub(crate) fn sparkline(values: impl Iterator<Item = f64> + Clone) -> String {
    let max = values.clone().fold(0.0_f64, f64::max);
    values
        .map(|v| {
            if max <= 0.0 || !v.is_finite() {
                SPARKS[0]
            } else {
                SPARKS[(((v / max) * 7.0).round() as usize).min(7)]
            }
        })
        .collect()
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

fn opt(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), fmt_duration)
}

impl fmt::Display for ViewReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.view {
            View::Requests => "requests",
            View::Attempts => "attempts",
        };
        writeln!(
            f,
            "{name:<9} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6} {:>9} {:>9} {:>9}",
            "period",
            "requests",
            "2xx",
            "4xx",
            "5xx",
            "502/504",
            "transport",
            "local",
            "p50",
            "p99",
            "max"
        )?;
        for fig in std::iter::once(&self.total).chain(&self.windows) {
            let period = fig.window.map_or_else(|| "total".to_owned(), fmt_duration);
            writeln!(
                f,
                "{:<9} {period:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6} {:>9} {:>9} {:>9}",
                "",
                fig.requests,
                pct(fig.success_rate),
                pct(fig.client_error_rate),
                pct(fig.server_error_rate),
                pct(fig.gateway_share),
                pct(fig.transport_error_rate),
                fig.local_rejections,
                opt(fig.latency.p50),
                opt(fig.latency.p99),
                opt(fig.latency.max),
            )?;
        }
        let top: Vec<String> = self
            .total
            .by_status
            .iter()
            .take(6)
            .map(|s| match s.code {
                Some(c) => format!("{c} x{}", s.count),
                None => format!("other x{}", s.count),
            })
            .chain(
                self.total
                    .by_error
                    .iter()
                    .map(|e| format!("{} x{}", e.kind, e.count)),
            )
            .collect();
        writeln!(f, "{:<9} top: {}", "", top.join(", "))?;
        let t = &self.trend;
        write!(
            f,
            "{:<9} trend per {}: requests {}  5xx {}  p99 {}",
            "",
            fmt_duration(self.interval),
            sparkline(t.iter().map(|p| p.requests as f64)),
            sparkline(t.iter().map(|p| p.server_error_rate)),
            sparkline(t.iter().map(|p| p.p99.map_or(0.0, |d| d.as_secs_f64()))),
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "telemetry{} after {}",
            self.name.map(|n| format!(" {n}")).unwrap_or_default(),
            fmt_duration(self.uptime)
        )?;
        writeln!(f, "{}", self.requests)?;
        if let Some(a) = &self.attempts {
            writeln!(f, "{a}")?;
        }
        if let Some(r) = self.resend_ratio() {
            writeln!(f, "resend ratio {r:.2} attempts per request")?;
        }
        let e = &self.requests.total.events;
        let events: Vec<String> = [
            (e.retries, "retries"),
            (e.budget_refusals, "budget refusals"),
            (e.breaker_opened, "breaker opened"),
            (e.breaker_half_opened, "breaker half-opened"),
            (e.breaker_closed, "breaker closed"),
            (e.server_pauses, "server pauses"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{what} {n}"))
        .collect();
        if events.is_empty() {
            writeln!(f, "events: none")?;
        } else {
            writeln!(f, "events: {}", events.join(", "))?;
        }
        if self.active_alerts.is_empty() {
            write!(f, "alerts: none active")?;
        } else {
            write!(f, "alerts: {} active", self.active_alerts.join(", "))?;
        }
        for a in &self.alerts {
            write!(f, "\n  {a}")?;
        }
        Ok(())
    }
}
