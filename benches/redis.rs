//! Placeholder: the redis bench is being written.
fn main() {}
