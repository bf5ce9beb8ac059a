//! Everything the agent says or reads that differs between MariaDB (10.6+, 11.x) and
//! MySQL (8.0.26+, 8.4, 9.x), in one place: replication statements, variable and status
//! names, processlist words, and the words an operator reads when a step needs a hand.
//! The guard, `xvrrpd check` and the trackers ask here; no other module spells a
//! flavor's statement. GTID syntax lives in [`super::gtid`].
//!
//! MySQL 8.4 removed `START SLAVE`, `SHOW SLAVE STATUS` and the `master`/`slave`
//! semi-sync names; MariaDB accepts `START REPLICA` only from 10.5.1 and keeps its
//! `master`/`slave` variables. Each flavor gets the spelling it has always had.

mod grants;

pub use grants::{Grant, Privilege, Probe};

use super::{
    divergence::{Executed, Origin},
    replica::ReplicaStatus,
};

/// Server family, read from `@@version` once per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    Mysql,
}

/// A semi-sync setting or status, by what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Semi {
    /// This server waits for the peer's acknowledgement (variable).
    SourceEnabled,
    /// This server acknowledges what it receives (variable).
    ReplicaEnabled,
    /// AFTER_SYNC or AFTER_COMMIT (variable).
    WaitPoint,
    /// How long a commit waits before it falls back to async, ms (variable).
    Timeout,
    /// Whether commits wait with no replica connected (variable).
    WaitNoReplica,
    /// Whether semi-sync is active now (status).
    SourceActive,
}

impl Semi {
    pub const ALL: [Semi; 6] = [
        Semi::SourceEnabled,
        Semi::ReplicaEnabled,
        Semi::WaitPoint,
        Semi::Timeout,
        Semi::WaitNoReplica,
        Semi::SourceActive,
    ];
}

/// Every flavor's `SHOW ... STATUS` for replicas, in the order to try them on a server
/// whose flavor is not known yet: newest first.
pub const REPLICA_STATUS_SPELLINGS: [&str; 2] = ["SHOW REPLICA STATUS", "SHOW SLAVE STATUS"];

/// How a flavor names its transactions: the GTID model the catch-up, divergence and
/// write-term rules read ([`super::gtid`], [`super::divergence`]). A new flavor picks
/// one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GtidStyle {
    /// `domain-server-seq` (MariaDB): the executed state is the binary log's state plus
    /// the replica position; a server is named by its `server_id`.
    Domain,
    /// `uuid:ranges` sets (MySQL): the executed set; a server is named by its
    /// `server_uuid`.
    Uuid,
}

/// How a divergent server's errant transactions can leave it without an operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Undo {
    /// Reversed row events applied in place (`mariadb-binlog --flashback`).
    Flashback,
    /// The server rebuilt from its peer (the clone plugin).
    Clone,
}

impl Flavor {
    pub const ALL: [Flavor; 2] = [Flavor::MariaDb, Flavor::Mysql];

    /// As `--flavor` names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::MariaDb => "mariadb",
            Self::Mysql => "mysql",
        }
    }

    /// As an operator reads it.
    pub fn product(self) -> &'static str {
        match self {
            Self::MariaDb => "MariaDB",
            Self::Mysql => "MySQL",
        }
    }

    /// From `--flavor`; an unknown name is an error naming the choices (never a guess:
    /// the account printed would not work).
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown flavor {name:?}: write one of {}",
                    Self::ALL.map(Self::name).join(", ")
                )
            })
    }

    pub fn gtid_style(self) -> GtidStyle {
        match self {
            Self::MariaDb => GtidStyle::Domain,
            Self::Mysql => GtidStyle::Uuid,
        }
    }

    /// The in-place way out for errant transactions this flavor has.
    pub fn undo(self) -> Undo {
        match self {
            Self::MariaDb => Undo::Flashback,
            Self::Mysql => Undo::Clone,
        }
    }

    /// What my.cnf must load before semi-sync can be switched on (None: built in).
    pub fn semi_plugins(self) -> Option<&'static str> {
        match self {
            Self::MariaDb => None,
            Self::Mysql => Some("plugin_load_add = semisync_source.so and semisync_replica.so"),
        }
    }

    /// The server's executed transactions and the origin naming its own, from the row
    /// [`Self::executed`] returns (as text). The parse error, if any, is the inner result.
    pub fn executed_from(self, row: &[String]) -> (Result<Executed, String>, Origin) {
        let col = |i: usize| row.get(i).map_or("", String::as_str);
        match self.gtid_style() {
            GtidStyle::Domain => (
                Executed::mariadb(&[col(0), col(1)]),
                Origin::Maria(col(2).trim().parse().unwrap_or(0)),
            ),
            GtidStyle::Uuid => (Executed::mysql(col(0)), Origin::Mysql(col(1).to_string())),
        }
    }

    /// What reached a replica from its source, as transactions (its receiver's
    /// position or set).
    pub fn received(self, s: &ReplicaStatus) -> Result<Executed, String> {
        match self.gtid_style() {
            GtidStyle::Domain => Executed::mariadb(&[&s.gtid_io_pos]),
            GtidStyle::Uuid => Executed::mysql(&s.retrieved_gtid_set),
        }
    }

    /// What a replica with `own_server_id` must apply before it may take writes, in the
    /// syntax [`Self::gtid_wait`] takes (None: nothing by GTID; the caller falls back to
    /// binary log coordinates). MariaDB's own domain is left out: those are its own.
    pub fn catchup_gtids(self, s: &ReplicaStatus, own_server_id: u32) -> Option<String> {
        match self.gtid_style() {
            GtidStyle::Domain if s.using_gtid => {
                Some(super::gtid::foreign_maria(&s.gtid_io_pos, own_server_id))
            }
            GtidStyle::Uuid if !s.retrieved_gtid_set.trim().is_empty() => {
                Some(s.retrieved_gtid_set.split_whitespace().collect())
            }
            _ => None,
        }
    }

    /// Whether `read_only` lets privileged accounts write, so the fence needs
    /// `super_read_only` ([`Self::fence`]).
    pub fn has_super_read_only(self) -> bool {
        self.allow_own_writes().is_some()
    }

    /// MariaDB says so in its version string (`10.11.6-MariaDB-0+deb12u1`); anything else
    /// (`8.4.3`, `9.7.4-2`) is MySQL.
    pub fn from_version(version: &str) -> Self {
        if version.to_ascii_lowercase().contains("mariadb") {
            Self::MariaDb
        } else {
            Self::Mysql
        }
    }

    /// Starts both replica threads.
    pub fn start_replica(self) -> &'static str {
        match self {
            Self::MariaDb => "START SLAVE",
            Self::Mysql => "START REPLICA",
        }
    }

    /// Stops the applier only (the receiver is handled apart: it may hang on a peer gone).
    pub fn stop_applier(self) -> &'static str {
        match self {
            Self::MariaDb => "STOP SLAVE SQL_THREAD",
            Self::Mysql => "STOP REPLICA SQL_THREAD",
        }
    }

    /// Stops the receiver.
    pub fn stop_receiver(self) -> &'static str {
        match self {
            Self::MariaDb => "STOP SLAVE IO_THREAD",
            Self::Mysql => "STOP REPLICA IO_THREAD",
        }
    }

    /// The replica status, in the spelling this flavor has always accepted (MySQL 8.4 no
    /// longer knows `SHOW SLAVE STATUS`; MariaDB 10.4 does not know `SHOW REPLICA
    /// STATUS`).
    pub fn replica_status(self) -> &'static str {
        match self {
            Self::MariaDb => "SHOW SLAVE STATUS",
            Self::Mysql => "SHOW REPLICA STATUS",
        }
    }

    /// Makes the server read-only for everyone but the replication applier. On MySQL
    /// `super_read_only` (implies `read_only`): accounts with CONNECTION_ADMIN, the
    /// agent's included, would otherwise still write.
    pub fn fence(self) -> &'static str {
        match self {
            Self::MariaDb => "SET GLOBAL read_only = ON",
            Self::Mysql => "SET GLOBAL super_read_only = ON",
        }
    }

    /// What lets the agent's own account write its term row while clients still cannot
    /// (MySQL: `super_read_only` off, `read_only` kept; MariaDB: nothing, READ_ONLY
    /// ADMIN writes past `read_only`).
    pub fn allow_own_writes(self) -> Option<&'static str> {
        match self {
            Self::MariaDb => None,
            Self::Mysql => Some("SET GLOBAL super_read_only = OFF"),
        }
    }

    /// The receiver threads' processlist ids, for a KILL that does not wait on a peer that
    /// is gone (None: this flavor stops its receiver with [`Self::stop_receiver`]).
    /// MariaDB names them `Slave_IO`; MySQL shows them as `Connect` threads of the
    /// `system user` and refuses to KILL system threads, and its STOP REPLICA IO_THREAD
    /// shuts the receiver's socket instead of waiting for it.
    pub fn receiver_threads(self) -> Option<&'static str> {
        match self {
            Self::MariaDb => {
                Some("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Slave_IO'")
            }
            Self::Mysql => None,
        }
    }

    /// What the server has executed, with the origin that names its own transactions.
    pub fn executed(self) -> &'static str {
        match self {
            Self::MariaDb => {
                "SELECT @@global.gtid_binlog_state, @@global.gtid_slave_pos, @@server_id"
            }
            Self::Mysql => "SELECT @@global.gtid_executed, @@server_uuid",
        }
    }

    /// Waits until a GTID position or set is applied: `SELECT f(?, timeout_s)`.
    pub fn gtid_wait(self) -> &'static str {
        match self {
            Self::MariaDb => "SELECT MASTER_GTID_WAIT(?, ?)",
            Self::Mysql => "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)",
        }
    }

    /// The variable or status name `s` has on this flavor. MySQL 8.0.26+ with the
    /// `semisync_source` / `semisync_replica` plugins (the only ones 8.4 and 9.x ship);
    /// [`Self::legacy_semi`] for an 8.0 server still on the old plugins.
    pub fn semi(self, s: Semi) -> &'static str {
        match (self, s) {
            (Self::MariaDb, Semi::SourceEnabled) => "rpl_semi_sync_master_enabled",
            (Self::MariaDb, Semi::ReplicaEnabled) => "rpl_semi_sync_slave_enabled",
            (Self::MariaDb, Semi::WaitPoint) => "rpl_semi_sync_master_wait_point",
            (Self::MariaDb, Semi::Timeout) => "rpl_semi_sync_master_timeout",
            (Self::MariaDb, Semi::WaitNoReplica) => "rpl_semi_sync_master_wait_no_slave",
            (Self::MariaDb, Semi::SourceActive) => "rpl_semi_sync_master_status",
            (Self::Mysql, Semi::SourceEnabled) => "rpl_semi_sync_source_enabled",
            (Self::Mysql, Semi::ReplicaEnabled) => "rpl_semi_sync_replica_enabled",
            (Self::Mysql, Semi::WaitPoint) => "rpl_semi_sync_source_wait_point",
            (Self::Mysql, Semi::Timeout) => "rpl_semi_sync_source_timeout",
            (Self::Mysql, Semi::WaitNoReplica) => "rpl_semi_sync_source_wait_no_replica",
            (Self::Mysql, Semi::SourceActive) => "rpl_semi_sync_source_status",
        }
    }

    /// The name before MySQL 8.0.26 (the same on MariaDB).
    pub fn legacy_semi(self, s: Semi) -> &'static str {
        Self::MariaDb.semi(s)
    }

    /// The replica's network timeout variable.
    pub fn net_timeout(self) -> &'static str {
        match self {
            Self::MariaDb => "slave_net_timeout",
            Self::Mysql => "replica_net_timeout",
        }
    }

    /// The privilege that reads the replica status.
    pub fn monitor_privilege(self) -> &'static str {
        match self {
            Self::MariaDb => "SLAVE MONITOR",
            Self::Mysql => "REPLICATION CLIENT",
        }
    }

    /// How to point this server at its peer, for an operator.
    pub fn replicate_from_peer(self) -> &'static str {
        match self {
            Self::MariaDb => {
                "CHANGE MASTER TO MASTER_HOST = <peer>, MASTER_USER = <repl>, MASTER_PASSWORD = ..., MASTER_USE_GTID = slave_pos; START SLAVE"
            }
            Self::Mysql => {
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST = <peer>, SOURCE_USER = <repl>, SOURCE_PASSWORD = ..., SOURCE_AUTO_POSITION = 1; START REPLICA"
            }
        }
    }

    /// The flavor whose GTID syntax `gtid` is (MySQL's always has a `uuid:`; MariaDB's
    /// `domain-server-seq` never has a colon): what status and events use to word the
    /// way out from the errant transactions alone.
    pub fn of_gtid(gtid: &str) -> Self {
        if gtid.contains(':') {
            Self::Mysql
        } else {
            Self::MariaDb
        }
    }

    /// The way out for a server holding the errant transactions `errant` (named as
    /// [`super::divergence::names`] names them).
    pub fn rebuild_for(errant: &[String]) -> &'static str {
        errant
            .first()
            .map_or(Self::MariaDb, |g| Self::of_gtid(g))
            .rebuild()
    }

    /// The operator's way out for a server holding errant transactions.
    pub fn rebuild(self) -> &'static str {
        match self {
            Self::MariaDb => {
                "rebuild this server from the master (mariabackup --backup on the master, \
                 --prepare, restore here, SET GLOBAL gtid_slave_pos from the backup's \
                 xtrabackup_binlog_info, START SLAVE), or undo these transactions here \
                 (on_errant = \"flashback\" does it: mariadb-binlog --flashback); xvrrpd \
                 looks again every few seconds and rejoins by itself once they are gone"
            }
            Self::Mysql => {
                "rebuild this server from the master: CLONE INSTANCE FROM the master \
                 (on_errant = \"clone\" does it; the clone plugin, BACKUP_ADMIN on the \
                 master, CLONE_ADMIN here), or restore a backup of the master and SET \
                 GLOBAL gtid_purged from it; then START REPLICA (SOURCE_AUTO_POSITION = 1). \
                 Read the errant transactions first with mysqlbinlog \
                 --base64-output=decode-rows -v; MySQL cannot undo them in place. xvrrpd \
                 looks again every few seconds and rejoins by itself once they are gone"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_string_names_the_flavor() {
        assert_eq!(
            Flavor::from_version("10.11.6-MariaDB-0+deb12u1"),
            Flavor::MariaDb
        );
        assert_eq!(Flavor::from_version("8.4.3"), Flavor::Mysql);
        assert_eq!(Flavor::from_version("9.7.4-2"), Flavor::Mysql);
    }

    /// MySQL 8.4 and 9.x refuse every `SLAVE` / `MASTER` spelling (ER_PARSE_ERROR): none
    /// may reach a MySQL server.
    #[test]
    fn mysql_is_never_sent_a_removed_spelling() {
        let m = Flavor::Mysql;
        let said: Vec<&str> = [
            m.start_replica(),
            m.stop_applier(),
            m.stop_receiver(),
            m.replica_status(),
            m.fence(),
            m.executed(),
            m.gtid_wait(),
            m.net_timeout(),
        ]
        .into_iter()
        .chain(Semi::ALL.map(|s| m.semi(s)))
        .collect();
        for s in said {
            let u = s.to_ascii_uppercase();
            assert!(
                !u.contains("SLAVE") && !u.contains("MASTER"),
                "{s} is gone from MySQL 8.4"
            );
        }
        assert!(!m.replicate_from_peer().contains("MASTER"));
        assert!(!m.rebuild().contains("mariabackup") && !m.rebuild().contains("START SLAVE"));
    }

    /// `--flavor` takes the names and nothing else: a typo is an error, never MariaDB.
    #[test]
    fn a_flavor_is_parsed_by_name_or_refused() {
        for f in Flavor::ALL {
            assert_eq!(Flavor::parse(f.name()), Ok(f));
        }
        assert_eq!(Flavor::parse(" MySQL "), Ok(Flavor::Mysql));
        let e = Flavor::parse("mysq").unwrap_err();
        assert!(e.contains("mariadb, mysql"), "{e}");
    }

    /// The executed row of each flavor reads as its GTID model: the origin names the
    /// server's own transactions.
    #[test]
    fn the_executed_row_reads_by_the_flavors_gtid_model() {
        let row = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (set, origin) = Flavor::MariaDb.executed_from(&row(&["1-1-5,2-2-3", "2-2-3", "1"]));
        assert_eq!(origin, Origin::Maria(1));
        let peer = Executed::mariadb(&["1-1-4,2-2-3", ""]).unwrap();
        assert_eq!(set.unwrap().beyond(&peer, &origin).len(), 1);
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let (set, origin) = Flavor::Mysql.executed_from(&row(&[&format!("{uuid}:1-5"), uuid]));
        assert_eq!(origin, Origin::Mysql(uuid.into()));
        assert!(set.is_ok());
    }
}
