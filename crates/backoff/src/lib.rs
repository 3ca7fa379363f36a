//! resile-backoff.
