//! The breaker's state machine: lock-free, and knowing nothing of tower or of clocks.
//!
//! # The state word
//!
//! One `AtomicU64` holds the whole state, so every transition is one compare-and-swap and
//! exactly one thread wins it:
//!
//! ```text
//! bits  0..3   kind: closed, open, half-open, forced open, disabled
//! bits  3..24  epoch (21 bits, wrapping): bumped by every transition
//! bits 24..64  payload (40 bits):
//!                closed     consecutive failures
//!                open       the end of the open period, in ms since the clock's origin
//!                half-open  probes in flight (20 bits) | probe successes (20 bits)
//! ```
//!
//! A call admitted in one state carries that state's epoch in its [`Permit`]. When its outcome
//! comes back, it only counts if the breaker is still in the same state and epoch: a call
//! admitted before a trip cannot count toward the next closed period, and a probe of an old
//! half-open period cannot return its permit into a new one.
//!
//! # What the closed path does
//!
//! Admission in the closed state is one atomic load. Recording a success under the
//! consecutive-failures policy is one more load (and a compare-and-swap only when a failure
//! streak has to be cleared). The rate policies add their window's record (see
//! [`window`](crate::window)). No lock, no allocation, and time is passed in as a closure that
//! the closed path of the consecutive and count-window policies never calls.
//!
//! # Locks
//!
//! The one mutex guards the open-period backoff. It is taken only by a thread about to open the
//! breaker (trip or reopen) and by one closing it (to reset the backoff), never on admission or
//! on a recorded outcome that changes no state.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use resile_backoff::Backoff;

use crate::clock::Tick;
use crate::sync::{lock, AtomicU64, Mutex, Ordering};
use crate::window::{CountWindow, TimeWindow};

/// The state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls pass; outcomes are counted against the trip policy.
    Closed,
    /// Calls are rejected until the open period ends.
    Open,
    /// A bounded number of probe calls pass; their outcomes close or reopen the breaker.
    HalfOpen,
    /// Every call is rejected until the handle resets the breaker.
    ForcedOpen,
    /// Every call passes and is counted in the metrics; the breaker never trips.
    Disabled,
}

impl State {
    /// Whether calls are rejected in this state (open or forced open).
    pub fn is_open(self) -> bool {
        matches!(self, State::Open | State::ForcedOpen)
    }

    /// A lowercase name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
            State::ForcedOpen => "forced-open",
            State::Disabled => "disabled",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const KIND_BITS: u32 = 3;
const EPOCH_BITS: u32 = 21;
const EPOCH_SHIFT: u32 = KIND_BITS;
const EPOCH_MASK: u64 = (1 << EPOCH_BITS) - 1;
const PAYLOAD_SHIFT: u32 = KIND_BITS + EPOCH_BITS;
const PAYLOAD_MAX: u64 = (1 << (64 - PAYLOAD_SHIFT)) - 1;
const HALF_BITS: u32 = 20;
const HALF_MASK: u64 = (1 << HALF_BITS) - 1;

/// The most probes in flight / successes to close that the state word can count.
pub(crate) const MAX_PROBES: u32 = (1 << HALF_BITS) - 1;

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const FORCED_OPEN: u64 = 3;
const DISABLED: u64 = 4;

#[inline]
fn kind(w: u64) -> u64 {
    w & ((1 << KIND_BITS) - 1)
}

#[inline]
fn epoch(w: u64) -> u32 {
    ((w >> EPOCH_SHIFT) & EPOCH_MASK) as u32
}

#[inline]
fn payload(w: u64) -> u64 {
    w >> PAYLOAD_SHIFT
}

#[inline]
fn pack(kind: u64, epoch: u32, payload: u64) -> u64 {
    kind | ((u64::from(epoch) & EPOCH_MASK) << EPOCH_SHIFT)
        | (payload.min(PAYLOAD_MAX) << PAYLOAD_SHIFT)
}

#[inline]
fn next_epoch(w: u64) -> u32 {
    ((u64::from(epoch(w)) + 1) & EPOCH_MASK) as u32
}

#[inline]
fn half(inflight: u64, successes: u64) -> u64 {
    (inflight & HALF_MASK) | ((successes & HALF_MASK) << HALF_BITS)
}

#[inline]
fn inflight(w: u64) -> u64 {
    payload(w) & HALF_MASK
}

#[inline]
fn successes(w: u64) -> u64 {
    (payload(w) >> HALF_BITS) & HALF_MASK
}

fn state_of(w: u64) -> State {
    match kind(w) {
        CLOSED => State::Closed,
        OPEN => State::Open,
        HALF_OPEN => State::HalfOpen,
        FORCED_OPEN => State::ForcedOpen,
        _ => State::Disabled,
    }
}

/// Milliseconds, rounded up: an open period never ends early.
#[inline]
pub(crate) fn ceil_ms(d: Duration) -> u64 {
    let ms = d.as_millis();
    let ms = if !d.subsec_nanos().is_multiple_of(1_000_000) {
        ms + 1
    } else {
        ms
    };
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// How a breaker counts one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Verdict {
    Success,
    Failure,
    Neutral,
}

/// What the trip policy looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trip {
    /// Trip after this many failures in a row (neutral outcomes neither break nor extend it).
    Consecutive(u64),
    /// Trip when `failures / calls >= ppm / 1e6` with at least `min_calls` calls in the window.
    Rate { ppm: u64, min_calls: u64 },
}

/// The numbers of a breaker's policy, shared by every slot of a keyed breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    pub(crate) trip: Trip,
    /// Probes allowed in flight at once while half-open.
    pub(crate) probes: u64,
    /// Probe successes that close the breaker.
    pub(crate) close_after: u64,
    /// Server hints are capped to this before they lengthen an open period.
    pub(crate) max_hint: Duration,
}

/// The window a rate policy counts in.
#[derive(Debug)]
pub(crate) enum Window {
    None,
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    fn reset(&self) {
        match self {
            Window::None => {}
            Window::Count(w) => w.reset(),
            Window::Time(w) => w.reset(),
        }
    }
}

/// What kind of call a permit admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum PermitKind {
    Closed = 0,
    Probe = 1,
    Disabled = 2,
}

/// The right to make one call, stamped with the epoch of the state that granted it.
///
/// Plain data: whoever holds a probe permit must give it back through [`Core::record`] or
/// [`Core::release`]. One non-zero `u32` (epoch in bits 0..21, kind in bits 21..23, bit 31
/// set), as the epoch is kept in the state word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Permit(NonZeroU32);

impl Permit {
    #[inline]
    pub(crate) fn new(epoch: u32, kind: PermitKind) -> Self {
        let bits = (1 << 31) | ((kind as u32) << EPOCH_BITS) | (epoch & EPOCH_MASK as u32);
        Permit(NonZeroU32::new(bits).unwrap_or(NonZeroU32::MAX))
    }

    #[inline]
    pub(crate) fn epoch(self) -> u32 {
        self.0.get() & EPOCH_MASK as u32
    }

    #[inline]
    pub(crate) fn kind(self) -> PermitKind {
        match (self.0.get() >> EPOCH_BITS) & 3 {
            0 => PermitKind::Closed,
            1 => PermitKind::Probe,
            _ => PermitKind::Disabled,
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("epoch", &self.epoch())
            .field("kind", &self.kind())
            .finish()
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// Time until the breaker lets a probe through: `None` when forced open, zero when
    /// half-open with every probe slot taken.
    pub(crate) until_probe: Option<Duration>,
}

/// A change of state, reported to whoever caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) from: State,
    pub(crate) to: State,
    /// For a transition to open: how long it stays open.
    pub(crate) open_for: Option<Duration>,
}

/// The open-period backoff, with the delay drawn but not yet used by a successful opening.
struct OpenBackoff {
    backoff: Box<dyn Backoff + Send>,
    pending: Option<Duration>,
    last: Duration,
}

impl OpenBackoff {
    fn peek(&mut self) -> Duration {
        if let Some(d) = self.pending {
            return d;
        }
        // A backoff that runs out keeps its last delay.
        let d = self.backoff.next_delay().unwrap_or(self.last);
        self.pending = Some(d);
        d
    }

    fn consume(&mut self) {
        if let Some(d) = self.pending.take() {
            self.last = d;
        }
    }

    fn reset(&mut self) {
        self.backoff.reset();
        self.pending = None;
    }
}

/// One breaker's lock-free state.
pub(crate) struct Core {
    word: AtomicU64,
    window: Window,
    backoff: Mutex<OpenBackoff>,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.word.load(Ordering::Acquire);
        f.debug_struct("Core")
            .field("state", &state_of(w))
            .field("epoch", &epoch(w))
            .field("payload", &payload(w))
            .field("window", &self.window)
            .finish()
    }
}

impl Core {
    /// A closed breaker.
    pub(crate) fn new(window: Window, backoff: Box<dyn Backoff + Send>, first: Duration) -> Self {
        Core {
            word: AtomicU64::new(pack(CLOSED, 0, 0)),
            window,
            backoff: Mutex::new(OpenBackoff {
                backoff,
                pending: None,
                last: first,
            }),
        }
    }

    /// The current state.
    #[inline]
    pub(crate) fn state(&self) -> State {
        state_of(self.word.load(Ordering::Acquire))
    }

    /// The counts of the rate window, if the policy has one.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn window_counts(&self) -> Option<crate::window::Counts> {
        match &self.window {
            Window::None => None,
            Window::Count(w) => Some(w.counts()),
            Window::Time(w) => Some(w.counts()),
        }
    }

    /// Asks to make a call. `now` is read only when the breaker is open.
    #[inline]
    pub(crate) fn acquire(
        &self,
        policy: &Policy,
        now: impl Fn() -> Tick,
    ) -> (Result<Permit, Refusal>, Option<Change>) {
        let w = self.word.load(Ordering::Acquire);
        if kind(w) == CLOSED {
            // The fast path: one load.
            return (Ok(Permit::new(epoch(w), PermitKind::Closed)), None);
        }
        self.acquire_slow(policy, w, now)
    }

    /// The fast path of [`acquire`](Core::acquire) alone: a permit if the breaker is closed
    /// (one load), `None` otherwise (then call `acquire`). Returned in a register: the closed
    /// path never goes through the (result, change) pair in memory.
    #[inline]
    pub(crate) fn closed_permit(&self) -> Option<Permit> {
        let w = self.word.load(Ordering::Acquire);
        (kind(w) == CLOSED).then(|| Permit::new(epoch(w), PermitKind::Closed))
    }

    #[cold]
    #[inline(never)]
    fn acquire_slow(
        &self,
        policy: &Policy,
        mut w: u64,
        now: impl Fn() -> Tick,
    ) -> (Result<Permit, Refusal>, Option<Change>) {
        loop {
            match kind(w) {
                CLOSED => return (Ok(Permit::new(epoch(w), PermitKind::Closed)), None),
                DISABLED => return (Ok(Permit::new(epoch(w), PermitKind::Disabled)), None),
                FORCED_OPEN => return (Err(Refusal { until_probe: None }), None),
                OPEN => {
                    let t = now().floor;
                    let deadline = payload(w);
                    if t < deadline {
                        return (
                            Err(Refusal {
                                until_probe: Some(Duration::from_millis(deadline - t)),
                            }),
                            None,
                        );
                    }
                    let e = next_epoch(w);
                    let nw = pack(HALF_OPEN, e, half(1, 0));
                    match self
                        .word
                        .compare_exchange(w, nw, Ordering::AcqRel, Ordering::Acquire)
                    {
                        Ok(_) => {
                            return (
                                Ok(Permit::new(e, PermitKind::Probe)),
                                Some(Change {
                                    from: State::Open,
                                    to: State::HalfOpen,
                                    open_for: None,
                                }),
                            )
                        }
                        Err(actual) => w = actual,
                    }
                }
                _ => {
                    // Half-open.
                    let n = inflight(w);
                    if n >= policy.probes {
                        return (
                            Err(Refusal {
                                until_probe: Some(Duration::ZERO),
                            }),
                            None,
                        );
                    }
                    let nw = pack(HALF_OPEN, epoch(w), half(n + 1, successes(w)));
                    match self
                        .word
                        .compare_exchange(w, nw, Ordering::AcqRel, Ordering::Acquire)
                    {
                        Ok(_) => return (Ok(Permit::new(epoch(w), PermitKind::Probe)), None),
                        Err(actual) => w = actual,
                    }
                }
            }
        }
    }

    /// Records the outcome of a call made under `permit`. `hint` (a server's hint of how long
    /// to stay away) is evaluated only if this outcome opens the breaker; `now` (ms) only if
    /// the policy's window is time-based or the breaker opens.
    #[inline]
    pub(crate) fn record(
        &self,
        policy: &Policy,
        permit: Permit,
        verdict: Verdict,
        hint: impl FnOnce() -> Option<Duration>,
        now: impl Fn() -> Tick,
    ) -> Option<Change> {
        if permit.kind() == PermitKind::Closed
            && verdict == Verdict::Success
            && matches!(policy.trip, Trip::Consecutive(_))
        {
            // The fast path: a success with no failure streak to clear is one load.
            let w = self.word.load(Ordering::Acquire);
            if w == pack(CLOSED, permit.epoch(), 0) {
                return None;
            }
        }
        self.record_slow(policy, permit, verdict, hint, now)
    }

    #[inline(never)]
    fn record_slow(
        &self,
        policy: &Policy,
        permit: Permit,
        verdict: Verdict,
        hint: impl FnOnce() -> Option<Duration>,
        now: impl Fn() -> Tick,
    ) -> Option<Change> {
        match permit.kind() {
            PermitKind::Disabled => None,
            PermitKind::Closed => match verdict {
                Verdict::Neutral => None,
                Verdict::Success => self.closed_outcome(policy, permit.epoch(), false, hint, now),
                Verdict::Failure => self.closed_outcome(policy, permit.epoch(), true, hint, now),
            },
            PermitKind::Probe => match verdict {
                Verdict::Neutral => {
                    self.release(permit);
                    None
                }
                Verdict::Success => self.probe_success(policy, permit.epoch()),
                Verdict::Failure => self.probe_failure(policy, permit.epoch(), hint, now),
            },
        }
    }

    /// Gives back a permit whose call was cancelled (its future dropped before completing):
    /// a probe's slot is freed for another probe; nothing is counted.
    #[inline]
    pub(crate) fn release(&self, permit: Permit) {
        if permit.kind() != PermitKind::Probe {
            return;
        }
        let mut w = self.word.load(Ordering::Acquire);
        while kind(w) == HALF_OPEN && epoch(w) == permit.epoch() && inflight(w) > 0 {
            let nw = pack(HALF_OPEN, epoch(w), half(inflight(w) - 1, successes(w)));
            match self
                .word
                .compare_exchange(w, nw, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => w = actual,
            }
        }
    }

    #[inline]
    fn closed_outcome(
        &self,
        policy: &Policy,
        permit_epoch: u32,
        failure: bool,
        hint: impl FnOnce() -> Option<Duration>,
        now: impl Fn() -> Tick,
    ) -> Option<Change> {
        let mut w = self.word.load(Ordering::Acquire);
        if kind(w) != CLOSED || epoch(w) != permit_epoch {
            return None;
        }
        let mut hint = LazyHint::new(hint);
        match policy.trip {
            Trip::Consecutive(threshold) => {
                if !failure {
                    // The common case: one load, no write when there is no streak to clear.
                    while kind(w) == CLOSED && epoch(w) == permit_epoch && payload(w) != 0 {
                        match self.word.compare_exchange_weak(
                            w,
                            pack(CLOSED, permit_epoch, 0),
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        ) {
                            Ok(_) => return None,
                            Err(actual) => w = actual,
                        }
                    }
                    return None;
                }
                loop {
                    if kind(w) != CLOSED || epoch(w) != permit_epoch {
                        return None;
                    }
                    let n = payload(w) + 1;
                    if n >= threshold {
                        match self.open(policy, w, State::Closed, hint.get(), &now) {
                            Ok(change) => return Some(change),
                            Err(actual) => {
                                w = actual;
                                continue;
                            }
                        }
                    }
                    match self.word.compare_exchange_weak(
                        w,
                        pack(CLOSED, permit_epoch, n),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return None,
                        Err(actual) => w = actual,
                    }
                }
            }
            Trip::Rate { ppm, min_calls } => {
                let counts = match &self.window {
                    Window::None => return None,
                    Window::Count(win) => win.record(failure),
                    Window::Time(win) => win.record(failure, now().floor),
                };
                if counts.calls < min_calls.max(1)
                    || u128::from(counts.failures) * 1_000_000
                        < u128::from(ppm) * u128::from(counts.calls)
                {
                    return None;
                }
                loop {
                    w = self.word.load(Ordering::Acquire);
                    if kind(w) != CLOSED || epoch(w) != permit_epoch {
                        return None;
                    }
                    if let Ok(change) = self.open(policy, w, State::Closed, hint.get(), &now) {
                        return Some(change);
                    }
                }
            }
        }
    }

    /// Opens the breaker from word `w` (closed or half-open): the open period is the next
    /// backoff delay, lengthened to the server's hint (capped at `policy.max_hint`).
    ///
    /// On a lost compare-and-swap returns the word seen, so the caller can look again.
    fn open(
        &self,
        policy: &Policy,
        w: u64,
        from: State,
        hint: Option<Duration>,
        now: &impl Fn() -> Tick,
    ) -> Result<Change, u64> {
        let mut backoff = lock(&self.backoff);
        let mut open_for = backoff.peek();
        if let Some(h) = hint {
            open_for = open_for.max(h.min(policy.max_hint));
        }
        let deadline = now().ceil.saturating_add(ceil_ms(open_for));
        let nw = pack(OPEN, next_epoch(w), deadline);
        match self
            .word
            .compare_exchange(w, nw, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                backoff.consume();
                drop(backoff);
                // The window starts empty for the next closed period. Records racing with this
                // reset carry the old epoch and are dropped before they touch the window, but
                // one already past that check may land: the window's totals stay exact (see
                // `window`), it only holds that one extra outcome.
                self.window.reset();
                Ok(Change {
                    from,
                    to: State::Open,
                    open_for: Some(open_for),
                })
            }
            Err(actual) => Err(actual),
        }
    }

    fn probe_success(&self, policy: &Policy, permit_epoch: u32) -> Option<Change> {
        let mut w = self.word.load(Ordering::Acquire);
        loop {
            if kind(w) != HALF_OPEN || epoch(w) != permit_epoch {
                return None;
            }
            let n = inflight(w).saturating_sub(1);
            let s = successes(w) + 1;
            let closing = s >= policy.close_after;
            let nw = if closing {
                pack(CLOSED, next_epoch(w), 0)
            } else {
                pack(HALF_OPEN, permit_epoch, half(n, s))
            };
            match self
                .word
                .compare_exchange(w, nw, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if closing => {
                    lock(&self.backoff).reset();
                    return Some(Change {
                        from: State::HalfOpen,
                        to: State::Closed,
                        open_for: None,
                    });
                }
                Ok(_) => return None,
                Err(actual) => w = actual,
            }
        }
    }

    fn probe_failure(
        &self,
        policy: &Policy,
        permit_epoch: u32,
        hint: impl FnOnce() -> Option<Duration>,
        now: impl Fn() -> Tick,
    ) -> Option<Change> {
        let mut hint = LazyHint::new(hint);
        let mut w = self.word.load(Ordering::Acquire);
        loop {
            if kind(w) != HALF_OPEN || epoch(w) != permit_epoch {
                return None;
            }
            match self.open(policy, w, State::HalfOpen, hint.get(), &now) {
                Ok(change) => return Some(change),
                Err(actual) => w = actual,
            }
        }
    }

    /// Forces the breaker open until [`reset`](Self::reset).
    pub(crate) fn force_open(&self) -> Option<Change> {
        self.set(FORCED_OPEN)
    }

    /// Disables the breaker: every call passes, nothing trips, until [`reset`](Self::reset).
    pub(crate) fn disable(&self) -> Option<Change> {
        self.set(DISABLED)
    }

    /// Closes the breaker with empty counts and a fresh backoff.
    pub(crate) fn reset(&self) -> Option<Change> {
        let change = self.set(CLOSED);
        self.window.reset();
        lock(&self.backoff).reset();
        change
    }

    fn set(&self, to: u64) -> Option<Change> {
        let mut w = self.word.load(Ordering::Acquire);
        loop {
            let nw = pack(to, next_epoch(w), 0);
            match self
                .word
                .compare_exchange(w, nw, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    let (from, to) = (state_of(w), state_of(nw));
                    return (from != to).then_some(Change {
                        from,
                        to,
                        open_for: None,
                    });
                }
                Err(actual) => w = actual,
            }
        }
    }

    /// Time until the breaker lets a probe through (zero unless open; `None` if forced open).
    pub(crate) fn until_probe(&self, now: impl Fn() -> Tick) -> Option<Duration> {
        let w = self.word.load(Ordering::Acquire);
        match kind(w) {
            FORCED_OPEN => None,
            OPEN => Some(Duration::from_millis(
                payload(w).saturating_sub(now().floor),
            )),
            _ => Some(Duration::ZERO),
        }
    }

    /// A snapshot for tests: (state, epoch, payload).
    #[cfg(test)]
    pub(crate) fn raw(&self) -> (State, u32, u64) {
        let w = self.word.load(Ordering::Acquire);
        (state_of(w), epoch(w), payload(w))
    }
}

/// A server hint, evaluated at most once and only if an opening needs it.
struct LazyHint<F> {
    f: Option<F>,
    value: Option<Duration>,
}

impl<F: FnOnce() -> Option<Duration>> LazyHint<F> {
    fn new(f: F) -> Self {
        LazyHint {
            f: Some(f),
            value: None,
        }
    }

    fn get(&mut self) -> Option<Duration> {
        if let Some(f) = self.f.take() {
            self.value = f();
        }
        self.value
    }
}
