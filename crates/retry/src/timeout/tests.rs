use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tokio::time::Instant;
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};

use super::{AttemptTimeout, AttemptTimeoutLayer, Elapsed};
use crate::{BoxError, Constant, RetryLayer, RetryPolicy};

#[test]
fn ready_at_once_needs_no_runtime_and_no_timer() {
    // No tokio runtime here: creating a timer would panic. A response ready on the first poll
    // never creates one.
    let mut svc = AttemptTimeoutLayer::new(Duration::from_millis(1)).layer(service_fn(|n: u32| {
        std::future::ready(Ok::<_, Infallible>(n + 1))
    }));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    let fut = pin!(svc.call(41));
    match fut.poll(&mut cx) {
        Poll::Ready(Ok(42)) => {}
        other => panic!("expected Ready(Ok(42)), got {:?}", other.map(|r| r.is_ok())),
    }
}

#[test]
fn an_error_ready_at_once_is_passed_through() {
    let svc = AttemptTimeout::new(
        service_fn(|_: ()| std::future::ready(Err::<(), _>(std::io::Error::other("boom")))),
        Duration::from_secs(1),
    );
    let mut cx = Context::from_waker(Waker::noop());
    let mut svc = svc;
    let fut = pin!(svc.call(()));
    match fut.poll(&mut cx) {
        Poll::Ready(Err(e)) => {
            assert!(e.is::<std::io::Error>(), "{e}");
            assert!(!e.is::<Elapsed>());
        }
        _ => panic!("expected the inner error"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_pending_call_times_out_after_the_duration() {
    let svc = AttemptTimeoutLayer::new(Duration::from_secs(3)).layer(service_fn(|_: ()| async {
        std::future::pending::<Result<(), Infallible>>().await
    }));
    let start = Instant::now();
    let err = svc.oneshot(()).await.unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    // Classified as a timeout, like tower's.
    assert_eq!(
        resile_classify::transport_failure(&*err),
        resile_classify::TransportFailure::Timeout
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_answer_inside_the_bound_is_returned() {
    let svc =
        AttemptTimeoutLayer::new(Duration::from_secs(3)).layer(service_fn(|n: u32| async move {
            tokio::time::sleep(Duration::from_millis(2_999)).await;
            Ok::<_, Infallible>(n * 2)
        }));
    let start = Instant::now();
    assert_eq!(svc.oneshot(21).await.unwrap(), 42);
    assert_eq!(start.elapsed(), Duration::from_millis(2_999));
}

#[tokio::test(start_paused = true)]
async fn the_clock_starts_at_the_first_poll() {
    let mut svc =
        AttemptTimeoutLayer::new(Duration::from_secs(2)).layer(service_fn(|_: ()| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok::<_, Infallible>(())
        }));
    let fut = svc.ready().await.unwrap().call(());
    // Called but not polled for 5 s: the attempt has not started its work either.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let start = Instant::now();
    let err = fut.await.unwrap_err();
    assert!(err.is::<Elapsed>());
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn an_unrepresentable_deadline_never_fires() {
    let svc = AttemptTimeoutLayer::new(Duration::MAX).layer(service_fn(|_: ()| async {
        tokio::time::sleep(Duration::from_secs(86_400)).await;
        Ok::<_, Infallible>(7)
    }));
    assert_eq!(svc.oneshot(()).await.unwrap(), 7);
}

#[tokio::test(start_paused = true)]
async fn readiness_is_the_inner_services() {
    let (mock, mut handle) = tower_test::mock::pair::<(), ()>();
    let mut svc = AttemptTimeoutLayer::new(Duration::from_secs(1)).layer(mock);
    handle.allow(0);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_pending());
    handle.allow(1);
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    handle.send_error(std::io::Error::other("down"));
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Err(e)) => assert_eq!(e.to_string(), "down"),
        _ => panic!("expected the inner readiness error"),
    }
}

#[tokio::test(start_paused = true)]
async fn inside_the_retry_layer_a_timed_out_get_is_retried() {
    // The first attempt hangs, the second answers at once.
    let calls = Arc::new(AtomicU32::new(0));
    let backend = {
        let calls = calls.clone();
        service_fn(move |_req: Request<String>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, Infallible>(Response::new(String::new()))
            }
        })
    };
    let policy = RetryPolicy::builder()
        .backoff(Constant::new(Duration::from_millis(100)).max_retries(2))
        .build();
    let client = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .layer(AttemptTimeoutLayer::new(Duration::from_secs(1)))
        .service(backend);
    let start = Instant::now();
    let res = client
        .clone()
        .oneshot(
            Request::get("http://example.com/")
                .body(String::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(start.elapsed(), Duration::from_millis(1_100));

    // A POST that times out is not retried (it may have been processed).
    calls.store(0, Ordering::SeqCst);
    let err: BoxError = client
        .oneshot(
            Request::post("http://example.com/")
                .body(String::new())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn the_layer_is_a_small_config_value() {
    let layer = AttemptTimeoutLayer::new(Duration::from_millis(250));
    let copy = layer;
    assert_eq!(copy.timeout(), Duration::from_millis(250));
    assert_eq!(layer, copy);
    assert!(format!("{layer:?}").contains("250ms"));
    assert_eq!(layer.to_string(), "attempt timeout of 250ms");
    let svc = layer.layer(());
    assert_eq!(svc.timeout(), Duration::from_millis(250));
    assert!(format!("{:?}", svc).contains("AttemptTimeout"));
}

/// An attempt that never answers, through a layer of `timeout`.
fn never_answers(
    timeout: Duration,
) -> AttemptTimeout<
    impl Service<(), Response = (), Error = Infallible, Future = impl Future + Send> + Clone,
> {
    AttemptTimeoutLayer::new(timeout).layer(service_fn(|_: ()| async {
        std::future::pending::<Result<(), Infallible>>().await
    }))
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `fut` once, in the current task.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}

#[test]
fn an_attempt_on_a_second_runtime_of_the_same_thread_times_out_on_time() {
    // One thread, one runtime per client (a blocking wrapper does this). The first runtime
    // runs an attempt that is pending for a moment, then answered.
    let first = current_thread();
    first.block_on(async {
        let svc =
            AttemptTimeoutLayer::new(Duration::from_millis(300)).layer(service_fn(|_: ()| async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok::<_, Infallible>(())
            }));
        svc.oneshot(()).await.unwrap();
    });
    // The second runtime, on the same thread, sends to a backend that never answers. Real
    // time: the second runtime is the only one driven.
    let second = current_thread();
    let started = std::time::Instant::now();
    let err = second
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(10),
                never_answers(Duration::from_millis(300)).oneshot(()),
            )
            .await
        })
        .expect("the attempt timed out by itself, within 10 s")
        .unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(first);
}

#[test]
fn a_runtime_shut_down_mid_attempt_drops_it_and_the_next_runtime_keeps_time() {
    let first = current_thread();
    let task = first.spawn(never_answers(Duration::from_secs(60)).oneshot(()));
    first.block_on(tokio::task::yield_now());
    // Shut down with the attempt pending: its task (and timer) are dropped, nothing panics.
    drop(first);
    let second = current_thread();
    let err = second
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(10),
                never_answers(Duration::from_millis(50)).oneshot(()),
            )
            .await
        })
        .expect("timed out on time")
        .unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
    // The first attempt's task was cancelled by the shutdown.
    let joined = second.block_on(task);
    assert!(joined.unwrap_err().is_cancelled());
}

#[test]
fn an_attempt_moved_to_another_runtime_re_arms_its_timer_there() {
    let paused = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    };
    // Armed on the first runtime, which is then dropped.
    let first = paused();
    let mut fut = Box::pin(never_answers(Duration::from_secs(10)).oneshot(()));
    first.block_on(async {
        assert!(poll_once(&mut fut).await.is_pending());
    });
    drop(first);
    // Polled on another runtime, it times out there (no panic on the dead runtime's timer, no
    // hang).
    let second = paused();
    let err = second
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), fut).await })
        .expect("timed out by a timer of this runtime, not hanging")
        .unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn an_attempt_polled_by_another_task_is_woken_there_when_due() {
    let mut fut = Box::pin(never_answers(Duration::from_secs(10)).oneshot(()));
    let start = Instant::now();
    assert!(poll_once(&mut fut).await.is_pending());
    let task = tokio::spawn(fut);
    let err = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("woken when due, not hanging")
        .expect("the task ran")
        .unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}
