//! The response future of [`AdaptiveRateLimit`](super::AdaptiveRateLimit).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use resile_classify::{KeyExtractor, ResponseLike};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::state::{Host, Slot, Wake};
use super::{Shared, WaitTooLong};
use crate::store::BoxError;

pin_project! {
    /// The response future of [`AdaptiveRateLimit`](super::AdaptiveRateLimit): a wait for the
    /// request's slot (only when it is in the future), the inner call, then what the response
    /// tells the host's limiter; or an immediate refusal.
    pub struct ResponseFuture<S, Req, E>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, Req, S::Future>,
        ticket: Ticket<E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req, F> {
        // Waiting for its turn, then for the service (boxed: only a queued request gets here,
        // and the future stays small for the others).
        Queued { wait: Pin<Box<Waiting<S, Req>>> },
        Called { #[pin] fut: F },
        Failed { err: Option<BoxError> },
    }
}

pin_project! {
    /// A queued request: its sleep, the ready service it was given and the request.
    struct Waiting<S, Req> {
        #[pin]
        sleep: Sleep,
        service: S,
        req: Option<Req>,
        // First queued at.
        started: Instant,
        // Its turn came: polling the service ready.
        turn: bool,
    }
}

/// The request's place at its host: queued, in flight, or nothing to account for. Dropping it
/// (the future dropped, or done) settles the account.
struct Ticket<E> {
    shared: Arc<Shared<E>>,
    host: u64,
    place: Place,
}

#[derive(Clone, Copy)]
enum Place {
    None,
    Queued(Slot),
    InFlight { sent_at: Instant },
}

impl<E> Ticket<E> {
    fn sent(&mut self, now: Instant) {
        self.place = Place::InFlight { sent_at: now };
    }
}

impl<E> Drop for Ticket<E> {
    fn drop(&mut self) {
        match self.place {
            Place::None => {}
            Place::Queued(slot) => {
                self.shared.with_host(self.host, |h| h.cancel_queued(slot));
            }
            Place::InFlight { .. } => {
                self.shared
                    .with_host(self.host, |h| h.ended_without_response());
            }
        }
    }
}

impl<S, Req, E> ResponseFuture<S, Req, E>
where
    S: Service<Req>,
{
    fn new(
        state: State<S, Req, S::Future>,
        shared: Arc<Shared<E>>,
        host: u64,
        place: Place,
    ) -> Self {
        ResponseFuture {
            state,
            ticket: Ticket {
                shared,
                host,
                place,
            },
        }
    }

    pub(crate) fn unpaced(fut: S::Future, shared: Arc<Shared<E>>) -> Self {
        Self::new(State::Called { fut }, shared, 0, Place::None)
    }

    pub(crate) fn sent(fut: S::Future, shared: Arc<Shared<E>>, host: u64, now: Instant) -> Self {
        Self::new(
            State::Called { fut },
            shared,
            host,
            Place::InFlight { sent_at: now },
        )
    }

    pub(crate) fn queued(
        service: S,
        req: Req,
        shared: Arc<Shared<E>>,
        host: u64,
        slot: Slot,
        now: Instant,
    ) -> Self {
        let state = State::Queued {
            wait: Box::pin(Waiting {
                sleep: tokio::time::sleep_until(slot.at),
                service,
                req: Some(req),
                started: now,
                turn: false,
            }),
        };
        Self::new(state, shared, host, Place::Queued(slot))
    }

    pub(crate) fn failed(err: BoxError, shared: Arc<Shared<E>>) -> Self {
        Self::new(State::Failed { err: Some(err) }, shared, 0, Place::None)
    }
}

impl<S, Req, E> Future for ResponseFuture<S, Req, E>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    S::Response: ResponseLike,
    E: KeyExtractor<Req>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Queued { wait } => {
                    let mut w = wait.as_mut().project();
                    if !*w.turn {
                        ready!(w.sleep.as_mut().poll(cx));
                        let Place::Queued(slot) = this.ticket.place else {
                            return Poll::Pending;
                        };
                        let shared = &this.ticket.shared;
                        let now = Instant::now();
                        match shared.wake(this.ticket.host, slot, now, *w.started) {
                            Wake::Go => {
                                this.ticket.sent(now);
                                *w.turn = true;
                            }
                            // Not its turn yet (the line slowed, or a server paused the host).
                            Wake::Sleep(until) => {
                                w.sleep.as_mut().reset(until);
                                continue;
                            }
                            Wake::TooLong(wait) => {
                                this.ticket.place = Place::None;
                                return Poll::Ready(Err(Box::new(WaitTooLong {
                                    wait,
                                    max_wait: shared.max_wait,
                                })));
                            }
                        }
                    }
                    ready!(w.service.poll_ready(cx)).map_err(Into::into)?;
                    let Some(req) = w.req.take() else {
                        return Poll::Pending;
                    };
                    let fut = w.service.call(req);
                    this.state.set(State::Called { fut });
                }
                StateProj::Called { fut } => {
                    let out = ready!(fut.poll(cx));
                    let ticket = &mut *this.ticket;
                    if let Place::InFlight { sent_at } = ticket.place {
                        let host = ticket.host;
                        match &out {
                            Ok(res) => ticket.shared.answered(host, res, sent_at),
                            Err(_) => {
                                ticket.shared.with_host(host, Host::ended_without_response);
                            }
                        }
                        ticket.place = Place::None;
                    }
                    return Poll::Ready(out.map_err(Into::into));
                }
                // Polled after completion: stay pending rather than panic.
                StateProj::Failed { err } => match err.take() {
                    Some(err) => return Poll::Ready(Err(err)),
                    None => return Poll::Pending,
                },
            }
        }
    }
}

impl<S, Req, E> fmt::Debug for ResponseFuture<S, Req, E>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Queued { .. } => "queued",
            State::Called { .. } => "called",
            State::Failed { .. } => "failed",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
