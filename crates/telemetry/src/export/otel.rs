//! The OpenTelemetry metrics API.

use std::fmt;

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::KeyValue;

use crate::export::Record;
use crate::outcome::Event;

/// Exports every request and event through an OpenTelemetry [`Meter`] (feature
/// `opentelemetry`), with the names of the [`export`](crate::export) table.
#[derive(Clone)]
pub struct OtelExporter {
    pub(crate) server: bool,
    duration: Histogram<f64>,
    call_duration: Histogram<f64>,
    retries: Counter<u64>,
    give_ups: Counter<u64>,
    transitions: Counter<u64>,
    pauses: Counter<u64>,
}

impl OtelExporter {
    /// Instruments for a client (`http.client.request.duration`) from `meter`.
    pub fn client(meter: &Meter) -> Self {
        OtelExporter::new(meter, false)
    }

    /// Instruments for a server (`http.server.request.duration`) from `meter`.
    pub fn server(meter: &Meter) -> Self {
        OtelExporter::new(meter, true)
    }

    fn new(meter: &Meter, server: bool) -> Self {
        let (name, what) = if server {
            (
                "http.server.request.duration",
                "Duration of HTTP server requests.",
            )
        } else {
            (
                "http.client.request.duration",
                "Duration of HTTP client requests.",
            )
        };
        OtelExporter {
            server,
            duration: meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(what)
                .build(),
            call_duration: meter
                .f64_histogram("resile.call.duration")
                .with_unit("s")
                .with_description(
                    "Duration of calls of the outermost layer, every attempt included.",
                )
                .build(),
            retries: meter.u64_counter("resile.retries").build(),
            give_ups: meter.u64_counter("resile.retry.give_ups").build(),
            transitions: meter.u64_counter("resile.breaker.transitions").build(),
            pauses: meter.u64_counter("resile.server_pauses").build(),
        }
    }

    pub(crate) fn record(&self, r: &Record) {
        let mut attrs = Vec::with_capacity(3);
        attrs.push(KeyValue::new("http.request.method", r.method));
        if let Some(s) = r.status {
            attrs.push(KeyValue::new(
                "http.response.status_code",
                i64::from(s.as_u16()),
            ));
        }
        if let Some(e) = &r.error {
            attrs.push(KeyValue::new("error.type", e.as_str().to_owned()));
        }
        let h = if r.call {
            &self.call_duration
        } else {
            &self.duration
        };
        h.record(r.seconds, &attrs);
    }

    pub(crate) fn event(&self, event: &Event) {
        match *event {
            Event::Retry { reason } => self.retries.add(1, &[KeyValue::new("reason", reason)]),
            Event::GaveUp { reason } => self.give_ups.add(1, &[KeyValue::new("reason", reason)]),
            Event::BreakerTransition { from, to } => self
                .transitions
                .add(1, &[KeyValue::new("from", from), KeyValue::new("to", to)]),
            Event::ServerPause => self.pauses.add(1, &[]),
        }
    }
}

impl fmt::Debug for OtelExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelExporter")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}
