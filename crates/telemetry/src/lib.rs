//! Status-code telemetry for tower HTTP clients and servers: what the API is doing, in the
//! figures API guides say to watch — success rate, 4xx and 5xx rates, the share of gateway
//! errors, transport errors, the distribution by status code and error kind, latency
//! quantiles, their trend over time — and alerts on them.
//!
//! [`TelemetryLayer`] wraps any `Service<http::Request<B>>` answering `http::Response` (and,
//! with the `reqwest` feature, reqwest's types). Per request it records the status code (exact
//! for 100-599, else "other") or the [`ErrorKind`], and the latency to the response head. The
//! request path takes no lock and allocates nothing: a few atomic additions into the current
//! interval's slot. [`Telemetry::report`] adds them up.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use resile_telemetry::Telemetry;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let telemetry = Telemetry::new();
//! let svc = ServiceBuilder::new()
//!     .layer(telemetry.layer())
//!     .service(service_fn(|req: Request<()>| async move {
//!         let status = if req.uri().path() == "/missing" { 404 } else { 200 };
//!         Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
//!     }));
//! for path in ["/", "/", "/missing"] {
//!     let req = Request::get(path).body(()).unwrap();
//!     svc.clone().oneshot(req).await.unwrap();
//! }
//! let report = telemetry.report();
//! assert_eq!(report.requests.total.requests, 3);
//! assert_eq!(report.requests.total.status(404), 1);
//! println!("{report}");
//! # }
//! ```
//!
//! # Where to put the layer
//!
//! - **Outermost** ([`Telemetry::layer`]): what callers saw, one record per call after every
//!   retry, local rejections (an open breaker, a limiter's refusal) included.
//! - **Inside the retry layer** ([`Telemetry::attempt_layer`]): what the server answered, one
//!   record per attempt. With both, the report shows both views and the resend ratio.
//!
//! The `resile` crate's client stack does both with `.telemetry(&telemetry)` and also records
//! the breaker's transitions. Retry events come from the retry policy's hooks:
//! `on_retry(move |e| telemetry.record_event(Event::Retry { reason: .. }))`.
//!
//! # Windows, trends and alerts
//!
//! Time is cut into intervals (10 s by default). The report gives totals since the start,
//! figures over rolling windows (1 and 5 minutes by default; a window covers the current
//! interval and the ones before it), and one trend point per interval over the longest window.
//! Alert rules ([`AlertRule`]) are evaluated when an interval closes, never per request: by the
//! first request of the next interval, by [`Telemetry::tick`], or by a report. Each rule raises
//! above one threshold and clears below a lower one.
//!
//! Memory is fixed when the telemetry is built: about 7 KiB per interval kept and per view.
//!
//! # Errors
//!
//! An error is classified through its source chain ([`ErrorKind::of`]) when the service's error
//! type is `BoxError`, `std::io::Error`, or hyper's, hyper-util's or reqwest's error; any
//! other error type counts as [`ErrorKind::Transport`]. A response future dropped before it
//! completes counts as [`ErrorKind::Cancelled`].
//!
//! # Features
//!
//! - `hyper` (default): recognise hyper and hyper-util errors.
//! - `reqwest`: record reqwest clients.
//! - `metrics`: export through the `metrics` facade with OpenTelemetry's names
//!   (`MetricsExporter`, see [`export`]);
//! - `opentelemetry`: export through an OpenTelemetry `Meter` (`OtelExporter`).
//! - `serde`: `Serialize` for [`Report`].
#![cfg_attr(docsrs, feature(doc_cfg))]

mod alert;
pub mod export;
mod future;
mod handle;
mod histogram;
mod layer;
mod outcome;
mod report;
mod service;
mod window;

pub use alert::{AlertEvent, AlertRule, AlertState};
#[cfg(feature = "metrics")]
pub use export::MetricsExporter;
#[cfg(feature = "opentelemetry")]
pub use export::OtelExporter;
pub use future::ResponseFuture;
pub use handle::{Telemetry, TelemetryBuilder, MAX_INTERVALS};
pub use histogram::Latency;
pub use layer::TelemetryLayer;
pub use outcome::{ErrorKind, Event};
pub use report::{ErrorCount, Events, Figures, Report, StatusCount, TrendPoint, ViewReport};
pub use service::TelemetryService;
pub use window::View;

#[cfg(test)]
mod tests;

// The README (shown on crates.io): its example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
