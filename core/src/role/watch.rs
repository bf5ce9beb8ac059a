//! After a stay-backup catch-up timeout, as a step machine without I/O: the node stays
//! out of the election until what reached its server is applied, then says so
//! ([`Outcome::CaughtUp`]). It has no deadline: a lagging applier is waited for. An
//! applier found stopped (by hand, say) never gets there by waiting: replication is
//! started once, as a promotion does; refused, the watch ends blocked, naming the step
//! ([`Outcome::Blocked`]), and the rejoin's looks take over from there.
//!
//! It speaks the promotion's language ([`Statement`], [`Answer`], [`Step`]): the same
//! executor runs both.
use std::time::Duration;

use crate::{
    engine::Instant,
    role::{
        promotion::{Answer, Statement, Step, RETRY},
        Blocked, Outcome,
    },
};

/// Between two catch-up slices while the applier is stopped (started, or not yet
/// running again).
pub const WAIT_SLICE: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Slice,
    Start,
    Done,
}

/// One watch, from `Command::WatchCatchup` to its outcome.
#[derive(Clone, Debug)]
pub struct Watch {
    term: u64,
    phase: Phase,
    /// Replication was started once already.
    started: bool,
}

impl Watch {
    pub fn new(term: u64) -> Self {
        Self {
            term,
            phase: Phase::Slice,
            started: false,
        }
    }

    fn done(&mut self, outcome: Outcome) -> Step {
        self.phase = Phase::Done;
        Step::Report(outcome)
    }

    /// The next step, given the answer to the last one (the time is not needed: no
    /// deadline).
    pub fn step(&mut self, _now: Instant, answer: Answer) -> Step {
        match (self.phase, answer) {
            (Phase::Done, _) => Step::End,
            (Phase::Slice, Answer::Next) => Step::Run(Statement::CatchUpSlice),
            (Phase::Slice, Answer::CaughtUp { reached: true, .. }) => {
                self.done(Outcome::CaughtUp { term: self.term })
            }
            (
                Phase::Slice,
                Answer::CaughtUp {
                    applying: false, ..
                },
            ) if !self.started => {
                self.started = true;
                self.phase = Phase::Start;
                Step::Run(Statement::StartReplication)
            }
            (Phase::Slice, Answer::CaughtUp { .. }) => Step::Wait(WAIT_SLICE),
            // A server that does not answer: tried again after a pause.
            (Phase::Slice, _) => Step::Wait(RETRY),
            (Phase::Start, Answer::Failed(f)) if f.refused => self.done(Outcome::Blocked {
                term: self.term,
                blocked: Blocked {
                    step: "start replication to apply the relay log".into(),
                    error: f.error,
                },
            }),
            (Phase::Start, Answer::Failed(_)) => {
                // Tried again at the next stopped look.
                self.started = false;
                self.phase = Phase::Slice;
                Step::Wait(RETRY)
            }
            (Phase::Start, _) => {
                self.phase = Phase::Slice;
                Step::Wait(WAIT_SLICE)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::{promotion::Failure, tests::at};

    fn slice(reached: bool, applying: bool) -> Answer {
        Answer::CaughtUp {
            reached,
            target: "0-1-9".into(),
            applying,
        }
    }

    #[test]
    fn a_lagging_applier_is_waited_for_and_a_stopped_one_started_once() {
        let mut w = Watch::new(4);
        assert_eq!(
            w.step(at(0), Answer::Next),
            Step::Run(Statement::CatchUpSlice)
        );
        assert_eq!(w.step(at(1), slice(false, true)), Step::Wait(WAIT_SLICE));
        assert_eq!(
            w.step(at(2), Answer::Next),
            Step::Run(Statement::CatchUpSlice)
        );
        assert_eq!(
            w.step(at(3), slice(false, false)),
            Step::Run(Statement::StartReplication)
        );
        assert_eq!(w.step(at(4), Answer::Ok), Step::Wait(WAIT_SLICE));
        w.step(at(5), Answer::Next);
        // Stopped again (an error of its own): not started in a loop.
        assert_eq!(w.step(at(6), slice(false, false)), Step::Wait(WAIT_SLICE));
        w.step(at(7), Answer::Next);
        assert_eq!(
            w.step(at(8), slice(true, true)),
            Step::Report(Outcome::CaughtUp { term: 4 })
        );
        assert_eq!(w.step(at(9), Answer::Next), Step::End);
    }

    #[test]
    fn a_refused_start_blocks_naming_the_step() {
        let mut w = Watch::new(4);
        w.step(at(0), Answer::Next);
        w.step(at(1), slice(false, false));
        let refused = Answer::Failed(Failure {
            refused: true,
            error: "ERROR 1227".into(),
        });
        match w.step(at(2), refused) {
            Step::Report(Outcome::Blocked { term: 4, blocked }) => {
                assert_eq!(blocked.error, "ERROR 1227")
            }
            other => panic!("{other:?}"),
        }
    }
}
