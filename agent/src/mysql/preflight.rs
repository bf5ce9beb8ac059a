//! `xvrrpd check` against the live servers: is this pair set up so that a failover keeps
//! the data whole? The rules are pure ([`evaluate`]); [`snapshot`] collects what they read.
use std::collections::HashMap;

use mysql_async::prelude::Queryable;

use super::{conn::Server, replica::ReplicaStatus};

/// What one server looks like.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Global variables by lower-case name.
    pub vars: HashMap<String, String>,
    /// The replica status (None: not a replica).
    pub replica: Option<ReplicaStatus>,
    /// `SHOW GRANTS` lines of the account xvrrpd uses.
    pub grants: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Failover cannot be safe until this is fixed.
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub message: String,
}

const VARS: &[&str] = &[
    "version",
    "server_id",
    "log_bin",
    "read_only",
    "auto_increment_increment",
    "auto_increment_offset",
    "gtid_domain_id",
    "gtid_mode",
    "rpl_semi_sync_master_enabled",
    "rpl_semi_sync_slave_enabled",
    "rpl_semi_sync_master_wait_no_slave",
    "rpl_semi_sync_master_wait_point",
    "rpl_semi_sync_master_timeout",
    // MySQL 8.0.26+ names.
    "rpl_semi_sync_source_enabled",
    "rpl_semi_sync_source_wait_no_replica",
    "rpl_semi_sync_source_wait_point",
    "rpl_semi_sync_source_timeout",
    "slave_net_timeout",
];

/// A semi-sync setting under either family's name.
fn semi(s: &Snapshot, master: &str, source: &str) -> Option<String> {
    s.vars.get(master).or_else(|| s.vars.get(source)).cloned()
}

/// The semi-sync settings of `s`, one line each, with what the choice costs. Printed by
/// `xvrrpd check` whatever they are: they decide whether an acknowledged write can be
/// lost.
pub fn semi_sync_report(s: &Snapshot) -> Vec<String> {
    let enabled = semi(
        s,
        "rpl_semi_sync_master_enabled",
        "rpl_semi_sync_source_enabled",
    );
    if !on(enabled.as_ref()) {
        return vec!["semi-sync off: a commit is acknowledged before any peer has it; a crashed master takes it along".into()];
    }
    let point = semi(
        s,
        "rpl_semi_sync_master_wait_point",
        "rpl_semi_sync_source_wait_point",
    )
    .unwrap_or_default()
    .to_ascii_uppercase();
    let timeout = semi(
        s,
        "rpl_semi_sync_master_timeout",
        "rpl_semi_sync_source_timeout",
    )
    .and_then(|t| t.parse::<u64>().ok());
    let no_slave = semi(
        s,
        "rpl_semi_sync_master_wait_no_slave",
        "rpl_semi_sync_source_wait_no_replica",
    );
    let mut out = vec![match point.as_str() {
        "AFTER_SYNC" => "wait point AFTER_SYNC (lossless): a transaction is committed, and its client told OK, only once the peer has it in its relay log".to_string(),
        "AFTER_COMMIT" => "wait point AFTER_COMMIT: a transaction is committed (and visible to other clients) before the peer has it; a crash in between leaves it on this server alone".to_string(),
        other => format!("wait point {other:?}: unknown"),
    }];
    out.push(match timeout {
        Some(ms) => format!("timeout {ms} ms: a commit that waits that long for the peer's ACK is acknowledged without it (async fallback) — writes then stall at most {ms} ms when the peer dies, and what this server acknowledges afterwards exists here alone until the peer is back"),
        None => "timeout unknown".into(),
    });
    out.push(if on(no_slave.as_ref()) {
        "wait_no_slave ON: with no replica connected every commit still waits the full timeout".into()
    } else {
        "wait_no_slave OFF: with no replica connected commits do not wait (and are acknowledged on this server alone)".into()
    });
    out
}

/// Reads the variables, replica status and grants of `server`.
pub async fn snapshot(server: &Server) -> Result<Snapshot, mysql_async::Error> {
    let mut c = server.connect().await?;
    let mut s = Snapshot::default();
    let rows: Vec<(String, String)> = c.query("SHOW GLOBAL VARIABLES").await?;
    for (k, v) in rows {
        let k = k.to_ascii_lowercase();
        if VARS.contains(&k.as_str()) {
            s.vars.insert(k, v);
        }
    }
    s.replica = super::replica::read(&mut c).await?;
    s.grants = c.query("SHOW GRANTS").await?;
    Ok(s)
}

/// Does my.cnf start mysqld read-only? From `my_print_defaults` (None: cannot tell).
pub fn read_only_in_my_cnf() -> Option<bool> {
    let out = std::process::Command::new("my_print_defaults")
        .args(["mysqld", "server", "mariadb", "mariadbd"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    Some(text.lines().any(|l| {
        let l = l.replace('_', "-");
        l == "--read-only" || l == "--read-only=1" || l == "--read-only=on"
    }))
}

fn on(v: Option<&String>) -> bool {
    matches!(
        v.map(|s| s.to_ascii_uppercase()).as_deref(),
        Some("ON" | "1" | "YES")
    )
}

/// The findings for the local server, its peer (when it could be read) and my.cnf.
pub fn evaluate(
    local: &Snapshot,
    peer: Option<&Snapshot>,
    ro_in_cnf: Option<bool>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut err = |m: String| {
        out.push(Finding {
            level: Level::Error,
            message: m,
        })
    };
    let var = |s: &Snapshot, k: &str| s.vars.get(k).cloned().unwrap_or_default();
    let mariadb = var(local, "version")
        .to_ascii_lowercase()
        .contains("mariadb");
    if var(local, "server_id") == "0" {
        err("server_id is 0: set a unique server_id in my.cnf on each node".into());
    }
    if !on(local.vars.get("log_bin")) {
        err("log_bin is OFF: the peer replicates from this server's binary log; add log_bin to my.cnf".into());
    }
    if let Some(p) = peer {
        if var(p, "server_id") == var(local, "server_id") {
            err(format!(
                "server_id {} is also the peer's: give each node its own",
                var(local, "server_id")
            ));
        }
        if var(p, "auto_increment_offset") == var(local, "auto_increment_offset") {
            err(format!(
                "auto_increment_offset {} is also the peer's: rows inserted on both sides collide (error 1062); set 1 on one node, 2 on the other",
                var(local, "auto_increment_offset")
            ));
        }
    }
    match &local.replica {
        None => err("not replicating from the peer: a failover would lose everything written since; CHANGE MASTER TO the peer and START SLAVE".into()),
        Some(r) => {
            if !r.io_running || !r.sql_running {
                let yes = |b: bool| if b { "Yes" } else { "No" };
                err(format!(
                    "replication threads not running (IO: {}, SQL: {}; last error: {}{}): fix and START SLAVE",
                    yes(r.io_running), yes(r.sql_running), r.last_io_error, r.last_sql_error
                ));
            }
        }
    }
    let mut warn = |m: String| {
        out.push(Finding {
            level: Level::Warning,
            message: m,
        })
    };
    if var(local, "auto_increment_increment")
        .parse::<u32>()
        .unwrap_or(1)
        < 2
    {
        warn("auto_increment_increment is 1: in dual-master set auto_increment_increment = 2 and auto_increment_offset = 1 / 2".into());
    }
    if let Some(r) = &local.replica {
        if mariadb && !r.using_gtid {
            warn("replication does not use GTID: CHANGE MASTER TO MASTER_USE_GTID = slave_pos (catch-up then waits on GTIDs, not file positions)".into());
        }
        if let Some(lag) = r.lag_s {
            if lag > 10 {
                warn(format!("replication lag is {lag} s: a promotion now would wait that long (catchup_timeout)"));
            }
        }
    }
    if mariadb {
        if let Some(p) = peer {
            if var(p, "gtid_domain_id") == var(local, "gtid_domain_id") {
                warn("gtid_domain_id is the same as the peer's: in dual-master give each node its own (e.g. its server_id)".into());
            }
        }
    } else if !on(local.vars.get("gtid_mode")) {
        warn(
            "gtid_mode is not ON: enable GTIDs (gtid_mode = ON, enforce_gtid_consistency = ON)"
                .into(),
        );
    }
    if !on(local.vars.get("rpl_semi_sync_master_enabled"))
        || !on(local.vars.get("rpl_semi_sync_slave_enabled"))
    {
        warn("semi-sync replication is off: with async replication a crashed master can take acknowledged writes with it; set rpl_semi_sync_master_enabled = ON and rpl_semi_sync_slave_enabled = ON on both nodes".into());
    } else if semi(
        local,
        "rpl_semi_sync_master_wait_point",
        "rpl_semi_sync_source_wait_point",
    )
    .is_some_and(|p| p.eq_ignore_ascii_case("AFTER_COMMIT"))
    {
        warn("rpl_semi_sync_master_wait_point = AFTER_COMMIT: a crash can leave a transaction committed here that the peer never received, and it flows to the new master when this server returns; set rpl_semi_sync_master_wait_point = AFTER_SYNC".into());
    } else if on(local.vars.get("rpl_semi_sync_master_wait_no_slave")) {
        warn("rpl_semi_sync_master_wait_no_slave is ON: after a failover the new master's first commits wait rpl_semi_sync_master_timeout for the dead peer; set it OFF".into());
    }
    if let Some(t) = local
        .vars
        .get("slave_net_timeout")
        .and_then(|v| v.parse::<u64>().ok())
    {
        if t > 10 {
            warn(format!("slave_net_timeout = {t}: after a network partition heals, replication can take up to {t} s to notice its dead connection and reconnect (the pair stays apart that long); set slave_net_timeout = 5"));
        }
    }
    match ro_in_cnf {
        Some(true) => {}
        Some(false) => warn("my.cnf does not start mysqld read-only: a restarted server takes writes before xvrrpd decides; add read_only = ON under [mysqld]".into()),
        None => warn("could not read my.cnf (my_print_defaults): make sure it has read_only = ON under [mysqld]".into()),
    }
    let grants = local.grants.join("\n").to_ascii_uppercase();
    if !grants.contains("ALL PRIVILEGES ON *.*") {
        let need = [
            ("SUPER", "READ_ONLY ADMIN", "set read_only"),
            ("SUPER", "CONNECTION ADMIN", "kill client connections"),
            ("PROCESS", "PROCESS", "list connections"),
            (
                "REPLICATION CLIENT",
                "SLAVE MONITOR",
                "read replication status",
            ),
        ];
        for (a, b, why) in need {
            if !grants.contains(a) && !grants.contains(b) {
                warn(format!(
                    "the account lacks {b} (or {a}), needed to {why}: GRANT {b} ON *.* TO it"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good(id: &str) -> Snapshot {
        let vars = [
            ("version", "10.11.6-MariaDB"),
            ("server_id", id),
            ("log_bin", "ON"),
            ("read_only", "ON"),
            ("auto_increment_increment", "2"),
            ("auto_increment_offset", id),
            ("gtid_domain_id", id),
            ("rpl_semi_sync_master_enabled", "ON"),
            ("rpl_semi_sync_slave_enabled", "ON"),
            ("rpl_semi_sync_master_wait_no_slave", "OFF"),
            ("rpl_semi_sync_master_wait_point", "AFTER_SYNC"),
            ("rpl_semi_sync_master_timeout", "1000"),
            ("slave_net_timeout", "5"),
        ];
        let replica = [
            ("Slave_IO_Running", "Yes"),
            ("Slave_SQL_Running", "Yes"),
            ("Using_Gtid", "Slave_Pos"),
            ("Seconds_Behind_Master", "0"),
        ];
        Snapshot {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            replica: Some(ReplicaStatus::from_columns(
                &replica
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )),
            grants: vec!["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`".into()],
        }
    }

    #[test]
    fn a_well_built_pair_has_no_findings() {
        assert_eq!(evaluate(&good("1"), Some(&good("2")), Some(true)), vec![]);
    }

    #[test]
    fn each_hazard_is_named_with_its_fix() {
        let mut s = good("1");
        s.vars
            .insert("rpl_semi_sync_master_enabled".into(), "OFF".into());
        s.vars.insert("log_bin".into(), "OFF".into());
        s.vars.insert("slave_net_timeout".into(), "60".into());
        s.grants = vec!["GRANT PROCESS ON *.* TO `xv`@`%`".into()];
        s.replica.as_mut().unwrap().sql_running = false;
        let f = evaluate(&s, Some(&good("1")), Some(false));
        let text = |level| {
            f.iter()
                .filter(|x| x.level == level)
                .map(|x| x.message.clone())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let errors = text(Level::Error);
        for want in [
            "log_bin is OFF",
            "server_id 1 is also the peer's",
            "auto_increment_offset 1",
            "replication threads not running",
        ] {
            assert!(
                errors.contains(want),
                "missing error {want:?} in:\n{errors}"
            );
        }
        let warnings = text(Level::Warning);
        for want in [
            "semi-sync replication is off",
            "read_only = ON under [mysqld]",
            "gtid_domain_id",
            "GRANT READ_ONLY ADMIN",
            "GRANT CONNECTION ADMIN",
            "GRANT SLAVE MONITOR",
            "slave_net_timeout = 60",
        ] {
            assert!(
                warnings.contains(want),
                "missing warning {want:?} in:\n{warnings}"
            );
        }
        assert!(!warnings.contains("GRANT PROCESS"));
    }

    #[test]
    fn after_commit_is_a_warning_and_the_report_says_what_each_setting_costs() {
        let mut s = good("1");
        let report = semi_sync_report(&s).join("\n");
        assert!(report.contains("AFTER_SYNC (lossless)"), "{report}");
        assert!(report.contains("timeout 1000 ms"), "{report}");
        assert!(report.contains("wait_no_slave OFF"), "{report}");
        s.vars.insert(
            "rpl_semi_sync_master_wait_point".into(),
            "AFTER_COMMIT".into(),
        );
        let f = evaluate(&s, Some(&good("2")), Some(true));
        assert!(
            f.iter()
                .any(|f| f.level == Level::Warning && f.message.contains("AFTER_SYNC")),
            "{f:?}"
        );
        assert!(semi_sync_report(&s)[0].contains("AFTER_COMMIT"));
    }
}
