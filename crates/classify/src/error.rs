//! Transport errors, classified by walking the source chain.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

/// What a transport error says about whether the request reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportFailure {
    /// The request was never sent: connection refused or reset while connecting, no route, DNS
    /// failure, a pooled request cancelled before it was written. Safe to retry for any method.
    NotSent,
    /// A timeout: the request may or may not have been processed.
    Timeout,
    /// A resile layer refused the request locally ([`LocalRejection`] in the chain).
    Rejected,
    /// Anything else: the request may have been processed.
    Other,
}

/// A marker that resile's own fast-fail errors (an open breaker, a rate-limit wait past its bound)
/// carry in their [`source`](StdError::source) chain, so that any layer can tell a local
/// rejection from a failure of the server without knowing the concrete error type.
///
/// Outcomes with this marker are never retried by the classification table and are neutral to
/// circuit breakers. A rejection may say when the layer that made it will let requests through
/// again ([`passes_in`](Self::passes_in): an open breaker's next probe); a retry layer with a
/// deadline retries such a request when that moment falls inside the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LocalRejection {
    passes_in: Option<Duration>,
    by: RejectedBy,
}

/// The kind of layer that made a [`LocalRejection`], for telemetry and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum RejectedBy {
    /// An open (or probing) circuit breaker.
    CircuitBreaker,
    /// A rate limiter or a server-hint pause: the wait for a permit was past its bound.
    RateLimiter,
    /// Any other layer.
    #[default]
    Other,
}

impl RejectedBy {
    /// A short lowercase name: `circuit_breaker`, `rate_limiter`, `other`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectedBy::CircuitBreaker => "circuit_breaker",
            RejectedBy::RateLimiter => "rate_limiter",
            RejectedBy::Other => "other",
        }
    }
}

impl LocalRejection {
    /// A `'static` instance that says nothing about when requests pass again, for `source()`
    /// implementations.
    pub const STATIC: &'static LocalRejection = &LocalRejection::new(RejectedBy::Other);

    /// A `'static` rejection by a rate limiter, for `source()` implementations.
    pub const RATE_LIMITER: &'static LocalRejection = &LocalRejection::new(RejectedBy::RateLimiter);

    /// A rejection by a layer of kind `by` that says nothing about when requests pass again.
    pub const fn new(by: RejectedBy) -> Self {
        LocalRejection {
            passes_in: None,
            by,
        }
    }

    /// A rejection by a layer that lets requests through again in `d`.
    pub const fn passing_in(d: Duration) -> Self {
        LocalRejection {
            passes_in: Some(d),
            by: RejectedBy::Other,
        }
    }

    /// The same rejection, made by a layer of kind `by`.
    pub const fn by(self, by: RejectedBy) -> Self {
        LocalRejection { by, ..self }
    }

    /// How long until the rejecting layer lets requests through again, if it knows.
    pub const fn passes_in(&self) -> Option<Duration> {
        self.passes_in
    }

    /// The kind of layer that made the rejection.
    pub const fn rejected_by(&self) -> RejectedBy {
        self.by
    }

    /// The first `LocalRejection` in `err`'s source chain (`err` itself included), walking at
    /// most 64 links.
    pub fn find<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a LocalRejection> {
        let mut next = Some(err);
        for _ in 0..=64 {
            let e = next?;
            if let Some(r) = e.downcast_ref::<LocalRejection>() {
                return Some(r);
            }
            next = e.source();
        }
        None
    }
}

impl fmt::Display for LocalRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rejected locally by a resilience layer")?;
        match self.passes_in {
            Some(d) => write!(f, " (passing again in {d:?})"),
            None => Ok(()),
        }
    }
}

impl StdError for LocalRejection {}

/// Walks `err`'s source chain and says what it shows about the request.
///
/// Recognised (the first decisive link wins, outermost first):
/// - [`LocalRejection`] → `Rejected`;
/// - `hyper_util::client::legacy::Error::is_connect()` (feature `hyper`, on by default),
///   `reqwest::Error::is_connect()` (feature `reqwest`), `hyper::Error::is_canceled()` (the request
///   was dropped before it was written) → `NotSent`;
/// - `std::io::Error` of kind `ConnectionRefused`, `AddrNotAvailable`, `NotConnected`,
///   `HostUnreachable`, `NetworkUnreachable` → `NotSent`; `TimedOut` → `Timeout`;
/// - `hyper::Error::is_timeout()`, `reqwest::Error::is_timeout()`,
///   `tower::timeout::error::Elapsed` and `tokio::time::error::Elapsed` → `Timeout`.
///
/// Everything else is `Other`: the request may have been processed, so only idempotent requests
/// retry it.
pub fn transport_failure(err: &(dyn StdError + 'static)) -> TransportFailure {
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    let mut depth = 0;
    // A cyclic or absurdly deep chain must not hang us.
    while let Some(e) = next {
        if depth > 64 {
            break;
        }
        depth += 1;
        if let Some(found) = classify_link(e) {
            return found;
        }
        next = e.source();
    }
    TransportFailure::Other
}

fn classify_link(e: &(dyn StdError + 'static)) -> Option<TransportFailure> {
    if e.is::<LocalRejection>() {
        return Some(TransportFailure::Rejected);
    }
    #[cfg(feature = "hyper")]
    {
        if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            if h.is_connect() {
                return Some(TransportFailure::NotSent);
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_canceled() {
                return Some(TransportFailure::NotSent);
            }
            if h.is_timeout() {
                return Some(TransportFailure::Timeout);
            }
        }
    }
    #[cfg(feature = "reqwest")]
    {
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            if r.is_connect() {
                return Some(TransportFailure::NotSent);
            }
            if r.is_timeout() {
                return Some(TransportFailure::Timeout);
            }
        }
    }
    if let Some(io) = e.downcast_ref::<io::Error>() {
        use io::ErrorKind as K;
        match io.kind() {
            K::ConnectionRefused
            | K::AddrNotAvailable
            | K::NotConnected
            | K::HostUnreachable
            | K::NetworkUnreachable => return Some(TransportFailure::NotSent),
            K::TimedOut => return Some(TransportFailure::Timeout),
            _ => {}
        }
    }
    if is_elapsed(e) {
        return Some(TransportFailure::Timeout);
    }
    None
}

fn is_elapsed(e: &(dyn StdError + 'static)) -> bool {
    e.is::<tower::timeout::error::Elapsed>() || e.is::<tokio::time::error::Elapsed>()
}
