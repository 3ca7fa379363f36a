//! Decorrelated jitter on a smooth curve (Polly's "V2" decorrelated jitter).

use std::time::Duration;

use crate::exponential::{f64_to_duration, new_rng};
use crate::{Backoff, BackoffConfigError};

/// The curve's steepness near zero (Polly's `pFactor`).
const P_FACTOR: f64 = 4.0;

/// Scales the curve so that the median of the first delay is exactly the configured median:
/// the first delay is `f(t)` for `t` uniform in `[0, 1)` and `f` increasing, so its median is
/// `f(0.5) = 2^0.5 × tanh(√2)`. (Polly uses `1 / 1.4`, which puts the first delay's median at
/// about 0.9 × the configured one.)
fn median_scale() -> f64 {
    1.0 / (std::f64::consts::SQRT_2 * (P_FACTOR * 0.5).sqrt().tanh())
}

/// Exponential backoff with decorrelated jitter on a smooth curve: the delays of retry `n` are
/// spread over the whole step from `2^n` to `2^(n+1)` of the curve `2^t × tanh(√(4t))`, each
/// retry drawing its own point `t` in `[n, n + 1)` and waiting for the distance from the
/// previous point.
///
/// This is the "decorrelated jitter V2" of Polly (.NET), built to fix two flaws of AWS's
/// decorrelated jitter ([`Jitter::Decorrelated`](crate::Jitter::Decorrelated)): its delays
/// bunch at the low end and can stay short for several retries in a row, and its spread grows
/// slowly. Here the delay's median grows like plain exponential backoff's (measured over 20,000
/// seeds: ×1.27, ×1.78, ×1.96, then ×2.00 per retry), while each client's retries stay spread
/// out and no two clients fall into step.
///
/// - the **median first delay** is the scale: the first delay's median is exactly this value
///   (Polly's scaling is about 0.9 × the value asked for; this one is exact);
/// - every delay is capped at `max_delay` (after jitter, as for every strategy of this crate);
/// - once the curve overflows `f64` (after ~1,000 retries without a limit) every delay is the
///   cap.
///
/// # Default
///
/// [`SmoothDecorrelated::default()`]: median first delay 100 ms, cap 20 s, at most 3 retries,
/// unseeded — the scale and limits of [`Exponential::default`](crate::Exponential).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use resile_backoff::{Backoff, SmoothDecorrelated};
///
/// let mut backoff = SmoothDecorrelated::builder()
///     .median_first(Duration::from_millis(200))
///     .max_delay(Duration::from_secs(10))
///     .max_retries(5)
///     .seed(7)
///     .build()?;
/// let delays: Vec<Duration> = backoff.by_ref().collect();
/// assert_eq!(delays.len(), 5);
/// assert!(delays.iter().all(|d| *d <= Duration::from_secs(10)));
/// assert_eq!(backoff.next_delay(), None);
/// # Ok::<(), resile_backoff::BackoffConfigError>(())
/// ```
#[derive(Debug)]
pub struct SmoothDecorrelated {
    /// `median_first` in nanoseconds times the median scale.
    scale: f64,
    max_delay: Duration,
    /// `max_delay` in nanoseconds.
    max_f: f64,
    median_first: Duration,
    max_retries: Option<u32>,
    attempts: u32,
    /// The curve's value at the previous retry's point.
    prev: f64,
    rng: fastrand::Rng,
    seed: Option<u64>,
}

impl SmoothDecorrelated {
    /// A builder starting from the defaults (see `# Default`).
    pub fn builder() -> SmoothDecorrelatedBuilder {
        SmoothDecorrelatedBuilder {
            median_first: Duration::from_millis(100),
            max_delay: Duration::from_secs(20),
            max_retries: Some(3),
            seed: None,
        }
    }

    /// The median of the first delay.
    pub fn median_first(&self) -> Duration {
        self.median_first
    }

    /// The cap of every delay.
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// How many delays this backoff has yielded since it was built or last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

impl Default for SmoothDecorrelated {
    fn default() -> Self {
        SmoothDecorrelated::builder()
            .build()
            .unwrap_or_else(|_| unreachable!("the default configuration is valid"))
    }
}

impl Clone for SmoothDecorrelated {
    /// An unseeded backoff's clone draws a fresh seed (its own jitter); a seeded backoff's clone
    /// is an exact copy.
    fn clone(&self) -> Self {
        SmoothDecorrelated {
            rng: match self.seed {
                Some(_) => self.rng.clone(),
                None => new_rng(None),
            },
            ..*self
        }
    }
}

impl Backoff for SmoothDecorrelated {
    fn next_delay(&mut self) -> Option<Duration> {
        if self.max_retries.is_some_and(|max| self.attempts >= max) {
            return None;
        }
        let t = f64::from(self.attempts) + self.rng.f64();
        self.attempts = self.attempts.saturating_add(1);
        let next = t.exp2() * (P_FACTOR * t).sqrt().tanh();
        let step = (next - self.prev) * self.scale;
        self.prev = next;
        // NaN (the curve overflowed to infinity twice) and anything past the cap give the cap.
        Some(if step < self.max_f {
            f64_to_duration(step.max(0.0)).min(self.max_delay)
        } else {
            self.max_delay
        })
    }

    /// Starts the sequence over. A seeded backoff also rewinds its random generator, so it
    /// replays the same delays; an unseeded one keeps drawing fresh randomness.
    fn reset(&mut self) {
        self.attempts = 0;
        self.prev = 0.0;
        if let Some(seed) = self.seed {
            self.rng = fastrand::Rng::with_seed(seed);
        }
    }
}

crate::backoff_iterator!(SmoothDecorrelated);

/// Builds a [`SmoothDecorrelated`]; checks the configuration in [`build`](Self::build).
#[derive(Debug, Clone)]
pub struct SmoothDecorrelatedBuilder {
    median_first: Duration,
    max_delay: Duration,
    max_retries: Option<u32>,
    seed: Option<u64>,
}

impl SmoothDecorrelatedBuilder {
    /// The median of the first delay (default 100 ms); later delays' medians grow to doubling
    /// per retry.
    pub fn median_first(mut self, median: Duration) -> Self {
        self.median_first = median;
        self
    }

    /// The cap of every delay, after jitter (default 20 s).
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Yield exactly `max_retries` delays, then `None` until [`reset`](Backoff::reset) (default 3).
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = Some(max_retries);
        self
    }

    /// Never stop.
    pub fn no_max_retries(mut self) -> Self {
        self.max_retries = None;
        self
    }

    /// A fixed seed: the same delays every time (for tests and simulations).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The backoff.
    ///
    /// # Errors
    ///
    /// [`BackoffConfigError::ZeroInitial`] for a zero median, [`BackoffConfigError::MaxDelayBelowInitial`] for a
    /// cap below the median (the median first delay plays the part of the initial delay).
    pub fn build(&self) -> Result<SmoothDecorrelated, BackoffConfigError> {
        BackoffConfigError::check_initial_and_cap(self.median_first, self.max_delay)?;
        Ok(SmoothDecorrelated {
            scale: self.median_first.as_nanos() as f64 * median_scale(),
            max_delay: self.max_delay,
            max_f: self.max_delay.as_nanos() as f64,
            median_first: self.median_first,
            max_retries: self.max_retries,
            attempts: 0,
            prev: 0.0,
            rng: new_rng(self.seed),
            seed: self.seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded(seed: u64) -> SmoothDecorrelated {
        SmoothDecorrelated::builder()
            .median_first(Duration::from_millis(100))
            .max_delay(Duration::from_secs(3600))
            .no_max_retries()
            .seed(seed)
            .build()
            .unwrap()
    }

    fn median(mut xs: Vec<f64>) -> f64 {
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    }

    #[test]
    fn the_first_delays_median_is_the_one_asked_for_and_medians_double() {
        let n = 20_001u64;
        let runs: Vec<Vec<f64>> = (0..n)
            .map(|seed| {
                let mut b = seeded(seed);
                (0..6)
                    .map(|_| b.next_delay().unwrap().as_secs_f64())
                    .collect()
            })
            .collect();
        let first = median(runs.iter().map(|r| r[0]).collect());
        assert!(
            (first - 0.1).abs() < 0.1 * 0.03,
            "median first delay {first}"
        );
        // Later medians grow: by less at first (the tanh term), then they double per retry.
        let ratios: Vec<f64> = (1..6)
            .map(|i| {
                let a = median(runs.iter().map(|r| r[i - 1]).collect());
                let b = median(runs.iter().map(|r| r[i]).collect());
                b / a
            })
            .collect();
        assert!(ratios.iter().all(|r| *r > 1.2), "{ratios:?}");
        assert!(
            ratios[2..].iter().all(|r| (1.8..=2.2).contains(r)),
            "{ratios:?}"
        );
    }

    #[test]
    fn delays_are_capped_and_the_overflowed_curve_gives_the_cap() {
        let cap = Duration::from_secs(30);
        let mut b = SmoothDecorrelated::builder()
            .median_first(Duration::from_millis(1))
            .max_delay(cap)
            .no_max_retries()
            .seed(3)
            .build()
            .unwrap();
        let delays: Vec<Duration> = b.by_ref().take(3_000).collect();
        assert!(delays.iter().all(|d| *d <= cap));
        // From ~2^15 ms on the step passes 30 s; far past f64's range it stays the cap.
        assert!(delays[20..].iter().all(|d| *d == cap));
        assert_eq!(b.attempts(), 3_000);
        // Nothing shrinks to zero on the way: each step of the increasing curve is positive.
        assert!(delays.iter().all(|d| !d.is_zero()));
    }

    #[test]
    fn retries_seeds_reset_and_clones() {
        let builder = SmoothDecorrelated::builder().max_retries(4).seed(11);
        let a: Vec<Duration> = builder.build().unwrap().collect();
        assert_eq!(a.len(), 4);
        assert_eq!(a, builder.build().unwrap().collect::<Vec<_>>());
        let mut b = builder.build().unwrap();
        assert_eq!(b.size_hint(), (4, Some(4)));
        b.next_delay();
        b.next_delay();
        b.reset();
        assert_eq!(b.clone().collect::<Vec<_>>(), a, "a seeded clone is a copy");
        assert_eq!(b.collect::<Vec<_>>(), a, "reset replays a seeded sequence");
        // Unseeded: every clone draws its own jitter.
        let proto = SmoothDecorrelated::builder()
            .no_max_retries()
            .build()
            .unwrap();
        let x: Vec<Duration> = proto.clone().take(8).collect();
        let y: Vec<Duration> = proto.clone().take(8).collect();
        assert_ne!(x, y);
    }

    #[test]
    fn defaults_and_refused_configurations() {
        let d = SmoothDecorrelated::default();
        assert_eq!(d.median_first(), Duration::from_millis(100));
        assert_eq!(d.max_delay(), Duration::from_secs(20));
        assert_eq!(d.count(), 3);
        assert_eq!(
            SmoothDecorrelated::builder()
                .median_first(Duration::ZERO)
                .build()
                .unwrap_err(),
            BackoffConfigError::ZeroInitial
        );
        assert!(matches!(
            SmoothDecorrelated::builder()
                .median_first(Duration::from_secs(2))
                .max_delay(Duration::from_secs(1))
                .build(),
            Err(BackoffConfigError::MaxDelayBelowInitial { .. })
        ));
        // Extreme but valid: a cap of Duration::MAX never overflows.
        let mut huge = SmoothDecorrelated::builder()
            .median_first(Duration::from_secs(u64::MAX / 4))
            .max_delay(Duration::MAX)
            .no_max_retries()
            .build()
            .unwrap();
        assert!(huge.by_ref().take(2_000).all(|d| d <= Duration::MAX));
    }
}
