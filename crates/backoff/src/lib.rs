//! Delays for retrying: exponential backoff with full, equal and decorrelated jitter, capped
//! after jitter.
//!
//! A [`Backoff`] hands out the delay to wait before each retry, or `None` when it is time to give
//! up. It is a plain value: no runtime, no clock, no sleep future, no allocation. The caller
//! decides what to do with a delay, for instance take the larger of it and a server's
//! `Retry-After`, or drop the retry when the delay would pass a deadline. With the `tokio`
//! feature, `retry()` runs the whole loop for an async operation.
//!
//! - [`Exponential`]: `initial × multiplier^n`, randomised by a [`Jitter`], capped at
//!   `max_delay`, built and checked by [`Exponential::builder`];
//! - [`SmoothDecorrelated`]: decorrelated jitter on a smooth exponential curve (Polly's "V2"),
//!   whose delays double in median while each client's retries stay spread out;
//! - [`Constant`]: the same delay every time.
//!
//! Every backoff is also an [`Iterator`] over [`Duration`]s.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use resile_backoff::{Backoff, Exponential, Jitter};
//!
//! // The defaults: 100 ms, ×2, capped at 20 s, full jitter, 3 retries.
//! let mut backoff = Exponential::default();
//! let first = backoff.next_delay().unwrap();
//! assert!(first <= Duration::from_millis(100));
//!
//! // Tuned, and reproducible thanks to the seed.
//! let builder = Exponential::builder()
//!     .initial(Duration::from_millis(200))
//!     .multiplier(3.0)
//!     .max_delay(Duration::from_secs(5))
//!     .max_retries(6)
//!     .jitter(Jitter::Equal)
//!     .seed(2024);
//! let delays: Vec<Duration> = builder.build()?.collect();
//! assert_eq!(delays.len(), 6);
//! assert!(delays.iter().all(|d| *d <= Duration::from_secs(5)));
//! assert_eq!(delays, builder.build()?.collect::<Vec<_>>());
//!
//! // Nonsense is refused, not clamped.
//! assert!(Exponential::builder().multiplier(0.5).build().is_err());
//! # Ok::<(), resile_backoff::BackoffConfigError>(())
//! ```
//!
//! # Why the cap comes after jitter
//!
//! `max_delay` is a promise to the caller: "I will never wait longer than this". Callers size
//! timeouts, deadlines and retry budgets on it. If the cap is applied to the curve and jitter
//! is added on top (as some libraries do), a 30 s cap can produce a 59 s delay, and a deadline
//! computed from the cap is silently broken. Here the jittered value itself is capped, so the
//! promise holds for every delay of every strategy; the property tests check it over arbitrary
//! configurations.
//!
//! The price is small and visible: once the curve has reached the cap, [`Jitter::Full`] draws
//! from `[0, max_delay]` and [`Jitter::Equal`] from `[max_delay / 2, max_delay]`, so the spread
//! stays as wide as the cap allows and never pushes past it.
//!
//! # Why every backoff has its own randomness
//!
//! Jitter exists to spread retries out: when a server drops a thousand clients at once, their
//! retries should not arrive together. That only works if each client draws *different* random
//! numbers. A backoff factory that hands every request or connection the same generator state
//! (tower's `ExponentialBackoffMaker` does) gives every one of them the same "random" sequence,
//! and the thundering herd comes back in lockstep.
//!
//! So every [`Exponential`] owns its generator (a small, lock-free [`fastrand::Rng`]). Without a
//! seed, [`ExponentialBuilder::build`] seeds it from the thread's generator, and so does
//! [`Clone`]: a prototype backoff cloned per request gives each request its own jitter. With
//! [`ExponentialBuilder::seed`], the sequence is reproducible instead, which is what tests and
//! simulations want; clones of a seeded backoff are exact copies and
//! [`reset`](Backoff::reset) replays it.
//!
//! # Features
//!
//! - `tokio`: `retry()` and `Retry`, an async retry loop on tokio's timer.
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::time::Duration;

mod constant;
mod error;
mod exponential;
#[cfg(feature = "tokio")]
mod retry;
mod smooth;

pub use constant::Constant;
pub use error::BackoffConfigError;
pub use exponential::{Exponential, ExponentialBuilder, Jitter};
#[cfg(feature = "tokio")]
pub use retry::{retry, NoNotify, RetryAnyError, RetryFuture};
pub use smooth::{SmoothDecorrelated, SmoothDecorrelatedBuilder};

/// A source of retry delays.
///
/// Object-safe: `Box<dyn Backoff + Send>` and `&mut dyn Backoff` work, and are backoffs
/// themselves.
pub trait Backoff {
    /// The delay to wait before the next retry, or `None` to stop retrying.
    ///
    /// Once a backoff has returned `None` because its retries are used up, it keeps returning
    /// `None` until [`reset`](Self::reset).
    fn next_delay(&mut self) -> Option<Duration>;

    /// Starts the sequence over, as if no delay had been handed out yet (for instance after a
    /// success, when the same backoff is reused for the next failure).
    fn reset(&mut self);
}

impl<B: Backoff + ?Sized> Backoff for &mut B {
    #[inline]
    fn next_delay(&mut self) -> Option<Duration> {
        (**self).next_delay()
    }

    fn reset(&mut self) {
        (**self).reset()
    }
}

impl<B: Backoff + ?Sized> Backoff for Box<B> {
    #[inline]
    fn next_delay(&mut self) -> Option<Duration> {
        (**self).next_delay()
    }

    fn reset(&mut self) {
        (**self).reset()
    }
}

/// `Iterator` for a strategy with `max_retries: Option<u32>` and `attempts: u32` fields: the
/// iterator is `next_delay`, with an exact `size_hint` when the retries are limited.
macro_rules! backoff_iterator {
    ($t:ty) => {
        impl Iterator for $t {
            type Item = std::time::Duration;

            #[inline]
            fn next(&mut self) -> Option<std::time::Duration> {
                $crate::Backoff::next_delay(self)
            }

            fn size_hint(&self) -> (usize, Option<usize>) {
                $crate::remaining(self.max_retries, self.attempts)
            }
        }
    };
}
pub(crate) use backoff_iterator;

/// The `size_hint` of a strategy that has made `attempts` of at most `max_retries` delays.
fn remaining(max_retries: Option<u32>, attempts: u32) -> (usize, Option<usize>) {
    match max_retries {
        Some(max) => {
            let left = max.saturating_sub(attempts) as usize;
            (left, Some(left))
        }
        None => (usize::MAX, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_impls_share_state() {
        let mut c = Constant::new(Duration::from_millis(1)).max_retries(2);
        {
            let mut by_ref: &mut dyn Backoff = &mut c;
            assert!(by_ref.next_delay().is_some());
            let twice = &mut by_ref;
            assert!(twice.next_delay().is_some());
            assert!(twice.next_delay().is_none());
        }
        assert_eq!(c.attempts(), 2);
        let mut boxed: Box<dyn Backoff + Send> = Box::new(c);
        assert!(boxed.next_delay().is_none());
        boxed.reset();
        assert_eq!(boxed.next_delay(), Some(Duration::from_millis(1)));
    }
}

// The README (shown on crates.io): its example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
