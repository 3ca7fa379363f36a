//! The copy of an `http::Request` the layer keeps for a retry, packed so that keeping it is cheap.
//!
//! Every request the layer sends may have to be sent again, so a copy is made before it goes,
//! and almost always dropped unused when the first answer is a success. `Request::clone` is the
//! obvious copy, but it is the most expensive thing the layer does: a `HeaderMap` clone allocates
//! its index and entry tables, and cloning each header value (or custom name) that was built from
//! a string turns its buffer into a shared one — one more allocation per value, and atomic
//! reference counts to take and drop.
//!
//! [`RequestCopy`] keeps the method, URI, version, extensions and body as clones (the URI's
//! buffers are already shared, so that is a reference count each), and packs every header name
//! and value into **one** buffer: one allocation for the whole header section, whatever its size.
//! The `HeaderMap` of a retry is rebuilt from that buffer, its values sharing it (one reference
//! count each, no copy) — work done only for a request that is actually retried.
//!
//! Layout of the buffer, one record per (name, value) pair in the map's iteration order (all the
//! values of a name together, in order, as `HeaderMap::iter` yields them):
//!
//! ```text
//! flags: u8 (bit 0: the value is sensitive) | name length: u16 LE | value length: u32 LE
//! | name bytes | value bytes
//! ```
//!
//! Rules for bad input: a header value longer than `u32::MAX` bytes cannot be packed, so such a
//! request is not copied (it is sent once and never retried). A value whose bytes `HeaderValue`
//! would not accept (only possible through `HeaderValue::from_maybe_shared_unchecked`) cannot be
//! rebuilt: the retry is then refused as
//! [`GiveUp::NotReplayable`](crate::GiveUp::NotReplayable).

use std::fmt;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Extensions, HeaderMap, Method, Request, Uri, Version};

/// Bytes of a record before the name: flags, name length, value length.
const RECORD_HEAD: usize = 1 + 2 + 4;
/// The flag of a sensitive value.
const SENSITIVE: u8 = 1;

/// A copy of an `http::Request` kept for a retry: the request line, extensions and body as
/// clones, and the headers packed into one buffer (see the [module documentation](self)).
///
/// The [`ReplayableRequest::Copy`](crate::ReplayableRequest::Copy) of `http::Request<B>` for a
/// `Clone` body and of `http::Request<ReplayBody<B>>`.
pub struct RequestCopy<B> {
    method: Method,
    uri: Uri,
    version: Version,
    extensions: Extensions,
    headers: PackedHeaders,
    body: B,
}

impl<B> RequestCopy<B> {
    /// Copies `req`'s parts, with `body` as the body; `None` if a header value is too long to be
    /// packed (more than `u32::MAX` bytes).
    pub(crate) fn new<T>(req: &Request<T>, body: B) -> Option<Self> {
        Some(RequestCopy {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            extensions: req.extensions().clone(),
            headers: PackedHeaders::pack(req.headers())?,
            body,
        })
    }

    /// A request with the copied parts and `body`; `None` if the headers cannot be rebuilt.
    pub(crate) fn build<T>(&self, body: T) -> Option<Request<T>> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.extensions_mut() = self.extensions.clone();
        *req.headers_mut() = self.headers.unpack()?;
        Some(req)
    }

    /// The copied method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The copied URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The copied body.
    pub fn body(&self) -> &B {
        &self.body
    }

    /// The copied headers, rebuilt (an allocation per table and per value); `None` if they
    /// cannot be rebuilt (see the [module documentation](self)).
    pub fn headers(&self) -> Option<HeaderMap> {
        self.headers.unpack()
    }
}

impl<B> fmt::Debug for RequestCopy<B> {
    /// Header values are not shown (they may be credentials).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestCopy")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("version", &self.version)
            .field("headers", &self.headers.count)
            .finish_non_exhaustive()
    }
}

/// Header names and values in one buffer.
struct PackedHeaders {
    /// A `Bytes` so that the values of a rebuilt map can share it instead of each being copied.
    buf: Bytes,
    /// The number of (name, value) records.
    count: usize,
}

impl PackedHeaders {
    fn pack(map: &HeaderMap) -> Option<PackedHeaders> {
        if map.is_empty() {
            return Some(PackedHeaders {
                buf: Bytes::new(),
                count: 0,
            });
        }
        // Size first, so that the buffer is allocated once and exactly.
        let mut size = 0usize;
        for (name, value) in map {
            u32::try_from(value.len()).ok()?;
            size = size.checked_add(RECORD_HEAD + name.as_str().len() + value.len())?;
        }
        let mut buf = Vec::with_capacity(size);
        for (name, value) in map {
            let name = name.as_str().as_bytes();
            let flags = if value.is_sensitive() { SENSITIVE } else { 0 };
            // `HeaderName` is at most 65,535 bytes long; the value length was checked above.
            let name_len = u16::try_from(name.len()).ok()?;
            let value_len = u32::try_from(value.len()).ok()?;
            buf.push(flags);
            buf.extend_from_slice(&name_len.to_le_bytes());
            buf.extend_from_slice(&value_len.to_le_bytes());
            buf.extend_from_slice(name);
            buf.extend_from_slice(value.as_bytes());
        }
        // Exactly sized, so the conversion keeps the allocation.
        Some(PackedHeaders {
            buf: Bytes::from(buf),
            count: map.len(),
        })
    }

    fn unpack(&self) -> Option<HeaderMap> {
        let mut map = HeaderMap::with_capacity(self.count);
        let mut at = 0;
        while at < self.buf.len() {
            let [flags, n0, n1, v0, v1, v2, v3] = *self.buf.get(at..at + RECORD_HEAD)? else {
                return None;
            };
            let name_len = usize::from(u16::from_le_bytes([n0, n1]));
            let value_len = usize::try_from(u32::from_le_bytes([v0, v1, v2, v3])).ok()?;
            let name_at = at + RECORD_HEAD;
            let value_at = name_at.checked_add(name_len)?;
            let end = value_at.checked_add(value_len)?;
            let name = HeaderName::from_lowercase(self.buf.get(name_at..value_at)?).ok()?;
            if end > self.buf.len() {
                return None;
            }
            // The values share the buffer: one reference count each, no copy.
            let mut value = HeaderValue::from_maybe_shared(self.buf.slice(value_at..end)).ok()?;
            value.set_sensitive(flags & SENSITIVE != 0);
            map.append(name, value);
            at = end;
        }
        Some(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same_headers(a: &HeaderMap, b: &HeaderMap) {
        let a: Vec<_> = a
            .iter()
            .map(|(n, v)| (n.clone(), v.clone(), v.is_sensitive()))
            .collect();
        let b: Vec<_> = b
            .iter()
            .map(|(n, v)| (n.clone(), v.clone(), v.is_sensitive()))
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn a_request_is_rebuilt_exactly() {
        let mut req = Request::post("http://api.example.com:8080/v1/items?id=42&x=%20")
            .version(Version::HTTP_2)
            .header("accept", "application/json")
            .header("x-request-id", "0f8fad5b-d9cb-469f-a165-70867728950e")
            .header("accept", "text/plain")
            .header("set-cookie", "a=1")
            .header("x-empty", "")
            .header(
                "x-obs-text",
                HeaderValue::from_bytes(b"caf\xe9\tok").unwrap(),
            )
            .body("the body".to_string())
            .unwrap();
        let mut secret = HeaderValue::from_static("Bearer abc");
        secret.set_sensitive(true);
        req.headers_mut().insert("authorization", secret);
        req.extensions_mut().insert(7u32);

        let copy = RequestCopy::new(&req, req.body().clone()).unwrap();
        let rebuilt = copy.build(copy.body().clone()).unwrap();
        assert_eq!(rebuilt.method(), req.method());
        assert_eq!(rebuilt.uri(), req.uri());
        assert_eq!(rebuilt.version(), req.version());
        assert_eq!(rebuilt.extensions().get::<u32>(), Some(&7));
        assert_eq!(rebuilt.body(), req.body());
        same_headers(rebuilt.headers(), req.headers());
        assert!(rebuilt.headers()["authorization"].is_sensitive());
        assert!(!rebuilt.headers()["accept"].is_sensitive());
        let accepts: Vec<_> = rebuilt.headers().get_all("accept").iter().collect();
        assert_eq!(accepts, ["application/json", "text/plain"]);
        // The copy can be rebuilt again, the same every time.
        same_headers(copy.build(()).unwrap().headers(), req.headers());
    }

    #[test]
    fn no_headers_no_buffer() {
        let req = Request::get("/").body(()).unwrap();
        let copy = RequestCopy::new(&req, ()).unwrap();
        assert!(copy.headers.buf.is_empty());
        assert!(copy.build(()).unwrap().headers().is_empty());
    }

    #[test]
    fn one_record_per_value() {
        let req = Request::get("/")
            .header("a", "1")
            .header("bb", "22")
            .body(())
            .unwrap();
        let copy = RequestCopy::new(&req, ()).unwrap();
        assert_eq!(copy.headers.buf.len(), 2 * RECORD_HEAD + 2 + 4);
    }

    #[test]
    fn a_corrupt_buffer_is_refused_not_misread() {
        let req = Request::get("/").header("a", "1").body(()).unwrap();
        let mut copy = RequestCopy::new(&req, ()).unwrap();
        let whole = copy.headers.buf.clone();
        for cut in 0..whole.len() {
            copy.headers.buf = whole.slice(..cut);
            assert_eq!(copy.headers().is_none(), cut > 0, "cut at {cut}");
        }
        copy.headers.buf = Bytes::from_static(&[0, 1, 0, 0, 0, 0, 0, b'(']);
        assert!(copy.build(()).is_none(), "`(` is not a header name byte");
        copy.headers.buf = Bytes::from_static(&[0, 1, 0, 0, 0, 0, 0, b'A']);
        assert!(copy.build(()).is_none(), "names are kept in lower case");
        copy.headers.buf = Bytes::from_static(&[0, 1, 0, 1, 0, 0, 0, b'a', 0x7f]);
        assert!(copy.build(()).is_none(), "DEL is not a header value byte");
        copy.headers.buf = Bytes::from_static(&[0, 1, 0, 0xff, 0xff, 0xff, 0xff, b'a']);
        assert!(copy.build(()).is_none(), "a length past the end");
    }

    #[test]
    fn debug_hides_header_values() {
        let req = Request::get("/")
            .header("authorization", "secret")
            .body(())
            .unwrap();
        let copy = RequestCopy::new(&req, ()).unwrap();
        assert!(!format!("{copy:?}").contains("secret"));
    }

    fn header_map() -> impl Strategy<Value = HeaderMap> {
        let name = prop_oneof![
            Just("accept".to_string()),
            Just("set-cookie".to_string()),
            Just("content-type".to_string()),
            "[a-z][a-z0-9-]{0,20}",
        ];
        let value =
            proptest::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..40);
        proptest::collection::vec((name, value, any::<bool>()), 0..12).prop_map(|entries| {
            let mut map = HeaderMap::new();
            for (name, value, sensitive) in entries {
                let mut value = HeaderValue::from_bytes(&value).unwrap();
                value.set_sensitive(sensitive);
                map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
            }
            map
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_header_map_round_trips(map in header_map()) {
            let mut req = Request::new(());
            *req.headers_mut() = map.clone();
            let copy = RequestCopy::new(&req, ()).unwrap();
            let rebuilt = copy.build(()).unwrap();
            same_headers(rebuilt.headers(), &map);
            prop_assert_eq!(rebuilt.headers().len(), map.len());
            prop_assert_eq!(rebuilt.headers().keys_len(), map.keys_len());
        }
    }
}
