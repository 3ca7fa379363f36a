//! An axum server exports its telemetry as Prometheus text on `/metrics`; a real HTTP client
//! sends it requests, scrapes the page, and parses what it counted.
#![cfg(all(feature = "metrics", feature = "reqwest"))]

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use resile_telemetry::{MetricsExporter, Telemetry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_the_requests_by_method_and_status() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let prometheus = recorder.handle();
    metrics::set_global_recorder(recorder).unwrap();

    let telemetry = Telemetry::builder()
        .metrics(MetricsExporter::server())
        .build();
    let api = Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route("/down", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .layer(telemetry.layer());
    let app = api.route(
        "/metrics",
        get(move || {
            let p = prometheus.clone();
            async move { p.render() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for (path, n) in [("/ok", 5), ("/down", 3)] {
        for _ in 0..n {
            client
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap();
        }
    }
    let text = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // `name{labels} value` lines of the duration histogram's `_count` series.
    let counts: HashMap<String, f64> = text
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_count{"))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect();
    let find = |status: &str| {
        counts
            .iter()
            .find(|(s, _)| {
                s.contains(&format!("http_response_status_code=\"{status}\""))
                    && s.contains("http_request_method=\"GET\"")
            })
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no series for {status} in:\n{text}"))
    };
    assert_eq!(find("200"), 5.0);
    assert_eq!(find("503"), 3.0);
    assert!(
        counts.keys().any(|s| s.contains("error_type=\"503\"")),
        "{text}"
    );
    // The report agrees with the scrape.
    let report = telemetry.report();
    assert_eq!(report.requests.total.status(200), 5);
    assert_eq!(report.requests.total.status(503), 3);
}
