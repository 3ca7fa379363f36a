//! The keeper's board: a fixed array of slots where attempts post their deadline and waker, and
//! which the keeper reads to wake the attempts that are due.
//!
//! An attempt claims a free slot with one compare-and-swap, writes its deadline and waker, and
//! publishes it (`ARMED`); when it ends first it frees the slot (`ARMED -> CANCELLING`, its
//! waker dropped, `FREE`), so that no finished task is kept alive by a waker on the board.
//! The keeper, alone, walks the board: it fires a due slot (`ARMED -> FIRING`, wake, `FIRED`),
//! and, when it stops, releases every armed slot (`ARMED -> RELEASING`, wake, `FREE`) so that
//! its attempts fall back to timers of their own. No lock, no allocation after the board's.
//!
//! Each slot's state is one word: a generation (bumped at every claim) and a status. A ticket
//! names a slot and the generation it claimed, so an attempt never mistakes a later claim of its
//! slot for its own: what it reads is [`Check::Armed`] (its claim stands), [`Check::Fired`] (the
//! keeper found it due) or [`Check::Lost`] (its claim was released, and the attempt keeps time
//! itself). A slot is claimed again only when `FREE` or `FIRED`: never while a waker is being
//! written, taken or woken, so a wake always reaches the attempt whose slot it was.
//!
//! The waker is a plain cell, not an atomic waker: the state word already says who may touch
//! it. Only the thread whose compare-and-swap moved the slot into `WRITING`, `CANCELLING`,
//! `FIRING` or `RELEASING` reads or writes the cell, and only until it moves the slot out again
//! with a release store, which the next such compare-and-swap acquires. An attempt whose waker
//! changes while armed takes the slot back into `WRITING` to post the new one
//! ([`Board::rewake`]). That leaves an attempt two atomic read-modify-writes on its slot (its
//! claim and its cancel) where an atomic waker in the slot made six: ~20 ns less per attempt,
//! measured in `docs/benchmarks.md` (the one `unsafe` of this crate, in [`WakerCell`]).
//!
//! The concurrent claims (a claim never lost, a fired or released attempt always woken, a slot
//! never stuck, a waker cell never touched by two threads at once: loom's cell checks it) are
//! checked with loom: see `loom_tests` at the end of this file and the command in the budget
//! module.

use std::task::Waker;

#[cfg(resile_loom)]
use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(resile_loom))]
use std::sync::atomic::{fence, AtomicU64, Ordering};

const FREE: u64 = 0;
const ARMED: u64 = 1;
/// Its attempt writes the deadline and waker.
const WRITING: u64 = 2;
/// The keeper has found it due and wakes its attempt.
const FIRING: u64 = 3;
const FIRED: u64 = 4;
/// The keeper is stopping and wakes its attempt, which keeps time itself.
const RELEASING: u64 = 5;
/// Its attempt ended first and drops its waker.
const CANCELLING: u64 = 6;
const STATUS_BITS: u32 = 3;
const STATUS: u64 = (1 << STATUS_BITS) - 1;

const fn word(generation: u64, status: u64) -> u64 {
    generation << STATUS_BITS | status
}

/// Slots tried from a claim's starting point before the attempt falls back to a timer of its own.
const PROBES: usize = 8;

/// The waker of a slot's attempt, read and written only by the thread that holds the slot (see
/// the [module documentation](self)); loom's cell under the model, which checks that.
struct WakerCell {
    #[cfg(not(resile_loom))]
    cell: std::cell::UnsafeCell<Option<Waker>>,
    #[cfg(resile_loom)]
    cell: loom::cell::UnsafeCell<Option<Waker>>,
}

// SAFETY: the cell is only reached through `WakerCell::replace`, whose callers hold its slot
// (below); a `Waker` is `Send`, so handing it from the thread that wrote it to the one that takes
// it is sound, and no two threads ever reach the cell at once.
#[allow(unsafe_code)]
unsafe impl Sync for WakerCell {}

impl WakerCell {
    fn new() -> Self {
        WakerCell {
            cell: Default::default(),
        }
    }

    /// Puts `waker` in the cell and returns what was there.
    ///
    /// # Safety
    ///
    /// The caller holds the slot: its own compare-and-swap moved the slot's state into `WRITING`,
    /// `CANCELLING`, `FIRING` or `RELEASING`, and it has not stored another state since. Every
    /// store that leaves those states is a release and every such compare-and-swap an acquire,
    /// so the accesses of successive holders are ordered.
    #[allow(unsafe_code)]
    unsafe fn replace(&self, waker: Option<Waker>) -> Option<Waker> {
        #[cfg(not(resile_loom))]
        // SAFETY: the caller holds the slot (above): no other access to the cell can overlap.
        return std::mem::replace(unsafe { &mut *self.cell.get() }, waker);
        #[cfg(resile_loom)]
        // SAFETY: as above; loom checks it.
        return self
            .cell
            .with_mut(|w| std::mem::replace(unsafe { &mut *w }, waker));
    }
}

struct Slot {
    state: AtomicU64,
    /// The attempt's deadline, in the keeper's nanoseconds; written before `ARMED` is published.
    deadline: AtomicU64,
    waker: WakerCell,
}

/// A claim on a slot: which one, and the generation claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    index: usize,
    generation: u64,
}

impl Ticket {
    /// The slot claimed.
    pub(crate) fn index(self) -> usize {
        self.index
    }
}

/// What an attempt finds in its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Still armed: the keeper will wake it when it is due (its waker is the latest given).
    Armed,
    /// The keeper found it due: the attempt has timed out.
    Fired,
    /// The keeper released it (it stopped): the attempt keeps time itself from now on.
    Lost,
}

/// What one walk of the board found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Walk {
    /// The earliest deadline still armed (`u64::MAX` if none).
    pub(crate) earliest: u64,
    /// Slots armed and not yet due.
    pub(crate) armed: usize,
    /// Slots fired by this walk.
    pub(crate) fired: usize,
}

pub(crate) struct Board {
    slots: Box<[Slot]>,
}

impl Board {
    /// A board of `len` slots (a power of two).
    pub(crate) fn new(len: usize) -> Self {
        debug_assert!(len.is_power_of_two());
        Board {
            slots: (0..len)
                .map(|_| Slot {
                    state: AtomicU64::new(word(0, FREE)),
                    deadline: AtomicU64::new(0),
                    waker: WakerCell::new(),
                })
                .collect(),
        }
    }

    fn slot(&self, index: usize) -> &Slot {
        &self.slots[index & (self.slots.len() - 1)]
    }

    /// Claims a free slot at or after `start`, posts `deadline` and `waker` there and publishes
    /// it. `None` if the [`PROBES`] slots tried are all taken.
    ///
    /// The publication ends with a sequentially consistent fence: the caller's loads after it
    /// (is the keeper alive, when does it walk next) and the keeper's stores before a walk or a
    /// release (which begin with one too) cannot both miss each other.
    pub(crate) fn arm(&self, start: usize, deadline: u64, waker: &Waker) -> Option<Ticket> {
        let mask = self.slots.len() - 1;
        for probe in 0..PROBES.min(self.slots.len()) {
            let index = (start + probe) & mask;
            let slot = &self.slots[index];
            let current = slot.state.load(Ordering::Relaxed);
            let status = current & STATUS;
            if status != FREE && status != FIRED {
                continue;
            }
            let generation = (current >> STATUS_BITS).wrapping_add(1);
            if slot
                .state
                .compare_exchange(
                    current,
                    word(generation, WRITING),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue;
            }
            slot.deadline.store(deadline, Ordering::Relaxed);
            Self::publish(slot, generation, waker);
            return Some(Ticket { index, generation });
        }
        None
    }

    /// What became of `ticket`'s claim.
    pub(crate) fn check(&self, ticket: Ticket) -> Check {
        let state = self.slot(ticket.index).state.load(Ordering::Acquire);
        if state == word(ticket.generation, ARMED) {
            return Check::Armed;
        }
        Self::judge(state, ticket)
    }

    /// Posts `waker` in place of the one `ticket`'s claim holds (the attempt's waker changed):
    /// takes the slot back into `WRITING` for it, and publishes it again as [`Board::arm`] does
    /// (ending with the same fence, after which the caller looks at its keeper again: a walk or
    /// a release meanwhile passed the slot by). [`Check::Armed`] once posted; what became of the
    /// claim if it no longer stands.
    pub(crate) fn rewake(&self, ticket: Ticket, waker: &Waker) -> Check {
        let slot = self.slot(ticket.index);
        if let Err(state) = slot.state.compare_exchange(
            word(ticket.generation, ARMED),
            word(ticket.generation, WRITING),
            Ordering::Acquire,
            Ordering::Acquire,
        ) {
            return Self::judge(state, ticket);
        }
        Self::publish(slot, ticket.generation, waker);
        Check::Armed
    }

    /// Writes `waker` into `slot`, which this thread's compare-and-swap put in `WRITING` for
    /// `generation`, and publishes the slot `ARMED`, ending with a sequentially consistent
    /// fence (see [`Board::arm`]).
    fn publish(slot: &Slot, generation: u64, waker: &Waker) {
        // SAFETY: the caller's compare-and-swap put the slot in `WRITING`.
        #[allow(unsafe_code)]
        let old = unsafe { slot.waker.replace(Some(waker.clone())) };
        slot.state.store(word(generation, ARMED), Ordering::Release);
        fence(Ordering::SeqCst);
        // Dropped once the slot is handed on (after a claim it is `None`: every holder before
        // took its waker out).
        drop(old);
    }

    fn judge(state: u64, ticket: Ticket) -> Check {
        let status = state & STATUS;
        if state >> STATUS_BITS == ticket.generation && (status == FIRING || status == FIRED) {
            Check::Fired
        } else {
            // Released (or, after a release, claimed again by another attempt).
            Check::Lost
        }
    }

    /// The attempt is over (answered, failed or dropped): frees its slot if it still holds it
    /// (`false` if the keeper fired or released it first), and drops the waker it posted there
    /// (a waker kept would keep its finished task's memory alive until the slot is claimed
    /// again).
    pub(crate) fn cancel(&self, ticket: Ticket) -> bool {
        let slot = self.slot(ticket.index);
        let armed = word(ticket.generation, ARMED);
        if !Self::claim(slot, armed, word(ticket.generation, CANCELLING)) {
            return false;
        }
        // SAFETY: this thread's compare-and-swap put the slot in `CANCELLING`.
        #[allow(unsafe_code)]
        let waker = unsafe { slot.waker.replace(None) };
        slot.state
            .store(word(ticket.generation, FREE), Ordering::Release);
        drop(waker);
        true
    }

    /// The keeper's walk at `now`: fires every armed slot due by then. Begins with a
    /// sequentially consistent fence (see [`Board::arm`]).
    pub(crate) fn walk(&self, now: u64) -> Walk {
        fence(Ordering::SeqCst);
        let mut walk = Walk {
            earliest: u64::MAX,
            armed: 0,
            fired: 0,
        };
        for slot in self.slots.iter() {
            let state = slot.state.load(Ordering::Acquire);
            if state & STATUS != ARMED {
                continue;
            }
            let deadline = slot.deadline.load(Ordering::Relaxed);
            if deadline > now {
                walk.earliest = walk.earliest.min(deadline);
                walk.armed += 1;
            } else if Self::wake(slot, state, word(state >> STATUS_BITS, FIRING), FIRED) {
                walk.fired += 1;
            }
            // Else freed meanwhile: only its attempt changes an armed slot.
        }
        walk
    }

    /// Releases every armed slot, waking its attempt: the keeper is stopping. Returns how many.
    /// Begins with a sequentially consistent fence (see [`Board::arm`]).
    pub(crate) fn release_all(&self) -> usize {
        fence(Ordering::SeqCst);
        let mut released = 0;
        for slot in self.slots.iter() {
            let state = slot.state.load(Ordering::Acquire);
            if state & STATUS == ARMED {
                let generation = state >> STATUS_BITS;
                if Self::wake(slot, state, word(generation, RELEASING), FREE) {
                    released += 1;
                }
            }
        }
        released
    }

    /// Moves a slot from `from` to `to`, if no one moved it first.
    fn claim(slot: &Slot, from: u64, to: u64) -> bool {
        slot.state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Moves an armed slot (`armed`) through `busy`, wakes its attempt, and leaves it `then`;
    /// `false` if the attempt freed it first.
    fn wake(slot: &Slot, armed: u64, busy: u64, then: u64) -> bool {
        if !Self::claim(slot, armed, busy) {
            return false;
        }
        // SAFETY: this thread's compare-and-swap put the slot in `busy` (`FIRING` or
        // `RELEASING`).
        #[allow(unsafe_code)]
        let waker = unsafe { slot.waker.replace(None) };
        if let Some(waker) = waker {
            waker.wake();
        }
        slot.state
            .store(word(armed >> STATUS_BITS, then), Ordering::Release);
        true
    }

    /// Slots armed now (for tests).
    #[cfg(test)]
    pub(crate) fn armed(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state.load(Ordering::SeqCst) & STATUS == ARMED)
            .count()
    }
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("slots", &self.slots.len())
            .finish()
    }
}

#[cfg(all(test, not(resile_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Wake;

    /// A waker that counts its wakes.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    fn wakes(count: &Count) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    #[test]
    fn a_due_slot_is_fired_once_and_its_attempt_woken() {
        let board = Board::new(8);
        let (count, waker) = counter();
        let ticket = board.arm(0, 100, &waker).unwrap();
        assert_eq!(board.check(ticket), Check::Armed);

        let walk = board.walk(99);
        assert_eq!((walk.earliest, walk.armed, walk.fired), (100, 1, 0));
        assert_eq!(wakes(&count), 0);

        let walk = board.walk(100);
        assert_eq!((walk.earliest, walk.armed, walk.fired), (u64::MAX, 0, 1));
        assert_eq!(wakes(&count), 1);
        assert_eq!(board.check(ticket), Check::Fired);
        // Not fired twice.
        assert_eq!(board.walk(200).fired, 0);
        assert_eq!(wakes(&count), 1);
    }

    #[test]
    fn a_cancelled_slot_is_never_fired_and_is_claimed_again() {
        let board = Board::new(1);
        let (count, waker) = counter();
        let first = board.arm(0, 100, &waker).unwrap();
        assert!(board.cancel(first));
        assert_eq!(board.armed(), 0);
        assert_eq!(board.walk(1_000).fired, 0);
        assert_eq!(wakes(&count), 0);

        // The same slot, a new generation: the old ticket does not see the new claim as its own.
        let second = board.arm(0, 300, &waker).unwrap();
        assert_eq!(second.index, first.index);
        assert_ne!(second.generation, first.generation);
        assert_eq!(board.check(first), Check::Lost);
        assert_eq!(board.check(second), Check::Armed);
        // Cancelling the old ticket again leaves the new claim alone.
        assert!(!board.cancel(first));
        assert_eq!(board.armed(), 1);
    }

    #[test]
    fn a_fired_slot_is_claimed_again_and_its_old_ticket_reads_lost() {
        let board = Board::new(1);
        let waker = Waker::noop();
        let first = board.arm(0, 10, waker).unwrap();
        assert_eq!(board.walk(10).fired, 1);
        let second = board.arm(0, 20, waker).unwrap();
        assert_eq!(board.check(second), Check::Armed);
        // The first attempt, checking only now, cannot tell a later claim from a release: it
        // keeps time itself (and finds itself due by its own deadline).
        assert_eq!(board.check(first), Check::Lost);
    }

    #[test]
    fn a_full_board_refuses_a_claim() {
        let board = Board::new(16);
        let waker = Waker::noop();
        let tickets: Vec<_> = (0..16)
            .map(|i| board.arm(i, 100, waker).expect("a free slot"))
            .collect();
        assert!(board.arm(0, 100, waker).is_none());
        assert!(board.cancel(tickets[3]));
        // Found within the probes from a start nearby.
        let again = board.arm(0, 100, waker).expect("the freed slot");
        assert_eq!(again.index, 3);
        // Not found from a start more than `PROBES` slots before it.
        assert!(board.cancel(again));
        assert!(board.arm(4, 100, waker).is_none());
    }

    #[test]
    fn release_wakes_every_armed_attempt_which_then_reads_lost() {
        let board = Board::new(8);
        let (count, waker) = counter();
        let a = board.arm(0, 100, &waker).unwrap();
        let b = board.arm(0, 200, &waker).unwrap();
        let c = board.arm(0, 300, &waker).unwrap();
        assert!(board.cancel(b));
        assert_eq!(board.release_all(), 2);
        assert_eq!(wakes(&count), 2);
        assert_eq!(board.check(a), Check::Lost);
        assert_eq!(board.check(c), Check::Lost);
        assert_eq!(board.armed(), 0);
        assert_eq!(board.walk(1_000).fired, 0);
    }

    #[test]
    fn the_latest_waker_is_the_one_woken() {
        let board = Board::new(2);
        let (first, w1) = counter();
        let (second, w2) = counter();
        let ticket = board.arm(0, 50, &w1).unwrap();
        assert_eq!(board.rewake(ticket, &w2), Check::Armed);
        assert_eq!(board.check(ticket), Check::Armed);
        // The first waker's clone left the slot with the second's post.
        assert_eq!(
            (
                std::sync::Arc::strong_count(&first),
                std::sync::Arc::strong_count(&second)
            ),
            (2, 3)
        );
        board.walk(50);
        assert_eq!((wakes(&first), wakes(&second)), (0, 1));
        assert_eq!(board.rewake(ticket, &w1), Check::Fired);
    }

    #[test]
    fn a_rewake_after_a_cancel_or_a_release_is_refused() {
        let board = Board::new(2);
        let (_, waker) = counter();
        let cancelled = board.arm(0, 50, &waker).unwrap();
        assert!(board.cancel(cancelled));
        assert_eq!(board.rewake(cancelled, Waker::noop()), Check::Lost);
        let released = board.arm(0, 50, &waker).unwrap();
        assert_eq!(board.release_all(), 1);
        assert_eq!(board.rewake(released, Waker::noop()), Check::Lost);
        assert_eq!(board.armed(), 0);
    }

    #[test]
    fn no_slot_keeps_the_waker_of_an_attempt_that_ended() {
        // Cancelled, fired or released: the slot holds no clone of the attempt's waker (which
        // would keep a finished task's memory alive).
        let board = Board::new(4);
        let (count, waker) = counter();
        let cancelled = board.arm(0, 100, &waker).unwrap();
        board.arm(0, 100, &waker).unwrap();
        let released = board.arm(0, 200, &waker).unwrap();
        // The counter, the waker, and one clone per slot.
        assert_eq!(Arc::strong_count(&count), 5);
        assert!(board.cancel(cancelled));
        assert_eq!(Arc::strong_count(&count), 4);
        assert_eq!(board.walk(100).fired, 1);
        assert_eq!(Arc::strong_count(&count), 3);
        assert_eq!(board.release_all(), 1);
        assert_eq!(Arc::strong_count(&count), 2);
        assert_eq!(board.check(released), Check::Lost);
        // The slots are free to claim again.
        for start in 0..4 {
            assert!(board.arm(start, 100, Waker::noop()).is_some());
        }
    }

    #[test]
    fn a_walk_reports_the_earliest_deadline_still_armed() {
        let board = Board::new(8);
        let waker = Waker::noop();
        board.arm(0, 700, waker).unwrap();
        board.arm(0, 300, waker).unwrap();
        board.arm(0, 500, waker).unwrap();
        let walk = board.walk(0);
        assert_eq!((walk.earliest, walk.armed, walk.fired), (300, 3, 0));
        let walk = board.walk(400);
        assert_eq!((walk.earliest, walk.armed, walk.fired), (500, 2, 1));
    }

    #[test]
    fn threads_arming_and_cancelling_while_the_keeper_fires_lose_no_wake() {
        // Each thread arms a slot due at once, then waits for its wake or cancels; the walker
        // fires what is due. Every attempt either is woken or cancelled before the walk took it,
        // and at the end no slot is stuck armed, being written or being fired.
        let board = Arc::new(Board::new(64));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let walker = {
            let (board, stop) = (board.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut fired = 0;
                while !stop.load(Ordering::SeqCst) {
                    fired += board.walk(1).fired;
                }
                fired
            })
        };
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let board = board.clone();
                std::thread::spawn(move || {
                    let mut woken = 0;
                    for i in 0..20_000 {
                        let (count, waker) = counter();
                        let Some(ticket) = board.arm(t * 16 + i % 8, 1, &waker) else {
                            continue;
                        };
                        if i % 2 == 0 && board.cancel(ticket) {
                            continue;
                        }
                        // Fired (perhaps while cancelling): the wake comes, whether the attempt
                        // only looks or posts its waker again meanwhile.
                        let mut polls = 0;
                        while wakes(&count) == 0 {
                            let seen = if polls % 3 == 0 {
                                board.rewake(ticket, &waker)
                            } else {
                                board.check(ticket)
                            };
                            assert_ne!(seen, Check::Lost);
                            polls += 1;
                            std::hint::spin_loop();
                        }
                        assert!(!board.cancel(ticket));
                        woken += 1;
                    }
                    woken
                })
            })
            .collect();
        let woken: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        stop.store(true, Ordering::SeqCst);
        let fired = walker.join().unwrap();
        assert_eq!(fired, woken);
        let walk = board.walk(u64::MAX);
        assert_eq!((walk.armed, walk.fired), (0, 0));
        // Nothing left mid-way: every slot can be claimed again.
        for i in 0..64 {
            assert!(board.arm(i, 1, Waker::noop()).is_some());
        }
    }
}

#[cfg(all(test, resile_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::{AtomicBool, AtomicU64};
    use loom::sync::Arc;
    use loom::thread;
    use std::task::Wake;

    /// A waker that raises a flag (a loom atomic, so the model sees it).
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn flag() -> (std::sync::Arc<Flag>, Waker) {
        let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
        (flag.clone(), Waker::from(flag))
    }

    /// A board of one slot, armed due at 5 by an attempt with a flag waker, and a keeper thread
    /// walking it at 5 (returning how many it fired).
    fn armed_and_walked() -> (
        Arc<Board>,
        Ticket,
        std::sync::Arc<Flag>,
        Waker,
        thread::JoinHandle<usize>,
    ) {
        let board = Arc::new(Board::new(1));
        let (woken, waker) = flag();
        let ticket = board.arm(0, 5, &waker).unwrap();
        let keeper = {
            let board = board.clone();
            thread::spawn(move || board.walk(5).fired)
        };
        (board, ticket, woken, waker, keeper)
    }

    /// An attempt arming then checking, against the keeper firing: if the attempt's last check
    /// says it is armed, it was not fired; if the slot was fired, the attempt was woken.
    #[test]
    fn loom_a_fired_attempt_is_always_woken() {
        loom::model(|| {
            let (board, ticket, woken, _waker, keeper) = armed_and_walked();
            let seen = board.check(ticket);
            let fired = keeper.join().unwrap();
            assert_eq!(fired, 1);
            // Whatever the check saw, the wake came: a pending attempt is polled again.
            assert!(woken.0.load(Ordering::SeqCst));
            assert_ne!(seen, Check::Lost);
            assert_eq!(board.check(ticket), Check::Fired);
        });
    }

    /// An attempt ending (cancel) against the keeper firing: exactly one of them wins, and a
    /// slot fired is one whose attempt was woken; the slot ends free to claim.
    #[test]
    fn loom_cancel_and_fire_race() {
        loom::model(|| {
            let (board, ticket, woken, _waker, keeper) = armed_and_walked();
            let cancelled = board.cancel(ticket);
            let fired = keeper.join().unwrap();
            assert_eq!(fired == 1, !cancelled);
            assert_eq!(fired == 1, woken.0.load(Ordering::SeqCst));
            assert!(board.arm(0, 9, Waker::noop()).is_some());
        });
    }

    /// A slot fired for one attempt and claimed again by another at once: the wake reaches the
    /// first attempt, whatever the order.
    #[test]
    fn loom_a_reclaimed_slot_never_steals_a_wake() {
        loom::model(|| {
            let (board, ticket, first, _w1, keeper) = armed_and_walked();
            let (_second, w2) = flag();
            let again = board.arm(0, 9, &w2);
            let fired = keeper.join().unwrap();
            assert_eq!(fired, 1);
            assert!(first.0.load(Ordering::SeqCst));
            // The second claim succeeds only once the first was fired.
            if again.is_some() {
                assert_ne!(board.check(ticket), Check::Armed);
            }
        });
    }

    /// A keeper thread stopping: it clears `alive`, then releases the board (returning how many
    /// slots it released).
    fn stopping(board: &Arc<Board>, alive: &Arc<AtomicBool>) -> thread::JoinHandle<usize> {
        let (board, alive) = (board.clone(), alive.clone());
        thread::spawn(move || {
            alive.store(false, Ordering::Relaxed);
            board.release_all()
        })
    }

    /// An attempt posting a new waker while the keeper walks, with the keeper's plan as
    /// `keeper.rs` keeps it: a walk that finds the slot being written passes it by, and the
    /// attempt, reading the plan after its fence, pokes the keeper (which walks again). The
    /// slot is fired once, and the wake reaches the waker it held then (the new one once
    /// `rewake` says armed); `rewake` after the fire says fired.
    #[test]
    fn loom_a_rewake_racing_the_walk_loses_no_wake() {
        loom::model(|| {
            let board = Arc::new(Board::new(1));
            let (first, w1) = flag();
            let ticket = board.arm(0, 5, &w1).unwrap();
            let plan = Arc::new(AtomicU64::new(0));
            let keeper = {
                let (board, plan) = (board.clone(), plan.clone());
                thread::spawn(move || {
                    plan.store(100, Ordering::Relaxed);
                    let walk = board.walk(5);
                    if walk.earliest < 100 {
                        plan.store(walk.earliest, Ordering::Relaxed);
                    }
                    walk.fired
                })
            };
            let (second, w2) = flag();
            let seen = board.rewake(ticket, &w2);
            let poked = seen == Check::Armed && 5 < plan.load(Ordering::Relaxed);
            let mut fired = keeper.join().unwrap();
            if poked {
                fired += board.walk(5).fired;
            }
            assert_eq!(fired, 1);
            let (first, second) = (
                first.0.load(Ordering::SeqCst),
                second.0.load(Ordering::SeqCst),
            );
            match seen {
                Check::Armed => assert!(second && !first),
                Check::Fired => assert!(first && !second),
                Check::Lost => panic!("a fired claim reads fired"),
            }
            assert_eq!(board.check(ticket), Check::Fired);
        });
    }

    /// A new waker posted while the keeper stops: as for a claim (below), either the release
    /// wakes the attempt or the attempt, looking after its fence, sees the keeper gone.
    #[test]
    fn loom_a_rewake_racing_the_keepers_stop_is_never_stranded() {
        loom::model(|| {
            let board = Arc::new(Board::new(1));
            let alive = Arc::new(AtomicBool::new(true));
            let (first, w1) = flag();
            let ticket = board.arm(0, 5, &w1).unwrap();
            let keeper = stopping(&board, &alive);
            let (second, w2) = flag();
            let seen = board.rewake(ticket, &w2);
            let sees_gone = seen == Check::Armed && !alive.load(Ordering::Relaxed);
            if sees_gone {
                let _ = board.cancel(ticket);
            }
            let released = keeper.join().unwrap();
            // Released while armed (woken), or the attempt knows to keep time itself.
            assert!(released == 1 || sees_gone || seen == Check::Lost);
            if released == 1 {
                let woken = match seen {
                    Check::Armed => second.0.load(Ordering::SeqCst),
                    _ => first.0.load(Ordering::SeqCst),
                };
                assert!(woken);
            }
            assert_eq!(board.armed(), 0);
        });
    }

    /// A claim published while the keeper stops: the attempt checks `alive` after publishing,
    /// the keeper clears it before releasing, so either the release wakes the attempt or the
    /// attempt sees the keeper gone. Never both missed.
    #[test]
    fn loom_a_claim_racing_the_keepers_stop_is_never_stranded() {
        loom::model(|| {
            let board = Arc::new(Board::new(2));
            let alive = Arc::new(AtomicBool::new(true));
            let keeper = stopping(&board, &alive);
            let (woken, waker) = flag();
            let ticket = board.arm(0, 5, &waker).unwrap();
            let sees_gone = !alive.load(Ordering::Relaxed);
            if sees_gone {
                let _ = board.cancel(ticket);
            }
            let released = keeper.join().unwrap();
            assert!(sees_gone || released == 1);
            if released == 1 {
                assert!(woken.0.load(Ordering::SeqCst));
            }
            assert_eq!(board.armed(), 0);
        });
    }
}
