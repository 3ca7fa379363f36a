//! The `metrics` exporter, seen through metrics-util's debugging recorder.
#![cfg(feature = "metrics")]

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use resile_telemetry::{Event, MetricsExporter, Telemetry};
use tower::{service_fn, Layer, ServiceExt};

/// (kind, name, sorted labels, value) of every metric recorded.
type Seen = Vec<(MetricKind, String, Vec<(String, String)>, DebugValue)>;

fn record(
    f: impl FnOnce(Telemetry) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
) -> Seen {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let telemetry = Telemetry::builder()
            .metrics(MetricsExporter::client())
            .build();
        rt.block_on(f(telemetry));
    });
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let kind = key.kind();
            let (name, labels) = key.into_parts().1.into_parts();
            let mut labels: Vec<(String, String)> = labels
                .into_iter()
                .map(|l| {
                    let (k, v) = l.into_parts();
                    (k.to_string(), v.to_string())
                })
                .collect();
            labels.sort();
            (kind, name.as_str().to_owned(), labels, value)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn requests_are_exported_with_opentelemetry_names_and_attributes() {
    let seen = record(|telemetry| {
        Box::pin(async move {
            let svc = telemetry
                .layer()
                .layer(service_fn(|req: Request<()>| async move {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let status = if req.method() == http::Method::POST {
                        503
                    } else {
                        200
                    };
                    Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
                }));
            svc.clone()
                .oneshot(Request::get("/").body(()).unwrap())
                .await
                .unwrap();
            svc.oneshot(Request::post("/").body(()).unwrap())
                .await
                .unwrap();
            telemetry.record_event(Event::Retry {
                reason: "status_503",
            });
            telemetry.record_event(Event::BreakerTransition {
                from: "closed",
                to: "open",
            });
        })
    });
    let find = |name: &str, l: &[(&str, &str)]| {
        seen.iter()
            .find(|(_, n, ls, _)| n == name && *ls == labels(l))
            .unwrap_or_else(|| panic!("{name} {l:?} not in {seen:#?}"))
    };
    let (kind, _, _, value) = find(
        "http.client.request.duration",
        &[
            ("http.request.method", "GET"),
            ("http.response.status_code", "200"),
        ],
    );
    assert_eq!(*kind, MetricKind::Histogram);
    let DebugValue::Histogram(values) = value else {
        panic!("not a histogram");
    };
    assert_eq!(values.len(), 1);
    // tokio's timer fires on whole milliseconds: within one of the 250 ms slept.
    assert!(
        (values[0].into_inner() - 0.25).abs() < 1e-3,
        "seconds: {values:?}"
    );
    find(
        "http.client.request.duration",
        &[
            ("http.request.method", "POST"),
            ("http.response.status_code", "503"),
            ("error.type", "503"),
        ],
    );
    let (kind, _, _, value) = find("resile.retries", &[("reason", "status_503")]);
    assert_eq!(
        (*kind, value),
        (MetricKind::Counter, &DebugValue::Counter(1))
    );
    find(
        "resile.breaker.transitions",
        &[("from", "closed"), ("to", "open")],
    );
}

#[test]
fn errors_carry_their_kind_and_no_status() {
    let seen = record(|telemetry| {
        Box::pin(async move {
            let svc = telemetry
                .layer()
                .layer(service_fn(|_: Request<()>| async move {
                    Err::<Response<()>, std::io::Error>(
                        std::io::ErrorKind::ConnectionRefused.into(),
                    )
                }));
            svc.oneshot(Request::get("/").body(()).unwrap())
                .await
                .unwrap_err();
        })
    });
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1, "http.client.request.duration");
    assert_eq!(
        seen[0].2,
        labels(&[("http.request.method", "GET"), ("error.type", "connect")])
    );
}
