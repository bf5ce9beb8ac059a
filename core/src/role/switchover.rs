//! A switchover's check, as a step machine without I/O: before the master fences
//! anything, its peer must replicate from it and hold, within the catch-up timeout,
//! what this server had executed and what the peer's own receiver had received at the
//! first look (a commit waiting for the semi-sync ACK is in the second and not yet in
//! the first). Otherwise the switchover is refused, saying why, and the master keeps
//! serving: a peer that took over without those transactions would serve without
//! writes this server acknowledged.
//!
//! The executor (the guard against real servers, the model against simulated ones)
//! answers each [`Step::Look`] with what it found; the first look's snapshot is its
//! business, the rules are here.
use std::time::Duration;

use crate::{
    engine::Instant,
    role::{
        promotion::{Failure, PEER_HUNG, PEER_POLL},
        Outcome,
    },
};

/// What one look at the peer found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holds {
    /// It replicates from this server and holds what the first look saw.
    Yes,
    /// It does not replicate from this server (threads stopped, or no source): waiting
    /// changes nothing. The reason, for the operator.
    Never(String),
    /// It still lacks `missing` of those transactions (`names`).
    Behind { missing: u64, names: String },
}

/// The executor's answer to the last [`Step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The first call, or after a [`Step::Wait`] or [`Step::Report`].
    Next,
    Looked(Holds),
    /// The peer (or this server) could not be read.
    Failed(Failure),
}

/// What the check wants next.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Look at the peer (and, the first time, at this server).
    Look,
    /// Sleep this long, then answer [`Answer::Next`].
    Wait(Duration),
    /// Hand this outcome to the core ([`Outcome::PeerReady`]), then answer
    /// [`Answer::Next`]: [`Step::End`] follows.
    Report(Outcome),
    End,
}

/// One switchover check, from `Command::ReadyPeer` to its outcome.
#[derive(Clone, Debug)]
pub struct Check {
    term: u64,
    start: Instant,
    deadline: Instant,
    done: bool,
}

impl Check {
    /// A check for the guard term `term`, begun at `now`: the peer has the catch-up
    /// timeout (at least [`PEER_HUNG`]: a peer that merely answers slowly is not refused
    /// at once) to hold what this server held.
    pub fn new(term: u64, now: Instant, catchup_timeout: Duration) -> Self {
        Self {
            term,
            start: now,
            deadline: now.after(catchup_timeout.max(PEER_HUNG)),
            done: false,
        }
    }

    /// The next step, given the answer to the last one.
    pub fn step(&mut self, now: Instant, answer: Answer) -> Step {
        if self.done {
            return Step::End;
        }
        let late = now >= self.deadline;
        let took = Duration::from_nanos(now.0.saturating_sub(self.start.0));
        match answer {
            Answer::Next => Step::Look,
            Answer::Looked(Holds::Yes) => self.report(None),
            // Stopped replication does not restart by waiting.
            Answer::Looked(Holds::Never(why)) => self.report(Some(why)),
            Answer::Looked(Holds::Behind { missing, names }) if late => self.report(Some(format!(
                "BEHIND: the peer still lacks {missing} of this server's transactions after {took:?} ({names}): it would take over without them"
            ))),
            // A refusal (a privilege) does not change by waiting either.
            Answer::Failed(f) if late || f.refused => self.report(Some(format!(
                "the peer's server cannot be read: {}",
                f.error
            ))),
            Answer::Looked(Holds::Behind { .. }) | Answer::Failed(_) => Step::Wait(PEER_POLL),
        }
    }

    fn report(&mut self, refused: Option<String>) -> Step {
        self.done = true;
        Step::Report(Outcome::PeerReady {
            term: self.term,
            refused,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::tests::at;

    fn refused(step: &Step) -> Option<Option<String>> {
        match step {
            Step::Report(Outcome::PeerReady { refused, .. }) => Some(refused.clone()),
            _ => None,
        }
    }

    #[test]
    fn a_peer_that_catches_up_in_time_is_ready() {
        let mut c = Check::new(7, at(0), Duration::from_secs(2));
        assert_eq!(c.step(at(0), Answer::Next), Step::Look);
        let behind = Holds::Behind {
            missing: 3,
            names: "u:5-7".into(),
        };
        assert_eq!(c.step(at(1), Answer::Looked(behind)), Step::Wait(PEER_POLL));
        assert_eq!(c.step(at(21), Answer::Next), Step::Look);
        assert_eq!(
            refused(&c.step(at(22), Answer::Looked(Holds::Yes))),
            Some(None)
        );
        assert_eq!(c.step(at(23), Answer::Next), Step::End);
    }

    #[test]
    fn a_peer_still_behind_at_the_deadline_is_refused_with_the_count() {
        let mut c = Check::new(7, at(0), Duration::from_secs(2));
        let behind = || {
            Answer::Looked(Holds::Behind {
                missing: 3,
                names: "u:5-7".into(),
            })
        };
        assert_eq!(c.step(at(1_999), behind()), Step::Wait(PEER_POLL));
        let why = refused(&c.step(at(2_000), behind())).flatten().unwrap();
        assert!(why.starts_with("BEHIND: the peer still lacks 3"), "{why}");
        assert!(why.contains("u:5-7"), "{why}");
    }

    #[test]
    fn a_peer_that_does_not_replicate_is_refused_at_once() {
        let mut c = Check::new(7, at(0), Duration::from_secs(2));
        let why = refused(&c.step(at(1), Answer::Looked(Holds::Never("stopped".into()))));
        assert_eq!(why, Some(Some("stopped".into())));
    }

    /// A peer that cannot be read is asked again until the deadline (at least
    /// PEER_HUNG, whatever the catch-up timeout), unless the server refused: then at
    /// once.
    #[test]
    fn an_unreadable_peer_is_refused_at_the_deadline_or_at_once_when_refused() {
        let lost = |refused| {
            Answer::Failed(Failure {
                refused,
                error: "lost".into(),
            })
        };
        let mut c = Check::new(7, at(0), Duration::from_millis(100));
        assert_eq!(c.step(at(999), lost(false)), Step::Wait(PEER_POLL));
        let why = refused(&c.step(at(1_000), lost(false))).flatten().unwrap();
        assert!(why.contains("cannot be read: lost"), "{why}");
        let mut c = Check::new(7, at(0), Duration::from_secs(2));
        assert!(refused(&c.step(at(1), lost(true))).flatten().is_some());
    }
}
