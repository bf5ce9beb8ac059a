//! The agent's privileges by the names each flavor grants them under, each with a
//! harmless statement that proves the account holds it where one exists. What each is for
//! and which statements need it is flavor-neutral: `xvrrpd::mysql::privileges`.
use super::Flavor;

/// A privilege the agent may need, by what it allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    /// `SET GLOBAL read_only` (`super_read_only`): promotion and the fence.
    ReadOnly,
    /// Stopping and starting replication.
    ReplicationAdmin,
    /// Reading the replica status.
    ReplicaMonitor,
    /// `KILL CONNECTION` of other accounts' threads.
    ConnectionAdmin,
    /// Seeing other accounts' threads in the processlist.
    Process,
    /// The write term's table: `CREATE`, `INSERT`, `UPDATE`, `SELECT` on `xvrrpd.*`.
    TermCreate,
    TermInsert,
    TermUpdate,
    TermSelect,
    /// Flashback: listing the binary logs and their events.
    BinlogMonitor,
    /// Flashback: reading the binary log remotely.
    BinlogRead,
    /// Flashback: writing unlogged.
    BinlogAdmin,
    /// Flashback: replaying row events.
    BinlogReplay,
    /// Flashback: `RESET MASTER`.
    BinlogReset,
    /// Flashback: setting the binary log's GTID state.
    GtidStateAdmin,
    /// Clone: the recipient's `CLONE INSTANCE`.
    CloneAdmin,
    /// Clone: the donor's side.
    CloneDonor,
    /// Clone: reading the binary log remotely for the archive.
    RemoteBinlogRead,
}

/// A harmless statement that needs exactly this privilege: it fails with an access error
/// (1227, 1142, 1044) without it, and changes nothing with it (it may fail otherwise,
/// with one of `allowed`: that still proves the privilege).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub sql: &'static str,
    /// Error codes that mean "allowed, nothing done".
    pub allowed: &'static [u16],
}

/// A privilege as a flavor grants it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub name: &'static str,
    pub probe: Option<Probe>,
}

const fn grant(name: &'static str, probe: Option<Probe>) -> Option<Grant> {
    Some(Grant { name, probe })
}

impl Flavor {
    /// `p` by this flavor's name for it (None: not needed, or not there).
    pub fn grant(self, p: Privilege) -> Option<Grant> {
        match self {
            // Measured on MariaDB 10.11. The replication probe sets a replication variable
            // to its own value: `STOP SLAVE 'no-such-connection'` looks the connection up
            // before the privilege.
            Self::MariaDb => match p {
                Privilege::ReadOnly => grant(
                    "READ_ONLY ADMIN",
                    Some(Probe {
                        sql: "SET GLOBAL read_only = @@global.read_only",
                        allowed: &[],
                    }),
                ),
                Privilege::ReplicationAdmin => grant(
                    "REPLICATION SLAVE ADMIN",
                    Some(Probe {
                        sql: "SET GLOBAL slave_net_timeout = @@global.slave_net_timeout",
                        allowed: &[],
                    }),
                ),
                Privilege::ReplicaMonitor => grant(
                    "SLAVE MONITOR",
                    Some(Probe {
                        sql: "SHOW SLAVE STATUS",
                        allowed: &[],
                    }),
                ),
                Privilege::ConnectionAdmin => grant("CONNECTION ADMIN", None),
                Privilege::Process => grant("PROCESS", None),
                Privilege::TermCreate => grant("CREATE", None),
                Privilege::TermInsert => grant("INSERT", None),
                Privilege::TermUpdate => grant("UPDATE", None),
                Privilege::TermSelect => grant("SELECT", None),
                Privilege::BinlogMonitor => grant(
                    "BINLOG MONITOR",
                    Some(Probe {
                        sql: "SHOW BINARY LOGS",
                        allowed: &[],
                    }),
                ),
                Privilege::BinlogRead => grant("REPLICATION SLAVE", None),
                Privilege::BinlogAdmin => grant(
                    "BINLOG ADMIN",
                    Some(Probe {
                        sql: "SET SESSION sql_log_bin = @@session.sql_log_bin",
                        allowed: &[],
                    }),
                ),
                Privilege::BinlogReplay => grant("BINLOG REPLAY", None),
                Privilege::BinlogReset => grant("RELOAD", None),
                Privilege::GtidStateAdmin => grant("REPLICATION MASTER ADMIN", None),
                _ => None,
            },
            // Named after MySQL 8.4's documentation. `replica_net_timeout` takes
            // SYSTEM_VARIABLES_ADMIN, so REPLICATION_SLAVE_ADMIN has no probe: the grants
            // decide.
            Self::Mysql => match p {
                Privilege::ReadOnly => grant(
                    "SYSTEM_VARIABLES_ADMIN",
                    Some(Probe {
                        sql: "SET GLOBAL super_read_only = @@global.super_read_only",
                        allowed: &[],
                    }),
                ),
                Privilege::ReplicationAdmin => grant("REPLICATION_SLAVE_ADMIN", None),
                Privilege::ReplicaMonitor => grant(
                    "REPLICATION CLIENT",
                    Some(Probe {
                        sql: "SHOW REPLICA STATUS",
                        allowed: &[],
                    }),
                ),
                Privilege::ConnectionAdmin => grant("CONNECTION_ADMIN", None),
                Privilege::Process => grant("PROCESS", None),
                Privilege::TermCreate => grant("CREATE", None),
                Privilege::TermInsert => grant("INSERT", None),
                Privilege::TermUpdate => grant("UPDATE", None),
                Privilege::TermSelect => grant("SELECT", None),
                Privilege::CloneAdmin => grant("CLONE_ADMIN", None),
                Privilege::CloneDonor => grant("BACKUP_ADMIN", None),
                Privilege::RemoteBinlogRead => grant("REPLICATION SLAVE", None),
                _ => None,
            },
        }
    }
}
