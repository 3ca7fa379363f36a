//! One early timer per runtime, so that arming an attempt's timer does not wake the runtime.
//!
//! tokio's time driver notes, each time it parks, the earliest deadline in its timer wheel, and
//! until it parks again it wakes the I/O driver (a write to an eventfd: a system call) for every
//! timer registered with an earlier deadline, or with any deadline if the wheel was empty
//! (tokio-rs/tokio#5207). A busy client whose every request arms a timeout meets that on most
//! requests: `strace -f -c` of the loopback bench's client with a timeout counted 40,360 `write`
//! calls beside 84,352 `writev` (one per request, one per response), several per cent of its
//! throughput.
//!
//! A keeper is a task per runtime that keeps one timer of its own in the wheel, due sooner than
//! the deadline of any attempt it serves: it sleeps half the shortest timeout it serves, and
//! again. With it the wheel is never empty and every attempt's deadline is later than the
//! earliest one the driver noted, so registering the attempt's timer wakes nobody (the same
//! count: 347 `write` beside 42,368 `writev`). The attempts' timers are unchanged: the keeper
//! only decides what a registration costs, never when an attempt times out.
//!
//! Rules:
//!
//! - A keeper is started by the first attempt that arms a timer on a runtime (a runtime with a
//!   time driver: the attempt's own timer needed one), and serves every attempt timeout on that
//!   runtime; it shortens its round to half of a shorter timeout when one comes.
//! - Timeouts shorter than twice [`MIN_ROUND`] are not served: a keeper waking more often than
//!   every [`MIN_ROUND`] would cost an idle runtime more than it saves.
//! - It stops after [`IDLE_ROUNDS`] rounds in which no attempt armed a timer, or with its
//!   runtime; the next attempt starts a new one.
//! - An attempt looks up its runtime (to find its keeper) only when its thread's keeper has not
//!   been marked active since its last round: once a round per thread. A thread that moves to
//!   another runtime while its old keeper stays busy goes without a keeper until then: its
//!   attempts' timers cost what they cost without one, and still fire on time.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::runtime::{Handle, Id};

/// The shortest round of a keeper.
pub(crate) const MIN_ROUND: Duration = Duration::from_millis(50);

/// A keeper stops after this many rounds without an attempt.
pub(crate) const IDLE_ROUNDS: u32 = 4;

/// One runtime's keeper.
#[derive(Debug)]
pub(crate) struct Keeper {
    runtime: Id,
    /// The round, in nanoseconds: half the shortest timeout served so far.
    round_ns: AtomicU64,
    /// An attempt armed a timer since the keeper's last round.
    active: AtomicBool,
    /// The keeper's task is running (cleared when it stops, or its runtime drops it).
    alive: AtomicBool,
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
}

/// The keeper round for attempts of `timeout`, if a keeper serves them.
fn round_for(timeout: Duration) -> Option<u64> {
    let round = timeout / 2;
    (round >= MIN_ROUND).then(|| u64::try_from(round.as_nanos()).unwrap_or(u64::MAX))
}

/// An attempt bounded by `timeout` has just armed its timer on the current runtime: make sure a
/// keeper serves it. Called on the path of attempts not answered on their first poll only.
pub(crate) fn armed(timeout: Duration) {
    let Some(round_ns) = round_for(timeout) else {
        return;
    };
    // Most attempts: this thread's keeper is running, another attempt already marked this round
    // active, and its round is short enough. Nothing to write, and the runtime is not looked up
    // (an `Arc` taken and dropped): it is checked once a round, by the first attempt after the
    // keeper clears `active`.
    let marked = with_cached(|keeper| {
        keeper.active.load(Ordering::Relaxed)
            && keeper.alive.load(Ordering::Relaxed)
            && round_ns >= keeper.round_ns.load(Ordering::Relaxed)
    });
    if marked {
        return;
    }
    let Ok(handle) = Handle::try_current() else {
        return;
    };
    let runtime = handle.id();
    let served = with_cached(|keeper| {
        let serves = keeper.runtime == runtime && keeper.alive.load(Ordering::Acquire);
        if serves {
            keeper.touch(round_ns);
        }
        serves
    });
    if !served {
        start(&handle, runtime, round_ns);
    }
}

/// `f` of this thread's cached keeper; `false` if there is none (or the cache is unreachable:
/// the thread is exiting).
fn with_cached(f: impl FnOnce(&Keeper) -> bool) -> bool {
    CACHED
        .try_with(|cached| cached.try_borrow().ok().and_then(|k| k.as_deref().map(f)))
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Finds or starts the keeper of `runtime`, and caches it for this thread.
#[cold]
#[inline(never)]
fn start(handle: &Handle, runtime: Id, round_ns: u64) {
    let (keeper, new) = {
        let mut keepers = keepers();
        keepers.retain(|k| k.alive.load(Ordering::Acquire));
        match keepers.iter().find(|k| k.runtime == runtime) {
            Some(keeper) => (Arc::clone(keeper), false),
            None => {
                let keeper = Arc::new(Keeper {
                    runtime,
                    round_ns: AtomicU64::new(round_ns),
                    active: AtomicBool::new(true),
                    alive: AtomicBool::new(true),
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
            *cached = Some(keeper);
        }
    });
}

/// Leaves the list when the keeper's task ends, whether it stopped or its runtime dropped it.
struct Leave(Arc<Keeper>);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::Release);
        keepers().retain(|k| !Arc::ptr_eq(k, &self.0));
    }
}

/// The keeper's task: one timer in the wheel at all times, until idle.
async fn run(leave: Leave) {
    let mut idle = 0;
    while idle < IDLE_ROUNDS {
        tokio::time::sleep(leave.0.round()).await;
        if leave.0.active.swap(false, Ordering::Relaxed) {
            idle = 0;
        } else {
            idle += 1;
        }
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
}
