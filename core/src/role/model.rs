//! The safety invariants of two nodes' cores, checked over random interleavings of faults.
//!
//! A discrete-event simulation stands in for everything the cores do not own: the network
//! (adverts delayed, lost, cut by a link going down or a partition), the kernel's
//! master-down timer, each node's MySQL server (alive, hung, read-only, commits in flight
//! waiting for a semi-sync ACK), the write guard (catch-up, the look at the peer's server
//! before `read_only = OFF`, the fence, retries against a dead server), the MySQL tracker
//! and the agent process itself (killed: its VIP and server stay as they were; restarted:
//! leftover VIP removed, server fenced, fresh core). Latencies come from a seeded RNG.
//!
//! Checked after every event:
//! - a node never has its VIP up unless its core holds a writable server for the current
//!   term, and never while that server is read-only (unless mysqld restarted under it);
//! - a core that leaves mastership removes its VIPs and fences before anything is sent;
//! - the transition stream is whole: each transition starts where the last one ended, and
//!   a MASTER hook runs only once the VIPs are up;
//! - two servers reachable by clients never accept writes at once, and the VIP is never
//!   on both nodes while both agents run, unless the run left the pair *unprotected*: a
//!   partition, a node cut off while its agent is dead, or a server that hung while its
//!   agent was dead or its node cut off and then resumed (nobody was there to fence or
//!   kill it in time, and the survivor could not tell it from a dead one). Without a
//!   witness both can then be writable. Half the seeds run with one (a key both nodes
//!   reach, [`crate::witness`]): a partition is then no exemption. A hung server whose agent lives is killed before the
//!   survivor counts it gone (`on_hung = "kill"`).
//!
//! - data currency: a server clients write to through the VIP holds every transaction
//!   the other side acknowledged (semi-sync: once the peer has it, or after the timeout
//!   without it), except those the other server, replicating and up, could not receive
//!   for the network (the semi-sync timeout's documented exposure; with a witness only
//!   once it received the writer's promotion: cut off since before, it can tell from
//!   the key tenure, and must);
//! - and all of it while the servers refuse the guard's statements at any time (a
//!   privilege revoked and granted again: replication, read_only, the write term, the
//!   reads of its own server, the kill), which the guard must turn into a block, never
//!   into a warning and the next step. The promotion is the guard's own machine
//!   ([`super::promotion`]), run here against the simulated servers; its unit proptest
//!   makes every statement fail in every way.
//!
//! And once every fault has healed: exactly one node holds the VIP on a writable server,
//! the other is read-only.
use std::collections::{BinaryHeap, VecDeque};

use proptest::prelude::*;

use super::{tests::settings, *};

const MS: u64 = 1_000_000;
const ADVERT: u64 = 10 * MS;
const ANTI_FLAP: u64 = 2_000 * MS;
const CATCHUP_TIMEOUT: u64 = 2_000 * MS;
const SEMI_SYNC_TIMEOUT: u64 = 1_000 * MS;
// The guard's own timing, from the one place it is defined.
const PEER_HUNG: u64 = promotion::PEER_HUNG.as_nanos() as u64;
const STATEMENT_TIMEOUT: u64 = promotion::STATEMENT_TIMEOUT.as_nanos() as u64;
const HUNG_KILL: u64 = demotion::HUNG_KILL.as_nanos() as u64;
/// Faults happen in the first RUN; then everything heals and the pair must converge.
const RUN: u64 = 4_000 * MS;
const SETTLE: u64 = 8_000 * MS;

/// How the simulated fence behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FenceModel {
    /// What xvrrpd does: `read_only = ON` plus `KILL CONNECTION` of the committing threads
    /// lands within a few milliseconds whatever is in flight.
    KillsWhatHoldsItUp,
    /// The old fence: `read_only = ON` waits for a commit in flight, which waits for the
    /// semi-sync ACK of an unreachable peer (until the peer is back or the timeout).
    WaitsForCommits,
}

/// A fault, as the model's scripts and the scenario files spell it (node 0 is db1, the
/// higher priority; node 1 is db2): `"partition"`, `{"mysqld_kill": 0}`,
/// `{"reload": [0, 50]}`, `{"revoke": [1, "replication"]}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    LinkDown(usize),
    LinkUp(usize),
    Partition,
    Heal,
    MysqldKill(usize),
    MysqldRestart(usize),
    MysqldHang(usize),
    MysqldResume(usize),
    AgentKill(usize),
    AgentRestart(usize),
    Switchover(usize),
    /// Reload with this configured priority.
    Reload(usize, u8),
    /// Adverts from this node are lost with this percentage until the next Loss.
    Loss(usize, u8),
    /// The agent's account on this node's server loses a privilege: every statement of
    /// that family is refused from now on (a DBA's REVOKE, a grant list without it).
    Revoke(usize, Refusal),
    /// ... and gets it back.
    Grant(usize, Refusal),
}

/// A family of the guard's statements the server may refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// START / STOP SLAVE (REPLICATION SLAVE ADMIN).
    Replication,
    /// SET GLOBAL read_only, either way (READ_ONLY ADMIN): promotion and the fence.
    ReadOnly,
    /// The write term's table (CREATE, INSERT, UPDATE on xvrrpd.*).
    TermWrite,
    /// What the guard reads of its own server: replica status, executed GTIDs, the
    /// write terms and key tenures (SLAVE MONITOR, SELECT on xvrrpd.*).
    Reads,
    /// Killing connections and writing past read_only (CONNECTION ADMIN, the MySQL
    /// super_read_only lift).
    Kill,
}

const REFUSALS: [Refusal; 5] = [
    Refusal::Replication,
    Refusal::ReadOnly,
    Refusal::TermWrite,
    Refusal::Reads,
    Refusal::Kill,
];

fn refusal() -> impl Strategy<Value = Refusal> {
    prop_oneof![
        Just(Refusal::Replication),
        Just(Refusal::ReadOnly),
        Just(Refusal::TermWrite),
        Just(Refusal::Reads),
        Just(Refusal::Kill),
    ]
}

fn fault() -> impl Strategy<Value = Fault> {
    let node = 0..2usize;
    prop_oneof![
        node.clone().prop_map(Fault::LinkDown),
        node.clone().prop_map(Fault::LinkUp),
        Just(Fault::Partition),
        Just(Fault::Heal),
        node.clone().prop_map(Fault::MysqldKill),
        node.clone().prop_map(Fault::MysqldRestart),
        node.clone().prop_map(Fault::MysqldHang),
        node.clone().prop_map(Fault::MysqldResume),
        node.clone().prop_map(Fault::AgentKill),
        node.clone().prop_map(Fault::AgentRestart),
        node.clone().prop_map(Fault::Switchover),
        (node.clone(), 50u8..200).prop_map(|(n, p)| Fault::Reload(n, p)),
        (node.clone(), 0u8..60).prop_map(|(n, p)| Fault::Loss(n, p)),
        (node.clone(), refusal()).prop_map(|(n, r)| Fault::Revoke(n, r)),
        (node, refusal()).prop_map(|(n, r)| Fault::Grant(n, r)),
    ]
}

/// A fault script: (ms into the run, fault), and the seed of every latency.
pub fn script() -> impl Strategy<Value = (Vec<(u64, Fault)>, u64)> {
    (
        proptest::collection::vec((0..RUN / MS, fault()), 0..14),
        any::<u64>(),
    )
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Fault(Fault),
    Advert {
        to: usize,
        priority: u8,
        epoch: u64,
    },
    KernelDown {
        node: usize,
        gen: u64,
    },
    Tick {
        node: usize,
        at: u64,
    },
    Guard {
        node: usize,
        gen: u64,
    },
    Tracker {
        node: usize,
        healthy: bool,
        gen: u64,
    },
    /// A fence that waited inside a hung server lands, some time after it resumed.
    QueuedFence {
        node: usize,
        term: u64,
    },
    /// The witness applies a node's request (gen: of the agent that sent it).
    WitnessApply {
        node: usize,
        req: crate::witness::lease::Request,
        gen: u64,
    },
    /// Its answer reaches the node.
    WitnessAnswer {
        node: usize,
        answer: crate::witness::lease::Answer,
        gen: u64,
    },
    /// A scenario looks at the pair here (see [`Snapshot`]).
    Probe,
}

/// What a scenario sees of the pair at one instant: who holds the VIP, which servers take
/// writes from clients, each core's VRRP state (`None`: its agent is dead) and which
/// guards are blocked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub at_ms: u64,
    pub vip: Vec<usize>,
    pub writable: Vec<usize>,
    pub states: Vec<Option<State>>,
    pub blocked: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Timed(u64, u64, Ev);
impl Ord for Timed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.0, o.1).cmp(&(self.0, self.1))
    }
}
impl PartialOrd for Timed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

#[derive(Clone, Debug, Default)]
struct Server {
    alive: bool,
    hung: bool,
    read_only: bool,
    /// Restarted (read-only from my.cnf) since this node's last promotion.
    restarted: bool,
    /// A fence statement is waiting inside the hung server: it lands after it resumes.
    fence_queued: Option<u64>,
    /// Hung at some moment while its agent was dead or its node cut off: nobody could
    /// kill it before the survivor counted it gone (or, cut off, took over at once).
    unwatched: bool,
    /// `xvrrpd.promotion` in this server's data: each node's latest promotion term
    /// (replicated with the rest of the data).
    promo: [u64; 2],
    /// `xvrrpd.promotion_key`: the witness key's fencing term each node's latest
    /// promotion was made under (0: none), replicated with the rest.
    key: [u64; 2],
    /// Transactions held, by origin: `held[k]` is the highest sequence number committed
    /// first on node k that this server holds (replication applies in order).
    held: [u64; 2],
    /// Replicating from the peer (both threads running). The data stays across a
    /// restart; the threads do not (`skip_slave_start`): the guard starts them.
    replicating: bool,
}

#[derive(Clone, Debug)]
enum Step {
    Idle,
    /// The guard's own promotion ([`promotion::Promotion`]) or watch after a
    /// stay-backup timeout ([`watch::Watch`]), the answer to its last statement due at
    /// the next guard event.
    Machine {
        machine: Machine,
        answer: promotion::Answer,
    },
    /// The guard's own demotion ([`demotion::Demotion`]): the answer to its last step
    /// due at the next guard event, or a fence attempt under way (`attempt`).
    Demote {
        machine: Box<demotion::Demotion>,
        answer: demotion::Answer,
        attempt: Option<Attempt>,
    },
    /// A switchover's check (the guard's own machine, [`switchover::Check`]): the
    /// peer replicates from this server and holds what this server held (`snapshot`,
    /// its own origin) at the first look; the answer to its last step is due at the
    /// next guard event.
    ReadyPeer {
        check: Box<switchover::Check>,
        snapshot: u64,
        answer: switchover::Answer,
    },
    /// Reading the peer's write term (`asked` once the read is under way).
    Arbitrate {
        term: u64,
        own: u64,
        asked: bool,
    },
    /// The guard's own rejoin machine ([`rejoin::Rejoin`]), the answer to its last
    /// statement due at the next guard event; `kept`: the peer's own transactions
    /// (`held` of its origin) at the look the machine kept.
    Rejoin {
        machine: Box<rejoin::Rejoin>,
        answer: rejoin::Answer,
        kept: Option<u64>,
    },
}

/// A fence attempt under way in a simulated server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    /// It lands at the next guard event (if the server is still there).
    Lands,
    /// Queued in a hung server: it lands when the server resumes ([`Ev::QueuedFence`]);
    /// at the next guard event the guard kills the server (`may_kill`) or gives up on
    /// the statement.
    Queued { term: u64, may_kill: bool },
}

/// A guard machine that speaks the promotion's language.
#[derive(Clone, Debug)]
enum Machine {
    Promotion(Box<promotion::Promotion>),
    Watch(Box<watch::Watch>),
}

impl Machine {
    fn step(&mut self, now: crate::engine::Instant, answer: promotion::Answer) -> promotion::Step {
        match self {
            Self::Promotion(m) => m.step(now, answer),
            Self::Watch(m) => m.step(now, answer),
        }
    }
}

struct Node {
    core: Option<Core>,
    priority: u8,
    server: Server,
    link: bool,
    vip: bool,
    tracker_healthy: bool,
    tracker_gen: u64,
    queue: VecDeque<Command>,
    step: Step,
    guard_gen: u64,
    kernel_gen: u64,
    tick_at: Option<u64>,
    last_to: Option<State>,
    loss: u8,
    /// What the agent keeps across its restarts (a file under /run in life).
    memory: Memory,
    /// The demotion (term) whose fence killed the hung server: once per demotion.
    killed_for: Option<u64>,
    /// Bumped when its agent starts: answers to a dead agent's requests are dropped.
    witness_gen: u64,
    /// The statement families its server refuses the agent (by [`Refusal`]).
    refused: [bool; REFUSALS.len()],
}

/// The witness: one linearizable key (etcd), reachable by a node whose link is up.
type Witness = crate::witness::sim::Store;

/// The witness's lease in the model: the defaults.
fn witness_timing() -> crate::witness::lease::Timing {
    crate::witness::lease::Timing::DEFAULT
}

/// The nodes' names in the witness's key.
const NAMES: [&str; 2] = ["db1", "db2"];

/// A request to an unreachable witness fails after the client's bound.
const WITNESS_TIMEOUT: u64 = 250 * MS;

pub struct Sim {
    now: u64,
    seq: u64,
    events: BinaryHeap<Timed>,
    nodes: [Node; 2],
    partition: bool,
    /// A partition, or a node cut off with its agent dead, happened in this run: from then
    /// on two writable servers are possible (no witness) and not a violation.
    unprotected: bool,
    /// Bumped when the path between the nodes breaks: adverts in flight are lost.
    epoch: u64,
    rng: u64,
    fence: FenceModel,
    /// Per origin: its transactions after this sequence number are errant (committed
    /// after the other node became writable without them). None: none can be.
    errant_after: [Option<u64>; 2],
    /// Per node, what its rejoin's latest comparison said of replicating from the peer
    /// (None: not compared on that look): a node called rejoined must then replicate.
    rule_replicates: [Option<bool>; 2],
    /// The master stops replicating from its peer before it takes writes (switch off to
    /// show the model catches errant transactions reaching a master).
    master_stops_replicating: bool,
    /// `on_errant = "flashback"`: a divergent node undoes its errant transactions (back
    /// to what the peer holds of its origin) and rejoins; the pair must then converge.
    undo_errant: bool,
    /// Both servers must end with the same transactions (on with `undo_errant`; switch
    /// it on alone to show the check fails with quarantine).
    data_must_converge: bool,
    /// `on_hung = "kill"`: a server that must be fenced and answers nothing for
    /// [`HUNG_KILL`] is killed, and its service manager restarts it (switch off to show
    /// that a resumed hung server is writable beside the new master).
    kill_hung: bool,
    /// Write instances hold a key in a witness both reach (`[witness]`): a partition of
    /// the two nodes no longer leaves the pair unprotected.
    witness: Option<Witness>,
    /// Check two writable servers even in an unprotected run (to show a partition
    /// without a witness gives them).
    unprotected_checks: bool,
    /// The guard as it was before the data-currency rule: a failed step was logged and
    /// the next one run, a node rejoined whether or not it replicated, and a promotion
    /// never asked whether the server held what the peer acknowledged (switch on to show
    /// the model finds the stale promotion it allowed).
    old_guard: bool,
    /// The guard as it was before it compared the peer's key tenure with its data (switch
    /// on to show the model finds the promotion it allowed).
    ignore_key_tenure: bool,
    /// Per origin: its transactions acknowledged to a client.
    acked: [std::collections::BTreeSet<u64>; 2],
    /// Per origin: commits waiting for the peer's semi-sync ACK, with the moment the
    /// timeout acknowledges them without it.
    pending: [VecDeque<(u64, u64)>; 2],
    /// Per origin: its transactions acknowledged while the other server, replicating,
    /// alive (hung or not) and (with a witness) holding the origin's latest promotion,
    /// could not receive
    /// them for the network (a partition, a link down): the semi-sync timeout's
    /// documented exposure, which nothing on the other side can see.
    acked_unseen: [std::collections::BTreeSet<u64>; 2],
    pub violations: Vec<String>,
    /// What each probe saw, in time order.
    pub snapshots: Vec<Snapshot>,
}

#[cfg(test)]
mod conformance;

impl Sim {
    /// Half the seeds undo errant transactions, half run with a witness.
    pub fn new(seed: u64, fence: FenceModel) -> Self {
        Self::with_witness(seed, fence, seed & 4 != 0)
    }

    pub fn with_witness(seed: u64, fence: FenceModel, witness: bool) -> Self {
        let node = |priority| Node {
            core: None,
            priority,
            server: Server {
                alive: true,
                read_only: true,
                replicating: true,
                ..Server::default()
            },
            link: true,
            vip: false,
            tracker_healthy: true,
            tracker_gen: 0,
            queue: VecDeque::new(),
            step: Step::Idle,
            guard_gen: 0,
            kernel_gen: 0,
            tick_at: None,
            last_to: None,
            loss: 0,
            memory: Memory::default(),
            killed_for: None,
            witness_gen: 0,
            refused: [false; REFUSALS.len()],
        };
        let mut sim = Self {
            now: 0,
            seq: 0,
            events: BinaryHeap::new(),
            nodes: [node(150), node(100)],
            partition: false,
            unprotected: false,
            epoch: 0,
            rng: seed | 1,
            fence,
            errant_after: [None; 2],
            rule_replicates: [None; 2],
            master_stops_replicating: true,
            undo_errant: seed & 2 != 0,
            data_must_converge: seed & 2 != 0,
            kill_hung: true,
            witness: witness.then(Witness::default),
            unprotected_checks: false,
            old_guard: false,
            ignore_key_tenure: false,
            acked: Default::default(),
            pending: Default::default(),
            acked_unseen: Default::default(),
            violations: Vec::new(),
            snapshots: Vec::new(),
        };
        sim.start_agent(0);
        sim.start_agent(1);
        sim
    }

    fn rand(&mut self, lo: u64, hi: u64) -> u64 {
        // xorshift64*: deterministic per seed.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        lo + self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % (hi - lo).max(1)
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.events.push(Timed(t, self.seq, ev));
    }

    fn reach(&self) -> bool {
        self.nodes[0].link && self.nodes[1].link && !self.partition
    }

    /// Takes writes from clients: up, answering, writable, and on the clients' segment.
    fn accepting(&self, i: usize) -> bool {
        let s = &self.nodes[i].server;
        s.alive && !s.hung && !s.read_only && self.nodes[i].link
    }

    fn now(&self) -> Instant {
        Instant(self.now)
    }

    fn tracking(&self, i: usize) -> Tracking {
        let n = &self.nodes[i];
        Tracking {
            link_ok: n.link,
            maintenance: false,
            trackers: vec![Contribution {
                weight: -100,
                reverse: false,
                healthy: n.tracker_healthy,
                file_value: None,
            }],
            server_up: n.tracker_healthy,
        }
    }

    fn start_agent(&mut self, i: usize) {
        // Start-up removes a VIP left by a crash before anything else.
        self.nodes[i].vip = false;
        self.nodes[i].queue.clear();
        self.nodes[i].step = Step::Idle;
        self.nodes[i].guard_gen += 1;
        self.nodes[i].last_to = None;
        let primary = if i == 0 { "192.0.2.11" } else { "192.0.2.12" };
        let mut s = settings(self.nodes[i].priority, primary);
        s.anti_flap = Duration::from_nanos(ANTI_FLAP);
        let mut core = Core::new(s, Some(CatchupPolicy::StayBackup));
        if self.witness.is_some() {
            core.set_witness(NAMES[i], witness_timing());
        }
        self.nodes[i].witness_gen += 1;
        core.restore(self.nodes[i].memory, self.now());
        let fence = core.guard_started();
        self.nodes[i].core = Some(core);
        self.apply(i, fence);
        let tracking = self.tracking(i);
        let now = self.now();
        self.feed(i, Input::Track { now, tracking });
        self.feed(i, Input::Vrrp(VrrpInput::Startup { now }));
    }

    fn feed(&mut self, i: usize, input: Input) {
        let Some(core) = self.nodes[i].core.as_mut() else {
            return;
        };
        let trace = format!("{input:?}");
        let actions = core.handle(input);
        // XVRRPD_MODEL_TRACE=1: every input and what it did, to read a failing script.
        if std::env::var_os("XVRRPD_MODEL_TRACE").is_some() {
            eprintln!(
                "{:>9.3} ms node {i}: {trace} -> {actions:?}",
                self.now as f64 / MS as f64
            );
        }
        self.apply(i, actions);
    }

    fn apply(&mut self, i: usize, actions: Vec<Action>) {
        self.check_fence_first(i, &actions);
        for a in actions {
            match a {
                Action::Transition(t) => {
                    let n = &mut self.nodes[i];
                    if let Some(prev) = n.last_to {
                        if prev != t.from {
                            self.violation(format!(
                                "node {i}: transition {:?} -> {:?} after one to {prev:?}",
                                t.from, t.to
                            ));
                        }
                    }
                    self.nodes[i].last_to = Some(t.to);
                }
                Action::Notify(t) if t.to == State::Master => {
                    if !self.nodes[i].vip {
                        self.violation(format!("node {i}: MASTER hook before the VIP is up"));
                    }
                }
                Action::Notify(_) | Action::Announce | Action::Event(_) | Action::ClearStall => {}
                Action::Witness(req) => {
                    let gen = self.nodes[i].witness_gen;
                    if self.nodes[i].link {
                        let d = self.rand(MS / 2, 5 * MS);
                        self.at(self.now + d, Ev::WitnessApply { node: i, req, gen });
                    } else {
                        let answer = crate::witness::lease::Answer::Failed;
                        self.at(
                            self.now + WITNESS_TIMEOUT,
                            Ev::WitnessAnswer {
                                node: i,
                                answer,
                                gen,
                            },
                        );
                    }
                }
                Action::Remember(m) => self.nodes[i].memory = m,
                Action::SetLocalPriority { .. } => {}
                Action::SendAdvert { priority } => {
                    let lost = self.rand(0, 100) < self.nodes[i].loss as u64;
                    if self.reach() && !lost {
                        let d = self.rand(MS / 10, 3 * MS);
                        let epoch = self.epoch;
                        let to = 1 - i;
                        self.at(
                            self.now + d,
                            Ev::Advert {
                                to,
                                priority,
                                epoch,
                            },
                        );
                    }
                }
                Action::AddVips => self.nodes[i].vip = true,
                Action::RemoveVips => self.nodes[i].vip = false,
                Action::Guard(cmd) => {
                    self.nodes[i].queue.push_back(cmd);
                    // The rejoin look waits on the command queue: a new command ends it.
                    if matches!(self.nodes[i].step, Step::Idle | Step::Rejoin { .. }) {
                        self.guard_next(i);
                    }
                }
            }
        }
        self.schedule_tick(i);
    }

    /// A batch that leaves mastership removes the VIPs and fences before any advert.
    fn check_fence_first(&mut self, i: usize, actions: &[Action]) {
        let leaves = actions
            .iter()
            .any(|a| matches!(a, Action::Transition(t) if t.from == State::Master));
        if !leaves {
            return;
        }
        let pos = |f: &dyn Fn(&Action) -> bool| actions.iter().position(f);
        let fence = pos(&|a| matches!(a, Action::Guard(Command::Demote { .. })));
        let remove = pos(&|a| *a == Action::RemoveVips);
        let advert = pos(&|a| matches!(a, Action::SendAdvert { .. }));
        let first = fence.zip(remove).map(|(f, r)| f.max(r));
        if first.is_none() || advert.is_some_and(|a| Some(a) < first) {
            self.violation(format!(
                "node {i}: left mastership without fencing first: {actions:?}"
            ));
        }
    }

    fn schedule_tick(&mut self, i: usize) {
        let Some(core) = &self.nodes[i].core else {
            return;
        };
        let next = core.next_deadline().map(|d| d.0.max(self.now));
        if next != self.nodes[i].tick_at {
            self.nodes[i].tick_at = next;
            if let Some(at) = next {
                self.at(at, Ev::Tick { node: i, at });
            }
        }
    }

    fn violation(&mut self, what: String) {
        let line = format!("{:.1} ms: {what}", self.now as f64 / MS as f64);
        if self.violations.len() < 20 {
            self.violations.push(line);
        }
    }

    fn check(&mut self) {
        for i in 0..2 {
            let n = &self.nodes[i];
            if !n.vip {
                continue;
            }
            if let Some(core) = &n.core {
                if core.writable() != Some(true) {
                    self.violation(format!("node {i}: VIP up, core not writable"));
                }
            }
            let s = &self.nodes[i].server;
            if s.alive && s.read_only && !s.restarted {
                self.violation(format!("node {i}: VIP up on a read-only server"));
            }
        }
        if (0..2).any(|i| self.nodes[i].core.is_none() && !self.reach()) {
            self.unprotected = true;
        }
        if !self.unprotected || self.unprotected_checks {
            // Data currency: a server clients write to through the VIP holds every
            // transaction the other side acknowledged.
            for j in 0..2 {
                let s = &self.nodes[j].server;
                let k = 1 - j;
                if !self.nodes[j].vip || !self.accepting(j) {
                    continue;
                }
                let lacks = self.acked[k]
                    .range(s.held[k] + 1..)
                    .filter(|seq| !self.acked_unseen[k].contains(seq))
                    .count();
                if lacks > 0 {
                    self.violation(format!(
                        "node {j} serves writes without {lacks} transactions node {k} acknowledged"
                    ));
                }
            }
            if self.accepting(0) && self.accepting(1) {
                self.violation("both servers accept writes".into());
            }
            // A dead agent leaves its VIP behind (its restart removes it first). So does a
            // master whose mysqld just died, until its tracker hears of it (1 ms here: the
            // tracker's parked connection closes at once): the peer may take over within
            // that window (it was already promoting on lost adverts, and a dead server is
            // a gone peer), and no client reaches a server through the dead one's VIP.
            let alive = self.nodes.iter().all(|n| n.core.is_some());
            let dying = |n: &Node| !n.server.alive && n.tracker_healthy;
            if alive && self.nodes[0].vip && self.nodes[1].vip && !self.nodes.iter().any(dying) {
                self.violation("VIP on both nodes".into());
            }
        }
    }

    // --- the write guard ------------------------------------------------------------

    fn guard_next(&mut self, i: usize) {
        self.nodes[i].guard_gen += 1;
        let Some(cmd) = self.nodes[i].queue.pop_front() else {
            self.nodes[i].step = Step::Idle;
            return;
        };
        self.nodes[i].step = match cmd {
            Command::Promote { term, key } => Step::Machine {
                machine: Machine::Promotion(Box::new(promotion::Promotion::new(
                    term,
                    key,
                    self.now(),
                    Duration::from_nanos(CATCHUP_TIMEOUT),
                    CatchupPolicy::StayBackup,
                ))),
                answer: promotion::Answer::Next,
            },
            Command::Demote { term } => Step::Demote {
                machine: Box::new(demotion::Demotion::new(term, self.kill_hung)),
                answer: demotion::Answer::Next,
                attempt: None,
            },
            Command::ReadyPeer { term } => Step::ReadyPeer {
                check: Box::new(switchover::Check::new(
                    term,
                    self.now(),
                    Duration::from_nanos(CATCHUP_TIMEOUT),
                )),
                snapshot: self.nodes[i].server.held[i],
                answer: switchover::Answer::Next,
            },
            Command::WatchCatchup { term } => Step::Machine {
                machine: Machine::Watch(Box::new(watch::Watch::new(term))),
                answer: promotion::Answer::Next,
            },
            Command::Arbitrate { term, own } => Step::Arbitrate {
                term,
                own,
                asked: false,
            },
            Command::Rejoin { term, await_term } => Step::Rejoin {
                machine: Box::new(rejoin::Rejoin::new(term, await_term)),
                answer: rejoin::Answer::Next,
                kept: None,
            },
        };
        self.guard_step(i);
    }

    fn guard_later(&mut self, i: usize, delay: u64) {
        let gen = self.nodes[i].guard_gen;
        self.at(self.now + delay, Ev::Guard { node: i, gen });
    }

    fn outcome(&mut self, i: usize, outcome: Outcome) {
        let now = self.now();
        self.feed(i, Input::Guard { now, outcome });
    }

    fn guard_step(&mut self, i: usize) {
        let newer = !self.nodes[i].queue.is_empty();
        match self.nodes[i].step.clone() {
            Step::Idle => {}
            Step::Machine { .. } | Step::Arbitrate { .. } | Step::Rejoin { .. } if newer => {
                self.guard_next(i)
            }
            Step::Machine { machine, answer } => self.run_machine(i, machine, answer),
            Step::ReadyPeer { .. } if newer => self.guard_next(i),
            Step::ReadyPeer {
                mut check,
                snapshot,
                mut answer,
            } => loop {
                use switchover::{Answer, Holds, Step as S};
                match check.step(self.now(), answer) {
                    S::Look => {
                        let p = &self.nodes[1 - i].server;
                        answer = if !(self.reach() && p.alive && !p.hung) {
                            Answer::Failed(promotion::Failure {
                                refused: false,
                                error: "no answer".into(),
                            })
                        } else if !p.replicating {
                            Answer::Looked(Holds::Never("the peer does not replicate".into()))
                        } else if p.held[i] >= snapshot {
                            Answer::Looked(Holds::Yes)
                        } else {
                            Answer::Looked(Holds::Behind {
                                missing: snapshot - p.held[i],
                                names: format!("node {i}"),
                            })
                        };
                    }
                    S::Wait(d) => {
                        self.nodes[i].step = Step::ReadyPeer {
                            check,
                            snapshot,
                            answer: Answer::Next,
                        };
                        self.guard_later(i, d.as_nanos() as u64);
                        return;
                    }
                    S::Report(outcome) => {
                        self.outcome(i, outcome);
                        answer = Answer::Next;
                    }
                    S::End => {
                        self.guard_next(i);
                        return;
                    }
                }
            },
            // A newer command ends a demotion only between attempts.
            Step::Demote { attempt: None, .. } if newer => self.guard_next(i),
            Step::Demote {
                machine,
                answer,
                attempt,
            } => {
                let answer = match attempt {
                    None => answer,
                    Some(a) => self.attempt_done(i, a),
                };
                self.demote(i, *machine, answer);
            }
            Step::Arbitrate {
                term,
                own,
                asked: false,
            } => {
                self.nodes[i].step = Step::Arbitrate {
                    term,
                    own,
                    asked: true,
                };
                let took = self.rand(MS / 2, 10 * MS);
                self.guard_later(i, took);
            }
            Step::Arbitrate { term, own, .. } => {
                let p = &self.nodes[1 - i].server;
                let verdict = if !self.reach() || !p.alive || p.hung {
                    Verdict::Unknown
                } else {
                    let peer = crate::mysql::term::PeerTerm {
                        own: p.promo[1 - i],
                        writable: !p.read_only,
                    };
                    let look = self.look(i);
                    let lacks = crate::mysql::term::Lacks {
                        we_lack: !look.peer_extra.is_empty(),
                        they_lack: !look.own_extra.is_empty(),
                    };
                    crate::mysql::term::verdict(own, peer, Some(lacks))
                };
                self.outcome(i, Outcome::Arbitrated { term, verdict });
                self.guard_next(i);
            }
            Step::Rejoin {
                machine,
                answer,
                kept,
            } => self.rejoin(i, *machine, answer, kept),
        }
    }

    /// Drives node `i`'s rejoin machine until it waits (or a newer command ends it).
    fn rejoin(
        &mut self,
        i: usize,
        mut machine: rejoin::Rejoin,
        mut answer: rejoin::Answer,
        mut kept: Option<u64>,
    ) {
        use rejoin::{Answer, Step as R};
        loop {
            match machine.step(self.now(), answer) {
                R::Run(statement) => answer = self.rejoin_statement(i, statement, &mut kept),
                R::Wait(d) => {
                    self.nodes[i].step = Step::Rejoin {
                        machine: Box::new(machine),
                        answer: Answer::Next,
                        kept,
                    };
                    self.guard_later(i, d.as_nanos() as u64);
                    return;
                }
                R::CannotCompare(_) => answer = Answer::Next,
                R::Report { outcome, .. } => {
                    // Nothing is called rejoined before its replication runs.
                    let rejoined = matches!(
                        &outcome,
                        Outcome::Standing {
                            standing: Standing::Ready | Standing::Behind { .. },
                            ..
                        }
                    );
                    if rejoined
                        && self.rule_replicates[i] == Some(true)
                        && !self.nodes[i].server.replicating
                    {
                        self.violation(format!("node {i}: called rejoined, not replicating"));
                    }
                    // The core may answer with a new command, which ends the rejoin.
                    let gen = self.nodes[i].guard_gen;
                    self.nodes[i].step = Step::Rejoin {
                        machine: Box::new(machine.clone()),
                        answer: Answer::Next,
                        kept,
                    };
                    self.outcome(i, outcome);
                    if self.nodes[i].guard_gen != gen {
                        return;
                    }
                    answer = Answer::Next;
                }
            }
        }
    }

    /// One statement of a rejoin against the simulated servers (at once). The old
    /// guard is the same machine fed the answers it acted on: every step taken for
    /// done, and a peer it could not compare with taken for one that held nothing new.
    fn rejoin_statement(
        &mut self,
        i: usize,
        statement: rejoin::Statement,
        kept: &mut Option<u64>,
    ) -> rejoin::Answer {
        use rejoin::{Answer, Statement as S};
        let failed = |refused: bool| {
            Answer::Failed(promotion::Failure {
                refused,
                error: if refused { "refused" } else { "no answer" }.into(),
            })
        };
        let up = |s: &Server| s.alive && !s.hung;
        let old = self.old_guard;
        match statement {
            S::ServerUp => Answer::Flag(up(&self.nodes[i].server)),
            S::Compare { rebase } => {
                self.rule_replicates[i] = None;
                if !(self.reach() && up(&self.nodes[1 - i].server)) {
                    return if old {
                        Answer::Compared {
                            errant: Vec::new(),
                            replicate: self.nodes[i].server.replicating,
                            behind: None,
                        }
                    } else {
                        failed(false)
                    };
                }
                let r = crate::mysql::divergence::rejoin(&self.look(i));
                let (s, p) = (&self.nodes[i].server, &self.nodes[1 - i].server);
                // Still lacking what the peer held at the kept look (and something now).
                let behind = kept
                    .filter(|k| rebase && !r.missing.is_empty() && *k > s.held[1 - i])
                    .map(|k| (k - s.held[1 - i], format!("node {}", 1 - i)));
                if rebase {
                    *kept = Some(p.held[1 - i]);
                }
                self.rule_replicates[i] = Some(r.replicate);
                Answer::Compared {
                    errant: crate::mysql::divergence::names(&r.errant),
                    replicate: r.replicate,
                    behind,
                }
            }
            S::Replicate(on) => {
                if on != self.nodes[i].server.replicating && self.refuses(i, Refusal::Replication) {
                    // START / STOP SLAVE refused: replication stays as it is.
                    return if old { Answer::Ok } else { failed(true) };
                }
                self.nodes[i].server.replicating = on;
                self.replicate();
                Answer::Ok
            }
            S::Undo => {
                if !self.undo_errant {
                    return Answer::Flag(false);
                }
                // Undone unlogged and dropped from the binary log: this server holds of
                // its own origin what the peer holds, and its term row is the peer's
                // copy. Re-based on the peer's history: none of the peer's transactions
                // are errant any more (they are the reference now: the rule took the
                // peer as the one that served writes last), and whatever this node
                // commits without it before its next promotion would be.
                let p = &self.nodes[1 - i].server;
                let (held, promo, key) = (p.held[i], p.promo[i], p.key[i]);
                let s = &mut self.nodes[i].server;
                s.held[i] = held;
                s.promo[i] = promo;
                s.key[i] = key;
                self.errant_after[1 - i] = None;
                self.errant_after[i] = Some(held);
                Answer::Flag(true)
            }
            S::ReplicationRuns if old || self.nodes[i].server.replicating => Answer::Ok,
            S::ReplicationRuns => failed(false),
            // Ready only with every statement a promotion needs allowed (the probes).
            S::PromotionAllowed if !old && REFUSALS.iter().any(|r| self.refuses(i, *r)) => {
                failed(true)
            }
            S::PromotionAllowed => Answer::Ok,
            S::HoldsTerm(t) => {
                let s = &self.nodes[i].server;
                Answer::Flag(s.promo[0].max(s.promo[1]) >= t)
            }
        }
    }

    /// What node `i`'s guard finds comparing its server with the peer's (both up).
    fn look(&self, i: usize) -> crate::mysql::divergence::Look {
        let (s, p) = (&self.nodes[i].server, &self.nodes[1 - i].server);
        let extra = |n: bool| {
            if n {
                vec![crate::mysql::divergence::Extra::Maria {
                    domain: 0,
                    server: 0,
                    after: None,
                    last: 1,
                }]
            } else {
                Vec::new()
            }
        };
        crate::mysql::divergence::Look {
            own_extra: extra(s.held[i] > p.held[i]),
            peer_extra: extra(p.held[1 - i] > s.held[1 - i]),
            own_term: s.promo[i],
            peer: crate::mysql::term::PeerTerm {
                own: p.promo[1 - i],
                writable: !p.read_only,
            },
        }
    }

    /// Does node `i`'s server refuse the agent `r`'s statements?
    fn refuses(&self, i: usize, r: Refusal) -> bool {
        self.nodes[i].refused[r as usize]
    }

    /// Drives the guard's promotion machine until it waits (a delay, a statement that
    /// takes time) or ends.
    /// Drives node `i`'s demotion until it waits, a fence attempt is under way, or it
    /// ends.
    fn demote(&mut self, i: usize, mut machine: demotion::Demotion, mut answer: demotion::Answer) {
        use demotion::{Answer, Statement as S, Step as D};
        let park = |this: &mut Self, machine: demotion::Demotion, attempt, delay: u64| {
            this.nodes[i].step = Step::Demote {
                machine: Box::new(machine),
                answer: Answer::Next,
                attempt,
            };
            this.guard_later(i, delay);
        };
        loop {
            match machine.step(answer) {
                // A hung server still listens; a dead one does not.
                D::Run(S::Listening) => answer = Answer::Flag(self.nodes[i].server.alive),
                D::Run(S::Fence { may_kill }) => {
                    let s = &self.nodes[i].server;
                    if !s.alive {
                        answer = Answer::Failed(promotion::Failure {
                            refused: false,
                            error: "connection refused".into(),
                        });
                    } else if s.hung {
                        // The statement waits inside the server and lands some time after
                        // it resumes; the guard gives up on it after its statement timeout,
                        // or kills the server after HUNG_KILL.
                        let term = machine.term();
                        self.nodes[i].server.fence_queued = Some(term);
                        let wait = if may_kill {
                            HUNG_KILL
                        } else {
                            STATEMENT_TIMEOUT
                        };
                        park(
                            self,
                            machine,
                            Some(Attempt::Queued { term, may_kill }),
                            wait,
                        );
                        return;
                    } else if self.refuses(i, Refusal::ReadOnly) {
                        answer = Answer::Failed(promotion::Failure {
                            refused: true,
                            error: "refused".into(),
                        });
                    } else {
                        let held = self.fence == FenceModel::WaitsForCommits
                            && !s.read_only
                            && !self.reach();
                        let took = if held {
                            SEMI_SYNC_TIMEOUT
                        } else {
                            self.rand(MS / 2, 30 * MS)
                        };
                        park(self, machine, Some(Attempt::Lands), took);
                        return;
                    }
                }
                // read_only = ON refused: killed as a hung server is (`on_hung = "kill"`);
                // restarted read-only by its service manager.
                D::Run(S::Kill) => {
                    self.kill_hung_server(i, machine.term());
                    answer = killed();
                }
                D::Wait(d) => {
                    park(self, machine, None, d.as_nanos() as u64);
                    return;
                }
                D::Report(outcome) => {
                    self.outcome(i, outcome);
                    answer = Answer::Next;
                }
                D::Note(_) | D::Warn(_) => answer = Answer::Next,
                D::End => {
                    self.guard_next(i);
                    return;
                }
            }
        }
    }

    /// A fence attempt's end, at the guard event it waited for.
    fn attempt_done(&mut self, i: usize, attempt: Attempt) -> demotion::Answer {
        let s = &mut self.nodes[i].server;
        match attempt {
            Attempt::Lands if s.alive => {
                if !s.read_only {
                    // A commit in flight, killed by the fence: committed here, and on the
                    // peer only if it replicates from here (semi-sync).
                    s.held[i] += 1;
                    self.replicate();
                }
                self.nodes[i].server.read_only = true;
                fenced()
            }
            // Died meanwhile: retried, as against a dead server.
            Attempt::Lands => demotion::Answer::Failed(promotion::Failure {
                refused: false,
                error: "connection lost".into(),
            }),
            Attempt::Queued { term, may_kill }
                if may_kill && s.hung && s.fence_queued == Some(term) =>
            {
                self.kill_hung_server(i, term);
                killed()
            }
            // Given up on: the statement stays queued in the server (it may land later,
            // until a promotion kills the abandoned connection).
            Attempt::Queued { .. } => demotion::Answer::Failed(promotion::Failure {
                refused: false,
                error: "timed out".into(),
            }),
        }
    }

    /// Drives node `i`'s promotion or watch until it waits or ends.
    fn run_machine(&mut self, i: usize, mut machine: Machine, mut answer: promotion::Answer) {
        use promotion::{Answer, Step as P};
        loop {
            let now = self.now();
            match machine.step(now, answer) {
                P::Run(statement) => {
                    let (a, took) = self.execute(i, statement);
                    if took > 0 {
                        self.nodes[i].step = Step::Machine { machine, answer: a };
                        self.guard_later(i, took);
                        return;
                    }
                    answer = a;
                }
                P::Wait(d) => {
                    self.nodes[i].step = Step::Machine {
                        machine,
                        answer: Answer::Next,
                    };
                    self.guard_later(i, d.as_nanos() as u64);
                    return;
                }
                P::Note(_) | P::Warn(_) => answer = Answer::Next,
                P::Report(outcome) => {
                    self.nodes[i].step = Step::Machine {
                        machine: machine.clone(),
                        answer: Answer::Next,
                    };
                    self.outcome(i, outcome);
                    // The guard looks for a newer command before its next step.
                    if !self.nodes[i].queue.is_empty() {
                        self.guard_next(i);
                        return;
                    }
                    answer = Answer::Next;
                }
                P::End => {
                    self.guard_next(i);
                    return;
                }
            }
        }
    }

    /// One statement of a promotion against the simulated servers: the answer, and how
    /// long it takes (0: at once). The old guard is the same machine fed the answers it
    /// acted on: a refused step taken for done, nothing compared.
    fn execute(&mut self, i: usize, statement: promotion::Statement) -> (promotion::Answer, u64) {
        use promotion::{Answer, Failure, PeerLook, Statement as S};
        let failed = |refused: bool| {
            Answer::Failed(Failure {
                refused,
                error: if refused { "refused" } else { "no answer" }.into(),
            })
        };
        let old = self.old_guard;
        let s = &self.nodes[i].server;
        let own_up = s.alive && !s.hung;
        match statement {
            S::ReleaseDeadReplicas => return (Answer::Ok, 0),
            S::LookPeer => {
                let p = &self.nodes[1 - i].server;
                let look = if !self.reach() || !p.alive {
                    PeerLook::Gone
                } else if p.hung {
                    PeerLook::Silent
                } else if !p.read_only {
                    PeerLook::Writable
                } else {
                    PeerLook::Fenced
                };
                return (Answer::Peer(look), 0);
            }
            // A refused read counts as no.
            S::ReceiverStarted => {
                let reads = !self.refuses(i, Refusal::Reads);
                return (Answer::Flag(own_up && reads && s.replicating), 0);
            }
            // A hung server holds the statement until the guard's timeout; a dead one
            // refuses the connection at once.
            _ if !own_up => {
                let took = if s.alive { STATEMENT_TIMEOUT } else { 0 };
                return (failed(false), took);
            }
            S::ServedLast | S::KeyReceived | S::Compare if self.refuses(i, Refusal::Reads) => {
                return (failed(true), 0)
            }
            S::KillAbandoned | S::AllowOwnWrites if self.refuses(i, Refusal::Kill) => {
                return (failed(true), 0)
            }
            _ => {}
        }
        let answer = match statement {
            S::CatchUpSlice => {
                let took = self.rand(MS / 2, 60 * MS);
                return (
                    Answer::CaughtUp {
                        reached: true,
                        target: "model".into(),
                        applying: true,
                    },
                    took,
                );
            }
            S::Compare => {
                let p = &self.nodes[1 - i].server;
                if !self.reach() || !p.alive {
                    return (failed(false), 0);
                }
                if p.hung {
                    return (failed(false), PEER_HUNG / 3);
                }
                let r = crate::mysql::divergence::rejoin(&self.look(i));
                Answer::Compared {
                    errant: crate::mysql::divergence::names(&r.errant),
                    missing: if old {
                        0
                    } else {
                        crate::mysql::divergence::count(&r.missing)
                    },
                    missing_names: crate::mysql::divergence::names(&r.missing).join(","),
                    replicate: r.replicate,
                }
            }
            S::StartReplication if self.refuses(i, Refusal::Replication) => failed(true),
            S::StartReplication => {
                self.nodes[i].server.replicating = true;
                self.replicate();
                Answer::Ok
            }
            S::ServedLast => {
                let s = &self.nodes[i].server;
                Answer::Flag(old || s.promo[i] >= s.promo[0].max(s.promo[1]))
            }
            S::KeyReceived if old || self.ignore_key_tenure => Answer::Number(u64::MAX),
            S::KeyReceived => {
                let s = &self.nodes[i].server;
                Answer::Number(s.key[0].max(s.key[1]))
            }
            S::StopReplication => {
                // What reached the server so far is in its data.
                self.replicate();
                let refused = self.refuses(i, Refusal::Replication);
                let s = &mut self.nodes[i].server;
                if !self.master_stops_replicating {
                    Answer::Ok
                } else if s.replicating && refused {
                    // The old guard warned and went on, still replicating.
                    if old {
                        Answer::Ok
                    } else {
                        failed(true)
                    }
                } else {
                    s.replicating = false;
                    Answer::Ok
                }
            }
            S::KillAbandoned => {
                // An earlier fence's connection, dropped while its statement waited in a
                // hung server, is killed: that read_only = ON never lands after this.
                self.nodes[i].server.fence_queued = None;
                Answer::Ok
            }
            S::AllowOwnWrites => Answer::Ok,
            S::BumpTerm { key } => {
                let s = &mut self.nodes[i].server;
                if self.nodes[i].refused[Refusal::TermWrite as usize] {
                    // The old guard went on without a term.
                    if old {
                        Answer::Number(s.promo[i])
                    } else {
                        failed(true)
                    }
                } else {
                    let next = s.promo[0].max(s.promo[1]) + 1;
                    s.promo[i] = next;
                    if let Some(k) = key {
                        s.key[i] = k;
                    }
                    Answer::Number(next)
                }
            }
            // The old guard retried a refused read_only = OFF.
            S::SetWritable if self.refuses(i, Refusal::ReadOnly) => failed(!old),
            S::SetWritable => {
                self.writable_now(i);
                Answer::Ok
            }
            S::ReceiverStarted | S::ReleaseDeadReplicas | S::LookPeer => {
                unreachable!("answered above")
            }
        };
        (answer, 0)
    }

    /// Node `i`'s server takes writes from now on: the model's bookkeeping of what the
    /// peer commits without it (errant from now on), and the check that it holds none
    /// of its own errant transactions.
    fn writable_now(&mut self, i: usize) {
        let p = &self.nodes[1 - i].server;
        let visible = self.reach() && p.alive && !p.hung;
        let s = &self.nodes[i].server;
        let (held, own) = (s.held[1 - i], s.held[i]);
        // (A peer out of sight cannot be compared with: a partition's split brain, the
        // witness's business.)
        if self.errant_after[i].is_some_and(|a| own > a) && visible {
            self.violation(format!("node {i}: promoted holding errant transactions"));
        }
        // From now on, what the peer commits without this node is errant, provided the
        // terms order the two promotions. Both promoted from the same state (a
        // partition) is a two-way split brain: neither side's writes are the reference,
        // the run is unprotected anyway.
        let mine = self.nodes[i].server.promo[i];
        self.errant_after = if mine > self.nodes[1 - i].server.promo[1 - i] {
            let mut e = [None; 2];
            e[1 - i] = Some(held);
            e
        } else {
            [None; 2]
        };
        let s = &mut self.nodes[i].server;
        s.read_only = false;
        s.restarted = false;
    }

    /// Dual-master replication, in each direction whose replica threads run while both
    /// servers are up and see each other: the replica holds what its source holds (its
    /// transactions of every origin, and the write-term rows with them).
    fn replicate(&mut self) {
        let up = |s: &Server| s.alive && !s.hung;
        if !self.reach() {
            return;
        }
        for (from, to) in [(0, 1), (1, 0)] {
            let (src, dst) = (&self.nodes[from].server, &self.nodes[to].server);
            if up(src) && up(dst) && dst.replicating {
                let (held, promo, key) = (src.held, src.promo, src.key);
                let dst = &mut self.nodes[to].server;
                for k in 0..2 {
                    dst.held[k] = dst.held[k].max(held[k]);
                    dst.promo[k] = dst.promo[k].max(promo[k]);
                    dst.key[k] = dst.key[k].max(key[k]);
                }
            }
        }
    }

    /// Clients write to every server that accepts writes (one commit per event), and
    /// replication carries what it may. Errant transactions must never reach the other
    /// server (a server holding some must never be promoted: checked at promotion; a
    /// cut-off master keeps taking them until it is fenced, the witness's business).
    fn write_and_replicate(&mut self) {
        for i in 0..2 {
            if self.accepting(i) {
                self.nodes[i].server.held[i] += 1;
                let seq = self.nodes[i].server.held[i];
                self.pending[i].push_back((seq, self.now + SEMI_SYNC_TIMEOUT));
            }
        }
        self.replicate();
        // Semi-sync (AFTER_SYNC): a commit is acknowledged once the peer has it, or
        // without it when the timeout falls back to async, if its client still reaches
        // the server then; otherwise its client never hears OK.
        for i in 0..2 {
            while let Some(&(seq, due)) = self.pending[i].front() {
                let p = &self.nodes[1 - i].server;
                if p.held[i] >= seq {
                    self.acked[i].insert(seq);
                } else if self.now >= due {
                    if self.accepting(i) {
                        self.acked[i].insert(seq);
                        // The peer, replicating, could not receive it for the network
                        // (hung or not: cut off, resuming would not bring it), having
                        // received this server's latest promotion: the timeout's
                        // documented exposure (nothing on the peer's side can know of
                        // it). With a witness, a peer cut off since before that
                        // promotion can know (the key tenure it never received a
                        // write of): no exemption then.
                        let latest = self.nodes[i].server.promo[i];
                        let knowable = self.witness.is_some() && p.promo[i] < latest;
                        if !self.reach() && p.replicating && p.alive && !knowable {
                            self.acked_unseen[i].insert(seq);
                        }
                    }
                } else {
                    break;
                }
                self.pending[i].pop_front();
            }
        }
        for k in 0..2 {
            let Some(after) = self.errant_after[k] else {
                continue;
            };
            if self.nodes[1 - k].server.held[k] > after {
                self.violation(format!(
                    "node {k}'s errant transactions reached node {}",
                    1 - k
                ));
            }
        }
    }

    // --- faults -----------------------------------------------------------------------

    fn tracker_after(&mut self, i: usize, healthy: bool, delay: u64) {
        self.nodes[i].tracker_gen += 1;
        let gen = self.nodes[i].tracker_gen;
        self.at(
            self.now + delay,
            Ev::Tracker {
                node: i,
                healthy,
                gen,
            },
        );
    }

    fn fault(&mut self, f: Fault) {
        let now = self.now();
        match f {
            Fault::LinkDown(i) | Fault::LinkUp(i) => {
                let up = matches!(f, Fault::LinkUp(_));
                if self.nodes[i].link == up {
                    return;
                }
                self.nodes[i].link = up;
                // Cut off with its server hung: the peer takes over at once (it cannot
                // reach the server) and the kill comes HUNG_KILL later.
                self.nodes[i].server.unwatched |= !up && self.nodes[i].server.hung;
                self.epoch += 1;
                let tracking = self.tracking(i);
                self.feed(i, Input::Track { now, tracking });
            }
            Fault::Partition => {
                self.partition = true;
                // Both still reach the witness: only one can hold the key.
                self.unprotected |= self.witness.is_none();
                self.epoch += 1;
            }
            Fault::Heal => self.partition = false,
            Fault::MysqldKill(i) => {
                let s = &mut self.nodes[i].server;
                if !s.alive {
                    return;
                }
                // Its data, and the write term in it, stay on disk.
                *s = Server {
                    promo: s.promo,
                    key: s.key,
                    held: s.held,
                    ..Server::default()
                };
                // The tracker's parked connection closes at once.
                self.tracker_after(i, false, MS);
            }
            Fault::MysqldRestart(i) => {
                if self.nodes[i].server.alive {
                    return;
                }
                if self.nodes[i].tracker_healthy {
                    // The tracker's connection closed with the old mysqld (1 ms): its
                    // check has failed before a restart, which takes far longer, answers.
                    self.nodes[i].tracker_healthy = false;
                    let tracking = self.tracking(i);
                    self.feed(i, Input::Track { now, tracking });
                }
                let s = &mut self.nodes[i].server;
                // The data, and the write term in it, survive the restart; the replica
                // threads wait for the guard (`skip_slave_start`).
                *s = Server {
                    alive: true,
                    read_only: true,
                    restarted: true,
                    promo: s.promo,
                    key: s.key,
                    held: s.held,
                    ..Server::default()
                };
                self.tracker_after(i, true, 3_000 * MS);
            }
            Fault::MysqldHang(i) => {
                let s = &mut self.nodes[i].server;
                if !s.alive || s.hung {
                    return;
                }
                s.hung = true;
                s.unwatched = self.nodes[i].core.is_none() || !self.nodes[i].link;
                self.tracker_after(i, false, 700 * MS);
            }
            Fault::MysqldResume(i) => {
                let s = &mut self.nodes[i].server;
                if !s.hung {
                    return;
                }
                s.hung = false;
                if s.unwatched {
                    // Its agent was dead while it hung: nothing fenced or killed it, and
                    // the survivor counted the silent server as gone.
                    self.unprotected = true;
                }
                // A fence that waited inside the server runs among everything else that
                // was queued there: clients' statements see it writable meanwhile (the
                // lab measured 4–58 ms).
                if let Some(term) = self.nodes[i].server.fence_queued {
                    let d = self.rand(MS, 60 * MS);
                    self.at(self.now + d, Ev::QueuedFence { node: i, term });
                }
                self.tracker_after(i, true, 3_000 * MS);
            }
            Fault::AgentKill(i) => {
                // The VIP and the server stay as they are; the guard dies with the agent.
                let n = &mut self.nodes[i];
                n.core = None;
                n.queue.clear();
                n.step = Step::Idle;
                n.guard_gen += 1;
                n.tick_at = None;
                n.server.fence_queued = None;
                n.server.unwatched |= n.server.hung;
            }
            Fault::AgentRestart(i) => {
                if self.nodes[i].core.is_none() {
                    self.start_agent(i);
                }
            }
            Fault::Switchover(i) => {
                if let Some(core) = self.nodes[i].core.as_mut() {
                    if let Ok(actions) = core.switchover(now) {
                        self.apply(i, actions);
                    }
                }
            }
            Fault::Reload(i, priority) => {
                self.nodes[i].priority = priority;
                let primary = if i == 0 { "192.0.2.11" } else { "192.0.2.12" };
                let mut settings = settings(priority, primary);
                settings.anti_flap = Duration::from_nanos(ANTI_FLAP);
                self.feed(
                    i,
                    Input::Reconfigure {
                        now,
                        settings,
                        policy: Some(CatchupPolicy::StayBackup),
                    },
                );
            }
            Fault::Loss(i, pct) => self.nodes[i].loss = pct,
            Fault::Revoke(i, r) => self.nodes[i].refused[r as usize] = true,
            Fault::Grant(i, r) => self.nodes[i].refused[r as usize] = false,
        }
    }

    /// Everything back to health at `at`.
    /// `on_hung = "kill"`: SIGKILL to the hung server. What was queued in it never runs;
    /// a commit that had reached its binary log is kept by crash recovery (held here
    /// alone unless the peer still replicates). Its service manager restarts it.
    fn kill_hung_server(&mut self, i: usize, term: u64) {
        self.nodes[i].killed_for = Some(term);
        let s = &mut self.nodes[i].server;
        if !s.read_only {
            s.held[i] += 1;
        }
        *s = Server {
            promo: s.promo,
            key: s.key,
            held: s.held,
            ..Server::default()
        };
        self.replicate();
        self.tracker_after(i, false, MS);
        let restart = self.rand(500 * MS, 3_000 * MS);
        self.at(self.now + restart, Ev::Fault(Fault::MysqldRestart(i)));
    }

    fn heal_all(&mut self, at: u64) {
        for i in 0..2 {
            // systemd restarts a dead agent first, in seconds.
            for f in [
                Fault::AgentRestart(i),
                Fault::MysqldRestart(i),
                Fault::MysqldResume(i),
                Fault::LinkUp(i),
                Fault::Loss(i, 0),
            ] {
                self.at(at, Ev::Fault(f));
            }
            for r in REFUSALS {
                self.at(at, Ev::Fault(Fault::Grant(i, r)));
            }
        }
        self.at(at, Ev::Fault(Fault::Heal));
    }

    fn step(&mut self, ev: Ev) {
        if std::env::var_os("XVRRPD_MODEL_TRACE").is_some()
            && matches!(ev, Ev::Fault(_) | Ev::QueuedFence { .. })
        {
            eprintln!("{:>9.3} ms event {ev:?}", self.now as f64 / MS as f64);
        }
        match ev {
            Ev::Fault(f) => self.fault(f),
            Ev::Advert {
                to,
                priority,
                epoch,
            } => {
                if epoch != self.epoch || !self.nodes[to].link || self.nodes[to].core.is_none() {
                    return;
                }
                // The kernel times the master's silence from this advert.
                let n = &mut self.nodes[to];
                n.kernel_gen += 1;
                let gen = n.kernel_gen;
                let engine = n.core.as_ref().expect("core").engine();
                let deadline = if priority == 0 {
                    engine.skew()
                } else {
                    engine.master_down_interval()
                };
                self.at(
                    self.now + deadline.as_nanos() as u64,
                    Ev::KernelDown { node: to, gen },
                );
                let src = if to == 0 { "192.0.2.12" } else { "192.0.2.11" };
                let now = self.now();
                self.feed(
                    to,
                    Input::Vrrp(VrrpInput::Advert {
                        now,
                        src: src.parse().expect("address"),
                        priority,
                        interval: Duration::from_nanos(ADVERT),
                    }),
                );
            }
            Ev::KernelDown { node, gen } => {
                if self.nodes[node].kernel_gen == gen {
                    let now = self.now();
                    self.feed(node, Input::Vrrp(VrrpInput::MasterDown { now }));
                }
            }
            Ev::Tick { node, at } => {
                if self.nodes[node].tick_at == Some(at) {
                    self.nodes[node].tick_at = None;
                    let now = self.now();
                    self.feed(node, Input::Vrrp(VrrpInput::Tick { now }));
                }
            }
            Ev::Guard { node, gen } => {
                if self.nodes[node].guard_gen == gen {
                    self.guard_step(node);
                }
            }
            Ev::WitnessApply { node, req, gen } => {
                // A member up to two changes behind answers a serializable read.
                let lag = self.rand(0, 3) as usize;
                let answer = match (&mut self.witness, self.nodes[node].link) {
                    (Some(w), true) => {
                        w.lag = lag;
                        w.apply(NAMES[node], &req)
                    }
                    // Cut off on the way: never applied.
                    _ => crate::witness::lease::Answer::Failed,
                };
                let d = if answer == crate::witness::lease::Answer::Failed {
                    WITNESS_TIMEOUT
                } else {
                    self.rand(MS / 2, 5 * MS)
                };
                self.at(self.now + d, Ev::WitnessAnswer { node, answer, gen });
            }
            Ev::WitnessAnswer { node, answer, gen } => {
                if self.nodes[node].witness_gen == gen && self.nodes[node].core.is_some() {
                    let now = self.now();
                    self.feed(node, Input::Witness { now, answer });
                }
            }
            Ev::Probe => {
                let seen = self.snapshot();
                self.snapshots.push(seen);
            }
            Ev::QueuedFence { node, term } => {
                let s = &mut self.nodes[node].server;
                if !s.alive || s.hung || s.fence_queued != Some(term) {
                    return;
                }
                s.fence_queued = None;
                s.read_only = true;
                // The attempt that queued it was still waiting: it landed.
                if let Step::Demote {
                    machine,
                    attempt: Some(Attempt::Queued { term: t, .. }),
                    ..
                } = &self.nodes[node].step
                {
                    if *t == term {
                        let machine = machine.clone();
                        self.nodes[node].guard_gen += 1;
                        self.demote(node, *machine, fenced());
                    }
                }
            }
            Ev::Tracker { node, healthy, gen } => {
                let n = &self.nodes[node];
                let alive = n.server.alive && !n.server.hung;
                if n.tracker_gen == gen && (!healthy || alive) {
                    self.nodes[node].tracker_healthy = healthy;
                    let tracking = self.tracking(node);
                    let now = self.now();
                    self.feed(node, Input::Track { now, tracking });
                }
            }
        }
    }

    /// Runs `script`, heals everything, lets the pair settle; returns the violations.
    pub fn run(mut self, script: &[(u64, Fault)]) -> Vec<String> {
        self.play(script);
        self.violations
    }

    /// Looks at the pair `ms` into the run (after the faults of that millisecond).
    pub fn probe(&mut self, ms: u64) {
        // A nanosecond after the faults scheduled for that millisecond.
        self.at(ms * MS + MS + 1, Ev::Probe);
    }

    fn snapshot(&self) -> Snapshot {
        let nodes = 0..self.nodes.len();
        Snapshot {
            at_ms: self.now / MS - 1,
            vip: nodes.clone().filter(|&i| self.nodes[i].vip).collect(),
            writable: nodes.clone().filter(|&i| self.accepting(i)).collect(),
            states: self
                .nodes
                .iter()
                .map(|n| n.core.as_ref().map(|c| c.state()))
                .collect(),
            blocked: nodes
                .filter(|&i| self.nodes[i].core.as_ref().is_some_and(|c| c.blocked()))
                .collect(),
        }
    }

    /// [`Self::run`], keeping the simulation to read its snapshots.
    pub fn play(&mut self, script: &[(u64, Fault)]) {
        for (ms, f) in script {
            self.at(ms * MS + MS, Ev::Fault(*f));
        }
        self.heal_all(RUN + MS);
        let end = RUN + SETTLE;
        while let Some(Timed(t, _, ev)) = self.events.pop() {
            if t > end {
                break;
            }
            self.now = t;
            self.step(ev);
            self.write_and_replicate();
            self.check();
        }
        self.converged();
    }

    fn converged(&mut self) {
        let holders: Vec<usize> = (0..2).filter(|&i| self.nodes[i].vip).collect();
        let writable: Vec<usize> = (0..2).filter(|&i| self.accepting(i)).collect();
        if holders.len() != 1 || writable != holders {
            self.violation(format!(
                "not converged after healing: VIP on {holders:?}, writable {writable:?}, states {:?}",
                self.nodes
                    .iter()
                    .map(|n| n.core.as_ref().map(|c| c.state()))
                    .collect::<Vec<_>>()
            ));
        }
        // Undoing errant transactions leaves nothing to quarantine: both servers end with
        // the same transactions (and without it, the divergent one is the only difference).
        let (a, b) = (&self.nodes[0].server, &self.nodes[1].server);
        if self.data_must_converge && a.held != b.held {
            self.violation(format!(
                "the servers' data differ after healing: node 0 holds {:?}, node 1 {:?}",
                a.held, b.held
            ));
        }
    }
}

fn fenced() -> demotion::Answer {
    demotion::Answer::Fenced {
        killed: 1,
        in_doubt: 0,
        took: Duration::from_millis(5),
    }
}

fn killed() -> demotion::Answer {
    demotion::Answer::Killed {
        pid: 1,
        process: "mysqld".into(),
    }
}

proptest! {
    // PROPTEST_CASES raises the count for a longer search (512 run in seconds).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn two_nodes_never_break_the_write_invariants((script, seed) in script()) {
        let violations = Sim::new(seed, FenceModel::KillsWhatHoldsItUp).run(&script);
        prop_assert!(violations.is_empty(), "{script:?}\n{}", violations.join("\n"));
    }
}

// Named failover cases, and the cases that show the model can fail, are scenario files
// in `src/role/conformance/`, run by [`conformance`].
