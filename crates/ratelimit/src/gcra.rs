//! The pure GCRA: quotas, the one-step state transition, and the decision it yields.
//!
//! Everything here is arithmetic on `u64` nanoseconds: no clock, no atomics, no tower. The state
//! of one key is its *theoretical arrival time* (TAT): the instant at which the bucket would be
//! full again if nothing else arrived. With the emission interval `T` (time per cell) and the
//! tolerance `τ = T·(burst − 1)`, a request of `n` cells arriving at `now` conforms iff
//!
//! ```text
//! max(TAT, now) + n·T  <=  now + τ + T
//! ```
//!
//! and, if it does, `TAT` becomes `max(TAT, now) + n·T`. A TAT in the past (or zero, the value a
//! fresh key starts with) means a full bucket: such a key carries no information, which is what
//! lets the keyed store drop it.

use std::error::Error as StdError;
use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The longest time a quota may take to refill its whole burst (`burst × emission interval`):
/// 2^62 ns, about 146 years. Keeping every window below it makes all TAT arithmetic overflow-free
/// for any clock reading below 2^63 ns (292 years of uptime); beyond that it saturates.
pub const MAX_WINDOW: Duration = Duration::from_nanos(1 << 62);

/// A rate limit: `rate` cells per `period`, with bursts of up to `burst` cells.
///
/// Internally a quota is the GCRA pair (emission interval `T`, tolerance `τ`): `T` is
/// `period / rate` rounded **up** to whole nanoseconds, so the limiter never admits more than the
/// nominal rate (3 per second is one cell every 333,333,334 ns).
///
/// # Default
///
/// The constructors set `burst = rate`: a fresh key may spend a whole period's worth of cells at
/// once, then one cell every `T`. [`with_burst`](Quota::with_burst) changes it.
///
/// # Example
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use resile_ratelimit::Quota;
///
/// let q = Quota::per_second(NonZeroU32::new(10).unwrap());
/// assert_eq!(q.emission_interval(), Duration::from_millis(100));
/// assert_eq!(q.burst().get(), 10);
///
/// let q = Quota::new(NonZeroU32::new(100).unwrap(), Duration::from_secs(60))?
///     .with_burst(NonZeroU32::new(5).unwrap())?;
/// assert_eq!(q.burst().get(), 5);
/// # Ok::<(), resile_ratelimit::QuotaError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    rate: NonZeroU32,
    period: Duration,
    burst: NonZeroU32,
    /// Emission interval in ns, >= 1.
    t: u64,
    /// Tolerance + one interval (`burst · T`), the bucket's capacity in ns.
    cap: u64,
    /// `floor((2^64 - 1) / t)`: divides by `t` with one multiplication.
    recip: u64,
}

/// Why a [`Quota`] cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaError {
    /// The period is zero.
    ZeroPeriod,
    /// `burst × emission interval` (the time to refill the whole burst) exceeds [`MAX_WINDOW`].
    WindowTooLong,
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuotaError::ZeroPeriod => f.write_str("rate-limit quota period is zero"),
            QuotaError::WindowTooLong => {
                f.write_str("rate-limit quota window (burst x emission interval) exceeds 2^62 ns")
            }
        }
    }
}

impl StdError for QuotaError {}

fn duration_nanos(d: Duration) -> u128 {
    d.as_nanos()
}

impl Quota {
    fn build(rate: NonZeroU32, period: Duration, burst: NonZeroU32) -> Result<Quota, QuotaError> {
        let period_ns = duration_nanos(period);
        if period_ns == 0 {
            return Err(QuotaError::ZeroPeriod);
        }
        let t = period_ns.div_ceil(u128::from(rate.get()));
        let cap = t * u128::from(burst.get());
        if cap > (1u128 << 62) {
            return Err(QuotaError::WindowTooLong);
        }
        let t = t as u64;
        Ok(Quota {
            rate,
            period,
            burst,
            t,
            cap: cap as u64,
            recip: u64::MAX / t,
        })
    }

    /// `rate` cells per `period`, burst `rate`.
    ///
    /// # Errors
    ///
    /// [`QuotaError::ZeroPeriod`] for a zero period, [`QuotaError::WindowTooLong`] when the period
    /// exceeds [`MAX_WINDOW`].
    pub fn new(rate: NonZeroU32, period: Duration) -> Result<Quota, QuotaError> {
        Quota::build(rate, period, rate)
    }

    /// `rate` cells per second, burst `rate`.
    pub fn per_second(rate: NonZeroU32) -> Quota {
        Quota::fixed(rate, 1)
    }

    /// `rate` cells per minute, burst `rate`.
    pub fn per_minute(rate: NonZeroU32) -> Quota {
        Quota::fixed(rate, 60)
    }

    /// `rate` cells per hour, burst `rate`.
    pub fn per_hour(rate: NonZeroU32) -> Quota {
        Quota::fixed(rate, 3600)
    }

    fn fixed(rate: NonZeroU32, secs: u64) -> Quota {
        // secs <= 3600: the window is at most 3600 s + rate ns, far below MAX_WINDOW.
        match Quota::build(rate, Duration::from_secs(secs), rate) {
            Ok(q) => q,
            Err(_) => unreachable!("a window of at most an hour and 2^32 ns is valid"),
        }
    }

    /// One cell every `interval`, burst 1.
    ///
    /// # Errors
    ///
    /// [`QuotaError::ZeroPeriod`] for a zero interval, [`QuotaError::WindowTooLong`] past
    /// [`MAX_WINDOW`].
    pub fn with_interval(interval: Duration) -> Result<Quota, QuotaError> {
        Quota::build(NonZeroU32::MIN, interval, NonZeroU32::MIN)
    }

    /// The same rate with a burst of `burst` cells.
    ///
    /// # Errors
    ///
    /// [`QuotaError::WindowTooLong`] when `burst × emission interval` exceeds [`MAX_WINDOW`].
    pub fn with_burst(self, burst: NonZeroU32) -> Result<Quota, QuotaError> {
        Quota::build(self.rate, self.period, burst)
    }

    /// Cells per [`period`](Quota::period), as configured.
    pub fn rate(&self) -> NonZeroU32 {
        self.rate
    }

    /// The period the rate is given for, as configured.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The most cells admitted at once (the bucket size).
    pub fn burst(&self) -> NonZeroU32 {
        self.burst
    }

    /// The time one cell takes to replenish (`T = period / rate`, rounded up to whole ns).
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.t)
    }

    /// The time an empty bucket takes to refill completely (`burst × T`).
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.cap)
    }

    /// The emission interval in nanoseconds (`T`, at least 1).
    pub fn emission_interval_nanos(&self) -> u64 {
        self.t
    }

    /// The tolerance `τ = T × (burst − 1)` in nanoseconds.
    pub fn tolerance_nanos(&self) -> u64 {
        self.cap - self.t
    }

    /// The policy as the IETF `RateLimit-Policy` field states it: `(q, w)`, `q` quota units per
    /// `w` whole seconds.
    ///
    /// A period of whole seconds is stated as configured (`100` per `60 s` is `(100, 60)`); any
    /// other period is widened to the next whole second and the quota scaled down to match
    /// (`1` per `300 ms` is `(3, 1)`), so the advertised rate never exceeds the real one.
    pub fn policy(&self) -> (u64, u64) {
        let period_ns = self.period.as_nanos();
        let w = period_ns.div_ceil(u128::from(NANOS_PER_SEC)).max(1);
        if period_ns == w * u128::from(NANOS_PER_SEC) {
            return (u64::from(self.rate.get()), w as u64);
        }
        let q = u128::from(self.rate.get()) * w * u128::from(NANOS_PER_SEC) / period_ns;
        (
            q.min(u128::from(u64::MAX)) as u64,
            w.min(u128::from(u64::MAX)) as u64,
        )
    }

    /// `floor(x / T)` for `x <= 2^62`, with one multiplication.
    #[inline]
    fn div_t(&self, x: u64) -> u64 {
        let q = ((u128::from(x) * u128::from(self.recip)) >> 64) as u64;
        // The estimate is q or q - 1 of the true quotient.
        if x - q * self.t >= self.t {
            q + 1
        } else {
            q
        }
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn div_t_for_test(&self, x: u64) -> u64 {
        self.div_t(x)
    }

    /// The checked cost in nanoseconds (`n · T`), or the burst if `n` can never conform.
    #[inline]
    pub(crate) fn cost_nanos(&self, n: NonZeroU32) -> Result<u64, InsufficientCapacity> {
        if n > self.burst {
            return Err(InsufficientCapacity {
                requested: n,
                burst: self.burst,
            });
        }
        // n <= burst, so n·T <= cap <= 2^62.
        Ok(self.t * u64::from(n.get()))
    }

    /// One GCRA step: `Ok(new_tat)` when `cost` nanoseconds of cells may be taken at `now`
    /// (possibly after waiting up to `max_wait` ns), `Err(base)` otherwise (`base = max(tat, now)`).
    #[inline]
    pub(crate) fn step(&self, tat: u64, now: u64, cost: u64, max_wait: u64) -> Result<u64, u64> {
        let base = if tat > now { tat } else { now };
        let new_tat = base.saturating_add(cost);
        // Conforms iff new_tat <= now + cap + max_wait.
        if new_tat <= now.saturating_add(self.cap).saturating_add(max_wait) {
            Ok(new_tat)
        } else {
            Err(base)
        }
    }

    /// The decision for a request that was admitted, leaving the key at `new_tat`.
    #[inline]
    pub(crate) fn admitted(&self, new_tat: u64, now: u64) -> Decision {
        let horizon = now.saturating_add(self.cap);
        let reset_after = Duration::from_nanos(new_tat - now);
        if new_tat <= horizon {
            // The common case (every plain check): no wait to convert.
            Decision {
                allowed: true,
                limit: self.burst.get(),
                remaining: self.div_t(horizon - new_tat) as u32,
                retry_after: Duration::ZERO,
                reset_after,
            }
        } else {
            // A reservation whose slot is still ahead.
            Decision {
                allowed: true,
                limit: self.burst.get(),
                remaining: 0,
                retry_after: Duration::from_nanos(new_tat - horizon),
                reset_after,
            }
        }
    }

    /// The decision for a request of `cost` ns that was refused, the key being at `base`
    /// (`max(tat, now)`).
    #[inline]
    pub(crate) fn refused(&self, base: u64, now: u64, cost: u64) -> Decision {
        let horizon = now.saturating_add(self.cap);
        // Refused means `base + cost > horizon`: fewer than `cost` cells remain, and none at all
        // for a single cell (the common case), which needs no division.
        let remaining = match horizon.checked_sub(base) {
            Some(x) if x >= self.t => self.div_t(x),
            _ => 0,
        };
        Decision {
            allowed: false,
            limit: self.burst.get(),
            remaining: remaining as u32,
            retry_after: Duration::from_nanos(base.saturating_add(cost).saturating_sub(horizon)),
            reset_after: Duration::from_nanos(base - now),
        }
    }

    /// The state of a key at `tat`, seen at `now`, for a request of one cell (no update).
    #[inline]
    pub(crate) fn snapshot(&self, tat: u64, now: u64) -> Decision {
        let base = tat.max(now);
        match self.step(tat, now, self.t, 0) {
            Ok(_) => {
                let mut d = self.refused(base, now, self.t);
                d.allowed = true;
                d
            }
            Err(base) => self.refused(base, now, self.t),
        }
    }

    /// The TAT after a pause of `delay` ns from `now`: nothing conforms before `now + delay`,
    /// then one cell every `T` (the burst refills gradually).
    #[inline]
    pub(crate) fn paused_tat(&self, tat: u64, now: u64, delay: u64) -> u64 {
        let floor = now.saturating_add(delay).saturating_add(self.cap - self.t);
        tat.max(floor)
    }
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("rate", &self.rate)
            .field("period", &self.period)
            .field("burst", &self.burst)
            .field("emission_interval", &self.emission_interval())
            .finish()
    }
}

/// What a limiter or a [`Store`](crate::Store) decided for one request.
///
/// The same type comes out of every store (in memory, Redis), so the layers read it the same way.
///
/// For a request that is **not** allowed nothing was consumed: `retry_after` says when the same
/// request (same cost) would conform, if nothing else arrives meanwhile. For an allowed request
/// `retry_after` is zero, except for a reservation
/// ([`Store::reserve`](crate::Store::reserve)) that must wait for its slot: then it is that wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub struct Decision {
    /// Whether the request was admitted (its cells are consumed).
    pub allowed: bool,
    /// The burst of the quota: the most cells the key may ever hold.
    pub limit: u32,
    /// Cells that could still be taken right now, after this decision.
    pub remaining: u32,
    /// How long until this request conforms (refused), or until its reserved slot begins
    /// (reservation); zero for an admitted plain check.
    pub retry_after: Duration,
    /// How long until the key's bucket is full again (all `limit` cells available).
    pub reset_after: Duration,
}

impl Decision {
    /// How long until one more cell becomes available: zero when the bucket is full, else the
    /// time for `remaining` to grow by one. This is the IETF `RateLimit` field's `t` parameter.
    ///
    /// Computed from `reset_after`, `remaining` and `limit` under `quota`'s emission interval.
    pub fn replenish_after(&self, quota: &Quota) -> Duration {
        let missing = self.limit.saturating_sub(self.remaining);
        if missing == 0 || self.reset_after.is_zero() {
            return Duration::ZERO;
        }
        // The bucket is full at reset_after; the next cell arrives (missing - 1) cells earlier.
        let earlier = quota
            .emission_interval()
            .saturating_mul(missing.saturating_sub(1));
        self.reset_after.saturating_sub(earlier)
    }
}

/// A request asked for more cells than the quota's burst: it can never be admitted, however long
/// it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InsufficientCapacity {
    /// The cells asked for.
    pub requested: NonZeroU32,
    /// The quota's burst, the most that can ever be admitted at once.
    pub burst: NonZeroU32,
}

impl fmt::Display for InsufficientCapacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cells requested but the rate-limit burst is {}: never admissible",
            self.requested, self.burst
        )
    }
}

impl StdError for InsufficientCapacity {}
