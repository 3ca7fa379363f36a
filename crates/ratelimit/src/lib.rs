//! resile-ratelimit.
