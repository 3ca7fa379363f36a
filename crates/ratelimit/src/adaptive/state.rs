//! One host's learned state: a GCRA whose rate moves (AIMD), a published quota spent evenly,
//! pauses, and the queue count. Pure: every method takes `now`.

use std::time::Duration;

use resile_retry_after::PublishedQuota;
use tokio::time::Instant;

use super::policy::Aimd;

/// A published quota being spent: when it resets, and how far apart that puts requests.
#[derive(Debug, Clone, Copy)]
struct Reading {
    reset_at: Instant,
    /// `None` when nothing is left: wait for the reset.
    spacing: Option<Duration>,
    /// Requests left (an estimate, for [`HostState`](super::HostState)).
    remaining: u64,
}

/// Why a request was refused without being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its slot is further away than the maximum wait.
    WaitTooLong(Duration),
    /// The host's queue is full.
    QueueFull,
}

/// A request's place in its host's line: its ticket, and when it may go as things stood when
/// it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) ticket: u64,
    pub(crate) at: Instant,
}

/// What a queued request does when it wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Its turn came: it is sent (counted in flight).
    Go,
    /// Not yet: sleep until then and look again.
    Sleep(Instant),
    /// Its turn moved past its maximum wait (a server paused the host): it left the queue.
    TooLong(Duration),
}

/// What a response tells the limiter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Feedback {
    /// The server throttled the request (`429`, or `503` with a hint).
    pub(crate) throttled: bool,
    /// The pause the server asked for, already capped by the pause policy.
    pub(crate) pause: Option<Duration>,
    /// The quota the response published.
    pub(crate) published: Option<PublishedQuota>,
    /// When the request was sent.
    pub(crate) sent_at: Instant,
}

/// The learned state of one host.
///
/// Requests take numbered tickets; ticket `n` may go at `anchor_at + (n - anchor) * interval`.
/// A change of rate or a pause moves the anchor to the front of the line (the ticket due now)
/// and the time it may go: every queued request then goes at the new pace, in order, after the
/// pause. A GCRA, with its queue kept as a line instead of fixed instants.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    /// The learned rate, requests per second, within `[floor, ceiling]`.
    rate: f64,
    /// `1 / rate`, kept with it.
    own: Duration,
    /// Doubling per window until the first throttle.
    slow_start: bool,
    /// The additive step per window, set at each decrease.
    step: f64,
    /// When the rate was last decreased: throttles of requests sent before it do not decrease
    /// it again (one decrease per congestion event).
    decreased_at: Option<Instant>,
    anchor: u64,
    anchor_at: Instant,
    /// The spacing of tickets from the anchor on: the rate's, or a published quota's if slower.
    interval: Duration,
    next_ticket: u64,
    /// One past the highest ticket sent: tickets from here on were queued, never sent.
    sent_upto: u64,
    window_start: Instant,
    sent: u64,
    accepted: u64,
    prev_accepted: u64,
    throttled: bool,
    pub(crate) queued: usize,
    pub(crate) in_flight: usize,
    reading: Option<Reading>,
    published_rate: Option<f64>,
    pub(crate) last_used: Instant,
}

impl Host {
    pub(crate) fn new(aimd: &Aimd, now: Instant) -> Host {
        Host {
            rate: aimd.initial,
            own: Duration::from_secs_f64(1.0 / aimd.initial),
            slow_start: true,
            step: aimd.increase * aimd.initial,
            decreased_at: None,
            anchor: 0,
            anchor_at: now,
            interval: Duration::from_secs_f64(1.0 / aimd.initial),
            next_ticket: 0,
            sent_upto: 0,
            window_start: now,
            sent: 0,
            accepted: 0,
            prev_accepted: 0,
            throttled: false,
            queued: 0,
            in_flight: 0,
            reading: None,
            published_rate: None,
            last_used: now,
        }
    }

    /// The learned rate, requests per second.
    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    fn set_rate(&mut self, rate: f64) {
        if rate != self.rate {
            self.rate = rate;
            self.own = Duration::from_secs_f64(1.0 / rate);
        }
    }

    /// The published requests left (an estimate, after what was sent since), if a reading is
    /// current.
    pub(crate) fn remaining(&self, now: Instant) -> Option<u64> {
        self.reading
            .filter(|r| r.reset_at > now)
            .map(|r| r.remaining)
    }

    /// Whether the host holds nothing that must be kept: no request queued or in flight, no
    /// turn in the future.
    pub(crate) fn is_idle(&self, now: Instant) -> bool {
        self.queued == 0 && self.in_flight == 0 && self.slot_of(self.next_ticket) <= now
    }

    fn ceiling(&self, aimd: &Aimd) -> f64 {
        match self.published_rate {
            Some(p) => aimd.ceiling.min(p).max(aimd.floor),
            None => aimd.ceiling,
        }
    }

    /// When ticket `n` may go.
    fn slot_of(&self, n: u64) -> Instant {
        let step =
            |k: u64| u32::try_from(k).map_or(Duration::MAX, |k| self.interval.saturating_mul(k));
        if n >= self.anchor {
            let d = step(n - self.anchor);
            self.anchor_at.checked_add(d).unwrap_or(self.anchor_at)
        } else {
            let d = step(self.anchor - n);
            self.anchor_at.checked_sub(d).unwrap_or(self.anchor_at)
        }
    }

    /// The first ticket not due before `now` (never past the next one to be given), and when
    /// it may go.
    fn front(&self, now: Instant) -> (u64, Instant) {
        if now <= self.anchor_at {
            return (self.anchor, self.anchor_at);
        }
        let gone = (now - self.anchor_at).as_nanos();
        let per = self.interval.as_nanos().max(1);
        let k = self
            .anchor
            .saturating_add(u64::try_from(gone.div_ceil(per)).unwrap_or(u64::MAX));
        if k >= self.next_ticket {
            return (self.next_ticket, now);
        }
        (k, self.slot_of(k))
    }

    /// The spacing the rate and the published quota allow now.
    fn wanted_interval(&mut self, now: Instant) -> Duration {
        let own = self.own;
        match self.reading {
            Some(r) if r.reset_at <= now => {
                self.reading = None;
                own
            }
            Some(Reading {
                spacing: Some(s), ..
            }) => own.max(s),
            _ => own,
        }
    }

    /// Re-anchors the line at its front, at `now` or later (`not_before`, a pause), with the
    /// spacing the rate and the published quota allow now.
    fn retime(&mut self, now: Instant, not_before: Option<Instant>) {
        let interval = self.wanted_interval(now);
        if interval == self.interval && not_before.is_none_or(|p| p <= self.anchor_at) {
            return;
        }
        // The front of the line, and when it may go: a pause in force stays in force.
        let (front, front_at) = self.front(now);
        self.anchor = front;
        self.anchor_at = not_before.map_or(front_at, |p| p.max(front_at));
        self.interval = interval;
    }

    /// Closes the windows that ended by `now`, increasing the rate after a window that used
    /// it without a throttle.
    fn roll(&mut self, aimd: &Aimd, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= aimd.window {
            // Half the rate's worth of requests: a window the client did not use says nothing
            // about whether the server would take more.
            let used = self.sent as f64 >= (self.rate * aimd.window.as_secs_f64() / 2.0).max(1.0);
            if !self.throttled && used {
                let next = if self.slow_start {
                    self.rate * 2.0
                } else {
                    self.rate + self.step
                };
                self.set_rate(next.min(self.ceiling(aimd)));
            }
            let windows = (elapsed.as_nanos() / aimd.window.as_nanos().max(1)) as u32;
            self.prev_accepted = if windows == 1 { self.accepted } else { 0 };
            self.window_start += aimd.window.saturating_mul(windows);
            self.sent = 0;
            self.accepted = 0;
            self.throttled = false;
        }
        self.retime(now, None);
    }

    /// Gives a new request its ticket, or refuses it.
    pub(crate) fn reserve(
        &mut self,
        aimd: &Aimd,
        now: Instant,
        max_wait: Duration,
    ) -> Result<Slot, Refusal> {
        self.roll(aimd, now);
        self.last_used = now;
        let n = self.next_ticket;
        // An idle host: up to `burst` requests may go at once, as in a GCRA.
        let tolerance = self.interval.saturating_mul(aimd.burst - 1);
        let earliest = now.checked_sub(tolerance).unwrap_or(now);
        if self.slot_of(n) < earliest {
            self.anchor = n;
            self.anchor_at = earliest;
        }
        let at = self.slot_of(n).max(now);
        let wait = at - now;
        if wait > max_wait {
            return Err(Refusal::WaitTooLong(wait));
        }
        if !wait.is_zero() && self.queued >= aimd.max_queued {
            return Err(Refusal::QueueFull);
        }
        self.next_ticket += 1;
        if let Some(r) = self.reading.as_mut() {
            r.remaining = r.remaining.saturating_sub(1);
        }
        if wait.is_zero() {
            self.sent_one(n);
        } else {
            self.queued += 1;
        }
        Ok(Slot { ticket: n, at })
    }

    /// A queued request woke at `now`, having waited since `started`.
    pub(crate) fn wake(
        &mut self,
        aimd: &Aimd,
        slot: Slot,
        now: Instant,
        started: Instant,
        max_wait: Duration,
    ) -> Wake {
        self.roll(aimd, now);
        let at = self.slot_of(slot.ticket);
        if at <= now {
            self.queued = self.queued.saturating_sub(1);
            self.sent_one(slot.ticket);
            return Wake::Go;
        }
        let wait = at.saturating_duration_since(started);
        if wait > max_wait {
            self.cancel_queued(slot);
            return Wake::TooLong(wait);
        }
        // Look again within a window: the rate may rise meanwhile.
        Wake::Sleep(at.min(now + aimd.window))
    }

    fn sent_one(&mut self, ticket: u64) {
        self.sent_upto = self.sent_upto.max(ticket + 1);
        self.in_flight += 1;
        self.sent += 1;
    }

    /// A queued request gave up its place (cancelled, or waited too long).
    pub(crate) fn cancel_queued(&mut self, slot: Slot) {
        self.queued = self.queued.saturating_sub(1);
        // The last ticket given is given back, so a cancelled caller does not slow the next
        // one down.
        if slot.ticket + 1 == self.next_ticket {
            self.next_ticket -= 1;
        }
        // An empty line: every ticket after the last one sent was given up.
        if self.queued == 0 {
            self.next_ticket = self.sent_upto;
        }
    }

    /// A request sent ended without a response (an error, or dropped in flight).
    pub(crate) fn ended_without_response(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// A response came back that neither throttles nor publishes a quota. It is counted in the
    /// window open at the last look (the next request closes that window if it is over).
    pub(crate) fn accepted(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.accepted += 1;
    }

    /// A response came back.
    pub(crate) fn on_response(&mut self, aimd: &Aimd, now: Instant, fb: Feedback) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.roll(aimd, now);
        self.last_used = now;
        let mut not_before = None;
        if let Some(q) = fb.published {
            if let Some(rate) = q.rate().filter(|r| r.is_finite() && *r > 0.0) {
                self.published_rate = Some(rate);
                self.set_rate(self.rate.min(self.ceiling(aimd)));
            }
            // Requests still in flight may not be counted by the server yet; the queued ones
            // are spent from what is left.
            let left = PublishedQuota {
                remaining: q.remaining.saturating_sub(self.in_flight as u64),
                ..q
            };
            let reset_at = now.checked_add(q.reset).unwrap_or(now + aimd.window);
            let spacing = left.spacing();
            if spacing.is_none() {
                not_before = Some(reset_at);
            }
            let remaining = left.remaining;
            self.reading = Some(Reading {
                reset_at,
                spacing,
                remaining: remaining.saturating_sub(self.queued as u64),
            });
        }
        if !fb.throttled {
            self.accepted += 1;
        } else {
            self.throttled = true;
            if self.decreased_at.is_none_or(|at| fb.sent_at > at) {
                // What the server took over about the last window, when known: a rate the
                // client set but could not use is no guide.
                let w = aimd.window.as_secs_f64();
                let f = now
                    .saturating_duration_since(self.window_start)
                    .as_secs_f64()
                    / w;
                let taken =
                    (self.accepted as f64 + self.prev_accepted as f64 * (1.0 - f).max(0.0)) / w;
                let base = if taken > 0.0 {
                    self.rate.min(taken)
                } else {
                    self.rate
                };
                self.set_rate((base * aimd.decrease).clamp(aimd.floor, self.ceiling(aimd)));
                self.step = aimd.increase * self.rate;
                self.slow_start = false;
                self.decreased_at = Some(now);
            }
            if let Some(end) = fb.pause.and_then(|p| now.checked_add(p)) {
                not_before = not_before.max(Some(end));
            }
        }
        self.retime(now, not_before);
    }
}
