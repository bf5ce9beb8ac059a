//! What the notify hooks and the events stream are told of a transition.
use crate::engine::State;

/// One transition to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub priority: u8,
    pub reason: &'static str,
    /// CLOCK_MONOTONIC nanoseconds of the transition.
    pub ts_ns: u64,
}
