//! The same delay every time.

use std::time::Duration;

use crate::Backoff;

/// The same delay before every retry.
///
/// No randomness: prefer [`Exponential`](crate::Exponential) with jitter when many clients may
/// fail at the same moment. A zero delay is allowed (immediate retries).
///
/// # Default
///
/// [`Constant::new`] allows 3 retries, like [`Exponential::default`](crate::Exponential);
/// change it with [`max_retries`](Self::max_retries) or [`no_max_retries`](Self::no_max_retries).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use resile_backoff::{Backoff, Constant};
///
/// let mut backoff = Constant::new(Duration::from_millis(250)).max_retries(2);
/// assert_eq!(backoff.next_delay(), Some(Duration::from_millis(250)));
/// assert_eq!(backoff.next_delay(), Some(Duration::from_millis(250)));
/// assert_eq!(backoff.next_delay(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Constant {
    delay: Duration,
    max_retries: Option<u32>,
    attempts: u32,
}

impl Constant {
    /// `delay` before each retry, at most 3 retries.
    pub const fn new(delay: Duration) -> Self {
        Constant {
            delay,
            max_retries: Some(3),
            attempts: 0,
        }
    }

    /// Yield exactly `max_retries` delays, then `None` until [`reset`](Backoff::reset).
    pub const fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = Some(max_retries);
        self
    }

    /// Never stop.
    pub const fn no_max_retries(mut self) -> Self {
        self.max_retries = None;
        self
    }

    /// The delay this backoff yields.
    pub const fn delay(&self) -> Duration {
        self.delay
    }

    /// How many delays this backoff has yielded since it was built or last reset.
    pub const fn attempts(&self) -> u32 {
        self.attempts
    }
}

impl Backoff for Constant {
    #[inline]
    fn next_delay(&mut self) -> Option<Duration> {
        if let Some(max) = self.max_retries {
            if self.attempts >= max {
                return None;
            }
        }
        self.attempts = self.attempts.saturating_add(1);
        Some(self.delay)
    }

    fn reset(&mut self) {
        self.attempts = 0;
    }
}

crate::backoff_iterator!(Constant);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_three_retries_then_none_forever() {
        let d = Duration::from_millis(7);
        let mut c = Constant::new(d);
        assert_eq!(c.delay(), d);
        assert_eq!(c.by_ref().collect::<Vec<_>>(), [d, d, d]);
        for _ in 0..10 {
            assert_eq!(c.next_delay(), None);
        }
        assert_eq!(c.attempts(), 3);
        c.reset();
        assert_eq!(c.attempts(), 0);
        assert_eq!(c.next_delay(), Some(d));
    }

    #[test]
    fn unlimited_and_zero() {
        let mut c = Constant::new(Duration::ZERO).no_max_retries();
        assert_eq!(c.size_hint(), (usize::MAX, None));
        assert!(c.by_ref().take(1000).all(|d| d.is_zero()));
        let mut c = Constant::new(Duration::MAX).max_retries(0);
        assert_eq!(c.size_hint(), (0, Some(0)));
        assert_eq!(c.next_delay(), None);
    }
}
