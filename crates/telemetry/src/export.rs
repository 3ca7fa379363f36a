//! Export through the `metrics` facade, with OpenTelemetry's semantic-convention names.

use std::time::Duration;

use http::{Method, StatusCode};

use crate::outcome::{ErrorKind, Event};
use crate::window::View;

/// Exports every request and event through the [`metrics`] facade (feature `metrics`), to
/// whatever recorder the application installed (Prometheus, StatsD, OpenTelemetry...).
///
/// | metric | kind | unit | attributes |
/// |---|---|---|---|
/// | `http.client.request.duration` (or `http.server.request.duration`) | histogram | s | `http.request.method`, `http.response.status_code`, `error.type` |
/// | `resile.call.duration` | histogram | s | the same, per call of the outermost layer when an attempt layer also records |
/// | `resile.retries` | counter | | `reason` |
/// | `resile.retry.give_ups` | counter | | `reason` |
/// | `resile.breaker.transitions` | counter | | `from`, `to` |
/// | `resile.server_pauses` | counter | | |
///
/// The duration histogram follows OpenTelemetry's HTTP conventions: one record per HTTP
/// request sent (per attempt when an attempt layer records, otherwise per call), the method
/// as sent (`_OTHER` for a non-standard one), the status code, and `error.type` set to the
/// [`ErrorKind`] name for errors and to the status code for answers of 400 and above (500 and
/// above on the server side). Cardinality is bounded by design: no path, URL or host.
#[derive(Debug, Clone, Copy)]
pub struct MetricsExporter {
    server: bool,
}

impl MetricsExporter {
    /// Names for a client (`http.client.request.duration`).
    pub fn client() -> Self {
        MetricsExporter { server: false }
    }

    /// Names for a server (`http.server.request.duration`).
    pub fn server() -> Self {
        MetricsExporter { server: true }
    }

    pub(crate) fn request(
        &self,
        view: View,
        attempts_recorded: bool,
        method: Option<&Method>,
        outcome: Result<StatusCode, ErrorKind>,
        latency: u64,
    ) {
        let name = match (view, attempts_recorded, self.server) {
            (View::Requests, true, _) => "resile.call.duration",
            (_, _, true) => "http.server.request.duration",
            (_, _, false) => "http.client.request.duration",
        };
        let method = method.map_or("_OTHER", method_name);
        let secs = Duration::from_nanos(latency).as_secs_f64();
        match outcome {
            Ok(status) => {
                let code = status.as_u16();
                let failed = if self.server {
                    code >= 500
                } else {
                    code >= 400
                };
                let code = status.as_str().to_owned();
                if failed {
                    metrics::histogram!(name,
                        "http.request.method" => method,
                        "http.response.status_code" => code.clone(),
                        "error.type" => code)
                    .record(secs);
                } else {
                    metrics::histogram!(name,
                        "http.request.method" => method,
                        "http.response.status_code" => code)
                    .record(secs);
                }
            }
            Err(kind) => {
                metrics::histogram!(name,
                    "http.request.method" => method,
                    "error.type" => kind.as_str())
                .record(secs);
            }
        }
    }

    pub(crate) fn event(&self, event: &Event) {
        match *event {
            Event::Retry { reason } => {
                metrics::counter!("resile.retries", "reason" => reason).increment(1)
            }
            Event::GaveUp { reason } => {
                metrics::counter!("resile.retry.give_ups", "reason" => reason).increment(1)
            }
            Event::BreakerTransition { from, to } => {
                metrics::counter!("resile.breaker.transitions", "from" => from, "to" => to)
                    .increment(1)
            }
            Event::ServerPause => metrics::counter!("resile.server_pauses").increment(1),
        }
    }
}

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
