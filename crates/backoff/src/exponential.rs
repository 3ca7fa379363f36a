//! Exponential backoff with jitter, capped after jitter.

use std::fmt;
use std::time::Duration;

use crate::{Backoff, BackoffConfigError};

/// How a delay is randomised around (or below) the exponential curve.
///
/// Write `c = min(max_delay, initial × multiplier^n)` for the n-th un-jittered delay
/// (n counted from 0). Every variant is capped at `max_delay` after the randomisation.
///
/// # Default
///
/// [`Jitter::Full`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Jitter {
    /// No randomness: the n-th delay is exactly `c`.
    ///
    /// Clients that fail together retry together; use it only when there is a single client
    /// or when the sequence must be predictable.
    None,
    /// Uniform in `[0, c]` (AWS's "full jitter"). Spreads retries the most; the mean is `c / 2`.
    #[default]
    Full,
    /// Uniform in `[c / 2, c]` (AWS's "equal jitter"): never retries sooner than half the curve.
    Equal,
    /// AWS's "decorrelated jitter": uniform in `[initial, min(max_delay, 3 × previous)]`, where
    /// `previous` is the delay returned before (`initial` for the first one).
    ///
    /// Each delay grows from the last *jittered* delay, not from a curve, so the multiplier is
    /// not used.
    Decorrelated,
}

/// The configuration of an [`Exponential`] backoff; [`build`](Self::build) checks it.
///
/// One builder can build many backoffs. Without a [`seed`](Self::seed), each of them draws
/// its own random seed, so their jitter differs.
///
/// # Default
///
/// | setting | default |
/// |---|---|
/// | [`initial`](Self::initial) | 100 ms |
/// | [`multiplier`](Self::multiplier) | 2 |
/// | [`max_delay`](Self::max_delay) | 20 s |
/// | [`max_retries`](Self::max_retries) | 3 |
/// | [`jitter`](Self::jitter) | [`Jitter::Full`] |
/// | [`seed`](Self::seed) | none: fresh randomness per backoff |
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialBuilder {
    initial: Duration,
    multiplier: f64,
    max_delay: Duration,
    max_retries: Option<u32>,
    jitter: Jitter,
    seed: Option<u64>,
}

impl Default for ExponentialBuilder {
    fn default() -> Self {
        ExponentialBuilder {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max_delay: Duration::from_secs(20),
            max_retries: Some(3),
            jitter: Jitter::Full,
            seed: None,
        }
    }
}

impl ExponentialBuilder {
    /// The un-jittered first delay. Must not be zero.
    pub fn initial(mut self, initial: Duration) -> Self {
        self.initial = initial;
        self
    }

    /// The growth factor between successive un-jittered delays. Must be finite and at least 1
    /// (1 gives a constant curve, still jittered).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// The cap: no delay ever exceeds it, jitter included. Must be at least `initial`.
    /// [`Duration::MAX`] means no cap.
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Yield exactly `max_retries` delays, then `None` until [`reset`](Backoff::reset).
    /// Zero means "do not retry".
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = Some(max_retries);
        self
    }

    /// Never stop: yield delays forever (the caller bounds retries some other way, e.g. a
    /// deadline or a retry budget).
    pub fn no_max_retries(mut self) -> Self {
        self.max_retries = None;
        self
    }

    /// How delays are randomised; see [`Jitter`].
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Makes the randomness reproducible: every backoff built with the same seed (and the same
    /// configuration) yields the same sequence, and [`reset`](Backoff::reset) replays it.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks the configuration and builds a backoff.
    ///
    /// Takes `&self`: one builder can build a backoff per request or per connection. Without a
    /// seed, each one gets its own randomness.
    ///
    /// # Errors
    ///
    /// - [`BackoffConfigError::MultiplierNotFinite`] if the multiplier is NaN or infinite;
    /// - [`BackoffConfigError::MultiplierBelowOne`] if it is below 1;
    /// - [`BackoffConfigError::ZeroInitial`] if the initial delay is zero;
    /// - [`BackoffConfigError::MaxDelayBelowInitial`] if `max_delay < initial`.
    pub fn build(&self) -> Result<Exponential, BackoffConfigError> {
        if !self.multiplier.is_finite() {
            return Err(BackoffConfigError::MultiplierNotFinite {
                multiplier: self.multiplier,
            });
        }
        if self.multiplier < 1.0 {
            return Err(BackoffConfigError::MultiplierBelowOne {
                multiplier: self.multiplier,
            });
        }
        BackoffConfigError::check_initial_and_cap(self.initial, self.max_delay)?;
        Ok(Exponential::from_checked(self))
    }
}

/// Exponential backoff: `initial × multiplier^n`, jittered, then capped at `max_delay`.
///
/// Built with [`Exponential::builder`]; [`Exponential::default`] is the default builder's
/// backoff. It is a plain value (no allocation, no lock, no clock): clone it per request.
///
/// Cloning an unseeded backoff gives the clone a fresh seed, so per-request clones of one
/// prototype do not share jitter. Cloning a seeded backoff copies it exactly, random state
/// included.
///
/// # Arithmetic
///
/// The curve `initial × multiplier^n` is tracked in `f64` nanoseconds and rounded to the
/// nearest nanosecond: exact up to 2^53 ns (about 104 days), within one part in 2^53 beyond.
/// It stops growing once it reaches the cap, so no configuration the builder accepts can
/// overflow, whatever the multiplier (`1e300` is fine) or the delays (up to
/// [`Duration::MAX`]). Jitter is drawn in integer nanoseconds below the rounded curve, so the
/// bounds of [`Jitter`] hold exactly. (A `max_delay` beyond `u64::MAX` nanoseconds, about 584
/// years, takes a slower all-`f64` path with the same guarantees.)
///
/// # Default
///
/// 100 ms initial, ×2, capped at 20 s, [`Jitter::Full`], 3 retries, unseeded: see
/// [`ExponentialBuilder`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use resile_backoff::{Backoff, Exponential, Jitter};
///
/// let mut backoff = Exponential::builder()
///     .initial(Duration::from_millis(100))
///     .multiplier(2.0)
///     .max_delay(Duration::from_millis(300))
///     .max_retries(4)
///     .jitter(Jitter::None)
///     .build()?;
///
/// assert_eq!(backoff.next_delay(), Some(Duration::from_millis(100)));
/// assert_eq!(backoff.next_delay(), Some(Duration::from_millis(200)));
/// assert_eq!(backoff.next_delay(), Some(Duration::from_millis(300))); // capped
/// assert_eq!(backoff.next_delay(), Some(Duration::from_millis(300)));
/// assert_eq!(backoff.next_delay(), None); // 4 retries, then stop
///
/// backoff.reset();
/// assert_eq!(backoff.next_delay(), Some(Duration::from_millis(100)));
/// # Ok::<(), resile_backoff::BackoffConfigError>(())
/// ```
pub struct Exponential {
    /// The un-jittered delay of the next call in nanoseconds, capped at `max_ns`; for
    /// [`Jitter::Decorrelated`], the previous delay. (Integer path only.)
    ceil: u64,
    /// The running curve `initial × multiplier^n` in nanoseconds; it stops being multiplied
    /// once it reaches the cap. Wide path with [`Jitter::Decorrelated`]: the previous delay.
    curve: f64,
    /// The previous delay (wide path with [`Jitter::Decorrelated`] only).
    prev: Duration,
    attempts: u32,
    rng: fastrand::Rng,
    mode: Mode,
    /// Checked finite and >= 1.
    multiplier: f64,
    /// `max_delay` in nanoseconds as `f64` (may be rounded by one part in 2^53).
    max_f: f64,
    /// `max_delay` in nanoseconds, exact on the integer path (saturated on the wide one).
    max_ns: u64,
    /// `initial` in nanoseconds, exact on the integer path (saturated on the wide one).
    initial_ns: u64,
    /// `initial` in nanoseconds as `f64`.
    initial_f: f64,
    initial: Duration,
    max_delay: Duration,
    max_retries: Option<u32>,
    jitter: Jitter,
    seed: Option<u64>,
}

/// Which arithmetic `next_delay` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Integer nanoseconds (every `max_delay` up to `u64::MAX` ns, about 584 years).
    Full,
    None,
    Equal,
    Decorrelated,
    /// `max_delay` beyond `u64::MAX` ns: all in `f64`, any jitter.
    Wide,
}

/// 2^64 as an `f64`.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

impl Exponential {
    /// A builder with the defaults (see [`ExponentialBuilder`]).
    pub fn builder() -> ExponentialBuilder {
        ExponentialBuilder::default()
    }

    /// Builds from a configuration `ExponentialBuilder::build` has checked.
    fn from_checked(config: &ExponentialBuilder) -> Self {
        let max_ns = u64::try_from(config.max_delay.as_nanos());
        // initial <= max_delay, so it fits whenever max_delay does.
        let initial_ns = u64::try_from(config.initial.as_nanos()).unwrap_or(u64::MAX);
        let mode = match (max_ns, config.jitter) {
            (Err(_), _) => Mode::Wide,
            (Ok(_), Jitter::Full) => Mode::Full,
            (Ok(_), Jitter::None) => Mode::None,
            (Ok(_), Jitter::Equal) => Mode::Equal,
            (Ok(_), Jitter::Decorrelated) => Mode::Decorrelated,
        };
        let initial_f = config.initial.as_nanos() as f64;
        Exponential {
            ceil: initial_ns,
            curve: initial_f,
            prev: config.initial,
            attempts: 0,
            rng: new_rng(config.seed),
            mode,
            multiplier: config.multiplier,
            max_f: config.max_delay.as_nanos() as f64,
            max_ns: max_ns.unwrap_or(u64::MAX),
            initial_ns,
            initial_f,
            initial: config.initial,
            max_delay: config.max_delay,
            max_retries: config.max_retries,
            jitter: config.jitter,
            seed: config.seed,
        }
    }

    /// How many delays this backoff has yielded since it was built or last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The un-jittered delay for this call, in nanoseconds, and the curve moved one step on.
    #[inline(always)]
    fn next_ceiling(&mut self) -> u64 {
        let c = self.ceil;
        if c < self.max_ns {
            // `curve` is finite and so is the multiplier: the product is at worst +inf, which
            // the comparison sends to the cap. Once there, the curve is left alone.
            self.curve *= self.multiplier;
            self.ceil = if self.curve < self.max_f {
                // Round to the nearest nanosecond; `as` saturates, `min` keeps the exact cap.
                ((self.curve + 0.5) as u64).min(self.max_ns)
            } else {
                self.max_ns
            };
        }
        c
    }

    /// The whole computation in `f64` nanoseconds, for caps beyond `u64::MAX` ns.
    #[cold]
    #[inline(never)]
    fn next_wide(&mut self) -> Duration {
        if self.jitter == Jitter::Decorrelated {
            // `curve` holds the previous delay; `initial_f <= curve` and `initial_f <= max_f`.
            let hi = (self.curve * 3.0).min(self.max_f);
            let x = self.initial_f + self.rng.f64_inclusive() * (hi - self.initial_f);
            self.curve = x;
            // Exact bounds in integer arithmetic, whatever the float rounding did.
            // `initial <= 3 × prev` since `prev >= initial`.
            let d = f64_to_duration(x)
                .min(self.max_delay)
                .min(self.prev.saturating_mul(3))
                .max(self.initial);
            self.prev = d;
            return d;
        }
        let c = self.curve;
        // Saturates like `next_ceiling`: `min` brings +inf back to the cap.
        self.curve = (c * self.multiplier).min(self.max_f);
        let x = match self.jitter {
            Jitter::Full => self.rng.f64_inclusive() * c,
            Jitter::Equal => c * 0.5 + self.rng.f64_inclusive() * (c * 0.5),
            Jitter::None | Jitter::Decorrelated => c,
        };
        f64_to_duration(x).min(self.max_delay)
    }
}

/// A number in `[0, n]` from one random `u64`: `floor(r × (n + 1) / 2^64)`, uniform up to a
/// bias below `(n + 1) / 2^64`.
#[inline(always)]
fn scale(r: u64, n: u64) -> u64 {
    // r × n + r = r × (n + 1) < 2^128, without computing n + 1 (which may overflow).
    ((u128::from(r) * u128::from(n) + u128::from(r)) >> 64) as u64
}

/// A random generator for one backoff: seeded, or seeded from the thread-local generator.
pub(crate) fn new_rng(seed: Option<u64>) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed.unwrap_or_else(|| fastrand::u64(..)))
}

/// `nanos` (finite, >= 0) rounded to the nearest nanosecond, saturating at [`Duration::MAX`].
pub(crate) fn f64_to_duration(nanos: f64) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let rounded = nanos + 0.5;
    if rounded < TWO_POW_64 {
        // `as` truncates; below 2^64 it cannot saturate.
        return Duration::from_nanos(rounded as u64);
    }
    // From 2^64 on every `f64` is an integer: `as u128` is exact (and saturates, but every
    // `f64` this large is below 2^128 anyway).
    let n = nanos as u128;
    match u64::try_from(n / NANOS_PER_SEC) {
        // The remainder is below 10^9, so `Duration::new` cannot carry into the seconds.
        Ok(secs) => Duration::new(secs, (n % NANOS_PER_SEC) as u32),
        Err(_) => Duration::MAX,
    }
}

impl Backoff for Exponential {
    #[inline]
    fn next_delay(&mut self) -> Option<Duration> {
        if let Some(max) = self.max_retries {
            if self.attempts >= max {
                return None;
            }
        }
        self.attempts = self.attempts.saturating_add(1);
        let nanos = match self.mode {
            Mode::Full => {
                let c = self.next_ceiling();
                scale(self.rng.u64(..), c)
            }
            Mode::None => self.next_ceiling(),
            Mode::Equal => {
                let c = self.next_ceiling();
                let half = c / 2;
                half + scale(self.rng.u64(..), c - half)
            }
            Mode::Decorrelated => {
                // `ceil` holds the previous delay, >= initial; the cap is >= initial too.
                let hi = self.ceil.saturating_mul(3).min(self.max_ns);
                let d = self.initial_ns + scale(self.rng.u64(..), hi - self.initial_ns);
                self.ceil = d;
                d
            }
            Mode::Wide => return Some(self.next_wide()),
        };
        Some(Duration::from_nanos(nanos))
    }

    /// Starts the sequence over. A seeded backoff also rewinds its random generator, so it
    /// replays the same delays; an unseeded one keeps drawing fresh randomness.
    fn reset(&mut self) {
        self.ceil = self.initial_ns;
        self.curve = self.initial_f;
        self.prev = self.initial;
        self.attempts = 0;
        if let Some(seed) = self.seed {
            self.rng = fastrand::Rng::with_seed(seed);
        }
    }
}

crate::backoff_iterator!(Exponential);

impl Clone for Exponential {
    /// An unseeded backoff's clone draws a fresh seed (its own jitter); a seeded backoff's clone
    /// is an exact copy.
    fn clone(&self) -> Self {
        Exponential {
            ceil: self.ceil,
            curve: self.curve,
            prev: self.prev,
            attempts: self.attempts,
            rng: match self.seed {
                Some(_) => self.rng.clone(),
                None => new_rng(None),
            },
            mode: self.mode,
            multiplier: self.multiplier,
            max_f: self.max_f,
            max_ns: self.max_ns,
            initial_ns: self.initial_ns,
            initial_f: self.initial_f,
            initial: self.initial,
            max_delay: self.max_delay,
            max_retries: self.max_retries,
            jitter: self.jitter,
            seed: self.seed,
        }
    }
}

impl Default for Exponential {
    /// 100 ms initial, ×2, capped at 20 s, [`Jitter::Full`], 3 retries, unseeded.
    fn default() -> Self {
        Exponential::from_checked(&ExponentialBuilder::default())
    }
}

impl fmt::Debug for Exponential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exponential")
            .field("initial", &self.initial)
            .field("multiplier", &self.multiplier)
            .field("max_delay", &self.max_delay)
            .field("max_retries", &self.max_retries)
            .field("jitter", &self.jitter)
            .field("seed", &self.seed)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn none(initial: Duration, multiplier: f64, max: Duration) -> Exponential {
        Exponential::builder()
            .initial(initial)
            .multiplier(multiplier)
            .max_delay(max)
            .no_max_retries()
            .jitter(Jitter::None)
            .build()
            .unwrap()
    }

    #[test]
    fn defaults_are_documented_values() {
        let b = ExponentialBuilder::default();
        assert_eq!(b.initial, ms(100));
        assert_eq!(b.multiplier, 2.0);
        assert_eq!(b.max_delay, Duration::from_secs(20));
        assert_eq!(b.max_retries, Some(3));
        assert_eq!(b.jitter, Jitter::Full);
        assert_eq!(b.seed, None);
        assert_eq!(Exponential::builder(), b);

        let mut e = Exponential::default();
        let delays: Vec<_> = (&mut e).collect();
        assert_eq!(delays.len(), 3);
        for (n, d) in delays.iter().enumerate() {
            assert!(*d <= ms(100 << n), "delay {n} = {d:?}");
        }
        assert_eq!(e.next_delay(), None);
    }

    #[test]
    fn no_jitter_doubles_then_caps() {
        let mut e = none(ms(100), 2.0, Duration::from_secs(1));
        let got: Vec<_> = e.by_ref().take(7).collect();
        assert_eq!(
            got,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000),
                ms(1000)
            ]
        );
    }

    #[test]
    fn fractional_multiplier_rounds_to_nearest_nanosecond() {
        // 100 ms × 1.1^n: floating point lands a hair off the decimal value; rounding to the
        // nearest nanosecond gives the number a person expects.
        let mut e = none(ms(100), 1.1, Duration::MAX);
        let expect = [
            100_000_000u64,
            110_000_000,
            121_000_000,
            133_100_000,
            146_410_000,
        ];
        for ns in expect {
            assert_eq!(e.next_delay(), Some(Duration::from_nanos(ns)));
        }
    }

    #[test]
    fn huge_multiplier_saturates_at_cap() {
        let mut e = none(Duration::from_nanos(1), 1e300, Duration::MAX);
        assert_eq!(e.next_delay(), Some(Duration::from_nanos(1)));
        // 1e300 ns is far beyond Duration::MAX (about 1.8e28 ns): the cap.
        for _ in 0..100 {
            assert_eq!(e.next_delay(), Some(Duration::MAX));
        }
    }

    #[test]
    fn initial_near_duration_max() {
        let initial = Duration::MAX - Duration::from_secs(1);
        for jitter in [
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
        ] {
            let mut e = Exponential::builder()
                .initial(initial)
                .multiplier(f64::MAX)
                .max_delay(Duration::MAX)
                .no_max_retries()
                .jitter(jitter)
                .seed(7)
                .build()
                .unwrap();
            for _ in 0..50 {
                let d = e.next_delay().unwrap();
                if jitter == Jitter::Decorrelated {
                    assert!(d >= initial);
                }
            }
        }
        // Without jitter the first delay is the initial one, to within f64 precision
        // (one part in 2^53 of about 1.8e28 ns).
        let mut e = none(initial, 3.0, Duration::MAX);
        let first = e.next_delay().unwrap();
        let diff = first.abs_diff(initial);
        assert!(
            diff < Duration::from_secs(10_000),
            "{first:?} vs {initial:?}"
        );
        assert_eq!(e.next_delay(), Some(Duration::MAX));
    }

    #[test]
    fn f64_conversion_rounds_and_saturates() {
        assert_eq!(f64_to_duration(0.0), Duration::ZERO);
        assert_eq!(f64_to_duration(1.49), Duration::from_nanos(1));
        assert_eq!(f64_to_duration(1.5), Duration::from_nanos(2));
        assert_eq!(
            f64_to_duration(TWO_POW_64),
            Duration::from_nanos(u64::MAX) + Duration::from_nanos(1)
        );
        assert_eq!(f64_to_duration(1e300), Duration::MAX);
        assert_eq!(f64_to_duration(f64::INFINITY), Duration::MAX);
        let n: u128 = 1 << 90;
        assert_eq!(f64_to_duration(n as f64).as_nanos(), n);
    }

    #[test]
    fn scale_covers_the_closed_range() {
        assert_eq!(scale(0, 10), 0);
        assert_eq!(scale(u64::MAX, 10), 10);
        assert_eq!(scale(u64::MAX, 0), 0);
        assert_eq!(scale(u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(scale(0, u64::MAX), 0);
        // The midpoint of the random range lands in the middle of [0, n].
        assert_eq!(scale(1 << 63, 9), 5);
    }

    #[test]
    fn integer_and_wide_paths_agree_without_jitter() {
        // The same curve under a cap that fits u64 nanoseconds and under Duration::MAX.
        let mut narrow = none(ms(3), 1.7, Duration::from_secs(3600 * 24 * 365 * 500));
        let mut wide = none(ms(3), 1.7, Duration::MAX);
        assert_eq!(narrow.mode, Mode::None);
        assert_eq!(wide.mode, Mode::Wide);
        for n in 0..40 {
            assert_eq!(narrow.next_delay(), wide.next_delay(), "delay {n}");
        }
    }

    #[test]
    fn builder_rejects_nonsense() {
        let b = Exponential::builder();
        assert!(matches!(
            b.clone().multiplier(f64::NAN).build(),
            Err(BackoffConfigError::MultiplierNotFinite { multiplier }) if multiplier.is_nan()
        ));
        assert_eq!(
            b.clone().multiplier(f64::INFINITY).build().unwrap_err(),
            BackoffConfigError::MultiplierNotFinite {
                multiplier: f64::INFINITY
            }
        );
        assert_eq!(
            b.clone().multiplier(0.99).build().unwrap_err(),
            BackoffConfigError::MultiplierBelowOne { multiplier: 0.99 }
        );
        assert_eq!(
            b.clone().multiplier(-2.0).build().unwrap_err(),
            BackoffConfigError::MultiplierBelowOne { multiplier: -2.0 }
        );
        assert_eq!(
            b.clone().initial(Duration::ZERO).build().unwrap_err(),
            BackoffConfigError::ZeroInitial
        );
        assert_eq!(
            b.clone()
                .initial(ms(10))
                .max_delay(ms(9))
                .build()
                .unwrap_err(),
            BackoffConfigError::MaxDelayBelowInitial {
                initial: ms(10),
                max_delay: ms(9)
            }
        );
        // Boundaries that are fine.
        assert!(b.clone().multiplier(1.0).build().is_ok());
        assert!(b.clone().initial(ms(10)).max_delay(ms(10)).build().is_ok());
        assert!(b.clone().multiplier(f64::MAX).build().is_ok());
        // Messages say what is wrong.
        let msg = b.multiplier(0.5).build().unwrap_err().to_string();
        assert!(msg.contains("at least 1") && msg.contains("0.5"), "{msg}");
    }

    #[test]
    fn size_hint_counts_remaining_retries() {
        let mut e = Exponential::builder().max_retries(3).build().unwrap();
        assert_eq!(e.size_hint(), (3, Some(3)));
        e.next_delay();
        assert_eq!(e.size_hint(), (2, Some(2)));
        assert_eq!(e.by_ref().count(), 2);
        assert_eq!(e.size_hint(), (0, Some(0)));
        assert_eq!(e.attempts(), 3);
        let e = Exponential::builder().no_max_retries().build().unwrap();
        assert_eq!(e.size_hint(), (usize::MAX, None));
    }

    #[test]
    fn max_retries_zero_never_yields() {
        let mut e = Exponential::builder().max_retries(0).build().unwrap();
        assert_eq!(e.next_delay(), None);
        e.reset();
        assert_eq!(e.next_delay(), None);
    }

    #[test]
    fn seeded_reset_replays_and_clone_copies() {
        let mut e = Exponential::builder()
            .seed(42)
            .max_retries(6)
            .build()
            .unwrap();
        e.next_delay();
        let mut c = e.clone();
        let rest: Vec<_> = e.by_ref().collect();
        assert_eq!(rest, c.by_ref().collect::<Vec<_>>());
        let mut fresh = Exponential::builder()
            .seed(42)
            .max_retries(6)
            .build()
            .unwrap();
        let all: Vec<_> = fresh.by_ref().collect();
        e.reset();
        assert_eq!(e.by_ref().collect::<Vec<_>>(), all);
    }

    #[test]
    fn unseeded_clone_gets_fresh_randomness() {
        let proto = Exponential::builder()
            .initial(Duration::from_secs(1))
            .max_delay(Duration::from_secs(1))
            .no_max_retries()
            .build()
            .unwrap();
        let a: Vec<_> = proto.clone().take(8).collect();
        let b: Vec<_> = proto.clone().take(8).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn debug_shows_configuration() {
        let s = format!("{:?}", Exponential::default());
        assert!(
            s.contains("initial: 100ms") && s.contains("jitter: Full"),
            "{s}"
        );
    }

    #[test]
    fn is_send_sync_clone_debug_object_safe() {
        fn check<T: Send + Sync + Clone + fmt::Debug + 'static>() {}
        check::<Exponential>();
        check::<ExponentialBuilder>();
        let mut b: Box<dyn Backoff + Send + Sync> = Box::new(Exponential::default());
        assert!(b.next_delay().is_some());
    }
}
