//! resile-api-error: what `ErrorForStatusLayer` adds to a success, and what reading and parsing
//! a 1 KiB error body costs.
//!
//! - `api_error/success`: `poll_ready` + `call` + completing the future over a service that is
//!   always ready and answers `200` at once, bare and through the layer (the body is never
//!   touched);
//! - `api_error/parse_1kib`: `ApiErrorReader::read` of a `400` whose body is 1 KiB of
//!   `{"errors": ["...", ...]}` (the first recognised shape), polled by hand to completion:
//!   the body collected, parsed with serde_json, the messages bounded, the headers read, and
//!   the `ApiError` dropped (the response is built outside the measured part).
//!
//! Futures are polled by hand with a no-op waker, outside a runtime (so no timer is armed).

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{Request, Response};
use http_body_util::{Empty, Full};
use resile_api_error::{ApiErrorReader, ErrorForStatusLayer};
use tower::{Layer, Service};

#[derive(Clone, Copy, Debug)]
struct Ok200;

impl Service<Request<()>> for Ok200 {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Empty<Bytes>>, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(Empty::new())))
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn one_call<S>(svc: &mut S) -> S::Response
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    while svc.poll_ready(&mut cx).is_pending() {}
    block_on(svc.call(Request::new(()))).expect("a success")
}

fn success(c: &mut Criterion) {
    let mut group = c.benchmark_group("api_error/success");
    let mut bare = Ok200;
    let mut ours = ErrorForStatusLayer::new().layer(Ok200);
    group.bench_function("bare", |b| b.iter(|| black_box(one_call(&mut bare))));
    group.bench_function("error_for_status", |b| {
        b.iter(|| black_box(one_call(&mut ours)))
    });
    group.finish();
}

fn parse(c: &mut Criterion) {
    let mut body = String::from(r#"{"errors": ["#);
    let mut i = 0;
    while body.len() < 1000 {
        body.push_str(&format!(r#""field {i} must be a positive integer", "#));
        i += 1;
    }
    body.push_str(r#""VLANs are not enabled for this network"]}"#);
    let body = Bytes::from(body);
    assert!(body.len() >= 1024 && body.len() < 1100, "{}", body.len());
    let reader = ApiErrorReader::new();
    let mut group = c.benchmark_group("api_error/parse_1kib");
    group.bench_function("read_and_parse", |b| {
        b.iter_batched(
            // The response as a client hands it over: built outside the measured part.
            || {
                Response::builder()
                    .status(400)
                    .header("content-type", "application/json")
                    .header("x-request-id", "7f3a")
                    .body(Full::new(body.clone()))
                    .expect("a response")
            },
            |res| {
                let e = block_on(reader.read(res));
                assert_eq!(e.messages().len(), 16);
                e
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, success, parse);
criterion_main!(benches);
