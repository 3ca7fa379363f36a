//! Placeholder: the ratelimit bench is being written.
fn main() {}
