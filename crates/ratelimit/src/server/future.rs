//! The server layer's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{HeaderValue, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::headers;
use super::layer::Shared;
use super::service::{verdict, Verdict};
use crate::gcra::Decision;
use crate::store::StoreError;

pin_project! {
    /// The response future of [`Throttle`](super::Throttle): waiting for the store (stores that
    /// do I/O), then the inner call with the rate-limit fields added; or the `429` response.
    pub struct ResponseFuture<F, S, Req, D, E, St> {
        #[pin]
        state: State<F, S, Req, D, E, St>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, Req, D, E, St> {
        Deciding {
            decision: D,
            inner: Option<S>,
            req: Option<Req>,
            shared: Arc<Shared<E, St>>,
        },
        Calling {
            #[pin]
            fut: F,
            fields: Option<(HeaderValue, HeaderValue)>,
        },
        Respond {
            res: Option<Response<()>>,
        },
        Done,
    }
}

impl<F, S, Req, D, E, St> ResponseFuture<F, S, Req, D, E, St> {
    pub(crate) fn deciding(decision: D, inner: S, req: Req, shared: Arc<Shared<E, St>>) -> Self {
        ResponseFuture {
            state: State::Deciding {
                decision,
                inner: Some(inner),
                req: Some(req),
                shared,
            },
        }
    }

    pub(crate) fn calling(fut: F, fields: Option<(HeaderValue, HeaderValue)>) -> Self {
        ResponseFuture {
            state: State::Calling { fut, fields },
        }
    }

    pub(crate) fn respond<B>(res: Response<B>) -> Self {
        // The body of our own responses is always empty: keep the head, rebuild with
        // `B::default()` when it is handed out.
        let (parts, _) = res.into_parts();
        ResponseFuture {
            state: State::Respond {
                res: Some(Response::from_parts(parts, ())),
            },
        }
    }
}

impl<F, S, Req, D, E, St, ResB, Err> Future for ResponseFuture<F, S, Req, D, E, St>
where
    F: Future<Output = Result<Response<ResB>, Err>>,
    S: Service<Req, Future = F, Response = Response<ResB>, Error = Err>,
    D: Future<Output = Result<Decision, StoreError>> + Unpin,
    ResB: Default,
{
    type Output = Result<Response<ResB>, Err>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Deciding {
                    decision,
                    inner,
                    req,
                    shared,
                } => {
                    let res = ready!(Pin::new(decision).poll(cx));
                    let (Some(mut inner), Some(req)) = (inner.take(), req.take()) else {
                        state.set(State::Done);
                        continue;
                    };
                    match verdict::<E, St, ResB>(shared, res) {
                        Verdict::Allow(fields) => {
                            let fut = inner.call(req);
                            state.set(State::Calling { fut, fields });
                        }
                        Verdict::Respond(res) => {
                            let (parts, _) = res.into_parts();
                            state.set(State::Respond {
                                res: Some(Response::from_parts(parts, ())),
                            });
                        }
                    }
                }
                StateProj::Calling { fut, fields } => {
                    let mut res = ready!(fut.poll(cx))?;
                    if let Some((policy, ratelimit)) = fields.take() {
                        let h = res.headers_mut();
                        h.append(headers::RATELIMIT_POLICY.clone(), policy);
                        h.append(headers::RATELIMIT.clone(), ratelimit);
                    }
                    return Poll::Ready(Ok(res));
                }
                StateProj::Respond { res } => {
                    let head = res.take();
                    state.set(State::Done);
                    if let Some(head) = head {
                        let (parts, ()) = head.into_parts();
                        return Poll::Ready(Ok(Response::from_parts(parts, ResB::default())));
                    }
                }
                StateProj::Done => {
                    // Polled after completion: stay pending rather than panic (the contract
                    // says not to do it; nothing is left to return).
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<F, S, Req, D, E, St> fmt::Debug for ResponseFuture<F, S, Req, D, E, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Deciding { .. } => "deciding",
            State::Calling { .. } => "calling",
            State::Respond { .. } => "respond",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
