//! The `metrics` facade.

use crate::export::Record;
use crate::outcome::Event;

/// Exports every request and event through the [`metrics`] facade (feature `metrics`), to
/// whatever recorder the application installed (Prometheus, StatsD, ...), with the names of the
/// [`export`](crate::export) table.
#[derive(Debug, Clone, Copy)]
pub struct MetricsExporter {
    pub(crate) server: bool,
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

    pub(crate) fn record(&self, r: &Record) {
        let mut labels = Vec::with_capacity(3);
        labels.push(metrics::Label::new("http.request.method", r.method));
        if let Some(s) = r.status {
            labels.push(metrics::Label::new(
                "http.response.status_code",
                s.as_str().to_owned(),
            ));
        }
        if let Some(e) = &r.error {
            labels.push(metrics::Label::new("error.type", e.as_str().to_owned()));
        }
        metrics::histogram!(r.name(self.server), labels).record(r.seconds);
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
