//! resile-classify.
