//! Retrying a flaky async operation with jittered exponential backoff.
//!
//! ```sh
//! cargo run -p resile-backoff --example flaky --features tokio
//! ```
//!
//! Three scenarios, each against a simulated service:
//!
//! 1. it fails three times with a transient error, then answers: the retries get through;
//! 2. it keeps failing: the backoff gives up after its retries and the last error comes back;
//! 3. it rejects the request as invalid: not retryable, so no retry at all.
//!
//! Delays are kept short (50 ms initial, ×2, capped at 400 ms) so the whole run takes about a
//! second. Full jitter draws each delay from `[0, curve]`, so the printed delays vary run to
//! run; the curve is printed beside them.

use std::fmt;
use std::time::{Duration, Instant};

use resile_backoff::{retry, Exponential, Jitter};

/// What the simulated service can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServiceError {
    /// 503-like: try again later.
    Unavailable,
    /// 400-like: retrying will not help.
    InvalidRequest,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Unavailable => f.write_str("503 service unavailable"),
            ServiceError::InvalidRequest => f.write_str("400 invalid request"),
        }
    }
}

impl ServiceError {
    fn is_transient(&self) -> bool {
        matches!(self, ServiceError::Unavailable)
    }
}

/// A service that answers `script[n]` to its n-th call (and the last entry after that),
/// taking 10 ms per call.
struct FlakyService {
    script: Vec<Result<&'static str, ServiceError>>,
    calls: usize,
    started: Instant,
}

impl FlakyService {
    fn new(script: Vec<Result<&'static str, ServiceError>>) -> Self {
        FlakyService {
            script,
            calls: 0,
            started: Instant::now(),
        }
    }

    fn call(&mut self) -> impl std::future::Future<Output = Result<&'static str, ServiceError>> {
        let answer = self.script[self.calls.min(self.script.len() - 1)];
        self.calls += 1;
        println!(
            "  [{:>6.1} ms] attempt {} ...",
            self.started.elapsed().as_secs_f64() * 1e3,
            self.calls
        );
        async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            answer
        }
    }
}

fn backoff() -> Exponential {
    Exponential::builder()
        .initial(Duration::from_millis(50))
        .multiplier(2.0)
        .max_delay(Duration::from_millis(400))
        .max_retries(4)
        .jitter(Jitter::Full)
        .build()
        .expect("a valid backoff configuration")
}

async fn run(title: &str, script: Vec<Result<&'static str, ServiceError>>) {
    println!("{title}");
    let mut service = FlakyService::new(script);
    let started = service.started;
    let mut retries = 0u32;
    let result = retry(backoff(), || service.call())
        .when(ServiceError::is_transient)
        .notify(|err, delay| {
            let curve = Duration::from_millis(50 << retries).min(Duration::from_millis(400));
            retries += 1;
            println!(
                "             failed: {err}; retry {retries} in {:.1} ms (full jitter below {} ms)",
                delay.as_secs_f64() * 1e3,
                curve.as_millis()
            );
        })
        .await;
    let took = started.elapsed().as_secs_f64() * 1e3;
    match result {
        Ok(body) => println!("  => ok: {body:?} after {retries} retries, {took:.1} ms\n"),
        Err(err) if err.is_transient() => {
            println!("  => gave up after {retries} retries: {err}, {took:.1} ms\n")
        }
        Err(err) => println!("  => not retryable: {err}, {took:.1} ms\n"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    use ServiceError::*;
    println!("backoff: 50 ms initial, x2, capped at 400 ms, full jitter, at most 4 retries\n");
    run(
        "1. fails three times, then answers",
        vec![
            Err(Unavailable),
            Err(Unavailable),
            Err(Unavailable),
            Ok("hello"),
        ],
    )
    .await;
    run("2. keeps failing", vec![Err(Unavailable)]).await;
    run("3. rejects the request", vec![Err(InvalidRequest)]).await;
}
