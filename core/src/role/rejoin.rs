//! A node that is not master, as a step machine without I/O: it compares its server
//! with the peer's, replicates from the peer when the rule says so
//! ([`crate::mysql::divergence::rejoin`]), gets rid of errant transactions when the
//! policy says so, and reports its [`Standing`] after every look, until a newer command.
//!
//! Every step that keeps the node current or lets it promote safely can fail, and each
//! failure has a rule: a refused or broken replication, or a statement a promotion needs
//! refused, is [`Standing::Blocked`] with the step and the error (out of the election);
//! a peer that cannot be read decides nothing (replication is left as it is, and only
//! the awaited term, in the local data, decides readiness). Nothing is called rejoined
//! before replication is verified running.
//!
//! The executor (the guard against real servers, the model against simulated ones)
//! runs each [`Statement`]; the looks' sets are its business (it keeps the peer's set of
//! the last look it was told to keep), the rules are here.
use std::time::Duration;

use crate::{
    engine::Instant,
    role::{
        promotion::{Failure, RETRY},
        Blocked, Outcome, Standing,
    },
};

/// Between two looks at the local write term while waiting for the winner's.
pub const TERM_POLL: Duration = Duration::from_millis(100);
/// Between two comparisons with the peer (a divergent server rejoins by itself this
/// long after it is rebuilt).
pub const REJOIN_POLL: Duration = Duration::from_secs(2);
/// A backup is behind when it still lacks the peer's transactions of a look at least
/// this old: a replica keeping up applies them in milliseconds.
pub const BEHIND_AFTER: Duration = Duration::from_secs(1);

/// What the machine asks the executor to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    /// Does this server answer? [`Answer::Flag`].
    ServerUp,
    /// Compare both servers' executed transactions and write terms:
    /// [`Answer::Compared`], or [`Answer::Alone`] when this server replicates from no
    /// peer. With `rebase`, what this server still lacks of the peer's set kept from an
    /// earlier look is reported as `behind`, and this look's peer set is kept instead.
    Compare { rebase: bool },
    /// Start (true) or stop (false) replicating from the peer, if not so already.
    Replicate(bool),
    /// Get rid of the errant transactions the last comparison found, as the policy
    /// says (flashback, clone; quarantine does nothing): [`Answer::Flag`], true when
    /// they are gone.
    Undo,
    /// Do both replica threads run (the receiver may still be connecting without an
    /// error)?
    ReplicationRuns,
    /// Does the account hold every privilege a promotion needs?
    PromotionAllowed,
    /// Does this server's data hold the awaited write term? [`Answer::Flag`].
    HoldsTerm(u64),
}

/// The executor's answer to the last [`Step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The first call, or after a [`Step::Wait`], [`Step::Report`] or
    /// [`Step::CannotCompare`].
    Next,
    Ok,
    Flag(bool),
    /// This server replicates from no peer: nothing to compare with, current.
    Alone,
    Compared {
        /// This server's errant transactions (named): non-empty means divergent.
        errant: Vec<String>,
        /// The rule lets it replicate from the peer.
        replicate: bool,
        /// With `rebase` and a kept set: the peer's transactions of that look still
        /// missing here (count, names); None when none are.
        behind: Option<(u64, String)>,
    },
    Failed(Failure),
}

/// What the machine wants next. It never ends by itself: a newer command ends it.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Run(Statement),
    /// Sleep this long (a newer command ends the sleep), then answer [`Answer::Next`].
    Wait(Duration),
    /// Hand this outcome ([`Outcome::Standing`], every look) to the core; `changed`
    /// when it differs from the last one said (the log says it then). Then answer
    /// [`Answer::Next`].
    Report {
        outcome: Outcome,
        changed: bool,
    },
    /// The peer could not be compared with, with an error not said before (the log says
    /// it). Then answer [`Answer::Next`].
    CannotCompare(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    ServerUp,
    Compare,
    /// A comparison's error was said; the look goes on.
    ErrorSaid,
    Replicate,
    Undo,
    ReplicationRuns,
    PromotionAllowed,
    HoldsTerm,
    /// Reported; the wait follows.
    Reported,
    /// Waiting for the next look (or the first).
    Waiting,
}

/// One rejoin, from `Command::Rejoin` until a newer command.
#[derive(Clone, Debug)]
pub struct Rejoin {
    term: u64,
    await_term: Option<u64>,
    phase: Phase,
    /// The last standing said.
    said: Option<Standing>,
    last_error: String,
    /// When the executor last kept the peer's set (a look to judge `behind` against).
    kept_at: Option<Instant>,
    // This look:
    rebase: bool,
    compared: bool,
    replicate: bool,
    errant: Vec<String>,
    /// Judged this look: Some(None) current, Some(Some(..)) behind; None: not judged.
    behind: Option<Option<(u64, String)>>,
    blocked: Option<Blocked>,
}

impl Rejoin {
    pub fn new(term: u64, await_term: Option<u64>) -> Self {
        Self {
            term,
            await_term,
            phase: Phase::Waiting,
            said: None,
            last_error: String::new(),
            kept_at: None,
            rebase: false,
            compared: false,
            replicate: false,
            errant: Vec::new(),
            behind: None,
            blocked: None,
        }
    }

    fn run(&mut self, phase: Phase, s: Statement) -> Step {
        self.phase = phase;
        Step::Run(s)
    }

    fn look(&mut self) -> Step {
        self.compared = false;
        self.replicate = false;
        self.errant.clear();
        self.behind = None;
        self.blocked = None;
        self.run(Phase::ServerUp, Statement::ServerUp)
    }

    /// The next step, given the answer to the last one.
    pub fn step(&mut self, now: Instant, answer: Answer) -> Step {
        use Answer as A;
        match (self.phase, answer) {
            (Phase::Waiting, _) => self.look(),
            (Phase::ServerUp, A::Flag(true)) => {
                self.rebase = self
                    .kept_at
                    .is_none_or(|at| now.0.saturating_sub(at.0) >= BEHIND_AFTER.as_nanos() as u64);
                self.run(
                    Phase::Compare,
                    Statement::Compare {
                        rebase: self.rebase,
                    },
                )
            }
            (Phase::ServerUp, _) => {
                // The server is down: what was said of it no longer holds (it may have
                // lost what it held, and the peer may serve writes meanwhile); said anew
                // once it answers. Divergent stays divergent.
                if !matches!(self.said, Some(Standing::Divergent { .. })) {
                    self.said = None;
                }
                self.phase = Phase::Waiting;
                Step::Wait(RETRY)
            }
            // A server that replicates from nobody has no peer to be behind: it is
            // compared with nothing, and current.
            (Phase::Compare, A::Alone) => {
                self.compared = true;
                self.last_error.clear();
                self.kept_at = None;
                self.run(Phase::Replicate, Statement::Replicate(false))
            }
            (
                Phase::Compare,
                A::Compared {
                    errant,
                    replicate,
                    behind,
                },
            ) => {
                self.compared = true;
                self.last_error.clear();
                if self.rebase {
                    if self.kept_at.is_some() {
                        self.behind = Some(behind);
                    }
                    self.kept_at = Some(now);
                }
                self.errant = errant;
                self.replicate = replicate;
                self.run(Phase::Replicate, Statement::Replicate(replicate))
            }
            (Phase::Compare, A::Failed(f)) => {
                // Replication is left as it is. Divergent stays divergent until a
                // comparison says otherwise: with its peer gone, this data lacks the
                // peer's writes as well.
                if let Some(Standing::Divergent { errant }) = &self.said {
                    self.errant = errant.clone();
                }
                if f.error != self.last_error {
                    self.last_error = f.error.clone();
                    self.phase = Phase::ErrorSaid;
                    return Step::CannotCompare(f.error);
                }
                self.after_replication()
            }
            (Phase::ErrorSaid, _) => self.after_replication(),
            (Phase::Replicate, A::Failed(f)) => {
                self.blocked = Some(Blocked {
                    step: if self.replicate {
                        "replicate from the peer"
                    } else {
                        "stop replicating from the peer (its own transactions must not reach this server)"
                    }
                    .into(),
                    error: f.error,
                });
                self.conclude()
            }
            (Phase::Replicate, _) if !self.errant.is_empty() => {
                self.run(Phase::Undo, Statement::Undo)
            }
            // Verified running before the node may be called rejoined.
            (Phase::Replicate, _) if self.replicate => {
                self.run(Phase::ReplicationRuns, Statement::ReplicationRuns)
            }
            (Phase::Replicate, _) => self.after_replication(),
            // Gone: a new look at once finds none, and replicates.
            (Phase::Undo, A::Flag(true)) => self.look(),
            (Phase::Undo, _) => self.after_replication(),
            (Phase::ReplicationRuns, A::Failed(f)) => {
                self.blocked = Some(Blocked {
                    step: "replicate from the peer".into(),
                    error: f.error,
                });
                self.conclude()
            }
            (Phase::ReplicationRuns, _) => self.after_replication(),
            (Phase::PromotionAllowed, A::Failed(f)) => {
                self.blocked = Some(Blocked {
                    step: "hold the privileges a promotion needs".into(),
                    error: f.error,
                });
                self.conclude()
            }
            (Phase::PromotionAllowed, _) => self.conclude(),
            (Phase::HoldsTerm, A::Flag(true)) => self.say(Standing::Ready),
            (Phase::HoldsTerm, _) => self.say(Standing::Waiting),
            (Phase::Reported, _) => {
                self.phase = Phase::Waiting;
                Step::Wait(if self.said == Some(Standing::Waiting) {
                    TERM_POLL
                } else {
                    REJOIN_POLL
                })
            }
            (phase, other) => {
                // A bug in the executor: said as a block, never as readiness.
                debug_assert!(false, "answer {other:?} does not fit phase {phase:?}");
                self.blocked = Some(Blocked {
                    step: "look at the servers".into(),
                    error: format!("internal error: answer {other:?} in phase {phase:?}"),
                });
                self.conclude()
            }
        }
    }

    /// Whether or not the peer could be compared: a node whose promotion would be
    /// refused halfway must not be in the election.
    fn after_replication(&mut self) -> Step {
        if self.errant.is_empty() && self.blocked.is_none() {
            return self.run(Phase::PromotionAllowed, Statement::PromotionAllowed);
        }
        self.conclude()
    }

    fn conclude(&mut self) -> Step {
        if !self.errant.is_empty() {
            let errant = self.errant.clone();
            return self.say(Standing::Divergent { errant });
        }
        if let Some(b) = self.blocked.clone() {
            return self.say(Standing::Blocked(b));
        }
        match self.await_term {
            None if !self.compared => self.say(Standing::Uncompared),
            None => self.say(Standing::Ready),
            Some(t) => self.run(Phase::HoldsTerm, Statement::HoldsTerm(t)),
        }
    }

    /// Reports `standing` (every look: the core may wait for a fresh one), made
    /// [`Standing::Behind`] when ready but still lacking the peer's transactions of the
    /// kept look (or, not judged this look, as last said).
    fn say(&mut self, standing: Standing) -> Step {
        let standing = match (standing, &self.behind, &self.said) {
            (Standing::Ready, Some(Some((missing, names))), _) => Standing::Behind {
                missing: *missing,
                names: names.clone(),
            },
            (Standing::Ready, None, Some(b @ Standing::Behind { .. })) => b.clone(),
            (s, _, _) => s,
        };
        // Behind by another count is still behind: said once.
        let changed = match (&self.said, &standing) {
            (Some(Standing::Behind { .. }), Standing::Behind { .. }) => false,
            (was, now) => was.as_ref() != Some(now),
        };
        self.said = Some(standing.clone());
        self.phase = Phase::Reported;
        Step::Report {
            outcome: Outcome::Standing {
                term: self.term,
                standing,
            },
            changed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::tests::at;

    fn failed(refused: bool, error: &str) -> Answer {
        Answer::Failed(Failure {
            refused,
            error: error.into(),
        })
    }

    fn compared(errant: &[&str], replicate: bool, behind: Option<u64>) -> Answer {
        Answer::Compared {
            errant: errant.iter().map(|e| e.to_string()).collect(),
            replicate,
            behind: behind.map(|n| (n, format!("u:1-{n}"))),
        }
    }

    /// Runs one look from its start, answering each statement from `answer` (None:
    /// the step is not a statement): the standing reported and whether it changed.
    fn look(
        r: &mut Rejoin,
        now: u64,
        mut answer: impl FnMut(&Statement) -> Answer,
    ) -> (Standing, bool, Vec<Statement>) {
        let mut ran = Vec::new();
        let mut a = Answer::Next;
        for _ in 0..20 {
            match r.step(at(now), a) {
                Step::Run(s) => {
                    a = answer(&s);
                    ran.push(s);
                }
                Step::CannotCompare(_) => a = Answer::Next,
                Step::Report {
                    outcome: Outcome::Standing { standing, .. },
                    changed,
                } => {
                    // The wait that follows: short while waiting for a term.
                    let wait = if standing == Standing::Waiting {
                        TERM_POLL
                    } else {
                        REJOIN_POLL
                    };
                    assert_eq!(r.step(at(now), Answer::Next), Step::Wait(wait));
                    return (standing, changed, ran);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        panic!("no standing after 20 steps: {ran:?}");
    }

    /// Everything works: replicating, nothing errant, nothing behind.
    fn fine(s: &Statement) -> Answer {
        match s {
            Statement::ServerUp | Statement::HoldsTerm(_) => Answer::Flag(true),
            Statement::Compare { .. } => compared(&[], true, None),
            _ => Answer::Ok,
        }
    }

    #[test]
    fn a_replica_is_ready_only_once_its_replication_is_verified_running() {
        let mut r = Rejoin::new(3, None);
        let (standing, changed, ran) = look(&mut r, 0, fine);
        assert_eq!((standing, changed), (Standing::Ready, true));
        assert_eq!(
            ran,
            [
                Statement::ServerUp,
                Statement::Compare { rebase: true },
                Statement::Replicate(true),
                Statement::ReplicationRuns,
                Statement::PromotionAllowed,
            ]
        );
        // Said again every look, changed no more.
        assert_eq!(look(&mut r, 2_000, fine), (Standing::Ready, false, ran));
    }

    /// Every failure of a step that keeps it current or lets it promote is a block
    /// naming the step, never readiness.
    #[test]
    fn a_failed_step_blocks_with_its_name() {
        for (fails, step) in [
            (Statement::Replicate(true), "replicate from the peer"),
            (Statement::ReplicationRuns, "replicate from the peer"),
            (
                Statement::PromotionAllowed,
                "hold the privileges a promotion needs",
            ),
        ] {
            let mut r = Rejoin::new(3, None);
            let (standing, _, _) = look(&mut r, 0, |s| {
                if *s == fails {
                    failed(true, "ERROR 1227")
                } else {
                    fine(s)
                }
            });
            assert_eq!(
                standing,
                Standing::Blocked(Blocked {
                    step: step.into(),
                    error: "ERROR 1227".into()
                }),
                "{fails:?}"
            );
        }
        // Stopping replication for errant transactions, refused: blocked too.
        let mut r = Rejoin::new(3, None);
        let (standing, _, _) = look(&mut r, 0, |s| match s {
            Statement::Compare { .. } => compared(&["1-1-9"], false, None),
            Statement::Replicate(false) => failed(true, "no"),
            s => fine(s),
        });
        assert!(
            matches!(&standing, Standing::Divergent { errant } if errant == &["1-1-9"]),
            "divergent first: {standing:?}"
        );
    }

    #[test]
    fn errant_transactions_undone_are_followed_by_a_new_look_at_once() {
        let mut r = Rejoin::new(3, None);
        let mut undone = false;
        let (standing, _, ran) = look(&mut r, 0, |s| match s {
            Statement::Compare { .. } if !undone => compared(&["1-1-9"], false, None),
            Statement::Undo => {
                undone = true;
                Answer::Flag(true)
            }
            s => fine(s),
        });
        assert_eq!(standing, Standing::Ready, "{ran:?}");
        assert_eq!(ran[4], Statement::ServerUp, "looked again: {ran:?}");
        // Not undone (quarantine, or refused): divergent, and it stays divergent while
        // the peer cannot be compared.
        let mut r = Rejoin::new(3, None);
        let (standing, _, _) = look(&mut r, 0, |s| match s {
            Statement::Compare { .. } => compared(&["1-1-9"], false, None),
            Statement::Undo => Answer::Flag(false),
            s => fine(s),
        });
        assert!(matches!(standing, Standing::Divergent { .. }));
        let (standing, _, _) = look(&mut r, 2_000, |s| match s {
            Statement::Compare { .. } => failed(false, "gone"),
            s => fine(s),
        });
        assert!(matches!(standing, Standing::Divergent { .. }));
    }

    /// A peer that cannot be read: said once, replication left as it is, and the
    /// node is uncompared (or, awaiting a term, ready once its data holds it).
    #[test]
    fn a_peer_that_cannot_be_compared_decides_nothing() {
        let mut r = Rejoin::new(3, None);
        let mut said = 0;
        let mut a = Answer::Next;
        let mut ran = Vec::new();
        loop {
            match r.step(at(0), a) {
                Step::Run(s) => {
                    a = match &s {
                        Statement::Compare { .. } => failed(false, "gone"),
                        s => fine(s),
                    };
                    ran.push(s);
                }
                Step::CannotCompare(e) => {
                    assert_eq!(e, "gone");
                    said += 1;
                    a = Answer::Next;
                }
                Step::Report {
                    outcome: Outcome::Standing { standing, .. },
                    ..
                } => {
                    assert_eq!(standing, Standing::Uncompared);
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(said, 1);
        assert!(
            !ran.iter().any(|s| matches!(s, Statement::Replicate(_))),
            "{ran:?}"
        );
        let mut r = Rejoin::new(3, Some(7));
        let (standing, _, _) = look(&mut r, 0, |s| match s {
            Statement::Compare { .. } => failed(false, "gone"),
            Statement::HoldsTerm(7) => Answer::Flag(false),
            s => fine(s),
        });
        assert_eq!(standing, Standing::Waiting);
    }

    #[test]
    fn behind_is_judged_against_a_look_at_least_a_second_old_and_said_once() {
        let mut r = Rejoin::new(3, None);
        let lagging = |s: &Statement| match s {
            Statement::Compare { .. } => compared(&[], true, Some(40)),
            s => fine(s),
        };
        // The first look keeps the peer's set: nothing to judge against yet.
        let (standing, _, ran) = look(&mut r, 0, lagging);
        assert_eq!(standing, Standing::Ready);
        assert_eq!(ran[1], Statement::Compare { rebase: true });
        // 500 ms later: not judged (too soon), the set not replaced.
        let (standing, _, ran) = look(&mut r, 500, lagging);
        assert_eq!(standing, Standing::Ready);
        assert_eq!(ran[1], Statement::Compare { rebase: false });
        // A second after the kept look: still lacking it.
        let (standing, changed, _) = look(&mut r, 1_000, lagging);
        assert_eq!(
            (standing, changed),
            (
                Standing::Behind {
                    missing: 40,
                    names: "u:1-40".into()
                },
                true
            )
        );
        // Not judged: as said. Judged with another count: behind, not said again.
        let (standing, changed, _) = look(&mut r, 1_500, lagging);
        assert!(matches!(standing, Standing::Behind { missing: 40, .. }) && !changed);
        let (standing, changed, _) = look(&mut r, 2_000, |s| match s {
            Statement::Compare { .. } => compared(&[], true, Some(3)),
            s => fine(s),
        });
        assert!(matches!(standing, Standing::Behind { missing: 3, .. }) && !changed);
        // Caught up.
        let (standing, changed, _) = look(&mut r, 3_000, fine);
        assert_eq!((standing, changed), (Standing::Ready, true));
    }
}
