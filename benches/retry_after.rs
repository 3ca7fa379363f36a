//! Placeholder: the retry_after bench is being written.
fn main() {}
