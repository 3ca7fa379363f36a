//! The distribution of jitter: means and spread over 10,000 seeded samples (deterministic).

use std::time::Duration;

use resile_backoff::{Backoff, Exponential, Jitter};

const SAMPLES: usize = 10_000;

/// A backoff that has reached its cap at `ceiling`: every draw comes from the same range.
fn at_ceiling(ceiling: Duration, jitter: Jitter, seed: u64) -> Exponential {
    let mut backoff = Exponential::builder()
        .initial(ceiling / 64)
        .multiplier(2.0)
        .max_delay(ceiling)
        .jitter(jitter)
        .no_max_retries()
        .seed(seed)
        .build()
        .expect("valid");
    // Walk the curve up to the cap: 64 = 2^6.
    for _ in 0..6 {
        backoff.next_delay();
    }
    backoff
}

fn samples(backoff: &mut Exponential) -> Vec<f64> {
    (0..SAMPLES)
        .map(|_| backoff.next_delay().expect("unlimited").as_nanos() as f64)
        .collect()
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Counts per tenth of `[lo, hi]`.
fn deciles(xs: &[f64], lo: f64, hi: f64) -> [usize; 10] {
    let mut counts = [0; 10];
    for &x in xs {
        let i = (((x - lo) / (hi - lo)) * 10.0) as usize;
        counts[i.min(9)] += 1;
    }
    counts
}

#[test]
fn full_jitter_mean_is_half_the_ceiling() {
    let ceiling = Duration::from_secs(20);
    let c = ceiling.as_nanos() as f64;
    for seed in 0..16 {
        let xs = samples(&mut at_ceiling(ceiling, Jitter::Full, seed));
        let m = mean(&xs);
        let error = (m - c / 2.0).abs() / (c / 2.0);
        assert!(
            error < 0.03,
            "seed {seed}: mean {m} ns is {:.2}% off {} ns",
            error * 100.0,
            c / 2.0
        );
        assert!(xs.iter().all(|&x| (0.0..=c).contains(&x)));
        // Uniform, not just centred: each tenth of [0, c] holds about 1,000 samples (the
        // standard deviation of a count is 30).
        for (i, n) in deciles(&xs, 0.0, c).into_iter().enumerate() {
            assert!((850..=1150).contains(&n), "seed {seed}: decile {i} has {n}");
        }
    }
}

#[test]
fn full_jitter_mean_on_the_wide_path() {
    // A cap beyond u64 nanoseconds takes the f64 path: same distribution.
    let ceiling = Duration::MAX;
    let c = ceiling.as_nanos() as f64;
    for seed in 0..4 {
        let xs = samples(&mut at_ceiling(ceiling, Jitter::Full, seed));
        let error = (mean(&xs) - c / 2.0).abs() / (c / 2.0);
        assert!(error < 0.03, "seed {seed}: {:.2}% off", error * 100.0);
    }
}

#[test]
fn equal_jitter_mean_is_three_quarters_of_the_ceiling() {
    let ceiling = Duration::from_millis(1_500);
    let c = ceiling.as_nanos() as f64;
    for seed in 0..8 {
        let xs = samples(&mut at_ceiling(ceiling, Jitter::Equal, seed));
        let error = (mean(&xs) - 0.75 * c).abs() / (0.75 * c);
        assert!(error < 0.03, "seed {seed}: {:.2}% off", error * 100.0);
        assert!(xs.iter().all(|&x| (c / 2.0..=c).contains(&x)));
        for (i, n) in deciles(&xs, c / 2.0, c).into_iter().enumerate() {
            assert!((850..=1150).contains(&n), "seed {seed}: decile {i} has {n}");
        }
    }
}

#[test]
fn decorrelated_jitter_spreads_between_initial_and_cap() {
    // With a cap far above initial, decorrelated delays wander over the whole range rather
    // than sticking to either end.
    let initial = Duration::from_millis(10);
    let cap = Duration::from_secs(10);
    let mut backoff = Exponential::builder()
        .initial(initial)
        .max_delay(cap)
        .jitter(Jitter::Decorrelated)
        .no_max_retries()
        .seed(99)
        .build()
        .expect("valid");
    let xs = samples(&mut backoff);
    let lo = xs.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().cloned().fold(0.0, f64::max);
    assert!(lo < (initial * 3).as_nanos() as f64, "min {lo}");
    assert!(hi > (cap / 2).as_nanos() as f64, "max {hi}");
    let m = mean(&xs);
    assert!(
        m > (initial * 10).as_nanos() as f64 && m < cap.as_nanos() as f64 / 2.0,
        "mean {m}"
    );
}
