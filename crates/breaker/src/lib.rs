//! resile-breaker.
