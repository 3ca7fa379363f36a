//! Keyed memory stays bounded; the cap holds; known keys keep their state.

use std::time::Duration;

use super::nz;
use crate::clock::ManualClock;
use crate::{KeyedRateLimiter, KeyedStore, Quota};

#[test]
fn a_million_distinct_keys_leave_a_bounded_number_of_entries() {
    // 10 per second, burst 10; each key takes its whole burst, so it stays active (not idle) for
    // 1 s, then 1 s more in the idle grace. One new key every 100 µs (100 s in all): about
    // 20,000 keys are active or in their grace at any moment.
    let clock = ManualClock::new();
    let shards = 16;
    let min_sweep = 64;
    let l = KeyedRateLimiter::with_store(
        Quota::per_second(nz(10)),
        KeyedStore::builder()
            .clock(clock.clone())
            .shards(shards)
            .min_sweep(min_sweep)
            .build(),
    );
    let active = 20_000;
    let bound = 2 * (active + active / 4) + shards * min_sweep;
    let mut max_len = 0;
    for key in 0u64..1_000_000 {
        assert!(l.check_key_n(&key, nz(10)).unwrap().allowed);
        clock.advance(Duration::from_micros(100));
        if key % 1_000 == 0 {
            max_len = max_len.max(l.len());
        }
    }
    assert!(max_len <= bound, "held {max_len} entries, bound {bound}");
    // Nothing was refused for lack of room: there is no cap.
    assert_eq!(l.store().refused_new_keys(), 0);
    // Once every key is idle, one sweep empties the store.
    clock.advance(Duration::from_secs(2));
    l.store().sweep();
    assert_eq!(l.len(), 0);
    assert!(l.is_empty());
}

#[test]
fn the_cap_refuses_new_keys_only() {
    let clock = ManualClock::new();
    let l = KeyedRateLimiter::with_store(
        Quota::per_second(nz(1)),
        KeyedStore::builder()
            .clock(clock.clone())
            .shards(4)
            .min_sweep(2)
            .max_keys(40)
            .build(),
    );
    let mut admitted = 0;
    for key in 0u32..1_000 {
        let d = l.check_key(&key);
        if d.allowed {
            admitted += 1;
        } else {
            // Refused for room: told when the first key of the shard expires (1 s).
            assert_eq!(d.retry_after, Duration::from_secs(1));
            assert_eq!(d.remaining, 0);
        }
        assert!(l.len() <= 40, "len {} over the cap", l.len());
    }
    assert!((4..=40).contains(&admitted), "admitted {admitted}");
    assert_eq!(l.store().refused_new_keys(), 1_000 - admitted);
    // Known keys keep working (and keep their state): key 0 was admitted first.
    let first = (0u32..1_000).find(|k| l.store().peek(k, l.quota()).remaining == 0);
    let first = first.expect("some key holds state");
    assert!(!l.check_key(&first).allowed);
    // After the keys expire, new keys get in again.
    clock.advance(Duration::from_secs(1));
    assert!(l.check_key(&5_000).allowed);
}

#[test]
fn borrowed_lookups_and_release() {
    let clock = ManualClock::new();
    let q = Quota::per_minute(nz(2));
    let store: KeyedStore<String, ManualClock> = KeyedStore::builder().clock(clock).build();
    assert!(
        store
            .reserve_now("a", &q, nz(2), Duration::ZERO)
            .unwrap()
            .allowed
    );
    assert!(
        !store
            .reserve_now("a", &q, nz(1), Duration::ZERO)
            .unwrap()
            .allowed
    );
    store.release_now("a", &q, nz(1));
    assert!(
        store
            .reserve_now("a", &q, nz(1), Duration::ZERO)
            .unwrap()
            .allowed
    );
    // Releasing an unknown key inserts nothing.
    store.release_now("b", &q, nz(1));
    assert_eq!(store.len(), 1);
    assert!(store.reserve_now("a", &q, nz(3), Duration::ZERO).is_err());
    let d = store.pause_now("c", &q, Duration::from_secs(5));
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Duration::from_secs(5));
    assert_eq!(store.len(), 2);
    assert!(!format!("{store:?}").is_empty());
}
