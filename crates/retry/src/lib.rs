//! resile-retry.
