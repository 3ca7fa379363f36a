//! Placeholder: the breaker bench is being written.
fn main() {}
