//! The promotion of a write instance's server, as a step machine without I/O.
//!
//! Every rule of a promotion lives here: catch-up within `catchup_timeout`, the look at
//! the peer's server (never two writable servers), the data-currency rule (a server
//! becomes writable only holding every transaction the peer may have acknowledged),
//! and the order of the safety steps before writes. The machine asks for one
//! [`Statement`] at a time; whoever runs it (the guard against real servers, the model
//! against simulated ones) answers with what happened, failures included, and every
//! answer has a rule: a safety step that fails blocks what it protects, reported as
//! [`Outcome::Blocked`] with the step and the error.
use std::time::Duration;

use crate::{
    config::CatchupPolicy,
    engine::Instant,
    role::{Blocked, KeyTenure, Outcome, Standing},
};

/// How long a peer may stay silent (port open, no answer) before it counts as gone: a
/// hung server cannot take writes, but on a lossy link a live one is merely slow.
pub const PEER_HUNG: Duration = Duration::from_secs(1);
/// Between two looks at the peer's server (or at the comparison with it).
pub const PEER_POLL: Duration = Duration::from_millis(20);
/// Each statement's bound: a hung server must not wedge the guard.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Before a statement that failed for a passing reason is tried again.
pub const RETRY: Duration = Duration::from_millis(200);

/// What the machine asks the executor to run on the servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    /// Is this server's replication receiver started (running, or connecting to a peer
    /// it lost)? [`Answer::Flag`]; a failure counts as no.
    ReceiverStarted,
    /// Best effort, for liveness only: binlog dump threads of replicas that are gone
    /// are killed (semi-sync would hold the first commits for them). Any answer goes on.
    ReleaseDeadReplicas,
    /// Apply what reached this server, for a slice of time: [`Answer::CaughtUp`].
    CatchUpSlice,
    /// The peer's server, through this server's replication settings: [`Answer::Peer`].
    LookPeer,
    /// Both servers' executed transactions and write terms: [`Answer::Compared`].
    Compare,
    /// Start replicating from the peer (what this server lacks may be on its way; an
    /// applier stopped by hand is started with it).
    StartReplication,
    /// Did this server serve writes last, as far as its data knows? [`Answer::Flag`].
    ServedLast,
    /// The latest witness key tenure whose promotion this server's data holds:
    /// [`Answer::Number`] (0: none).
    KeyReceived,
    /// Stop replicating from the peer: a master replicates from nobody.
    StopReplication,
    /// Kill an earlier fence's connection abandoned inside the server (its
    /// `read_only = ON` could land after this promotion).
    KillAbandoned,
    /// Let the agent's account write the term while the server is read-only.
    AllowOwnWrites,
    /// The next write term, recorded beside the data (with the key tenure held, if
    /// any): [`Answer::Number`].
    BumpTerm { key: Option<u64> },
    /// `read_only = OFF`.
    SetWritable,
}

/// What the peer's server looked like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerLook {
    /// This server replicates from nobody: no peer to fence or to be behind.
    Alone,
    /// Read-only: nothing to fence.
    Fenced,
    /// Its MySQL port does not accept connections.
    Gone,
    /// Its port accepts connections but the server does not answer in time.
    Silent,
    /// It answers and is writable: it may still be the master (a false takeover).
    Writable,
    /// Reachable but not readable (with our credentials, or at all for now).
    Unknown(Failure),
}

/// A statement that failed: refused by the server (a privilege, a syntax: retrying
/// changes nothing), or anything else (a timeout, a lost connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub refused: bool,
    pub error: String,
}

/// The executor's answer to the last [`Step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The first call, or after a [`Step::Wait`], [`Step::Report`] or [`Step::Note`].
    Next,
    Ok,
    Flag(bool),
    Number(u64),
    /// The catch-up slice: done, or not yet; `target` names what it waits for, and
    /// `applying` says whether the applier runs (stopped, it never gets there).
    CaughtUp {
        reached: bool,
        target: String,
        applying: bool,
    },
    Peer(PeerLook),
    /// The comparison with the peer: this server's errant transactions (named), the
    /// peer's transactions it lacks (count and names; 0: none), and whether the rule
    /// lets it replicate from the peer.
    Compared {
        errant: Vec<String>,
        missing: u64,
        missing_names: String,
        replicate: bool,
    },
    Failed(Failure),
}

/// What the machine wants next.
pub type Step = super::step::Step<Statement>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Receiver,
    ReleaseFirst,
    CatchUp,
    StartApplier,
    CatchUpTimedOut,
    /// The peer was still writable at the deadline (reported).
    WritableAtDeadline,
    LookPeer,
    Compare,
    StartReplication,
    ServedLast,
    KeyReceived,
    ReleaseBeforeWrites,
    StopReplication,
    KillAbandoned,
    AllowOwnWrites,
    BumpTerm,
    SetWritable,
    Done,
}

/// One promotion, from `Command::Promote` to its outcome.
#[derive(Clone, Debug)]
pub struct Promotion {
    term: u64,
    key: Option<KeyTenure>,
    policy: CatchupPolicy,
    start: Instant,
    deadline: Instant,
    phase: Phase,
    /// The receiver was started when the promotion began.
    replicated: bool,
    /// The applier was started once (stopping again, it has an error: not restarted in
    /// a loop; the catch-up deadline decides).
    applier_started: bool,
    /// Catch-up did not finish (or the peer stayed writable) and the policy promotes
    /// anyway.
    forced: bool,
    target: String,
    silent_since: Option<Instant>,
    said_writable: bool,
    /// The comparison's own deadline (at least [`PEER_HUNG`] after it began).
    compare_until: Option<Instant>,
    write_term: Option<u64>,
}

impl Promotion {
    pub fn new(
        term: u64,
        key: Option<KeyTenure>,
        now: Instant,
        catchup_timeout: Duration,
        policy: CatchupPolicy,
    ) -> Self {
        Self {
            term,
            key,
            policy,
            start: now,
            deadline: now.after(catchup_timeout),
            phase: Phase::Receiver,
            replicated: false,
            applier_started: false,
            forced: false,
            target: "unknown".into(),
            silent_since: None,
            said_writable: false,
            compare_until: None,
            write_term: None,
        }
    }

    fn run(&mut self, phase: Phase, s: Statement) -> Step {
        self.phase = phase;
        Step::Run(s)
    }

    fn block(&mut self, step: &str, error: String) -> Step {
        self.phase = Phase::Done;
        Step::Report(Outcome::Blocked {
            term: self.term,
            blocked: Blocked {
                step: step.into(),
                error,
            },
        })
    }

    fn peer_gone(&mut self) -> Step {
        // The peer is gone: only a server that was receiving its writes, or that served
        // writes last itself, can vouch for holding them.
        if self.key.and_then(|k| k.peer).is_some() {
            if !self.replicated {
                return self.block(
                    CURRENCY,
                    "this server was not replicating from the peer, which held the write key after it and is gone now: it cannot vouch for holding what the peer acknowledged".into(),
                );
            }
            return self.run(Phase::KeyReceived, Statement::KeyReceived);
        }
        if !self.replicated {
            return self.run(Phase::ServedLast, Statement::ServedLast);
        }
        self.before_writes()
    }

    fn before_writes(&mut self) -> Step {
        self.run(Phase::ReleaseBeforeWrites, Statement::ReleaseDeadReplicas)
    }

    /// The next step, given the answer to the last one.
    pub fn step(&mut self, now: Instant, answer: Answer) -> Step {
        use Answer as A;
        match (self.phase, answer) {
            (Phase::Done, _) => Step::End,
            (Phase::Receiver, A::Next) => self.run(Phase::Receiver, Statement::ReceiverStarted),
            (Phase::Receiver, a) => {
                // Whether this server was replicating from the peer when the promotion
                // began: if the peer turns out gone, only a server that was receiving
                // its writes (or served writes last itself) can vouch for them.
                self.replicated = a == A::Flag(true);
                self.run(Phase::ReleaseFirst, Statement::ReleaseDeadReplicas)
            }
            (Phase::ReleaseFirst, _) => self.catch_up(now),
            (
                Phase::CatchUp,
                A::CaughtUp {
                    reached,
                    target,
                    applying,
                },
            ) => {
                self.target = target;
                if reached {
                    self.look_peer()
                } else if !applying && !self.applier_started && now < self.deadline {
                    self.applier_started = true;
                    // Stopped (by hand, say) with the peer's transactions received and not
                    // applied: waiting changes nothing, and they may be acknowledged
                    // writes. Both threads: MariaDB's GTID mode discards the relay log
                    // when its applier starts, and the receiver fetches it again.
                    self.run(Phase::StartApplier, Statement::StartReplication)
                } else {
                    self.catch_up(now)
                }
            }
            (Phase::CatchUp, A::Next) => self.catch_up(now),
            (Phase::StartApplier, A::Failed(f)) if f.refused => self.block(
                "start the applier for the peer's transactions this server received, before writes",
                f.error,
            ),
            (Phase::StartApplier, A::Failed(_)) => {
                self.phase = Phase::CatchUp;
                Step::Wait(RETRY)
            }
            (Phase::StartApplier, _) => self.catch_up(now),
            (Phase::CatchUp, _) => {
                // A failure: tried again after a pause (until the deadline).
                self.phase = Phase::CatchUp;
                Step::Wait(RETRY)
            }
            (Phase::CatchUpTimedOut, _) => {
                if self.policy == CatchupPolicy::StayBackup {
                    self.phase = Phase::Done;
                    return Step::End;
                }
                self.forced = true;
                self.look_peer()
            }
            (Phase::WritableAtDeadline, _) => {
                if self.policy == CatchupPolicy::StayBackup {
                    self.phase = Phase::Done;
                    return Step::End;
                }
                self.forced = true;
                self.peer_gone()
            }
            (Phase::LookPeer, A::Peer(look)) => self.peer_looked(now, look),
            (Phase::LookPeer, A::Next) => self.look_peer(),
            (Phase::LookPeer, A::Failed(f)) => self.peer_looked(now, PeerLook::Unknown(f)),
            (Phase::Compare, A::Next) => self.run(Phase::Compare, Statement::Compare),
            (
                Phase::Compare,
                A::Compared {
                    errant,
                    missing,
                    missing_names,
                    replicate,
                },
            ) => {
                let late = self.compare_late(now);
                if !errant.is_empty() {
                    self.phase = Phase::Done;
                    return Step::Report(Outcome::Standing {
                        term: self.term,
                        standing: Standing::Divergent { errant },
                    });
                }
                if missing == 0 {
                    return self.before_writes();
                }
                if late {
                    return self.block(
                        CURRENCY,
                        format!("BEHIND: {missing} transactions missing from the peer ({missing_names})"),
                    );
                }
                // They may be on their way (the receiver fetching them): make sure it
                // runs, then look again.
                if replicate {
                    return self.run(Phase::StartReplication, Statement::StartReplication);
                }
                self.phase = Phase::Compare;
                Step::Wait(PEER_POLL)
            }
            (Phase::Compare, A::Failed(f)) => {
                if self.compare_late(now) {
                    return self.block(
                        "compare transactions with the peer before writes",
                        f.error,
                    );
                }
                self.phase = Phase::Compare;
                Step::Wait(PEER_POLL)
            }
            (Phase::StartReplication, A::Failed(f)) => self.block(
                "replicate the peer's transactions before writes",
                f.error,
            ),
            (Phase::StartReplication, _) => {
                self.phase = Phase::Compare;
                Step::Wait(PEER_POLL)
            }
            (Phase::ServedLast, A::Flag(true)) => self.before_writes(),
            (Phase::ServedLast, A::Flag(false)) => self.block(
                CURRENCY,
                "this server was not replicating from the peer when the peer was lost, and the peer served writes after it: it cannot vouch for holding them".into(),
            ),
            (Phase::ServedLast, A::Failed(f)) => {
                self.block("read this server's write terms before writes", f.error)
            }
            (Phase::KeyReceived, A::Number(got)) => {
                let peer_key = self.key.and_then(|k| k.peer).unwrap_or(0);
                if got >= peer_key {
                    return self.before_writes();
                }
                // Replicating now is not enough: cut off from the peer since before its
                // promotion (a partition), the receiver only tried to connect, and the
                // peer's semi-sync fell back to async. Its promotion's row under that
                // key, arrived here, shows this server was receiving after the peer
                // began writing.
                self.block(
                    CURRENCY,
                    format!(
                        "the peer held the write key (fencing term {peer_key}) and is gone now, and this server holds no write of that tenure (the latest it received is {}): it was not receiving when the peer served writes",
                        if got == 0 { "none".to_string() } else { got.to_string() }
                    ),
                )
            }
            (Phase::KeyReceived, A::Failed(f)) => self.block(
                "read which of the peer's key tenures this server received",
                f.error,
            ),
            // A master replicates from nobody: what the old master commits from now on
            // (a commit the fence kills in flight, an async commit of a cut-off master)
            // is errant, and its row images would silently overwrite what this one
            // acknowledges. Stopped before the first write can be taken, after
            // catch-up; if it cannot be stopped, the server does not become writable.
            (Phase::ReleaseBeforeWrites, _) => {
                self.run(Phase::StopReplication, Statement::StopReplication)
            }
            (Phase::StopReplication, A::Failed(f)) => {
                self.block("stop replicating from the peer before writes", f.error)
            }
            (Phase::StopReplication, _) => {
                self.run(Phase::KillAbandoned, Statement::KillAbandoned)
            }
            (Phase::KillAbandoned, A::Failed(f)) => self.block(
                "kill an earlier fence's connection (its read_only = ON could land after this promotion)",
                f.error,
            ),
            // The term goes in first, while the server is still read-only for everyone
            // else, so no client's write can precede the term that orders it. Without it
            // two masters that meet cannot tell who served writes last: not recorded,
            // not writable.
            (Phase::KillAbandoned, _) => {
                self.run(Phase::AllowOwnWrites, Statement::AllowOwnWrites)
            }
            (Phase::AllowOwnWrites, A::Failed(f)) => {
                self.block("let the agent write the term while read-only", f.error)
            }
            (Phase::AllowOwnWrites, _) => {
                let key = self.key.map(|k| k.own);
                self.run(Phase::BumpTerm, Statement::BumpTerm { key })
            }
            (Phase::BumpTerm, A::Number(t)) => {
                self.write_term = Some(t);
                self.run(Phase::SetWritable, Statement::SetWritable)
            }
            (Phase::BumpTerm, A::Failed(f)) => {
                self.block("record the write term beside the data", f.error)
            }
            (Phase::SetWritable, A::Ok) => {
                self.phase = Phase::Done;
                Step::Report(Outcome::Writable {
                    term: self.term,
                    catchup: Duration::from_nanos(now.0.saturating_sub(self.start.0)),
                    target: self.target.clone(),
                    forced: self.forced,
                    write_term: self.write_term,
                })
            }
            (Phase::SetWritable, A::Failed(f)) if f.refused => {
                self.block("make the server writable", f.error)
            }
            (Phase::SetWritable, A::Failed(_)) => {
                self.phase = Phase::SetWritable;
                Step::Wait(RETRY)
            }
            (Phase::SetWritable, A::Next) => {
                self.run(Phase::SetWritable, Statement::SetWritable)
            }
            (phase, other) => {
                // A bug in the executor: never a promotion without its outcome.
                debug_assert!(false, "answer {other:?} does not fit phase {phase:?}");
                self.block(
                    "run the promotion",
                    format!("internal error: answer {other:?} in phase {phase:?}"),
                )
            }
        }
    }

    fn catch_up(&mut self, now: Instant) -> Step {
        if now >= self.deadline {
            self.phase = Phase::CatchUpTimedOut;
            return Step::Report(Outcome::CatchupTimeout {
                term: self.term,
                target: self.target.clone(),
            });
        }
        self.run(Phase::CatchUp, Statement::CatchUpSlice)
    }

    /// Never two writable servers: a peer that still answers as writable is most
    /// likely still the master (this node took over on lost adverts, not on a failure)
    /// and its advert will send this node back to backup. Wait for it to be fenced or
    /// gone.
    fn look_peer(&mut self) -> Step {
        self.run(Phase::LookPeer, Statement::LookPeer)
    }

    fn peer_looked(&mut self, now: Instant, look: PeerLook) -> Step {
        if look != PeerLook::Silent {
            self.silent_since = None;
        }
        let late = now >= self.deadline;
        match look {
            // A peer that answers (read-only) is compared with: this server becomes
            // writable only if it holds every transaction the peer may have
            // acknowledged, and never while it holds transactions of its own the peer,
            // which served writes after it, never received.
            PeerLook::Fenced => {
                self.compare_until = Some(self.deadline.max(now.after(PEER_HUNG)));
                self.run(Phase::Compare, Statement::Compare)
            }
            // A peer that is gone costs no extra wait: what reached this node is applied.
            PeerLook::Alone | PeerLook::Gone => self.peer_gone(),
            PeerLook::Silent => {
                let since = *self.silent_since.get_or_insert(now);
                if now.0.saturating_sub(since.0) >= PEER_HUNG.as_nanos() as u64 {
                    self.peer_gone()
                } else {
                    self.phase = Phase::LookPeer;
                    Step::Wait(PEER_POLL)
                }
            }
            // Refused for want of a privilege: it will not change by waiting.
            PeerLook::Unknown(f) if f.refused || late => self.block(
                "read the peer's server before writes (is it still writable, which transactions does it hold)",
                f.error,
            ),
            PeerLook::Unknown(_) => {
                self.phase = Phase::LookPeer;
                Step::Wait(PEER_POLL)
            }
            PeerLook::Writable if late => {
                // Reported; then the policy: stay a backup, or promote anyway.
                self.target = "peer still writable".into();
                self.phase = Phase::WritableAtDeadline;
                Step::Report(Outcome::CatchupTimeout {
                    term: self.term,
                    target: self.target.clone(),
                })
            }
            PeerLook::Writable => {
                self.phase = Phase::LookPeer;
                if !self.said_writable {
                    self.said_writable = true;
                    return Step::Note(
                        "the peer's server is still writable: waiting until it is fenced or gone"
                            .into(),
                    );
                }
                Step::Wait(PEER_POLL)
            }
        }
    }

    fn compare_late(&self, now: Instant) -> bool {
        self.compare_until.is_some_and(|u| now >= u)
    }
}

/// The step every data-currency block names.
const CURRENCY: &str = "hold every transaction the peer may have acknowledged before writes";

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MS: u64 = 1_000_000;

    fn promotion(key: Option<KeyTenure>) -> Promotion {
        Promotion::new(
            7,
            key,
            Instant(0),
            Duration::from_secs(2),
            CatchupPolicy::StayBackup,
        )
    }

    /// The answer a healthy pair gives: everything succeeds, the peer is read-only and
    /// holds nothing this server lacks.
    fn healthy(s: &Statement) -> Answer {
        match s {
            Statement::ReceiverStarted | Statement::ServedLast => Answer::Flag(true),
            Statement::CatchUpSlice => Answer::CaughtUp {
                reached: true,
                target: "1-1-10".into(),
                applying: true,
            },
            Statement::LookPeer => Answer::Peer(PeerLook::Fenced),
            Statement::Compare => Answer::Compared {
                errant: vec![],
                missing: 0,
                missing_names: String::new(),
                replicate: true,
            },
            Statement::KeyReceived => Answer::Number(5),
            Statement::BumpTerm { .. } => Answer::Number(3),
            _ => Answer::Ok,
        }
    }

    /// Runs the machine to its end, answering with `answer`; the statements asked, in
    /// order, and the outcomes reported.
    fn drive(
        p: &mut Promotion,
        mut answer: impl FnMut(&Statement, u64) -> Answer,
    ) -> (Vec<Statement>, Vec<Outcome>) {
        let (mut asked, mut reported) = (Vec::new(), Vec::new());
        let (mut now, mut a) = (0, Answer::Next);
        for _ in 0..10_000 {
            a = match p.step(Instant(now), a) {
                Step::Run(s) => {
                    let r = answer(&s, now);
                    asked.push(s);
                    now += MS;
                    r
                }
                Step::Wait(d) => {
                    now += d.as_nanos() as u64;
                    Answer::Next
                }
                Step::Note(_) | Step::Warn(_) => Answer::Next,
                Step::Report(o) => {
                    reported.push(o);
                    Answer::Next
                }
                Step::End => return (asked, reported),
            };
        }
        panic!("the promotion never ended: {asked:?}");
    }

    #[test]
    fn a_promotion_runs_the_safety_steps_in_order_then_reports_writable() {
        let key = KeyTenure { own: 4, peer: None };
        let (asked, reported) = drive(&mut promotion(Some(key)), |s, _| healthy(s));
        use Statement as S;
        assert_eq!(
            asked,
            vec![
                S::ReceiverStarted,
                S::ReleaseDeadReplicas,
                S::CatchUpSlice,
                S::LookPeer,
                S::Compare,
                S::ReleaseDeadReplicas,
                S::StopReplication,
                S::KillAbandoned,
                S::AllowOwnWrites,
                S::BumpTerm { key: Some(4) },
                S::SetWritable,
            ]
        );
        assert!(
            matches!(
                &reported[..],
                [Outcome::Writable {
                    term: 7,
                    write_term: Some(3),
                    forced: false,
                    ..
                }]
            ),
            "{reported:?}"
        );
    }

    #[test]
    fn a_server_behind_an_answering_peer_replicates_then_is_blocked_at_the_deadline() {
        let (asked, reported) = drive(&mut promotion(None), |s, _| match s {
            Statement::Compare => Answer::Compared {
                errant: vec![],
                missing: 16_152,
                missing_names: "2-2-1..2-2-16152".into(),
                replicate: true,
            },
            s => healthy(s),
        });
        assert!(asked.contains(&Statement::StartReplication));
        assert!(!asked.contains(&Statement::SetWritable), "{asked:?}");
        match &reported[..] {
            [Outcome::Blocked { blocked, .. }] => {
                assert!(
                    blocked
                        .error
                        .starts_with("BEHIND: 16152 transactions missing"),
                    "{blocked:?}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_survivor_that_never_received_the_peers_key_tenure_is_blocked() {
        let key = KeyTenure {
            own: 9,
            peer: Some(8),
        };
        let (asked, reported) = drive(&mut promotion(Some(key)), |s, _| match s {
            Statement::LookPeer => Answer::Peer(PeerLook::Gone),
            Statement::KeyReceived => Answer::Number(6),
            s => healthy(s),
        });
        assert!(!asked.contains(&Statement::SetWritable), "{asked:?}");
        assert!(
            matches!(&reported[..], [Outcome::Blocked { blocked, .. }] if blocked.error.contains("fencing term 8")),
            "{reported:?}"
        );
        // Received: it promotes.
        let (asked, _) = drive(&mut promotion(Some(key)), |s, _| match s {
            Statement::LookPeer => Answer::Peer(PeerLook::Gone),
            Statement::KeyReceived => Answer::Number(8),
            s => healthy(s),
        });
        assert_eq!(asked.last(), Some(&Statement::SetWritable));
    }

    /// A DBA stopped replication with the peer's transactions received and not yet
    /// applied: the promotion starts the applier and waits for them; if the applier may
    /// not be started, it is blocked, saying why.
    #[test]
    fn an_applier_stopped_by_hand_is_started_before_writes() {
        let mut applying = false;
        let (asked, _) = drive(&mut promotion(None), |s, _| match s {
            Statement::CatchUpSlice => Answer::CaughtUp {
                reached: applying,
                target: "1-1-501".into(),
                applying,
            },
            Statement::StartReplication => {
                applying = true;
                Answer::Ok
            }
            s => healthy(s),
        });
        let started = asked.iter().position(|s| *s == Statement::StartReplication);
        let looked = asked.iter().position(|s| *s == Statement::LookPeer);
        assert!(started.is_some() && started < looked, "{asked:?}");
        assert_eq!(asked.last(), Some(&Statement::SetWritable));

        let (asked, reported) = drive(&mut promotion(None), |s, _| match s {
            Statement::CatchUpSlice => Answer::CaughtUp {
                reached: false,
                target: "1-1-501".into(),
                applying: false,
            },
            Statement::StartReplication => Answer::Failed(Failure {
                refused: true,
                error: "ERROR 1227: Access denied; you need the REPLICATION SLAVE ADMIN privilege"
                    .into(),
            }),
            s => healthy(s),
        });
        assert!(!asked.contains(&Statement::SetWritable), "{asked:?}");
        assert!(
            matches!(&reported[..], [Outcome::Blocked { blocked, .. }] if blocked.step.contains("received") && blocked.error.contains("1227")),
            "{reported:?}"
        );
    }

    #[test]
    fn a_peer_still_writable_at_the_deadline_leaves_this_server_read_only() {
        let (asked, reported) = drive(&mut promotion(None), |s, _| match s {
            Statement::LookPeer => Answer::Peer(PeerLook::Writable),
            s => healthy(s),
        });
        assert!(!asked.contains(&Statement::SetWritable));
        assert!(
            matches!(&reported[..], [Outcome::CatchupTimeout { target, .. }] if target == "peer still writable"),
            "{reported:?}"
        );
    }

    fn failure() -> impl Strategy<Value = Answer> {
        (any::<bool>(), "[a-z]{1,8}")
            .prop_map(|(refused, error)| Answer::Failed(Failure { refused, error }))
    }

    proptest! {
        /// Any statement may fail, for any reason, any number of times: the server is
        /// made writable only after replication from the peer was stopped, the term
        /// written and (with the peer answering) nothing found missing; every
        /// promotion ends with exactly one final outcome; a failed safety step is
        /// reported as a block naming it.
        #[test]
        fn every_statement_may_fail_and_nothing_unsafe_follows(
            fails in proptest::collection::vec(proptest::option::of(failure()), 1..40),
            peer in prop_oneof![
                Just(PeerLook::Fenced), Just(PeerLook::Gone), Just(PeerLook::Silent),
                Just(PeerLook::Writable), Just(PeerLook::Alone)
            ],
            missing in 0u64..3,
            key in proptest::option::of((1u64..5, proptest::option::of(1u64..5))),
            received in 0u64..6,
            replicated in any::<bool>(),
            applier_stopped in any::<bool>(),
        ) {
            let key = key.map(|(own, peer)| KeyTenure { own, peer });
            // A passing failure is retried for ever (until a newer command): one success
            // in the cycle lets every run end.
            let mut fails = fails;
            fails.push(None);
            let mut n = 0;
            let mut stopped = false;
            let mut term_written = false;
            let mut compared_clean = false;
            let mut looked = None;
            let mut applying = !applier_stopped;
            let (asked, reported) = drive(&mut promotion(key), |s, _| {
                n += 1;
                let a = match fails.get(n % fails.len()).cloned().flatten() {
                    Some(f) if !matches!(s, Statement::ReleaseDeadReplicas) => f,
                    _ => match s {
                        Statement::ReceiverStarted => Answer::Flag(replicated),
                        Statement::LookPeer => Answer::Peer(peer.clone()),
                        Statement::Compare => Answer::Compared {
                            errant: vec![],
                            missing,
                            missing_names: "x".into(),
                            replicate: true,
                        },
                        Statement::KeyReceived => Answer::Number(received),
                        Statement::CatchUpSlice => Answer::CaughtUp {
                            reached: applying,
                            target: "x".into(),
                            applying,
                        },
                        s => healthy(s),
                    },
                };
                if (s, &a) == (&Statement::StartReplication, &Answer::Ok) {
                    applying = true;
                }
                match (s, &a) {
                    (Statement::StopReplication, Answer::Ok) => stopped = true,
                    (Statement::BumpTerm { .. }, Answer::Number(_)) => term_written = true,
                    (Statement::Compare, Answer::Compared { missing: 0, errant, .. }) if errant.is_empty() => compared_clean = true,
                    (Statement::LookPeer, Answer::Peer(p)) => looked = Some(p.clone()),
                    _ => {}
                }
                if *s == Statement::SetWritable {
                    assert!(stopped, "read_only = OFF before replication was stopped");
                    assert!(term_written, "read_only = OFF before the term was written");
                    assert!(applying, "read_only = OFF with the relay log not applied");
                    if looked == Some(PeerLook::Fenced) {
                        assert!(compared_clean, "read_only = OFF without holding the peer's transactions");
                    }
                }
                a
            });
            let finals = reported.iter().filter(|o| !matches!(o, Outcome::CatchupTimeout { .. })).count();
            prop_assert!(finals <= 1, "{reported:?}");
            if let Some(Outcome::Writable { .. }) = reported.last() {
                prop_assert_eq!(asked.last(), Some(&Statement::SetWritable));
            }
        }
    }
}
