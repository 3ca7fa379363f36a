//! Requests and accepts over a sliding window, lock-free: a ring of buckets, each one
//! `AtomicU64` holding the bucket's epoch and both counts, so that starting a new bucket and
//! counting into it is one compare-and-swap and no count is ever lost.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering};

const EPOCH_BITS: u32 = 16;
const COUNT_BITS: u32 = 24;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
const EPOCH_MASK: u64 = (1 << EPOCH_BITS) - 1;

/// `[epoch: 16][requests: 24][accepts: 24]`.
fn pack(epoch: u64, requests: u64, accepts: u64) -> u64 {
    ((epoch & EPOCH_MASK) << (2 * COUNT_BITS)) | (requests << COUNT_BITS) | accepts
}

fn unpack(word: u64) -> (u64, u64, u64) {
    (
        word >> (2 * COUNT_BITS),
        (word >> COUNT_BITS) & COUNT_MAX,
        word & COUNT_MAX,
    )
}

/// The ring. Bucket `e % len` holds epoch `e` (the epoch is the time divided by the bucket's
/// length); a bucket is reset by the first count of a new epoch.
pub(crate) struct Window {
    buckets: Box<[AtomicU64]>,
}

impl Window {
    pub(crate) fn new(buckets: usize) -> Window {
        Window {
            // A fresh bucket's epoch must not look current: mark it one ring behind epoch 0.
            buckets: (0..buckets.max(1))
                .map(|_| AtomicU64::new(pack(EPOCH_MASK, 0, 0)))
                .collect(),
        }
    }

    /// Counts one request in `epoch`, accepted or not. Past 16,777,215 requests in one bucket
    /// further ones are not counted (the ratio of the counted ones stands). Returns whether the
    /// totals are due to be read again: at a bucket's first count, and every 8th.
    pub(crate) fn record(&self, epoch: u64, accepted: bool) -> bool {
        let bucket = &self.buckets[(epoch % self.buckets.len() as u64) as usize];
        let mut cur = bucket.load(Ordering::Relaxed);
        loop {
            let (be, req, acc) = unpack(cur);
            // A writer that read the clock before another started a newer epoch in this bucket
            // (ahead by one turn of the ring) counts into the newer one, late by under a bucket, rather
            // than wiping it.
            let ahead = be.wrapping_sub(epoch) & EPOCH_MASK;
            let (e, req, acc) = if ahead <= self.buckets.len() as u64 {
                (be, req, acc)
            } else {
                (epoch & EPOCH_MASK, 0, 0)
            };
            if req == COUNT_MAX {
                return false;
            }
            let next = pack(e, req + 1, acc + u64::from(accepted));
            match bucket.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return req % 8 == 0,
                Err(seen) => cur = seen,
            }
        }
    }

    /// Requests and accepts over the ring's buckets for the epochs `epoch - len + 1 ..= epoch`.
    pub(crate) fn totals(&self, epoch: u64) -> (u64, u64) {
        let len = self.buckets.len() as u64;
        let (mut requests, mut accepts) = (0, 0);
        for bucket in self.buckets.iter() {
            let (be, req, acc) = unpack(bucket.load(Ordering::Relaxed));
            // The age in buckets, on the 16-bit epoch (wraps after 65,536 buckets).
            let age = (epoch & EPOCH_MASK).wrapping_sub(be) & EPOCH_MASK;
            if age < len {
                requests += req;
                accepts += acc;
            }
        }
        (requests, accepts)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn counts_expire_with_their_bucket() {
        let w = Window::new(4);
        assert_eq!(w.totals(0), (0, 0));
        w.record(0, true);
        w.record(0, false);
        w.record(3, true);
        assert_eq!(w.totals(3), (3, 2));
        assert_eq!(w.totals(4), (1, 1));
        // Epoch 4 reuses epoch 0's bucket: reset, not added to.
        w.record(4, false);
        assert_eq!(w.totals(4), (2, 1));
        assert_eq!(w.totals(100), (0, 0));
        // Across the 16-bit wrap.
        let w = Window::new(4);
        let e = (1 << 16) - 1;
        w.record(e, true);
        w.record(e + 1, true);
        assert_eq!(w.totals(e + 1), (2, 2));
    }

    #[test]
    fn a_full_bucket_stops_counting() {
        let w = Window::new(1);
        let b = &w.buckets[0];
        b.store(pack(7, COUNT_MAX, 5), Ordering::Relaxed);
        w.record(7, true);
        assert_eq!(w.totals(7), (COUNT_MAX, 5));
    }
}
