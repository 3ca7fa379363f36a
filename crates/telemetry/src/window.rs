//! The ring of intervals the request path writes into, and the totals it folds into.
//!
//! Time is cut into intervals (10 s by default). The ring keeps one slot per interval of the
//! longest window plus the current one; each slot holds atomic counters and a histogram, tagged
//! with its interval. The request path reads the slot's tag and adds to its counters: no lock,
//! no allocation. The first request (or report) of a new interval takes the ring's lock once,
//! folds the slots it reuses into the totals since start, and evaluates the alerts over the
//! interval that just closed.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::histogram::{AtomicHistogram, Histogram};
use crate::outcome::{ErrorKind, Recorded, EVENTS, STATUSES};

/// Which requests a figure describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
pub enum View {
    /// What callers saw: one record per call of the outermost layer, after every retry.
    Requests,
    /// What the server answered: one record per attempt, recorded inside the retry layer.
    Attempts,
}

impl View {
    pub(crate) const fn index(self) -> usize {
        match self {
            View::Requests => 0,
            View::Attempts => 1,
        }
    }
}

/// The counters of one view over one interval.
pub(crate) struct ViewSlot {
    statuses: Box<[AtomicU32]>,
    errors: [AtomicU32; ErrorKind::COUNT],
    /// Attempts beyond the first, from the retry layer's `Attempts` mark on responses.
    retries: AtomicU32,
    latency: AtomicHistogram,
}

impl ViewSlot {
    fn new() -> Self {
        ViewSlot {
            statuses: (0..STATUSES).map(|_| AtomicU32::new(0)).collect(),
            errors: Default::default(),
            retries: AtomicU32::new(0),
            latency: AtomicHistogram::new(),
        }
    }

    #[inline]
    fn record(&self, what: Recorded, latency: Option<u64>, retries: u32) {
        match what {
            Recorded::Status(i) => self.statuses[i].fetch_add(1, Ordering::Relaxed),
            Recorded::Error(kind) => self.errors[kind.index()].fetch_add(1, Ordering::Relaxed),
        };
        if retries > 0 {
            self.retries.fetch_add(retries, Ordering::Relaxed);
        }
        if let Some(ns) = latency {
            self.latency.record(ns);
        }
    }

    fn visit(&self, into: &mut Tally, drain: bool) {
        let read = |c: &AtomicU32| {
            u64::from(if drain {
                c.swap(0, Ordering::Relaxed)
            } else {
                c.load(Ordering::Relaxed)
            })
        };
        for (c, t) in self.statuses.iter().zip(into.statuses.iter_mut()) {
            *t += read(c);
        }
        for (c, t) in self.errors.iter().zip(into.errors.iter_mut()) {
            *t += read(c);
        }
        into.retries += read(&self.retries);
        if drain {
            self.latency.drain_into(&mut into.latency);
        } else {
            self.latency.add_to(&mut into.latency);
        }
    }
}

struct Slot {
    /// The interval this slot holds, plus one (0: never used).
    tag: AtomicU64,
    requests: ViewSlot,
    events: [AtomicU32; EVENTS],
}

/// Counts added up over some intervals.
#[derive(Clone)]
pub(crate) struct Tally {
    pub(crate) statuses: Box<[u64]>,
    pub(crate) errors: [u64; ErrorKind::COUNT],
    pub(crate) events: [u64; EVENTS],
    pub(crate) retries: u64,
    pub(crate) latency: Histogram,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Tally {
            statuses: vec![0; STATUSES].into_boxed_slice(),
            errors: [0; ErrorKind::COUNT],
            events: [0; EVENTS],
            retries: 0,
            latency: Histogram::new(),
        }
    }
}

pub(crate) struct Ring {
    interval: u64,
    slots: Box<[Slot]>,
    /// The attempts view, allocated when an attempt layer is first made.
    attempts: OnceLock<Box<[ViewSlot]>>,
    state: Mutex<Folded>,
}

/// What the lock guards: the newest interval tagged, and the totals of reused slots.
pub(crate) struct Folded {
    newest_tag: u64,
    totals: [Tally; 2],
}

impl Ring {
    /// A ring of `intervals` intervals of `interval` nanoseconds each, plus the current one.
    pub(crate) fn new(interval: u64, intervals: usize) -> Self {
        let n = intervals + 1;
        Ring {
            interval: interval.max(1),
            slots: (0..n)
                .map(|_| Slot {
                    tag: AtomicU64::new(0),
                    requests: ViewSlot::new(),
                    events: Default::default(),
                })
                .collect(),
            attempts: OnceLock::new(),
            state: Mutex::new(Folded {
                newest_tag: 0,
                totals: [Tally::new(), Tally::new()],
            }),
        }
    }

    pub(crate) fn interval(&self) -> u64 {
        self.interval
    }

    pub(crate) fn enable_attempts(&self) {
        self.attempts
            .get_or_init(|| (0..self.slots.len()).map(|_| ViewSlot::new()).collect());
    }

    pub(crate) fn has_attempts(&self) -> bool {
        self.attempts.get().is_some()
    }

    /// The interval `now` falls in.
    #[inline]
    pub(crate) fn interval_of(&self, now: u64) -> u64 {
        now / self.interval
    }

    /// The slot of interval `e`, once it is tagged; `Some(closed)` when this call moved the
    /// ring into a new interval (the lock is then held by the returned guard, for alerts).
    #[inline]
    fn slot(&self, e: u64) -> (usize, Option<MutexGuard<'_, Folded>>) {
        let i = (e % self.slots.len() as u64) as usize;
        if self.slots[i].tag.load(Ordering::Acquire) > e {
            return (i, None);
        }
        (i, self.advance(e))
    }

    /// Records one request of `view` at `now`. Returns the locked state when the request opened
    /// a new interval (the caller evaluates alerts with it).
    #[inline]
    pub(crate) fn record(
        &self,
        view: View,
        now: u64,
        what: Recorded,
        latency: Option<u64>,
        retries: u32,
    ) -> Option<MutexGuard<'_, Folded>> {
        let (i, opened) = self.slot(self.interval_of(now));
        match view {
            View::Requests => self.slots[i].requests.record(what, latency, retries),
            View::Attempts => {
                if let Some(a) = self.attempts.get() {
                    a[i].record(what, latency, retries);
                }
            }
        }
        opened
    }

    pub(crate) fn record_event(&self, now: u64, counter: usize) -> Option<MutexGuard<'_, Folded>> {
        let (i, opened) = self.slot(self.interval_of(now));
        self.slots[i].events[counter].fetch_add(1, Ordering::Relaxed);
        opened
    }

    /// Moves the ring to interval `e`: reused slots are folded into the totals and tagged anew.
    /// Returns the guard when the ring moved (an interval closed), `None` when it was already
    /// there.
    pub(crate) fn advance(&self, e: u64) -> Option<MutexGuard<'_, Folded>> {
        let mut st = lock(&self.state);
        if st.newest_tag > e {
            return None;
        }
        let n = self.slots.len() as u64;
        let from = st.newest_tag.max(e.saturating_sub(n - 1));
        for k in from..=e {
            let i = (k % n) as usize;
            let slot = &self.slots[i];
            if slot.tag.load(Ordering::Relaxed) != 0 {
                let [requests, attempts] = &mut st.totals;
                slot.requests.visit(requests, true);
                for (c, t) in slot.events.iter().zip(requests.events.iter_mut()) {
                    *t += u64::from(c.swap(0, Ordering::Relaxed));
                }
                if let Some(a) = self.attempts.get() {
                    a[i].visit(attempts, true);
                }
            }
            slot.tag.store(k + 1, Ordering::Release);
        }
        st.newest_tag = e + 1;
        Some(st)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Folded> {
        lock(&self.state)
    }

    /// The counts of `view` over the `m` intervals ending with interval `end` (`end` included).
    /// Call with the lock held, so that no slot is folded meanwhile.
    pub(crate) fn window(&self, _held: &Folded, view: View, end: u64, m: u64) -> Tally {
        let mut t = Tally::new();
        for k in end.saturating_sub(m.saturating_sub(1))..=end {
            self.add_interval(view, k, &mut t);
        }
        t
    }

    /// The counts of `view` in interval `k` alone (empty when the ring no longer holds it).
    pub(crate) fn add_interval(&self, view: View, k: u64, t: &mut Tally) {
        let n = self.slots.len() as u64;
        let i = (k % n) as usize;
        let slot = &self.slots[i];
        if slot.tag.load(Ordering::Acquire) != k + 1 {
            return;
        }
        match view {
            View::Requests => {
                slot.requests.visit(t, false);
                for (c, e) in slot.events.iter().zip(t.events.iter_mut()) {
                    *e += u64::from(c.load(Ordering::Relaxed));
                }
            }
            View::Attempts => {
                if let Some(a) = self.attempts.get() {
                    a[i].visit(t, false);
                }
            }
        }
    }

    /// Every count of `view` since the start.
    pub(crate) fn total(&self, held: &Folded, view: View) -> Tally {
        let mut t = held.totals[view.index()].clone();
        let newest = held.newest_tag;
        let n = self.slots.len() as u64;
        for k in newest.saturating_sub(n)..newest {
            self.add_interval(view, k, &mut t);
        }
        t
    }

    /// The newest interval the ring has moved to.
    pub(crate) fn newest(&self, held: &Folded) -> Option<u64> {
        held.newest_tag.checked_sub(1)
    }
}

/// The crate's locks guard state that stays consistent whatever panicked while holding them
/// (alert callbacks run after they are released), so a poisoned lock is used as it is.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
