//! The limiters against an independent reference GCRA (the continuous-state leaky bucket), and
//! the window bound.

use std::time::Duration;

use proptest::prelude::*;

use super::nz;
use crate::clock::ManualClock;
use crate::{KeyedStore, Quota, RateLimiter};

/// The continuous-state leaky bucket (ITU-T I.371), in u128: `level` ns of "water" that drains
/// at 1 ns per ns, capacity `burst · T`. Equivalent to GCRA's virtual scheduling, written
/// independently of it.
#[derive(Clone, Copy, Default)]
struct Reference {
    level: u128,
    last: u128,
}

impl Reference {
    fn drain(&mut self, now: u128) {
        self.level = self.level.saturating_sub(now - self.last);
        self.last = now;
    }

    /// `Some(wait)` if admitted (wait before use), `None` if refused.
    fn take(&mut self, q: &Quota, now: u128, n: u32, max_wait: u128) -> Option<u128> {
        if n > q.burst().get() {
            return None;
        }
        self.drain(now);
        let t = u128::from(q.emission_interval_nanos());
        let cap = t * u128::from(q.burst().get());
        let level = self.level + t * u128::from(n);
        if level > cap + max_wait {
            return None;
        }
        self.level = level;
        Some(level.saturating_sub(cap))
    }

    fn release(&mut self, q: &Quota, now: u128, n: u32) {
        if n > q.burst().get() {
            return;
        }
        self.drain(now);
        self.level = self
            .level
            .saturating_sub(u128::from(q.emission_interval_nanos()) * u128::from(n));
    }

    fn pause(&mut self, q: &Quota, now: u128, delay: u128) {
        self.drain(now);
        self.level = self.level.max(delay + u128::from(q.tolerance_nanos()));
    }
}

#[derive(Debug, Clone)]
enum Op {
    Check(u32),
    Reserve(u32, u64),
    Release(u32),
    Pause(u64),
}

fn quota() -> impl Strategy<Value = Quota> {
    (1u64..5_000, 1u32..12).prop_map(|(t, burst)| {
        Quota::with_interval(Duration::from_nanos(t))
            .and_then(|q| q.with_burst(nz(burst)))
            .expect("valid quota")
    })
}

fn op(max_burst: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1..=max_burst + 1).prop_map(Op::Check),
        2 => (1..=max_burst + 1, 0u64..20_000).prop_map(|(n, w)| Op::Reserve(n, w)),
        1 => (1..=max_burst).prop_map(Op::Release),
        1 => (0u64..20_000).prop_map(Op::Pause),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every operation admits exactly what the reference admits, with the same waits.
    #[test]
    fn direct_matches_reference(
        q in quota(),
        steps in prop::collection::vec((0u64..30_000, op(12)), 1..200),
    ) {
        let clock = ManualClock::new();
        let l = RateLimiter::with_clock(q, clock.clone());
        let mut r = Reference::default();
        for (dt, op) in steps {
            clock.advance_nanos(dt);
            let now = u128::from(crate::clock::Clock::now(&clock));
            match op {
                Op::Check(n) => {
                    let got = l.check_n(nz(n)).ok().filter(|d| d.allowed).map(|d| d.retry_after);
                    let want = r.take(&q, now, n, 0).map(|w| Duration::from_nanos(w as u64));
                    prop_assert_eq!(got, want);
                }
                Op::Reserve(n, w) => {
                    let got = l
                        .reserve(nz(n), Duration::from_nanos(w))
                        .ok()
                        .filter(|d| d.allowed)
                        .map(|d| d.retry_after);
                    let want = r.take(&q, now, n, u128::from(w)).map(|w| Duration::from_nanos(w as u64));
                    prop_assert_eq!(got, want);
                }
                Op::Release(n) => {
                    l.release(nz(n));
                    r.release(&q, now, n);
                }
                Op::Pause(d) => {
                    let _ = l.pause(Duration::from_nanos(d));
                    r.pause(&q, now, u128::from(d));
                }
            }
        }
    }

    /// Over any window of length L, admitted cells <= burst + L / T.
    #[test]
    fn window_bound(
        q in quota(),
        steps in prop::collection::vec((0u64..10_000, 1u32..4), 1..300),
    ) {
        let clock = ManualClock::new();
        let l = RateLimiter::with_clock(q, clock.clone());
        let mut admitted: Vec<(u64, u64)> = Vec::new();
        for (dt, n) in steps {
            clock.advance_nanos(dt);
            if let Ok(d) = l.check_n(nz(n)) {
                if d.allowed {
                    admitted.push((crate::clock::Clock::now(&clock), u64::from(n)));
                }
            }
        }
        let t = q.emission_interval_nanos();
        let burst = u64::from(q.burst().get());
        for i in 0..admitted.len() {
            let mut cells = 0;
            for j in i..admitted.len() {
                cells += admitted[j].1;
                let len = admitted[j].0 - admitted[i].0;
                prop_assert!(
                    cells <= burst + len / t,
                    "{} cells in {} ns (T = {}, burst = {})", cells, len, t, burst
                );
            }
        }
    }

    /// The keyed store is exact per key even while it drops idle keys and re-creates them
    /// (one shard, sweeping on every insert past one entry, any idle grace).
    #[test]
    fn keyed_matches_reference_through_sweeps(
        q in quota(),
        steps in prop::collection::vec((0u64..30_000, 0u8..4, op(12), any::<bool>()), 1..200),
        grace in 0u64..20_000,
    ) {
        let clock = ManualClock::new();
        let store: KeyedStore<u8, ManualClock> = KeyedStore::builder()
            .shards(1)
            .min_sweep(1)
            .idle_grace(Duration::from_nanos(grace))
            .clock(clock.clone())
            .build();
        let mut refs = [Reference::default(); 4];
        for (dt, key, op, sweep) in steps {
            clock.advance_nanos(dt);
            if sweep {
                store.sweep();
            }
            let now = u128::from(crate::clock::Clock::now(&clock));
            let r = &mut refs[usize::from(key)];
            match op {
                Op::Check(n) | Op::Reserve(n, 0) => {
                    let got = store.reserve_now(&key, &q, nz(n), Duration::ZERO)
                        .ok().filter(|d| d.allowed).map(|d| d.retry_after);
                    let want = r.take(&q, now, n, 0).map(|w| Duration::from_nanos(w as u64));
                    prop_assert_eq!(got, want);
                }
                Op::Reserve(n, w) => {
                    let got = store.reserve_now(&key, &q, nz(n), Duration::from_nanos(w))
                        .ok().filter(|d| d.allowed).map(|d| d.retry_after);
                    let want = r.take(&q, now, n, u128::from(w)).map(|w| Duration::from_nanos(w as u64));
                    prop_assert_eq!(got, want);
                }
                Op::Release(n) => {
                    store.release_now(&key, &q, nz(n));
                    r.release(&q, now, n);
                }
                Op::Pause(d) => {
                    let _ = store.pause_now(&key, &q, Duration::from_nanos(d));
                    r.pause(&q, now, u128::from(d));
                }
            }
            prop_assert!(store.len() <= 4);
        }
    }
}
