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

use super::{keeper, AttemptTimeout, AttemptTimeoutLayer, Elapsed};
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

/// An attempt answered after `after` through a layer of `timeout`, on the current runtime.
async fn answered_after(timeout: Duration, after: Duration) {
    let svc = AttemptTimeoutLayer::new(timeout).layer(service_fn(move |_: ()| async move {
        tokio::time::sleep(after).await;
        Ok::<_, Infallible>(())
    }));
    svc.oneshot(()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_pending_attempt_starts_a_keeper_that_stops_when_idle() {
    assert!(keeper::current().is_none());
    answered_after(Duration::from_secs(10), Duration::from_millis(100)).await;
    let k = keeper::current().expect("a keeper for this runtime");
    assert_eq!(k.round_for_test(), Duration::from_secs(5));
    // Still there while attempts keep coming, one per round.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        answered_after(Duration::from_secs(10), Duration::from_millis(1)).await;
        assert!(keeper::current().is_some());
    }
    // Gone after `IDLE_ROUNDS` rounds without one.
    tokio::time::sleep(Duration::from_secs(5) * (keeper::IDLE_ROUNDS + 1)).await;
    assert!(keeper::current().is_none());
    // The next attempt starts a new one.
    answered_after(Duration::from_secs(10), Duration::from_millis(1)).await;
    assert!(keeper::current().is_some());
}

#[tokio::test(start_paused = true)]
async fn an_attempt_answered_at_once_starts_no_keeper() {
    let svc = AttemptTimeoutLayer::new(Duration::from_secs(10)).layer(service_fn(|_: ()| {
        std::future::ready(Ok::<_, Infallible>(()))
    }));
    svc.oneshot(()).await.unwrap();
    assert!(keeper::current().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_timeout_under_twice_the_shortest_round_is_not_served() {
    answered_after(
        keeper::MIN_ROUND * 2 - Duration::from_millis(1),
        Duration::from_millis(1),
    )
    .await;
    assert!(keeper::current().is_none());
    answered_after(keeper::MIN_ROUND * 2, Duration::from_millis(1)).await;
    assert_eq!(
        keeper::current().unwrap().round_for_test(),
        keeper::MIN_ROUND
    );
}

#[tokio::test(start_paused = true)]
async fn a_shorter_timeout_shortens_the_round() {
    answered_after(Duration::from_secs(10), Duration::from_millis(1)).await;
    answered_after(Duration::from_secs(1), Duration::from_millis(1)).await;
    assert_eq!(
        keeper::current().unwrap().round_for_test(),
        Duration::from_millis(500)
    );
    // A longer one does not lengthen it.
    answered_after(Duration::from_secs(30), Duration::from_millis(1)).await;
    assert_eq!(
        keeper::current().unwrap().round_for_test(),
        Duration::from_millis(500)
    );
}

#[tokio::test(start_paused = true)]
async fn the_keeper_never_changes_when_an_attempt_times_out() {
    // Rounds of 1.5 s fire inside a 3 s attempt: it still times out at 3 s exactly, and one that
    // answers at 2.9 s is returned.
    let start = Instant::now();
    let svc = AttemptTimeoutLayer::new(Duration::from_secs(3)).layer(service_fn(|_: ()| async {
        std::future::pending::<Result<(), Infallible>>().await
    }));
    let err = svc.oneshot(()).await.unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert!(keeper::current().is_some());
    answered_after(Duration::from_secs(3), Duration::from_millis(2900)).await;
}

#[test]
fn a_keeper_ends_with_its_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let id = rt.block_on(async {
        answered_after(Duration::from_secs(10), Duration::from_millis(1)).await;
        assert!(keeper::current().is_some());
        tokio::runtime::Handle::current().id()
    });
    drop(rt);
    assert!(!keeper::exists(id));
}

/// Polls `fut` once, in the current task.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
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

#[tokio::test(start_paused = true)]
async fn an_answered_attempt_leaves_nothing_on_the_keepers_board() {
    answered_after(Duration::from_secs(10), Duration::from_millis(5)).await;
    let k = keeper::current().expect("a keeper");
    assert_eq!(k.posted_for_test(), 0);
    // A pending attempt is on it until it times out, then gone.
    let mut pending = tokio::spawn(never_answers(Duration::from_secs(10)).oneshot(()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(k.posted_for_test(), 1);
    assert!(poll_once(&mut pending).await.is_pending());
    let err = pending.await.unwrap().unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
    assert_eq!(k.posted_for_test(), 0);
    // One dropped while pending frees its slot too.
    let dropped = tokio::spawn(never_answers(Duration::from_secs(10)).oneshot(()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(k.posted_for_test(), 1);
    dropped.abort();
    let _ = dropped.await;
    assert_eq!(k.posted_for_test(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_shorter_timeout_than_the_keepers_plan_still_fires_on_time() {
    // The keeper plans its next walk 5 s ahead; an attempt of 1 s asks for an earlier one.
    answered_after(Duration::from_secs(10), Duration::from_millis(1)).await;
    let start = Instant::now();
    let err = never_answers(Duration::from_secs(1))
        .oneshot(())
        .await
        .unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn attempts_beyond_the_board_keep_time_themselves() {
    // More attempts pending at once than the board has slots: every one times out on time.
    let start = Instant::now();
    let svc = never_answers(Duration::from_secs(2));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..keeper::SLOTS + 100 {
        set.spawn(svc.clone().oneshot(()));
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(keeper::current().unwrap().posted_for_test(), keeper::SLOTS);
    let mut timed_out = 0;
    while let Some(res) = set.join_next().await {
        let err = res.unwrap().unwrap_err();
        assert!(err.is::<Elapsed>(), "{err}");
        timed_out += 1;
    }
    assert_eq!(timed_out, keeper::SLOTS + 100);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[test]
fn an_attempt_outliving_its_keepers_runtime_keeps_time_itself() {
    let paused = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    };
    // Posted on the first runtime's keeper, then that runtime is dropped.
    let first = paused();
    let mut fut = Box::pin(never_answers(Duration::from_secs(10)).oneshot(()));
    first.block_on(async {
        answered_after(Duration::from_secs(10), Duration::from_millis(1)).await;
        assert!(poll_once(&mut fut).await.is_pending());
        assert_eq!(keeper::current().unwrap().posted_for_test(), 1);
    });
    drop(first);
    // Polled on another runtime, it times out with a timer of its own (it is not left waiting
    // for a keeper that is gone).
    let second = paused();
    let err = second
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), fut).await })
        .expect("timed out by its own timer, not hanging")
        .unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn an_attempt_polled_by_another_task_is_woken_there_when_due() {
    // First polled (and posted) from this task, then awaited by a spawned one: its waker
    // changes, and the keeper must wake the new task, not the first.
    answered_after(Duration::from_secs(10), Duration::from_millis(1)).await;
    let mut fut = Box::pin(never_answers(Duration::from_secs(10)).oneshot(()));
    let start = Instant::now();
    assert!(poll_once(&mut fut).await.is_pending());
    assert_eq!(keeper::current().unwrap().posted_for_test(), 1);
    let task = tokio::spawn(fut);
    let err = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("woken when due, not hanging")
        .expect("the task ran")
        .unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(keeper::current().unwrap().posted_for_test(), 0);
}
