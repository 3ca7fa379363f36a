//! The async retry loop, on tokio's paused clock: exact virtual time, exact attempt counts.
#![cfg(feature = "tokio")]

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resile_backoff::{retry, Backoff, Constant, Exponential, Jitter};
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq)]
struct Failure {
    attempt: u32,
    retryable: bool,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// 100 ms, ×2, no jitter: 100, 200, 400, ... ms.
fn doubling(max_retries: u32) -> Exponential {
    Exponential::builder()
        .initial(ms(100))
        .multiplier(2.0)
        .max_delay(Duration::from_secs(60))
        .max_retries(max_retries)
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

/// An operation that fails (retryably) `failures` times, then succeeds with the attempt number.
fn flaky(
    failures: u32,
    calls: &Cell<u32>,
) -> impl FnMut() -> std::future::Ready<Result<u32, Failure>> + '_ {
    move || {
        let attempt = calls.get() + 1;
        calls.set(attempt);
        std::future::ready(if attempt <= failures {
            Err(Failure {
                attempt,
                retryable: true,
            })
        } else {
            Ok(attempt)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn succeeds_after_failures_waiting_each_delay() {
    let calls = Cell::new(0);
    let start = Instant::now();
    let result = retry(Constant::new(ms(100)).max_retries(5), flaky(2, &calls)).await;
    assert_eq!(result, Ok(3));
    assert_eq!(calls.get(), 3);
    assert_eq!(start.elapsed(), ms(200));
}

#[tokio::test(start_paused = true)]
async fn first_success_does_not_wait() {
    let calls = Cell::new(0);
    let start = Instant::now();
    assert_eq!(retry(doubling(3), flaky(0, &calls)).await, Ok(1));
    assert_eq!(calls.get(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn gives_up_when_the_backoff_stops_and_returns_the_last_error() {
    let calls = Cell::new(0);
    let start = Instant::now();
    // Fails 50 times: a loop that ignored the backoff's `None` would end in success, not hang.
    let result = retry(doubling(3), flaky(50, &calls)).await;
    // One attempt plus three retries; the error is the fourth attempt's.
    assert_eq!(
        result,
        Err(Failure {
            attempt: 4,
            retryable: true
        })
    );
    assert_eq!(calls.get(), 4);
    assert_eq!(start.elapsed(), ms(100 + 200 + 400));
}

#[tokio::test(start_paused = true)]
async fn zero_retries_means_one_attempt() {
    let calls = Cell::new(0);
    let start = Instant::now();
    let result = retry(doubling(0), flaky(50, &calls)).await;
    assert_eq!(result.unwrap_err().attempt, 1);
    assert_eq!(calls.get(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn non_retryable_error_stops_at_once_without_using_the_backoff() {
    let mut backoff = doubling(5);
    let calls = Cell::new(0);
    let notified = Cell::new(0);
    let start = Instant::now();
    let result = retry(&mut backoff, || {
        calls.set(calls.get() + 1);
        std::future::ready(Err::<(), _>(Failure {
            attempt: calls.get(),
            retryable: false,
        }))
    })
    .when(|err| err.retryable)
    .notify(|_, _| notified.set(notified.get() + 1))
    .await;
    assert_eq!(result.unwrap_err().attempt, 1);
    assert_eq!(calls.get(), 1);
    assert_eq!(notified.get(), 0);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(backoff.attempts(), 0);
}

#[tokio::test(start_paused = true)]
async fn non_retryable_error_after_retries() {
    let calls = Cell::new(0);
    let start = Instant::now();
    let result = retry(doubling(10), || {
        let attempt = calls.get() + 1;
        calls.set(attempt);
        // Two transient failures, then a permanent one.
        std::future::ready(Err::<(), _>(Failure {
            attempt,
            retryable: attempt < 3,
        }))
    })
    .when(|err| err.retryable)
    .await;
    assert_eq!(result.unwrap_err().attempt, 3);
    assert_eq!(calls.get(), 3);
    assert_eq!(start.elapsed(), ms(100 + 200));
}

#[tokio::test(start_paused = true)]
async fn notify_sees_each_error_and_delay_before_the_sleep() {
    let backoff = Exponential::builder()
        .initial(ms(50))
        .max_delay(Duration::from_secs(2))
        .max_retries(6)
        .jitter(Jitter::Full)
        .seed(11)
        .build()
        .unwrap();
    let expected: Vec<Duration> = backoff.clone().collect();
    let start = Instant::now();
    let mut seen = Vec::new();
    let calls = Cell::new(0);
    let result = retry(backoff, flaky(50, &calls))
        .notify(|err: &Failure, delay| seen.push((err.attempt, delay, start.elapsed())))
        .await;
    assert_eq!(result.unwrap_err().attempt, 7);
    assert_eq!(seen.len(), 6);
    let mut slept = Duration::ZERO;
    for (i, (attempt, delay, at)) in seen.iter().enumerate() {
        assert_eq!(*attempt, i as u32 + 1);
        assert_eq!(*delay, expected[i]);
        // Notified before sleeping: nothing of this delay has passed yet. tokio's timer fires
        // on whole milliseconds, so each sleep lasts its delay rounded up to the next one.
        assert!(
            *at >= slept && *at <= slept + ms(i as u64),
            "{at:?} vs {slept:?}"
        );
        slept += *delay;
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= slept && elapsed <= slept + ms(6),
        "{elapsed:?} vs {slept:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn time_spent_in_the_operation_adds_to_the_delays() {
    let calls = Cell::new(0);
    let start = Instant::now();
    let result = retry(Constant::new(ms(100)).max_retries(5), || {
        let attempt = calls.get() + 1;
        calls.set(attempt);
        async move {
            tokio::time::sleep(ms(30)).await;
            if attempt < 3 {
                Err(attempt)
            } else {
                Ok(attempt)
            }
        }
    })
    .await;
    assert_eq!(result, Ok(3));
    assert_eq!(start.elapsed(), ms(3 * 30 + 2 * 100));
}

#[tokio::test(start_paused = true)]
async fn nothing_runs_until_polled() {
    let calls = Cell::new(0);
    let fut = retry(doubling(1), flaky(0, &calls));
    assert_eq!(calls.get(), 0);
    assert!(format!("{fut:?}").contains("idle"));
    assert_eq!(fut.await, Ok(1));
    assert_eq!(calls.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_mid_sleep_stops_retrying() {
    let calls = Cell::new(0);
    let fut = retry(
        Constant::new(ms(100)).no_max_retries(),
        flaky(u32::MAX, &calls),
    );
    let start = Instant::now();
    assert!(tokio::time::timeout(ms(250), fut).await.is_err());
    // Attempts at 0, 100 and 200 ms; the one due at 300 ms never happens.
    assert_eq!(calls.get(), 3);
    tokio::time::sleep(ms(1_000)).await;
    assert_eq!(calls.get(), 3);
    assert_eq!(start.elapsed(), ms(1_250));
}

#[tokio::test(start_paused = true)]
async fn an_enormous_delay_sleeps_without_overflowing() {
    let calls = Cell::new(0);
    let start = Instant::now();
    let fut = retry(
        Constant::new(Duration::MAX).max_retries(1),
        flaky(1, &calls),
    );
    // tokio clamps the deadline to its horizon; the retry is simply very far away.
    let one_year = Duration::from_secs(365 * 24 * 3600);
    assert!(tokio::time::timeout(one_year, fut).await.is_err());
    assert_eq!(calls.get(), 1);
    assert_eq!(start.elapsed(), one_year);
}

fn assert_send<F: Future + Send>(f: F) -> F {
    f
}

#[tokio::test(start_paused = true)]
async fn is_send_with_a_boxed_backoff_and_runs_on_a_spawned_task() {
    let backoff: Box<dyn Backoff + Send> = Box::new(doubling(4));
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let fut = assert_send(retry(backoff, move || {
        let attempt = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if attempt < 4 {
                Err(format!("attempt {attempt} failed"))
            } else {
                Ok(attempt)
            }
        }
    }));
    let start = Instant::now();
    let result = tokio::spawn(fut).await.unwrap();
    assert_eq!(result, Ok(4));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(start.elapsed(), ms(100 + 200 + 400));
}
