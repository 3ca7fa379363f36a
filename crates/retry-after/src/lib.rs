//! resile-retry-after.
