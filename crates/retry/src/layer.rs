//! The retry layer.

use std::fmt;

use resile_backoff::Exponential;
use tower_layer::Layer;

use crate::policy::RetryPolicy;
use crate::service::Retry;

/// Wraps services in [`Retry`] with a [`RetryPolicy`].
///
/// A `Clone + Debug` configuration value: every service it wraps, and every clone of those,
/// shares the policy's [`RetryBudget`](crate::RetryBudget).
///
/// # Default
///
/// [`RetryPolicy::default()`]: see its `# Default` section.
pub struct RetryLayer<B = Exponential> {
    policy: RetryPolicy<B>,
}

impl<B> RetryLayer<B> {
    /// A layer applying `policy`.
    pub fn new(policy: RetryPolicy<B>) -> Self {
        RetryLayer { policy }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy<B> {
        &self.policy
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        RetryLayer::new(RetryPolicy::default())
    }
}

impl<B> Clone for RetryLayer<B> {
    fn clone(&self) -> Self {
        RetryLayer {
            policy: self.policy.clone(),
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for RetryLayer<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &self.policy)
            .finish()
    }
}

impl<S, B> Layer<S> for RetryLayer<B> {
    type Service = Retry<S, B>;

    fn layer(&self, inner: S) -> Retry<S, B> {
        Retry::new(inner, self.policy.clone())
    }
}
