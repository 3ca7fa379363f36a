//! The retry budget: a token bucket shared by every clone of a layer.
//!
//! # Accounting
//!
//! All arithmetic is in integers. A first attempt deposits `ratio_percent` units; a retry costs
//! [`RETRY_COST`] (100) units, so a 20 % budget earns one retry per five requests with no rounding
//! at all (tower's `TpsBudget` works in `f32` and rounds a 0.4 ratio up to 0.5).
//!
//! Deposits expire: they are kept in ten slots, each covering a tenth of the `ttl`, in a ring of
//! `AtomicU64` words (a 32-bit slice tag and 32 bits of credit per word). A deposit counts for
//! between nine and ten tenths of the `ttl`, so a long healthy period does not bank credit that
//! would let a later outage be amplified.
//!
//! Every deposit is dated: it reads the clock and adds its units to the slice of that instant,
//! so no credit outlives the `ttl`.
//!
//! The floor (`min_retries_per_second`) is a separate GCRA bucket in one `AtomicU64`: it grants
//! `min_retries_per_second` retries per second on average with a reserve of
//! `min_retries_per_second × ttl` retries that can be spent at once, the same reserve Finagle keeps
//! ("a per-second floor over the TTL window"). A retry is granted if the credit of the live slots
//! pays for it, else if the floor grants it.
//!
//! # The bound
//!
//! With `N` deposits made over an elapsed time `t` since the budget was built, the number of
//! retries granted is at most
//!
//! ```text
//! floor(ratio_percent × N / 100) + reserve + floor(t / interval)
//! ```
//!
//! where `reserve = floor(min_retries_per_second × ttl_ms / 1000)` and
//! `interval = ceil(1 s / min_retries_per_second)` (so `t / interval <= min_retries_per_second × t`).
//! With the clock standing still (`t = 0`) that is `floor·ttl + ratio·N`. The bound holds under any
//! interleaving of threads: every unit of credit is taken out of a slot by one compare-and-swap,
//! so no unit is spent twice, and the floor is one compare-and-swap on one word.
//!
//! Under contention a withdrawal that has to gather credit from several slots may find another
//! withdrawal took part of it first; it then puts back what it took and falls back on the floor.
//! It can refuse a retry the budget could have paid for — never grant one it cannot.
//!
//! The concurrent claims are checked with loom:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p resile-retry --release --lib loom
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::BudgetError;

/// Units a retry costs; a first attempt deposits `ratio_percent` units.
pub const RETRY_COST: u32 = 100;

/// Number of slices the `ttl` window is cut into.
const SLOTS: usize = 10;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A retry budget: retries may be at most a fraction of first attempts, plus a small floor.
///
/// Clones share one bucket (`Arc`); the hot path is atomics only, with no lock and no allocation.
/// See the [module documentation](self) for the exact accounting and the bound it guarantees.
///
/// Time is read from [`tokio::time::Instant`], so a test on tokio's paused clock drives it.
///
/// # Default
///
/// `ratio_percent = 20`, `min_retries_per_second = 10`, `ttl = 10 s` (Finagle's and reqwest's
/// defaults): over ten seconds, one retry per five requests plus a reserve of 100 retries.
///
/// # Example
///
/// ```
/// use resile_retry::RetryBudget;
///
/// let budget = RetryBudget::builder()
///     .ratio_percent(10)
///     .min_retries_per_second(0)
///     .build()
///     .unwrap();
/// for _ in 0..20 {
///     budget.deposit();
/// }
/// assert!(budget.try_withdraw());
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw()); // 10 % of 20 requests is 2 retries
/// ```
#[derive(Clone)]
pub struct RetryBudget {
    core: Arc<BudgetCore>,
    base: tokio::time::Instant,
}

impl Default for RetryBudget {
    fn default() -> Self {
        // The defaults are in range: this cannot fail.
        RetryBudget::from_core(BudgetCore::new(20, 10, Duration::from_secs(10)))
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("ratio_percent", &self.core.deposit)
            .field("min_retries_per_second", &self.core.min_per_sec)
            .field("ttl", &self.core.ttl)
            .field("available_retries", &self.available_retries())
            .finish()
    }
}

impl RetryBudget {
    /// A builder starting from the defaults (20 %, 10 per second, 10 s).
    pub fn builder() -> RetryBudgetBuilder {
        RetryBudgetBuilder {
            ratio_percent: 20,
            min_per_sec: 10,
            ttl: Duration::from_secs(10),
        }
    }

    fn from_core(core: BudgetCore) -> Self {
        RetryBudget {
            core: Arc::new(core),
            base: tokio::time::Instant::now(),
        }
    }

    #[inline]
    fn now(&self) -> u64 {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.base);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records a first attempt: adds `ratio_percent` units of credit, dated now.
    #[inline]
    pub fn deposit(&self) {
        self.core.deposit_at(self.now());
    }

    /// Takes one retry out of the budget; `false` if the budget is exhausted.
    #[inline]
    pub fn try_withdraw(&self) -> bool {
        self.core.try_withdraw_at(self.now())
    }

    /// Retries the budget would grant right now (a snapshot: concurrent use may change it).
    pub fn available_retries(&self) -> u64 {
        self.core.available_at(self.now())
    }

    /// The percentage of first attempts that may be retried.
    pub fn ratio_percent(&self) -> u32 {
        self.core.deposit
    }

    /// The floor: retries per second granted whatever the traffic.
    pub fn min_retries_per_second(&self) -> u32 {
        self.core.min_per_sec
    }

    /// How long a deposit counts, and the window of the floor's reserve.
    pub fn ttl(&self) -> Duration {
        self.core.ttl
    }

    /// The floor's reserve: `min_retries_per_second × ttl` retries.
    pub fn reserve(&self) -> u64 {
        self.core.reserve
    }
}

/// Builds a [`RetryBudget`].
#[derive(Debug, Clone)]
pub struct RetryBudgetBuilder {
    ratio_percent: u32,
    min_per_sec: u32,
    ttl: Duration,
}

impl RetryBudgetBuilder {
    /// Retries allowed per hundred first attempts, `0..=1000` (default 20).
    pub fn ratio_percent(mut self, percent: u32) -> Self {
        self.ratio_percent = percent;
        self
    }

    /// Retries per second allowed whatever the traffic (default 10); `0` turns the floor off.
    pub fn min_retries_per_second(mut self, n: u32) -> Self {
        self.min_per_sec = n;
        self
    }

    /// How long a deposit counts, `1 s..=60 s` (default 10 s).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The budget.
    ///
    /// # Errors
    ///
    /// [`BudgetError::RatioOutOfRange`] if `ratio_percent > 1000`,
    /// [`BudgetError::TtlOutOfRange`] if `ttl` is not within 1 s..=60 s.
    pub fn build(self) -> Result<RetryBudget, BudgetError> {
        if self.ratio_percent > 1000 {
            return Err(BudgetError::RatioOutOfRange(self.ratio_percent));
        }
        if self.ttl < Duration::from_secs(1) || self.ttl > Duration::from_secs(60) {
            return Err(BudgetError::TtlOutOfRange(self.ttl));
        }
        Ok(RetryBudget::from_core(BudgetCore::new(
            self.ratio_percent,
            self.min_per_sec,
            self.ttl,
        )))
    }
}

#[inline]
fn pack(tag: u32, credit: u32) -> u64 {
    ((tag as u64) << 32) | credit as u64
}

#[inline]
fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// The clock-free state of a budget; every operation takes `now` in nanoseconds since a base.
pub(crate) struct BudgetCore {
    slots: [AtomicU64; SLOTS],
    /// GCRA theoretical arrival time of the floor bucket, nanoseconds.
    floor_tat: AtomicU64,
    deposit: u32,
    slice_nanos: u64,
    /// 0 when there is no floor.
    floor_interval: u64,
    /// `reserve × floor_interval`.
    floor_tolerance: u64,
    reserve: u64,
    min_per_sec: u32,
    ttl: Duration,
}

impl BudgetCore {
    /// `ratio_percent <= 1000`, `1 s <= ttl <= 60 s` (checked by the builder).
    pub(crate) fn new(ratio_percent: u32, min_per_sec: u32, ttl: Duration) -> Self {
        let ttl_nanos = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        let slice_nanos = (ttl_nanos / SLOTS as u64).max(1);
        let ttl_millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let reserve = (min_per_sec as u64).saturating_mul(ttl_millis) / 1000;
        let floor_interval = if min_per_sec == 0 {
            0
        } else {
            NANOS_PER_SEC.div_ceil(min_per_sec as u64)
        };
        BudgetCore {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
            floor_tat: AtomicU64::new(0),
            deposit: ratio_percent,
            slice_nanos,
            floor_interval,
            floor_tolerance: reserve.saturating_mul(floor_interval),
            reserve,
            min_per_sec,
            ttl,
        }
    }

    /// Records a first attempt dated `now`.
    #[inline]
    pub(crate) fn deposit_at(&self, now: u64) {
        if self.deposit != 0 {
            self.add_at(now, self.deposit);
        }
    }

    /// Adds `units` of credit to the slice of `now`.
    fn add_at(&self, now: u64, units: u32) {
        let epoch = now / self.slice_nanos;
        let tag = epoch as u32;
        let slot = &self.slots[(epoch % SLOTS as u64) as usize];
        let mut cur = slot.load(Ordering::Acquire);
        loop {
            let (t, credit) = unpack(cur);
            let new = if t == tag {
                pack(tag, credit.saturating_add(units))
            } else if (tag.wrapping_sub(t) as i32) > 0 {
                // The slot holds an expired slice: recycle it.
                pack(tag, units)
            } else {
                // A newer slice already owns the slot (this thread read the clock long ago):
                // the deposit would expire at once; drop it.
                return;
            };
            match slot.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// The live slots, oldest first: (index, tag).
    #[inline]
    fn live(&self, now: u64) -> impl Iterator<Item = (usize, u32)> {
        let epoch = now / self.slice_nanos;
        (0..SLOTS as u64).rev().filter_map(move |age| {
            let e = epoch.checked_sub(age)?;
            Some(((e % SLOTS as u64) as usize, e as u32))
        })
    }

    fn credit_at(&self, now: u64) -> u64 {
        self.live(now)
            .map(|(i, tag)| {
                let (t, credit) = unpack(self.slots[i].load(Ordering::Acquire));
                if t == tag {
                    credit as u64
                } else {
                    0
                }
            })
            .sum()
    }

    pub(crate) fn try_withdraw_at(&self, now: u64) -> bool {
        self.take_credit(now) || self.take_floor(now)
    }

    fn take_credit(&self, now: u64) -> bool {
        if self.deposit == 0 || self.credit_at(now) < RETRY_COST as u64 {
            return false;
        }
        let mut taken = [(0usize, 0u32, 0u32); SLOTS];
        let mut n = 0;
        let mut need = RETRY_COST;
        for (i, tag) in self.live(now) {
            let slot = &self.slots[i];
            let mut cur = slot.load(Ordering::Acquire);
            loop {
                let (t, credit) = unpack(cur);
                if t != tag || credit == 0 {
                    break;
                }
                let take = credit.min(need);
                match slot.compare_exchange_weak(
                    cur,
                    pack(t, credit - take),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        taken[n] = (i, tag, take);
                        n += 1;
                        need -= take;
                        break;
                    }
                    Err(actual) => cur = actual,
                }
            }
            if need == 0 {
                return true;
            }
        }
        // Another withdrawal took part of the credit first: give back what this one took.
        for &(i, tag, amount) in &taken[..n] {
            let slot = &self.slots[i];
            let mut cur = slot.load(Ordering::Acquire);
            loop {
                let (t, credit) = unpack(cur);
                if t != tag {
                    // The slice expired meanwhile: its credit is gone anyway.
                    break;
                }
                match slot.compare_exchange_weak(
                    cur,
                    pack(t, credit.saturating_add(amount)),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(actual) => cur = actual,
                }
            }
        }
        false
    }

    fn take_floor(&self, now: u64) -> bool {
        if self.floor_interval == 0 {
            return false;
        }
        let limit = now.saturating_add(self.floor_tolerance);
        let mut tat = self.floor_tat.load(Ordering::Acquire);
        loop {
            let new = tat.max(now).saturating_add(self.floor_interval);
            if new > limit {
                return false;
            }
            match self.floor_tat.compare_exchange_weak(
                tat,
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => tat = actual,
            }
        }
    }

    fn floor_available_at(&self, now: u64) -> u64 {
        if self.floor_interval == 0 {
            return 0;
        }
        let tat = self.floor_tat.load(Ordering::Acquire).max(now);
        let limit = now.saturating_add(self.floor_tolerance);
        limit.saturating_sub(tat) / self.floor_interval
    }

    pub(crate) fn available_at(&self, now: u64) -> u64 {
        let credit = if self.deposit == 0 {
            0
        } else {
            self.credit_at(now) / RETRY_COST as u64
        };
        credit + self.floor_available_at(now)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const SEC: u64 = NANOS_PER_SEC;

    #[test]
    fn builder_rejects_nonsense() {
        assert_eq!(
            RetryBudget::builder()
                .ratio_percent(1001)
                .build()
                .unwrap_err(),
            BudgetError::RatioOutOfRange(1001)
        );
        assert!(matches!(
            RetryBudget::builder()
                .ttl(Duration::from_millis(999))
                .build()
                .unwrap_err(),
            BudgetError::TtlOutOfRange(_)
        ));
        assert!(matches!(
            RetryBudget::builder()
                .ttl(Duration::from_secs(61))
                .build()
                .unwrap_err(),
            BudgetError::TtlOutOfRange(_)
        ));
        let b = RetryBudget::builder()
            .ratio_percent(1000)
            .ttl(Duration::from_secs(60))
            .build()
            .unwrap();
        assert_eq!(b.ratio_percent(), 1000);
        assert_eq!(b.reserve(), 600);
    }

    #[test]
    fn defaults() {
        let b = RetryBudget::default();
        assert_eq!(b.ratio_percent(), 20);
        assert_eq!(b.min_retries_per_second(), 10);
        assert_eq!(b.ttl(), Duration::from_secs(10));
        assert_eq!(b.reserve(), 100);
    }

    #[test]
    fn ratio_is_exact_in_integers() {
        // 0.4 is not rounded up to 0.5: 40 % of 10 requests is 4 retries, never 5.
        let core = BudgetCore::new(40, 0, Duration::from_secs(10));
        for _ in 0..10 {
            core.deposit_at(0);
        }
        let granted = (0..10).filter(|_| core.try_withdraw_at(0)).count();
        assert_eq!(granted, 4);
    }

    #[test]
    fn deposits_expire_after_ttl() {
        let core = BudgetCore::new(100, 0, Duration::from_secs(10));
        core.deposit_at(0);
        core.deposit_at(0);
        assert_eq!(core.available_at(9 * SEC), 2);
        // The slice of t = 0 is dead once ten slices have started after it.
        assert_eq!(core.available_at(10 * SEC), 0);
        assert!(!core.try_withdraw_at(10 * SEC));
        // The slot is recycled for the new slice, not added to the stale credit.
        core.deposit_at(10 * SEC);
        assert_eq!(core.available_at(10 * SEC), 1);
    }

    #[test]
    fn withdrawal_gathers_credit_across_slices_oldest_first() {
        let core = BudgetCore::new(50, 0, Duration::from_secs(10));
        core.deposit_at(0); // 50 units in slice 0
        core.deposit_at(3 * SEC); // 50 units in slice 3
        core.deposit_at(3 * SEC); // 100 units in slice 3
        assert!(core.try_withdraw_at(3 * SEC)); // takes 50 from slice 0, 50 from slice 3
        assert_eq!(core.credit_at(3 * SEC), 50);
        // Slice 0 expiring no longer matters: it was spent first.
        assert_eq!(core.credit_at(10 * SEC), 50);
    }

    #[test]
    fn floor_reserve_then_rate() {
        let core = BudgetCore::new(0, 10, Duration::from_secs(10));
        let at_zero = (0..200).filter(|_| core.try_withdraw_at(0)).count();
        assert_eq!(at_zero, 100); // the reserve: 10/s over 10 s
        assert!(!core.try_withdraw_at(SEC / 10 - 1));
        assert!(core.try_withdraw_at(SEC / 10)); // one more every 100 ms
        assert!(!core.try_withdraw_at(SEC / 10));
        let after_a_second = (0..200)
            .filter(|_| core.try_withdraw_at(SEC + SEC / 10))
            .count();
        assert_eq!(after_a_second, 10);
    }

    #[test]
    fn zero_budget_grants_nothing() {
        let core = BudgetCore::new(0, 0, Duration::from_secs(10));
        core.deposit_at(0);
        assert!(!core.try_withdraw_at(0));
        assert_eq!(core.available_at(0), 0);
    }

    #[test]
    fn every_deposit_expires_a_ttl_after_it_was_made() {
        let core = BudgetCore::new(100, 0, Duration::from_secs(10));
        core.deposit_at(0);
        core.deposit_at(5 * SEC);
        assert_eq!(core.available_at(5 * SEC), 2);
        // The deposit of t = 0 is gone at 10 s; the one of 5 s lasts until 15 s.
        assert_eq!(core.available_at(10 * SEC), 1);
        assert_eq!(core.available_at(15 * SEC - 1), 1);
        assert_eq!(core.available_at(15 * SEC), 0);
    }

    #[test]
    fn stale_deposit_does_not_clobber_a_newer_slice() {
        let core = BudgetCore::new(100, 0, Duration::from_secs(10));
        core.deposit_at(10 * SEC); // slice 10 → slot 0
        core.deposit_at(0); // a thread that read the clock ten slices ago → slot 0 too
        assert_eq!(core.credit_at(10 * SEC), 100);
    }

    /// A plain sequential model of the budget: a map from slice to credit and a counter floor.
    #[derive(Debug)]
    struct Model {
        credit: BTreeMap<u64, u64>,
        floor_tat: u64,
        deposit: u64,
        slice: u64,
        interval: u64,
        tolerance: u64,
    }

    impl Model {
        fn new(ratio: u32, floor: u32, ttl: Duration) -> Self {
            let reserve = floor as u64 * ttl.as_millis() as u64 / 1000;
            let interval = if floor == 0 {
                0
            } else {
                SEC.div_ceil(floor as u64)
            };
            Model {
                credit: BTreeMap::new(),
                floor_tat: 0,
                deposit: ratio as u64,
                slice: (ttl.as_nanos() as u64 / 10).max(1),
                interval,
                tolerance: reserve * interval,
            }
        }
        fn expire(&mut self, now: u64) {
            let epoch = now / self.slice;
            self.credit.retain(|e, _| epoch - *e < 10);
        }
        fn deposit(&mut self, now: u64) {
            self.expire(now);
            *self.credit.entry(now / self.slice).or_default() += self.deposit;
        }
        fn withdraw(&mut self, now: u64) -> bool {
            self.expire(now);
            if self.deposit > 0 && self.credit.values().sum::<u64>() >= 100 {
                let mut need = 100;
                for c in self.credit.values_mut() {
                    let take = (*c).min(need);
                    *c -= take;
                    need -= take;
                    if need == 0 {
                        break;
                    }
                }
                return true;
            }
            if self.interval == 0 {
                return false;
            }
            let new = self.floor_tat.max(now) + self.interval;
            if new > now + self.tolerance {
                return false;
            }
            self.floor_tat = new;
            true
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Deposit,
        Withdraw,
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => Just(Op::Deposit),
            3 => Just(Op::Withdraw),
            1 => (0..3 * SEC).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The bound of the module docs, with the clock standing still:
        /// retries <= floor(ratio·N/100) + reserve, and it is reached exactly.
        #[test]
        fn bound_with_the_clock_still(
            ratio in 0u32..=1000,
            floor in 0u32..50,
            ttl_s in 1u64..=60,
            n in 0u64..2000,
        ) {
            let ttl = Duration::from_secs(ttl_s);
            let core = BudgetCore::new(ratio, floor, ttl);
            for _ in 0..n {
                core.deposit_at(0);
            }
            let mut granted = 0u64;
            while core.try_withdraw_at(0) {
                granted += 1;
                prop_assert!(granted <= 1_000_000);
            }
            let reserve = floor as u64 * ttl_s;
            prop_assert_eq!(granted, ratio as u64 * n / 100 + reserve);
        }

        /// Any interleaving of deposits, withdrawals and clock advances agrees decision by
        /// decision with the sequential model, and never exceeds the bound.
        #[test]
        fn agrees_with_the_model_and_the_bound(
            ratio in 0u32..=200,
            floor in 0u32..20,
            ttl_ms in 1000u64..=20_000,
            ops in proptest::collection::vec(op(), 1..600),
        ) {
            let ttl = Duration::from_millis(ttl_ms);
            let core = BudgetCore::new(ratio, floor, ttl);
            let mut model = Model::new(ratio, floor, ttl);
            let (mut now, mut deposits, mut granted) = (0u64, 0u64, 0u64);
            for op in ops {
                match op {
                    Op::Deposit => {
                        core.deposit_at(now);
                        model.deposit(now);
                        deposits += 1;
                    }
                    Op::Withdraw => {
                        let got = core.try_withdraw_at(now);
                        prop_assert_eq!(got, model.withdraw(now), "at {} ns", now);
                        granted += got as u64;
                    }
                    Op::Advance(d) => now += d,
                }
                let interval = if floor == 0 { u64::MAX } else { SEC.div_ceil(floor as u64) };
                let bound = ratio as u64 * deposits / 100
                    + floor as u64 * ttl_ms / 1000
                    + now / interval;
                prop_assert!(granted <= bound, "{} retries > bound {}", granted, bound);
            }
        }
    }

    /// Threads hammering one budget never get more retries than the bound.
    #[test]
    fn stress_concurrent_withdrawals_respect_the_bound() {
        let core = Arc::new(BudgetCore::new(20, 3, Duration::from_secs(10)));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let core = core.clone();
                std::thread::spawn(move || {
                    let mut granted = 0u64;
                    for i in 0..20_000u64 {
                        // Spread over three slices so withdrawals gather across slots.
                        let now = (i % 3) * SEC;
                        if (i + t) % 2 == 0 {
                            core.deposit_at(now);
                        } else if core.try_withdraw_at(now) {
                            granted += 1;
                        }
                    }
                    granted
                })
            })
            .collect();
        let granted: u64 = threads.into_iter().map(|h| h.join().unwrap()).sum();
        let deposits = 4 * 10_000;
        let bound = 20 * deposits / 100 + 30 + (2 * SEC) / SEC.div_ceil(3);
        assert!(granted <= bound, "{granted} > {bound}");
        // And the budget was not starved: most of the credit was used.
        assert!(granted >= 20 * deposits / 100 / 2, "only {granted} granted");
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// Two withdrawals racing for exactly one retry's worth of credit split over two slices:
    /// at most one wins, and the credit left over is exactly what was not spent.
    #[test]
    fn loom_split_credit_is_never_spent_twice() {
        loom::model(|| {
            let core = Arc::new(BudgetCore::new(50, 0, Duration::from_secs(10)));
            core.deposit_at(0);
            core.deposit_at(NANOS_PER_SEC);
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let core = core.clone();
                    thread::spawn(move || core.try_withdraw_at(NANOS_PER_SEC))
                })
                .collect();
            let won: u64 = handles.into_iter().map(|h| h.join().unwrap() as u64).sum();
            assert!(won <= 1);
            assert_eq!(core.credit_at(NANOS_PER_SEC), 100 - 100 * won);
        });
    }

    /// Deposits and withdrawals racing on one slot: no deposit is lost, no unit spent twice.
    /// Runs `deposit` on one thread against two withdrawals at time 0 (one on another thread,
    /// one on this one); the number of retries granted.
    fn deposit_against_two_withdrawals(core: &Arc<BudgetCore>, deposit: fn(&BudgetCore)) -> u64 {
        let c1 = core.clone();
        let t1 = thread::spawn(move || deposit(&c1));
        let c2 = core.clone();
        let t2 = thread::spawn(move || c2.try_withdraw_at(0));
        let w3 = core.try_withdraw_at(0);
        t1.join().unwrap();
        let w2 = t2.join().unwrap();
        w2 as u64 + w3 as u64
    }

    #[test]
    fn loom_deposit_and_withdraw_race() {
        loom::model(|| {
            let core = Arc::new(BudgetCore::new(100, 0, Duration::from_secs(10)));
            core.deposit_at(0);
            let spent = deposit_against_two_withdrawals(&core, |c| c.deposit_at(0));
            assert!(spent >= 1); // the first deposit was there all along
            assert_eq!(core.credit_at(0), 200 - 100 * spent);
        });
    }

    /// The floor's single word under a race: exactly the reserve is granted.
    #[test]
    fn loom_floor_grants_exactly_the_reserve() {
        loom::model(|| {
            let core = Arc::new(BudgetCore::new(0, 1, Duration::from_secs(1)));
            let c1 = core.clone();
            let t1 = thread::spawn(move || c1.try_withdraw_at(0));
            let w2 = core.try_withdraw_at(0);
            let w1 = t1.join().unwrap();
            assert_eq!(w1 as u32 + w2 as u32, 1);
        });
    }
}
