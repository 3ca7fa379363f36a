//! What the server layer keys on, and what it does when it cannot decide.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use resile_classify::KeyExtractor;

use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};

/// The parts of a request a [`KeyExtractor`] may look at (everything but the body).
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions (connection info lives here).
    pub extensions: &'a Extensions,
}

impl<'a, B> From<&'a Request<B>> for RequestHead<'a> {
    fn from(req: &'a Request<B>) -> Self {
        RequestHead {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
        }
    }
}

/// The key type of a server-side extractor `E`: what [`KeyExtractor::extract`] returns for a
/// [`RequestHead`].
///
/// A server-side extractor is a [`KeyExtractor`] over every [`RequestHead`]
/// (`E: for<'a> KeyExtractor<RequestHead<'a>>`): [`PeerIp`], [`HeaderKey`], [`AllRequests`](resile_classify::AllRequests), and
/// any `Fn(&RequestHead<'_>) -> Option<K>` closure. Returning `None` means "no key": the layer
/// applies its [`on_missing_key`](super::ThrottleLayerBuilder::on_missing_key) rule.
pub type KeyOf<E> = <E as KeyExtractor<RequestHead<'static>>>::Key;

/// Keys on the peer's IP address, from the connection info in the request's extensions:
///
/// - a `std::net::SocketAddr` extension (what a hyper server loop inserts per connection, e.g.
///   `req.extensions_mut().insert(peer)` in its `service_fn`);
/// - with the `axum` feature, axum's `ConnectInfo<SocketAddr>` (serve the router with
///   `into_make_service_with_connect_info::<SocketAddr>()`).
///
/// IPv4-mapped IPv6 addresses count as their IPv4 address. IPv6 peers can be grouped by prefix
/// ([`ipv6_prefix`](PeerIp::ipv6_prefix)): one host commonly owns a whole /64.
///
/// Behind a reverse proxy the peer is the proxy: key on a header the proxy sets instead (a
/// closure over `X-Forwarded-For` that trusts only your proxy's entry).
///
/// # Default
///
/// Full addresses (IPv6 prefix 128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerIp {
    v6_prefix: u8,
}

impl Default for PeerIp {
    fn default() -> Self {
        PeerIp { v6_prefix: 128 }
    }
}

impl PeerIp {
    /// Keys on full addresses.
    pub fn new() -> PeerIp {
        PeerIp::default()
    }

    /// Groups IPv6 peers by their first `bits` bits (clamped to 0..=128), e.g. 64.
    pub fn ipv6_prefix(mut self, bits: u8) -> PeerIp {
        self.v6_prefix = bits.min(128);
        self
    }

    fn key(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    return IpAddr::V4(v4);
                }
                let bits = u128::from(v6);
                let mask = match self.v6_prefix {
                    0 => 0,
                    n => u128::MAX << (128 - u32::from(n)),
                };
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
        }
    }
}

impl KeyExtractor<RequestHead<'_>> for PeerIp {
    type Key = IpAddr;

    fn extract(&self, req: &RequestHead<'_>) -> Option<IpAddr> {
        #[cfg(feature = "axum")]
        if let Some(info) = req
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
        {
            return Some(self.key(info.0.ip()));
        }
        req.extensions
            .get::<SocketAddr>()
            .map(|peer| self.key(peer.ip()))
    }
}

/// Keys on the value of one request header (an API key, a tenant id). Requests without the
/// header (or with it twice: the first value counts) have no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderKey {
    name: HeaderName,
}

impl HeaderKey {
    /// Keys on header `name`.
    pub fn new(name: HeaderName) -> HeaderKey {
        HeaderKey { name }
    }
}

impl KeyExtractor<RequestHead<'_>> for HeaderKey {
    type Key = HeaderValue;

    fn extract(&self, req: &RequestHead<'_>) -> Option<HeaderValue> {
        req.headers.get(&self.name).cloned()
    }
}

/// What the server layer does with a request it cannot decide for (no key, or the store failed).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Let it through, unlimited and without rate-limit headers.
    Allow,
    /// Answer with this status (empty body) without calling the service.
    Respond(StatusCode),
}

impl fmt::Debug for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fallback::Allow => f.write_str("Allow"),
            Fallback::Respond(s) => write!(f, "Respond({})", s.as_u16()),
        }
    }
}
