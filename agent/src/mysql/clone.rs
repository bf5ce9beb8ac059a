//! MySQL's way back for a divergent server (`on_errant = "clone"`).
//!
//! MySQL cannot undo row events in place (no `--flashback`), so a server holding errant
//! transactions (its own, never received by the peer that served writes after it) is
//! rebuilt from the peer:
//!
//! 1. archive them decoded (`mysqlbinlog --read-from-remote-server --include-gtids
//!    --base64-output=decode-rows -v`): nothing the server held is lost to the operator;
//!    no archive, no clone;
//! 2. `SET GLOBAL clone_valid_donor_list` to the peer, `super_read_only = OFF` (CLONE is
//!    refused under it; `read_only` stays ON and the server serves nobody: its VIPs are
//!    elsewhere);
//! 3. `CLONE INSTANCE FROM` the peer with the agent's own account (CLONE_ADMIN here,
//!    BACKUP_ADMIN there): the peer's data replaces this server's and mysqld restarts
//!    on it under its service manager (systemd or mysqld_safe; a server nobody restarts
//!    stops, and says so in error 3707);
//! 4. wait for it to answer again (read-only from my.cnf), and point its replication
//!    back at the peer: the clone brought the peer's own replication settings, which
//!    name this server.
//!
//! The guard then compares with the peer as always: no errant transactions left, it
//! replicates and rejoins.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use mysql_async::prelude::Queryable;

use super::{
    conn::Server,
    dialect::{Flavor, Undo},
    divergence::Extra,
    flashback::{run_tool, tool, ClientFile},
    preflight::{missing_privileges, Finding, Level, Snapshot},
    privileges::Feature,
    replica,
};

/// How long the clone and the restart on the cloned data may take.
const CLONE_TIMEOUT: Duration = Duration::from_secs(600);

/// What a rebuild did.
pub struct Rebuilt {
    pub gtids: Vec<String>,
    pub archive: PathBuf,
}

/// MySQL's `mysqlbinlog` on PATH (MariaDB's, a link to `mariadb-binlog`, cannot read
/// MySQL 8.4+ binary logs).
pub fn binlog_tool() -> Result<PathBuf, String> {
    let path = tool(&["mysqlbinlog"])?;
    let version = std::process::Command::new(&path)
        .arg("--version")
        .output()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&version.stdout);
    if Flavor::from_version(&text).undo() != Undo::Clone {
        return Err(format!(
            "{} is MariaDB's ({}): install MySQL's client tools (mysql-client-core) and put its mysqlbinlog first on PATH",
            path.display(),
            text.trim()
        ));
    }
    Ok(path)
}

/// `xvrrpd check` with `on_errant = "clone"`: each gap is an error (the rebuild would be
/// refused and the node left quarantined).
pub fn findings(
    local: &Snapshot,
    peer: Option<&Snapshot>,
    tool: Result<(), String>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut err = |m: String| {
        out.push(Finding {
            level: Level::Error,
            message: format!("on_errant = \"clone\": {m}"),
        })
    };
    if local.flavor().undo() != Undo::Clone {
        err("only MySQL has the clone plugin; on MariaDB use on_errant = \"flashback\"".into());
        return out;
    }
    for (who, s) in [("this server", Some(local)), ("the peer", peer)] {
        if s.is_some_and(|s| !s.vars.contains_key("clone_valid_donor_list")) {
            err(format!("the clone plugin is not loaded on {who}: add plugin_load_add = mysql_clone.so to its my.cnf"));
        }
    }
    if let Err(e) = tool {
        err(e);
    }
    out.extend(missing_privileges(local, local.flavor(), Feature::Clone));
    out
}

/// Rebuilds the server behind `conn` from `peer` (see the module documentation),
/// archiving `errant` into `archive`/`instance`-….
pub async fn rebuild(
    conn: &mut mysql_async::Conn,
    server: &Server,
    peer: &Server,
    errant: &[Extra],
    archive: &Path,
    instance: &str,
) -> Result<Rebuilt, String> {
    let e = |what: &'static str| move |err: mysql_async::Error| format!("{what}: {err}");
    let gtids = super::divergence::names(errant);
    let source = replica::read(conn)
        .await
        .map_err(e("reading the replica status"))?
        .filter(|s| !s.master_host.is_empty())
        .ok_or("not a replica: nothing says which server to clone from")?;
    let (host, port) = (source.master_host.clone(), source.master_port);
    let read_only: Option<u8> = conn
        .query_first("SELECT @@global.read_only")
        .await
        .map_err(e("reading read_only"))?;
    if read_only != Some(1) {
        return Err("the server is writable: only a read-only server is rebuilt".into());
    }

    // 1. The archive, before anything is replaced.
    let binlog = binlog_tool()?;
    let files: Vec<String> = conn
        .query_map("SHOW BINARY LOGS", |row: mysql_async::Row| {
            row.get::<String, _>(0).unwrap_or_default()
        })
        .await
        .map_err(e("SHOW BINARY LOGS"))?;
    std::fs::create_dir_all(archive).map_err(|err| format!("{}: {err}", archive.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let first = gtids
        .first()
        .map_or("errant", String::as_str)
        .replace(':', "_");
    let decoded = archive.join(format!("{instance}-{first}-{stamp}.events.sql"));
    let client = ClientFile::new(server)?;
    let mut cmd = tokio::process::Command::new(&binlog);
    cmd.arg(client.arg())
        .arg("--read-from-remote-server")
        .arg(format!("--include-gtids={}", gtids.join(",")))
        .args(["--base64-output=decode-rows", "--verbose"])
        .args(&files);
    let out = run_tool(cmd, &binlog).await?;
    if !out.status.success() {
        return Err(format!(
            "archiving the errant transactions: {}: {}",
            binlog.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    std::fs::write(&decoded, &out.stdout).map_err(|err| format!("{}: {err}", decoded.display()))?;

    // 2. and 3. The clone.
    let (user, password) = peer.account();
    let (user, password) = (user.unwrap_or_default(), password.unwrap_or_default());
    let quote = |s: &str| s.replace('\\', "\\\\").replace('\'', "\\'");
    let donor = format!("{host}:{port}");
    conn.query_drop(format!(
        "SET GLOBAL clone_valid_donor_list = '{}'",
        quote(&donor)
    ))
    .await
    .map_err(e(
        "SET GLOBAL clone_valid_donor_list (is the clone plugin loaded?)",
    ))?;
    conn.query_drop("SET GLOBAL super_read_only = OFF")
        .await
        .map_err(e(
            "SET GLOBAL super_read_only = OFF (CLONE is refused under it)",
        ))?;
    let clone = conn.query_drop(format!(
        "CLONE INSTANCE FROM '{}'@'{}':{port} IDENTIFIED BY '{}'",
        quote(&user),
        quote(&host),
        quote(&password)
    ));
    match tokio::time::timeout(CLONE_TIMEOUT, clone).await {
        Err(_) => return Err(format!("CLONE INSTANCE FROM {donor} did not finish in {CLONE_TIMEOUT:?}")),
        // ER_CLONE_RESTART (3707): cloned, but nobody restarts mysqld.
        Ok(Err(mysql_async::Error::Server(se))) if se.code == 3707 => {
            return Err(format!(
                "cloned from {donor}, but mysqld is not run by a service manager that restarts it ({}): start it again by hand, it comes back on the peer's data",
                se.message
            ))
        }
        Ok(Err(mysql_async::Error::Server(se))) => {
            // Refused before anything was copied: the fence is whole again.
            let _ = conn.query_drop("SET GLOBAL super_read_only = ON").await;
            return Err(format!(
                "CLONE INSTANCE FROM {donor}: ERROR {}: {}",
                se.code, se.message
            ));
        }
        // The server restarts on the cloned data: the connection ends (or, on a fast
        // restart, the statement reports success first).
        Ok(_) => {}
    }

    // 4. Back on the peer's data: replication from the peer again.
    let deadline = tokio::time::Instant::now() + CLONE_TIMEOUT;
    let mut back = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        match server.connect().await {
            Ok(c) => break c,
            Err(err) if tokio::time::Instant::now() >= deadline => {
                return Err(format!(
                    "cloned from {donor}, but the server did not come back within {CLONE_TIMEOUT:?}: {err}"
                ))
            }
            Err(_) => {}
        }
    };
    back.query_drop(format!(
        "CHANGE REPLICATION SOURCE TO SOURCE_HOST = '{}', SOURCE_PORT = {port}",
        quote(&host)
    ))
    .await
    .map_err(e("pointing replication back at the peer after the clone"))?;
    Ok(Rebuilt {
        gtids,
        archive: decoded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(version: &str, plugin: bool, grants: &str) -> Snapshot {
        let mut s = Snapshot::default();
        s.vars.insert("version".into(), version.into());
        if plugin {
            s.vars
                .insert("clone_valid_donor_list".into(), String::new());
        }
        s.grants = vec![format!("GRANT {grants} ON *.* TO `xvrrpd`@`%`")];
        s
    }

    #[test]
    fn a_clone_needs_mysql_the_plugin_on_both_the_tool_and_three_grants() {
        let all = "CLONE_ADMIN, BACKUP_ADMIN, REPLICATION SLAVE";
        let ok = server("9.7.4-2", true, all);
        assert_eq!(findings(&ok, Some(&ok), Ok(())), vec![]);

        let maria = server("10.11.6-MariaDB", true, all);
        let f = findings(&maria, None, Ok(()));
        assert!(f.len() == 1 && f[0].message.contains("flashback"), "{f:?}");

        let bare = server("9.7.4-2", false, "PROCESS");
        let f = findings(&ok, Some(&bare), Err("no mysqlbinlog".into()));
        let text: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
        assert!(
            text.iter().any(|m| m.contains("not loaded on the peer")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|m| m.contains("no mysqlbinlog")),
            "{text:?}"
        );
        let f = findings(&bare, None, Ok(()));
        let text = f
            .iter()
            .map(|f| f.message.clone())
            .collect::<Vec<_>>()
            .join("\n");
        for p in [
            "CLONE_ADMIN",
            "BACKUP_ADMIN",
            "REPLICATION SLAVE",
            "mysql_clone.so",
        ] {
            assert!(text.contains(p), "{p} missing: {text}");
        }
        assert!(f.iter().all(|f| f.level == Level::Error));
    }
}
