//! `xvrrpd check` against the live servers: is this pair set up so that a failover keeps
//! the data whole? The rules are pure ([`evaluate`]); [`snapshot`] collects what they read.
use std::collections::HashMap;

use mysql_async::prelude::Queryable;

use super::{
    conn::Server,
    dialect::{Flavor, GtidStyle, Semi, Undo},
    privileges::{self, Feature, Scope},
    replica::ReplicaStatus,
};

/// What one server looks like.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Global variables by lower-case name.
    pub vars: HashMap<String, String>,
    /// The replica status (None: not a replica).
    pub replica: Option<ReplicaStatus>,
    /// `SHOW GRANTS` lines of the account xvrrpd uses.
    pub grants: Vec<String>,
    /// What could not be read, and why: (what, error).
    pub unread: Vec<(&'static str, String)>,
    /// What the privilege probes proved ([`privileges::Need::probe`]), by index in
    /// [`privileges::NEEDS`]: Ok when allowed, the server's refusal otherwise. A probe
    /// that failed for another reason is absent (the grants decide).
    pub probes: HashMap<usize, Result<(), String>>,
    /// The running server's command line, when it runs on this host.
    pub server_args: Option<Vec<String>>,
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
    "pid_file",
    "gtid_strict_mode",
    "server_id",
    "log_bin",
    "read_only",
    "auto_increment_increment",
    "auto_increment_offset",
    "gtid_domain_id",
    "gtid_mode",
    "enforce_gtid_consistency",
    "super_read_only",
    "slave_net_timeout",
    "replica_net_timeout",
    "binlog_format",
    "binlog_row_image",
    // Exists while MySQL's clone plugin is loaded.
    "clone_valid_donor_list",
];

/// Is `name` a variable `xvrrpd check` reads (any flavor's spelling)?
fn wanted(name: &str) -> bool {
    VARS.contains(&name)
        || Semi::ALL.iter().any(|&x| {
            Flavor::ALL
                .iter()
                .any(|f| f.semi(x) == name || f.legacy_semi(x) == name)
        })
}

impl Snapshot {
    /// The server's flavor, from its version.
    pub fn flavor(&self) -> Flavor {
        Flavor::from_version(self.vars.get("version").map_or("", String::as_str))
    }

    /// A semi-sync setting or status by the name the server has (MySQL 8.0 on the old
    /// plugins keeps MariaDB's), with that name.
    fn semi(&self, x: Semi) -> (Option<String>, &'static str) {
        let f = self.flavor();
        match self.vars.get(f.semi(x)) {
            Some(v) => (Some(v.clone()), f.semi(x)),
            None => (self.vars.get(f.legacy_semi(x)).cloned(), f.legacy_semi(x)),
        }
    }

    /// The replica's network timeout, whichever name the server has.
    fn net_timeout(&self) -> Option<(u64, &'static str)> {
        // Its own flavor's name first (MySQL 8.0 still knows the old one).
        std::iter::once(self.flavor())
            .chain(Flavor::ALL)
            .find_map(|f| {
                let v = self.vars.get(f.net_timeout())?.parse().ok()?;
                Some((v, f.net_timeout()))
            })
    }
}

/// The semi-sync settings of `s`, one line each, with what the choice costs. Printed by
/// `xvrrpd check` whatever they are: they decide whether an acknowledged write can be
/// lost.
pub fn semi_sync_report(s: &Snapshot) -> Vec<String> {
    let (enabled, _) = s.semi(Semi::SourceEnabled);
    if !on(enabled.as_ref()) {
        return vec!["semi-sync off: a commit is acknowledged before any peer has it; a crashed master takes it along".into()];
    }
    let point = s
        .semi(Semi::WaitPoint)
        .0
        .unwrap_or_default()
        .to_ascii_uppercase();
    let timeout = s.semi(Semi::Timeout).0.and_then(|t| t.parse::<u64>().ok());
    let (no_replica, no_replica_name) = s.semi(Semi::WaitNoReplica);
    let active = match s.semi(Semi::SourceActive).0 {
        Some(a) if !on(Some(&a)) => " — NOT ACTIVE NOW: commits are acknowledged without the peer",
        _ => "",
    };
    let mut out = vec![match point.as_str() {
        "AFTER_SYNC" => format!("wait point AFTER_SYNC (lossless): a transaction is committed, and its client told OK, only once the peer has it in its relay log{active}"),
        "AFTER_COMMIT" => format!("wait point AFTER_COMMIT: a transaction is committed (and visible to other clients) before the peer has it; a crash in between leaves it on this server alone{active}"),
        other => format!("wait point {other:?}: unknown"),
    }];
    out.push(match timeout {
        Some(ms) => format!("timeout {ms} ms: a commit that waits that long for the peer's ACK is acknowledged without it (async fallback) — writes then stall at most {ms} ms when the peer dies, and what this server acknowledges afterwards exists here alone until the peer is back"),
        None => "timeout unknown".into(),
    });
    out.push(if on(no_replica.as_ref()) {
        format!("{no_replica_name} ON: with no replica connected every commit still waits the full timeout")
    } else {
        format!("{no_replica_name} OFF: with no replica connected commits do not wait (and are acknowledged on this server alone)")
    });
    out
}

/// Reads the variables, replica status and grants of `server`, and tries what the guard
/// will do there in a form that changes nothing. Only a failed connection or variable
/// read is an error: anything else that cannot be looked at is kept as a
/// [`Snapshot::unread`] entry, which [`evaluate`] turns into a finding.
pub async fn snapshot(server: &Server) -> Result<Snapshot, mysql_async::Error> {
    let mut c = server.connect().await?;
    let mut s = Snapshot::default();
    let rows: Vec<(String, String)> = c.query("SHOW GLOBAL VARIABLES").await?;
    for (k, v) in rows {
        let k = k.to_ascii_lowercase();
        if wanted(&k) {
            s.vars.insert(k, v);
        }
    }
    let status: Vec<(String, String)> = c
        .query("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_%_status'")
        .await
        .unwrap_or_default();
    for (k, v) in status {
        s.vars.insert(k.to_ascii_lowercase(), v);
    }
    match super::replica::read(&mut c).await {
        Ok(r) => s.replica = r,
        Err(e) => s.unread.push(("replication status", e.to_string())),
    }
    read_account(&mut c, s.flavor(), &mut s).await;
    s.server_args = server_args(s.vars.get("pid_file"));
    Ok(s)
}

/// What the account may do, into `s`: its `SHOW GRANTS` lines, and each privilege with a
/// harmless statement that needs exactly it proven by running that statement (setting
/// read_only to the value it has, a replication variable to its own value, ...): SHOW
/// GRANTS can be read wrong (roles, SUPER's changing meaning across versions), the
/// server's answer cannot. The guard reads the same before a node rejoins the election.
pub async fn read_account(c: &mut mysql_async::Conn, flavor: Flavor, s: &mut Snapshot) {
    match c.query("SHOW GRANTS").await {
        Ok(g) => s.grants = g,
        Err(e) => s.unread.push(("grants", e.to_string())),
    }
    for (i, need) in privileges::NEEDS.iter().enumerate() {
        let Some(probe) = need.probe(flavor) else {
            continue;
        };
        match c.query_drop(probe.sql).await {
            Ok(()) => {
                s.probes.insert(i, Ok(()));
            }
            Err(mysql_async::Error::Server(e)) if probe.allowed.contains(&e.code) => {
                s.probes.insert(i, Ok(()));
            }
            Err(mysql_async::Error::Server(e)) if privileges::is_access_denied(e.code) => {
                s.probes
                    .insert(i, Err(format!("ERROR {}: {}", e.code, e.message)));
            }
            Err(_) => {}
        }
    }
}

/// The command line of the running mysqld, from its pid file (None when not on this host
/// or not readable).
fn server_args(pid_file: Option<&String>) -> Option<Vec<String>> {
    let pid: u32 = std::fs::read_to_string(pid_file?)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// Does the server start read-only? From its own command line when it says so, else from
/// the option files it reads (`my_print_defaults` with the `--defaults-file` /
/// `--defaults-extra-file` the server was started with). None: cannot tell.
pub fn starts_read_only(s: &Snapshot) -> Option<bool> {
    let args = s.server_args.clone().unwrap_or_default();
    if args.iter().any(|a| read_only_option(a)) {
        return Some(true);
    }
    let mut cmd = std::process::Command::new("my_print_defaults");
    for a in &args {
        if a.starts_with("--defaults-file=") || a.starts_with("--defaults-extra-file=") {
            cmd.arg(a);
        }
    }
    let out = cmd
        .args(["mysqld", "server", "mariadb", "mariadbd"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(text.lines().any(read_only_option))
}

/// `--read-only`, `--read_only=ON`, `=1`, `=TRUE`, any case; `--super-read-only` too
/// (it implies read_only).
fn read_only_option(arg: &str) -> bool {
    let a = arg.trim().to_ascii_lowercase().replace('_', "-");
    let a = a.replacen("--super-read-only", "--read-only", 1);
    match a.strip_prefix("--read-only") {
        Some("") => true,
        Some(v) => matches!(v.strip_prefix('='), Some("on" | "1" | "true" | "yes")),
        None => false,
    }
}

/// Do two auto-increment series ever produce the same value? Each server hands out
/// `offset + k × increment`; an offset above the increment is ignored (MySQL and
/// MariaDB alike), so it counts as 1. Two series meet exactly when the offsets differ by
/// a multiple of the increments' greatest common divisor.
pub fn auto_increments_collide(a: (u64, u64), b: (u64, u64)) -> bool {
    let eff = |(inc, off): (u64, u64)| {
        let inc = inc.max(1);
        (inc, if off > inc || off == 0 { 1 } else { off })
    };
    let ((ia, oa), (ib, ob)) = (eff(a), eff(b));
    let g = gcd(ia, ib);
    oa.abs_diff(ob) % g == 0
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Each privilege of `feature` the account lacks, as an error naming the statement that
/// would be refused and the `GRANT` that fixes it: proven by its probe where it has one
/// ([`Snapshot::probes`]), read from `SHOW GRANTS` otherwise. A promotion, fence or undo
/// whose statement is refused stops there: the pair would not fail over.
pub fn missing_privileges(local: &Snapshot, flavor: Flavor, feature: Feature) -> Vec<Finding> {
    let grants_read = local.unread.iter().all(|(w, _)| *w != "grants");
    let global = privileges_on(&local.grants, None);
    let on_schema = privileges_on(&local.grants, Some("xvrrpd"));
    let mut out = Vec::new();
    for (i, need) in privileges::NEEDS.iter().enumerate() {
        let Some(name) = need.name(flavor).filter(|_| need.feature == feature) else {
            continue;
        };
        let refusal = match local.probes.get(&i) {
            Some(Ok(())) => continue,
            Some(Err(e)) => format!(" ({e})"),
            None if !grants_read => continue,
            None => {
                let held = match need.scope {
                    Scope::Global => &global,
                    Scope::TermSchema => &on_schema,
                };
                if privileges::granted(need, flavor, held) {
                    continue;
                }
                String::new()
            }
        };
        let on = match need.scope {
            Scope::Global => "*.*",
            Scope::TermSchema => "xvrrpd.*",
        };
        out.push(Finding {
            level: Level::Error,
            message: format!(
                "the account lacks {name} on {on}{refusal}, needed to {} ({}): GRANT {name} ON {on} TO it (`xvrrpd grants` prints the whole account)",
                need.why, need.statements
            ),
        });
    }
    out
}

/// The privileges granted on `*.*`, upper case (`ALL PRIVILEGES` stands for all).
pub fn global_privileges(grants: &[String]) -> Vec<String> {
    privileges_on(grants, None)
}

/// The privileges granted on `*.*` or, with `schema`, on that schema's tables (`` `db`.* ``
/// or `db.*`), upper case.
pub fn privileges_on(grants: &[String], schema: Option<&str>) -> Vec<String> {
    let scopes: Vec<String> = std::iter::once("*.*".to_string())
        .chain(schema.into_iter().flat_map(|d| {
            let d = d.to_ascii_uppercase();
            [format!("`{d}`.*"), format!("{d}.*")]
        }))
        .collect();
    grants
        .iter()
        .filter_map(|g| {
            let u = g.to_ascii_uppercase();
            let rest = u.strip_prefix("GRANT ")?;
            let (privs, on) = rest.split_once(" ON ")?;
            let on = on.trim_start();
            let scope = on.split_whitespace().next().unwrap_or("");
            scopes.iter().any(|s| s == scope).then(|| {
                privs
                    .split(',')
                    .map(|p| p.trim().to_string())
                    .collect::<Vec<_>>()
            })
        })
        .flatten()
        .collect()
}

/// `on_errant = "flashback"`: can this server undo its errant transactions? `tools`: the
/// MariaDB client tools found (or which are missing). Each gap is an error: the undo
/// would be refused and the node left quarantined.
pub fn flashback_findings(local: &Snapshot, tools: Result<(), String>) -> Vec<Finding> {
    let var = |k: &str| local.vars.get(k).cloned().unwrap_or_default();
    let mut out = Vec::new();
    let mut err = |m: String| {
        out.push(Finding {
            level: Level::Error,
            message: format!("on_errant = \"flashback\": {m}"),
        })
    };
    if local.flavor().undo() != Undo::Flashback {
        err("only MariaDB can flash back row events; use on_errant = \"quarantine\" (and rebuild a divergent server)".into());
        return out;
    }
    if !var("binlog_format").eq_ignore_ascii_case("ROW") {
        err(format!(
            "binlog_format is {}: only row events can be undone; set binlog_format = ROW in my.cnf",
            var("binlog_format")
        ));
    }
    if !var("binlog_row_image").eq_ignore_ascii_case("FULL") {
        err(format!("binlog_row_image is {}: undoing an update needs the whole row before it; set binlog_row_image = FULL in my.cnf", var("binlog_row_image")));
    }
    if let Err(e) = tools {
        err(e);
    }
    out.extend(missing_privileges(
        local,
        local.flavor(),
        Feature::Flashback,
    ));
    out
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
    let flavor = local.flavor();
    // The GTID checks follow the flavor's GTID model.
    let mariadb = flavor.gtid_style() == GtidStyle::Domain;
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
        let series = |s: &Snapshot| {
            let n = |k: &str| var(s, k).parse::<u64>().unwrap_or(1);
            (n("auto_increment_increment"), n("auto_increment_offset"))
        };
        let (mine, theirs) = (series(local), series(p));
        if auto_increments_collide(mine, theirs) {
            err(format!(
                "auto-increment series collide: increment {} offset {} here, increment {} offset {} on the peer (an offset above the increment counts as 1): rows inserted on both sides get the same keys (error 1062); set auto_increment_increment = 2 on both and auto_increment_offset = 1 on one node, 2 on the other",
                mine.0, mine.1, theirs.0, theirs.1
            ));
        }
        if let (Some(acks), name) = p.semi(Semi::ReplicaEnabled) {
            if !on(Some(&acks)) && on(local.semi(Semi::SourceEnabled).0.as_ref()) {
                err(format!("the peer does not acknowledge semi-sync ({name} = OFF there): every commit here waits the timeout, then falls back to async; set it ON on the peer"));
            }
        }
    }
    match &local.replica {
        None => err(format!(
            "not replicating from the peer: a failover would lose everything written since; {}",
            flavor.replicate_from_peer()
        )),
        Some(r) => {
            let yes = |b: bool| if b { "Yes" } else { "No" };
            let broken =
                !r.last_sql_error.is_empty() || (!r.io_running && !r.last_io_error.is_empty());
            let writable = !on(local.vars.get("read_only"));
            if broken {
                err(format!(
                    "replication threads not running (IO: {}, SQL: {}; last error: {}{}): fix and {}",
                    yes(r.io_running), yes(r.sql_running), r.last_io_error, r.last_sql_error,
                    flavor.start_replica()
                ));
            } else if (!r.io_running || !r.sql_running) && !writable {
                // Stopped without an error on a read-only server: with skip_slave_start,
                // xvrrpd starts it once it has compared the transactions with the peer's
                // (a master replicates from nobody; a divergent server stays stopped).
                out.push(Finding {
                    level: Level::Warning,
                    message: format!(
                        "replication threads not running (IO: {}, SQL: {}), no error: xvrrpd starts them once this server's transactions are compared with the peer's; if they stay stopped while xvrrpd runs, see `xvrrpd status` (DIVERGENT)",
                        yes(r.io_running), yes(r.sql_running)
                    ),
                });
            }
        }
    }
    let mut gtid_errors = Vec::new();
    let mut warn = |m: String| {
        out.push(Finding {
            level: Level::Warning,
            message: m,
        })
    };
    if peer.is_none()
        && var(local, "auto_increment_increment")
            .parse::<u32>()
            .unwrap_or(1)
            < 2
    {
        warn("auto_increment_increment is 1 (the peer could not be compared): in dual-master set auto_increment_increment = 2 and auto_increment_offset = 1 / 2".into());
    }
    if mariadb && !on(local.vars.get("gtid_strict_mode")) {
        warn("gtid_strict_mode is OFF: a transaction that diverges from the peer's history (an errant transaction of a returning old master) is applied silently instead of stopping replication; set gtid_strict_mode = ON".into());
    }
    if let (Some(active), name) = local.semi(Semi::SourceActive) {
        if on(local.semi(Semi::SourceEnabled).0.as_ref()) && !on(Some(&active)) {
            warn(format!("semi-sync is enabled but not active now ({name} = OFF): commits are acknowledged without the peer; check the peer's replication"));
        }
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
    } else {
        // The catch-up, the comparison with the peer and the way back all read GTIDs.
        for v in ["gtid_mode", "enforce_gtid_consistency"] {
            if !on(local.vars.get(v)) {
                gtid_errors.push(Finding { level: Level::Error, message: format!("{v} is {}: the guard compares and waits on GTIDs; set gtid_mode = ON and enforce_gtid_consistency = ON in my.cnf", var(local, v)) });
            }
        }
        if let Some(r) = &local.replica {
            if !r.auto_position {
                warn("replication does not use GTID auto-positioning: CHANGE REPLICATION SOURCE TO SOURCE_AUTO_POSITION = 1 (a server that comes back finds its place by GTIDs, not file positions)".into());
            }
        }
    }
    let (source, source_name) = local.semi(Semi::SourceEnabled);
    let (replica, replica_name) = local.semi(Semi::ReplicaEnabled);
    let (point, point_name) = local.semi(Semi::WaitPoint);
    let (no_replica, no_replica_name) = local.semi(Semi::WaitNoReplica);
    let timeout_name = local.semi(Semi::Timeout).1;
    if !on(source.as_ref()) || !on(replica.as_ref()) {
        let plugins = flavor
            .semi_plugins()
            .map(|p| format!(" ({p} first)"))
            .unwrap_or_default();
        warn(format!("semi-sync replication is off: with async replication a crashed master can take acknowledged writes with it; set {source_name} = ON and {replica_name} = ON on both nodes{plugins}"));
    } else if point.is_some_and(|p| p.eq_ignore_ascii_case("AFTER_COMMIT")) {
        warn(format!("{point_name} = AFTER_COMMIT: a crash can leave a transaction committed here that the peer never received, and it flows to the new master when this server returns; set {point_name} = AFTER_SYNC"));
    } else if on(no_replica.as_ref()) {
        warn(format!("{no_replica_name} is ON: after a failover the new master's first commits wait {timeout_name} for the dead peer; set it OFF"));
    }
    if let Some((t, name)) = local.net_timeout() {
        if t > 10 {
            warn(format!("{name} = {t}: after a network partition heals, replication can take up to {t} s to notice its dead connection and reconnect (the pair stays apart that long); set {name} = 5"));
        }
    }
    if flavor.has_super_read_only()
        && !on(local.vars.get("super_read_only"))
        && on(local.vars.get("read_only"))
    {
        warn("super_read_only is OFF on a read-only server: accounts with CONNECTION_ADMIN or SUPER still write; set super_read_only = ON in my.cnf (xvrrpd's fence sets it too)".into());
    }
    match ro_in_cnf {
        Some(true) => {}
        Some(false) => warn("my.cnf does not start mysqld read-only: a restarted server takes writes before xvrrpd decides; add read_only = ON under [mysqld]".into()),
        None => warn("could not tell whether mysqld starts read-only (its command line and my_print_defaults): make sure my.cnf has read_only = ON under [mysqld]".into()),
    }
    out.extend(gtid_errors);
    for (what, e) in &local.unread {
        out.push(Finding {
            level: Level::Error,
            message: format!(
                "could not read the {what} ({e}): the guard reads it too; {}",
                if *what == "grants" {
                    "SHOW GRANTS is always allowed: check the account".to_string()
                } else {
                    format!("GRANT {} ON *.* TO it", flavor.monitor_privilege())
                }
            ),
        });
    }
    out.extend(missing_privileges(local, flavor, Feature::Guard));
    out
}

#[cfg(test)]
mod tests;
