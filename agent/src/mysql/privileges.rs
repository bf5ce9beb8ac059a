//! The agent's database account, from one table: what each privilege is for, which
//! statement of the agent needs it, its name on each flavor, and a harmless statement that
//! proves the account holds it.
//!
//! `xvrrpd grants` prints the account from this table, `xvrrpd check` verifies it
//! against a live server from this table, and the labs create their agents' account from
//! `xvrrpd grants`: a privilege the code needs and the table lacks fails a test, never a
//! production failover. Pure: no I/O here.
pub use super::dialect::Probe;
use super::dialect::{Flavor, Privilege};

/// Where a privilege is granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `ON *.*`.
    Global,
    /// `ON xvrrpd.*`: the write-term table.
    TermSchema,
}

/// Which part of the configuration needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Every write instance's guard (promotion, fence, rejoin, arbitration).
    Guard,
    /// `on_errant = "flashback"` (MariaDB only).
    Flashback,
    /// `on_errant = "clone"` (MySQL only): the divergent server is the clone's recipient,
    /// its peer the donor, with the same account.
    Clone,
}

/// One privilege the agent needs.
#[derive(Clone, Copy, Debug)]
pub struct Need {
    pub scope: Scope,
    pub feature: Feature,
    /// What it allows; its name and probe on each flavor are the dialect's.
    pub privilege: Privilege,
    /// Other names in `SHOW GRANTS` that include it (older aliases, SUPER).
    pub also: &'static [&'static str],
    /// The statements of the agent that need it.
    pub statements: &'static str,
    /// What breaks without it.
    pub why: &'static str,
}

impl Need {
    /// Its name on `flavor`, if that flavor needs it.
    pub fn name(&self, flavor: Flavor) -> Option<&'static str> {
        flavor.grant(self.privilege).map(|g| g.name)
    }

    /// The probe on `flavor`, if there is one.
    pub fn probe(&self, flavor: Flavor) -> Option<Probe> {
        flavor.grant(self.privilege).and_then(|g| g.probe)
    }
}

/// ER_SPECIFIC_ACCESS_DENIED_ERROR, ER_TABLEACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR,
/// ER_ACCESS_DENIED_ERROR, ER_KILL_DENIED_ERROR: the server refused for want of a
/// privilege.
pub const ACCESS_DENIED: &[u16] = &[1227, 1142, 1044, 1045, 1095];

/// Is `code` a refusal for want of a privilege?
pub fn is_access_denied(code: u16) -> bool {
    ACCESS_DENIED.contains(&code)
}

/// Is this statement error (as mysql_async prints it: ``Server error: `ERROR 1227
/// (42000): ...'``) a refusal for want of a privilege?
pub fn refusal_in(error: &str) -> bool {
    error
        .find("ERROR ")
        .and_then(|at| error[at + 6..].split(' ').next())
        .and_then(|code| code.parse().ok())
        .is_some_and(is_access_denied)
}

/// Everything the agent runs, measured on MariaDB 10.11 (and named after MySQL 8.4's
/// documentation for MySQL). `SELECT @@…`, `SHOW GLOBAL VARIABLES / STATUS`,
/// `MASTER_GTID_WAIT` and `WAIT_FOR_EXECUTED_GTID_SET` need nothing.
pub const NEEDS: &[Need] = &[
    Need {
        scope: Scope::Global,
        feature: Feature::Guard,
        privilege: Privilege::ReadOnly,
        also: &["SUPER"],
        statements: "SET GLOBAL read_only / super_read_only",
        why: "make the server writable on promotion and read-only in the fence",
    },
    Need {
        scope: Scope::Global,
        feature: Feature::Guard,
        privilege: Privilege::ReplicationAdmin,
        also: &["SUPER", "REPLICA ADMIN"],
        statements: "STOP SLAVE SQL_THREAD / START SLAVE (STOP / START REPLICA)",
        why: "stop replicating from the peer before taking writes (an old master's errant transactions must not reach the new one) and replicate again once compared",
        // Setting a replication variable to its own value (measured on 10.11: `STOP
        // SLAVE 'no-such-connection'` looks the connection up before the privilege).
        // MySQL's `replica_net_timeout` takes SYSTEM_VARIABLES_ADMIN instead: its
        // grants decide there.
    },
    Need {
        scope: Scope::Global,
        feature: Feature::Guard,
        privilege: Privilege::ReplicaMonitor,
        also: &["SUPER", "REPLICA MONITOR"],
        statements: "SHOW SLAVE STATUS (SHOW REPLICA STATUS)",
        why: "read what reached this node from the peer (catch-up) and whether replication runs (rejoin)",
    },
    Need {
        scope: Scope::Global,
        feature: Feature::Guard,
        privilege: Privilege::ConnectionAdmin,
        also: &["SUPER"],
        statements: "KILL CONNECTION (client threads, a dead replica's dump thread, the receiver)",
        why: "kill the client connections that hold a fence up and a receiver stuck on a frozen peer",
    },
    Need {
        scope: Scope::Global,
        feature: Feature::Guard,
        privilege: Privilege::Process,
        also: &[],
        statements: "SELECT … FROM information_schema.PROCESSLIST",
        why: "see other accounts' connections (the fence kills what it cannot see)",
    },
    Need {
        scope: Scope::TermSchema,
        feature: Feature::Guard,
        privilege: Privilege::TermCreate,
        also: &[],
        statements: "CREATE DATABASE / TABLE IF NOT EXISTS xvrrpd.promotion, xvrrpd.promotion_key",
        why: "record the write term beside the data (which server served writes last)",
    },
    Need {
        scope: Scope::TermSchema,
        feature: Feature::Guard,
        privilege: Privilege::TermInsert,
        also: &[],
        statements: "INSERT … ON DUPLICATE KEY UPDATE xvrrpd.promotion (and promotion_key)",
        why: "record the write term beside the data",
    },
    Need {
        scope: Scope::TermSchema,
        feature: Feature::Guard,
        privilege: Privilege::TermUpdate,
        also: &[],
        statements: "INSERT … ON DUPLICATE KEY UPDATE xvrrpd.promotion (and promotion_key)",
        why: "record the write term beside the data",
    },
    Need {
        scope: Scope::TermSchema,
        feature: Feature::Guard,
        privilege: Privilege::TermSelect,
        also: &[],
        statements: "SELECT … FROM xvrrpd.promotion (here and on the peer), xvrrpd.promotion_key",
        why: "compare write terms when two masters meet and before a node rejoins",
    },
    Need {
        scope: Scope::Global,
        feature: Feature::Flashback,
        privilege: Privilege::BinlogMonitor,
        also: &["SUPER", "REPLICATION CLIENT"],
        statements: "SHOW BINARY LOGS, SHOW BINLOG EVENTS",
        why: "find the errant transactions in the binary log",
    },
    Need {
        scope: Scope::Global,
        feature: Feature::Flashback,
        privilege: Privilege::BinlogRead,
        also: &[],
        statements: "mariadb-binlog --read-from-remote-server",
        why: "read the errant transactions' row events",
    },
    Need {
        scope: Scope::Global,
        feature: Feature::Flashback,
        privilege: Privilege::BinlogAdmin,
        also: &["SUPER"],
        statements: "SET sql_log_bin = 0",
        why: "apply the undo without logging it",
    },
    Need {
        scope: Scope::Global,
        feature: Feature::Flashback,
        privilege: Privilege::BinlogReplay,
        also: &["SUPER"],
        statements: "BINLOG '…' (the reversed row events)",
        why: "replay the reversed row events",
    },
    Need {
        scope: Scope::Global,
        feature: Feature::Flashback,
        privilege: Privilege::BinlogReset,
        also: &[],
        statements: "RESET MASTER",
        why: "drop the undone transactions from the binary log",
    },
    Need {
        scope: Scope::Global,
        feature: Feature::Flashback,
        privilege: Privilege::GtidStateAdmin,
        also: &["SUPER"],
        statements: "SET GLOBAL gtid_binlog_state",
        why: "set the binary log's GTID state without the undone transactions",
    },
    Need {
        scope: Scope::Global,
        feature: Feature::Clone,
        privilege: Privilege::CloneAdmin,
        also: &[],
        statements: "CLONE INSTANCE FROM the peer",
        why: "rebuild a divergent server from its peer",
    },
    Need {
        scope: Scope::Global,
        feature: Feature::Clone,
        privilege: Privilege::CloneDonor,
        also: &[],
        statements: "the peer's side of CLONE INSTANCE (the donor)",
        why: "let the peer's agent rebuild its server from this one",
    },
    Need {
        scope: Scope::Global,
        feature: Feature::Clone,
        privilege: Privilege::RemoteBinlogRead,
        also: &[],
        statements: "mysqlbinlog --read-from-remote-server (the archive of the errant transactions)",
        why: "archive the errant transactions decoded before the clone replaces them",
    },
];

/// What the configuration uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Uses {
    /// A write instance (`[instance.mysql]`).
    pub guard: bool,
    pub flashback: bool,
    pub clone: bool,
}

impl Uses {
    fn wants(&self, f: Feature) -> bool {
        match f {
            Feature::Guard => self.guard,
            Feature::Flashback => self.flashback,
            Feature::Clone => self.clone,
        }
    }
}

/// The privileges `uses` needs on `flavor`, in table order.
pub fn needed(flavor: Flavor, uses: Uses) -> impl Iterator<Item = &'static Need> {
    NEEDS
        .iter()
        .filter(move |n| uses.wants(n.feature) && n.name(flavor).is_some())
}

/// The account as SQL: one `CREATE USER` and two `GRANT`s per host.
pub fn statements(
    flavor: Flavor,
    uses: Uses,
    user: &str,
    hosts: &[String],
    password: &str,
) -> String {
    let names = |scope| {
        let mut v: Vec<&str> = needed(flavor, uses)
            .filter(|n| n.scope == scope)
            .filter_map(|n| n.name(flavor))
            .collect();
        v.dedup();
        v.join(", ")
    };
    let (global, term) = (names(Scope::Global), names(Scope::TermSchema));
    let quote = |s: &str| s.replace('\\', "\\\\").replace('\'', "\\'");
    let mut out = String::new();
    for host in hosts {
        let who = format!("'{}'@'{}'", quote(user), quote(host));
        out.push_str(&format!(
            "CREATE USER IF NOT EXISTS {who} IDENTIFIED BY '{}';\n",
            quote(password)
        ));
        if !global.is_empty() {
            out.push_str(&format!("GRANT {global} ON *.* TO {who};\n"));
        }
        if !term.is_empty() {
            out.push_str(&format!("GRANT {term} ON xvrrpd.* TO {who};\n"));
        }
    }
    out
}

/// Does a grant list (upper-case names on the need's scope) include `need`?
pub fn granted(need: &Need, flavor: Flavor, privileges: &[String]) -> bool {
    let Some(name) = need.name(flavor) else {
        return true;
    };
    privileges.iter().any(|p| {
        p == "ALL PRIVILEGES"
            || p == "ALL"
            || p.eq_ignore_ascii_case(name)
            // MySQL spells dynamic privileges with underscores, MariaDB with spaces.
            || p.replace('_', " ").eq_ignore_ascii_case(&name.replace('_', " "))
            || need.also.iter().any(|a| p.eq_ignore_ascii_case(a))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_is_exactly_what_the_configuration_uses() {
        let guard = Uses {
            guard: true,
            flashback: false,
            clone: false,
        };
        let sql = statements(Flavor::MariaDb, guard, "xvrrpd", &["%".into()], "pw");
        assert_eq!(
            sql,
            "CREATE USER IF NOT EXISTS 'xvrrpd'@'%' IDENTIFIED BY 'pw';\n\
             GRANT READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, SLAVE MONITOR, CONNECTION ADMIN, PROCESS ON *.* TO 'xvrrpd'@'%';\n\
             GRANT CREATE, INSERT, UPDATE, SELECT ON xvrrpd.* TO 'xvrrpd'@'%';\n"
        );
        let all = Uses {
            guard: true,
            flashback: true,
            clone: true,
        };
        let sql = statements(Flavor::MariaDb, all, "xvrrpd", &["localhost".into()], "pw");
        for p in [
            "BINLOG MONITOR",
            "REPLICATION SLAVE,",
            "BINLOG ADMIN",
            "BINLOG REPLAY",
            "RELOAD",
            "REPLICATION MASTER ADMIN",
        ] {
            assert!(sql.contains(p), "{p} missing from {sql}");
        }
        let mysql = statements(Flavor::Mysql, all, "xv", &["%".into()], "it's");
        assert!(mysql.contains("IDENTIFIED BY 'it\\'s'"), "{mysql}");
        assert!(
            mysql.contains("GRANT SYSTEM_VARIABLES_ADMIN, REPLICATION_SLAVE_ADMIN, REPLICATION CLIENT, CONNECTION_ADMIN, PROCESS, CLONE_ADMIN, BACKUP_ADMIN, REPLICATION SLAVE ON *.*"),
            "{mysql}"
        );
        // Flashback is MariaDB's: nothing of it is granted on MySQL.
        assert!(!mysql.contains("BINLOG"), "{mysql}");
    }

    #[test]
    fn the_docs_show_what_xvrrpd_grants_prints() {
        let readme = include_str!("../../../docs/mysql.md");
        let guard = Uses {
            guard: true,
            flashback: false,
            clone: false,
        };
        let sql = statements(
            Flavor::MariaDb,
            guard,
            "xvrrpd",
            &["%".into(), "localhost".into()],
            "...",
        );
        assert!(
            readme.contains(&sql),
            "docs/mysql.md's account differs from `xvrrpd grants`:\n{sql}"
        );
        let clone = Uses {
            guard: true,
            flashback: false,
            clone: true,
        };
        let sql = statements(Flavor::Mysql, clone, "xvrrpd", &["%".into()], "...");
        assert!(
            readme.contains(&sql),
            "docs/mysql.md's MySQL account differs from `xvrrpd grants`:\n{sql}"
        );
    }

    #[test]
    fn refusals_are_read_from_the_error_text() {
        assert!(refusal_in("ERROR 1227 (42000): Access denied; you need (at least one of) the READ_ONLY ADMIN privilege(s) for this operation"));
        assert!(refusal_in("Server error: `ERROR 1227 (42000): Access denied; you need (at least one of) the READ_ONLY ADMIN privilege(s) for this operation'"));
        assert!(!refusal_in(
            "ERROR 1205 (HY000): Lock wait timeout exceeded"
        ));
        assert!(!refusal_in("no answer within 2s"));
    }

    #[test]
    fn grants_are_recognised_by_any_of_their_names() {
        let need = NEEDS
            .iter()
            .find(|n| n.name(Flavor::MariaDb) == Some("SLAVE MONITOR"))
            .unwrap();
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(granted(need, Flavor::MariaDb, &g(&["SLAVE MONITOR"])));
        assert!(granted(need, Flavor::MariaDb, &g(&["REPLICA MONITOR"])));
        assert!(granted(need, Flavor::MariaDb, &g(&["ALL PRIVILEGES"])));
        assert!(!granted(need, Flavor::MariaDb, &g(&["PROCESS"])));
        let rsa = NEEDS
            .iter()
            .find(|n| n.name(Flavor::Mysql) == Some("REPLICATION_SLAVE_ADMIN"))
            .unwrap();
        assert!(granted(
            rsa,
            Flavor::Mysql,
            &g(&["REPLICATION_SLAVE_ADMIN"])
        ));
        assert!(granted(
            rsa,
            Flavor::MariaDb,
            &g(&["REPLICATION SLAVE ADMIN"])
        ));
        assert!(!granted(rsa, Flavor::MariaDb, &g(&["REPLICATION SLAVE"])));
    }

    #[test]
    fn every_probe_names_a_flavor_that_needs_it() {
        for n in NEEDS {
            for f in [Flavor::MariaDb, Flavor::Mysql] {
                if n.probe(f).is_some() {
                    assert!(
                        n.name(f).is_some(),
                        "{} probes where unneeded",
                        n.statements
                    );
                }
            }
        }
    }
}
