//! The telemetry layer over a bare in-process service: `poll_ready` + `call` + completing the
//! future (which records the status code and the latency, two clock reads included), on an
//! inner service that is always ready and answers `200` at once.
//!
//! Three services in the same criterion group, at 1 and 2 threads:
//!
//! - `bare`: the inner service alone;
//! - `resile`: resile-telemetry's `TelemetryLayer` with the defaults (tokio's clock, 10 s
//!   intervals, windows of 1 and 5 minutes, the default alerts);
//! - `resile-quanta`: the same with `.clock(QuantaClock::new())` (the CPU's time-stamp counter:
//!   its two clock reads cost a quarter of `Instant::now`'s);
//! - `metrics-prometheus`: the same facts recorded per request the way services commonly do:
//!   a hand-written layer that reads `Instant::now()` at `call` and, when the future completes,
//!   records the latency in seconds into the `metrics` histogram
//!   `http.client.request.duration` with the method and status code as labels, with
//!   `metrics-exporter-prometheus`'s recorder installed as the global recorder.
//!
//! At 2 threads each thread drives its own clone of the service (sharing one telemetry or one
//! recorder), both start together, and the figure is wall time divided by the calls of one
//! thread. Futures are polled by hand with a no-op waker, so no executor cost is measured.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready as ready_poll, Context, Poll};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::{Method, Request, Response};
use pin_project_lite::pin_project;
use resile_benches::threads::{run, Ok200};
use resile_ratelimit::clock::QuantaClock;
use resile_telemetry::Telemetry;
use tower::{Layer, Service};

/// The hand-written `metrics` layer (see the module docs).
#[derive(Clone, Copy, Debug)]
struct Metered<S> {
    inner: S,
}

pin_project! {
    struct MeteredFuture<F> {
        #[pin]
        inner: F,
        start: Instant,
        method: Method,
    }
}

impl<S> Service<Request<()>> for Metered<S>
where
    S: Service<Request<()>, Response = Response<()>>,
{
    type Response = Response<()>;
    type Error = S::Error;
    type Future = MeteredFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<()>) -> Self::Future {
        MeteredFuture {
            start: Instant::now(),
            method: req.method().clone(),
            inner: self.inner.call(req),
        }
    }
}

impl<F, E> Future for MeteredFuture<F>
where
    F: Future<Output = Result<Response<()>, E>>,
{
    type Output = Result<Response<()>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready_poll!(this.inner.poll(cx));
        if let Ok(res) = &out {
            metrics::histogram!("http.client.request.duration",
                "http.request.method" => this.method.as_str().to_owned(),
                "http.response.status_code" => res.status().as_str().to_owned())
            .record(this.start.elapsed().as_secs_f64());
        }
        Poll::Ready(out)
    }
}

fn record_path(c: &mut Criterion) {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder of this bench");

    let mut group = c.benchmark_group("telemetry/record");
    let bare = Ok200;
    let telemetry = Telemetry::new();
    let ours = telemetry.layer().layer(Ok200);
    let quanta = Telemetry::builder().clock(QuantaClock::new()).build();
    let ours_quanta = quanta.layer().layer(Ok200);
    let peer = Metered { inner: Ok200 };
    for threads in [1usize, 2] {
        group.bench_function(BenchmarkId::new("bare", threads), |b| {
            b.iter_custom(|iters| run(&bare, threads, iters))
        });
        group.bench_function(BenchmarkId::new("resile", threads), |b| {
            b.iter_custom(|iters| run(&ours, threads, iters))
        });
        group.bench_function(BenchmarkId::new("resile-quanta", threads), |b| {
            b.iter_custom(|iters| run(&ours_quanta, threads, iters))
        });
        group.bench_function(BenchmarkId::new("metrics-prometheus", threads), |b| {
            b.iter_custom(|iters| run(&peer, threads, iters))
        });
    }
    group.finish();
    // Both recorded what they were asked to: the bench measured real recording.
    assert!(telemetry.report().requests.total.status(200) > 0);
    assert!(handle.render().contains("http_client_request_duration"));
}

criterion_group!(benches, record_path);
criterion_main!(benches);
