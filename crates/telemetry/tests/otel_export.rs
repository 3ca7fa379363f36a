//! The OpenTelemetry exporter, seen through the SDK's in-memory exporter.
#![cfg(feature = "opentelemetry")]

use std::convert::Infallible;

use http::{Request, Response};
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use resile_telemetry::{Event, OtelExporter, Telemetry};
use tower::{service_fn, Layer, ServiceExt};

/// (metric name, sorted attributes, count or sum) of one data point.
type Point = (String, Vec<(String, String)>, u64);

/// Every data point exported.
fn points(metrics: &[ResourceMetrics]) -> Vec<Point> {
    let mut out = Vec::new();
    for rm in metrics {
        for sm in rm.scope_metrics() {
            for m in sm.metrics() {
                let name = m.name().to_owned();
                let attrs = |it: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
                    let mut v: Vec<(String, String)> = it
                        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                        .collect();
                    v.sort();
                    v
                };
                match m.data() {
                    AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                        for p in h.data_points() {
                            out.push((name.clone(), attrs(&mut p.attributes()), p.count()));
                        }
                    }
                    AggregatedMetrics::U64(MetricData::Sum(s)) => {
                        for p in s.data_points() {
                            out.push((name.clone(), attrs(&mut p.attributes()), p.value()));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn requests_and_events_reach_the_meter_with_the_conventional_names() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let meter = provider.meter("resile-test");
    let telemetry = Telemetry::builder()
        .opentelemetry(OtelExporter::client(&meter))
        .build();
    let svc = telemetry
        .layer()
        .layer(service_fn(|req: Request<()>| async move {
            let status = if req.uri().path() == "/down" {
                503
            } else {
                200
            };
            Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
        }));
    for path in ["/", "/", "/down"] {
        svc.clone()
            .oneshot(Request::get(path).body(()).unwrap())
            .await
            .unwrap();
    }
    telemetry.record_event(Event::BreakerTransition {
        from: "closed",
        to: "open",
    });
    provider.force_flush().unwrap();
    let seen = points(&exporter.get_finished_metrics().unwrap());
    let find = |name: &str, attrs: &[(&str, &str)]| {
        seen.iter()
            .find(|(n, a, _)| n == name && *a == kv(attrs))
            .map(|(_, _, v)| *v)
            .unwrap_or_else(|| panic!("{name} {attrs:?} not in {seen:#?}"))
    };
    assert_eq!(
        find(
            "http.client.request.duration",
            &[
                ("http.request.method", "GET"),
                ("http.response.status_code", "200")
            ]
        ),
        2
    );
    assert_eq!(
        find(
            "http.client.request.duration",
            &[
                ("http.request.method", "GET"),
                ("http.response.status_code", "503"),
                ("error.type", "503")
            ]
        ),
        1
    );
    assert_eq!(
        find(
            "resile.breaker.transitions",
            &[("from", "closed"), ("to", "open")]
        ),
        1
    );
}
