//! What a guard step machine ([`super::promotion`], [`super::demotion`],
//! [`super::watch`]) asks of its executor next: run one of its statements, wait, hand
//! the core an outcome, say something, or nothing more.
use std::time::Duration;

use super::Outcome;

#[derive(Clone, Debug, PartialEq)]
pub enum Step<S> {
    /// Run this statement and answer with what happened.
    Run(S),
    /// Sleep this long, then answer `Next`.
    Wait(Duration),
    /// Hand this outcome to the core, then answer `Next`.
    Report(Outcome),
    /// A line for the log (info), then answer `Next`.
    Note(String),
    /// A failure for the log (a warning), then answer `Next`.
    Warn(String),
    /// The machine is done (its outcome was reported).
    End,
}
