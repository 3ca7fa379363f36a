//! A fixed-memory log-linear latency histogram.
//!
//! Values are nanoseconds. Below 32 ns each value has its own bucket; above, every power of two
//! is split into 32 equal buckets, up to 2^40 ns (about 18 minutes; longer latencies land in the
//! last bucket). A quantile is reported as the middle of its bucket, so it is within 1/64
//! (1.6 %) of the exact value.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// The largest value that has a bucket of its own (2^40 - 1 ns).
const MAX_BITS: u32 = 40;
/// 32 exact buckets, then 32 per power of two from 2^5 to 2^39.
pub(crate) const BUCKETS: usize = SUB + (MAX_BITS - SUB_BITS) as usize * SUB;

/// The bucket of `nanos`.
#[inline]
pub(crate) fn bucket(nanos: u64) -> usize {
    let v = nanos.min((1 << MAX_BITS) - 1);
    if v < SUB as u64 {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    let sub = ((v >> shift) as usize) & (SUB - 1);
    (msb - SUB_BITS + 1) as usize * SUB + sub
}

/// The value reported for bucket `i`: the middle of its range.
pub(crate) fn bucket_value(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let octave = (i / SUB) as u32 - 1; // 0 for [32, 64)
    let sub = (i % SUB) as u64;
    let shift = octave;
    let low = (SUB as u64 + sub) << shift;
    low + ((1u64 << shift) >> 1)
}

/// Bucket counts of one interval, written concurrently by the request path.
pub(crate) struct AtomicHistogram {
    counts: Box<[AtomicU32]>,
}

impl AtomicHistogram {
    pub(crate) fn new() -> Self {
        AtomicHistogram {
            counts: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    #[inline]
    pub(crate) fn record(&self, nanos: u64) {
        self.counts[bucket(nanos)].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds every count into `into` and zeroes this histogram.
    pub(crate) fn drain_into(&self, into: &mut Histogram) {
        for (c, total) in self.counts.iter().zip(into.counts.iter_mut()) {
            let n = c.swap(0, Ordering::Relaxed);
            *total += u64::from(n);
        }
    }

    pub(crate) fn add_to(&self, into: &mut Histogram) {
        for (c, total) in self.counts.iter().zip(into.counts.iter_mut()) {
            *total += u64::from(c.load(Ordering::Relaxed));
        }
    }
}

/// Bucket counts added up over some intervals, read by reports.
#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Box<[u64]>,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The value at quantile `q` (0 to 1) of the recorded values, `None` when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        // The smallest value with at least ceil(q * n) values at or below it.
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Duration::from_nanos(bucket_value(i)));
            }
        }
        None
    }

    pub(crate) fn latency(&self) -> Latency {
        Latency {
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            max: self.quantile(1.0),
        }
    }
}

/// Latency to the response head, from the histogram (each figure within 1.6 % of the exact
/// value); `None` when nothing was recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Latency {
    /// The median.
    pub p50: Option<Duration>,
    /// The 90th percentile.
    pub p90: Option<Duration>,
    /// The 99th percentile.
    pub p99: Option<Duration>,
    /// The largest value recorded.
    pub max: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_cover_the_range_in_order() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(31), 31);
        assert_eq!(bucket(32), 32);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        let mut last = 0;
        for v in 0..1_000_000u64 {
            let b = bucket(v);
            assert!(b >= last, "bucket of {v} went down");
            last = b;
        }
        for b in 1..64 {
            assert!(bucket(1u64 << b) < BUCKETS);
        }
    }

    #[test]
    fn each_bucket_value_lies_in_its_bucket() {
        for i in 0..BUCKETS {
            assert_eq!(bucket(bucket_value(i)), i, "bucket {i}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// Quantiles within 2 % of the exact order statistic over 100,000 latencies spread over
        /// six orders of magnitude.
        #[test]
        fn quantiles_are_within_two_percent(seed in any::<u64>()) {
            let mut rng = fastrand::Rng::with_seed(seed);
            let h = AtomicHistogram::new();
            let mut exact: Vec<u64> = (0..100_000)
                .map(|_| {
                    // log-uniform from 1 us to 10 s
                    let exp = 3.0 + rng.f64() * 7.0;
                    10f64.powf(exp) as u64
                })
                .collect();
            for v in &exact {
                h.record(*v);
            }
            let mut sum = Histogram::new();
            h.add_to(&mut sum);
            exact.sort_unstable();
            for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
                let rank = ((q * exact.len() as f64).ceil() as usize).max(1);
                let want = exact[rank - 1] as f64;
                let got = sum.quantile(q).unwrap().as_nanos() as f64;
                prop_assert!((got - want).abs() / want <= 0.02, "q {}: {} vs {}", q, got, want);
            }
        }
    }
}
