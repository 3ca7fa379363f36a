//! The backoff crate on its own: no tower, no HTTP, just delays.
//!
//! ```text
//! cargo run -p resile --example backoff
//! ```
//!
//! Prints the delays of a few configurations (seeded, so the output is the same every run), then
//! retries a flaky operation by hand (sleeping on the thread: no runtime needed), taking the larger of the backoff delay and a "server hint"
//! the way the retry layer does.

use std::time::Duration;

use resile::backoff::{Backoff, Constant, Exponential, Jitter};

fn show(name: &str, delays: impl Iterator<Item = Duration>) {
    let list: Vec<String> = delays
        .map(|d| format!("{:>7.1} ms", d.as_secs_f64() * 1000.0))
        .collect();
    println!("{name:<28}{}", list.join(" "));
}

fn main() -> Result<(), resile::backoff::BackoffConfigError> {
    println!("Delays before each retry (seed 7, so every run prints the same):\n");
    let base = Exponential::builder()
        .initial(Duration::from_millis(100))
        .multiplier(2.0)
        .max_delay(Duration::from_secs(2))
        .max_retries(6)
        .seed(7);
    show("no jitter", base.clone().jitter(Jitter::None).build()?);
    show(
        "full jitter (default)",
        base.clone().jitter(Jitter::Full).build()?,
    );
    show("equal jitter", base.clone().jitter(Jitter::Equal).build()?);
    show(
        "decorrelated jitter",
        base.clone().jitter(Jitter::Decorrelated).build()?,
    );
    show(
        "constant 250 ms",
        Constant::new(Duration::from_millis(250)).max_retries(6),
    );

    // The cap holds after jitter: no delay of any strategy exceeds max_delay.
    let capped = base.clone().jitter(Jitter::Equal).max_retries(50).build()?;
    let longest = capped.max().unwrap_or_default();
    println!("\nlongest of 50 equal-jitter delays capped at 2 s: {longest:?}");

    // Unseeded backoffs each draw their own randomness, so clients do not retry in lockstep.
    let proto = Exponential::default();
    let a: Vec<Duration> = proto.clone().collect();
    let b: Vec<Duration> = proto.clone().collect();
    println!(
        "two clones of an unseeded backoff differ: {}",
        if a != b {
            "yes"
        } else {
            "no (a 1 in 2^64 event)"
        }
    );

    // Driving a retry loop by hand: an operation that fails three times, then succeeds.
    println!("\nA hand-written retry loop (a server asks for 300 ms on the second failure):");
    let mut backoff = base.jitter(Jitter::Full).build()?;
    let mut failures_left = 3;
    let mut attempt = 1;
    let mut waited = Duration::ZERO;
    loop {
        let result: Result<&str, &str> = if failures_left > 0 {
            failures_left -= 1;
            Err("unavailable")
        } else {
            Ok("done")
        };
        match result {
            Ok(v) => {
                println!("  attempt {attempt}: {v} after waiting {waited:?} in total");
                break;
            }
            Err(e) => {
                let hint = (attempt == 2).then_some(Duration::from_millis(300));
                let Some(delay) = backoff.next_delay() else {
                    println!("  attempt {attempt}: {e}; no retries left");
                    break;
                };
                let wait = delay.max(hint.unwrap_or_default());
                println!(
                    "  attempt {attempt}: {e}; backoff {delay:?}, server hint {hint:?} -> wait {wait:?}"
                );
                std::thread::sleep(wait);
                waited += wait;
                attempt += 1;
            }
        }
    }
    backoff.reset();
    println!(
        "after reset(), the next delay starts again from the beginning: {:?}",
        backoff.next_delay()
    );
    Ok(())
}
