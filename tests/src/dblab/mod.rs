//! The MySQL dual-master lab: two MariaDB servers replicating from each other (GTID,
//! semi-sync, auto-increment offsets, read_only by default), a failover agent on each
//! node holding a write VIP and a read VIP, and a client that writes one row per commit
//! through the write VIP and reads through the read VIP. A fault hits the write master
//! midway; the lab measures what the client saw and what the data says afterwards.
//!
//! Used by `cargo xtask lab`, `cargo xtask bench mysql` and the integration tests, so the
//! numbers in BENCHMARKS.md and the assertions in the tests come from the same scenario.
use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::{bail, Context, Result};
use mysql_async::{prelude::Queryable, Conn, OptsBuilder};

use crate::{
    has_addr, ip_in, unique, wait_until, Db, DbFlavor, Keepalived, Netns, Router, Segment,
};

mod clients;
mod conf;
mod faults;
mod judge;

use xvrrpd_core::events::Record;

use clients::*;
use conf::*;
use faults::*;
use judge::*;

pub const WRITE_VIP: &str = "192.0.2.100";
pub const READ_VIP: &str = "192.0.2.101";

/// What goes wrong on the write master (db1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// mysqld SIGKILLed; restarted later from its datadir.
    MysqldKill,
    /// The node vanishes: link down, then agent and mysqld killed with no packet out;
    /// later link up and both restarted.
    HostCrash,
    /// The host freezes: its network goes silent (nothing leaves it, ARP included),
    /// then its agent and mysqld are SIGSTOPped; later all of it resumes at once, the
    /// old master still holding its VIP and a writable server.
    HostFreeze,
    /// The failover agent SIGKILLed (mysqld keeps running); restarted later.
    AgentKill,
    /// db1 and db2 cannot reach each other, the client reaches both; healed later.
    Partition,
    /// Not a fault: a planned `xvrrpd switchover write` on db1 (xvrrpd only).
    Switchover,
    /// Packet loss (percent) on both nodes' links, for the whole `down` time.
    Loss(u8),
    /// Delay and jitter (ms) on both nodes' links.
    Delay(u16, u16),
    /// Both cores busy and heavy direct disk I/O: the hogs share one core with db1's agent
    /// (the master's), or with db2's (the backup's).
    StarveMaster,
    StarveBackup,
    /// db1's link goes down and up, 150 ms down every 500 ms.
    LinkFlap,
    /// db1's mysqld SIGSTOPped (hung, port still open); SIGCONT on recovery.
    MysqldStop,
    /// db1's mysqld stops (a query in flight is acknowledged at TCP level and never
    /// answered), then 100 ms later the host freezes as in `HostFreeze`.
    HostFreezeAfterHang,
    /// db1's mysqld killed three times, restarted after 700 ms each time (anti-flap).
    RepeatedCrash,
    /// The backup's (db2's) agent SIGKILLed; restarted later. Nothing should move.
    BackupAgentKill,
    /// db1 cut off from db2 and from the witness (the client still reaches it): the
    /// master on the minority side. Healed later.
    PartitionMaster,
    /// The witness host's etcd member killed (the two on the database hosts keep the
    /// quorum); restarted later. Nothing should move.
    WitnessDown,
    /// etcd's leader killed and restarted: the others elect a new one while the master
    /// renews. Nothing should move.
    EtcdLeaderChange,
    /// etcd loses its quorum: the members on db2 and the witness killed, db1's own left
    /// running without a leader; restarted later. Nobody may write meanwhile.
    EtcdQuorumLoss,
}

impl Fault {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "mysqld-kill" => Self::MysqldKill,
            "host-crash" => Self::HostCrash,
            "host-freeze" => Self::HostFreeze,
            "agent-kill" => Self::AgentKill,
            "partition" => Self::Partition,
            "switchover" => Self::Switchover,
            "starve-master" => Self::StarveMaster,
            "starve-backup" => Self::StarveBackup,
            "link-flap" => Self::LinkFlap,
            "mysqld-stop" => Self::MysqldStop,
            "host-freeze-after-hang" => Self::HostFreezeAfterHang,
            "repeated-crash" => Self::RepeatedCrash,
            "backup-agent-kill" => Self::BackupAgentKill,
            "partition-master" => Self::PartitionMaster,
            "witness-down" => Self::WitnessDown,
            "etcd-leader-change" => Self::EtcdLeaderChange,
            "etcd-quorum-loss" => Self::EtcdQuorumLoss,
            _ => {
                if let Some(p) = s.strip_prefix("loss-").and_then(|p| p.parse().ok()) {
                    Self::Loss(p)
                } else if let Some((d, j)) = s
                    .strip_prefix("delay-")
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(d, j)| Some((d.parse().ok()?, j.parse().ok()?)))
                {
                    Self::Delay(d, j)
                } else {
                    bail!("unknown fault {s:?}: use mysqld-kill, host-crash, host-freeze, host-freeze-after-hang, agent-kill, partition, switchover, loss-PCT, delay-MS-JITTER, starve-master, starve-backup, link-flap, mysqld-stop, repeated-crash, backup-agent-kill, or with --witness partition-master, witness-down, etcd-leader-change or etcd-quorum-loss")
                }
            }
        })
    }
    pub fn name(self) -> String {
        match self {
            Self::Loss(p) => format!("loss-{p}"),
            Self::Delay(d, j) => format!("delay-{d}-{j}"),
            other => other.base_name().to_string(),
        }
    }

    /// Faults that are not failures: a failover during one is a false takeover.
    pub fn expects_no_failover(self) -> bool {
        matches!(
            self,
            Self::Loss(_)
                | Self::Delay(..)
                | Self::StarveMaster
                | Self::StarveBackup
                | Self::BackupAgentKill
                | Self::WitnessDown
                | Self::EtcdLeaderChange
        )
    }

    fn base_name(self) -> &'static str {
        match self {
            Self::MysqldKill => "mysqld-kill",
            Self::HostCrash => "host-crash",
            Self::HostFreeze => "host-freeze",
            Self::AgentKill => "agent-kill",
            Self::Partition => "partition",
            Self::Switchover => "switchover",
            Self::Loss(_) => "loss",
            Self::Delay(..) => "delay",
            Self::StarveMaster => "starve-master",
            Self::StarveBackup => "starve-backup",
            Self::LinkFlap => "link-flap",
            Self::MysqldStop => "mysqld-stop",
            Self::HostFreezeAfterHang => "host-freeze-after-hang",
            Self::RepeatedCrash => "repeated-crash",
            Self::BackupAgentKill => "backup-agent-kill",
            Self::PartitionMaster => "partition-master",
            Self::WitnessDown => "witness-down",
            Self::EtcdLeaderChange => "etcd-leader-change",
            Self::EtcdQuorumLoss => "etcd-quorum-loss",
        }
    }

    /// Faults of the witness itself: they need `--witness`.
    pub fn needs_witness(self) -> bool {
        matches!(
            self,
            Self::PartitionMaster
                | Self::WitnessDown
                | Self::EtcdLeaderChange
                | Self::EtcdQuorumLoss
        )
    }
}

/// Which failover setup runs on the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// xvrrpd with the write guard (catch-up, read_only fencing), MySQL tracker,
    /// semi-sync replication.
    Xvrrpd,
    /// The classic: keepalived 2.2.7, a TCP port-check `vrrp_script` every 1 s (fall 2,
    /// rise 3, weight -60), both servers writable, async replication, no catch-up.
    Classic,
}

/// What the client writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// One new row per commit (`lab.w`): a lost write is a missing row.
    Insert,
    /// The account workload ([`crate::bank`]): updates of existing rows, where a lost
    /// write is a silently overwritten balance.
    Bank,
}

impl Workload {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "insert" => Ok(Self::Insert),
            "bank" => Ok(Self::Bank),
            _ => bail!("unknown workload {s:?}: use insert or bank"),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Bank => "bank",
        }
    }
    /// The table it writes most.
    pub fn table(self) -> &'static str {
        match self {
            Self::Insert => "lab.w",
            Self::Bank => "lab.acct",
        }
    }
}

/// Which client writes (the insert workload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// The lab's own (mysql_async): 50 ms connect and 250 ms statement timeouts.
    Builtin,
    /// PyMySQL as an application uses it: default settings (no connect, read or write
    /// timeout), one persistent connection, reconnect on error.
    Pymysql,
    /// One `mariadb` command-line session with its defaults (no timeouts; reconnects when
    /// the server has gone), fed one INSERT per line as someone at its prompt would.
    MariadbCli,
}

impl Client {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "builtin" => Ok(Self::Builtin),
            "pymysql" => Ok(Self::Pymysql),
            "mariadb-cli" => Ok(Self::MariadbCli),
            _ => bail!("unknown client {s:?}: use builtin, pymysql or mariadb-cli"),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Builtin => "builtin",
            Self::Pymysql => "pymysql",
            Self::MariadbCli => "mariadb-cli",
        }
    }
}

/// What a server holds of the workload's data.
#[derive(Clone, Debug, PartialEq)]
enum Held {
    Rows(BTreeSet<i64>),
    Accounts(crate::bank::Balances),
}

fn held(db: &Db, w: Workload) -> Result<Held> {
    Ok(match w {
        Workload::Insert => Held::Rows(rows(db)?),
        Workload::Bank => Held::Accounts(crate::bank::balances(db)?),
    })
}

#[derive(Clone, Debug)]
pub struct LabOptions {
    pub setup: Setup,
    /// MariaDB 10.11 or MySQL 9.7 on both nodes.
    pub flavor: DbFlavor,
    pub workload: Workload,
    /// Who writes the insert workload.
    pub client: Client,
    /// xvrrpd: the new master tickles the old master's client connections.
    pub reset_clients: bool,
    pub fault: Fault,
    pub interval_ms: u64,
    /// Steady writes before the fault.
    pub steady: Duration,
    /// How long the fault lasts before the old master comes back.
    pub down: Duration,
    /// Writes after the old master is back.
    pub after: Duration,
    /// xvrrpd: the write guard's catch-up bound and policy.
    pub catchup_timeout: Duration,
    pub policy: &'static str,
    pub anti_flap: Duration,
    /// db2's applier kept this far behind (whole seconds; MASTER_DELAY) from before the
    /// fault: what db1 acknowledged sits in db2's relay log unapplied that long, so
    /// catch-up cannot finish sooner (tests the timeout policies).
    pub survivor_applier_delay: Option<Duration>,
    /// db2's replication stopped by hand (both threads, as a DBA does) before the fault:
    /// it falls behind db1 from then on, and must never be promoted while it lacks what
    /// db1 acknowledged (a switchover is refused, saying why).
    pub stop_survivor_replication: bool,
    /// With `host-freeze-after-hang`: a client opens a connection to the write VIP
    /// while db1's mysqld is stopped and its network still up (the handshake completes
    /// in the kernel, the greeting never comes), then waits for the greeting: it must be
    /// reset by the takeover, not left waiting for TCP keepalive.
    pub greeting_waiter: bool,
    /// A client that opens connections to the write VIP in a loop (1 s connect timeout,
    /// 20 ms apart), each answered by MySQL's greeting, a refusal or a reset, or by
    /// nothing: no attempt may go unanswered for longer than the takeover.
    pub connect_prober: bool,
    /// A second client whose ARP entry for the write VIP stays on db1 (one that missed
    /// the new master's announcement, or behind a switch that still sends there): it
    /// writes through the VIP in a loop, reconnecting after every error. Whatever db1
    /// acknowledges after the fault while db2 serves is a write on a stale master.
    pub stale_client: bool,
    /// A frozen host resumes network first, then mysqld, then the agent (the worst
    /// order: a host's kernel answers at once, and mysqld may get the CPU before the
    /// agent); otherwise the processes first and the network last.
    pub resume_network_first: bool,
    /// xvrrpd: a three-member etcd cluster (db1, db2 and a `witness` namespace) holds
    /// the write key (`[witness]`).
    pub witness: bool,
    /// The witness over TLS, client certificates included (as it should be deployed);
    /// false: plain HTTP.
    pub witness_tls: bool,
    /// Print the timeline as it happens.
    pub verbose: bool,
    /// Once the old master is back and replicates again (verified: both threads
    /// running), hand the write role back to it.
    pub give_back: Option<GiveBack>,
    /// With `give_back: Preempt`: before the hand-back, db1's replication is stopped
    /// by hand and its applier held by a read lock, so it falls behind db2. It must not
    /// preempt while behind (its agent says BEHIND), even past its anti-flap hold; the
    /// lock released, it catches up and preempts.
    pub old_master_behind: bool,
    /// Revoke this global privilege from db2's agent account before the fault: the pair
    /// must stay safe without it (no stale promotion, a clear error).
    pub revoke_on_db2: Option<&'static str>,
}

/// How the write role goes back to the old master after it rejoined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveBack {
    /// `xvrrpd switchover write` on db2.
    Switchover,
    /// db1 preempts on priority once its anti-flap hold ends (give the lab a short one).
    Preempt,
}

impl GiveBack {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "switchover" => Ok(Self::Switchover),
            "preempt" => Ok(Self::Preempt),
            _ => bail!("unknown --then {s:?}: use switchover or preempt"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Switchover => "switchover",
            Self::Preempt => "preempt",
        }
    }
}

impl Default for LabOptions {
    fn default() -> Self {
        Self {
            setup: Setup::Xvrrpd,
            flavor: DbFlavor::Mariadb,
            workload: Workload::Insert,
            client: Client::Builtin,
            reset_clients: true,
            fault: Fault::MysqldKill,
            interval_ms: 10,
            steady: Duration::from_secs(3),
            down: Duration::from_secs(4),
            after: Duration::from_secs(4),
            catchup_timeout: Duration::from_secs(10),
            policy: "stay-backup",
            anti_flap: Duration::from_secs(60),
            survivor_applier_delay: None,
            stop_survivor_replication: false,
            greeting_waiter: false,
            connect_prober: false,
            stale_client: false,
            resume_network_first: false,
            witness: false,
            witness_tls: true,
            verbose: false,
            give_back: None,
            old_master_behind: false,
            revoke_on_db2: None,
        }
    }
}

/// What the lab measured.
#[derive(Clone, Debug, Default)]
pub struct LabReport {
    /// With `give_back`: the old master replicated again (IO and SQL threads running)
    /// before the role went back, and ms from its recovery until it held the write VIP
    /// on a writable server again.
    pub old_master_replicated: Option<bool>,
    /// With `old_master_behind`: what db1's agent said while behind (`xvrrpd status`),
    /// and whether db1 held the write VIP at any look while it was behind.
    pub behind_said: Option<String>,
    pub preempted_while_behind: bool,
    pub given_back_ms: Option<f64>,
    /// Longest gap between two acknowledged writes, from the fault on (ms).
    pub outage_ms: f64,
    /// Acknowledged rows missing on the survivor while the old master was away.
    pub acked_missing: usize,
    /// Replication errors on either node after the old master rejoined.
    pub replication_errors: usize,
    /// Time both servers accepted writes (read_only = OFF on both, both up), ms.
    pub dual_writable_ms: f64,
    pub acked: usize,
    pub failed_writes: usize,
    /// Longest gap between two successful reads through the read VIP (ms).
    pub read_outage_ms: f64,
    /// After the run: the old master's read_only, its role, and whether both servers hold
    /// the same rows.
    pub old_master_read_only: Option<bool>,
    pub converged: bool,
    /// (monotonic ns, what) in order.
    pub timeline: Vec<(u64, String)>,
    pub fault_ns: u64,
    /// The write VIP from the fault to the end: time on both nodes, longest such stretch,
    /// times db2 took it (a takeover), owner changes.
    pub write_vip: crate::chaos::VipStats,
    /// The same from the recovery (+2 s to settle) to the end: must be clean.
    pub write_vip_after: crate::chaos::VipStats,
    /// At the end: how many nodes hold the write VIP, and whether the client's ARP entry
    /// for it names the holder's MAC.
    pub final_owners: usize,
    pub client_arp_ok: bool,
    /// Acknowledged rows missing from the final data (after recovery and convergence):
    /// lost for good.
    pub acked_lost_final: usize,
    /// First write acknowledged after the fault by a server other than db1: when (ms
    /// after the fault) and by which server_id.
    pub resumed: Option<(f64, u32)>,
    /// With `greeting_waiter`: when (ms after the fault) its wait ended, and how
    /// ("reset", "closed", "greeting", "no answer", or the connect error).
    pub greeting_wait: Option<(f64, String)>,
    /// With `connect_prober`: its attempts from the fault until the recovery (ms after
    /// the fault it began, ms it took, how it ended).
    pub connects: Vec<(f64, f64, &'static str)>,
    /// With `stale_client`: its writes db1 acknowledged after the fault (ms after the
    /// fault), while db2 was writable.
    pub stale_acked: Vec<f64>,
    /// The stale client ran (the RESULT line names its figure).
    pub stale_client: bool,
    /// db1's write instance becoming master again after the fault: (ms after the fault,
    /// reason), from its event stream.
    pub failbacks: Vec<(f64, String)>,
    /// Every fence after the fault, from the event streams.
    pub fences: Vec<FenceSeen>,
    /// When db1 was brought back (monotonic ns; 0 if the run stopped before).
    pub recovered_ns: u64,
    /// Every transition of either node, from their JSON event streams, in time order.
    pub transitions: Vec<TransitionSeen>,
    /// Every record of both nodes' event streams, in time order: what the tests judge
    /// the agents by (never the timeline's wording).
    pub events: Vec<Seen>,
    /// A switchover the lab expected to be refused was: the control socket's answer.
    pub switchover_refused: Option<String>,
    /// Every write the client attempted, in order: when it ended (CLOCK_MONOTONIC ns) and
    /// the server that acknowledged it (None: failed). The timeline picture draws them.
    pub writes: Vec<(u64, Option<u32>)>,
    /// Acknowledged writes missing from the final data of either server, counted as
    /// increments (bank) or rows (insert).
    pub acked_increments_missing: usize,
    /// Rows (accounts) that differ between the two servers after convergence.
    pub rows_differing: usize,
    /// Writes the client saw fail (error or no answer) that are committed all the same:
    /// their outcome was unknown to the client (a commit killed by a fence is one).
    pub in_doubt: usize,
    /// The write terms of the write instance's promotions, from both events streams in
    /// time order (None: a promotion that could not record it).
    pub write_terms: Vec<Option<u64>>,
    /// The highest write term of the write instance in db1's and db2's data at the end.
    pub term_rows: [Option<u64>; 2],
    /// `@@gtid_binlog_state` of db1 and db2 at the end: what each server has executed and
    /// logged, per (domain, origin server).
    pub gtid_states: [String; 2],
    /// The errant GTIDs each node's guard last reported (empty: not divergent).
    pub divergent: [Vec<String>; 2],
    /// With a witness: the highest fencing term either node acquired the write key as.
    pub fencing_term: Option<u64>,
}

/// One record of a node's events stream.
#[derive(Clone, Debug)]
pub struct Seen {
    pub node: &'static str,
    pub record: Record,
    /// How the timeline words it (for people: nothing is judged by it).
    pub told: String,
}

/// One transition as a node's events stream told it.
#[derive(Clone, Debug)]
pub struct TransitionSeen {
    pub ts_ns: u64,
    pub node: &'static str,
    pub instance: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// One fence (`read_only = ON` by a guard) as its events stream told it.
#[derive(Clone, Debug)]
pub struct FenceSeen {
    pub node: &'static str,
    /// When it landed, ms after the fault.
    pub at_ms: f64,
    /// From the statement to read_only in force.
    pub fence_ms: f64,
    pub killed: u64,
    /// Killed while committing: committed on this server alone, client not told.
    pub in_doubt: u64,
}

impl LabReport {
    /// `node`'s records about the write instance, in time order.
    pub fn write_records<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Record> + 'a {
        self.events
            .iter()
            .filter(move |s| s.node == node && s.record.instance() == Some("write"))
            .map(|s| &s.record)
    }

    /// `node` said this of its write instance after the fault.
    pub fn said_after_fault(&self, node: &str, what: impl Fn(&Record) -> bool) -> bool {
        self.write_records(node)
            .any(|r| r.ts_ns().is_some_and(|t| t > self.fault_ns) && what(r))
    }

    /// `node` said this of its write instance at any time.
    pub fn said(&self, node: &str, what: impl Fn(&Record) -> bool) -> bool {
        self.write_records(node).any(what)
    }

    /// The RESULT line and the timeline (ms from the fault) on stderr.
    pub fn print(&self) {
        eprintln!("{}", self.result_line());
        for (ts, what) in &self.timeline {
            eprintln!(
                "{:>10.1} ms  {what}",
                (*ts as f64 - self.fault_ns as f64) / 1e6
            );
        }
    }

    pub fn result_line(&self) -> String {
        let mut fencing = self
            .fencing_term
            .map_or(String::new(), |t| format!(" fencing_term={t}"));
        if let Some(r) = self.old_master_replicated {
            fencing.push_str(&format!(" old_master_replicated={r}"));
        }
        if let Some(ms) = self.given_back_ms {
            fencing.push_str(&format!(" given_back_ms={ms:.1}"));
        }
        if self.behind_said.is_some() {
            fencing.push_str(&format!(
                " preempted_while_behind={}",
                self.preempted_while_behind
            ));
        }
        if self.stale_client {
            fencing.push_str(&format!(" stale_acked={}", self.stale_acked.len()));
        }
        format!(
            "RESULT outage_ms={:.1} acked_missing={} replication_errors={} dual_writable_ms={:.1} in_doubt={} acked_increments_missing={} rows_differing={} divergent={}{fencing}",
            self.outage_ms,
            self.acked_missing,
            self.replication_errors,
            self.dual_writable_ms,
            self.in_doubt,
            self.acked_increments_missing,
            self.rows_differing,
            self.divergent.iter().filter(|d| !d.is_empty()).count()
        )
    }
}

/// CLOCK_MONOTONIC in ns: the clock of the agents' event streams and of the kernel.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

type Timeline = Arc<Mutex<Vec<(u64, String)>>>;

fn note(t: &Timeline, verbose: bool, what: String) {
    let now = mono_ns();
    if verbose {
        println!("  {what}");
    }
    t.lock().expect("timeline").push((now, what));
}

/// One database node: namespace, server, agent.
struct DbNode<'a> {
    name: &'static str,
    ns: &'a Netns,
    addr: String,
    port: String,
    db: Db,
    agent: Option<Agent>,
    agent_conf: String,
    events: PathBuf,
    /// CPU and disk hogs sharing a core with this node's agent (starvation faults).
    hogs: Option<crate::chaos::Hogs>,
}

enum Agent {
    X(Router),
    K(Keepalived),
}

impl DbNode<'_> {
    fn start_agent(&mut self, setup: Setup) -> Result<()> {
        // An xvrrpd restarted after a kill keeps its directory (state files, socket), as
        // under systemd.
        if let Some(Agent::X(r)) = self.agent.as_mut() {
            return r.restart(self.ns);
        }
        self.agent = Some(match setup {
            Setup::Xvrrpd => Agent::X(Router::start_with_tools(
                self.ns,
                &self.agent_conf,
                match self.db.flavor {
                    DbFlavor::Mariadb => None,
                    DbFlavor::Mysql => Some(crate::db::mysql_tools()?),
                },
            )?),
            Setup::Classic => Agent::K(Keepalived::start_text(self.ns, &self.agent_conf)?),
        });
        Ok(())
    }
    fn kill_agent(&mut self) {
        match self.agent.as_mut() {
            Some(Agent::X(r)) => r.kill(),
            Some(Agent::K(k)) => k.kill(),
            None => {}
        }
    }
    /// Stops or resumes the agent (SIGSTOP / SIGCONT).
    fn signal_agent(&self, sig: i32) -> Result<()> {
        let pid = self.agent_pgid().context("no agent")?;
        // SAFETY: kill(2) on a pid this lab started.
        if unsafe { libc::kill(pid, sig) } != 0 {
            bail!("kill({pid}, {sig}): {}", std::io::Error::last_os_error());
        }
        Ok(())
    }
    /// The agent's process group (its pid).
    fn agent_pgid(&self) -> Option<i32> {
        match &self.agent {
            Some(Agent::X(r)) => Some(r.proc.pid()),
            Some(Agent::K(k)) => Some(k.proc.pid()),
            None => None,
        }
    }
    fn agent_log(&self) -> String {
        match &self.agent {
            Some(Agent::X(r)) => r.log(),
            Some(Agent::K(k)) => k.log(),
            None => String::new(),
        }
    }
}

/// Runs one lab scenario end to end. Everything it starts is torn down on return.
pub fn run(opts: &LabOptions, stop: &AtomicBool) -> Result<LabReport> {
    let timeline: Timeline = Arc::default();
    let v = opts.verbose;
    if opts.fault.needs_witness() && !opts.witness {
        bail!(
            "fault {} is a fault of the witness: add --witness",
            opts.fault.name()
        );
    }
    if opts.witness && opts.setup != Setup::Xvrrpd {
        bail!("--witness is xvrrpd's: the classic setup has none");
    }
    let seg = Segment::new(3 + usize::from(opts.witness) + usize::from(opts.stale_client))?;
    let client = &seg.nodes[2];
    // After the witness, when there is one.
    let stale = opts.stale_client.then(|| seg.nodes.last().expect("nodes"));
    let dir = std::env::temp_dir().join(unique("xvl"));
    std::fs::create_dir_all(&dir)?;
    let _cleanup = RemoveDir(dir.clone());
    // Dropped before the directory goes (declared after it).
    let mut etcd = if opts.witness {
        note(
            &timeline,
            v,
            "starting etcd on db1, db2 and witness (the write key's three members)".into(),
        );
        let members: Vec<(&crate::Netns, &str)> = [0, 1, 3]
            .iter()
            .map(|&i| (&seg.nodes[i].ns, seg.nodes[i].addr4.as_str()))
            .collect();
        Some(crate::etcd::Cluster::start(
            &members,
            &dir,
            opts.witness_tls,
        )?)
    } else {
        None
    };

    note(
        &timeline,
        v,
        format!(
            "starting {} on db1 and db2 (dual-master, GTID)",
            opts.flavor.product()
        ),
    );
    let mut nodes = Vec::new();
    for (i, name) in ["db1", "db2"].into_iter().enumerate() {
        let n = &seg.nodes[i];
        let id = i as u32 + 1;
        let args = opts.flavor.pair_args(id, opts.setup == Setup::Xvrrpd);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let db = Db::start_with(&n.ns, opts.flavor, &args)?;
        let events = dir.join(format!("{name}.events"));
        std::fs::write(&events, "")?;
        let (pw, pr) = if i == 0 { (150, 100) } else { (100, 150) };
        let agent_conf = match opts.setup {
            Setup::Xvrrpd => xvrrpd_conf(
                opts,
                &dir,
                &db.socket,
                (pw, pr),
                &events,
                &match &etcd {
                    Some(c) => c.witness_toml(name)?,
                    None => String::new(),
                },
            )?,
            Setup::Classic => keepalived_conf(opts, name, &n.addr4, pw, pr),
        };
        nodes.push(DbNode {
            name,
            ns: &n.ns,
            addr: n.addr4.clone(),
            port: n.port.clone(),
            db,
            agent: None,
            agent_conf,
            events,
            hogs: None,
        });
    }
    for n in &nodes {
        // The agent's account as the docs give it (the classic pair's check uses it too).
        let conf = (opts.setup == Setup::Xvrrpd).then(|| dir.join(format!("{}.toml", n.name)));
        if let Some(c) = &conf {
            std::fs::write(c, &n.agent_conf)?;
        }
        n.db.create_agent_account(conf.as_deref())
            .with_context(|| format!("the agent's account on {}", n.name))?;
        n.db.setup_sql(
            "SET sql_log_bin = 0;
             CREATE USER repl@'%' IDENTIFIED BY 'repl';
             GRANT REPLICATION SLAVE ON *.* TO repl@'%';
             CREATE USER app@'%' IDENTIFIED BY 'app';
             GRANT SELECT, INSERT, UPDATE, DELETE ON lab.* TO app@'%';",
        )
        .with_context(|| format!("the lab's accounts on {}", n.name))?;
    }
    // Both servers have the replication account before either connects to the other.
    for (i, n) in nodes.iter().enumerate() {
        n.db.setup_sql(&opts.flavor.replicate_from(&nodes[1 - i].addr))
            .with_context(|| format!("setting up replication on {}", n.name))?;
    }
    nodes[0].db.setup_sql(
        "CREATE DATABASE lab;
         CREATE TABLE lab.w (id BIGINT AUTO_INCREMENT PRIMARY KEY, seq BIGINT NOT NULL UNIQUE,
           server_id INT NOT NULL) ENGINE=InnoDB;",
    )?;
    if opts.workload == Workload::Bank {
        nodes[0].db.setup_sql(crate::bank::SCHEMA)?;
    }
    let table = match opts.workload {
        Workload::Insert => "SELECT COUNT(*) >= 0 FROM lab.w",
        Workload::Bank => "SELECT COUNT(*) >= 1000 FROM lab.acct",
    };
    if !wait_until(Duration::from_secs(20), || {
        nodes[1].db.sql(table).is_ok_and(|s| s.trim() == "1")
    }) {
        bail!(
            "the schema never replicated to db2: {}",
            nodes[1]
                .db
                .sql("SHOW REPLICA STATUS\\G")
                .unwrap_or_default()
        );
    }

    if let Some(privilege) = opts.revoke_on_db2 {
        nodes[1].db.setup_sql(&format!(
            "SET sql_log_bin = 0; REVOKE {privilege} ON *.* FROM xvrrpd@'%', xvrrpd@'localhost'"
        ))?;
        note(
            &timeline,
            v,
            format!("db2's agent account lacks {privilege} (revoked)"),
        );
    }
    note(&timeline, v, format!("starting {} on both nodes (write VIP {WRITE_VIP} prefers db1, read VIP {READ_VIP} prefers db2)", match opts.setup { Setup::Xvrrpd => "xvrrpd", Setup::Classic => "keepalived (classic port check)" }));
    nodes[0].start_agent(opts.setup)?;
    if opts.setup == Setup::Xvrrpd {
        // db1 first, healthy (its MySQL check starts failing until `rise` passes), so the
        // pair starts the way a running pair looks: write master db1.
        let healthy = wait_until(Duration::from_secs(15), || {
            nodes[0].agent_log().contains("healthy=true")
        });
        if !healthy {
            bail!("db1's MySQL check never passed:\n{}", nodes[0].agent_log());
        }
    }
    nodes[1].start_agent(opts.setup)?;
    let converged = wait_until(Duration::from_secs(30), || {
        has_addr(nodes[0].ns, WRITE_VIP)
            && !has_addr(nodes[1].ns, WRITE_VIP)
            && has_addr(nodes[1].ns, READ_VIP)
            && (opts.setup == Setup::Classic
                || nodes[0]
                    .db
                    .sql("SELECT @@read_only")
                    .is_ok_and(|s| s.trim() == "0"))
    });
    if !converged {
        bail!(
            "the pair did not converge (write VIP on db1, writable; read VIP on db2)\ndb1:\n{}\ndb2:\n{}",
            nodes[0].agent_log(),
            nodes[1].agent_log()
        );
    }
    note(
        &timeline,
        v,
        "write VIP on db1 (writable), read VIP on db2".into(),
    );

    // Load generators and the dual-writable monitor.
    let done = Arc::new(AtomicBool::new(false));
    let writes: Arc<Mutex<Vec<Write>>> = Arc::default();
    let reads: Arc<Mutex<Vec<u64>>> = Arc::default();
    let samples: Arc<Mutex<Vec<(u64, bool)>>> = Arc::default();
    let ops: Arc<Mutex<Vec<crate::bank::Op>>> = Arc::default();
    let writer = spawn_in_ns(&client.ns.name, {
        let (done, writes, t, ops) = (done.clone(), writes.clone(), timeline.clone(), ops.clone());
        let (workload, client) = (opts.workload, opts.client);
        move || match (workload, client) {
            (Workload::Insert, Client::Builtin) => writer(done, writes, t, v),
            (Workload::Insert, Client::Pymysql) => pymysql_writer(done, writes, t, v),
            (Workload::Insert, Client::MariadbCli) => cli_writer(done, writes, t, v),
            (Workload::Bank, _) => bank_writer(done, writes, ops, t, v),
        }
    });
    let reader = spawn_in_ns(&client.ns.name, {
        let (done, reads) = (done.clone(), reads.clone());
        move || reader(done, reads)
    });
    let stale_writer = match stale {
        Some(sc) => {
            let mac = crate::mac_of(&seg.nodes[0].ns, "eth0")?;
            crate::pin_neighbour(&sc.ns, WRITE_VIP, &mac)?;
            let (done, writes) = (done.clone(), writes.clone());
            Some(spawn_in_ns(&sc.ns.name, move || stale_writer(done, writes)))
        }
        None => None,
    };
    let prober = opts.connect_prober.then(|| {
        let done = done.clone();
        spawn_in_ns_with(&client.ns.name, move || probe_connects(&done))
    });
    let monitor = {
        let (done, samples) = (done.clone(), samples.clone());
        let socks = [nodes[0].db.socket.clone(), nodes[1].db.socket.clone()];
        std::thread::spawn(move || monitor(done, samples, socks))
    };
    let vip_sampler = crate::chaos::VipSampler::start(
        &[&nodes[0].ns.name, &nodes[1].ns.name],
        WRITE_VIP.parse().expect("VIP"),
    );
    let mut recovered_ns = 0;
    let mut applier_lock: Option<std::process::Child> = None;
    let mut greeting_rx = None;
    let mut switchover_refused = None;
    let applier_lock = &mut applier_lock;
    let (mut old_master_replicated, mut given_back_ms) = (None, None);
    let (mut behind_said, mut preempted_while_behind) = (None, false);
    let result = (|| -> Result<(u64, Held)> {
        pause(opts.steady, stop)?;
        if let Some(delay) = opts.survivor_applier_delay {
            nodes[1]
                .db
                .sql(&opts.flavor.applier_delay(delay.as_secs()))?;
            note(
                &timeline,
                v,
                format!(
                    "db2's applier kept {} s behind (MASTER_DELAY): its relay log fills",
                    delay.as_secs()
                ),
            );
            // The delay holds back what arrives from now on: full once it has passed.
            pause(delay, stop)?;
        }
        if opts.stop_survivor_replication {
            *applier_lock = Some(stop_by_hand(&nodes[1].db, opts, stop)?);
            note(
                &timeline,
                v,
                format!(
                    "db2's replication stopped by hand, {} read-locked: it falls behind db1",
                    opts.workload.table()
                ),
            );
            pause(Duration::from_millis(500), stop)?;
        }
        let fault_ns = mono_ns();
        if std::env::var_os("XVRRPD_LAB_DEBUG").is_some() {
            eprintln!("fault at {} ms", fault_ns / 1_000_000);
        }
        note(&timeline, v, format!("FAULT {} on db1", opts.fault.name()));
        if opts.greeting_waiter {
            greeting_rx = Some(wait_for_greeting(&client.ns.name, fault_ns));
        }
        match inject(opts.fault, &seg, &mut nodes, etcd.as_mut()) {
            // Expected of a switchover to a backup that is behind: the judge reads why.
            Err(e) if opts.fault == Fault::Switchover && opts.stop_survivor_replication => {
                note(&timeline, v, format!("SWITCHOVER REFUSED: {e:#}"));
                switchover_refused = Some(format!("{e:#}"));
            }
            r => r?,
        }
        pause(opts.down, stop)?;
        // What the survivor holds while the old master is away: db2's, unless a witness
        // kept db1 serving (db2 never got the write key), then db1's. Told by the server
        // that acknowledged the last write (with a witness only one can), not by who holds
        // the VIP this instant: db1 may be between losing its key and taking it again.
        let last_acked = writes
            .lock()
            .expect("writes")
            .iter()
            .filter(|w| w.server.is_some())
            .max_by_key(|w| w.done_ns)
            .and_then(|w| w.server);
        let kept = opts.witness && last_acked == Some(1);
        let survivor = held(&nodes[usize::from(!kept)].db, opts.workload)?;
        note(
            &timeline,
            v,
            format!("recovering db1 ({})", opts.fault.name()),
        );
        if let Some(mut lock) = applier_lock.take() {
            let _ = lock.kill();
            let _ = lock.wait();
            note(&timeline, v, "db2's read lock released".into());
        }
        recover(opts, &seg, &mut nodes, etcd.as_mut())?;
        recovered_ns = mono_ns();
        note(&timeline, v, "db1 back".into());
        pause(opts.after, stop)?;
        if let Some(how) = opts.give_back {
            let replicated = wait_until(Duration::from_secs(30), || replicates(&nodes[0].db));
            old_master_replicated = Some(replicated);
            // And its write instance back in the election (a server rebuilt by CLONE
            // restarted: its MySQL check passes again `rise` checks later). A switchover
            // asked before that finds no backup to hand over to.
            if replicated && how == GiveBack::Switchover {
                let ready = wait_until(Duration::from_secs(30), || {
                    matches!(&nodes[0].agent, Some(Agent::X(r)) if r.status().is_ok_and(|s| {
                        s["instances"].as_array().is_some_and(|a| {
                            a.iter().any(|i| i["name"] == "write" && i["state"] == "BACKUP")
                        })
                    }))
                });
                if !ready {
                    bail!(
                        "db1 replicates but its write instance never became BACKUP:\n{}",
                        nodes[0].agent_log()
                    );
                }
            }
            if !replicated {
                bail!(
                    "db1 never replicated again after {}: {:?}",
                    opts.fault.name(),
                    nodes[0].db.replica_status()
                );
            }
            if opts.old_master_behind {
                let (said, preempted) = behind_old_master(opts, &nodes, fault_ns, &timeline, stop)?;
                behind_said = Some(said);
                preempted_while_behind = preempted;
            }
            note(
                &timeline,
                v,
                format!(
                    "db1 replicates again (IO and SQL threads running): {} back to it",
                    how.name()
                ),
            );
            if how == GiveBack::Switchover {
                match &nodes[1].agent {
                    Some(Agent::X(r)) => {
                        let (ok, _, err) = r.ctl(&["switchover", "write", "--timeout", "20s"]);
                        if !ok {
                            bail!(
                                "xvrrpd switchover write on db2: {err}\ndb1:\n{}\ndb2:\n{}",
                                nodes[0].agent_log(),
                                nodes[1].agent_log()
                            );
                        }
                    }
                    _ => bail!("give-back is an xvrrpd command: run it with the xvrrpd setup"),
                }
            }
            let back = wait_until(Duration::from_secs(40), || {
                has_addr(nodes[0].ns, WRITE_VIP)
                    && nodes[0]
                        .db
                        .sql("SELECT @@read_only")
                        .is_ok_and(|s| s.trim() == "0")
            });
            if !back {
                bail!("the write role never went back to db1 ({})", how.name());
            }
            given_back_ms = Some((mono_ns() - recovered_ns) as f64 / 1e6);
            note(&timeline, v, "write VIP back on db1 (writable)".into());
            pause(opts.after, stop)?;
        }
        Ok((fault_ns, survivor))
    })();
    let end_ns = mono_ns();
    done.store(true, Ordering::SeqCst);
    let _ = writer.join();
    let _ = reader.join();
    let _ = monitor.join();
    let connects = prober.and_then(|p| p.join().ok()).unwrap_or_default();
    if let Some(s) = stale_writer {
        let _ = s.join();
    }
    let vip = vip_sampler.stop();
    let (fault_ns, survivor) = result?;

    // Let replication settle, then look at the data.
    let converged = wait_until(
        Duration::from_secs(15),
        || matches!((held(&nodes[0].db, opts.workload), held(&nodes[1].db, opts.workload)), (Ok(a), Ok(b)) if a == b),
    );
    let mut report = LabReport {
        converged,
        fault_ns,
        recovered_ns,
        old_master_replicated,
        behind_said,
        preempted_while_behind,
        given_back_ms,
        write_vip: crate::chaos::vip_stats(&vip[0], &vip[1], fault_ns, end_ns),
        write_vip_after: crate::chaos::vip_stats(
            &vip[0],
            &vip[1],
            recovered_ns + 2_000_000_000,
            end_ns,
        ),
        ..Default::default()
    };
    report.greeting_wait = greeting_rx.and_then(|rx| rx.recv_timeout(GREETING_WAIT).ok());
    report.connects = connects
        .into_iter()
        .filter(|(at, _, _)| (fault_ns..recovered_ns.max(fault_ns)).contains(at))
        .map(|(at, took, how)| ((at - fault_ns) as f64 / 1e6, took, how))
        .collect();
    let holders: Vec<&DbNode> = nodes.iter().filter(|n| has_addr(n.ns, WRITE_VIP)).collect();
    report.final_owners = holders.len();
    // The client's cache must name the holder: ping through the VIP once, then look.
    let _ = client
        .ns
        .command("ping")
        .args(["-c1", "-W1", WRITE_VIP])
        .output();
    report.client_arp_ok = match holders.as_slice() {
        [h] => crate::mac_of(h.ns, "eth0")
            .ok()
            .zip(crate::neigh_mac(&client.ns, WRITE_VIP))
            .is_some_and(|(m, n)| m.eq_ignore_ascii_case(&n)),
        _ => false,
    };
    // Which node's guard last called its server divergent (errant GTIDs), from the events.
    for (i, n) in nodes.iter().enumerate() {
        for line in std::fs::read_to_string(&n.events)
            .unwrap_or_default()
            .lines()
        {
            match serde_json::from_str::<Record>(line) {
                Ok(Record::Divergent { errant, .. }) => report.divergent[i] = errant,
                Ok(Record::CaughtUp { .. } | Record::ErrantUndone { .. }) => {
                    report.divergent[i].clear()
                }
                Ok(Record::LeaseAcquired { fencing_term, .. }) => {
                    report.fencing_term = report.fencing_term.max(Some(fencing_term));
                }
                _ => {}
            }
        }
    }
    let writes = writes.lock().expect("writes").clone();
    report.writes = writes.iter().map(|w| (w.done_ns, w.server)).collect();
    let acked: Vec<&Write> = writes.iter().filter(|w| w.server.is_some()).collect();
    report.acked = acked.len();
    let finals = [
        rows(&nodes[0].db).unwrap_or_default(),
        rows(&nodes[1].db).unwrap_or_default(),
    ];
    report.acked_lost_final = acked
        .iter()
        .filter(|w| {
            !finals
                .iter()
                .enumerate()
                .all(|(i, f)| !report.divergent[i].is_empty() || f.contains(&w.seq))
        })
        .count();
    report.failed_writes = writes.len() - acked.len();
    report.in_doubt = writes
        .iter()
        .filter(|w| w.server.is_none() && finals.iter().any(|f| f.contains(&w.seq)))
        .count();
    // Rows acknowledged before the survivor snapshot: every one must be on the survivor.
    let snapshot_cut = fault_ns + opts.down.as_nanos() as u64;
    report.acked_missing = acked
        .iter()
        .filter(|w| {
            w.done_ns < snapshot_cut && matches!(&survivor, Held::Rows(r) if !r.contains(&w.seq))
        })
        .count();
    let snapshots = [
        held(&nodes[0].db, opts.workload).ok(),
        held(&nodes[1].db, opts.workload).ok(),
    ];
    let ops = ops.lock().expect("ops").clone();
    judge_data(&mut report, &ops, &snapshots, &survivor, snapshot_cut);
    // db2 writable: from its first acknowledged write after the fault.
    let db2_serving = acked
        .iter()
        .filter(|w| w.done_ns > fault_ns && w.server == Some(2))
        .map(|w| w.done_ns)
        .min();
    report.stale_client = opts.stale_client;
    report.stale_acked = acked
        .iter()
        .filter(|w| w.seq >= STALE_SEQ && w.server == Some(1))
        .filter(|w| db2_serving.is_some_and(|t| w.done_ns > t))
        .map(|w| (w.done_ns - fault_ns) as f64 / 1e6)
        .collect();
    report.resumed = acked
        .iter()
        .find(|w| w.done_ns > fault_ns && w.server != Some(1))
        .map(|w| ((w.done_ns - fault_ns) as f64 / 1e6, w.server.unwrap_or(0)));
    report.outage_ms = longest_gap(acked.iter().map(|w| w.done_ns), fault_ns, end_ns);
    report.read_outage_ms = longest_gap(
        reads.lock().expect("reads").iter().copied(),
        fault_ns,
        end_ns,
    );
    report.dual_writable_ms = dual_writable_ms(&samples.lock().expect("samples"));
    for (i, n) in nodes.iter().enumerate() {
        // xvrrpd's master replicates from nobody, and neither does a divergent server:
        // only an applier error counts there.
        let serving_or_quarantined = has_addr(n.ns, WRITE_VIP) || !report.divergent[i].is_empty();
        let should_replicate = opts.setup == Setup::Classic || !serving_or_quarantined;
        let errors = replication_errors(&n.db, should_replicate).unwrap_or(1);
        if errors > 0 && std::env::var_os("XVRRPD_LAB_DEBUG").is_some() {
            eprintln!("{}: {:?}", n.name, n.db.replica_status());
        }
        report.replication_errors += errors;
    }
    if std::env::var_os("XVRRPD_LAB_DEBUG").is_some() {
        for n in &nodes {
            eprintln!("--- {} agent log ---\n{}", n.name, n.agent_log());
        }
    }
    report.old_master_read_only = nodes[0]
        .db
        .sql("SELECT @@read_only")
        .ok()
        .map(|s| s.trim() == "1");
    for (i, n) in nodes.iter().enumerate() {
        report.gtid_states[i] =
            n.db.sql(opts.flavor.executed())
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|e| format!("unreadable: {e:#}"));
    }
    if opts.setup == Setup::Xvrrpd {
        for (i, n) in nodes.iter().enumerate() {
            report.term_rows[i] =
                n.db.sql("SELECT MAX(term) FROM xvrrpd.promotion WHERE instance = 'write'")
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
        }
    }
    let mut writables = Vec::new();
    let mut t = timeline.lock().expect("timeline").clone();
    for n in &nodes {
        for line in std::fs::read_to_string(&n.events)
            .unwrap_or_default()
            .lines()
        {
            let Ok(e) = serde_json::from_str::<Record>(line) else {
                continue;
            };
            let ts = e.ts_ns().unwrap_or(0);
            let after_ms = (ts as f64 - fault_ns as f64) / 1e6;
            match &e {
                Record::Transition {
                    instance,
                    from,
                    to,
                    reason,
                    ..
                } => {
                    if ts > fault_ns && n.name == "db1" && instance == "write" && to == "MASTER" {
                        report.failbacks.push((after_ms, reason.clone()));
                    }
                    report.transitions.push(TransitionSeen {
                        ts_ns: ts,
                        node: n.name,
                        instance: instance.clone(),
                        from: from.clone(),
                        to: to.clone(),
                        reason: reason.clone(),
                    });
                }
                Record::Writable {
                    instance,
                    write_term,
                    ..
                } if instance == "write" => writables.push((ts, *write_term)),
                Record::ReadOnly {
                    fence_ms,
                    killed,
                    in_doubt,
                    ..
                } if ts > fault_ns => report.fences.push(FenceSeen {
                    node: n.name,
                    at_ms: after_ms,
                    fence_ms: *fence_ms,
                    killed: *killed as u64,
                    in_doubt: *in_doubt as u64,
                }),
                _ => {}
            }
            let told = format!("{} xvrrpd {}", n.name, describe(&e, line));
            t.push((ts, told.clone()));
            report.events.push(Seen {
                node: n.name,
                record: e,
                told,
            });
        }
    }
    t.sort_by_key(|(ts, _)| *ts);
    report.timeline = t;
    report.events.sort_by_key(|s| s.record.ts_ns());
    report.switchover_refused = switchover_refused;
    writables.sort_by_key(|(ts, _)| *ts);
    report.write_terms = writables.into_iter().map(|(_, term)| term).collect();
    report.transitions.sort_by_key(|t| t.ts_ns);
    Ok(report)
}

/// A client connection: like an application with a short connect timeout, so a SYN lost
/// in the instant the VIP moves costs 50 ms, not TCP's 1 s retransmission.
pub(crate) async fn connect(ip: &str) -> Result<Conn, mysql_async::Error> {
    match tokio::time::timeout(Duration::from_millis(50), Conn::new(client_opts(ip))).await {
        Ok(r) => r,
        Err(_) => Err(mysql_async::Error::Io(mysql_async::IoError::Io(
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out after 50 ms",
            ),
        ))),
    }
}

/// A bounded client step: a dead host must not stall the client for a TCP timeout.
pub(crate) async fn bounded<T>(
    f: impl std::future::Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(Duration::from_millis(250), f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("no answer within 250 ms".into()),
    }
}

/// Samples both servers' read_only through their sockets every 2 ms.
fn monitor(done: Arc<AtomicBool>, samples: Arc<Mutex<Vec<(u64, bool)>>>, socks: [PathBuf; 2]) {
    runtime().block_on(async move {
        let mut conns: [Option<Conn>; 2] = [None, None];
        while !done.load(Ordering::SeqCst) {
            let mut writable = [false; 2];
            for i in 0..2 {
                if conns[i].is_none() {
                    let o = OptsBuilder::default()
                        .socket(Some(socks[i].to_string_lossy().into_owned()))
                        .user(Some("root"));
                    conns[i] = bounded(Conn::new(o)).await.ok();
                }
                if let Some(c) = conns[i].as_mut() {
                    match bounded(c.query_first::<u8, _>("SELECT @@global.read_only")).await {
                        Ok(ro) => writable[i] = ro == Some(0),
                        Err(_) => conns[i] = None,
                    }
                }
            }
            samples
                .lock()
                .expect("samples")
                .push((mono_ns(), writable[0] && writable[1]));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
}

/// Runs `f` on a thread inside network namespace `ns` (its sockets live there).
pub fn spawn_in_ns(ns: &str, f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    spawn_in_ns_with(ns, f)
}

/// As [`spawn_in_ns`], for a thread that returns something.
pub fn spawn_in_ns_with<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("netns file");
        use std::os::fd::AsRawFd;
        // SAFETY: a valid namespace fd; only this thread changes namespace.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            panic!("setns {path}: {}", std::io::Error::last_os_error());
        }
        f()
    })
}

fn pause(d: Duration, stop: &AtomicBool) -> Result<()> {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        if stop.load(Ordering::SeqCst) {
            bail!("interrupted: cleaning up");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

struct RemoveDir(PathBuf);
impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mariadb_prompt_is_read_as_rows_and_errors() {
        let row = |l| match cli_line(l) {
            Some(CliLine::Ok(s, id)) => Some((s, id)),
            _ => None,
        };
        let err = |l| match cli_line(l) {
            Some(CliLine::Err(m)) => Some(m),
            _ => None,
        };
        assert_eq!(row("|   2 |         1 |\r"), Some((2, 1)));
        assert_eq!(row("\u{1b}(B\u{1b}[m| 642 | 2 |"), Some((642, 2)));
        assert_eq!(row("| seq | server_id |"), None, "the header");
        assert_eq!(row("+-----+-----------+"), None);
        assert_eq!(
            row("MariaDB [lab]> INSERT INTO w (seq, server_id) VALUES (1, @@server_id) RETURNING seq, server_id;"),
            None,
            "the echo"
        );
        assert_eq!(
            err("\u{7}\u{1b}[0;7mERROR 2013 (HY000): Lost connection to server during query\r"),
            Some("Lost connection to server during query".into())
        );
        assert_eq!(err("No connection. Trying to reconnect..."), None);
    }
}
