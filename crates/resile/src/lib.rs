//! resile.
