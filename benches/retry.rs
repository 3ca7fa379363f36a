//! Placeholder: the retry bench is being written.
fn main() {}
