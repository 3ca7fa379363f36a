//! Key extraction: what a keyed layer keeps its state under.
//!
//! One trait for every keyed piece of resile: the per-host circuit breaker and server-hint
//! pause of a client (keyed by [`ByAuthority`] by default), and the per-client buckets of a
//! server's rate limiter (peer IP, a header, ...). A closure `Fn(&Req) -> Option<K>` is an
//! extractor too.
//!
//! A request whose extractor returns `None` has no key: a keyed layer lets it through without
//! keyed state (each layer's documentation says exactly what it does with it).

use std::fmt;
use std::hash::{Hash, Hasher};

use http::uri::Authority;

/// Takes the key of a request.
pub trait KeyExtractor<Req: ?Sized> {
    /// The key: one piece of state per distinct value.
    type Key;

    /// The key of `req`, or `None` if it has none. Called on every request: keep it cheap.
    fn extract(&self, req: &Req) -> Option<Self::Key>;
}

impl<F, Req: ?Sized, K> KeyExtractor<Req> for F
where
    F: Fn(&Req) -> Option<K>,
{
    type Key = K;

    fn extract(&self, req: &Req) -> Option<K> {
        self(req)
    }
}

/// Keys requests by the authority of their URI (`host:port`; `http`'s `Authority` compares and
/// hashes without regard to ASCII case),
/// or their `Host` header when the URI has none (a server's requests). A request with neither,
/// or with a `Host` that is not a valid authority, has no key.
///
/// For an `http::Request` with an absolute URI the key is a clone of the URI's authority (no
/// allocation); for a `reqwest::Request` (feature `reqwest`) it is built from the URL's host
/// and port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByAuthority;

/// The key of [`ByAuthority`]: a request's authority. Equality and hashing ignore ASCII case
/// (as `Authority`'s do); it displays as first seen.
#[derive(Clone, PartialEq, Eq)]
pub struct HostKey(Authority);

impl HostKey {
    /// The authority.
    pub fn authority(&self) -> &Authority {
        &self.0
    }

    /// The authority as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Hash for HostKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Lowercased a chunk at a time: one `write` per 64 bytes rather than `Authority`'s one
        // per byte (a keyed layer hashes the key of every request).
        let mut buf = [0u8; 64];
        for chunk in self.0.as_str().as_bytes().chunks(buf.len()) {
            let out = &mut buf[..chunk.len()];
            out.copy_from_slice(chunk);
            out.make_ascii_lowercase();
            state.write(out);
        }
        state.write_u8(0xff);
    }
}

impl fmt::Display for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl From<Authority> for HostKey {
    fn from(authority: Authority) -> Self {
        HostKey(authority)
    }
}

impl<B> KeyExtractor<http::Request<B>> for ByAuthority {
    type Key = HostKey;

    #[inline]
    fn extract(&self, req: &http::Request<B>) -> Option<HostKey> {
        if let Some(a) = req.uri().authority() {
            return Some(HostKey(a.clone()));
        }
        let host = req.headers().get(http::header::HOST)?;
        Authority::try_from(host.as_bytes()).ok().map(HostKey)
    }
}

#[cfg(feature = "reqwest")]
impl KeyExtractor<reqwest::Request> for ByAuthority {
    type Key = HostKey;

    fn extract(&self, req: &reqwest::Request) -> Option<HostKey> {
        let url = req.url();
        let host = url.host_str()?;
        let authority = match url.port() {
            Some(port) => Authority::try_from(format!("{host}:{port}")),
            None => Authority::try_from(host),
        };
        authority.ok().map(HostKey)
    }
}

/// One key for every request: a keyed layer behaves as one unkeyed piece (one pause for the
/// whole client, one bucket for the whole server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllRequests;

impl<Req: ?Sized> KeyExtractor<Req> for AllRequests {
    type Key = ();

    #[inline]
    fn extract(&self, _req: &Req) -> Option<()> {
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;

    use super::*;

    fn key(uri: &str) -> Option<HostKey> {
        ByAuthority.extract(&http::Request::get(uri).body(()).unwrap())
    }

    #[test]
    fn the_authority_of_the_uri_ignoring_case() {
        let a = key("http://API.example.com:8080/x").unwrap();
        let b = key("http://api.example.com:8080/y?z").unwrap();
        assert_eq!(a, b);
        let s = RandomState::new();
        assert_eq!(s.hash_one(&a), s.hash_one(&b));
        assert_eq!(a.to_string(), "API.example.com:8080");
        assert_ne!(a, key("http://api.example.com:8081/").unwrap());
        assert_ne!(a, key("http://other.example.com:8080/").unwrap());
    }

    #[test]
    fn the_host_header_when_the_uri_has_no_authority() {
        let req = http::Request::get("/path")
            .header("host", "example.com")
            .body(())
            .unwrap();
        assert_eq!(ByAuthority.extract(&req).unwrap().as_str(), "example.com");
        let bad = http::Request::get("/path")
            .header("host", "exa mple")
            .body(())
            .unwrap();
        assert_eq!(ByAuthority.extract(&bad), None);
        assert_eq!(key("/no-host"), None);
    }

    #[test]
    fn a_closure_is_an_extractor() {
        let by_path = |req: &http::Request<()>| Some(req.uri().path().to_owned());
        let req = http::Request::get("http://h/p").body(()).unwrap();
        assert_eq!(by_path.extract(&req).as_deref(), Some("/p"));
    }
}
