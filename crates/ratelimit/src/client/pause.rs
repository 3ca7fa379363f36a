//! The pause a server asked for, as a hints-only layer keeps it: one word, no quota.
//!
//! The word holds the end of the pause in nanoseconds after the layer's base instant (tokio's
//! clock, the one its waits sleep on), or `0` for "no pause". A request reads it with one load;
//! only when it is set does the request read the clock. A response that asks for a pause raises
//! it with `fetch_max` (the longest pause wins); a request that finds it expired clears it with a
//! compare-and-swap from the value it saw, so a newer pause set meanwhile is never lost.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering};

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::direct::{nanos, Padded};

/// The end of a server's pause, in nanoseconds after a base instant; `0` is "no pause".
///
/// Orderings are `Relaxed`: the word publishes no other memory, and all operations on one
/// location are coherent, so a pause set before a later request (in happens-before order, e.g.
/// through the task that received the response) is seen by that request.
#[derive(Default)]
pub(crate) struct PauseWord(AtomicU64);

impl PauseWord {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> PauseWord {
        PauseWord(AtomicU64::new(0))
    }

    #[cfg(loom)]
    pub(crate) fn new() -> PauseWord {
        PauseWord(AtomicU64::new(0))
    }

    /// The end of the pause, `0` if none.
    #[inline]
    pub(crate) fn load(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Makes the pause last at least until `until` (the longest pause wins).
    #[inline]
    pub(crate) fn raise_to(&self, until: u64) {
        self.0.fetch_max(until, Ordering::Relaxed);
    }

    /// Clears a pause that ended at `seen`, unless the word has changed since it was read (a
    /// pause raised meanwhile stays). Returns whether it cleared.
    #[inline]
    pub(crate) fn clear(&self, seen: u64) -> bool {
        self.0
            .compare_exchange(seen, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// A pause on tokio's clock, shared by every service of a hints-only layer.
pub(crate) struct ServerPause {
    base: Instant,
    /// Read by every request, written only when a server asks for a pause: on its own line, so
    /// that writes elsewhere (the `Arc`'s counts) do not evict it.
    until: Padded<PauseWord>,
}

/// What a request must do about the pause.
pub(crate) enum PauseCheck {
    /// No pause in force.
    Clear,
    /// Wait `wait` (from the instant the clock was read), until `deadline`.
    Wait { wait: Duration, deadline: Instant },
}

impl ServerPause {
    pub(crate) fn new() -> ServerPause {
        ServerPause {
            base: Instant::now(),
            until: Padded(PauseWord::new()),
        }
    }

    /// The end of the pause in nanoseconds after the base, `0` if none: one atomic load.
    #[inline]
    pub(crate) fn until(&self) -> u64 {
        self.until.0.load()
    }

    /// Pauses for `delay` from `now` (at least: a longer pause already in force stays). A zero
    /// delay pauses nothing.
    pub(crate) fn extend(&self, delay: Duration, now: Instant) {
        if delay.is_zero() {
            return;
        }
        // `delay` is at least 1 ns, so `until` is never the "no pause" value.
        let until = nanos(now.saturating_duration_since(self.base)).saturating_add(nanos(delay));
        self.until.0.raise_to(until);
    }

    /// What a request that read `until` (nonzero) must do at `now`. An expired pause is cleared.
    pub(crate) fn check(&self, until: u64, now: Instant) -> PauseCheck {
        let now_ns = nanos(now.saturating_duration_since(self.base));
        if until <= now_ns {
            self.until.0.clear(until);
            return PauseCheck::Clear;
        }
        let wait = Duration::from_nanos(until - now_ns);
        let deadline = self
            .base
            .checked_add(Duration::from_nanos(until))
            .unwrap_or_else(|| deadline_after(now, wait));
        PauseCheck::Wait { wait, deadline }
    }

    /// The time left of the pause at `now`, zero if none (without clearing anything).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn remaining(&self, now: Instant) -> Duration {
        let until = self.until();
        let now_ns = nanos(now.saturating_duration_since(self.base));
        Duration::from_nanos(until.saturating_sub(now_ns))
    }

    /// The raw word, for tests.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn raw(&self) -> u64 {
        self.until()
    }
}

impl fmt::Debug for ServerPause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let until = self.until();
        let mut d = f.debug_struct("ServerPause");
        if until == 0 {
            d.field("paused", &false);
        } else {
            d.field(
                "remaining",
                &Duration::from_nanos(
                    until
                        .saturating_sub(nanos(Instant::now().saturating_duration_since(self.base))),
                ),
            );
        }
        d.finish()
    }
}

/// `now + wait`, or, for a wait past tokio's range, a deadline 30 years away ("never" for any
/// practical purpose).
pub(crate) fn deadline_after(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait)
        .or_else(|| now.checked_add(Duration::from_secs(30 * 365 * 86_400)))
        .unwrap_or(now)
}
