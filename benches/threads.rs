//! Driving a service by hand from one or more threads, for the in-process benches.

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use http::{Request, Response};
use tower::Service;

/// Always ready; answers 200.
#[derive(Clone, Copy, Debug)]
pub struct Ok200;

impl Service<Request<()>> for Ok200 {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(())))
    }
}

/// One `poll_ready` + `call` + the future polled to completion (a pending one polled again).
pub fn one_call<S>(svc: &mut S, cx: &mut Context<'_>) -> Response<()>
where
    S: Service<Request<()>, Response = Response<()>>,
{
    call_with(svc, cx, Request::new(()))
}

/// [`one_call`] with `req`.
pub fn call_with<S>(svc: &mut S, cx: &mut Context<'_>, req: Request<()>) -> Response<()>
where
    S: Service<Request<()>, Response = Response<()>>,
{
    loop {
        match svc.poll_ready(cx) {
            Poll::Ready(Ok(())) => break,
            Poll::Ready(Err(_)) => panic!("a call of the steady path failed"),
            Poll::Pending => std::hint::spin_loop(),
        }
    }
    let mut fut = pin!(svc.call(req));
    loop {
        match fut.as_mut().poll(cx) {
            Poll::Ready(Ok(res)) => return res,
            Poll::Ready(Err(_)) => panic!("a call of the steady path failed"),
            Poll::Pending => std::hint::spin_loop(),
        }
    }
}

/// `iters` calls on each of `threads` clones of `svc`, started together; the slowest thread's
/// time.
pub fn run<S>(svc: &S, threads: usize, iters: u64) -> Duration
where
    S: Service<Request<()>, Response = Response<()>> + Clone + Send,
{
    if threads == 1 {
        let mut svc = svc.clone();
        let mut cx = Context::from_waker(Waker::noop());
        // Warm the clone (its first calls may set up per-clone state).
        for _ in 0..4 {
            black_box(one_call(&mut svc, &mut cx));
        }
        let start = Instant::now();
        for _ in 0..iters {
            black_box(one_call(&mut svc, &mut cx));
        }
        return start.elapsed();
    }
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let mut svc = svc.clone();
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut cx = Context::from_waker(Waker::noop());
                    for _ in 0..4 {
                        black_box(one_call(&mut svc, &mut cx));
                    }
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(one_call(&mut svc, &mut cx));
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}
