//! One instance's decisions, sans I/O: the VRRP [engine](crate::engine) composed with
//! the *write role*, the part that keeps a MySQL server and its VIP safe.
//!
//! The rules, all here and nowhere in `run/`:
//! - **Fence first.** Whenever the instance leaves master (a better master, Fault,
//!   shutdown, switchover), the VIPs are removed and the server is fenced (`Demote`)
//!   before anything else is sent, the priority-0 advert included.
//! - **Writable before reachable.** Becoming master of a write instance asks the guard to
//!   promote (catch-up, then `read_only = OFF`); the VIPs, their announcement and the
//!   MASTER hooks wait for its `Writable` outcome of the current term.
//! - **Stay-backup.** A catch-up timeout under `stay-backup` puts the instance in FAULT
//!   until the guard reports the relay log applied; then it rejoins without an anti-flap
//!   hold (it never served writes in that term).
//! - **Switchover.** The guard first asks whether the peer can take over without an
//!   acknowledged write (refused otherwise, nothing fenced, the reason kept for
//!   `status`); then the master is fenced; it hands over (priority 0) only once the
//!   guard confirms the server is read-only. The promotion itself is
//!   [`promotion::Promotion`], the guard's step machine.
//! - **Two masters meet** (a partition healing, a frozen host resuming, a preemption):
//!   a writable master holds the other master's adverts and asks the guard to compare
//!   write terms. The node promoted last served writes last and keeps the role whatever
//!   the priorities; the other fences itself (FAULT) and stays out of the election until
//!   its data holds the winner's term (and, like any returning master, until it is found
//!   not divergent). Equal terms (a preempting node that replicated
//!   this master's promotion) or an unreadable peer leave it to VRRP.
//! - **Divergence.** Every fence of a node that is not master (any more) is followed by
//!   a [`Command::Rejoin`]: its guard compares the server's transactions with the peer's
//!   ([`crate::mysql::divergence`]) before it replicates again, and keeps looking. A
//!   server holding errant transactions (its own, never received by the peer that served
//!   writes after it) is [`Standing::Divergent`]: FAULT until they are gone; promotion
//!   refuses it too. A lost arbitration waits in the same command for the winner's term.
//! - **Witness.** With a witness (`[witness]`, [`crate::witness`]), promotion waits for
//!   the write key first (key, then catch-up, then `read_only = OFF`, then the VIPs);
//!   losing the key (unrenewed in time, or taken) fences the server at once (FAULT until
//!   the fence lands); leaving master stops renewing at once and frees the key once the
//!   fence is confirmed, so a successor need not wait.
//! - **Tracking.** The effective priority follows the trackers, the link and the
//!   maintenance flag; any of them failing hard means FAULT, and so does a write
//!   instance's own server failing its check.
//!
//! Guard commands carry terms; an outcome of a superseded term is ignored. Time comes in
//! with every input: nothing here reads a clock, touches a socket or spawns a task.
pub mod demotion;
#[cfg(test)]
mod model;
pub mod promotion;
pub mod rejoin;
pub mod step;
pub mod switchover;
#[cfg(test)]
mod tests;
pub mod watch;

use std::{net::IpAddr, time::Duration};

use crate::{
    config::CatchupPolicy,
    engine::{self, Input as VrrpInput, Instance, Instant, Settings, State},
    notify::Transition,
    track::{self, Contribution, Effective},
    witness::lease::{self, Lease, Want},
};

/// The write key's tenures a promotion concerns (with a witness). Fencing terms grow by
/// one per acquisition, so a gap since this node's last tenure was the peer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyTenure {
    /// The fencing term this node holds the key with: recorded beside the write term
    /// (`xvrrpd.promotion_key`), so the peer can later tell whether it received this
    /// tenure's writes.
    pub own: u64,
    /// The peer's latest tenure, when it held the key after this node last did: it may
    /// have served writes since. With the peer gone, this server must be replicating
    /// and hold the peer's promotion under that tenure (it was receiving then, not only
    /// now: a partition from before it lets the peer acknowledge writes this server
    /// never saw, semi-sync having fallen back to async).
    pub peer: Option<u64>,
}

/// What the core asks of the MySQL write guard. `term` identifies the request; the
/// outcome carries it back so a superseded outcome is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Catch up on what reached this node, then `read_only = OFF`. `key`: with a
    /// witness, the key tenures this promotion concerns.
    Promote { term: u64, key: Option<KeyTenure> },
    /// `read_only = ON` at once, whatever is in flight; client connections killed.
    Demote { term: u64 },
    /// A switchover was asked of this writable master: can the peer take over without
    /// a transaction this server acknowledged? Its server must replicate from this one
    /// and hold, within the catch-up timeout, everything this server held when asked.
    /// Nothing is fenced meanwhile: clients keep writing here.
    ReadyPeer { term: u64 },
    /// After a catch-up timeout under `stay-backup`: report when the relay log is applied.
    WatchCatchup { term: u64 },
    /// Two masters met: read the peer's write term and compare it with `own`, the term
    /// of this node's promotion (never the local row: replication may already have
    /// overwritten it with the peer's).
    Arbitrate { term: u64, own: u64 },
    /// The server is read-only and this node not master: compare its executed
    /// transactions with the peer's before it replicates again or rejoins the election
    /// ([`crate::mysql::divergence`]), replicate from the peer when that is safe, and keep
    /// looking. Report the [`Standing`] whenever it changes; `await_term` (after a lost
    /// arbitration): not `Ready` before this server's data holds the winner's term.
    Rejoin { term: u64, await_term: Option<u64> },
}

/// Where a node that is not master stands, as its guard's [`Command::Rejoin`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Not divergent (or the peer could not be compared), and the awaited term is in
    /// the data: it may take part in the election.
    Ready,
    /// Still waiting for the winner's term to arrive.
    Waiting,
    /// Nothing errant known and nothing blocked, but the peer could not be compared
    /// (unreachable): as Ready, except that it does not vouch for data the peer may
    /// have written meanwhile (a server that went down stays unverified).
    Uncompared,
    /// It holds transactions of its own that the peer, which served writes after it,
    /// never received (errant GTIDs, listed): read-only and out of the election until
    /// they are gone (rebuilt).
    Divergent { errant: Vec<String> },
    /// A step that keeps it current or lets it promote safely failed (replication from
    /// the peer refused or broken, a statement promotion needs refused): out of the
    /// election until a look finds it works.
    Blocked(Blocked),
    /// Ready, except that it still lacks peer transactions a look a poll earlier found
    /// (`missing` of them, `names`): its applier does not keep up (stopped by hand, held
    /// by a lock, a long transaction). It does not preempt a live master with them
    /// missing; it still takes over from a failed one, whose promotion catches up first.
    Behind { missing: u64, names: String },
}

/// A safety step that failed, and so blocks what it protects: the server stays
/// read-only and the instance out of the election, saying why. Never a warning followed
/// by the next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// What the step protects, e.g. "stop replicating from the peer before writes".
    pub step: String,
    /// The statement's error, or what was found instead (`BEHIND: N transactions
    /// missing from the peer`).
    pub error: String,
}

pub use crate::mysql::term::Verdict;

/// What the guard reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Writable {
        term: u64,
        catchup: Duration,
        target: String,
        forced: bool,
        /// The write term recorded beside the data ([`crate::mysql::term`]); None when
        /// it could not be written.
        write_term: Option<u64>,
    },
    CatchupTimeout {
        term: u64,
        target: String,
    },
    CaughtUp {
        term: u64,
    },
    Arbitrated {
        term: u64,
        verdict: Verdict,
    },
    Standing {
        term: u64,
        standing: Standing,
    },
    /// The server had to be fenced and answered nothing: its process was killed
    /// ([`crate::mysql::hung`]).
    ServerKilled {
        term: u64,
        pid: u32,
        process: String,
    },
    /// The errant transactions were undone ([`crate::mysql::flashback`]); the next look
    /// finds none and the node rejoins.
    Undone {
        term: u64,
        gtids: Vec<String>,
        archive: String,
    },
    /// A demotion found nothing listening where the server should be: it is not
    /// running, so it cannot write (the demotion goes on until it answers).
    ServerDown {
        term: u64,
    },
    /// A promotion stopped at a safety step that failed: the server is left read-only
    /// (or made so by the fence that follows).
    Blocked {
        term: u64,
        blocked: Blocked,
    },
    /// The switchover check: None, the peer can take over; otherwise why not.
    PeerReady {
        term: u64,
        refused: Option<String>,
    },
    ReadOnly {
        term: u64,
        /// Client connections killed.
        killed: usize,
        /// Of those, killed in the middle of a commit: committed here, their clients never
        /// told (error 2013), possibly never replicated.
        in_doubt: usize,
        /// From the statement to read_only in force.
        took: Duration,
    },
}

/// What the shell must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Log, count and stream a state change.
    Transition(Transition),
    /// Hand a transition to the notify hooks (a write instance's MASTER waits until the
    /// server is writable and the VIPs are up).
    Notify(Transition),
    SendAdvert {
        priority: u8,
    },
    SetLocalPriority {
        priority: u8,
    },
    AddVips,
    /// Send this request to the witness; its answer comes back as [`Input::Witness`].
    Witness(lease::Request),
    /// Remove the VIPs and stop announcing them.
    RemoveVips,
    /// Gratuitous ARP / unsolicited NA for the VIPs.
    Announce,
    /// The host stood still while master and the datapath refuses clients to the VIPs
    /// (see [`Input::Stalled`]): this master heard the peer out, it may serve again.
    ClearStall,
    Guard(Command),
    /// A write-role fact for the events stream and the log.
    Event(Event),
    /// Keep this across an agent restart (see [`Memory`]).
    Remember(Memory),
}

/// What an instance must not forget when its agent restarts (kept in a file under /run,
/// so it lasts as long as the boot and its monotonic clock): whether it was serving as
/// master, and until when it may not preempt. Without it, an agent killed on the master
/// comes back, wins on priority and fails back at once: one crash, two client-visible
/// failovers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Memory {
    /// It was master (for a write instance: with its server writable).
    pub master: bool,
    /// No preemption before this (monotonic ns).
    pub hold_until_ns: u64,
    /// A write instance that served writes and left mastership, its data not yet
    /// compared with the peer's (the peer may have served since): an agent restart must
    /// not forget it, or the node would rejoin the election on its own data alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unverified: bool,
}

/// Write-role facts worth an events-stream line.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Writable {
        catchup: Duration,
        target: String,
        forced: bool,
        write_term: Option<u64>,
    },
    CatchupTimeout {
        target: String,
        stay_backup: bool,
    },
    CaughtUp,
    /// Errant transactions found: out of the election until they are gone.
    Divergent {
        errant: Vec<String>,
    },
    /// The server was hung while it had to be fenced: its process was killed.
    ServerKilled {
        pid: u32,
        process: String,
    },
    /// A safety step failed: read-only and out of the election until it works.
    GuardBlocked(Blocked),
    /// Errant transactions undone and archived.
    ErrantUndone {
        gtids: Vec<String>,
        archive: String,
    },
    /// Another master was heard; the write terms decided.
    Arbitration {
        own: u64,
        verdict: Verdict,
    },
    ReadOnly {
        killed: usize,
        in_doubt: usize,
        took: Duration,
    },
    /// A switchover's fence landed; the master hands over now.
    SwitchoverFenced,
    /// This backup lacks peer transactions a look a poll earlier found: it does not
    /// preempt until they are applied.
    Behind {
        missing: u64,
        names: String,
    },
    /// A backup that was behind holds what the peer had: it may preempt again.
    Current,
    /// A switchover was refused before anything was fenced: the peer could not take over
    /// without losing acknowledged writes (behind, not replicating, not answering).
    SwitchoverRefused {
        reason: String,
    },
    /// The host stood still while this node served writes (a freeze, a stopped VM):
    /// clients are refused at the VIPs until the peer has been heard out.
    Stalled,
    /// Heard out: no other master, or one whose write terms say this one keeps the
    /// role. Clients are let through again.
    StallCleared,
    /// This node holds the write key as fencing term `term`.
    LeaseAcquired {
        term: u64,
    },
    /// This node's right to write under `term` ended.
    LeaseLost {
        term: u64,
        why: lease::Loss,
    },
}

/// What the instance's priority follows besides its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracking {
    pub link_ok: bool,
    pub maintenance: bool,
    pub trackers: Vec<Contribution>,
    /// Write instances: the check of the server the guard drives (`mysql.server`) passes.
    /// A write instance whose server is down or hung cannot serve writes: it is in FAULT
    /// (priority 0 from a master, so the peer takes over after Skew), and it rejoins the
    /// election once the check rises again, promoting the server anew if it wins.
    pub server_up: bool,
}

impl Default for Tracking {
    fn default() -> Self {
        Self {
            link_ok: true,
            maintenance: false,
            trackers: Vec::new(),
            server_up: true,
        }
    }
}

/// Inputs besides VRRP's own.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Adverts, master-down, ticks, start-up, shutdown.
    Vrrp(VrrpInput),
    /// Trackers, link or maintenance changed.
    Track { now: Instant, tracking: Tracking },
    /// The guard finished a step.
    Guard { now: Instant, outcome: Outcome },
    /// New settings from a reload (the instance keeps its state).
    Reconfigure {
        now: Instant,
        settings: Settings,
        policy: Option<CatchupPolicy>,
    },
    /// The witness answered the request in flight.
    Witness { now: Instant, answer: lease::Answer },
    /// The host stood still while master (the advert pacer found its own adverts late
    /// by more than the bound, or the datapath a client segment that late): the peer may
    /// have taken over meanwhile, and the datapath refuses clients at the VIPs until
    /// this node, listening one Master_Down_Interval, hears no other master or wins the
    /// write terms against it ([`Action::ClearStall`]).
    Stalled { now: Instant },
}

/// Why a switchover was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SwitchoverRefused {
    #[error("it is {0} here, not MASTER: run switchover on the master")]
    NotMaster(&'static str),
    #[error("a switchover is already under way")]
    Busy,
}

/// The MySQL side of a write instance.
#[derive(Clone, Debug)]
struct WriteRole {
    policy: CatchupPolicy,
    /// Term of the latest guard command.
    term: u64,
    /// The server is writable for the current master term: the VIPs may be up.
    writable: bool,
    /// The MASTER notification, held until the server is writable.
    pending_master: Option<Transition>,
    /// Out of the election (FAULT) until the guard reports the data caught up.
    block: Option<Block>,
    /// A switchover is fencing the server with this term.
    switchover_term: Option<u64>,
    /// The switchover check in flight (the guard command's term).
    switchover_check: Option<u64>,
    /// Why the latest switchover was refused (cleared by the next request).
    switchover_refused: Option<String>,
    /// The write term of this node's latest promotion (kept after it ends: the data
    /// holds it until a later promotion anywhere replaces it).
    write_term: Option<u64>,
    /// An arbitration in flight: its guard term and the master whose advert prompted it.
    arbitrating: Option<(u64, IpAddr)>,
    /// The last verdict on another master, and until when it stands.
    verdict: Option<(IpAddr, Verdict, Instant)>,
    /// Unknown verdicts in a row.
    unknowns: u32,
    /// The errant GTIDs its guard last reported (empty: none known).
    errant: Vec<String>,
    /// The safety step its guard last reported failing (None: none).
    blocked: Option<Blocked>,
    /// Behind the peer by this many transactions (named) at the guard's last look: no
    /// preemption meanwhile.
    behind: Option<(u64, String)>,
    /// The write lease, with a witness.
    lease: Option<Lease>,
    /// Master, waiting for the write key before it promotes.
    awaiting_lease: bool,
    /// The fencing term this node last acquired the write key with.
    own_key_term: Option<u64>,
    /// The peer's latest key tenure, when it held the key after this node last served
    /// writes under its own (the peer may have served writes since).
    peer_key: Option<u64>,
    /// Its server was writable as master since it last left mastership.
    served: bool,
    /// The key was lost while serving: the fence must land before this (2 × margin
    /// after the loss: the successor may write after that).
    fence_due: Option<Instant>,
    /// The host stood still while master: clients are refused at the VIPs, and the
    /// earliest the refusal may end (one Master_Down_Interval of listening).
    stall: Option<Instant>,
}

/// Why a write instance stays out of the election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    /// Catch-up timed out under `stay-backup`: until the relay log is applied.
    Catchup,
    /// It lost an arbitration to a master promoted later: until its data holds that
    /// master's term (it must not preempt back with data that lacks those writes).
    Superseded { peer: u64 },
    /// It holds errant transactions: until they are gone (the server rebuilt).
    Divergent,
    /// Its write key was lost while it served: until the fence lands.
    Witness,
    /// A safety step failed ([`Blocked`]): until the guard's look finds it works.
    Guard,
    /// Its server went down, or it left mastership after serving writes: until a look
    /// compares it with the peer again (it may lack what the peer acknowledged since).
    Unverified,
}

/// How long a verdict on another master stands before its adverts are arbitrated again
/// (a preemption that follows a heal must not be ignored forever).
const VERDICT_STANDS: Duration = Duration::from_secs(1);
/// How long an unreadable peer's verdict stands before the terms are asked for again.
const UNKNOWN_STANDS: Duration = Duration::from_millis(100);
/// Unreadable this many times in a row (~1 s): the peer's server is really out of
/// reach (a master whose server is dead is in FAULT, not advertising), VRRP decides.
pub const UNKNOWN_TRIES: u32 = 10;

impl WriteRole {
    /// The key tenures a promotion now concerns (None without a witness).
    fn key_tenure(&self) -> Option<KeyTenure> {
        self.own_key_term.map(|own| KeyTenure {
            own,
            peer: self.peer_key,
        })
    }

    fn command(&mut self, make: impl FnOnce(u64) -> Command) -> Action {
        self.term += 1;
        // Any new command supersedes an arbitration or a switchover check in flight.
        self.arbitrating = None;
        self.switchover_check = None;
        Action::Guard(make(self.term))
    }
}

/// One instance's decision core.
#[derive(Clone, Debug)]
pub struct Core {
    engine: Instance,
    write: Option<WriteRole>,
    tracking: Tracking,
}

impl Core {
    /// `policy` makes it a write instance (its `[instance.mysql]` catch-up policy).
    pub fn new(settings: Settings, policy: Option<CatchupPolicy>) -> Self {
        Self {
            engine: Instance::new(settings),
            write: policy.map(|policy| WriteRole {
                policy,
                term: 0,
                writable: false,
                pending_master: None,
                block: None,
                switchover_term: None,
                switchover_check: None,
                switchover_refused: None,
                write_term: None,
                arbitrating: None,
                verdict: None,
                unknowns: 0,
                errant: Vec::new(),
                blocked: None,
                behind: None,
                lease: None,
                awaiting_lease: false,
                own_key_term: None,
                peer_key: None,
                served: false,
                fence_due: None,
                stall: None,
            }),
            tracking: Tracking::default(),
        }
    }

    /// A write instance that may write only while it holds its write key (node `me`).
    pub fn set_witness(&mut self, me: &str, timing: lease::Timing) {
        if let Some(w) = &mut self.write {
            w.lease = Some(Lease::new(me, timing));
        }
    }

    /// Write instances with a witness: the fencing term held, if any.
    pub fn lease_term(&self) -> Option<u64> {
        self.write
            .as_ref()
            .and_then(|w| w.lease.as_ref())
            .and_then(Lease::term)
    }

    /// Write instances with a witness: master, waiting for the write key.
    pub fn awaiting_lease(&self) -> bool {
        self.write.as_ref().is_some_and(|w| w.awaiting_lease)
    }

    /// Write instances with a witness: the write key was lost while serving and the
    /// server is still not confirmed read-only after the time the successor waits. The
    /// shell withholds the systemd watchdog's ping then: a wedged agent gets killed.
    pub fn fence_overdue(&self, now: Instant) -> bool {
        self.write
            .as_ref()
            .and_then(|w| w.fence_due)
            .is_some_and(|due| now > due)
    }

    /// The guard is running: a write instance starts by fencing its server. It holds no
    /// VIP until it wins, so neither may its server take writes (a mysqld left writable
    /// by a crash is made read-only now).
    pub fn guard_started(&mut self) -> Vec<Action> {
        self.write
            .as_mut()
            .map(|w| w.command(|term| Command::Demote { term }))
            .into_iter()
            .collect()
    }

    pub fn engine(&self) -> &Instance {
        &self.engine
    }
    pub fn state(&self) -> State {
        self.engine.state()
    }
    /// Write instances: is the server writable for the current master term?
    pub fn writable(&self) -> Option<bool> {
        self.write.as_ref().map(|w| w.writable)
    }
    /// Write instances: the write term of this node's latest promotion.
    pub fn write_term(&self) -> Option<u64> {
        self.write.as_ref().and_then(|w| w.write_term)
    }
    /// Write instances: the errant GTIDs that keep the server out of the election.
    pub fn errant(&self) -> &[String] {
        self.write.as_ref().map_or(&[], |w| &w.errant)
    }
    /// May this master answer another host's claim on its VIP (announce it again)? A
    /// write instance does not while it compares write terms with another master, nor
    /// while the comparison says the other served writes later or could not tell: a
    /// stale master (a frozen host resuming) would pull clients back to a server about to
    /// be fenced, and what they write there is lost with its errant transactions.
    pub fn answers_claims(&self, now: Instant) -> bool {
        let Some(w) = &self.write else {
            return true;
        };
        if w.arbitrating.is_some() {
            return false;
        }
        match w.verdict {
            Some((_, v, until)) if now < until => {
                matches!(v, Verdict::Keep { .. } | Verdict::Vrrp)
            }
            _ => true,
        }
    }
    /// Write instances: the failed safety step that keeps it out of the election.
    pub fn guard_blocked(&self) -> Option<&Blocked> {
        self.write.as_ref().and_then(|w| w.blocked.as_ref())
    }
    /// Write instances: the peer transactions this backup is behind on (how many, which),
    /// while it holds off preempting.
    pub fn behind(&self) -> Option<(u64, &str)> {
        self.write
            .as_ref()
            .and_then(|w| w.behind.as_ref())
            .map(|(n, names)| (*n, names.as_str()))
    }
    /// Write instances: is it kept out of the election until the relay log is applied?
    pub fn blocked(&self) -> bool {
        self.write.as_ref().is_some_and(|w| w.block.is_some())
    }
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.engine.next_deadline(), self.write_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// When the shell must tick this core, its periodic adverts sent by the pacer (see
    /// [`crate::engine::Instance::next_wake`]): only the advert feed is coalesced.
    pub fn next_wake(&self) -> Option<Instant> {
        [self.engine.next_wake(), self.write_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn write_deadline(&self) -> Option<Instant> {
        let lease = self
            .write
            .as_ref()
            .and_then(|w| w.lease.as_ref())
            .map(Lease::next_deadline);
        let stall = self.write.as_ref().and_then(|w| w.stall);
        [lease, stall].into_iter().flatten().min()
    }
    /// Write instances: clients are refused at the VIPs after a stall (see
    /// [`Input::Stalled`]).
    pub fn stalled(&self) -> bool {
        self.write.as_ref().is_some_and(|w| w.stall.is_some())
    }

    /// Before start-up: what the previous agent left. A node that was master when its
    /// agent died lost mastership now, so the anti-flap hold starts now.
    pub fn restore(&mut self, memory: Memory, now: Instant) {
        let until = if memory.master {
            now.after(self.engine.settings.anti_flap)
        } else {
            Instant(memory.hold_until_ns)
        };
        self.engine.hold_preemption_until(until);
        // It served writes when its agent died, or had left without comparing since: the
        // peer may have served since.
        if let Some(w) = self
            .write
            .as_mut()
            .filter(|_| memory.master || memory.unverified)
        {
            w.block = Some(Block::Unverified);
        }
    }

    fn memory(&self) -> Memory {
        let master = self.engine.state() == State::Master && self.writable() != Some(false);
        Memory {
            master,
            hold_until_ns: self.engine.preempt_hold_until().0,
            unverified: self
                .write
                .as_ref()
                .is_some_and(|w| w.block == Some(Block::Unverified)),
        }
    }

    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        let before = self.memory();
        let mut out = Vec::new();
        // The lease's deadline first: an expired holder fences before anything else.
        let now = input_now(&input);
        self.lease(now, |l| l.tick(now), &mut out);
        match input {
            Input::Vrrp(i) => {
                let now = vrrp_now(&i);
                let held = match i {
                    VrrpInput::Advert { src, priority, .. } => {
                        self.screen(now, src, priority, &mut out)
                    }
                    _ => false,
                };
                if !held {
                    let actions = self.engine.handle(i);
                    self.drive(actions, now, &mut out);
                }
            }
            Input::Track { now, tracking } => {
                // Its server went down (crashed, killed, hung): what it holds is unknown
                // until a look compares it with the peer again. Without that look it must
                // not promote: the peer may have served writes meanwhile.
                if self.tracking.server_up && !tracking.server_up {
                    if let Some(w) = self.write.as_mut().filter(|w| w.block.is_none()) {
                        w.block = Some(Block::Unverified);
                    }
                }
                self.tracking = tracking;
                self.retrack(now, &mut out);
            }
            Input::Guard { now, outcome } => self.outcome(now, outcome, &mut out),
            Input::Witness { now, answer } => self.lease(now, |l| l.answer(answer, now), &mut out),
            Input::Reconfigure {
                now,
                settings,
                policy,
            } => {
                self.engine.settings = settings;
                if let (Some(w), Some(p)) = (&mut self.write, policy) {
                    w.policy = p;
                }
                self.retrack(now, &mut out);
            }
            Input::Stalled { now } => {
                let listen = self.engine.master_down_interval();
                if let Some(w) = self.write.as_mut() {
                    w.stall = Some(now.after(listen));
                    // A verdict from before the stall says nothing of what happened
                    // during it: the next advert of another master is arbitrated anew.
                    w.verdict = None;
                    out.push(Action::Event(Event::Stalled));
                }
            }
        }
        self.heard_out(now, &mut out);
        self.remember_changes(before, &mut out);
        out
    }

    /// After a stall: clients stay refused until this node, still master and writable,
    /// listened one Master_Down_Interval (a peer that took over meanwhile advertises
    /// within one interval) with no comparison of write terms in flight and none that
    /// says yield or could not tell. Leaving mastership ends it with the VIPs.
    fn heard_out(&mut self, now: Instant, out: &mut Vec<Action>) {
        let master = self.engine.state() == State::Master;
        let Some(w) = self.write.as_mut() else {
            return;
        };
        let Some(until) = w.stall else {
            return;
        };
        if !master || !w.writable {
            w.stall = None;
            return;
        }
        if now < until || w.arbitrating.is_some() {
            return;
        }
        if let Some((_, Verdict::Yield { .. } | Verdict::Unknown, stands)) = w.verdict {
            if now < stands {
                return;
            }
        }
        w.stall = None;
        out.push(Action::ClearStall);
        out.push(Action::Event(Event::StallCleared));
    }

    fn remember_changes(&self, before: Memory, out: &mut Vec<Action>) {
        let now = self.memory();
        if now != before {
            out.push(Action::Remember(now));
        }
    }

    /// A planned handover of a master. A write instance is fenced first (VIPs removed,
    /// `read_only = ON`, clients killed) and hands over once the guard confirms; others
    /// hand over at once.
    pub fn switchover(&mut self, now: Instant) -> Result<Vec<Action>, SwitchoverRefused> {
        if self.engine.state() != State::Master {
            return Err(SwitchoverRefused::NotMaster(self.engine.state().name()));
        }
        let before = self.memory();
        let mut out = Vec::new();
        match &mut self.write {
            None => {
                let actions = self.engine.handle(VrrpInput::Switchover { now });
                self.drive(actions, now, &mut out);
            }
            Some(w) if w.switchover_term.is_some() || w.switchover_check.is_some() => {
                return Err(SwitchoverRefused::Busy)
            }
            // Still promoting: nothing to hand over yet.
            Some(w) if !w.writable => return Err(SwitchoverRefused::Busy),
            // The peer is asked first; the fence waits for its answer.
            Some(w) => {
                w.switchover_refused = None;
                let check = w.command(|term| Command::ReadyPeer { term });
                if let Action::Guard(Command::ReadyPeer { term }) = check {
                    w.switchover_check = Some(term);
                }
                out.push(check);
            }
        }
        self.remember_changes(before, &mut out);
        Ok(out)
    }

    /// Why the latest switchover of this write instance was refused (None: it was not,
    /// or none was asked).
    pub fn switchover_refused(&self) -> Option<&str> {
        self.write.as_ref()?.switchover_refused.as_deref()
    }

    /// The switchover's fence, once the peer can take over: no client may reach the
    /// server while it is being fenced; the engine hands over when the fence landed.
    fn fence_for_switchover(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(w) = &mut self.write else {
            return;
        };
        out.push(Action::RemoveVips);
        w.writable = false;
        w.pending_master = None;
        let fence = w.command(|term| Command::Demote { term });
        if let Action::Guard(Command::Demote { term }) = fence {
            w.switchover_term = Some(term);
        }
        out.push(fence);
        // No more renewals: the key is freed once the fence is confirmed.
        self.lease(now, |l| l.want(Want::Drain, now), out);
    }

    /// A writable master hears another master (a partition healing, a frozen host
    /// resuming, a preemption): the node that was promoted last served writes last and
    /// keeps the role, whatever the priorities. The guard compares write terms; until
    /// it answers, that master's adverts are held (true: do not hand it to the engine).
    fn screen(&mut self, now: Instant, src: IpAddr, priority: u8, out: &mut Vec<Action>) -> bool {
        let beaten = self.engine.beats_us(src, priority);
        let master = self.engine.state() == State::Master;
        let Some(w) = &mut self.write else {
            return false;
        };
        let Some(own) = w
            .write_term
            .filter(|_| master && w.writable && priority > 0)
        else {
            return false;
        };
        match w.verdict {
            Some((s, v, until)) if s == src && now < until => {
                return match v {
                    Verdict::Keep { .. } => beaten,
                    Verdict::Vrrp => false,
                    Verdict::Yield { .. } => true,
                    Verdict::Unknown if w.unknowns < UNKNOWN_TRIES => true,
                    Verdict::Unknown => false,
                }
            }
            _ => {}
        }
        if w.arbitrating.is_none() {
            let cmd = w.command(|term| Command::Arbitrate { term, own });
            w.arbitrating = Some((w.term, src));
            out.push(cmd);
        }
        true
    }

    /// The engine's actions carried through the write role.
    fn drive(&mut self, mut actions: Vec<engine::Action>, now: Instant, out: &mut Vec<Action>) {
        // Fence first: leaving mastership removes the VIPs (and fences the server) before
        // the last advert goes out. A stable sort keeps everything else in order.
        actions.sort_by_key(|a| !matches!(a, engine::Action::RemoveVips));
        for a in actions {
            match a {
                engine::Action::Transition { from, to, reason } => {
                    let t = Transition {
                        from,
                        to,
                        priority: self.engine.priority(),
                        reason: reason.name(),
                        ts_ns: now.0,
                    };
                    out.push(Action::Transition(t.clone()));
                    match &mut self.write {
                        Some(w) if to == State::Master && !w.writable => w.pending_master = Some(t),
                        _ => out.push(Action::Notify(t)),
                    }
                }
                engine::Action::AddVips => {
                    // With a witness, the key is held (and renewed) while master.
                    self.lease(now, |l| l.want(Want::Hold, now), out);
                    match &mut self.write {
                        // Without it, promotion waits for the key (then as below).
                        Some(w)
                            if !w.writable
                                && w.lease.as_ref().is_some_and(|l| !l.may_write(now)) =>
                        {
                            w.awaiting_lease = true
                        }
                        // Catch-up and read_only = OFF first; the VIPs follow the outcome.
                        Some(w) if !w.writable => {
                            let key = w.key_tenure();
                            out.push(w.command(|term| Command::Promote { term, key }))
                        }
                        _ => out.push(Action::AddVips),
                    }
                }
                engine::Action::Announce => {
                    if self.write.as_ref().is_none_or(|w| w.writable) {
                        out.push(Action::Announce);
                    }
                }
                engine::Action::RemoveVips => {
                    out.push(Action::RemoveVips);
                    if let Some(w) = &mut self.write {
                        w.writable = false;
                        w.pending_master = None;
                        w.awaiting_lease = false;
                        out.push(w.command(|term| Command::Demote { term }));
                    }
                    // No more renewals; the key is freed once the fence is confirmed.
                    self.lease(now, |l| l.want(Want::Drain, now), out);
                }
                engine::Action::SendAdvert { priority } => {
                    out.push(Action::SendAdvert { priority })
                }
                engine::Action::SetLocalPriority { priority } => {
                    out.push(Action::SetLocalPriority { priority })
                }
            }
        }
    }

    /// Brings the engine in line with the trackers, the link, maintenance and a
    /// stay-backup block.
    fn retrack(&mut self, now: Instant, out: &mut Vec<Action>) {
        let t = &self.tracking;
        let server_down = self.write.is_some() && !t.server_up;
        let effective = if t.link_ok && !t.maintenance && !self.blocked() && !server_down {
            track::effective(self.engine.settings.priority, &t.trackers)
        } else {
            Effective::Fault
        };
        let mut actions = Vec::new();
        match effective {
            Effective::Fault => actions.extend(self.engine.handle(VrrpInput::Fault { now })),
            Effective::Priority(priority) => {
                if self.engine.state() == State::Fault {
                    actions.extend(self.engine.handle(VrrpInput::FaultCleared { now }));
                }
                actions.extend(self.engine.handle(VrrpInput::Priority { now, priority }));
            }
        }
        self.drive(actions, now, out);
    }

    fn outcome(&mut self, now: Instant, outcome: Outcome, out: &mut Vec<Action>) {
        let master = self.engine.state() == State::Master;
        let Some(w) = &mut self.write else {
            return;
        };
        let current = w.term;
        match outcome {
            Outcome::Writable {
                term,
                catchup,
                target,
                forced,
                write_term,
            } if term == current && master => {
                w.writable = true;
                w.served = true;
                // Its own tenure is now the latest that served writes.
                w.peer_key = None;
                w.write_term = write_term;
                out.push(Action::Event(Event::Writable {
                    catchup,
                    target,
                    forced,
                    write_term,
                }));
                out.push(Action::AddVips);
                out.push(Action::Announce);
                if let Some(t) = w.pending_master.take() {
                    out.push(Action::Notify(t));
                }
            }
            Outcome::CatchupTimeout { term, target } if term == current => {
                let stay_backup = w.policy == CatchupPolicy::StayBackup;
                out.push(Action::Event(Event::CatchupTimeout {
                    target,
                    stay_backup,
                }));
                if stay_backup {
                    // FAULT removes nothing (the VIPs were never added) but fences; once
                    // the server is read-only again, the guard watches for the catch-up.
                    w.block = Some(Block::Catchup);
                    self.retrack(now, out);
                }
            }
            Outcome::CaughtUp { term } if term == current => {
                let block = w.block.take();
                out.push(Action::Event(Event::CaughtUp));
                if !master {
                    // A read-only node compares with the peer and replicates from it (its
                    // server may have restarted meanwhile, replica threads stopped), as
                    // after any fence; a promotion from the retrack below supersedes it.
                    out.push(w.command(|term| Command::Rejoin {
                        term,
                        await_term: None,
                    }));
                }
                self.retrack(now, out);
                if block == Some(Block::Catchup) {
                    // It never served writes in that term: nothing to damp.
                    self.engine.release_hold(now);
                }
            }
            Outcome::Arbitrated { term, verdict } if term == current => {
                let Some((_, src)) = w.arbitrating.take() else {
                    return;
                };
                out.push(Action::Event(Event::Arbitration {
                    own: w.write_term.unwrap_or(0),
                    verdict,
                }));
                let stands = if verdict == Verdict::Unknown {
                    w.unknowns += 1;
                    if w.unknowns < UNKNOWN_TRIES {
                        UNKNOWN_STANDS
                    } else {
                        VERDICT_STANDS
                    }
                } else {
                    w.unknowns = 0;
                    VERDICT_STANDS
                };
                w.verdict = Some((src, verdict, now.after(stands)));
                // The other master's clients may have been pulled to it: this one served
                // writes last, so it says so now (claims went unanswered meanwhile).
                if matches!(verdict, Verdict::Keep { .. }) && master && w.writable {
                    out.push(Action::Announce);
                }
                if let (Verdict::Yield { peer }, true) = (verdict, master) {
                    // FAULT: VIPs off and the server fenced first, then priority 0; back
                    // in the election once this data holds the winner's term, with the
                    // anti-flap hold of a master that served writes.
                    w.block = Some(Block::Superseded { peer });
                    self.retrack(now, out);
                }
            }
            Outcome::ReadOnly {
                term,
                killed,
                in_doubt,
                took,
            } => {
                out.push(Action::Event(Event::ReadOnly {
                    killed,
                    in_doubt,
                    took,
                }));
                if w.block == Some(Block::Catchup) && term == current {
                    out.push(w.command(|term| Command::WatchCatchup { term }));
                }
                if w.switchover_term == Some(term) {
                    w.switchover_term = None;
                    if master {
                        out.push(Action::Event(Event::SwitchoverFenced));
                        let actions = self.engine.handle(VrrpInput::Switchover { now });
                        self.drive(actions, now, out);
                    }
                }
                // Read-only and not master (any more): before it replicates again or
                // rejoins the election, its data is compared with the peer's, and its
                // write key is free for the successor.
                let still_master = self.engine.state() == State::Master;
                if term == current && !still_master {
                    if let Some(w) = &mut self.write {
                        w.fence_due = None;
                    }
                    self.lease(now, |l| l.want(Want::Free, now), out);
                    let fenced_for_key = self
                        .write
                        .as_mut()
                        .is_some_and(|w| w.block.take_if(|b| *b == Block::Witness).is_some());
                    // It served writes and left: the peer may serve from now on, and
                    // what it acknowledges may not reach this server while it does not
                    // replicate. Out of the election until a comparison says it holds
                    // it (at once, normally: the rejoin below compares first).
                    let left = self.write.as_mut().is_some_and(|w| {
                        let left = std::mem::take(&mut w.served) && w.block.is_none();
                        if left {
                            w.block = Some(Block::Unverified);
                        }
                        left
                    });
                    if fenced_for_key || left {
                        self.retrack(now, out);
                    }
                }
                if let Some(w) = &mut self.write {
                    if term == current && !still_master && w.block != Some(Block::Catchup) {
                        let await_term = match w.block {
                            Some(Block::Superseded { peer }) => Some(peer),
                            _ => None,
                        };
                        out.push(w.command(|term| Command::Rejoin { term, await_term }));
                    }
                }
            }
            Outcome::PeerReady { term, refused } if w.switchover_check == Some(term) => {
                w.switchover_check = None;
                match refused {
                    // Still the writable master it was when asked (term == current: no
                    // other command since): hand over.
                    None if term == current && master && w.writable => {
                        self.fence_for_switchover(now, out)
                    }
                    None => {}
                    Some(reason) => {
                        w.switchover_refused = Some(reason.clone());
                        out.push(Action::Event(Event::SwitchoverRefused { reason }));
                    }
                }
            }
            Outcome::Blocked { term, blocked } if term == current => {
                out.push(Action::Event(Event::GuardBlocked(blocked.clone())));
                w.blocked = Some(blocked);
                w.block = Some(Block::Guard);
                // FAULT: the VIPs never went up; the server is fenced, then compared.
                self.retrack(now, out);
            }
            // Not running: as good as read-only for the successor's write key.
            Outcome::ServerDown { term } if term == current && !master => {
                w.fence_due = None;
                self.lease(now, |l| l.want(Want::Free, now), out);
            }
            // Whatever term: the kill happened and the operator must hear of it.
            Outcome::ServerKilled { pid, process, .. } => {
                out.push(Action::Event(Event::ServerKilled { pid, process }));
            }
            Outcome::Undone {
                term,
                gtids,
                archive,
            } if term == current => {
                out.push(Action::Event(Event::ErrantUndone { gtids, archive }));
            }
            Outcome::Standing { term, standing } if term == current => match standing {
                Standing::Divergent { errant } => {
                    if w.errant != errant {
                        out.push(Action::Event(Event::Divergent {
                            errant: errant.clone(),
                        }));
                    }
                    w.errant = errant;
                    w.blocked = None;
                    // Whatever it waited for, it now waits for a rebuild.
                    w.block = Some(Block::Divergent);
                    self.retrack(now, out);
                }
                Standing::Blocked(blocked) => {
                    if w.blocked.as_ref() != Some(&blocked) {
                        out.push(Action::Event(Event::GuardBlocked(blocked.clone())));
                    }
                    w.blocked = Some(blocked);
                    w.errant.clear();
                    // A block with a way out of its own (a term or a look to wait for)
                    // stays: this one only adds its reason.
                    if matches!(w.block, None | Some(Block::Guard | Block::Divergent)) {
                        w.block = Some(Block::Guard);
                    }
                    self.retrack(now, out);
                }
                Standing::Behind { missing, names } => {
                    if w.behind.is_none() {
                        out.push(Action::Event(Event::Behind {
                            missing,
                            names: names.clone(),
                        }));
                    }
                    w.behind = Some((missing, names));
                    self.engine.hold_preemption(true, now);
                    self.standing_ready(now, true, out);
                }
                Standing::Uncompared => {
                    self.current(now, out);
                    self.standing_ready(now, false, out);
                }
                Standing::Ready => {
                    self.current(now, out);
                    self.standing_ready(now, true, out);
                }
                Standing::Waiting => {}
            },
            // A superseded term, or a promotion that finished after mastership ended.
            _ => {}
        }
    }
}

impl Core {
    /// The guard's look found nothing errant and nothing blocked: a block that waited
    /// for such a look ends. Without a comparison with the peer (`compared` false) only
    /// a guard block does: a superseded, divergent or unverified node waits for one.
    fn standing_ready(&mut self, now: Instant, compared: bool, out: &mut Vec<Action>) {
        let Some(w) = self.write.as_mut() else { return };
        w.errant.clear();
        w.blocked = None;
        let ends = match w.block {
            Some(Block::Guard) => true,
            Some(Block::Superseded { .. } | Block::Divergent | Block::Unverified) => compared,
            _ => false,
        };
        if ends {
            w.block = None;
            out.push(Action::Event(Event::CaughtUp));
            self.retrack(now, out);
        }
    }

    /// The guard's look found this backup holding what the peer had (or could not
    /// tell): a preemption held for being behind may go ahead.
    fn current(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(w) = self.write.as_mut() else { return };
        if w.behind.take().is_some() {
            out.push(Action::Event(Event::Current));
            self.engine.hold_preemption(false, now);
        }
    }

    /// Runs `f` on the write lease (if any) and carries out what it says.
    fn lease(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut Lease) -> Vec<lease::Action>,
        out: &mut Vec<Action>,
    ) {
        let Some(l) = self.write.as_mut().and_then(|w| w.lease.as_mut()) else {
            return;
        };
        for a in f(l) {
            match a {
                lease::Action::Send(r) => out.push(Action::Witness(r)),
                lease::Action::Acquired { term } => {
                    out.push(Action::Event(Event::LeaseAcquired { term }));
                    let master = self.engine.state() == State::Master;
                    if let Some(w) = &mut self.write {
                        // Fencing terms grow by one per acquisition: a gap since its own
                        // last one (or any term before its first) is the peer's.
                        // A tenure of its own that served no writes leaves the peer's
                        // the latest that may have (kept until this node is writable).
                        if w.own_key_term.map_or(term > 1, |own| term > own + 1) {
                            w.peer_key = Some(term - 1);
                        }
                        w.own_key_term = Some(term);
                        if w.awaiting_lease && master {
                            w.awaiting_lease = false;
                            let key = w.key_tenure();
                            out.push(w.command(|term| Command::Promote { term, key }));
                        }
                    }
                }
                lease::Action::Lost { term, why } => {
                    out.push(Action::Event(Event::LeaseLost { term, why }));
                    if self.engine.state() == State::Master {
                        // Serving or promoting without the key: fence now (FAULT
                        // removes the VIPs and demotes), back once it landed.
                        if let Some(w) = &mut self.write {
                            w.block = Some(Block::Witness);
                            let margin = w
                                .lease
                                .as_ref()
                                .map_or(Duration::ZERO, |l| l.timing().margin);
                            w.fence_due = Some(now.after(margin * 2));
                        }
                        self.retrack(now, out);
                    }
                }
            }
        }
    }
}

/// The time an input carries.
fn input_now(i: &Input) -> Instant {
    match i {
        Input::Vrrp(v) => vrrp_now(v),
        Input::Stalled { now }
        | Input::Track { now, .. }
        | Input::Guard { now, .. }
        | Input::Reconfigure { now, .. }
        | Input::Witness { now, .. } => *now,
    }
}

/// The time a VRRP input carries.
fn vrrp_now(i: &VrrpInput) -> Instant {
    match i {
        VrrpInput::Startup { now }
        | VrrpInput::Shutdown { now }
        | VrrpInput::Advert { now, .. }
        | VrrpInput::MasterDown { now }
        | VrrpInput::Tick { now }
        | VrrpInput::Priority { now, .. }
        | VrrpInput::Fault { now }
        | VrrpInput::FaultCleared { now }
        | VrrpInput::Switchover { now } => *now,
    }
}
