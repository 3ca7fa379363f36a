//! Shared helpers for resile's criterion benchmarks (each bench is its own target in this folder).

pub mod contenders;
#[path = "loopback.rs"]
pub mod loopback;
pub mod threads;
