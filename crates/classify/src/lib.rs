//! HTTP outcome classification shared by resile's retry layer and circuit breaker, and the
//! concepts the resile crates share: [`BoxError`], the [`clock`] and [`key`] extraction.
//!
//! # Default classification
//!
//! One table decides, for every outcome of an HTTP exchange, whether the request may be retried
//! (and whether that needs an idempotent method) and how a circuit breaker should count it:
//!
//! | outcome | retry (default) | breaker (default) |
//! |---|---|---|
//! | 1xx/2xx/3xx | success | success |
//! | 429 Too Many Requests | retry any method, after the server hint if one is given | neutral |
//! | 408 Request Timeout | retry idempotent | neutral |
//! | other 4xx | never | success |
//! | 500, 502, 503, 504 | retry idempotent (or with `Idempotency-Key`) | failure |
//! | other 5xx (501, 505, ...) | never | failure |
//! | connect error / request never sent | retry any method | failure |
//! | other transport error, timeout | retry idempotent | failure |
//! | a resile layer's own fast-fail ([`LocalRejection`] in the source chain) | never (¹) | neutral |
//!
//! (¹) The classification says never. resile-retry makes one exception:
//! when the request has a retry deadline and the rejection says when it passes again (an open
//! breaker's next probe, [`LocalRejection::passes_in`]) and that comes before the deadline, the
//! retry layer waits for it and tries again.
//!
//! Idempotent methods follow RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE. A request
//! carrying an `Idempotency-Key` header is treated as idempotent too (IETF
//! draft-ietf-httpapi-idempotency-key-header).
//!
//! Everything is a default: the [`ClassifierBuilder`] replaces the status sets, the idempotent
//! methods, the `Idempotency-Key` rule, or puts a closure in front of the table.
//!
//! The classifier works over two small traits, [`RequestLike`] and [`ResponseLike`], implemented
//! for `http::Request` / `http::Response` and, with the `reqwest` feature, for
//! `reqwest::Request` / `reqwest::Response`. Transport errors are classified by walking the
//! error's [`source`](std::error::Error::source) chain: see [`transport_failure`].
//!
//! # Example
//!
//! ```
//! use http::{Method, Request, Response, StatusCode};
//! use resile_classify::{BreakerVerdict, Classifier, Outcome};
//!
//! let classifier = Classifier::default();
//! let post = Request::post("http://example.com/orders").body(()).unwrap();
//! let get = Request::get("http://example.com/orders").body(()).unwrap();
//!
//! let res = Response::builder().status(StatusCode::INTERNAL_SERVER_ERROR).body(()).unwrap();
//! let class = classifier.classify(Outcome::response(&res));
//! assert!(class.retry_allowed(classifier.is_idempotent(&get)));
//! assert!(!class.retry_allowed(classifier.is_idempotent(&post)));
//! assert_eq!(class.breaker, BreakerVerdict::Failure);
//!
//! // 429: any method may retry; the breaker does not count it.
//! let res = Response::builder().status(429).header("retry-after", "3").body(()).unwrap();
//! let class = classifier.classify(Outcome::response(&res));
//! assert!(class.retry_allowed(false));
//! assert_eq!(class.breaker, BreakerVerdict::Neutral);
//! let hint = classifier.server_hint(Outcome::response(&res)).unwrap();
//! assert_eq!(hint.delay, std::time::Duration::from_secs(3));
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, Method, StatusCode};

pub use resile_retry_after::{HintSource, ServerHint};

pub mod clock;
mod error;
pub mod key;
#[cfg(feature = "tower-http")]
pub mod trace;
mod traits;

pub use error::{transport_failure, LocalRejection, RejectedBy, TransportFailure};
pub use key::{AllRequests, ByAuthority, HostKey, KeyExtractor};

/// The error type of every resile layer: a boxed error, the same type as `tower::BoxError`.
/// Downcast it to the layer's own error (`err.is::<LocalRejection>()`, a breaker's
/// `BreakerOpen`, ...) or to the inner service's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub use traits::{attempts, Attempts, RequestLike, ResponseLike, RetryRefused};

/// The outcome of one attempt, as the classifier sees it.
#[derive(Clone, Copy)]
pub enum Outcome<'a> {
    /// The server answered.
    Response {
        /// The response status.
        status: StatusCode,
        /// The response headers (for server hints and custom classifiers).
        headers: &'a HeaderMap,
    },
    /// The attempt failed without a response.
    Error(&'a (dyn StdError + 'static)),
}

impl<'a> Outcome<'a> {
    /// The outcome of a response.
    pub fn response<R: ResponseLike + ?Sized>(res: &'a R) -> Self {
        Outcome::Response {
            status: res.status(),
            headers: res.headers(),
        }
    }

    /// The outcome of an error (a `&BoxError` derefs to this).
    pub fn error(err: &'a (dyn StdError + 'static)) -> Self {
        Outcome::Error(err)
    }
}

impl fmt::Debug for Outcome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Response { status, .. } => f.debug_tuple("Response").field(status).finish(),
            Outcome::Error(err) => f
                .debug_tuple("Error")
                .field(&format_args!("{err}"))
                .finish(),
        }
    }
}

/// What kind of outcome this was (for logs, metrics and hooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutcomeKind {
    /// 1xx, 2xx or 3xx.
    Success,
    /// A 4xx other than 408 and 429: the client's mistake.
    ClientError,
    /// 429 Too Many Requests: the server is pacing us.
    TooManyRequests,
    /// 408 Request Timeout.
    RequestTimeout,
    /// A 5xx in the retryable set (500, 502, 503, 504 by default).
    RetryableServerError,
    /// Any other 5xx (501, 505, ...).
    ServerError,
    /// A status outside 100..=599.
    InvalidStatus,
    /// The request never reached the server (connection refused, request cancelled before it was
    /// written): safe to retry for any method.
    NotSent,
    /// A timeout (the request may have been processed).
    Timeout,
    /// Another transport error (the request may have been processed).
    Transport,
    /// A resile layer refused the request locally (breaker open, rate limit wait exceeded).
    Rejected,
    /// Decided by a custom classifier.
    Custom,
}

/// Which requests may be retried after an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryClass {
    /// No request may be retried.
    Never,
    /// Only idempotent requests (by method or `Idempotency-Key`) may be retried.
    Idempotent,
    /// Any request may be retried: it was not processed.
    Always,
}

/// How a circuit breaker counts an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerVerdict {
    /// The server is healthy.
    Success,
    /// The server (or the way to it) is failing.
    Failure,
    /// Says nothing about the server's health (429, 408, local rejections): not recorded.
    Neutral,
}

/// The classification of one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Classification {
    /// What kind of outcome it was.
    pub kind: OutcomeKind,
    /// Which requests may be retried.
    pub retry: RetryClass,
    /// How a breaker counts it.
    pub breaker: BreakerVerdict,
}

impl Classification {
    /// Builds a classification (for custom classifiers).
    pub const fn new(kind: OutcomeKind, retry: RetryClass, breaker: BreakerVerdict) -> Self {
        Classification {
            kind,
            retry,
            breaker,
        }
    }

    /// Whether a request, idempotent or not, may be retried after this outcome.
    pub const fn retry_allowed(&self, idempotent: bool) -> bool {
        match self.retry {
            RetryClass::Never => false,
            RetryClass::Idempotent => idempotent,
            RetryClass::Always => true,
        }
    }
}

/// A set of status codes (100..=999) as a fixed bitset: O(1) lookup, no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusSet {
    bits: [u64; 16],
}

impl StatusSet {
    /// The empty set.
    pub const fn empty() -> Self {
        StatusSet { bits: [0; 16] }
    }

    /// The set of the given statuses.
    pub fn from_statuses<I: IntoIterator<Item = StatusCode>>(statuses: I) -> Self {
        let mut set = Self::empty();
        for s in statuses {
            set.insert(s);
        }
        set
    }

    /// Adds a status.
    pub fn insert(&mut self, status: StatusCode) {
        let n = status.as_u16() as usize;
        if n < 1024 {
            self.bits[n / 64] |= 1 << (n % 64);
        }
    }

    /// Removes a status.
    pub fn remove(&mut self, status: StatusCode) {
        let n = status.as_u16() as usize;
        if n < 1024 {
            self.bits[n / 64] &= !(1 << (n % 64));
        }
    }

    /// Whether the set holds `status`.
    #[inline]
    pub fn contains(&self, status: StatusCode) -> bool {
        let n = status.as_u16() as usize;
        n < 1024 && self.bits[n / 64] & (1 << (n % 64)) != 0
    }

    // The lowest status in the set, 1024 if it is empty.
    fn lowest(&self) -> u16 {
        let mut base = 0u16;
        for word in self.bits {
            if word != 0 {
                return base + word.trailing_zeros() as u16;
            }
            base += 64;
        }
        base
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries((100u16..1000).filter(|n| self.bits[*n as usize / 64] & (1 << (n % 64)) != 0))
            .finish()
    }
}

/// A set of HTTP methods: a bitmask for the standard ones, a list for extension methods.
#[derive(Clone, PartialEq, Eq)]
pub struct MethodSet {
    standard: u16,
    extension: Arc<[Method]>,
}

const STANDARD_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::OPTIONS,
    Method::TRACE,
    Method::PUT,
    Method::DELETE,
    Method::POST,
    Method::PATCH,
    Method::CONNECT,
];

fn standard_bit(m: &Method) -> Option<u16> {
    STANDARD_METHODS
        .iter()
        .position(|s| s == m)
        .map(|i| 1u16 << i)
}

impl MethodSet {
    /// The idempotent methods of RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE.
    pub fn idempotent() -> Self {
        Self::from_methods([
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::TRACE,
            Method::PUT,
            Method::DELETE,
        ])
    }

    /// The set of the given methods.
    pub fn from_methods<I: IntoIterator<Item = Method>>(methods: I) -> Self {
        let mut standard = 0;
        let mut extension = Vec::new();
        for m in methods {
            match standard_bit(&m) {
                Some(bit) => standard |= bit,
                None => {
                    if !extension.contains(&m) {
                        extension.push(m)
                    }
                }
            }
        }
        MethodSet {
            standard,
            extension: extension.into(),
        }
    }

    /// Whether the set holds `method`.
    #[inline]
    pub fn contains(&self, method: &Method) -> bool {
        // The common methods first, compared without hashing or allocating.
        if *method == Method::GET {
            return self.standard & 1 != 0;
        }
        match standard_bit(method) {
            Some(bit) => self.standard & bit != 0,
            None => self.extension.iter().any(|m| m == method),
        }
    }
}

impl fmt::Debug for MethodSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(
                STANDARD_METHODS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| self.standard & (1 << i) != 0)
                    .map(|(_, m)| m)
                    .chain(self.extension.iter()),
            )
            .finish()
    }
}

type CustomFn = dyn Fn(&Outcome<'_>) -> Option<Classification> + Send + Sync;

/// The outcome classifier: the table above, with every default replaceable.
///
/// Cheap to clone (the custom closure and extension methods are behind `Arc`s).
///
/// # Default
///
/// - retryable for idempotent requests: 408, 500, 502, 503, 504, timeouts, transport errors;
/// - retryable for any request: 429, and errors that show the request was never sent;
/// - breaker failures: every 5xx and every transport error or timeout;
/// - breaker neutral: 408, 429, local rejections;
/// - idempotent methods: GET, HEAD, OPTIONS, TRACE, PUT, DELETE, and any request with an
///   `Idempotency-Key` header.
#[derive(Clone)]
pub struct Classifier {
    retry_idempotent: StatusSet,
    retry_always: StatusSet,
    breaker_neutral: StatusSet,
    idempotent_methods: MethodSet,
    idempotency_key: Option<HeaderName>,
    custom: Option<Arc<CustomFn>>,
    // No status below this one can be retried (0 with a custom closure): the one-compare test
    // of `may_retry_status` for successes. Derived from the fields above in `build`.
    retry_floor: u16,
}

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classifier")
            .field("retry_idempotent", &self.retry_idempotent)
            .field("retry_always", &self.retry_always)
            .field("breaker_neutral", &self.breaker_neutral)
            .field("idempotent_methods", &self.idempotent_methods)
            .field("idempotency_key", &self.idempotency_key)
            .field("custom", &self.custom.as_ref().map(|_| "Fn"))
            .finish()
    }
}

impl Default for Classifier {
    fn default() -> Self {
        Self::builder().build()
    }
}

/// The header of draft-ietf-httpapi-idempotency-key-header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

impl Classifier {
    /// The default classifier (see [`Classifier`]'s `# Default`).
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder starting from the defaults.
    pub fn builder() -> ClassifierBuilder {
        ClassifierBuilder {
            inner: Classifier {
                retry_idempotent: StatusSet::from_statuses([
                    StatusCode::REQUEST_TIMEOUT,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    StatusCode::BAD_GATEWAY,
                    StatusCode::SERVICE_UNAVAILABLE,
                    StatusCode::GATEWAY_TIMEOUT,
                ]),
                retry_always: StatusSet::from_statuses([StatusCode::TOO_MANY_REQUESTS]),
                breaker_neutral: StatusSet::from_statuses([
                    StatusCode::REQUEST_TIMEOUT,
                    StatusCode::TOO_MANY_REQUESTS,
                ]),
                idempotent_methods: MethodSet::idempotent(),
                idempotency_key: Some(HeaderName::from_static(IDEMPOTENCY_KEY)),
                custom: None,
                retry_floor: 0,
            },
        }
    }

    /// Whether a request may be replayed after an outcome that allows retrying idempotent
    /// requests: its method is in the idempotent set, or it carries the idempotency-key header.
    #[inline]
    pub fn is_idempotent<R: RequestLike + ?Sized>(&self, req: &R) -> bool {
        self.is_idempotent_parts(req.method(), req.headers())
    }

    /// [`is_idempotent`](Self::is_idempotent) from a method and headers.
    #[inline]
    pub fn is_idempotent_parts(&self, method: &Method, headers: &HeaderMap) -> bool {
        self.idempotent_methods.contains(method)
            || self
                .idempotency_key
                .as_ref()
                .is_some_and(|h| headers.contains_key(h))
    }

    /// Whether a response with `status` may be retried under this classifier at all: `false`
    /// means [`classify`](Self::classify) says [`RetryClass::Never`] for every response with
    /// this status, whatever its headers and the request's method. A custom closure may decide
    /// anything, so with one this is always `true`.
    ///
    /// A cheap test (two bit lookups) for the path every successful request takes: a retry
    /// layer can return a `200` without building a [`Classification`].
    #[inline]
    pub fn may_retry_status(&self, status: StatusCode) -> bool {
        status.as_u16() >= self.retry_floor
            && (self.custom.is_some()
                || self.retry_always.contains(status)
                || self.retry_idempotent.contains(status))
    }

    /// Classifies an outcome.
    #[inline]
    pub fn classify(&self, outcome: Outcome<'_>) -> Classification {
        if let Some(custom) = &self.custom {
            if let Some(c) = custom(&outcome) {
                return c;
            }
        }
        match outcome {
            Outcome::Response { status, .. } => self.classify_status(status),
            Outcome::Error(err) => classify_error(err),
        }
    }

    /// Classifies a status by the status sets alone (no custom closure).
    #[inline]
    pub fn classify_status(&self, status: StatusCode) -> Classification {
        use BreakerVerdict as B;
        use OutcomeKind as K;
        let n = status.as_u16();
        let retry = if self.retry_always.contains(status) {
            RetryClass::Always
        } else if self.retry_idempotent.contains(status) {
            RetryClass::Idempotent
        } else {
            RetryClass::Never
        };
        let (kind, breaker) = match n {
            100..=399 => (K::Success, B::Success),
            429 => (K::TooManyRequests, B::Success),
            408 => (K::RequestTimeout, B::Success),
            400..=499 => (K::ClientError, B::Success),
            500..=599 if retry != RetryClass::Never => (K::RetryableServerError, B::Failure),
            500..=599 => (K::ServerError, B::Failure),
            _ => (K::InvalidStatus, B::Failure),
        };
        let breaker = if self.breaker_neutral.contains(status) {
            B::Neutral
        } else {
            breaker
        };
        Classification {
            kind,
            retry,
            breaker,
        }
    }

    /// Whether `outcome` allows retrying a request that is (or is not) idempotent.
    #[inline]
    pub fn should_retry(&self, idempotent: bool, outcome: Outcome<'_>) -> bool {
        self.classify(outcome).retry_allowed(idempotent)
    }

    /// How a circuit breaker counts `outcome`.
    #[inline]
    pub fn breaker_verdict(&self, outcome: Outcome<'_>) -> BreakerVerdict {
        match outcome {
            // The breaker's closed path: a status and no custom closure needs only the verdict.
            Outcome::Response { status, .. } if self.custom.is_none() => {
                self.breaker_verdict_status(status)
            }
            _ => self.classify(outcome).breaker,
        }
    }

    /// How a circuit breaker counts `status` by the status sets alone (no custom closure): the
    /// `breaker` of [`classify_status`](Self::classify_status), without the rest.
    #[inline]
    pub fn breaker_verdict_status(&self, status: StatusCode) -> BreakerVerdict {
        if self.breaker_neutral.contains(status) {
            BreakerVerdict::Neutral
        } else if (100..500).contains(&status.as_u16()) {
            BreakerVerdict::Success
        } else {
            BreakerVerdict::Failure
        }
    }

    /// The server's hint of when to come back, if `outcome` is a response that carries one
    /// (see [`resile_retry_after::server_hint`]). Errors carry none.
    pub fn server_hint(&self, outcome: Outcome<'_>) -> Option<ServerHint> {
        match outcome {
            Outcome::Response { headers, .. } => resile_retry_after::server_hint(headers),
            Outcome::Error(_) => None,
        }
    }
}

fn classify_error(err: &(dyn StdError + 'static)) -> Classification {
    use BreakerVerdict as B;
    use OutcomeKind as K;
    match transport_failure(err) {
        TransportFailure::Rejected => {
            Classification::new(K::Rejected, RetryClass::Never, B::Neutral)
        }
        TransportFailure::NotSent => {
            Classification::new(K::NotSent, RetryClass::Always, B::Failure)
        }
        TransportFailure::Timeout => {
            Classification::new(K::Timeout, RetryClass::Idempotent, B::Failure)
        }
        TransportFailure::Other => {
            Classification::new(K::Transport, RetryClass::Idempotent, B::Failure)
        }
    }
}

/// Builds a [`Classifier`]; starts from the defaults.
#[derive(Clone, Debug)]
pub struct ClassifierBuilder {
    inner: Classifier,
}

impl ClassifierBuilder {
    /// Statuses that idempotent requests may retry (replaces the default 408, 500, 502, 503, 504).
    pub fn retry_idempotent_statuses<I: IntoIterator<Item = StatusCode>>(mut self, s: I) -> Self {
        self.inner.retry_idempotent = StatusSet::from_statuses(s);
        self
    }

    /// Statuses that any request may retry (replaces the default 429).
    pub fn retry_any_method_statuses<I: IntoIterator<Item = StatusCode>>(mut self, s: I) -> Self {
        self.inner.retry_always = StatusSet::from_statuses(s);
        self
    }

    /// Statuses the breaker neither counts as failures nor successes (replaces 408, 429).
    pub fn breaker_neutral_statuses<I: IntoIterator<Item = StatusCode>>(mut self, s: I) -> Self {
        self.inner.breaker_neutral = StatusSet::from_statuses(s);
        self
    }

    /// Methods treated as idempotent (replaces GET, HEAD, OPTIONS, TRACE, PUT, DELETE).
    pub fn idempotent_methods<I: IntoIterator<Item = Method>>(mut self, m: I) -> Self {
        self.inner.idempotent_methods = MethodSet::from_methods(m);
        self
    }

    /// The header whose presence makes any request idempotent (`Idempotency-Key` by default);
    /// `None` turns the rule off.
    pub fn idempotency_key(mut self, header: Option<HeaderName>) -> Self {
        self.inner.idempotency_key = header;
        self
    }

    /// A closure consulted first; returning `None` falls back to the table.
    pub fn custom<F>(mut self, f: F) -> Self
    where
        F: Fn(&Outcome<'_>) -> Option<Classification> + Send + Sync + 'static,
    {
        self.inner.custom = Some(Arc::new(f));
        self
    }

    /// The classifier.
    pub fn build(mut self) -> Classifier {
        let c = &mut self.inner;
        c.retry_floor = if c.custom.is_some() {
            0
        } else {
            c.retry_always.lowest().min(c.retry_idempotent.lowest())
        };
        self.inner
    }
}

#[cfg(test)]
mod tests;

// The README (shown on crates.io): its example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
