//! Everything the agent says or reads that differs between MariaDB (10.6+, 11.x) and
//! MySQL (8.0.26+, 8.4, 9.x), in one place: replication statements, variable and status
//! names, processlist words, and the words an operator reads when a step needs a hand.
//! The guard, `xvrrpd check` and the trackers ask here; no other module spells a
//! flavor's statement. GTID syntax lives in [`super::gtid`].
//!
//! MySQL 8.4 removed `START SLAVE`, `SHOW SLAVE STATUS` and the `master`/`slave`
//! semi-sync names; MariaDB accepts `START REPLICA` only from 10.5.1 and keeps its
//! `master`/`slave` variables. Each flavor gets the spelling it has always had.

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

impl Flavor {
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
}
