//! The invariants of resile-backoff, each pinned over arbitrary valid configurations.

use std::time::Duration;

use proptest::prelude::*;
use resile_backoff::{
    Backoff, BackoffConfigError, Constant, Exponential, ExponentialBuilder, Jitter,
    SmoothDecorrelated,
};

/// How many delays each case draws when the backoff has no retry limit.
const DRAWS: usize = 64;

/// Durations from a nanosecond to `Duration::MAX`, weighted towards the ones people use but
/// covering both sides of `u64::MAX` nanoseconds (about 584 years) and the very top.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        4 => (1u64..=10_000_000_000).prop_map(Duration::from_nanos),
        2 => (1u64..=1_000).prop_map(Duration::from_nanos),
        2 => (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        1 => (18_446_744_000u64..=18_446_744_100, 0u32..1_000_000_000)
            .prop_map(|(s, n)| Duration::new(s, n)),
        1 => Just(Duration::MAX),
        1 => (0u64..1_000_000).prop_map(|k| Duration::MAX - Duration::from_nanos(k)),
    ]
    .prop_map(|d| {
        if d.is_zero() {
            Duration::from_nanos(1)
        } else {
            d
        }
    })
}

fn multiplier() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(1.0),
        Just(2.0),
        1.0f64..4.0,
        (0.0f64..300.0).prop_map(|e| 10f64.powf(e)),
        Just(f64::MAX),
    ]
}

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
    ]
}

/// A configuration the builder accepts.
#[derive(Debug, Clone)]
struct Config {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: Jitter,
    seed: u64,
}

impl Config {
    /// Unlimited retries, seeded.
    fn builder(&self) -> ExponentialBuilder {
        Exponential::builder()
            .initial(self.initial)
            .max_delay(self.max)
            .multiplier(self.multiplier)
            .jitter(self.jitter)
            .no_max_retries()
            .seed(self.seed)
    }

    fn with_jitter(&self, jitter: Jitter) -> Exponential {
        self.builder().jitter(jitter).build().expect("valid")
    }
}

fn config() -> impl Strategy<Value = Config> {
    (duration(), duration(), multiplier(), jitter(), any::<u64>()).prop_map(
        |(a, b, multiplier, jitter, seed)| Config {
            initial: a.min(b),
            max: a.max(b),
            multiplier,
            jitter,
            seed,
        },
    )
}

fn draw(backoff: &mut Exponential, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|_| backoff.next_delay().expect("unlimited"))
        .collect()
}

fn nanos(d: Duration) -> f64 {
    d.as_nanos() as f64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// No delay ever exceeds max_delay, whatever the jitter: the cap comes after jitter.
    #[test]
    fn cap_holds_after_jitter(cfg in config()) {
        let mut backoff = cfg.builder().build().expect("valid");
        for (n, d) in draw(&mut backoff, DRAWS).into_iter().enumerate() {
            prop_assert!(d <= cfg.max, "delay {} = {:?} > cap {:?}", n, d, cfg.max);
        }
    }

    /// Jitter::None gives min(max, initial × multiplier^n), to the nanosecond up to f64
    /// rounding (one part in 10^12 allows for the rounding of 64 multiplications).
    #[test]
    fn no_jitter_is_the_capped_curve(cfg in config()) {
        let mut backoff = cfg.with_jitter(Jitter::None);
        for (n, d) in draw(&mut backoff, DRAWS).into_iter().enumerate() {
            let curve = nanos(cfg.initial) * cfg.multiplier.powi(n as i32);
            let expected = curve.min(nanos(cfg.max));
            let got = nanos(d);
            prop_assert!(
                (got - expected).abs() <= 1.0 + expected * 1e-12,
                "delay {}: got {:?}, expected {} ns", n, d, expected
            );
        }
    }

    /// Where the curve is exactly representable (whole milliseconds, integer multipliers,
    /// below 2^53 ns), Jitter::None is exact.
    #[test]
    fn no_jitter_is_exact_on_representable_curves(
        initial_ms in 1u64..=1_000,
        multiplier in 1u32..=4,
        max_ms in 1u64..=86_400_000,
    ) {
        let max_ms = max_ms.max(initial_ms);
        let mut backoff = Exponential::builder()
            .initial(Duration::from_millis(initial_ms))
            .multiplier(f64::from(multiplier))
            .max_delay(Duration::from_millis(max_ms))
            .jitter(Jitter::None)
            .max_retries(40)
            .build()
            .expect("valid");
        let mut curve = u128::from(initial_ms);
        for n in 0..40 {
            let expected = Duration::from_millis(curve.min(u128::from(max_ms)) as u64);
            prop_assert_eq!(backoff.next_delay(), Some(expected), "delay {}", n);
            curve = curve.saturating_mul(u128::from(multiplier));
        }
        prop_assert_eq!(backoff.next_delay(), None);
    }

    /// Full jitter lies in [0, the un-jittered delay].
    #[test]
    fn full_jitter_lies_under_the_curve(cfg in config()) {
        let none = draw(&mut cfg.with_jitter(Jitter::None), DRAWS);
        let full = draw(&mut cfg.with_jitter(Jitter::Full), DRAWS);
        for (n, (c, d)) in none.iter().zip(&full).enumerate() {
            prop_assert!(d <= c, "delay {}: {:?} above the curve {:?}", n, d, c);
        }
    }

    /// Equal jitter lies in [half the un-jittered delay, the un-jittered delay].
    #[test]
    fn equal_jitter_lies_in_the_upper_half(cfg in config()) {
        let none = draw(&mut cfg.with_jitter(Jitter::None), DRAWS);
        let equal = draw(&mut cfg.with_jitter(Jitter::Equal), DRAWS);
        for (n, (c, d)) in none.iter().zip(&equal).enumerate() {
            prop_assert!(*c / 2 <= *d && d <= c, "delay {}: {:?} outside [{:?}/2, {:?}]", n, d, c, c);
        }
    }

    /// Decorrelated jitter lies in [initial, min(max, 3 × previous)], previous starting at
    /// initial.
    #[test]
    fn decorrelated_jitter_stays_in_its_range(cfg in config()) {
        let mut backoff = cfg.with_jitter(Jitter::Decorrelated);
        let mut prev = cfg.initial;
        for (n, d) in draw(&mut backoff, DRAWS).into_iter().enumerate() {
            let hi = cfg.max.min(prev.saturating_mul(3));
            prop_assert!(
                cfg.initial <= d && d <= hi,
                "delay {}: {:?} outside [{:?}, {:?}]", n, d, cfg.initial, hi
            );
            prev = d;
        }
    }

    /// max_retries(n) yields exactly n delays, then None forever; reset() starts over, and a
    /// seeded backoff replays the same delays.
    #[test]
    fn max_retries_yields_exactly_n(cfg in config(), retries in 0u32..=40) {
        let mut backoff = cfg.builder().max_retries(retries).build().expect("valid");
        prop_assert_eq!(backoff.size_hint(), (retries as usize, Some(retries as usize)));
        let first: Vec<Duration> = backoff.by_ref().take(1_000).collect();
        prop_assert_eq!(first.len(), retries as usize);
        for _ in 0..10 {
            prop_assert_eq!(backoff.next_delay(), None);
        }
        backoff.reset();
        let again: Vec<Duration> = backoff.by_ref().take(1_000).collect();
        prop_assert_eq!(&again, &first);
        prop_assert_eq!(backoff.next_delay(), None);
    }

    /// reset() in the middle starts over too.
    #[test]
    fn reset_midway_starts_over(cfg in config(), before in 0usize..20) {
        let mut backoff = cfg.builder().build().expect("valid");
        let reference = draw(&mut cfg.builder().build().expect("valid"), 20);
        draw(&mut backoff, before);
        backoff.reset();
        prop_assert_eq!(draw(&mut backoff, 20), reference);
    }

    /// Same seed, same sequence: from two builds, and from a clone taken midway.
    #[test]
    fn same_seed_same_sequence(cfg in config(), skip in 0usize..10) {
        let builder = cfg.builder();
        let mut a = builder.build().expect("valid");
        let mut b = builder.build().expect("valid");
        prop_assert_eq!(draw(&mut a, skip), draw(&mut b, skip));
        let mut c = a.clone();
        let rest = draw(&mut a, DRAWS);
        prop_assert_eq!(&rest, &draw(&mut b, DRAWS));
        prop_assert_eq!(&rest, &draw(&mut c, DRAWS));
    }

    /// Two backoffs built from one unseeded builder draw different sequences, and so do two
    /// clones of one unseeded backoff. (Delays of at least a microsecond with room for
    /// randomness, so that a collision of 16 draws by chance is out of the question.)
    #[test]
    fn unseeded_backoffs_get_their_own_randomness(
        initial_us in 1u64..=10_000_000,
        spread in 2u64..=1_000,
        multiplier in multiplier(),
        jitter in prop_oneof![Just(Jitter::Full), Just(Jitter::Equal), Just(Jitter::Decorrelated)],
    ) {
        let initial = Duration::from_micros(initial_us);
        let builder = Exponential::builder()
            .initial(initial)
            .max_delay(initial * spread as u32)
            .multiplier(multiplier)
            .jitter(jitter)
            .no_max_retries();
        let mut a = builder.build().expect("valid");
        let mut b = builder.build().expect("valid");
        prop_assert_ne!(draw(&mut a, 16), draw(&mut b, 16));
        let mut c = a.clone();
        prop_assert_ne!(draw(&mut a, 16), draw(&mut c, 16));
    }

    /// The builder accepts exactly the sane configurations, names what is wrong otherwise, and
    /// whatever it accepts runs without panicking (reset and clone included).
    #[test]
    fn builder_accepts_exactly_the_sane_configs(
        initial in prop_oneof![Just(Duration::ZERO), duration()],
        max in prop_oneof![Just(Duration::ZERO), duration()],
        multiplier in prop_oneof![any::<f64>(), multiplier(), Just(f64::NAN), Just(f64::INFINITY), Just(0.999_999)],
        jitter in jitter(),
    ) {
        let result = Exponential::builder()
            .initial(initial)
            .max_delay(max)
            .multiplier(multiplier)
            .jitter(jitter)
            .max_retries(100)
            .build();
        match result {
            Err(BackoffConfigError::MultiplierNotFinite { multiplier: m }) => {
                prop_assert!(!multiplier.is_finite());
                prop_assert_eq!(m.to_bits(), multiplier.to_bits());
            }
            Err(BackoffConfigError::MultiplierBelowOne { multiplier: m }) => {
                prop_assert!(multiplier.is_finite() && multiplier < 1.0);
                prop_assert_eq!(m, multiplier);
            }
            Err(BackoffConfigError::ZeroInitial) => {
                prop_assert!(multiplier.is_finite() && multiplier >= 1.0 && initial.is_zero());
            }
            Err(BackoffConfigError::MaxDelayBelowInitial { initial: i, max_delay: m }) => {
                prop_assert!(multiplier.is_finite() && multiplier >= 1.0 && !initial.is_zero());
                prop_assert!(max < initial);
                prop_assert_eq!((i, m), (initial, max));
            }
            Err(other) => prop_assert!(false, "unexpected error {:?}", other),
            Ok(mut backoff) => {
                prop_assert!(multiplier.is_finite() && multiplier >= 1.0);
                prop_assert!(!initial.is_zero() && initial <= max);
                let mut clone = backoff.clone();
                let delays: Vec<Duration> = backoff.by_ref().collect();
                prop_assert_eq!(delays.len(), 100);
                prop_assert!(delays.iter().all(|d| *d <= max));
                backoff.reset();
                prop_assert_eq!(backoff.by_ref().count(), 100);
                prop_assert_eq!(clone.by_ref().count(), 100);
            }
        }
    }

    /// The Iterator is the same sequence as next_delay().
    #[test]
    fn iterator_is_next_delay(cfg in config(), retries in 0u32..=30) {
        let builder = cfg.builder().max_retries(retries);
        let by_iter: Vec<Duration> = builder.build().expect("valid").collect();
        let mut backoff = builder.build().expect("valid");
        let mut by_call = Vec::new();
        while let Some(d) = backoff.next_delay() {
            by_call.push(d);
        }
        prop_assert_eq!(by_iter, by_call);
    }

    /// Constant yields its delay exactly n times, then None until reset.
    #[test]
    fn constant_yields_exactly_n(delay in prop_oneof![Just(Duration::ZERO), duration()], retries in 0u32..=50) {
        let mut backoff = Constant::new(delay).max_retries(retries);
        let delays: Vec<Duration> = backoff.by_ref().take(1_000).collect();
        prop_assert_eq!(delays, vec![delay; retries as usize]);
        prop_assert_eq!(backoff.next_delay(), None);
        backoff.reset();
        prop_assert_eq!(backoff.by_ref().count(), retries as usize);
    }

    /// SmoothDecorrelated: every delay within the cap, exactly n delays, refusals as typed
    /// errors, the same sequence for the same seed — over arbitrary medians and caps.
    #[test]
    fn smooth_decorrelated_caps_counts_and_seeds(
        median in duration(),
        cap in duration(),
        retries in 0u32..=40,
        seed in any::<u64>(),
    ) {
        let builder = SmoothDecorrelated::builder()
            .median_first(median)
            .max_delay(cap)
            .max_retries(retries)
            .seed(seed);
        match builder.build() {
            Err(e) => {
                prop_assert!(cap < median);
                prop_assert_eq!(e, BackoffConfigError::MaxDelayBelowInitial { initial: median, max_delay: cap });
            }
            Ok(mut backoff) => {
                let delays: Vec<Duration> = backoff.by_ref().take(1_000).collect();
                prop_assert_eq!(delays.len(), retries as usize);
                prop_assert!(delays.iter().all(|d| *d <= cap));
                prop_assert_eq!(backoff.next_delay(), None);
                prop_assert_eq!(delays, builder.build().unwrap().collect::<Vec<_>>());
            }
        }
        let mut unlimited = builder.no_max_retries().build();
        if let Ok(b) = &mut unlimited {
            prop_assert!(b.by_ref().take(DRAWS).all(|d| d <= cap));
        }
    }
}
