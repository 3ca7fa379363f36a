//! The response future: a state machine Calling → Waiting → Ready → Calling.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::HeaderValue;
use pin_project_lite::pin_project;
use resile_backoff::Backoff;
use resile_classify::{Attempts, LocalRejection, Outcome, ResponseLike, RetryRefused};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::body::ReplayableRequest;
use crate::policy::Decision;
use crate::policy::RetryPolicy;
use crate::BoxError;

pin_project! {
    /// The future of [`Retry`](crate::Retry): the attempts of one request.
    ///
    /// Holds the copy of the request made before the first attempt and a clone of the inner
    /// service for the retries; the request's own backoff is cloned from the policy's at the
    /// first retry. A response whose status the classifier can never retry is returned without
    /// classifying it further.
    ///
    /// The last response of a retried request is kept while its retry waits: when the retry is
    /// refused locally (an open breaker, a rate limit), that response is returned in place of
    /// the refusal, marked with [`RetryRefused`].
    pub struct ResponseFuture<S, Req, B>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future>,
        // The copy of the request made before the first attempt, which retries are built from;
        // `None` when the request cannot be copied (it is then sent once).
        copy: Option<Req>,
        // The request of the next attempt, built from the copy when a retry is decided (boxed:
        // only retried requests have one, and the future stays small for the rest).
        next: Option<Box<Req>>,
        policy: RetryPolicy<B>,
        // The service of the retries.
        service: S,
        // The request's own backoff, cloned from the policy's on the first retry (boxed: only
        // retried requests have one, and the future stays small for the rest).
        backoff: Option<Box<B>>,
        // The server's last response, kept while its retry is pending (boxed, as `next`).
        last: Option<Box<S::Response>>,
        deadline: Option<Instant>,
        attempt: u32,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // An attempt is in flight.
        Calling { #[pin] future: F },
        // Waiting for the timer before the next attempt.
        Waiting { #[pin] sleep: Sleep },
        // Waiting for the inner service to be ready for the next attempt.
        Ready,
    }
}

impl<S, Req, B> ResponseFuture<S, Req, B>
where
    S: Service<Req>,
{
    pub(crate) fn new(
        future: S::Future,
        service: S,
        copy: Option<Req>,
        policy: RetryPolicy<B>,
        deadline: Option<Instant>,
    ) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            copy,
            next: None,
            policy,
            service,
            backoff: None,
            last: None,
            deadline,
            attempt: 1,
        }
    }
}

impl<S, Req, B> Future for ResponseFuture<S, Req, B>
where
    S: Service<Req> + Clone,
    S::Response: ResponseLike,
    S::Error: Into<BoxError>,
    Req: ReplayableRequest,
    B: Backoff + Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let result = ready!(future.poll(cx));
                    // The path of every successful request: a status no rule can retry is
                    // returned without building a classification.
                    let mut result = result;
                    if let Ok(res) = &mut result {
                        let policy = &*this.policy.inner;
                        if !policy.classifier.may_retry_status(res.status()) {
                            if *this.attempt > 1 {
                                policy.done_after_retries(res, *this.attempt);
                                mark_attempts(res, *this.attempt);
                            }
                            return Poll::Ready(result.map_err(Into::into));
                        }
                    }
                    let result = result.map_err(Into::into);
                    let decision = {
                        let outcome = match &result {
                            Ok(res) => Outcome::response(res),
                            Err(err) => Outcome::error(&**err),
                        };
                        let policy = &*this.policy.inner;
                        let copy = this.copy.as_ref();
                        let next = &mut *this.next;
                        policy.decide(
                            outcome,
                            // Only for an outcome that may be retried: build the next request
                            // (whose method and headers say whether it is idempotent).
                            || {
                                let req = Req::replay(copy?)?;
                                let idempotent = policy.classifier.is_idempotent(&req);
                                *next = Some(Box::new(req));
                                Some(idempotent)
                            },
                            this.backoff,
                            *this.deadline,
                            *this.attempt,
                        )
                    };
                    match decision {
                        Decision::Return => {
                            // A request built for a retry that was then refused.
                            *this.next = None;
                            let mut result = result;
                            if *this.attempt > 1 {
                                result = after_retries(result, this.last, *this.attempt);
                            }
                            return Poll::Ready(result);
                        }
                        Decision::Retry(at) => {
                            keep_last(result, this.last);
                            match at {
                                None => this.state.set(State::Ready),
                                Some(at) => this.state.set(State::Waiting {
                                    sleep: tokio::time::sleep_until(at),
                                }),
                            }
                        }
                    }
                }
                StateProj::Waiting { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Ready);
                }
                StateProj::Ready => {
                    if let Err(err) = ready!(this.service.poll_ready(cx)) {
                        // The next attempt is refused before it is sent: it counts as made.
                        let attempt = this.attempt.saturating_add(1);
                        let err = err.into();
                        this.policy.inner.retry_refused(&*err, attempt);
                        *this.next = None;
                        return Poll::Ready(after_retries(Err(err), this.last, attempt));
                    }
                    let Some(mut req) = this.next.take().map(|req| *req) else {
                        unreachable!("resile-retry: retry decided without a request");
                    };
                    *this.attempt = this.attempt.saturating_add(1);
                    if let Some(name) = &this.policy.inner.attempt_header {
                        req.headers_mut()
                            .insert(name.clone(), HeaderValue::from(*this.attempt));
                    }
                    let future = this.service.call(req);
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}

/// Keeps the outcome of an attempt that will be retried, if it is the server's answer: a
/// response replaces the one kept, a transport error (newer news than the response) drops it,
/// and a local refusal (waiting for an open breaker's probe) leaves it.
fn keep_last<R>(result: Result<R, BoxError>, last: &mut Option<Box<R>>) {
    match result {
        Ok(res) => match last {
            Some(kept) => **kept = res,
            None => *last = Some(Box::new(res)),
        },
        Err(err) if LocalRejection::find(&*err).is_some() => {}
        Err(_) => *last = None,
    }
}

/// The outcome to return after `attempt` attempts: the server's last response in place of a
/// local refusal, else `result` itself; a response is marked with the attempts.
fn after_retries<R: ResponseLike>(
    result: Result<R, BoxError>,
    last: &mut Option<Box<R>>,
    attempt: u32,
) -> Result<R, BoxError> {
    let mut result = instead_of_refusal(result, last, attempt);
    if let Ok(res) = &mut result {
        mark_attempts(res, attempt);
    }
    result
}

/// The server's last response in place of a local refusal (marked with [`RetryRefused`]), else
/// `result` itself.
#[cold]
fn instead_of_refusal<R: ResponseLike>(
    result: Result<R, BoxError>,
    last: &mut Option<Box<R>>,
    attempt: u32,
) -> Result<R, BoxError> {
    let Err(err) = &result else {
        return result;
    };
    let Some(&rejection) = LocalRejection::find(&**err) else {
        return result;
    };
    let Some(res) = last.take() else {
        return result;
    };
    let mut res = *res;
    if let Some(ext) = res.extensions_mut() {
        ext.insert(RetryRefused::new(attempt, rejection));
    }
    Ok(res)
}

/// Tells the layers outside how many attempts the response took.
fn mark_attempts<R: ResponseLike>(res: &mut R, attempts: u32) {
    if let Some(ext) = res.extensions_mut() {
        ext.insert(Attempts(attempts));
    }
}

impl<S, Req, B> fmt::Debug for ResponseFuture<S, Req, B>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Calling { .. } => "Calling",
            State::Waiting { .. } => "Waiting",
            State::Ready => "Ready",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("attempt", &self.attempt)
            .field("replayable", &self.copy.is_some())
            .field("deadline", &self.deadline)
            .finish()
    }
}
