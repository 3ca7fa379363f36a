//! Clocks: where a limiter reads "now".
//!
//! The [`Clock`] trait and the clocks are resile-classify's ([`resile_classify::clock`]),
//! shared with the circuit breaker and the telemetry; [`QuantaClock`] is the default of the
//! direct and keyed limiters. Every store owns one clock; all TATs it keeps are in that clock's
//! nanoseconds.

pub use resile_classify::clock::{
    nanos, Clock, ManualClock, MonotonicClock, QuantaClock, TokioClock,
};

/// The clock the in-memory stores use unless told otherwise.
pub type DefaultClock = QuantaClock;
