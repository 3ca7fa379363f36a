use std::time::Duration;

use proptest::prelude::*;

use super::nz;
use crate::clock::ManualClock;
use crate::{Decision, InsufficientCapacity, Quota, QuotaError, RateLimiter, MAX_WINDOW};

#[test]
fn quota_constructors() {
    let q = Quota::per_second(nz(10));
    assert_eq!(q.emission_interval(), Duration::from_millis(100));
    assert_eq!(q.burst(), nz(10));
    assert_eq!(q.window(), Duration::from_secs(1));
    assert_eq!(q.tolerance_nanos(), 900_000_000);

    let q = Quota::per_minute(nz(30));
    assert_eq!(q.emission_interval(), Duration::from_secs(2));
    let q = Quota::per_hour(nz(1));
    assert_eq!(q.emission_interval(), Duration::from_secs(3600));

    // 3 per second: T rounded up, never more than the nominal rate.
    let q = Quota::per_second(nz(3));
    assert_eq!(q.emission_interval_nanos(), 333_333_334);

    // More cells than nanoseconds: T is at least 1 ns.
    let q = Quota::new(nz(u32::MAX), Duration::from_nanos(1)).unwrap();
    assert_eq!(q.emission_interval_nanos(), 1);

    assert_eq!(
        Quota::new(nz(1), Duration::ZERO),
        Err(QuotaError::ZeroPeriod)
    );
    assert_eq!(
        Quota::with_interval(Duration::ZERO),
        Err(QuotaError::ZeroPeriod)
    );
    assert_eq!(
        Quota::with_interval(MAX_WINDOW + Duration::from_nanos(1)),
        Err(QuotaError::WindowTooLong)
    );
    assert!(Quota::with_interval(MAX_WINDOW).is_ok());
    assert_eq!(
        Quota::per_hour(nz(1)).with_burst(nz(u32::MAX)),
        Err(QuotaError::WindowTooLong)
    );
    assert_eq!(
        Quota::new(nz(1), Duration::MAX),
        Err(QuotaError::WindowTooLong)
    );
    let q = Quota::per_second(nz(10)).with_burst(nz(3)).unwrap();
    assert_eq!(q.burst(), nz(3));
    assert_eq!(q.rate(), nz(10));
    assert!(!format!("{q:?}").is_empty());
    assert!(!QuotaError::ZeroPeriod.to_string().is_empty());
}

#[test]
fn policy_in_whole_seconds() {
    assert_eq!(Quota::per_minute(nz(100)).policy(), (100, 60));
    assert_eq!(Quota::per_second(nz(10)).policy(), (10, 1));
    // 1 per 300 ms: widened to 1 s, 3 per second (not 3.33).
    let q = Quota::new(nz(1), Duration::from_millis(300)).unwrap();
    assert_eq!(q.policy(), (3, 1));
    // 5 per 1.5 s: widened to 2 s, 6 per 2 s.
    let q = Quota::new(nz(5), Duration::from_millis(1500)).unwrap();
    assert_eq!(q.policy(), (6, 2));
}

#[test]
fn decisions_carry_remaining_retry_and_reset() {
    let clock = ManualClock::new();
    let l = RateLimiter::with_clock(
        Quota::per_second(nz(10)).with_burst(nz(3)).unwrap(),
        clock.clone(),
    );
    let d = l.check();
    assert_eq!(
        d,
        Decision {
            allowed: true,
            limit: 3,
            remaining: 2,
            retry_after: Duration::ZERO,
            reset_after: Duration::from_millis(100),
        }
    );
    assert_eq!(l.check().remaining, 1);
    let d = l.check();
    assert!(d.allowed);
    assert_eq!(d.remaining, 0);
    assert_eq!(d.reset_after, Duration::from_millis(300));
    let d = l.check();
    assert_eq!(
        d,
        Decision {
            allowed: false,
            limit: 3,
            remaining: 0,
            retry_after: Duration::from_millis(100),
            reset_after: Duration::from_millis(300),
        }
    );
    assert_eq!(d.replenish_after(l.quota()), Duration::from_millis(100));
    clock.advance(Duration::from_millis(150));
    // One cell back (and half of the next).
    let p = l.peek();
    assert_eq!(p.remaining, 1);
    assert_eq!(p.replenish_after(l.quota()), Duration::from_millis(50));
    // Two cells at once do not fit yet: refused, nothing taken.
    let d = l.check_n(nz(2)).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.remaining, 1);
    assert_eq!(d.retry_after, Duration::from_millis(50));
    assert_eq!(
        l.check_n(nz(4)),
        Err(InsufficientCapacity {
            requested: nz(4),
            burst: nz(3)
        })
    );
    clock.advance(Duration::from_millis(50));
    assert!(l.check_n(nz(2)).unwrap().allowed);
    assert_eq!(l.peek().remaining, 0);
    // A full bucket after a long idle time.
    clock.advance(Duration::from_secs(10));
    let p = l.peek();
    assert_eq!(
        (p.allowed, p.remaining, p.reset_after),
        (true, 3, Duration::ZERO)
    );
    assert_eq!(p.replenish_after(l.quota()), Duration::ZERO);
}

#[test]
fn reservations_queue_and_release() {
    let clock = ManualClock::new();
    let l = RateLimiter::with_clock(Quota::per_second(nz(1)), clock.clone());
    assert!(l.check().allowed);
    // The next slot is 1 s away: too far for a 500 ms wait, fine for 2 s.
    let d = l.reserve(nz(1), Duration::from_millis(500)).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Duration::from_secs(1));
    let d = l.reserve(nz(1), Duration::from_secs(2)).unwrap();
    assert!(d.allowed);
    assert_eq!(d.retry_after, Duration::from_secs(1));
    let d = l.reserve(nz(1), Duration::from_secs(2)).unwrap();
    assert_eq!((d.allowed, d.retry_after), (true, Duration::from_secs(2)));
    // Give the last one back: the next reservation takes its place.
    l.release(nz(1));
    let d = l.reserve(nz(1), Duration::from_secs(5)).unwrap();
    assert_eq!(d.retry_after, Duration::from_secs(2));
}

#[test]
fn pause_blocks_then_paces() {
    let clock = ManualClock::new();
    let l = RateLimiter::with_clock(Quota::per_second(nz(10)), clock.clone());
    let d = l.pause(Duration::from_secs(3));
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Duration::from_secs(3));
    assert!(!l.check().allowed);
    clock.advance(Duration::from_millis(2999));
    assert!(!l.check().allowed);
    clock.advance(Duration::from_millis(1));
    assert!(l.check().allowed);
    // Then one per emission interval, the burst refilling gradually.
    assert!(!l.check().allowed);
    clock.advance(Duration::from_millis(100));
    assert!(l.check().allowed);
    // A shorter pause never shortens a longer one.
    let _ = l.pause(Duration::from_secs(60));
    let _ = l.pause(Duration::from_secs(1));
    clock.advance(Duration::from_secs(30));
    assert!(!l.check().allowed);
}

#[test]
fn far_clock_readings_saturate_without_panic() {
    let clock = ManualClock::new();
    let l = RateLimiter::with_clock(Quota::per_second(nz(5)), clock.clone());
    clock.advance_nanos(1 << 62);
    assert!(l.check().allowed);
    let _ = l.pause(Duration::MAX);
    assert!(!l.check().allowed);
    assert!(!l.reserve(nz(5), Duration::from_secs(3600)).unwrap().allowed);
    // Near the end of u64 nanoseconds everything saturates; nothing panics or wraps.
    clock.advance_nanos(u64::MAX);
    let _ = l.check();
    let _ = l.reserve(nz(5), Duration::MAX).unwrap();
    l.release(nz(5));
    let _ = l.peek();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn fast_division_is_exact(t in 1u64..=(1 << 40), x in 0u64..=(1 << 62)) {
        let q = Quota::with_interval(Duration::from_nanos(t)).unwrap();
        prop_assert_eq!(q.div_t_for_test(x), x / t);
    }

    #[test]
    fn replenish_after_matches_the_next_cell(burst in 1u32..50, taken in 0u32..60, elapsed_ms in 0u64..10_000) {
        let clock = ManualClock::new();
        let q = Quota::per_second(nz(7)).with_burst(nz(burst)).unwrap();
        let l = RateLimiter::with_clock(q, clock.clone());
        for _ in 0..taken { let _ = l.check(); }
        clock.advance(Duration::from_millis(elapsed_ms));
        let d = l.peek();
        let wait = d.replenish_after(&q);
        if d.remaining == d.limit {
            prop_assert_eq!(wait, Duration::ZERO);
        } else {
            prop_assert!(wait > Duration::ZERO);
            clock.advance(wait);
            prop_assert_eq!(l.peek().remaining, d.remaining + 1);
        }
    }
}
