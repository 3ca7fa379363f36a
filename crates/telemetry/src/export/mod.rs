//! Exporters: every request and event sent on to a metrics system as well, under
//! OpenTelemetry's semantic-convention names.
//!
//! | metric | kind | unit | attributes |
//! |---|---|---|---|
//! | `http.client.request.duration` (or `http.server.request.duration`) | histogram | s | `http.request.method`, `http.response.status_code`, `error.type` |
//! | `resile.call.duration` | histogram | s | the same, per call of the outermost layer when an attempt layer also records |
//! | `resile.retries` | counter | | `reason` |
//! | `resile.retry.give_ups` | counter | | `reason` |
//! | `resile.breaker.transitions` | counter | | `from`, `to` |
//! | `resile.server_pauses` | counter | | |
//!
//! The duration histogram follows OpenTelemetry's HTTP conventions: one record per HTTP request
//! sent (per attempt when an attempt layer records, otherwise per call), the method as sent
//! (`_OTHER` for a non-standard one), the status code, and `error.type` set to the
//! [`ErrorKind`] name for errors and to the status code for answers of 400 and above (500 and
//! above on the server side). Cardinality is bounded by design: no path, URL or host.

#[cfg(feature = "metrics")]
mod metrics;
#[cfg(feature = "opentelemetry")]
mod otel;

#[cfg(feature = "metrics")]
pub use self::metrics::MetricsExporter;
#[cfg(feature = "opentelemetry")]
pub use self::otel::OtelExporter;

#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
use std::time::Duration;

use http::{Method, StatusCode};

use crate::outcome::{ErrorKind, Event};
use crate::window::View;

#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
/// The duration record of one request, as the conventions name it.
pub(crate) struct Record {
    /// Which histogram.
    pub(crate) call: bool,
    pub(crate) method: &'static str,
    pub(crate) status: Option<StatusCode>,
    /// `error.type`: an error kind, or the status code of a failed answer.
    pub(crate) error: Option<ErrorType>,
    pub(crate) seconds: f64,
}

#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
pub(crate) enum ErrorType {
    Kind(ErrorKind),
    Status(StatusCode),
}

#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
impl ErrorType {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            ErrorType::Kind(k) => k.as_str(),
            ErrorType::Status(s) => s.as_str(),
        }
    }
}

#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
impl Record {
    pub(crate) fn new(
        server: bool,
        view: View,
        attempts_recorded: bool,
        method: Option<&Method>,
        outcome: Result<StatusCode, ErrorKind>,
        latency: u64,
    ) -> Self {
        let (status, error) = match outcome {
            Ok(s) => {
                let failed = if server {
                    s.as_u16() >= 500
                } else {
                    s.as_u16() >= 400
                };
                (Some(s), failed.then_some(ErrorType::Status(s)))
            }
            Err(k) => (None, Some(ErrorType::Kind(k))),
        };
        Record {
            call: view == View::Requests && attempts_recorded,
            method: method.map_or("_OTHER", method_name),
            status,
            error,
            seconds: Duration::from_nanos(latency).as_secs_f64(),
        }
    }

    #[cfg(feature = "metrics")]
    pub(crate) fn name(&self, server: bool) -> &'static str {
        match (self.call, server) {
            (true, _) => "resile.call.duration",
            (false, true) => "http.server.request.duration",
            (false, false) => "http.client.request.duration",
        }
    }
}

/// The exporters a telemetry sends to (none without the export features).
#[derive(Default)]
pub(crate) struct Exporters {
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<MetricsExporter>,
    #[cfg(feature = "opentelemetry")]
    pub(crate) otel: Option<OtelExporter>,
}

impl Exporters {
    /// Whether any exporter needs the request's method.
    #[inline]
    pub(crate) fn any(&self) -> bool {
        #[allow(unused_mut)]
        let mut any = false;
        #[cfg(feature = "metrics")]
        {
            any |= self.metrics.is_some();
        }
        #[cfg(feature = "opentelemetry")]
        {
            any |= self.otel.is_some();
        }
        any
    }

    #[allow(unused_variables)]
    pub(crate) fn request(
        &self,
        view: View,
        attempts_recorded: bool,
        method: Option<&Method>,
        outcome: Result<StatusCode, ErrorKind>,
        latency: u64,
    ) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.record(&Record::new(
                m.server,
                view,
                attempts_recorded,
                method,
                outcome,
                latency,
            ));
        }
        #[cfg(feature = "opentelemetry")]
        if let Some(o) = &self.otel {
            o.record(&Record::new(
                o.server,
                view,
                attempts_recorded,
                method,
                outcome,
                latency,
            ));
        }
    }

    #[allow(unused_variables)]
    pub(crate) fn event(&self, event: &Event) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.event(event);
        }
        #[cfg(feature = "opentelemetry")]
        if let Some(o) = &self.otel {
            o.event(event);
        }
    }
}

#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
/// The method as OpenTelemetry names it: one of the standard methods, else `_OTHER`.
fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}
