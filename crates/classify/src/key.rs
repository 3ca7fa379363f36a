//! Key extraction: what a keyed layer keeps its state under.
//!
//! One trait for every keyed piece of resile: the per-host circuit breaker and server-hint
//! pause of a client (keyed by [`ByAuthority`] by default), and the per-client buckets of a
//! server's rate limiter (peer IP, a header, ...). A closure `Fn(&Req) -> Option<K>` is an
//! extractor too.
//!
//! A request whose extractor returns `None` has no key: a keyed layer lets it through without
//! keyed state (each layer's documentation says exactly what it does with it).

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

impl<B> KeyExtractor<http::Request<B>> for ByAuthority {
    type Key = Authority;

    #[inline]
    fn extract(&self, req: &http::Request<B>) -> Option<Authority> {
        if let Some(a) = req.uri().authority() {
            return Some(a.clone());
        }
        let host = req.headers().get(http::header::HOST)?;
        Authority::try_from(host.as_bytes()).ok()
    }
}

#[cfg(feature = "reqwest")]
impl KeyExtractor<reqwest::Request> for ByAuthority {
    type Key = Authority;

    fn extract(&self, req: &reqwest::Request) -> Option<Authority> {
        let url = req.url();
        let host = url.host_str()?;
        let authority = match url.port() {
            Some(port) => Authority::try_from(format!("{host}:{port}")),
            None => Authority::try_from(host),
        };
        authority.ok()
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

    fn key(uri: &str) -> Option<Authority> {
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
        assert_eq!(ByAuthority.extract(&req).unwrap(), "example.com");
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
