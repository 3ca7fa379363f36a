//! Placeholder: the stack bench is being written.
fn main() {}
