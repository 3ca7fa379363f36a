//! Sliding windows of outcomes for the failure-rate policies: O(1) per record and per read,
//! no allocation after construction, no lock.
//!
//! Both windows keep a running total next to their slots. Every change of a slot is made by one
//! atomic operation that returns what the slot held before, and the total is then moved by
//! exactly the difference, so at any quiescent moment the total equals the sum of the slots —
//! whatever the interleaving, including a [`reset`](CountWindow::reset) racing with records. In
//! between, a reader may see the total a few outcomes off; the totals are read as signed and
//! clamped (`0 <= failures <= calls`), which is all a trip decision needs.
//!
//! - [`CountWindow`]: the last N outcomes, one bit per outcome (1 = failure) in a ring of
//!   `AtomicU64` words, a sequence number that hands out positions, and a running failure count.
//! - [`TimeWindow`]: a ring of B buckets, each one `AtomicU64` packing the bucket's number (16
//!   low bits), its calls (24 bits) and failures (24 bits), plus a head (the newest bucket number)
//!   and running totals. Advancing the head expires the buckets that left the window.

use crate::sync::{AtomicU64, Ordering};

/// Calls and failures currently in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
}

/// The largest count window.
pub(crate) const MAX_COUNT_WINDOW: u32 = 1 << 20;
/// The most buckets a time window may have (the totals fit 31 bits: 128 x (2^24 - 1) < 2^31).
pub(crate) const MAX_BUCKETS: u32 = 128;
/// The most calls one bucket counts; later calls in the same bucket are not recorded.
pub(crate) const BUCKET_CAPACITY: u64 = (1 << 24) - 1;

/// The last `size` outcomes.
#[derive(Debug)]
pub(crate) struct CountWindow {
    size: u64,
    seq: AtomicU64,
    bits: Box<[AtomicU64]>,
    /// Running number of set bits, wrapping; read as `i64`.
    failures: AtomicU64,
}

impl CountWindow {
    /// A window of the last `size` outcomes (`1 ..= MAX_COUNT_WINDOW`, checked by the builder).
    pub(crate) fn new(size: u32) -> Self {
        let size = u64::from(size.clamp(1, MAX_COUNT_WINDOW));
        let words = size.div_ceil(64) as usize;
        CountWindow {
            size,
            seq: AtomicU64::new(0),
            bits: (0..words).map(|_| AtomicU64::new(0)).collect(),
            failures: AtomicU64::new(0),
        }
    }

    /// Records one outcome and returns the window's counts after it.
    #[inline]
    pub(crate) fn record(&self, failure: bool) -> Counts {
        let i = self.seq.fetch_add(1, Ordering::AcqRel);
        let slot = i % self.size;
        let word = &self.bits[(slot / 64) as usize];
        let mask = 1u64 << (slot % 64);
        if failure {
            let old = word.fetch_or(mask, Ordering::AcqRel);
            if old & mask == 0 {
                self.failures.fetch_add(1, Ordering::AcqRel);
            }
        } else if word.load(Ordering::Acquire) & mask != 0 {
            let old = word.fetch_and(!mask, Ordering::AcqRel);
            if old & mask != 0 {
                self.failures.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let calls = (i.saturating_add(1)).min(self.size);
        Counts {
            calls,
            failures: clamp(self.failures.load(Ordering::Acquire) as i64, calls),
        }
    }

    /// Empties the window.
    pub(crate) fn reset(&self) {
        self.seq.store(0, Ordering::Release);
        for word in self.bits.iter() {
            let old = word.swap(0, Ordering::AcqRel);
            let n = u64::from(old.count_ones());
            if n != 0 {
                self.failures.fetch_sub(n, Ordering::AcqRel);
            }
        }
    }

    /// The number of failure bits set (tests: must equal the running count when quiescent).
    #[cfg(test)]
    pub(crate) fn set_bits(&self) -> u64 {
        self.bits
            .iter()
            .map(|b| u64::from(b.load(Ordering::Acquire).count_ones()))
            .sum()
    }

    /// The running failure count, unclamped.
    #[cfg(test)]
    pub(crate) fn raw_failures(&self) -> u64 {
        self.failures.load(Ordering::Acquire)
    }

    /// The counts now.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> Counts {
        let calls = self.seq.load(Ordering::Acquire).min(self.size);
        Counts {
            calls,
            failures: clamp(self.failures.load(Ordering::Acquire) as i64, calls),
        }
    }
}

fn clamp(failures: i64, calls: u64) -> u64 {
    (failures.max(0) as u64).min(calls)
}

const STAMP_BITS: u32 = 16;
const FIELD_BITS: u32 = 24;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;

#[inline]
fn pack_bucket(stamp: u16, calls: u64, failures: u64) -> u64 {
    u64::from(stamp) | (calls << STAMP_BITS) | (failures << (STAMP_BITS + FIELD_BITS))
}

#[inline]
fn unpack_bucket(v: u64) -> (u16, u64, u64) {
    (
        v as u16,
        (v >> STAMP_BITS) & FIELD_MASK,
        (v >> (STAMP_BITS + FIELD_BITS)) & FIELD_MASK,
    )
}

/// Totals are packed as `calls << 32` plus a signed 32-bit failure field, moved only by
/// wrapping additions of packed deltas: the final value is exact whatever the order.
#[inline]
fn pack_delta(calls: i64, failures: i64) -> u64 {
    (calls.wrapping_shl(32)).wrapping_add(failures) as u64
}

#[inline]
fn unpack_totals(v: u64) -> Counts {
    let failures = v as u32 as i32 as i64;
    let calls = (v as i64).wrapping_sub(failures) >> 32;
    let calls = calls.max(0) as u64;
    Counts {
        calls,
        failures: clamp(failures, calls),
    }
}

/// Outcomes of the last `buckets` buckets of `bucket_ms` milliseconds each.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    bucket_ms: u64,
    buckets: u64,
    /// The newest bucket number seen.
    head: AtomicU64,
    slots: Box<[AtomicU64]>,
    totals: AtomicU64,
}

impl TimeWindow {
    /// A window of `buckets` buckets of `bucket_ms` each (both >= 1, checked by the builder).
    pub(crate) fn new(bucket_ms: u64, buckets: u32) -> Self {
        let buckets = buckets.clamp(1, MAX_BUCKETS);
        TimeWindow {
            bucket_ms: bucket_ms.max(1),
            buckets: u64::from(buckets),
            head: AtomicU64::new(0),
            slots: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            totals: AtomicU64::new(0),
        }
    }

    /// The absolute number of the bucket stamped `stamp`, assuming it is within 2^15 buckets
    /// of `near`.
    #[inline]
    fn absolute(stamp: u16, near: u64) -> u64 {
        let back = (near as u16).wrapping_sub(stamp) as i16;
        near.wrapping_sub(back as i64 as u64)
    }

    /// Records one outcome at `now_ms` and returns the window's counts after it.
    pub(crate) fn record(&self, failure: bool, now_ms: u64) -> Counts {
        let m = now_ms / self.bucket_ms;
        let mut h = self.head.load(Ordering::Acquire);
        while m > h {
            match self
                .head
                .compare_exchange(h, m, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.expire_all(h, m);
                    h = m;
                }
                Err(actual) => h = actual,
            }
        }
        // A reading older than the head (a thread that was slow to get here) counts in the head
        // bucket: the window never moves backwards.
        let e = m.max(h);
        let idx = (e % self.buckets) as usize;
        let slot = &self.slots[idx];
        let fail = u64::from(failure);
        let mut cur = slot.load(Ordering::Acquire);
        loop {
            let (stamp, calls, failures) = unpack_bucket(cur);
            let (new, dc, df) = if calls != 0 && stamp == e as u16 {
                if calls >= BUCKET_CAPACITY {
                    return self.counts();
                }
                (
                    pack_bucket(stamp, calls + 1, failures + fail),
                    1,
                    fail as i64,
                )
            } else if calls == 0 || Self::absolute(stamp, e) < e {
                // Empty, or holding an older bucket that was not expired yet: take it over.
                (
                    pack_bucket(e as u16, 1, fail),
                    1 - calls as i64,
                    fail as i64 - failures as i64,
                )
            } else {
                // Holds a newer bucket: the head moved a whole window past `e` meanwhile.
                return self.counts();
            };
            match slot.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.totals.fetch_add(pack_delta(dc, df), Ordering::AcqRel);
                    break;
                }
                Err(actual) => cur = actual,
            }
        }
        // If the head left `e` behind while we recorded, expire our bucket ourselves.
        let h2 = self.head.load(Ordering::Acquire);
        if h2 >= e + self.buckets {
            self.expire_slot(idx, h2, h2);
        }
        self.counts()
    }

    /// After the head moved from `old` to `new`: empties every slot holding a bucket that is no
    /// longer among the last `buckets` (its number <= `new - buckets`).
    fn expire_all(&self, old: u64, new: u64) {
        for idx in 0..self.slots.len() {
            self.expire_slot(idx, old, new);
        }
    }

    /// Empties slot `idx` if it holds a bucket out of the window ending at bucket `new`; slot
    /// stamps are read relative to `near` (a head they are close to).
    fn expire_slot(&self, idx: usize, near: u64, new: u64) {
        let slot = &self.slots[idx];
        let mut cur = slot.load(Ordering::Acquire);
        loop {
            let (stamp, calls, failures) = unpack_bucket(cur);
            if calls == 0 {
                return;
            }
            let abs = Self::absolute(stamp, near);
            if abs.saturating_add(self.buckets) > new {
                return;
            }
            match slot.compare_exchange_weak(
                cur,
                pack_bucket(stamp, 0, 0),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.totals.fetch_add(
                        pack_delta(-(calls as i64), -(failures as i64)),
                        Ordering::AcqRel,
                    );
                    return;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Empties the window.
    pub(crate) fn reset(&self) {
        for slot in self.slots.iter() {
            let old = slot.swap(0, Ordering::AcqRel);
            let (_, calls, failures) = unpack_bucket(old);
            if calls != 0 {
                self.totals.fetch_add(
                    pack_delta(-(calls as i64), -(failures as i64)),
                    Ordering::AcqRel,
                );
            }
        }
    }

    /// The counts now (as of the last record: reading does not advance the window).
    pub(crate) fn counts(&self) -> Counts {
        unpack_totals(self.totals.load(Ordering::Acquire))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn count_window_keeps_the_last_n() {
        let w = CountWindow::new(4);
        assert_eq!(
            w.record(true),
            Counts {
                calls: 1,
                failures: 1
            }
        );
        assert_eq!(
            w.record(true),
            Counts {
                calls: 2,
                failures: 2
            }
        );
        assert_eq!(
            w.record(false),
            Counts {
                calls: 3,
                failures: 2
            }
        );
        assert_eq!(
            w.record(false),
            Counts {
                calls: 4,
                failures: 2
            }
        );
        // The first failure leaves the window.
        assert_eq!(
            w.record(false),
            Counts {
                calls: 4,
                failures: 1
            }
        );
        assert_eq!(
            w.record(true),
            Counts {
                calls: 4,
                failures: 1
            }
        );
        assert_eq!(
            w.record(true),
            Counts {
                calls: 4,
                failures: 2
            }
        );
        w.reset();
        assert_eq!(
            w.counts(),
            Counts {
                calls: 0,
                failures: 0
            }
        );
        assert_eq!(
            w.record(false),
            Counts {
                calls: 1,
                failures: 0
            }
        );
    }

    #[test]
    fn count_window_spans_words() {
        let w = CountWindow::new(130);
        for i in 0..400u64 {
            let c = w.record(i % 3 == 0);
            let lo = (i + 1).saturating_sub(130);
            let expected = (lo..=i).filter(|j| j % 3 == 0).count() as u64;
            assert_eq!(c.failures, expected, "after {i}");
            assert_eq!(c.calls, (i + 1).min(130));
        }
    }

    #[test]
    fn time_window_slides_by_bucket() {
        // 4 buckets of 100 ms: a 400 ms window.
        let w = TimeWindow::new(100, 4);
        assert_eq!(
            w.record(true, 0),
            Counts {
                calls: 1,
                failures: 1
            }
        );
        assert_eq!(
            w.record(false, 150),
            Counts {
                calls: 2,
                failures: 1
            }
        );
        assert_eq!(
            w.record(true, 399),
            Counts {
                calls: 3,
                failures: 2
            }
        );
        // Bucket 4 starts: bucket 0 (the first failure) leaves.
        assert_eq!(
            w.record(false, 400),
            Counts {
                calls: 3,
                failures: 1
            }
        );
        // A long gap empties everything.
        assert_eq!(
            w.record(false, 10_000),
            Counts {
                calls: 1,
                failures: 0
            }
        );
        // A late reading counts in the head bucket.
        assert_eq!(
            w.record(true, 50),
            Counts {
                calls: 2,
                failures: 1
            }
        );
        w.reset();
        assert_eq!(
            w.counts(),
            Counts {
                calls: 0,
                failures: 0
            }
        );
    }

    #[test]
    fn time_window_survives_stamp_wraparound() {
        let w = TimeWindow::new(1, 3);
        let mut t = 0;
        for _ in 0..3 {
            // Jump close to multiples of 2^16 buckets so stamps alias.
            t += 65_536;
            assert_eq!(
                w.record(true, t),
                Counts {
                    calls: 1,
                    failures: 1
                }
            );
            assert_eq!(w.record(false, t + 1).calls, 2);
        }
    }

    #[test]
    fn totals_decode_transient_negatives() {
        let v = pack_delta(3, 1).wrapping_add(pack_delta(0, -2));
        assert_eq!(
            unpack_totals(v),
            Counts {
                calls: 3,
                failures: 0
            }
        );
        let v = pack_delta(0, 0).wrapping_add(pack_delta(-1, -1));
        assert_eq!(
            unpack_totals(v),
            Counts {
                calls: 0,
                failures: 0
            }
        );
        let v = pack_delta(5, 2);
        assert_eq!(
            unpack_totals(v),
            Counts {
                calls: 5,
                failures: 2
            }
        );
    }

    #[test]
    fn threads_agree_with_the_bits() {
        let w = std::sync::Arc::new(CountWindow::new(100));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u32 {
                        w.record((i + t) % 2 == 0);
                        if i % 2500 == 0 {
                            w.reset();
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(w.raw_failures(), w.set_bits());
    }
}
