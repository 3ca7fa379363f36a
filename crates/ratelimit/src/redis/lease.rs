//! Leased mode: decisions made locally from cells taken from Redis in advance.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use crate::clock::nanos;
use crate::gcra::{Decision, Quota};

/// The default lease interval of [`Leases`].
pub const DEFAULT_LEASE_INTERVAL: Duration = Duration::from_millis(100);
/// The default smallest lease of [`Leases`], in cells.
pub const DEFAULT_MIN_LEASE: NonZeroU32 = NonZeroU32::MIN;
/// The default largest lease of [`Leases`], in cells.
pub const DEFAULT_MAX_LEASE: NonZeroU32 = match NonZeroU32::new(64) {
    Some(n) => n,
    None => unreachable!(),
};
/// The default number of keys [`Leases`] holds leases for.
pub const DEFAULT_MAX_LEASED_KEYS: usize = 10_000;

const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// The leased mode of a [`RedisStore`](super::RedisStore)
/// ([`RedisStoreBuilder::leases`](super::RedisStoreBuilder::leases)): each instance takes cells
/// of a key from Redis in advance, a *lease* of up to `max` cells in one script call, and decides
/// locally from it until it is spent or its interval has passed.
///
/// # The bound
///
/// Redis's GCRA grants at most `burst + rate × t` cells over any window of length `t`, leases
/// included; an instance holds at most one lease per key, of at most `max` cells. So over any
/// window of length `t`, `N` instances together admit at most
///
/// `burst + rate × t + N × max`
///
/// requests of cost 1 on a key (the last term is the cells leased before the window and spent in
/// it). With `max = 1` the store decides exactly as the per-decision store does.
///
/// # Sizing
///
/// A key's first lease is `min` cells. Each later lease is sized from the last one: a lease
/// spent before its interval passed doubles the next (up to `max`); otherwise the next is what
/// the last one's use would take in one interval (`used × interval / elapsed`, rounded up,
/// between `min` and `max`). A lease never exceeds the quota's burst, and takes only the whole
/// cells that conform now (at least the request's cost).
///
/// # What happens to unused cells
///
/// A lease is spent locally for at most `interval` after it was granted. Its unused cells are
/// given back to Redis in the same script call as the key's next lease, by
/// [`RedisStore::return_leases`](super::RedisStore::return_leases), or when the last clone of
/// the store is dropped (fire-and-forget, on the current tokio runtime). Cells that are never
/// given back (an instance that dies) are simply spent: Redis's bucket refills at the quota's
/// rate as usual. [`Store::release`](crate::Store::release) puts cells back into a live lease;
/// [`Store::pause`](crate::Store::pause) forfeits the key's lease (its cells are not used during
/// or after the pause) and pauses the key in Redis.
///
/// If a lease call fails (an error or a timeout), the cells it gave back may or may not have
/// reached Redis: they are forfeited, never counted twice.
///
/// # Concurrency
///
/// One lease call per key is in flight at a time. A decision that finds the key's lease spent
/// while its next lease is being taken is made by Redis on its own (one script call, exactly as
/// in per-decision mode), so no request waits on another's round trip.
///
/// # Estimates
///
/// A decision made from a lease is allowed with `retry_after = 0`; its `remaining` is what
/// Redis reported at the lease plus the cells the lease still holds (at most the burst), and its
/// `reset_after` Redis's at the lease, aged by the time since. Both are estimates: other
/// instances spend the same key. Refusals and decisions made at a lease call are Redis's own.
///
/// # Memory
///
/// Leases are kept for at most `max_keys` keys (about 150 bytes each plus the key). When the
/// table is full, expired leases are given back and forgotten (at most once per interval); if
/// it is still full, keys without a lease are decided per decision.
///
/// # Default
///
/// Interval [`DEFAULT_LEASE_INTERVAL`] (100 ms), leases of [`DEFAULT_MIN_LEASE`] (1) to
/// [`DEFAULT_MAX_LEASE`] (64) cells, [`DEFAULT_MAX_LEASED_KEYS`] (10,000) keys.
///
/// # Example
///
/// ```no_run
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use resile_ratelimit::redis::{Leases, RedisStore};
///
/// # async fn run() -> redis::RedisResult<()> {
/// // Leases of 1 to 32 cells, each lasting about 50 ms: with 8 instances the fleet admits at
/// // most burst + rate × t + 256 requests over any window t.
/// let store = RedisStore::builder()
///     .leases(
///         Leases::default()
///             .interval(Duration::from_millis(50))
///             .cells(NonZeroU32::MIN, NonZeroU32::new(32).unwrap()),
///     )
///     .connect("redis://127.0.0.1:6379/")
///     .await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leases {
    interval: Duration,
    min: NonZeroU32,
    max: NonZeroU32,
    max_keys: usize,
}

impl Default for Leases {
    fn default() -> Self {
        Leases {
            interval: DEFAULT_LEASE_INTERVAL,
            min: DEFAULT_MIN_LEASE,
            max: DEFAULT_MAX_LEASE,
            max_keys: DEFAULT_MAX_LEASED_KEYS,
        }
    }
}

impl Leases {
    /// Leases of exactly `cells` cells (fewer only when fewer conform), otherwise the defaults.
    pub fn fixed(cells: NonZeroU32) -> Leases {
        Leases::default().cells(cells, cells)
    }

    /// How long a lease is spent locally, and the time a lease is sized to last. At least 1 ms
    /// (shorter values are raised to it).
    pub fn interval(mut self, interval: Duration) -> Leases {
        self.interval = interval.max(MIN_INTERVAL);
        self
    }

    /// The smallest and the largest lease, in cells (`max` is raised to `min` if below it). The
    /// largest is the per-instance term of the bound.
    pub fn cells(mut self, min: NonZeroU32, max: NonZeroU32) -> Leases {
        self.min = min;
        self.max = max.max(min);
        self
    }

    /// The most keys leases are held for at once (at least 1).
    pub fn max_keys(mut self, max_keys: usize) -> Leases {
        self.max_keys = max_keys.max(1);
        self
    }

    /// The lease interval.
    pub fn lease_interval(&self) -> Duration {
        self.interval
    }

    /// The smallest lease, in cells.
    pub fn min_cells(&self) -> NonZeroU32 {
        self.min
    }

    /// The largest lease, in cells.
    pub fn max_cells(&self) -> NonZeroU32 {
        self.max
    }

    /// The most keys leases are held for.
    pub fn max_leased_keys(&self) -> usize {
        self.max_keys
    }
}

/// Cells to give back to Redis: the key, the quota they were leased under, and their ns.
pub(crate) type Returns = Vec<(Vec<u8>, Quota, u64)>;

/// One key's lease.
#[derive(Debug)]
struct Entry {
    /// Unused cells, in ns of the quota's cells.
    credit: u64,
    /// When (clock ns) the lease stops being spent.
    expires: u64,
    /// When it was granted, and how much it granted (ns), for sizing the next one.
    granted_at: u64,
    granted: u64,
    /// The next lease's size, in cells.
    size: u32,
    /// A lease call is in flight.
    leasing: bool,
    /// The quota of the last lease (its releases are sent with it).
    quota: Quota,
    /// Redis's answer at the last lease, for estimates.
    remaining: u32,
    reset_at: u64,
}

/// What a decision does, given the key's lease.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Decided from the lease.
    Local(Decision),
    /// This decision takes the key's next lease: give back `give_back` ns, take up to `most` ns.
    Lease { give_back: u64, most: u64 },
    /// Decided by Redis on its own (a lease call is in flight, or the table is full).
    Direct,
}

/// Every lease of one store.
#[derive(Debug)]
pub(crate) struct Book {
    config: Leases,
    entries: HashMap<Vec<u8>, Entry>,
    /// When expired leases were last swept out of a full table.
    swept_at: Option<u64>,
}

impl Book {
    pub(crate) fn new(config: Leases) -> Book {
        Book {
            config,
            entries: HashMap::new(),
            swept_at: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Takes `cost` ns from `key`'s lease if it holds them, else says who decides. `Local` is
    /// the only outcome that does not need Redis; `Lease` marks a lease call in flight until
    /// [`Book::leased`] or [`Book::lease_failed`]. Expired leases swept out of a full table are
    /// appended to `returns`.
    pub(crate) fn step(
        &mut self,
        key: &[u8],
        quota: &Quota,
        cost: u64,
        now: u64,
        returns: &mut Returns,
    ) -> Step {
        if let Some(e) = self.entries.get_mut(key) {
            return Self::step_entry(&self.config, e, quota, cost, now);
        }
        if self.entries.len() >= self.config.max_keys {
            self.sweep(now, returns);
            if self.entries.len() >= self.config.max_keys {
                return Step::Direct;
            }
        }
        let e = self.entries.entry(key.to_vec()).or_insert(Entry {
            credit: 0,
            expires: now,
            granted_at: now,
            granted: 0,
            size: self.config.min.get(),
            leasing: false,
            quota: *quota,
            remaining: 0,
            reset_at: now,
        });
        Self::step_entry(&self.config, e, quota, cost, now)
    }

    fn step_entry(config: &Leases, e: &mut Entry, quota: &Quota, cost: u64, now: u64) -> Step {
        let live = now < e.expires;
        if live && e.credit >= cost {
            e.credit -= cost;
            return Step::Local(estimate(e, quota, now));
        }
        if e.leasing {
            return Step::Direct;
        }
        e.leasing = true;
        let t = quota.emission_interval_nanos();
        if e.granted > 0 {
            let used = e.granted.saturating_sub(e.credit);
            let elapsed = now.saturating_sub(e.granted_at);
            let interval = nanos(config.interval);
            let next = if e.credit < cost && elapsed < interval {
                u64::from(e.size).saturating_mul(2)
            } else {
                // Cells the last lease's pace spends in one interval, rounded up.
                let per_interval = u128::from(used) * u128::from(interval);
                let cells = per_interval.div_ceil(u128::from(elapsed.max(1)) * u128::from(t));
                u64::try_from(cells).unwrap_or(u64::MAX)
            };
            e.size = next.clamp(u64::from(config.min.get()), u64::from(config.max.get())) as u32;
        }
        let give_back = std::mem::take(&mut e.credit);
        let cap = t * u64::from(quota.burst().get());
        let most = (u64::from(e.size) * t).min(cap).max(cost);
        Step::Lease { give_back, most }
    }

    /// The lease call for `key` granted `granted` ns (0: refused), of which the asking request
    /// took `cost`; `decision` is Redis's answer to it.
    pub(crate) fn leased(
        &mut self,
        key: &[u8],
        quota: &Quota,
        cost: u64,
        granted: u64,
        decision: &Decision,
        now: u64,
    ) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        e.leasing = false;
        e.quota = *quota;
        e.remaining = decision.remaining;
        e.reset_at = now.saturating_add(nanos(decision.reset_after));
        if granted == 0 {
            e.granted = 0;
            return;
        }
        e.credit = granted.saturating_sub(cost);
        e.granted = granted;
        e.granted_at = now;
        e.expires = now.saturating_add(nanos(self.config.interval));
    }

    /// The lease call for `key` failed: what it gave back is forfeited.
    pub(crate) fn lease_failed(&mut self, key: &[u8]) {
        if let Some(e) = self.entries.get_mut(key) {
            e.leasing = false;
            e.granted = 0;
        }
    }

    /// The decision a lease call's reply makes for the request that asked: Redis's, with the
    /// cells the lease keeps counted in `remaining`.
    pub(crate) fn decision_at_lease(
        quota: &Quota,
        cost: u64,
        granted: u64,
        mut decision: Decision,
    ) -> Decision {
        if granted > cost {
            let kept = (granted - cost) / quota.emission_interval_nanos();
            decision.remaining = clamp_cells(u64::from(decision.remaining) + kept, quota);
        }
        decision
    }

    /// Puts `cost` ns back into `key`'s live lease; `false` if there is none to take them (the
    /// caller gives them back to Redis).
    pub(crate) fn release(&mut self, key: &[u8], cost: u64, now: u64) -> bool {
        match self.entries.get_mut(key) {
            Some(e) if now < e.expires && e.credit.saturating_add(cost) <= e.granted => {
                e.credit += cost;
                true
            }
            _ => false,
        }
    }

    /// Forfeits `key`'s lease (a pause).
    pub(crate) fn forfeit(&mut self, key: &[u8]) {
        if let Some(e) = self.entries.get_mut(key) {
            e.credit = 0;
            e.granted = 0;
            e.expires = 0;
        }
    }

    /// Takes the unused cells of every lease, to give them back.
    pub(crate) fn drain(&mut self) -> Returns {
        self.entries
            .iter_mut()
            .filter(|(_, e)| e.credit > 0)
            .map(|(k, e)| {
                e.granted = 0;
                (k.clone(), e.quota, std::mem::take(&mut e.credit))
            })
            .collect()
    }

    /// Forgets the expired leases with no call in flight (at most once per interval), keeping
    /// their unused cells in `returns`.
    fn sweep(&mut self, now: u64, returns: &mut Returns) {
        let interval = nanos(self.config.interval);
        if self
            .swept_at
            .is_some_and(|at| now.saturating_sub(at) < interval)
        {
            return;
        }
        self.swept_at = Some(now);
        self.entries.retain(|k, e| {
            let keep = e.leasing || now < e.expires;
            if !keep && e.credit > 0 {
                returns.push((k.clone(), e.quota, e.credit));
            }
            keep
        });
    }
}

fn clamp_cells(cells: u64, quota: &Quota) -> u32 {
    cells.min(u64::from(quota.burst().get())) as u32
}

fn estimate(e: &Entry, quota: &Quota, now: u64) -> Decision {
    let held = e.credit / quota.emission_interval_nanos();
    Decision {
        allowed: true,
        limit: quota.burst().get(),
        remaining: clamp_cells(u64::from(e.remaining) + held, quota),
        retry_after: Duration::ZERO,
        reset_after: Duration::from_nanos(e.reset_at.saturating_sub(now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn q() -> Quota {
        // T = 1 ms, burst 100.
        Quota::per_second(NonZeroU32::new(1000).unwrap())
            .with_burst(NonZeroU32::new(100).unwrap())
            .unwrap()
    }

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    fn allowed(remaining: u32) -> Decision {
        Decision {
            allowed: true,
            limit: 100,
            remaining,
            retry_after: Duration::ZERO,
            reset_after: Duration::from_millis(50),
        }
    }

    /// Takes a lease for `key` at `now` that Redis grants in full.
    fn lease_in_full(book: &mut Book, key: &[u8], now: u64) -> u64 {
        let mut r = Vec::new();
        let Step::Lease { most, .. } = book.step(key, &q(), MS, now, &mut r) else {
            panic!("expected a lease call");
        };
        book.leased(key, &q(), MS, most, &allowed(50), now);
        most
    }

    #[test]
    fn a_lease_is_spent_locally_then_renewed() {
        let mut book = Book::new(Leases::fixed(nz(4)));
        let mut r = Vec::new();
        assert_eq!(
            book.step(b"k", &q(), MS, 0, &mut r),
            Step::Lease {
                give_back: 0,
                most: 4 * MS
            }
        );
        // A second decision while the call is in flight goes to Redis on its own.
        assert_eq!(book.step(b"k", &q(), MS, 0, &mut r), Step::Direct);
        book.leased(b"k", &q(), MS, 4 * MS, &allowed(50), 0);
        for held in [2u32, 1, 0] {
            match book.step(b"k", &q(), MS, MS, &mut r) {
                Step::Local(d) => {
                    assert!(d.allowed);
                    assert_eq!(d.remaining, 50 + held);
                    assert_eq!(d.reset_after, Duration::from_millis(49));
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            book.step(b"k", &q(), MS, MS, &mut r),
            Step::Lease { give_back: 0, .. }
        ));
        assert!(r.is_empty());
    }

    #[test]
    fn an_expired_lease_is_given_back_with_the_next_call() {
        let mut book = Book::new(Leases::fixed(nz(8)).interval(Duration::from_millis(10)));
        lease_in_full(&mut book, b"k", 0);
        let mut r = Vec::new();
        // 7 ns-cells left, but the lease expired at 10 ms.
        assert_eq!(
            book.step(b"k", &q(), MS, 10 * MS, &mut r),
            Step::Lease {
                give_back: 7 * MS,
                most: 8 * MS
            }
        );
    }

    #[test]
    fn a_cost_larger_than_the_credit_takes_a_new_lease_and_gives_the_rest_back() {
        let mut book = Book::new(Leases::fixed(nz(4)));
        lease_in_full(&mut book, b"k", 0);
        let mut r = Vec::new();
        assert_eq!(
            book.step(b"k", &q(), 5 * MS, MS, &mut r),
            Step::Lease {
                give_back: 3 * MS,
                most: 5 * MS
            }
        );
    }

    #[test]
    fn sizes_double_when_spent_early_and_follow_the_pace_otherwise() {
        let config = Leases::default()
            .cells(nz(1), nz(64))
            .interval(Duration::from_millis(100));
        let mut book = Book::new(config);
        let mut r = Vec::new();
        let mut now = 0;
        let mut sizes = Vec::new();
        // Spent at once: 1, 2, 4, ... up to 64.
        for _ in 0..9 {
            let most = loop {
                match book.step(b"k", &q(), MS, now, &mut r) {
                    Step::Local(_) => continue,
                    Step::Lease { most, .. } => break most,
                    Step::Direct => panic!("no call in flight"),
                }
            };
            sizes.push(most / MS);
            book.leased(b"k", &q(), MS, most, &allowed(50), now);
            now += MS;
        }
        assert_eq!(sizes, [1, 2, 4, 8, 16, 32, 64, 64, 64]);
        // Now a slow pace: one request every 10 ms spends 10 cells per 100 ms.
        let mut last = 0;
        for _ in 0..200 {
            now += 10 * MS;
            if let Step::Lease { most, .. } = book.step(b"k", &q(), MS, now, &mut r) {
                last = most / MS;
                book.leased(b"k", &q(), MS, most, &allowed(50), now);
            }
        }
        assert!((10..=11).contains(&last), "{last}");
    }

    #[test]
    fn a_lease_never_exceeds_the_burst() {
        let mut book = Book::new(Leases::fixed(nz(1000)));
        let mut r = Vec::new();
        assert_eq!(
            book.step(b"k", &q(), MS, 0, &mut r),
            Step::Lease {
                give_back: 0,
                most: 100 * MS
            }
        );
    }

    #[test]
    fn releases_go_back_into_a_live_lease_only() {
        let mut book = Book::new(Leases::fixed(nz(4)).interval(Duration::from_millis(10)));
        lease_in_full(&mut book, b"k", 0);
        assert!(book.release(b"k", MS, MS));
        // The lease holds what it was granted at most.
        assert!(!book.release(b"k", MS, MS));
        assert!(!book.release(b"other", MS, MS));
        assert!(!book.release(b"k", MS, 10 * MS));
    }

    #[test]
    fn a_pause_forfeits_the_lease() {
        let mut book = Book::new(Leases::fixed(nz(4)));
        lease_in_full(&mut book, b"k", 0);
        book.forfeit(b"k");
        let mut r = Vec::new();
        assert_eq!(
            book.step(b"k", &q(), MS, MS, &mut r),
            Step::Lease {
                give_back: 0,
                most: 4 * MS
            }
        );
        assert!(book.drain().is_empty());
    }

    #[test]
    fn a_failed_call_forfeits_what_it_gave_back() {
        let mut book = Book::new(Leases::fixed(nz(4)).interval(Duration::from_millis(10)));
        lease_in_full(&mut book, b"k", 0);
        let mut r = Vec::new();
        assert!(matches!(
            book.step(b"k", &q(), MS, 20 * MS, &mut r),
            Step::Lease { give_back, .. } if give_back == 3 * MS
        ));
        book.lease_failed(b"k");
        assert!(matches!(
            book.step(b"k", &q(), MS, 21 * MS, &mut r),
            Step::Lease { give_back: 0, .. }
        ));
    }

    #[test]
    fn a_refused_lease_holds_nothing() {
        let mut book = Book::new(Leases::fixed(nz(4)));
        let mut r = Vec::new();
        assert!(matches!(
            book.step(b"k", &q(), MS, 0, &mut r),
            Step::Lease { .. }
        ));
        let refused = Decision {
            allowed: false,
            ..allowed(0)
        };
        book.leased(b"k", &q(), MS, 0, &refused, 0);
        assert!(book.drain().is_empty());
        assert!(matches!(
            book.step(b"k", &q(), MS, 0, &mut r),
            Step::Lease { give_back: 0, .. }
        ));
    }

    #[test]
    fn drain_takes_every_unused_cell_once() {
        let mut book = Book::new(Leases::fixed(nz(4)));
        lease_in_full(&mut book, b"a", 0);
        lease_in_full(&mut book, b"b", 0);
        let mut drained = book.drain();
        drained.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            drained,
            vec![(b"a".to_vec(), q(), 3 * MS), (b"b".to_vec(), q(), 3 * MS)]
        );
        assert!(book.drain().is_empty());
    }

    #[test]
    fn a_full_table_sweeps_expired_leases_then_decides_per_decision() {
        let config = Leases::fixed(nz(4))
            .max_keys(2)
            .interval(Duration::from_millis(10));
        let mut book = Book::new(config);
        lease_in_full(&mut book, b"a", 0);
        lease_in_full(&mut book, b"b", 0);
        let mut r = Vec::new();
        assert_eq!(book.step(b"c", &q(), MS, MS, &mut r), Step::Direct);
        assert!(r.is_empty());
        // Both expired: swept, their cells to give back, and c gets a lease.
        assert!(matches!(
            book.step(b"c", &q(), MS, 20 * MS, &mut r),
            Step::Lease { .. }
        ));
        assert_eq!(r.len(), 2);
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn settings_are_kept_within_their_bounds() {
        let l = Leases::default()
            .interval(Duration::ZERO)
            .cells(nz(8), nz(2))
            .max_keys(0);
        assert_eq!(l.lease_interval(), Duration::from_millis(1));
        assert_eq!((l.min_cells().get(), l.max_cells().get()), (8, 8));
        assert_eq!(l.max_leased_keys(), 1);
    }
}
