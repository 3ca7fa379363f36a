//! Alert rules, evaluated when an interval closes (never per request), with hysteresis.

use std::fmt;
use std::time::Duration;

use crate::report::Figures;
use crate::window::View;

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Watch {
    ServerErrorRate,
    GatewayShare,
    ClientErrorSpike { baseline: Duration, min_rate: f64 },
    P99,
}

/// A rule raised when a figure over its window crosses `raise`, and cleared when it falls back
/// below `clear` (hysteresis: a rate that flaps around one threshold does not flood).
///
/// A rule needs `min_requests` requests sent in its window to raise (local rejections do not
/// count); a window with none leaves the rule's state as it is.
/// Rules read the server's view: the attempts when an attempt layer records them, otherwise
/// the requests ([`AlertRule::view`] picks one).
///
/// | rule | raises when | clears when | window | min requests |
/// |---|---|---|---|---|
/// | [`server_errors`](Self::server_errors) | 5xx rate > 5 % | < 2.5 % | 1 min | 20 |
/// | [`client_error_spike`](Self::client_error_spike) | 4xx rate > 3x its 5 min rate and > 2 % | < 1.5x | 1 min | 20 |
/// | [`gateway_errors`](Self::gateway_errors) | 502 + 504 share > 5 % | < 2.5 % | 1 min | 20 |
/// | [`p99_above(d)`](Self::p99_above) | p99 > `d` | < 0.8 `d` | 1 min | 20 |
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    name: &'static str,
    watch: Watch,
    window: Duration,
    min_requests: u64,
    raise: f64,
    clear: f64,
    view: Option<View>,
}

impl AlertRule {
    fn new(name: &'static str, watch: Watch, raise: f64, clear: f64) -> Self {
        AlertRule {
            name,
            watch,
            window: Duration::from_secs(60),
            min_requests: 20,
            raise,
            clear,
            view: None,
        }
    }

    /// The share of 5xx answers: raised above 5 %, cleared below 2.5 %.
    pub fn server_errors() -> Self {
        AlertRule::new("server_errors", Watch::ServerErrorRate, 0.05, 0.025)
    }

    /// The share of 502 and 504 answers (the request likely never reached the API): raised
    /// above 5 %, cleared below 2.5 %.
    pub fn gateway_errors() -> Self {
        AlertRule::new("gateway_errors", Watch::GatewayShare, 0.05, 0.025)
    }

    /// A spike of 4xx answers (a client integration broke): the 4xx rate over the window above
    /// 3 times its rate over the last 5 minutes and above 2 %; cleared below 1.5 times.
    pub fn client_error_spike() -> Self {
        AlertRule::new(
            "client_error_spike",
            Watch::ClientErrorSpike {
                baseline: Duration::from_secs(300),
                min_rate: 0.02,
            },
            3.0,
            1.5,
        )
    }

    /// The 99th percentile latency above `d`; cleared below 0.8 `d`.
    pub fn p99_above(d: Duration) -> Self {
        let secs = d.as_secs_f64();
        AlertRule::new("p99_latency", Watch::P99, secs, secs * 0.8)
    }

    /// Sets the thresholds: raise above `raise`, clear below `clear` (rates from 0 to 1, a
    /// latency in seconds, a spike as a multiple of the baseline). `clear` is capped at `raise`.
    pub fn thresholds(mut self, raise: f64, clear: f64) -> Self {
        self.raise = raise;
        self.clear = clear.min(raise);
        self
    }

    /// Sets the window the figure is taken over (rounded up to whole intervals).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Sets the spike rule's baseline window (5 min by default); no effect on other rules.
    pub fn baseline(mut self, window: Duration) -> Self {
        if let Watch::ClientErrorSpike { baseline, .. } = &mut self.watch {
            *baseline = window;
        }
        self
    }

    /// Sets the requests the window needs before the rule may raise (20 by default).
    pub fn min_requests(mut self, n: u64) -> Self {
        self.min_requests = n;
        self
    }

    /// Evaluates the rule over one view instead of the server's view.
    pub fn view(mut self, view: View) -> Self {
        self.view = Some(view);
        self
    }

    /// Renames the rule (the name alert events carry).
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The rule's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn window_len(&self) -> Duration {
        self.window
    }

    pub(crate) fn baseline_len(&self) -> Option<Duration> {
        match self.watch {
            Watch::ClientErrorSpike { baseline, .. } => Some(baseline),
            _ => None,
        }
    }

    pub(crate) fn view_or(&self, default: View) -> View {
        self.view.unwrap_or(default)
    }

    /// The watched value over `w` (and `baseline` for the spike rule), or `None` when the
    /// window says nothing.
    pub(crate) fn value(&self, w: &Figures, baseline: Option<&Figures>) -> Option<f64> {
        if w.sent == 0 {
            return None;
        }
        Some(match self.watch {
            Watch::ServerErrorRate => w.server_error_rate,
            Watch::GatewayShare => w.gateway_share,
            Watch::P99 => w.latency.p99?.as_secs_f64(),
            Watch::ClientErrorSpike { min_rate, .. } => {
                let base = baseline.map_or(0.0, |b| b.client_error_rate);
                if w.client_error_rate < min_rate {
                    0.0
                } else if base <= 0.0 {
                    f64::INFINITY
                } else {
                    w.client_error_rate / base
                }
            }
        })
    }

    /// The next state given the current one.
    pub(crate) fn next(&self, raised: bool, value: f64, requests: u64) -> bool {
        if raised {
            value >= self.clear
        } else {
            requests >= self.min_requests && value > self.raise
        }
    }

    fn describe(&self, value: f64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let over = fmt_duration(self.window);
        match self.watch {
            Watch::ServerErrorRate => write!(
                f,
                "5xx rate {:.1} % (raise > {:.1} %, clear < {:.1} %) over {over}",
                value * 100.0,
                self.raise * 100.0,
                self.clear * 100.0
            ),
            Watch::GatewayShare => write!(
                f,
                "502/504 share {:.1} % (raise > {:.1} %, clear < {:.1} %) over {over}",
                value * 100.0,
                self.raise * 100.0,
                self.clear * 100.0
            ),
            Watch::ClientErrorSpike { .. } => write!(
                f,
                "4xx rate {value:.1}x its baseline (raise > {:.1}x, clear < {:.1}x) over {over}",
                self.raise, self.clear
            ),
            Watch::P99 => write!(
                f,
                "p99 {} (raise > {}, clear < {}) over {over}",
                fmt_duration(Duration::from_secs_f64(value.clamp(0.0, 1e9))),
                fmt_duration(Duration::from_secs_f64(self.raise.clamp(0.0, 1e9))),
                fmt_duration(Duration::from_secs_f64(self.clear.clamp(0.0, 1e9))),
            ),
        }
    }
}

/// Whether an alert was raised or cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
pub enum AlertState {
    /// The figure crossed the raise threshold.
    Raised,
    /// The figure fell below the clear threshold.
    Cleared,
}

/// A rule that raised or cleared, given to the alert callback and kept in the report.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct AlertEvent {
    /// The rule's name (`server_errors`, `client_error_spike`, `gateway_errors`, `p99_latency`,
    /// or a name of the user's).
    pub rule: &'static str,
    /// Raised or cleared.
    pub state: AlertState,
    /// The figure that crossed (a rate from 0 to 1, a multiple, or seconds for latency).
    pub value: f64,
    /// Requests sent in the rule's window.
    pub requests: u64,
    /// When the interval closed, since the telemetry was created.
    pub at: Duration,
    #[cfg_attr(feature = "serde", serde(skip))]
    pub(crate) rule_def: AlertRule,
}

impl fmt::Display for AlertEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            AlertState::Raised => "RAISED",
            AlertState::Cleared => "cleared",
        };
        write!(f, "[{:>7}] {state} {}: ", fmt_duration(self.at), self.rule)?;
        self.rule_def.describe(self.value, f)?;
        write!(f, ", {} requests", self.requests)
    }
}

/// A duration the way a person reads it: `850 us`, `12.3 ms`, `4.0 s`, `2m 05s`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.0} us", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else if d.as_secs() < 60 {
        format!("{:.1} s", d.as_secs_f64())
    } else if d.as_secs() < 3600 {
        format!("{}m {:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{}h {:02}m", d.as_secs() / 3600, d.as_secs() % 3600 / 60)
    }
}
