//! What a lab run is asked to do: the fault, the setup, the workload, the client, and
//! every knob of the scenario.
use super::*;

/// What goes wrong on the write master (db1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// mysqld SIGKILLed; restarted later from its datadir.
    MysqldKill,
    /// The node vanishes: link down, then agent and mysqld killed with no packet out;
    /// later link up and both restarted.
    HostCrash,
    /// The node reboots: down as in `HostCrash`, then back with `/run` emptied (the
    /// agent's control socket and maintenance marker gone; its state directory, as
    /// `/var/lib/xvrrpd`, kept), mysqld started from its my.cnf, the agent started.
    Reboot,
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
            "reboot" => Self::Reboot,
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
                    bail!("unknown fault {s:?}: use mysqld-kill, host-crash, reboot, host-freeze, host-freeze-after-hang, agent-kill, partition, switchover, loss-PCT, delay-MS-JITTER, starve-master, starve-backup, link-flap, mysqld-stop, repeated-crash, backup-agent-kill, or with --witness partition-master, witness-down, etcd-leader-change or etcd-quorum-loss")
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
            Self::Reboot => "reboot",
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
