//! The copy of an `http::Request` the layer keeps for a retry, packed so that keeping it is cheap.
//!
//! Every request the layer sends may have to be sent again, so a copy is made before it goes,
//! and almost always dropped unused when the first answer is a success. `Request::clone` is the
//! obvious copy, but it is the most expensive thing the layer does: a `HeaderMap` clone allocates
//! its index and entry tables, cloning each header value (or custom name) that was built from a
//! string turns its buffer into a shared one — one more allocation per value — and every shared
//! buffer (the URI's parts, the values) costs an atomic reference count to take and another to
//! drop.
//!
//! [`RequestCopy`] clones the method, version, extensions and body, and packs the URI's text and
//! every header name and value into **one** buffer: one allocation and no reference count for
//! the whole request head, whatever its size. The URI and the `HeaderMap` of a retry are parsed
//! back from that buffer, copied once into a shared `Bytes` that they slice (the values are not
//! copied one by one) — work done only for a request that is actually retried.
//!
//! Layout of the buffer: the URI's scheme, authority, and path and query, one after the other
//! (their lengths kept beside the buffer; each may be empty, as in a `Uri`), then one record per
//! header (name, value) pair in the map's iteration order (all the values of a name together, in
//! order, as `HeaderMap::iter` yields them):
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
//! [`GiveUp::NotReplayable`](crate::GiveUp::NotReplayable). The URI is rebuilt from its three
//! parts with `Uri::from_parts`, so any URI `http` can hold, parsed or built from parts, comes
//! back with the same scheme, authority, path and query; were a part ever not to parse back, the
//! retry is refused the same way, never sent with another URI.

use std::fmt;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Extensions, HeaderMap, Method, Request, Uri, Version};

/// Bytes of a record before the name: flags, name length, value length.
const RECORD_HEAD: usize = 1 + 2 + 4;
/// The flag of a sensitive value.
const SENSITIVE: u8 = 1;
/// The bytes the packing expects per header record before it has seen them (a name and value of
/// about 60 bytes together): most requests are packed into one allocation, made once.
const RECORD_GUESS: usize = RECORD_HEAD + 64;

/// A copy of an `http::Request` kept for a retry: the method, version, extensions and body as
/// clones, the URI and the headers packed into one buffer (see the [module documentation](self)).
///
/// The [`ReplayableRequest::Copy`](crate::ReplayableRequest::Copy) of `http::Request<B>` for a
/// `Clone` body and of `http::Request<ReplayBody<B>>`.
pub struct RequestCopy<B> {
    method: Method,
    version: Version,
    extensions: Extensions,
    packed: Packed,
    body: B,
}

impl<B> RequestCopy<B> {
    /// Copies `req`'s parts, with `body` as the body; `None` if a header value is too long to be
    /// packed (more than `u32::MAX` bytes).
    pub(crate) fn new<T>(req: &Request<T>, body: B) -> Option<Self> {
        Some(RequestCopy {
            method: req.method().clone(),
            version: req.version(),
            extensions: req.extensions().clone(),
            packed: Packed::pack(req.uri(), req.headers())?,
            body,
        })
    }

    /// A request with the copied parts and `body`; `None` if the URI or the headers cannot be
    /// rebuilt.
    pub(crate) fn build<T>(&self, body: T) -> Option<Request<T>> {
        // One shared copy of the buffer for the URI and every header value of this request.
        let buf = self.packed.shared();
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.packed.uri(&buf)?;
        *req.version_mut() = self.version;
        *req.extensions_mut() = self.extensions.clone();
        *req.headers_mut() = self.packed.headers(&buf)?;
        Some(req)
    }

    /// The copied method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The copied URI, rebuilt; `None` if it cannot be (see the [module documentation](self)).
    pub fn uri(&self) -> Option<Uri> {
        self.packed.uri(&self.packed.shared())
    }

    /// The copied body.
    pub fn body(&self) -> &B {
        &self.body
    }

    /// The copied headers, rebuilt (one allocation per table; the values share the buffer);
    /// `None` if they cannot be rebuilt (see the [module documentation](self)).
    pub fn headers(&self) -> Option<HeaderMap> {
        self.packed.headers(&self.packed.shared())
    }
}

impl<B> fmt::Debug for RequestCopy<B> {
    /// Header values are not shown (they may be credentials).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uri = self.uri();
        f.debug_struct("RequestCopy")
            .field("method", &self.method)
            .field("uri", &uri)
            .field("version", &self.version)
            .field("headers", &self.packed.count)
            .finish_non_exhaustive()
    }
}

/// The URI's parts, then the header records, in one buffer.
///
/// Kept small (48 bytes): it lives in every retry future, which is moved as it is built and
/// returned. The lengths are `u32` (a request whose URI or header count does not fit is not
/// copied), and the buffer is a plain `Vec`, filled in one pass over the headers and copied
/// once into a shared `Bytes` when a retry rebuilds the request (so that its URI and header
/// values can share it).
struct Packed {
    buf: Vec<u8>,
    /// The scheme's text at the start of `buf` (`0`: none) ...
    scheme_len: u32,
    /// ... then the authority's (`0`: none) ...
    authority_len: u32,
    /// ... then the path and query's: the URI ends here, the header records begin.
    uri_len: u32,
    /// The number of header (name, value) records.
    count: u32,
    /// The number of distinct header names.
    keys: u32,
}

impl Packed {
    // Inlined into `RequestCopy::new`: returned through memory, the packed fields were written
    // in one width and read back in another (a stalled store-to-load forward).
    #[inline(always)]
    fn pack(uri: &Uri, map: &HeaderMap) -> Option<Packed> {
        // The URI's three parts as `Uri` holds them; rebuilt with `Uri::from_parts`, so every
        // URI `http` can hold (parsed or built from parts) comes back the same.
        let scheme = uri.scheme_str().unwrap_or("");
        let authority = uri.authority().map_or("", |a| a.as_str());
        let path_and_query = uri.path_and_query().map_or("", |p| p.as_str());
        let scheme_len = scheme.len();
        let authority_len = authority.len();
        let uri_len = scheme_len
            .checked_add(authority_len)?
            .checked_add(path_and_query.len())?;
        // One pass over the headers: the buffer is sized for the URI and a typical record per
        // header ([`RECORD_GUESS`] bytes), and grows (amortized) for longer ones.
        let guess = map.len().saturating_mul(RECORD_GUESS);
        let mut buf = buffers::take(uri_len.saturating_add(guess));
        buf.extend_from_slice(scheme.as_bytes());
        buf.extend_from_slice(authority.as_bytes());
        buf.extend_from_slice(path_and_query.as_bytes());
        for (name, value) in map {
            let name = name.as_str().as_bytes();
            let value_bytes = value.as_bytes();
            // `HeaderName` is at most 65,535 bytes long; a longer value cannot be packed.
            let [n0, n1] = u16::try_from(name.len()).ok()?.to_le_bytes();
            let [v0, v1, v2, v3] = u32::try_from(value_bytes.len()).ok()?.to_le_bytes();
            let flags = if value.is_sensitive() { SENSITIVE } else { 0 };
            buf.extend_from_slice(&[flags, n0, n1, v0, v1, v2, v3]);
            buf.extend_from_slice(name);
            buf.extend_from_slice(value_bytes);
        }
        Some(Packed {
            buf,
            scheme_len: u32::try_from(scheme_len).ok()?,
            authority_len: u32::try_from(authority_len).ok()?,
            uri_len: u32::try_from(uri_len).ok()?,
            count: u32::try_from(map.len()).ok()?,
            keys: u32::try_from(map.keys_len()).ok()?,
        })
    }

    /// The buffer, as one shared `Bytes` a rebuilt URI and header values can slice.
    fn shared(&self) -> Bytes {
        Bytes::copy_from_slice(&self.buf)
    }

    /// The URI's parts, as offsets into the buffer: (scheme end, authority end, URI end);
    /// `None` if they do not fit in `len` bytes.
    fn uri_bounds(&self, len: usize) -> Option<(usize, usize, usize)> {
        let scheme_end = usize::try_from(self.scheme_len).ok()?;
        let authority_end = scheme_end.checked_add(usize::try_from(self.authority_len).ok()?)?;
        let uri_end = usize::try_from(self.uri_len).ok()?;
        (authority_end <= uri_end && uri_end <= len).then_some((scheme_end, authority_end, uri_end))
    }

    /// The URI, from `buf` (the buffer, shared).
    fn uri(&self, buf: &Bytes) -> Option<Uri> {
        let (scheme_len, authority_end, uri_len) = self.uri_bounds(buf.len())?;
        let mut parts = http::uri::Parts::default();
        if scheme_len > 0 {
            parts.scheme = Some(Scheme::try_from(&buf[..scheme_len]).ok()?);
        }
        if authority_end > scheme_len {
            let authority = buf.slice(scheme_len..authority_end);
            parts.authority = Some(Authority::from_maybe_shared(authority).ok()?);
        }
        // `Uri` has a path and query unless it is in authority form.
        if scheme_len > 0 || authority_end == scheme_len {
            let path_and_query = buf.slice(authority_end..uri_len);
            parts.path_and_query = Some(PathAndQuery::from_maybe_shared(path_and_query).ok()?);
        }
        Uri::from_parts(parts).ok()
    }

    /// The headers, from `buf` (the buffer, shared).
    fn headers(&self, buf: &Bytes) -> Option<HeaderMap> {
        let (_, _, uri_len) = self.uri_bounds(buf.len())?;
        // Sized by distinct names (at most the original's), never by values: `with_capacity`
        // panics past `HeaderMap`'s maximum, which repeated values of one name can exceed.
        let mut map = HeaderMap::try_with_capacity(usize::try_from(self.keys).ok()?).ok()?;
        let mut at = uri_len;
        while at < buf.len() {
            let [flags, n0, n1, v0, v1, v2, v3] = *buf.get(at..at + RECORD_HEAD)? else {
                return None;
            };
            let name_len = usize::from(u16::from_le_bytes([n0, n1]));
            let value_len = usize::try_from(u32::from_le_bytes([v0, v1, v2, v3])).ok()?;
            let name_at = at + RECORD_HEAD;
            let value_at = name_at.checked_add(name_len)?;
            let end = value_at.checked_add(value_len)?;
            let name = HeaderName::from_lowercase(buf.get(name_at..value_at)?).ok()?;
            if end > buf.len() {
                return None;
            }
            // The values share the buffer: one reference count each, no copy.
            let mut value = HeaderValue::from_maybe_shared(buf.slice(value_at..end)).ok()?;
            value.set_sensitive(flags & SENSITIVE != 0);
            map.try_append(name, value).ok()?;
            at = end;
        }
        // Every record read back, none missing.
        (u32::try_from(map.len()).ok()? == self.count).then_some(map)
    }
}

impl Drop for Packed {
    fn drop(&mut self) {
        buffers::give(std::mem::take(&mut self.buf));
    }
}

/// Each thread keeps the buffers of the copies it dropped, for the next copies it makes: a
/// client copies one request per call and drops the copy when the answer comes, so in a steady
/// state no copy allocates or frees. At most [`KEPT`](buffers::KEPT) buffers of at most
/// [`KEPT_CAPACITY`](buffers::KEPT_CAPACITY) bytes each are kept per thread (64 KiB); a larger
/// buffer, or one more, is freed as usual, and the thread's buffers are freed when it exits.
mod buffers {
    use std::cell::RefCell;

    /// Buffers kept per thread: the copies of as many requests in flight at once.
    pub(super) const KEPT: usize = 64;
    /// The largest buffer kept (a request head of a few headers fits in it).
    pub(super) const KEPT_CAPACITY: usize = 1024;

    thread_local! {
        static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty buffer of at least `capacity` bytes: one this thread kept, or a new one.
    #[inline]
    pub(super) fn take(capacity: usize) -> Vec<u8> {
        let kept = BUFFERS
            .try_with(|kept| kept.try_borrow_mut().ok().and_then(|mut kept| kept.pop()))
            .ok()
            .flatten();
        match kept {
            Some(mut buf) => {
                // Kept buffers are empty; one too small grows once and is kept grown.
                buf.reserve(capacity);
                buf
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// Keeps `buf` for this thread's next copy, or frees it.
    #[inline]
    pub(super) fn give(mut buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > KEPT_CAPACITY {
            return;
        }
        buf.clear();
        let _ = BUFFERS.try_with(|kept| {
            if let Ok(mut kept) = kept.try_borrow_mut() {
                if kept.len() < KEPT {
                    kept.push(buf);
                }
            }
        });
    }

    /// Buffers this thread keeps now (for tests).
    #[cfg(test)]
    pub(super) fn kept() -> usize {
        BUFFERS.with(|kept| kept.borrow().len())
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
        assert_eq!(rebuilt.uri().to_string(), req.uri().to_string());
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
    fn a_thread_reuses_the_buffers_of_the_copies_it_dropped() {
        // Each test runs on a thread of its own: this thread's buffers are this test's.
        let small = Request::get("http://a.example/x").body(()).unwrap();
        let mut big = Request::get("http://b.example/a/longer/path?q=1")
            .body(())
            .unwrap();
        for i in 0..8 {
            big.headers_mut().insert(
                HeaderName::from_bytes(format!("x-header-{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("a value of some length, to make the record long"),
            );
        }
        assert_eq!(buffers::kept(), 0);
        let first = RequestCopy::new(&small, ()).unwrap();
        let at = first.packed.buf.as_ptr();
        drop(first);
        assert_eq!(buffers::kept(), 1);
        // The next copy packs into the same buffer.
        let again = RequestCopy::new(&small, ()).unwrap();
        assert_eq!(again.packed.buf.as_ptr(), at);
        assert_eq!(again.build(()).unwrap().uri(), small.uri());
        drop(again);
        // One that needs more grows it, and is exact.
        let second = RequestCopy::new(&big, ()).unwrap();
        assert_eq!(buffers::kept(), 0);
        let rebuilt = second.build(()).unwrap();
        assert_eq!(rebuilt.uri(), big.uri());
        same_headers(rebuilt.headers(), big.headers());
        drop(second);
        let third = RequestCopy::new(&small, ()).unwrap();
        assert_eq!(third.build(()).unwrap().uri(), small.uri());
        drop(third);

        // At most `KEPT` buffers are kept, none larger than `KEPT_CAPACITY`.
        let copies: Vec<_> = (0..buffers::KEPT + 10)
            .map(|_| RequestCopy::new(&small, ()).unwrap())
            .collect();
        drop(copies);
        assert_eq!(buffers::kept(), buffers::KEPT);
        let mut huge = Request::get("http://c.example/").body(()).unwrap();
        huge.headers_mut().insert(
            "x-huge",
            HeaderValue::from_bytes(&vec![b'a'; buffers::KEPT_CAPACITY * 2]).unwrap(),
        );
        let taken: Vec<_> = (0..buffers::KEPT)
            .map(|_| RequestCopy::new(&small, ()).unwrap())
            .collect();
        assert_eq!(buffers::kept(), 0);
        drop(RequestCopy::new(&huge, ()).unwrap());
        assert_eq!(buffers::kept(), 0);
        drop(taken);
        assert_eq!(buffers::kept(), buffers::KEPT);
    }

    #[test]
    fn a_request_without_headers_packs_its_uri_alone() {
        let req = Request::get("/x?y=1").body(()).unwrap();
        let copy = RequestCopy::new(&req, ()).unwrap();
        assert_eq!(&*copy.packed.buf, b"/x?y=1");
        let rebuilt = copy.build(()).unwrap();
        assert!(rebuilt.headers().is_empty());
        assert_eq!(rebuilt.uri(), "/x?y=1");
    }

    #[test]
    fn one_record_per_value() {
        let req = Request::get("/")
            .header("a", "1")
            .header("bb", "22")
            .body(())
            .unwrap();
        let copy = RequestCopy::new(&req, ()).unwrap();
        assert_eq!(copy.packed.buf.len(), 1 + 2 * RECORD_HEAD + 2 + 4);
    }

    #[test]
    fn a_corrupt_buffer_is_refused_not_misread() {
        let req = Request::get("/").header("a", "1").body(()).unwrap();
        let mut copy = RequestCopy::new(&req, ()).unwrap();
        let whole = copy.packed.buf.clone();
        for cut in 0..whole.len() {
            copy.packed.buf = whole[..cut].into();
            // Cut inside the URI or inside the record: refused, never a panic or a short map.
            assert!(copy.headers().is_none(), "cut at {cut}");
            assert_eq!(copy.uri().is_none(), cut == 0, "cut at {cut}");
            assert!(copy.build(()).is_none(), "cut at {cut}");
            assert!(!format!("{copy:?}").is_empty());
        }
        for (buf, why) in [
            (
                &b"/\x00\x01\x00\x00\x00\x00\x00("[..],
                "`(` is not a header name byte",
            ),
            (
                b"/\x00\x01\x00\x00\x00\x00\x00A",
                "names are kept in lower case",
            ),
            (
                b"/\x00\x01\x00\x01\x00\x00\x00a\x7f",
                "DEL is not a header value byte",
            ),
            (b"/\x00\x01\x00\xff\xff\xff\xffa", "a length past the end"),
        ] {
            copy.packed.buf = buf.into();
            assert!(copy.headers().is_none(), "{why}");
            assert!(copy.build(()).is_none(), "{why}");
        }
        copy.packed.buf = b"httpexa mple.com/"[..].into();
        (copy.packed.scheme_len, copy.packed.authority_len) = (4, 12);
        copy.packed.uri_len = copy.packed.buf.len() as u32;
        copy.packed.count = 0;
        assert!(
            copy.uri().is_none(),
            "an authority that does not parse is refused"
        );
        (copy.packed.scheme_len, copy.packed.authority_len) = (4, 40);
        assert!(copy.uri().is_none(), "lengths past the URI are refused");
    }

    #[test]
    fn every_form_of_uri_is_rebuilt() {
        for text in [
            "/",
            "*",
            "/a/b?c=d&e=%20f",
            "/?",
            "http://example.com",
            "http://example.com/",
            "HTTPS://User:Pw@Example.COM:8443/p;q?x#frag",
            "http://[::1]:8080/v6",
            "http://127.0.0.1/",
            "example.com:443",
            "custom+scheme://host/x",
        ] {
            let uri: Uri = text.parse().unwrap();
            let req = Request::builder().uri(uri.clone()).body(()).unwrap();
            let copy = RequestCopy::new(&req, ()).unwrap();
            let rebuilt = copy.uri().unwrap();
            assert_eq!(rebuilt, uri, "{text}");
            assert_eq!(rebuilt.to_string(), uri.to_string(), "{text}");
            assert_eq!(rebuilt.path_and_query(), uri.path_and_query(), "{text}");
            assert_eq!(rebuilt.authority(), uri.authority(), "{text}");
        }
        // Built from parts, including what no parse would produce.
        // Parts of 60,000 and 8,000 bytes: longer together than a URI `Uri` would parse.
        let long = format!("/{}", "a".repeat(60_000));
        let host = format!("{}.example", "h".repeat(8_000));
        let built = [
            ("https", "api.example.com", "/v1?k=v"),
            ("http", "example.com", "*"),
            ("", "", "?x=1"),
            ("", "", "*"),
            ("http", &host, &long),
        ];
        for (scheme, authority, path_and_query) in built {
            let mut parts = http::uri::Parts::default();
            if !scheme.is_empty() {
                parts.scheme = Some(scheme.parse().unwrap());
                parts.authority = Some(authority.parse().unwrap());
            }
            parts.path_and_query = Some(
                PathAndQuery::from_maybe_shared(Bytes::copy_from_slice(path_and_query.as_bytes()))
                    .unwrap(),
            );
            let uri = Uri::from_parts(parts).unwrap();
            let req = Request::builder().uri(uri.clone()).body(()).unwrap();
            let rebuilt = RequestCopy::new(&req, ()).unwrap().uri().unwrap();
            let what = &path_and_query[..path_and_query.len().min(20)];
            assert_eq!(rebuilt, uri, "{scheme} {authority} {what}");
            assert_eq!(rebuilt.host(), uri.host(), "{what}");
            assert_eq!(rebuilt.path_and_query(), uri.path_and_query(), "{what}");
        }
    }

    #[test]
    fn thousands_of_values_of_one_name_are_rebuilt_without_a_panic() {
        // More values than `HeaderMap::with_capacity` accepts as a capacity.
        let mut req = Request::get("/").body(()).unwrap();
        for i in 0..30_000u32 {
            req.headers_mut().append("cookie", HeaderValue::from(i));
        }
        let copy = RequestCopy::new(&req, ()).unwrap();
        let rebuilt = copy.build(()).unwrap();
        assert_eq!(rebuilt.headers().len(), 30_000);
        assert!(rebuilt
            .headers()
            .get_all("cookie")
            .iter()
            .eq(req.headers().get_all("cookie").iter()));
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

    fn uri() -> impl Strategy<Value = String> {
        let path = "(/[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,12}){0,4}";
        let query = proptest::option::of("[a-zA-Z0-9._~%!$&'()*+,;=:@/?-]{0,20}");
        let host = prop_oneof![
            "[a-z][a-z0-9-]{0,15}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
            Just("[::1]".to_string()),
            Just("10.0.0.1".to_string()),
        ];
        let port = proptest::option::of(1u16..);
        (
            proptest::option::of(prop_oneof![Just("http"), Just("https"), Just("ws")]),
            host,
            port,
            path,
            query,
        )
            .prop_map(|(scheme, host, port, path, query)| {
                let mut uri = String::new();
                if let Some(scheme) = scheme {
                    uri.push_str(scheme);
                    uri.push_str("://");
                    uri.push_str(&host);
                    if let Some(port) = port {
                        uri.push_str(&format!(":{port}"));
                    }
                }
                uri.push_str(if path.is_empty() { "/" } else { &path });
                if let Some(q) = query {
                    uri.push('?');
                    uri.push_str(&q);
                }
                uri
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_uri_round_trips(text in uri()) {
            let uri: Uri = text.parse().unwrap();
            let req = Request::builder().uri(uri.clone()).body(()).unwrap();
            let rebuilt = RequestCopy::new(&req, ()).unwrap().uri().unwrap();
            prop_assert_eq!(&rebuilt, &uri);
            prop_assert_eq!(rebuilt.to_string(), uri.to_string());
        }

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
