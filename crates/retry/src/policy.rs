//! The retry policy: what is retried, how long to wait, and when to give up.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, StatusCode};
use resile_backoff::{Backoff, Exponential};
use resile_classify::{
    Classification, Classifier, LocalRejection, Outcome, OutcomeKind, ResponseLike, RetryClass,
};
use tokio::time::Instant;

use crate::budget::RetryBudget;

/// The default [`max_wait`](RetryPolicyBuilder::max_wait): 30 seconds.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

/// A retry is about to happen (passed to the [`on_retry`](RetryPolicyBuilder::on_retry) hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryEvent {
    /// The number of the attempt about to be made: 2 for the first retry.
    pub attempt: u32,
    /// What went wrong with the previous attempt.
    pub reason: OutcomeKind,
    /// The previous attempt's status, if it got a response.
    pub status: Option<StatusCode>,
    /// How long the layer waits before the attempt: the larger of the backoff delay and the
    /// server's hint.
    pub wait: Duration,
    /// The server's hint (`Retry-After` and friends), if the response carried one; after a
    /// local rejection (an open circuit breaker), the time until it lets requests through.
    pub server_hint: Option<Duration>,
}

/// Why the layer stopped retrying a request whose last outcome was retryable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUp {
    /// The request could not be copied, or its body could not be replayed in full.
    NotReplayable,
    /// The outcome allows retrying idempotent requests only, and this one is not.
    NotIdempotent,
    /// The backoff allows no more retries.
    RetriesExhausted,
    /// The server asked for a longer wait than [`max_wait`](RetryPolicyBuilder::max_wait).
    HintTooLong,
    /// The retry could not start before the request's [deadline](RetryPolicyBuilder::deadline).
    Deadline,
    /// The wait (backoff delay or server hint) reaches past what the clock can represent.
    WaitOutOfRange,
    /// The [`RetryBudget`] is spent.
    BudgetExhausted,
    /// A layer inside the retry layer (an open circuit breaker, a rate limiter) refused the
    /// retry locally. The caller gets the server's last response, marked with
    /// [`RetryRefused`](resile_classify::RetryRefused), or the refusal when the server gave none.
    RejectedLocally,
}

impl GiveUp {
    /// A short, stable name (for logs and metric labels).
    pub const fn as_str(&self) -> &'static str {
        match self {
            GiveUp::NotReplayable => "not_replayable",
            GiveUp::NotIdempotent => "not_idempotent",
            GiveUp::RetriesExhausted => "retries_exhausted",
            GiveUp::HintTooLong => "hint_too_long",
            GiveUp::Deadline => "deadline",
            GiveUp::WaitOutOfRange => "wait_out_of_range",
            GiveUp::BudgetExhausted => "budget_exhausted",
            GiveUp::RejectedLocally => "rejected_locally",
        }
    }
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The layer stopped retrying (passed to the [`on_give_up`](RetryPolicyBuilder::on_give_up)
/// hook); the last response or error is returned to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GiveUpEvent {
    /// How many attempts were made.
    pub attempts: u32,
    /// What went wrong with the last attempt.
    pub reason: OutcomeKind,
    /// The last attempt's status, if it got a response.
    pub status: Option<StatusCode>,
    /// Why there is no further attempt.
    pub cause: GiveUp,
    /// The server's hint, if the last response carried one (or the wait a local rejection
    /// asked for, as in [`RetryEvent::server_hint`]).
    pub server_hint: Option<Duration>,
}

type RetryHook = Arc<dyn Fn(&RetryEvent) + Send + Sync>;
type GiveUpHook = Arc<dyn Fn(&GiveUpEvent) + Send + Sync>;

/// What the retry layer does: which outcomes are retried, how long it waits, when it gives up.
///
/// Cheap to clone (one `Arc`); clones share the [`RetryBudget`].
///
/// # Default
///
/// - backoff: [`Exponential::default()`] — 100 ms doubling to a 20 s cap, full jitter, at most 3
///   retries; every request gets its own copy and its own randomness;
/// - classifier: [`Classifier::default()`] — 429 for any method; 408, 500, 502, 503, 504, timeouts
///   and transport errors for idempotent requests; connection failures before the request was
///   sent for any method;
/// - max wait for a server hint: [`DEFAULT_MAX_WAIT`] (30 s);
/// - no deadline;
/// - a fresh [`RetryBudget::default()`] (20 % of requests, 10 retries per second floor) shared by
///   the clones of this policy;
/// - no hooks, no attempt header.
pub struct RetryPolicy<B = Exponential> {
    pub(crate) inner: Arc<PolicyInner<B>>,
}

impl<B> Clone for RetryPolicy<B> {
    fn clone(&self) -> Self {
        RetryPolicy {
            inner: self.inner.clone(),
        }
    }
}

pub(crate) struct PolicyInner<B> {
    pub(crate) backoff: B,
    pub(crate) classifier: Classifier,
    pub(crate) max_wait: Duration,
    pub(crate) deadline: Option<Duration>,
    pub(crate) budget: Option<RetryBudget>,
    pub(crate) on_retry: Option<RetryHook>,
    pub(crate) on_give_up: Option<GiveUpHook>,
    pub(crate) attempt_header: Option<HeaderName>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::builder().build()
    }
}

impl<B: fmt::Debug> fmt::Debug for RetryPolicy<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.inner;
        f.debug_struct("RetryPolicy")
            .field("backoff", &p.backoff)
            .field("classifier", &p.classifier)
            .field("max_wait", &p.max_wait)
            .field("deadline", &p.deadline)
            .field("budget", &p.budget)
            .field("on_retry", &p.on_retry.as_ref().map(|_| "Fn"))
            .field("on_give_up", &p.on_give_up.as_ref().map(|_| "Fn"))
            .field("attempt_header", &p.attempt_header)
            .finish()
    }
}

impl RetryPolicy {
    /// A builder starting from the defaults.
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            backoff: Exponential::default(),
            classifier: Classifier::default(),
            max_wait: DEFAULT_MAX_WAIT,
            deadline: None,
            budget: BudgetChoice::Default,
            on_retry: None,
            on_give_up: None,
            attempt_header: None,
        }
    }
}

impl<B> RetryPolicy<B> {
    /// The backoff every request starts from (each request uses its own clone).
    pub fn backoff(&self) -> &B {
        &self.inner.backoff
    }

    /// The outcome classifier.
    pub fn classifier(&self) -> &Classifier {
        &self.inner.classifier
    }

    /// The longest server hint the layer waits for.
    pub fn max_wait(&self) -> Duration {
        self.inner.max_wait
    }

    /// The overall deadline of a request, if any.
    pub fn deadline(&self) -> Option<Duration> {
        self.inner.deadline
    }

    /// The retry budget, if any.
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.inner.budget.as_ref()
    }

    /// The header carrying the attempt number, if any.
    pub fn attempt_header(&self) -> Option<&HeaderName> {
        self.inner.attempt_header.as_ref()
    }
}

#[derive(Clone, Debug)]
enum BudgetChoice {
    Default,
    Given(RetryBudget),
    Off,
}

/// Builds a [`RetryPolicy`]; starts from the defaults listed there.
#[derive(Clone)]
pub struct RetryPolicyBuilder<B = Exponential> {
    backoff: B,
    classifier: Classifier,
    max_wait: Duration,
    deadline: Option<Duration>,
    budget: BudgetChoice,
    on_retry: Option<RetryHook>,
    on_give_up: Option<GiveUpHook>,
    attempt_header: Option<HeaderName>,
}

impl<B: fmt::Debug> fmt::Debug for RetryPolicyBuilder<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicyBuilder")
            .field("backoff", &self.backoff)
            .field("classifier", &self.classifier)
            .field("max_wait", &self.max_wait)
            .field("deadline", &self.deadline)
            .field("budget", &self.budget)
            .field("on_retry", &self.on_retry.as_ref().map(|_| "Fn"))
            .field("on_give_up", &self.on_give_up.as_ref().map(|_| "Fn"))
            .field("attempt_header", &self.attempt_header)
            .finish()
    }
}

impl<B> RetryPolicyBuilder<B> {
    /// The backoff: any [`Backoff`] that is `Clone`, such as resile-backoff's `Exponential` or
    /// `Constant`. Each request clones it on its first retry, so requests never share a delay
    /// sequence; an unseeded `Exponential` gives every clone its own randomness. The backoff's
    /// `max_retries` bounds the retries of one request.
    pub fn backoff<B2: Backoff + Clone>(self, backoff: B2) -> RetryPolicyBuilder<B2> {
        RetryPolicyBuilder {
            backoff,
            classifier: self.classifier,
            max_wait: self.max_wait,
            deadline: self.deadline,
            budget: self.budget,
            on_retry: self.on_retry,
            on_give_up: self.on_give_up,
            attempt_header: self.attempt_header,
        }
    }

    /// The classifier deciding which outcomes are retried and for which methods.
    pub fn classifier(mut self, classifier: Classifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// The longest server hint (`Retry-After`, `RateLimit`, ...) the layer waits for: when a
    /// response asks for longer, the layer returns it at once instead of waiting. The default is
    /// [`DEFAULT_MAX_WAIT`] (30 s).
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// An overall deadline per request, counted from the first call: no retry starts at or
    /// after it, and a wait that would reach it is not begun — the last response or error is
    /// returned at once instead. It does not cut an attempt in flight short: put a
    /// `tower::timeout::TimeoutLayer` outside the retry layer for that.
    ///
    /// With a deadline, a request an open circuit breaker below this layer refused is retried
    /// when the breaker's next probe comes before the deadline (and within
    /// [`max_wait`](Self::max_wait)): the layer waits for the probe, as for a server's hint, and
    /// tries again; the retry counts against the backoff's retries (not against the budget: a
    /// request waiting for the breaker puts no load on the server). At the probe moment the
    /// breaker lets its probe (one by default) through; requests arriving after it find the
    /// breaker half-open with no probe slot and no moment to wait for, and return its error.
    /// Without a deadline such a request is returned at once (the breaker's error).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Shares `budget` (and its clones) with this policy.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = BudgetChoice::Given(budget);
        self
    }

    /// No retry budget: only the backoff's `max_retries` bounds retries. An outage can then
    /// multiply the load by `1 + max_retries`.
    pub fn no_budget(mut self) -> Self {
        self.budget = BudgetChoice::Off;
        self
    }

    /// A hook called before every retry's wait (for metrics and logs).
    pub fn on_retry<F>(mut self, hook: F) -> Self
    where
        F: Fn(&RetryEvent) + Send + Sync + 'static,
    {
        self.on_retry = Some(Arc::new(hook));
        self
    }

    /// A hook called when a retryable outcome is returned without retrying it further.
    pub fn on_give_up<F>(mut self, hook: F) -> Self
    where
        F: Fn(&GiveUpEvent) + Send + Sync + 'static,
    {
        self.on_give_up = Some(Arc::new(hook));
        self
    }

    /// Sets `name: N` on every attempt, `N` counting from 1, so the server can tell a retry from
    /// a first attempt. Off by default.
    pub fn attempt_header(mut self, name: HeaderName) -> Self {
        self.attempt_header = Some(name);
        self
    }

    /// The policy. Unless [`budget`](Self::budget) or [`no_budget`](Self::no_budget) was called,
    /// it gets a fresh default [`RetryBudget`].
    pub fn build(self) -> RetryPolicy<B> {
        let budget = match self.budget {
            BudgetChoice::Default => Some(RetryBudget::default()),
            BudgetChoice::Given(b) => Some(b),
            BudgetChoice::Off => None,
        };
        RetryPolicy {
            inner: Arc::new(PolicyInner {
                backoff: self.backoff,
                classifier: self.classifier,
                max_wait: self.max_wait,
                deadline: self.deadline,
                budget,
                on_retry: self.on_retry,
                on_give_up: self.on_give_up,
                attempt_header: self.attempt_header,
            }),
        }
    }
}

/// How long to wait for a local rejection (an open breaker) to pass, if the request can be
/// retried after it: the rejecting layer says when it lets requests through again (a zero wait,
/// such as a half-open breaker's taken probe slots, does not count: retrying at once would spin),
/// and the request has a deadline. Whether the wait ends before the deadline is checked with the
/// other waits.
fn rejection_wait(
    class: Classification,
    outcome: Outcome<'_>,
    deadline: Option<Instant>,
) -> Option<Duration> {
    if class.kind != OutcomeKind::Rejected || deadline.is_none() {
        return None;
    }
    let Outcome::Error(err) = outcome else {
        return None;
    };
    LocalRejection::find(err)?
        .passes_in()
        .filter(|d| !d.is_zero())
}

/// What to do after an attempt.
pub(crate) enum Decision {
    /// Return the outcome to the caller.
    Return,
    /// Retry; wait until the instant first, if any.
    Retry(Option<Instant>),
}

impl<B: Backoff + Clone> PolicyInner<B> {
    /// Decides what follows `attempt`'s outcome.
    ///
    /// `idempotent` is asked only for a retryable outcome: `None` if the request cannot be
    /// replayed, else whether it is idempotent. `backoff` is the request's own backoff, cloned
    /// from the policy's on the first retry.
    #[inline]
    pub(crate) fn decide(
        &self,
        outcome: Outcome<'_>,
        idempotent: impl FnOnce() -> Option<bool>,
        backoff: &mut Option<Box<B>>,
        deadline: Option<Instant>,
        attempt: u32,
    ) -> Decision {
        // The path of every successful request: classify, and return.
        let class = self.classifier.classify(outcome);
        if class.retry == RetryClass::Never {
            if let Some(wait) = rejection_wait(class, outcome, deadline) {
                // A local rejection (an open breaker) that passes again before the deadline: the
                // request was never sent, so any method may try again then.
                let class = Classification::new(class.kind, RetryClass::Always, class.breaker);
                let replay = idempotent();
                return self.decide_retry(
                    class,
                    outcome,
                    replay,
                    Some(wait),
                    backoff,
                    deadline,
                    attempt,
                );
            }
            if attempt > 1 {
                if let Outcome::Error(err) = outcome {
                    if class.kind == OutcomeKind::Rejected {
                        self.retry_refused(err, attempt);
                        return Decision::Return;
                    }
                }
                tracing::debug!(attempts = attempt, reason = ?class.kind, "request done after retries");
            }
            return Decision::Return;
        }
        let hint = self.classifier.server_hint(outcome).map(|h| h.delay);
        self.decide_retry(
            class,
            outcome,
            idempotent(),
            hint,
            backoff,
            deadline,
            attempt,
        )
    }

    /// Logs the end of a request that needed retries, when its last response is one the fast
    /// path returns without classifying; kept out of line.
    #[cold]
    #[inline(never)]
    pub(crate) fn done_after_retries<R: ResponseLike>(&self, res: &R, attempts: u32) {
        let kind = self.classifier.classify(Outcome::response(res)).kind;
        tracing::debug!(attempts, reason = ?kind, "request done after retries");
    }

    /// Reports a retry (attempt `attempt`) that a layer inside refused locally with `err`, if
    /// `err` is such a refusal; kept out of line.
    #[cold]
    #[inline(never)]
    pub(crate) fn retry_refused(&self, err: &(dyn std::error::Error + 'static), attempt: u32) {
        let Some(rejection) = LocalRejection::find(err) else {
            return;
        };
        self.gave_up(&GiveUpEvent {
            attempts: attempt,
            reason: OutcomeKind::Rejected,
            status: None,
            cause: GiveUp::RejectedLocally,
            server_hint: rejection.passes_in(),
        });
    }

    /// Logs a give-up and tells the `on_give_up` hook.
    fn gave_up(&self, event: &GiveUpEvent) {
        tracing::debug!(
            attempts = event.attempts,
            reason = ?event.reason,
            status = event.status.map(|s| s.as_u16()),
            cause = event.cause.as_str(),
            "not retrying"
        );
        if let Some(hook) = &self.on_give_up {
            hook(event);
        }
    }

    /// The rest of [`decide`](Self::decide), for an outcome that may be retried; kept out of line
    /// so that the success path stays small.
    ///
    /// `hint` is the server's hint, or the wait a local rejection asked for.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn decide_retry(
        &self,
        class: Classification,
        outcome: Outcome<'_>,
        idempotent: Option<bool>,
        hint: Option<Duration>,
        backoff: &mut Option<Box<B>>,
        deadline: Option<Instant>,
        attempt: u32,
    ) -> Decision {
        let status = match outcome {
            Outcome::Response { status, .. } => Some(status),
            Outcome::Error(_) => None,
        };
        let give_up = |cause: GiveUp| {
            self.gave_up(&GiveUpEvent {
                attempts: attempt,
                reason: class.kind,
                status,
                cause,
                server_hint: hint,
            });
            Decision::Return
        };

        let Some(idempotent) = idempotent else {
            return give_up(GiveUp::NotReplayable);
        };
        if !class.retry_allowed(idempotent) {
            return give_up(GiveUp::NotIdempotent);
        }
        let backoff = backoff.get_or_insert_with(|| Box::new(self.backoff.clone()));
        let Some(delay) = backoff.next_delay() else {
            return give_up(GiveUp::RetriesExhausted);
        };
        if hint.is_some_and(|h| h > self.max_wait) {
            return give_up(GiveUp::HintTooLong);
        }
        let wait = delay.max(hint.unwrap_or(Duration::ZERO));
        let at = if wait.is_zero() && deadline.is_none() {
            None
        } else {
            let now = Instant::now();
            let Some(at) = now.checked_add(wait) else {
                return give_up(GiveUp::WaitOutOfRange);
            };
            if deadline.is_some_and(|d| at >= d) {
                return give_up(GiveUp::Deadline);
            }
            (!wait.is_zero()).then_some(at)
        };
        // A request refused locally (waiting for an open breaker's probe) puts no load on the
        // server while it waits, and only a probe's worth passes the breaker: it does not spend
        // the budget that protects the server from retries.
        if let Some(budget) = self
            .budget
            .as_ref()
            .filter(|_| class.kind != OutcomeKind::Rejected)
        {
            if !budget.try_withdraw() {
                return give_up(GiveUp::BudgetExhausted);
            }
        }
        let event = RetryEvent {
            // Saturating: a backoff without a retry limit and no budget may retry forever.
            attempt: attempt.saturating_add(1),
            reason: class.kind,
            status,
            wait,
            server_hint: hint,
        };
        tracing::debug!(
            attempt = event.attempt,
            reason = ?event.reason,
            status = status.map(|s| s.as_u16()),
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            server_hint_ms = hint.map(|h| u64::try_from(h.as_millis()).unwrap_or(u64::MAX)),
            "retrying request"
        );
        if let Some(hook) = &self.on_retry {
            hook(&event);
        }
        Decision::Retry(at)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use resile_backoff::Constant;

    use super::*;

    /// What `policy` decides for an idempotent request answered `503` on attempt `attempt`.
    fn decide_503(policy: &RetryPolicy<Constant>, attempt: u32) -> Decision {
        let res = http::Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(())
            .unwrap();
        policy.inner.decide(
            Outcome::response(&res),
            || Some(true),
            &mut None,
            None,
            attempt,
        )
    }

    /// A policy that may retry forever (no retry limit, no budget, no wait) must not overflow
    /// its attempt count: the retry after attempt `u32::MAX` is still attempt `u32::MAX`.
    #[test]
    fn attempt_count_saturates_instead_of_overflowing() {
        let seen = Arc::new(AtomicU32::new(0));
        let hook_seen = Arc::clone(&seen);
        let policy = RetryPolicy::builder()
            .backoff(Constant::new(Duration::ZERO).no_max_retries())
            .no_budget()
            .on_retry(move |e| hook_seen.store(e.attempt, Ordering::Relaxed))
            .build();
        let decision = decide_503(&policy, u32::MAX);
        assert!(matches!(decision, Decision::Retry(None)));
        assert_eq!(seen.load(Ordering::Relaxed), u32::MAX);
    }

    /// A backoff delay too long for the clock gives up with its own reason, not as if the
    /// server had sent a hint.
    #[test]
    fn a_delay_past_the_clock_gives_up_as_out_of_range() {
        let reason = Arc::new(std::sync::Mutex::new(None));
        let hook_reason = Arc::clone(&reason);
        let policy = RetryPolicy::builder()
            .backoff(Constant::new(Duration::MAX).no_max_retries())
            .no_budget()
            .on_give_up(move |e| *hook_reason.lock().unwrap() = Some(e.cause))
            .build();
        let decision = decide_503(&policy, 1);
        assert!(matches!(decision, Decision::Return));
        assert_eq!(*reason.lock().unwrap(), Some(GiveUp::WaitOutOfRange));
    }
}
