//! The demotion of a write instance's server (`read_only = ON`), as a step machine
//! without I/O: what a fence that fails leads to.
//!
//! One [`Statement::Fence`] is one attempt: `read_only = ON`, with what holds it up
//! killed while it waits, and (with `on_hung = "kill"`) the server itself killed when it
//! answers nothing for the hung bound. How an attempt is made is the executor's (the
//! guard's sweeps and timers, the model's simulated server); what follows each outcome
//! is here:
//! - fenced: said ([`Outcome::ReadOnly`]), done;
//! - a server that is not running cannot write: said at once ([`Outcome::ServerDown`]),
//!   so the write key can go to the successor, and the fence retried until it answers;
//! - a server that answers but refuses `read_only = ON` (the account lost its
//!   privilege) would stay writable beside the next master: with `on_hung = "kill"` it
//!   is killed, as a hung one is (its service manager restarts it read-only), once per
//!   demotion;
//! - anything else is retried every [`RETRY`], for as long as it takes: a server that
//!   must be read-only is never given up on (only a newer command, or the agent
//!   stopping, ends the demotion; that is the executor's).
use std::time::Duration;

use crate::role::{
    promotion::{Failure, RETRY},
    Outcome,
};

/// What the machine asks the executor to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    /// Is anything listening on the server's socket or port? [`Answer::Flag`].
    Listening,
    /// One fence attempt; `may_kill`: a server that answers nothing for the hung bound
    /// is killed ([`Answer::Killed`]).
    Fence { may_kill: bool },
    /// Kill the server's process (it refused `read_only = ON`).
    Kill,
}

/// The executor's answer to the last [`Step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The first call, or after a [`Step::Wait`] or [`Step::Report`].
    Next,
    Flag(bool),
    /// `read_only = ON` landed.
    Fenced {
        killed: usize,
        in_doubt: usize,
        took: Duration,
    },
    /// The server's process was killed (hung during a fence attempt, or by
    /// [`Statement::Kill`]).
    Killed {
        pid: u32,
        process: String,
    },
    /// The server answered nothing for the hung bound and could not be killed (the
    /// error): waited for (when it resumes it is writable until the fence lands).
    HungNotKilled(String),
    Failed(Failure),
}

/// What the machine wants next (a newer command may end the demotion at a wait).
pub type Step = super::step::Step<Statement>;

/// How long a server that must be fenced may answer nothing before `on_hung = "kill"`
/// kills it: well inside the peer's [`super::promotion::PEER_HUNG`], which starts
/// counting no earlier than this fence (the peer takes over on this node's priority-0
/// advert, sent after it).
pub const HUNG_KILL: Duration = Duration::from_millis(500);

/// How often a server not yet said down is looked at while a retry waits.
pub const LISTEN_POLL: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Listening,
    /// Waiting to retry, looking at the server every LISTEN_POLL (`left` to go).
    Polling,
    PollListening,
    Fence,
    Kill,
    /// Said the outcome of an attempt; the wait before the next follows.
    Retry,
    Done,
}

/// One demotion, from `Command::Demote` until fenced (or a newer command).
#[derive(Clone, Debug)]
pub struct Demotion {
    term: u64,
    phase: Phase,
    /// One kill per demotion: a server restarted by its service manager starts
    /// read-only (my.cnf) and is only waited for.
    may_kill: bool,
    said_down: bool,
    tries: u32,
    /// Of the wait before the next attempt.
    left: Duration,
}

impl Demotion {
    /// `may_kill`: `on_hung = "kill"`.
    pub fn new(term: u64, may_kill: bool) -> Self {
        Self {
            term,
            phase: Phase::Listening,
            may_kill,
            said_down: false,
            tries: 0,
            left: Duration::ZERO,
        }
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    /// Failed attempts so far (the executor gives up after some when the agent stops).
    pub fn tries(&self) -> u32 {
        self.tries
    }

    fn run(&mut self, phase: Phase, s: Statement) -> Step {
        self.phase = phase;
        Step::Run(s)
    }

    fn fence(&mut self) -> Step {
        let may_kill = self.may_kill;
        self.run(Phase::Fence, Statement::Fence { may_kill })
    }

    /// Waits [`RETRY`], then tries again; until the server is said down, it is looked
    /// at every [`LISTEN_POLL`] meanwhile (a killed mysqld keeps its socket open for a
    /// moment while the kernel tears the process down).
    fn wait(&mut self) -> Step {
        if self.said_down {
            self.phase = Phase::Listening;
            return Step::Wait(RETRY);
        }
        self.left = RETRY;
        self.phase = Phase::Polling;
        Step::Wait(LISTEN_POLL)
    }

    fn retry(&mut self) -> Step {
        self.tries += 1;
        self.wait()
    }

    /// The next step, given the answer to the last one.
    pub fn step(&mut self, answer: Answer) -> Step {
        use Answer as A;
        match (self.phase, answer) {
            (Phase::Done, _) => Step::End,
            // A server that is not running is said once; until then, looked at before
            // every attempt (a killed mysqld keeps its socket open while the kernel
            // tears the process down).
            (Phase::Listening, A::Next) if self.said_down => self.fence(),
            (Phase::Listening, A::Next) => self.run(Phase::Listening, Statement::Listening),
            (Phase::Listening, A::Flag(false)) => {
                self.said_down = true;
                Step::Report(Outcome::ServerDown { term: self.term })
            }
            (Phase::Listening, _) => self.fence(),
            (Phase::Polling, _) => self.run(Phase::PollListening, Statement::Listening),
            (Phase::PollListening, A::Flag(false)) => {
                // Said now; tried again at once (it fails fast on a dead server).
                self.said_down = true;
                self.phase = Phase::Listening;
                Step::Report(Outcome::ServerDown { term: self.term })
            }
            (Phase::PollListening, _) => {
                self.left = self.left.saturating_sub(LISTEN_POLL);
                if self.left.is_zero() {
                    return self.fence();
                }
                self.phase = Phase::Polling;
                Step::Wait(LISTEN_POLL)
            }
            (
                Phase::Fence,
                A::Fenced {
                    killed,
                    in_doubt,
                    took,
                },
            ) => {
                self.phase = Phase::Done;
                Step::Report(Outcome::ReadOnly {
                    term: self.term,
                    killed,
                    in_doubt,
                    took,
                })
            }
            (Phase::Fence | Phase::Kill, A::Killed { pid, process }) => {
                self.may_kill = false;
                self.tries += 1;
                self.phase = Phase::Retry;
                Step::Report(Outcome::ServerKilled {
                    term: self.term,
                    pid,
                    process,
                })
            }
            (Phase::Fence, A::HungNotKilled(e)) => {
                self.may_kill = false;
                self.tries += 1;
                self.phase = Phase::Retry;
                Step::Warn(format!(
                    "the server must be read-only and has answered nothing, but it could not be killed: waiting for it (when it resumes it is writable until the fence lands): {e}"
                ))
            }
            // Answers, and refuses: killed as a hung server is, once.
            (Phase::Fence, A::Failed(f)) if f.refused && self.may_kill => {
                self.may_kill = false;
                self.run(Phase::Kill, Statement::Kill)
            }
            (Phase::Fence, A::Failed(f)) if f.refused => {
                self.tries += 1;
                self.phase = Phase::Retry;
                Step::Warn(format!(
                    "the server refused read_only = ON: it stays writable until the privilege is back (`xvrrpd grants`): {}",
                    f.error
                ))
            }
            (Phase::Kill, A::Failed(f)) => {
                self.tries += 1;
                self.phase = Phase::Retry;
                Step::Warn(format!(
                    "the server refused read_only = ON and could not be killed: it stays writable until the privilege is back: {}",
                    f.error
                ))
            }
            (Phase::Fence, A::Failed(f)) => {
                // Said now and then, not at every retry.
                if self.tries.is_multiple_of(25) {
                    self.tries += 1;
                    self.phase = Phase::Retry;
                    return Step::Warn(format!(
                        "demotion (read_only = ON): retrying until the server answers: {}",
                        f.error
                    ));
                }
                self.retry()
            }
            (Phase::Retry, _) => self.wait(),
            (phase, other) => {
                // A bug in the executor: the fence is tried again, never given up.
                debug_assert!(false, "answer {other:?} does not fit phase {phase:?}");
                self.retry()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fenced() -> Answer {
        Answer::Fenced {
            killed: 2,
            in_doubt: 1,
            took: Duration::from_millis(4),
        }
    }

    fn failed(refused: bool) -> Answer {
        Answer::Failed(Failure {
            refused,
            error: "ERROR 1227".into(),
        })
    }

    /// Steps through waits and polls (the server listening) until the next fence
    /// attempt: its `may_kill`.
    fn next_attempt(d: &mut Demotion, mut a: Answer) -> bool {
        for _ in 0..100 {
            match d.step(a) {
                Step::Run(Statement::Fence { may_kill }) => return may_kill,
                Step::Run(Statement::Listening) => a = Answer::Flag(true),
                Step::Wait(_) | Step::Warn(_) | Step::Report(_) => a = Answer::Next,
                other => panic!("{other:?}"),
            }
        }
        panic!("no attempt");
    }

    #[test]
    fn a_fence_that_lands_is_said_and_ends_the_demotion() {
        let mut d = Demotion::new(5, true);
        assert_eq!(d.step(Answer::Next), Step::Run(Statement::Listening));
        assert_eq!(
            d.step(Answer::Flag(true)),
            Step::Run(Statement::Fence { may_kill: true })
        );
        assert_eq!(
            d.step(fenced()),
            Step::Report(Outcome::ReadOnly {
                term: 5,
                killed: 2,
                in_doubt: 1,
                took: Duration::from_millis(4)
            })
        );
        assert_eq!(d.step(Answer::Next), Step::End);
    }

    /// A server that is not running is said down at once (the write key can go), and
    /// the fence is tried again until it answers; a server dying during the wait is
    /// seen within a poll.
    #[test]
    fn a_server_that_is_gone_is_said_down_once_and_fenced_when_back() {
        let mut d = Demotion::new(5, false);
        d.step(Answer::Next);
        assert_eq!(
            d.step(Answer::Flag(false)),
            Step::Report(Outcome::ServerDown { term: 5 })
        );
        assert!(!next_attempt(&mut d, Answer::Next));
        // Refused connections: waits RETRY, no more looks, tries again.
        assert_eq!(
            d.step(failed(false)),
            Step::Warn(
                "demotion (read_only = ON): retrying until the server answers: ERROR 1227".into()
            )
        );
        assert_eq!(d.step(Answer::Next), Step::Wait(RETRY));
        assert_eq!(
            d.step(Answer::Next),
            Step::Run(Statement::Fence { may_kill: false })
        );
        assert_eq!(d.step(failed(false)), Step::Wait(RETRY));
        assert_eq!(d.tries(), 2);

        // Up at first, then gone while the retry waits: said within a poll.
        let mut d = Demotion::new(6, false);
        d.step(Answer::Next);
        d.step(Answer::Flag(true));
        d.step(failed(false));
        assert_eq!(d.step(Answer::Next), Step::Wait(LISTEN_POLL));
        assert_eq!(d.step(Answer::Next), Step::Run(Statement::Listening));
        assert_eq!(
            d.step(Answer::Flag(false)),
            Step::Report(Outcome::ServerDown { term: 6 })
        );
    }

    /// A server that answers and refuses read_only = ON would stay writable beside the
    /// next master: killed once (with on_hung = "kill"), then only waited for.
    #[test]
    fn a_refused_fence_kills_the_server_once() {
        let mut d = Demotion::new(5, true);
        assert!(next_attempt(&mut d, Answer::Next));
        assert_eq!(d.step(failed(true)), Step::Run(Statement::Kill));
        assert_eq!(
            d.step(Answer::Killed {
                pid: 42,
                process: "mariadbd".into()
            }),
            Step::Report(Outcome::ServerKilled {
                term: 5,
                pid: 42,
                process: "mariadbd".into()
            })
        );
        assert!(!next_attempt(&mut d, Answer::Next), "one kill per demotion");
        assert!(
            matches!(d.step(failed(true)), Step::Warn(w) if w.contains("refused read_only = ON"))
        );
        // Without on_hung = "kill": never killed.
        let mut d = Demotion::new(5, false);
        next_attempt(&mut d, Answer::Next);
        assert!(matches!(d.step(failed(true)), Step::Warn(_)));
    }

    #[test]
    fn a_hung_server_killed_during_an_attempt_is_not_killed_again() {
        let mut d = Demotion::new(5, true);
        assert!(next_attempt(&mut d, Answer::Next));
        let killed = Answer::Killed {
            pid: 42,
            process: "mariadbd".into(),
        };
        assert!(matches!(
            d.step(killed),
            Step::Report(Outcome::ServerKilled { .. })
        ));
        assert!(!next_attempt(&mut d, Answer::Next));
        assert_eq!(
            d.step(fenced()).clone(),
            Step::Report(Outcome::ReadOnly {
                term: 5,
                killed: 2,
                in_doubt: 1,
                took: Duration::from_millis(4)
            })
        );
        // Could not be killed: waited for, not killed in a loop.
        let mut d = Demotion::new(5, true);
        assert!(next_attempt(&mut d, Answer::Next));
        assert!(matches!(
            d.step(Answer::HungNotKilled("EPERM".into())),
            Step::Warn(_)
        ));
        assert!(!next_attempt(&mut d, Answer::Next));
    }
}
