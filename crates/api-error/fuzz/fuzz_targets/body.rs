//! Any bytes, under any of a few content types, read and parsed into an `ApiError`: never a
//! panic, every output bounded.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use resile_api_error::{ApiErrorReader, MAX_MESSAGES, MAX_MESSAGE_BYTES};

const TYPES: [&str; 4] = ["application/json", "application/problem+json", "text/plain", "text/html"];

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let res = http::Response::builder()
        .status(400 + u16::from(*first) % 200)
        .header("content-type", TYPES[usize::from(*first) % TYPES.len()])
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let reader = ApiErrorReader::new().body_limit(4096);
    let mut read = pin!(reader.read(res));
    let mut cx = Context::from_waker(Waker::noop());
    let e = loop {
        if let Poll::Ready(e) = read.as_mut().poll(&mut cx) {
            break e;
        }
    };
    assert!(e.body().len() <= 4096);
    assert!(e.messages().len() <= MAX_MESSAGES);
    assert!(e.messages().iter().all(|m| m.len() <= MAX_MESSAGE_BYTES));
    let _ = e.to_string();
});
