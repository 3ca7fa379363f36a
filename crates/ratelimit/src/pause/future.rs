//! The response future of [`ServerPause`](super::ServerPause).

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use resile_classify::{KeyExtractor, ResponseLike};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::{hint_of, Check, Shared, WaitTooLong};
use crate::store::BoxError;

pin_project! {
    /// The response future of [`ServerPause`](super::ServerPause): a wait for the pause of the
    /// request's key (only while one is in force), the inner call, then a look at the response
    /// for a server hint; or an immediate [`WaitTooLong`].
    pub struct ResponseFuture<S, Req, E>
    where
        S: Service<Req>,
        E: KeyExtractor<Req>,
    {
        #[pin]
        state: State<S, Req, S::Future>,
        key: Option<E::Key>,
        shared: Arc<Shared<E>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req, F> {
        // Sleeping until the pause ends; first waited at `started`.
        Waiting {
            #[pin]
            sleep: Sleep,
            service: Option<S>,
            req: Option<Req>,
            started: Instant,
        },
        // The pause is over: polling the service ready to send the request.
        Ready { service: S, req: Option<Req> },
        Called { #[pin] fut: F },
        Failed { err: Option<WaitTooLong> },
    }
}

impl<S, Req, E> ResponseFuture<S, Req, E>
where
    S: Service<Req>,
    E: KeyExtractor<Req>,
{
    pub(crate) fn called(fut: S::Future, key: Option<E::Key>, shared: Arc<Shared<E>>) -> Self {
        ResponseFuture {
            state: State::Called { fut },
            key,
            shared,
        }
    }

    pub(crate) fn waiting(
        service: S,
        req: Req,
        until: Instant,
        now: Instant,
        key: Option<E::Key>,
        shared: Arc<Shared<E>>,
    ) -> Self {
        ResponseFuture {
            state: State::Waiting {
                sleep: tokio::time::sleep_until(until),
                service: Some(service),
                req: Some(req),
                started: now,
            },
            key,
            shared,
        }
    }

    pub(crate) fn failed(err: WaitTooLong, shared: Arc<Shared<E>>) -> Self {
        ResponseFuture {
            state: State::Failed { err: Some(err) },
            key: None,
            shared,
        }
    }
}

impl<S, Req, E> Future for ResponseFuture<S, Req, E>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    S::Response: ResponseLike,
    E: KeyExtractor<Req>,
    E::Key: Hash,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Waiting {
                    sleep,
                    service,
                    req,
                    started,
                } => {
                    ready!(sleep.poll(cx));
                    let (Some(service), Some(req)) = (service.take(), req.take()) else {
                        return Poll::Pending;
                    };
                    let started = *started;
                    let shared = &**this.shared;
                    let now = Instant::now();
                    let check = match this.key {
                        Some(key) => shared.check(key, now),
                        None => Check::Go,
                    };
                    match check {
                        Check::Go => this.state.set(State::Ready {
                            service,
                            req: Some(req),
                        }),
                        // A server extended the pause meanwhile.
                        Check::Wait(until) => {
                            let wait = until.saturating_duration_since(started);
                            if wait > shared.max_wait {
                                return Poll::Ready(Err(Box::new(WaitTooLong {
                                    wait,
                                    max_wait: shared.max_wait,
                                })));
                            }
                            this.state.set(State::Waiting {
                                sleep: tokio::time::sleep_until(until),
                                service: Some(service),
                                req: Some(req),
                                started,
                            });
                        }
                    }
                }
                StateProj::Ready { service, req } => {
                    ready!(service.poll_ready(cx)).map_err(Into::into)?;
                    let Some(req) = req.take() else {
                        return Poll::Pending;
                    };
                    let fut = service.call(req);
                    this.state.set(State::Called { fut });
                }
                StateProj::Called { fut } => {
                    let res = ready!(fut.poll(cx)).map_err(Into::into)?;
                    if let Some(key) = this.key.take() {
                        let shared = &**this.shared;
                        if let Some(pause) = hint_of(&res).and_then(|h| shared.policy.cap(h)) {
                            tracing::debug!(?pause, status = %res.status(), "server pause: the server asked to slow down");
                            shared.pause(&key, pause, Instant::now());
                        }
                    }
                    return Poll::Ready(Ok(res));
                }
                // Polled after completion: stay pending rather than panic.
                StateProj::Failed { err } => match err.take() {
                    Some(err) => return Poll::Ready(Err(Box::new(err))),
                    None => return Poll::Pending,
                },
            }
        }
    }
}

impl<S, Req, E> fmt::Debug for ResponseFuture<S, Req, E>
where
    S: Service<Req>,
    E: KeyExtractor<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Waiting { .. } => "waiting",
            State::Ready { .. } => "ready",
            State::Called { .. } => "called",
            State::Failed { .. } => "failed",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
