//! One keeper per runtime: a task that keeps the time of every pending attempt on a board of
//! its own, so that an attempt's timer never touches tokio's timer wheel.
//!
//! A tokio timer per attempt costs a runtime handle taken and dropped, the wheel's lock to
//! register and again to cancel, and, while the wheel was empty or only held later deadlines at
//! the driver's last park, a write to the driver's eventfd (a system call) at each registration
//! (tokio-rs/tokio#5207): `strace -f -c` of the loopback bench's client with one timer per
//! request counted 40,360 `write` calls beside 84,352 `writev` (one per request, one per
//! response).
//!
//! Instead an attempt not answered on its first poll posts its deadline and waker on its
//! runtime's keeper board ([`board`](super::board): one slot claimed with a compare-and-swap,
//! freed with another when the attempt ends). The keeper walks the board when the earliest
//! deadline on it comes, wakes the attempts due, and otherwise sleeps a round: half the
//! shortest timeout it serves. It holds the only timer in the wheel, so the driver's eventfd is
//! never written for an attempt (the same count: 284 `write` calls beside 42,368
//! `writev`). An attempt posted with a deadline before the keeper's next planned walk (a shorter
//! timeout than it served so far) pokes it to walk sooner. The attempt itself reads its slot:
//! armed, fired (timed out), or released.
//!
//! Rules:
//!
//! - A keeper is started by the first attempt that needs a timer on a runtime (a runtime with a
//!   time driver: starting one without panics as a timer of the attempt's own would), and
//!   serves every attempt timeout on that runtime.
//! - Timeouts shorter than twice [`MIN_ROUND`] are not served: a keeper waking more often than
//!   every [`MIN_ROUND`] would cost an idle runtime more than it saves. Neither is an attempt
//!   that finds the board's slots taken (more than about [`SLOTS`] pending at once): both keep
//!   time with a tokio timer of their own, as does an attempt whose keeper stops or whose
//!   runtime drops the keeper (the keeper releases and wakes every attempt on its board).
//! - It stops after [`IDLE_ROUNDS`] rounds in which no attempt was posted and none is pending,
//!   or with its runtime; the next attempt starts a new one.
//! - An attempt looks up its runtime (to find its keeper) only when its thread's keeper has not
//!   been marked active since its last round: once a round per thread. A thread that moves to
//!   another runtime while its old keeper stays busy posts on the old keeper until then: the
//!   deadline is the same instant on every runtime with a real clock (a paused test clock is per
//!   runtime: tests pause one runtime per thread).

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use tokio::runtime::{Handle, Id};
use tokio::time::Instant;

use super::board::{Board, Check, Ticket};

/// The shortest round of a keeper.
pub(crate) const MIN_ROUND: Duration = Duration::from_millis(50);

/// A keeper stops after this many rounds without an attempt.
pub(crate) const IDLE_ROUNDS: u32 = 4;

/// Slots on a keeper's board: attempts pending at once on one runtime beyond this (give or take
/// the slots a claim probes) keep time with tokio timers of their own.
pub(crate) const SLOTS: usize = 4096;

/// One runtime's keeper.
#[derive(Debug)]
pub(crate) struct Keeper {
    runtime: Id,
    /// The instant deadlines on the board count from, in nanoseconds.
    origin: Instant,
    board: Board,
    /// The round, in nanoseconds: half the shortest timeout served so far.
    round_ns: AtomicU64,
    /// An attempt armed a timer since the keeper's last round.
    active: AtomicBool,
    /// The keeper's task is running (cleared when it stops, or its runtime drops it).
    alive: AtomicBool,
    /// When the keeper walks the board next at the latest (nanoseconds from `origin`): an
    /// attempt due earlier pokes it.
    next_walk: AtomicU64,
    /// An attempt due before `next_walk` asked for a walk.
    poked: AtomicBool,
    /// The keeper's task, to poke.
    task: AtomicWaker,
}

impl Keeper {
    fn round(&self) -> Duration {
        Duration::from_nanos(self.round_ns.load(Ordering::Relaxed))
    }

    /// An attempt with a keeper round of `round_ns` armed a timer: read-mostly, so that the
    /// attempts of every worker do not write one cache line in turn.
    fn touch(&self, round_ns: u64) {
        if !self.active.load(Ordering::Relaxed) {
            self.active.store(true, Ordering::Relaxed);
        }
        if round_ns < self.round_ns.load(Ordering::Relaxed) {
            self.round_ns.fetch_min(round_ns, Ordering::Relaxed);
        }
    }

    /// `at` in the board's nanoseconds; `None` before the origin (a clock other than the
    /// keeper's: a paused test clock of another runtime).
    fn nanos(&self, at: Instant) -> Option<u64> {
        let since = at.checked_duration_since(self.origin)?;
        Some(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }

    fn now(&self) -> u64 {
        self.nanos(Instant::now()).unwrap_or(0)
    }

    fn instant(&self, nanos: u64) -> Option<Instant> {
        self.origin.checked_add(Duration::from_nanos(nanos))
    }

    fn poke(&self) {
        self.poked.store(true, Ordering::Release);
        self.task.wake();
    }

    /// Waits until `at` (board nanoseconds) or a poke, whichever comes first.
    async fn wait_until(&self, at: u64) {
        // A plan past what `Instant` holds: look again in a round.
        let at = self
            .instant(at)
            .unwrap_or_else(|| Instant::now() + self.round());
        let mut sleep = pin!(tokio::time::sleep_until(at));
        poll_fn(|cx| {
            self.task.register(cx.waker());
            if self.poked.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            sleep.as_mut().poll(cx)
        })
        .await
    }
}

/// An attempt's deadline posted on its runtime's keeper board; freed when dropped.
#[derive(Debug)]
pub(crate) struct Posted {
    keeper: Arc<Keeper>,
    ticket: Ticket,
    /// The deadline, in the keeper's nanoseconds.
    at: u64,
    /// Which waker the slot holds (its data and vtable addresses, as `Waker::will_wake`
    /// compares them): a poll with the same one touches nothing shared. The slot's clone keeps
    /// that waker's task alive, so the addresses cannot be reused meanwhile.
    waker: (usize, usize),
}

/// What `Waker::will_wake` compares, as plain numbers (the future stays `Send`).
fn identity(waker: &Waker) -> (usize, usize) {
    (
        waker.data() as usize,
        std::ptr::from_ref(waker.vtable()) as usize,
    )
}

impl Posted {
    /// What became of the post: still armed (the keeper wakes `waker` when it is due: posted in
    /// place of the slot's if it is another), fired (the attempt timed out), or lost (the keeper
    /// stopped: the attempt keeps time itself).
    pub(crate) fn check(&mut self, waker: &Waker) -> Check {
        let board = &self.keeper.board;
        match board.check(self.ticket) {
            Check::Armed if identity(waker) != self.waker => {}
            seen => return seen,
        }
        let seen = board.rewake(self.ticket, waker);
        if seen != Check::Armed {
            return seen;
        }
        self.waker = identity(waker);
        // As after a post: the keeper may have stopped, or walked, while the slot was being
        // written, and passed it by. (Lost: the caller drops this post, which frees the slot.)
        if self.keeper_sees() {
            Check::Armed
        } else {
            Check::Lost
        }
    }

    /// After the slot was published (these loads come after the publication's fence): `false`
    /// if the keeper has stopped without seeing it; pokes the keeper if the attempt is due
    /// before its next planned walk (one planned, or walked, without seeing it).
    fn keeper_sees(&self) -> bool {
        if !self.keeper.alive.load(Ordering::Relaxed) {
            return false;
        }
        if self.at < self.keeper.next_walk.load(Ordering::Relaxed) {
            self.keeper.poke();
        }
        true
    }

    /// When the attempt is due (`None`: past what `Instant` can hold).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.keeper.instant(self.at)
    }
}

impl Drop for Posted {
    fn drop(&mut self) {
        let _ = self.keeper.board.cancel(self.ticket);
    }
}

/// The live keepers, one per runtime.
static KEEPERS: Mutex<Vec<Arc<Keeper>>> = Mutex::new(Vec::new());

fn keepers() -> MutexGuard<'static, Vec<Arc<Keeper>>> {
    // The list is only pushed to and filtered: a panic elsewhere cannot leave it half-changed.
    KEEPERS.lock().unwrap_or_else(|p| p.into_inner())
}

thread_local! {
    /// The keeper this thread last served: a thread usually belongs to one runtime.
    static CACHED: RefCell<Option<Arc<Keeper>>> = const { RefCell::new(None) };
    /// Where this thread's next claim on a board starts: threads start far apart and walk on.
    static NEXT_SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Spreads the threads' first claims over the board.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// The keeper round for attempts of `timeout`, if a keeper serves them.
fn round_for(timeout: Duration) -> Option<u64> {
    let round = timeout / 2;
    (round >= MIN_ROUND).then(|| u64::try_from(round.as_nanos()).unwrap_or(u64::MAX))
}

/// Posts an attempt of `timeout`, due `timeout` from now, on its runtime's keeper board, with
/// the waker to wake when it is due; starts the keeper if there is none. `None` when no keeper
/// can serve it (a timeout under twice [`MIN_ROUND`], no runtime, a full board, the keeper
/// stopping): the attempt keeps time with a timer of its own. Called on the path of attempts
/// not answered on their first poll only.
pub(crate) fn post(timeout: Duration, waker: &Waker) -> Option<Posted> {
    let round_ns = round_for(timeout)?;
    let keeper = serving(round_ns)?;
    // The clock is read once the keeper is known, so never before its origin on its runtime.
    let at = keeper
        .nanos(Instant::now())?
        .checked_add(u64::try_from(timeout.as_nanos()).ok()?)?;
    // Claimed from where this thread's last claim left off: one thread-local access.
    let ticket = match NEXT_SLOT.try_with(|next| {
        let start = match next.get() {
            usize::MAX => THREADS
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(SLOTS / 16 + 1),
            start => start,
        };
        let ticket = keeper.board.arm(start, at, waker)?;
        next.set(ticket.index().wrapping_add(1) % SLOTS);
        Some(ticket)
    }) {
        Ok(ticket) => ticket?,
        // The thread is exiting: claim from the start.
        Err(_) => keeper.board.arm(0, at, waker)?,
    };
    let posted = Posted {
        keeper,
        ticket,
        at,
        waker: identity(waker),
    };
    // A keeper that stopped without seeing the post: dropping `posted` frees the slot.
    posted.keeper_sees().then_some(posted)
}

/// The keeper serving this thread's runtime for a round of `round_ns`, started if need be.
fn serving(round_ns: u64) -> Option<Arc<Keeper>> {
    // Most attempts: this thread's keeper is running, another attempt already marked this round
    // active, and its round is short enough. Nothing to write, and the runtime is not looked up
    // (an `Arc` taken and dropped): it is checked once a round, by the first attempt after the
    // keeper clears `active`.
    let marked = with_cached(|keeper| {
        (keeper.active.load(Ordering::Relaxed)
            && keeper.alive.load(Ordering::Relaxed)
            && round_ns >= keeper.round_ns.load(Ordering::Relaxed))
        .then(|| Arc::clone(keeper))
    });
    if marked.is_some() {
        return marked;
    }
    let handle = Handle::try_current().ok()?;
    let runtime = handle.id();
    let served = with_cached(|keeper| {
        let serves = keeper.runtime == runtime && keeper.alive.load(Ordering::Acquire);
        serves.then(|| {
            keeper.touch(round_ns);
            Arc::clone(keeper)
        })
    });
    served.or_else(|| Some(start(&handle, runtime, round_ns)))
}

/// `f` of this thread's cached keeper; `None` if there is none (or the cache is unreachable:
/// the thread is exiting).
fn with_cached<T>(f: impl FnOnce(&Arc<Keeper>) -> Option<T>) -> Option<T> {
    CACHED
        .try_with(|cached| {
            cached
                .try_borrow()
                .ok()
                .and_then(|k| k.as_ref().and_then(f))
        })
        .ok()
        .flatten()
}

/// Finds or starts the keeper of `runtime`, and caches it for this thread.
#[cold]
#[inline(never)]
fn start(handle: &Handle, runtime: Id, round_ns: u64) -> Arc<Keeper> {
    // A runtime without a time driver panics here, as a timer of the attempt's own would.
    drop(tokio::time::sleep(Duration::ZERO));
    let (keeper, new) = {
        let mut keepers = keepers();
        keepers.retain(|k| k.alive.load(Ordering::Acquire));
        match keepers.iter().find(|k| k.runtime == runtime) {
            Some(keeper) => (Arc::clone(keeper), false),
            None => {
                let origin = Instant::now();
                let keeper = Arc::new(Keeper {
                    runtime,
                    origin,
                    board: Board::new(SLOTS),
                    round_ns: AtomicU64::new(round_ns),
                    active: AtomicBool::new(true),
                    alive: AtomicBool::new(true),
                    next_walk: AtomicU64::new(0),
                    poked: AtomicBool::new(false),
                    task: AtomicWaker::new(),
                });
                keepers.push(Arc::clone(&keeper));
                (keeper, true)
            }
        }
    };
    if new {
        // Spawned once the list is unlocked: a task dropped at once (its runtime shutting down)
        // takes the lock to leave the list.
        drop(handle.spawn(run(Leave(Arc::clone(&keeper)))));
    }
    keeper.touch(round_ns);
    let _ = CACHED.try_with(|cached| {
        if let Ok(mut cached) = cached.try_borrow_mut() {
            *cached = Some(Arc::clone(&keeper));
        }
    });
    keeper
}

/// Leaves the list when the keeper's task ends, whether it stopped or its runtime dropped it,
/// and hands every attempt still posted back its own time keeping.
struct Leave(Arc<Keeper>);

impl Drop for Leave {
    fn drop(&mut self) {
        // Cleared before the board is released (which begins with a fence): an attempt posting
        // meanwhile sees it cleared (and keeps time itself) or is released.
        self.0.alive.store(false, Ordering::Relaxed);
        self.0.board.release_all();
        keepers().retain(|k| !Arc::ptr_eq(k, &self.0));
    }
}

/// The keeper's task: fires the attempts on its board when they are due, and keeps one timer in
/// the wheel at all times, until idle.
async fn run(leave: Leave) {
    let keeper = &*leave.0;
    let mut idle = 0;
    let mut armed = 0;
    let mut round_end = keeper
        .now()
        .saturating_add(keeper.round_ns.load(Ordering::Relaxed));
    loop {
        let now = keeper.now();
        // A shorter timeout served since shortens the round under way.
        round_end = round_end.min(now.saturating_add(keeper.round_ns.load(Ordering::Relaxed)));
        let new_round = now >= round_end;
        if new_round {
            if keeper.active.swap(false, Ordering::Relaxed) || armed > 0 {
                idle = 0;
            } else {
                idle += 1;
                if idle >= IDLE_ROUNDS {
                    return;
                }
            }
            round_end = now.saturating_add(keeper.round_ns.load(Ordering::Relaxed));
        }
        // Stored before the walk (which begins with a fence): an attempt posted too late for
        // the walk to see it reads this, or a later plan, and pokes if it is due earlier.
        keeper.next_walk.store(round_end, Ordering::Relaxed);
        let walk = keeper.board.walk(now);
        armed = walk.armed;
        let next = walk.earliest.min(round_end);
        if next < round_end {
            keeper.next_walk.store(next, Ordering::Relaxed);
        }
        keeper.wait_until(next).await;
    }
}

/// The keeper of the current runtime, if one is running.
#[cfg(test)]
pub(crate) fn current() -> Option<Arc<Keeper>> {
    let runtime = Handle::try_current().ok()?.id();
    keepers()
        .iter()
        .find(|k| k.runtime == runtime && k.alive.load(Ordering::Acquire))
        .cloned()
}

/// Whether a keeper of `runtime` is listed.
#[cfg(test)]
pub(crate) fn exists(runtime: Id) -> bool {
    keepers().iter().any(|k| k.runtime == runtime)
}

#[cfg(test)]
impl Keeper {
    pub(crate) fn round_for_test(&self) -> Duration {
        self.round()
    }

    /// Attempts posted on the board now.
    pub(crate) fn posted_for_test(&self) -> usize {
        self.board.armed()
    }
}
