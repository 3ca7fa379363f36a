//! Retrying a request whose body is a stream (not `Clone`) through a real hyper-util client.
//!
//! ```text
//! cargo run -p resile --example replay_body
//! ```
//!
//! The body is wrapped in `ReplayBody`, and the client is built for `ReplayBody<..>` bodies: the
//! retry layer keeps a copy of the request that shares the recording, so when the server answers
//! the first attempt `503`, the second attempt sends the same bytes again without the stream
//! being produced twice. A body larger than the replay limit (64 KiB by default) is sent once and
//! not retried. A server on 127.0.0.1 answers the first `PUT` `503` with `Retry-After: 0`, then
//! echoes the size of what it received.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use resile::retry::ReplayBody;
use resile::BoxError;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

/// A body produced chunk by chunk, like an upload read from a file or a channel: not `Clone`.
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|c| Ok(Frame::data(c))))
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The server: 503 + Retry-After: 0 to the first request, then the size of each body.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let seen = Arc::new(AtomicU32::new(0));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let n = s.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let len = req.into_body().collect().await?.to_bytes().len();
                        println!("  server: attempt {} received {len} bytes", n + 1);
                        let mut res = Response::new(Full::new(Bytes::from(format!("{len} bytes"))));
                        if n == 0 {
                            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                            res.headers_mut()
                                .insert("retry-after", http::HeaderValue::from_static("0"));
                        }
                        Ok::<_, hyper::Error>(res)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });

    // The client is built for ReplayBody bodies, and the stack retries them.
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Chunks>>();
    let client = ServiceBuilder::new()
        .layer(resile::stack::http_client())
        .service(client);

    let chunks: VecDeque<Bytes> = (0..8).map(|i| Bytes::from(vec![b'a' + i; 1024])).collect();
    let req =
        Request::put(format!("http://{addr}/upload")).body(ReplayBody::new(Chunks(chunks)))?;
    let res = client.oneshot(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    println!(
        "client: {status} \"{}\" after {} attempts",
        String::from_utf8_lossy(&body),
        seen.load(Ordering::SeqCst)
    );
    Ok(())
}
