//! The layer: a breaker and its configuration.

use std::fmt;
use std::sync::Arc;

use resile_classify::Classifier;
use tower_layer::Layer;

use crate::clock::Ticker;
use crate::error::BreakerConfigError;
use crate::handle::BreakerHandle;
use crate::policy::{CircuitBreakerBuilder, WindowSpec};
use crate::service::CircuitBreaker;
use crate::shared::{Breaker, Shared};
use crate::state::{Core, Policy, Trip};

/// Wraps services in a [`CircuitBreaker`].
///
/// The layer owns one breaker: every service it wraps, and every clone of those services,
/// shares it (and [`handle`](Self::handle) reads and controls it). Build another layer for an
/// independent breaker, or use a [`KeyedCircuitBreakerLayer`](crate::KeyedCircuitBreakerLayer)
/// for one breaker per host.
pub struct CircuitBreakerLayer<C = Classifier> {
    pub(crate) breaker: Arc<Breaker<C>>,
}

impl<C> Clone for CircuitBreakerLayer<C> {
    fn clone(&self) -> Self {
        CircuitBreakerLayer {
            breaker: self.breaker.clone(),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for CircuitBreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker.shared)
            .field("classifier", &self.breaker.classifier)
            .finish()
    }
}

impl Default for CircuitBreakerLayer<Classifier> {
    fn default() -> Self {
        Self::new()
    }
}

impl CircuitBreakerLayer<Classifier> {
    /// A breaker with the defaults (see [`CircuitBreakerBuilder`]).
    pub fn new() -> Self {
        let builder = CircuitBreakerBuilder::default();
        let policy = Policy {
            trip: Trip::Consecutive(5),
            probes: 1,
            close_after: 1,
            max_hint: builder.max_hint,
        };
        builder.assemble(policy, WindowSpec::None)
    }

    /// A builder starting from the defaults.
    pub fn builder() -> CircuitBreakerBuilder<Classifier> {
        CircuitBreakerBuilder::default()
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// The handle of this layer's breaker.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            shared: self.breaker.shared.clone(),
        }
    }
}

impl<C> CircuitBreakerBuilder<C> {
    /// Builds the layer (and its breaker).
    ///
    /// # Errors
    ///
    /// [`BreakerConfigError`] if a number is out of range: zero consecutive failures, a failure rate
    /// outside `(0, 1]`, an empty or oversized window, zero probes or successes to close.
    pub fn build(self) -> Result<CircuitBreakerLayer<C>, BreakerConfigError>
    where
        C: Send + Sync + 'static,
    {
        let (policy, spec) = self.check()?;
        Ok(self.assemble(policy, spec))
    }

    /// Builds the layer from a checked policy.
    fn assemble(mut self, policy: Policy, spec: WindowSpec) -> CircuitBreakerLayer<C>
    where
        C: Send + Sync + 'static,
    {
        let (backoff, first) = self.make_backoff();
        let core = Core::new(spec.make(), backoff, first);
        let ticker = Ticker::new(self.take_clock());
        let shared = Shared::new(
            policy,
            vec![core].into_boxed_slice(),
            ticker,
            self.name,
            self.listeners,
            None,
        );
        CircuitBreakerLayer {
            breaker: Arc::new(Breaker {
                shared: Arc::new(shared),
                classifier: self.classifier,
            }),
        }
    }
}

impl<S, C> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, self.breaker.clone())
    }
}
