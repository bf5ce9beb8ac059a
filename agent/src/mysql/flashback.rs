//! Undoing errant transactions on MariaDB, so a divergent old master rejoins by itself.
//!
//! An errant transaction (see [`super::divergence`]) is a commit of this server's own
//! that the peer, which served writes after it, never received: a commit the fence
//! killed while it waited for the semi-sync ACK, or one a cut-off master took after the
//! semi-sync timeout. The peer moved on without it; its row images must never reach the
//! peer. Quarantine keeps them here and the server out of service until someone acts;
//! this module acts, the way a DBA would by hand:
//!
//! 1. find the errant transactions in the binary log (`SHOW BINLOG EVENTS`) and check
//!    they can be undone exactly: row events only (no DDL), the newest transactions of
//!    the log (nothing logged after them), every one of them still there ([`plan`]);
//! 2. archive them decoded, and the statements that undo them (`mariadb-binlog
//!    --flashback`: the row events reversed, newest first);
//! 3. apply the undo with `sql_log_bin = 0` (it must not become a transaction of its
//!    own for the peer to receive);
//! 4. `RESET MASTER` and `gtid_binlog_state` = the state without them: the server is as
//!    if they had never been committed, so nothing can ever send them to the peer, and
//!    its next transactions reuse their sequence numbers as the peer expects.
//!
//! A row the peer never had is restored to its image before the errant transaction; the
//! peer's own later writes then arrive by replication. An undo that failed half-way is
//! never repeated: a marker stays in the archive and the node stays quarantined.
//!
//! [`plan`] is pure (unit-tested); [`undo`] runs it against the server.
use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use mysql_async::prelude::Queryable;
use tokio::io::AsyncWriteExt;

use super::{conn::Server, divergence::Extra, gtid};

/// One row of `SHOW BINLOG EVENTS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinlogEvent {
    pub file: String,
    pub pos: u64,
    pub kind: String,
    pub end: u64,
    pub info: String,
}

/// A contiguous stretch of one binary log file to flash back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub file: String,
    pub start: u64,
    pub stop: u64,
}

/// What [`undo`] does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The errant transactions, in log order.
    pub gtids: Vec<String>,
    /// Their stretches of the log, newest file first: the order they are undone in.
    pub ranges: Vec<Range>,
    /// `@@gtid_binlog_state` once they are gone.
    pub state: String,
}

/// Event types an undoable transaction may contain besides its GTID event.
const ROW_TRANSACTION: &[&str] = &[
    "Annotate_rows",
    "Table_map",
    "Write_rows",
    "Update_rows",
    "Delete_rows",
    "Write_rows_v1",
    "Update_rows_v1",
    "Delete_rows_v1",
    "Write_rows_compressed_v1",
    "Update_rows_compressed_v1",
    "Delete_rows_compressed_v1",
    "Xid",
];

/// Events that belong to no transaction (file headers, rotation, checkpoints).
const OUTSIDE: &[&str] = &[
    "Format_desc",
    "Gtid_list",
    "Binlog_checkpoint",
    "Rotate",
    "Stop",
    "Start_encryption",
];

/// `D-S-N` from a GTID event's info (`BEGIN GTID 1-1-5`, `GTID 1-1-2` for DDL, possibly
/// followed by a commit id); whether it opens a row transaction (`BEGIN`).
fn gtid_of(info: &str) -> Option<((u32, u32, u64), bool)> {
    let mut words = info.split_whitespace();
    let mut first = words.next()?;
    let begin = first == "BEGIN";
    if begin {
        first = words.next()?;
    }
    if first != "GTID" {
        return None;
    }
    Some((gtid::maria(words.next()?).ok()?, begin))
}

fn is_errant(errant: &[(u32, u32, Option<u64>, u64)], (d, s, n): (u32, u32, u64)) -> bool {
    errant.iter().any(|&(ed, es, after, last)| {
        ed == d && es == s && after.is_none_or(|a| n > a) && n <= last
    })
}

/// Where the errant transactions are and how to remove them, from the binary log's events
/// (oldest first, as many of the newest files as hold them) and `@@gtid_binlog_state`.
/// An error says why they cannot be undone safely.
pub fn plan(events: &[BinlogEvent], errant: &[Extra], binlog_state: &str) -> Result<Plan, String> {
    let mut wanted = Vec::new();
    for e in errant {
        match e {
            Extra::Maria {
                domain,
                server,
                after,
                last,
            } => wanted.push((*domain, *server, *after, *last)),
            Extra::Mysql { .. } => {
                return Err("MySQL has no flashback of row events: rebuild this server".into())
            }
        }
    }
    // Transactions in log order: (gtid, begin, file, start, end, event types).
    struct Tx {
        gtid: (u32, u32, u64),
        begin: bool,
        file: String,
        start: u64,
        end: u64,
        /// (event type, info) of the events after the GTID event.
        body: Vec<(String, String)>,
    }
    let mut txs: Vec<Tx> = Vec::new();
    let mut open = false;
    for ev in events {
        if ev.kind == "Gtid" {
            let (gtid, begin) = gtid_of(&ev.info).ok_or_else(|| {
                format!(
                    "unreadable GTID event at {}:{}: {:?}",
                    ev.file, ev.pos, ev.info
                )
            })?;
            txs.push(Tx {
                gtid,
                begin,
                file: ev.file.clone(),
                start: ev.pos,
                end: ev.end,
                body: Vec::new(),
            });
            open = true;
        } else if OUTSIDE.contains(&ev.kind.as_str()) {
            open = false;
        } else if open {
            let tx = txs.last_mut().expect("open transaction");
            if tx.file != ev.file {
                return Err(format!(
                    "a transaction spans two binary log files at {}:{}",
                    ev.file, ev.pos
                ));
            }
            tx.end = ev.end;
            tx.body.push((ev.kind.clone(), ev.info.clone()));
            // A row transaction ends with its Xid (or COMMIT for a non-transactional
            // engine); DDL is a single statement.
            if ev.kind == "Xid" || !tx.begin || (ev.kind == "Query" && ev.info.trim() == "COMMIT") {
                open = false;
            }
        }
    }
    let Some(first) = txs.iter().position(|t| is_errant(&wanted, t.gtid)) else {
        return Err("the errant transactions are not in the binary log (purged?)".into());
    };
    let name = |(d, s, n): (u32, u32, u64)| format!("{d}-{s}-{n}");
    let mut gtids = Vec::new();
    for t in &txs[first..] {
        if !is_errant(&wanted, t.gtid) {
            return Err(format!(
                "transaction {} was logged after the errant {}: undoing only the errant ones would not restore the rows they changed",
                name(t.gtid),
                name(txs[first].gtid)
            ));
        }
        if !t.begin {
            return Err(format!(
                "errant transaction {} is DDL: flashback undoes row changes only",
                name(t.gtid)
            ));
        }
        // Row events, and at most the COMMIT of a non-transactional engine.
        for (kind, info) in &t.body {
            if kind == "Query" && info.trim() != "COMMIT" {
                return Err(format!(
                    "errant transaction {} holds a statement ({info}): only row events can be undone (binlog_format = ROW)",
                    name(t.gtid)
                ));
            }
            if kind != "Query" && !ROW_TRANSACTION.contains(&kind.as_str()) {
                return Err(format!(
                    "errant transaction {} holds a {kind} event: only row events can be undone",
                    name(t.gtid)
                ));
            }
        }
        gtids.push(name(t.gtid));
    }
    // Every errant transaction must be there: a missing one was purged (or, in a domain
    // both servers write, is not ours to count).
    for &(d, s, after, last) in &wanted {
        let want = last - after.unwrap_or(0);
        let have = txs[first..]
            .iter()
            .filter(|t| is_errant(&[(d, s, after, last)], t.gtid))
            .count() as u64;
        if have != want {
            return Err(format!(
                "{want} errant transactions from {d}-{s} but {have} in the binary log: purged, or a GTID domain both servers write (give each server its own gtid_domain_id)"
            ));
        }
    }
    let mut ranges: Vec<Range> = Vec::new();
    for t in &txs[first..] {
        match ranges.last_mut() {
            Some(r) if r.file == t.file => r.stop = t.end,
            _ => ranges.push(Range {
                file: t.file.clone(),
                start: t.start,
                stop: t.end,
            }),
        }
    }
    ranges.reverse();
    Ok(Plan {
        gtids,
        ranges,
        state: state_without(binlog_state, &wanted)?,
    })
}

/// `@@gtid_binlog_state` with each errant origin back at the last transaction the peer
/// has (or gone, if it has none of them).
fn state_without(state: &str, errant: &[(u32, u32, Option<u64>, u64)]) -> Result<String, String> {
    let mut map: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    let mut order = Vec::new();
    for g in state.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let (d, s, n) = gtid::maria(g)?;
        if map.insert((d, s), n).is_none() {
            order.push((d, s));
        }
    }
    for &(d, s, after, _) in errant {
        match after {
            Some(a) => {
                map.insert((d, s), a);
            }
            None => {
                map.remove(&(d, s));
            }
        }
    }
    Ok(order
        .iter()
        .filter_map(|k| map.get(k).map(|n| format!("{}-{}-{n}", k.0, k.1)))
        .collect::<Vec<_>>()
        .join(","))
}

/// What an undo did.
#[derive(Clone, Debug)]
pub struct Undone {
    pub gtids: Vec<String>,
    /// The archive's decoded transactions (the undo statements beside it).
    pub archive: PathBuf,
}

/// MariaDB's "not allowed if any GTID has been logged to the binary log".
const ER_BINLOG_NOT_EMPTY: u16 = 1956;

/// How long one tool run may take (it reads only the errant stretch of the log).
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// Undoes `errant` on `server` (read-only, replicating from nobody: the caller made sure),
/// archiving into `archive`/`instance`-…. See the module documentation.
pub async fn undo(
    conn: &mut mysql_async::Conn,
    server: &Server,
    errant: &[Extra],
    archive: &Path,
    instance: &str,
) -> Result<Undone, String> {
    let e = |what: &str| {
        let what = what.to_string();
        move |err: mysql_async::Error| format!("{what}: {err}")
    };
    let (format, image, read_only): (String, String, bool) = conn
        .query_first("SELECT @@binlog_format, @@binlog_row_image, @@read_only")
        .await
        .map_err(e("reading binlog_format"))?
        .ok_or("no answer to SELECT @@binlog_format")?;
    if format != "ROW" || image != "FULL" {
        return Err(format!(
            "binlog_format = {format}, binlog_row_image = {image}: flashback needs ROW and FULL (set both in my.cnf)"
        ));
    }
    if !read_only {
        return Err("the server is writable: only a read-only server is undone".into());
    }
    // RESET MASTER without the state set back after it would restart this server's
    // GTIDs at 1 (the peer would skip them as old): make sure the SET is allowed first.
    // On a binary log that holds transactions it fails with 1956 when it is allowed.
    match conn
        .query_drop("SET GLOBAL gtid_binlog_state = @@global.gtid_binlog_state")
        .await
    {
        Err(mysql_async::Error::Server(se)) if se.code == ER_BINLOG_NOT_EMPTY => {}
        Ok(()) => {}
        Err(err) => {
            return Err(format!(
                "the account cannot set gtid_binlog_state ({err}): GRANT REPLICATION MASTER ADMIN ON *.* TO it"
            ))
        }
    }
    let state: String = conn
        .query_first("SELECT @@gtid_binlog_state")
        .await
        .map_err(e("reading gtid_binlog_state"))?
        .unwrap_or_default();
    let events = newest_events(conn, errant).await?;
    let plan = plan(&events, errant, &state)?;

    std::fs::create_dir_all(archive).map_err(|err| format!("{}: {err}", archive.display()))?;
    let base = format!("{instance}-{}", plan.gtids[0]);
    let marker = archive.join(format!("{base}.pending"));
    if marker.exists() {
        return Err(format!(
            "an earlier undo of these transactions did not finish ({}): look at its archive, finish by hand, remove the marker",
            marker.display()
        ));
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let decoded = archive.join(format!("{base}-{stamp}.events.sql"));
    let statements = archive.join(format!("{base}-{stamp}.undo.sql"));

    let (binlog, apply) = tools()?;
    let client = ClientFile::new(server)?;
    let mut forward = Vec::new();
    let mut reverse = Vec::new();
    // Oldest first for the record, newest first for the undo.
    for r in plan.ranges.iter().rev() {
        forward.extend(run_binlog(&binlog, &client, r, false).await?);
    }
    for r in &plan.ranges {
        reverse.push(run_binlog(&binlog, &client, r, true).await?);
    }
    std::fs::write(&decoded, &forward).map_err(|err| format!("{}: {err}", decoded.display()))?;
    std::fs::write(&statements, reverse.concat())
        .map_err(|err| format!("{}: {err}", statements.display()))?;

    // From here a failure leaves the data half-undone: the marker stops any retry.
    std::fs::write(
        &marker,
        format!(
            "undoing {} with {}\n",
            plan.gtids.join(","),
            statements.display()
        ),
    )
    .map_err(|err| format!("{}: {err}", marker.display()))?;
    for sql in &reverse {
        run_client(&apply, &client, sql).await?;
    }
    // Nothing else may have been logged meanwhile (a read-only server; an admin could).
    let now: String = conn
        .query_first("SELECT @@gtid_binlog_state")
        .await
        .map_err(e("reading gtid_binlog_state"))?
        .unwrap_or_default();
    if now != state {
        return Err(format!(
            "the binary log moved during the undo ({state} → {now}): left for an operator, the undo statements are in {}",
            statements.display()
        ));
    }
    conn.query_drop("RESET MASTER")
        .await
        .map_err(e("RESET MASTER"))?;
    conn.query_drop(format!("SET GLOBAL gtid_binlog_state = '{}'", plan.state))
        .await
        .map_err(e("SET GLOBAL gtid_binlog_state"))?;
    let _ = std::fs::remove_file(&marker);
    Ok(Undone {
        gtids: plan.gtids,
        archive: decoded,
    })
}

/// `SHOW BINLOG EVENTS` of the newest binary log files, oldest first, back to the one
/// that holds the first errant transaction (or all of them).
async fn newest_events(
    conn: &mut mysql_async::Conn,
    errant: &[Extra],
) -> Result<Vec<BinlogEvent>, String> {
    let files: Vec<(String, u64)> = conn
        .query("SHOW BINARY LOGS")
        .await
        .map_err(|err| format!("SHOW BINARY LOGS: {err}"))?;
    let firsts: Vec<(u32, u32, u64)> = errant
        .iter()
        .filter_map(|e| match e {
            Extra::Maria {
                domain,
                server,
                after,
                ..
            } => Some((*domain, *server, after.map_or(1, |a| a + 1))),
            Extra::Mysql { .. } => None,
        })
        .collect();
    let mut chunks: Vec<Vec<BinlogEvent>> = Vec::new();
    for (file, _) in files.iter().rev() {
        let rows: Vec<(String, u64, String, u32, u64, String)> = conn
            .query(format!(
                "SHOW BINLOG EVENTS IN '{}'",
                file.replace('\'', "")
            ))
            .await
            .map_err(|err| format!("SHOW BINLOG EVENTS IN {file}: {err}"))?;
        let events: Vec<BinlogEvent> = rows
            .into_iter()
            .map(|(file, pos, kind, _, end, info)| BinlogEvent {
                file,
                pos,
                kind,
                end,
                info,
            })
            .collect();
        let holds_first = events.iter().any(|ev| {
            ev.kind == "Gtid"
                && gtid_of(&ev.info).is_some_and(|((d, s, n), _)| {
                    firsts
                        .iter()
                        .any(|&(fd, fs, fnum)| fd == d && fs == s && n <= fnum)
                })
        });
        chunks.push(events);
        if holds_first {
            break;
        }
    }
    chunks.reverse();
    Ok(chunks.concat())
}

/// The MariaDB command-line tools the undo runs: the binary log reader and the client.
pub fn tools() -> Result<(PathBuf, PathBuf), String> {
    Ok((
        tool(&["mariadb-binlog", "mysqlbinlog"])?,
        tool(&["mariadb", "mysql"])?,
    ))
}

/// The first of `names` on PATH.
pub(super) fn tool(names: &[&str]) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names
        .iter()
        .find_map(|n| {
            std::env::split_paths(&path)
                .map(|d| d.join(n))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            format!(
                "none of {} is installed (the MariaDB client package)",
                names.join(", ")
            )
        })
}

/// The connection settings for the MariaDB command-line tools, in a file only we can read
/// (a password on the command line would be visible to every user); removed on drop.
pub(super) struct ClientFile(PathBuf);

impl ClientFile {
    pub(super) fn new(server: &Server) -> Result<Self, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = std::env::temp_dir().join(format!(
            "xvrrpd-client-{}-{:x}.cnf",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|err| format!("{}: {err}", path.display()))?;
        f.write_all(server.client_options().as_bytes())
            .map_err(|err| format!("{}: {err}", path.display()))?;
        Ok(Self(path))
    }

    pub(super) fn arg(&self) -> String {
        format!("--defaults-file={}", self.0.display())
    }
}

impl Drop for ClientFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One stretch of the log through `mariadb-binlog`, decoded for people or reversed.
async fn run_binlog(
    binlog: &Path,
    client: &ClientFile,
    r: &Range,
    flashback: bool,
) -> Result<Vec<u8>, String> {
    let mut cmd = tokio::process::Command::new(binlog);
    cmd.arg(client.arg())
        .arg("--read-from-remote-server")
        .arg(format!("--start-position={}", r.start))
        .arg(format!("--stop-position={}", r.stop));
    if flashback {
        cmd.arg("--flashback");
    } else {
        cmd.args(["--base64-output=decode-rows", "--verbose"]);
    }
    cmd.arg(&r.file);
    let out = run_tool(cmd, binlog).await?;
    if !out.status.success() {
        return Err(format!(
            "{} {}:{}-{}: {}",
            binlog.display(),
            r.file,
            r.start,
            r.stop,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// Runs a client tool to its end, bounded by [`TOOL_TIMEOUT`] (killed past it).
pub(super) async fn run_tool(
    mut cmd: tokio::process::Command,
    tool: &Path,
) -> Result<std::process::Output, String> {
    cmd.kill_on_drop(true);
    tokio::time::timeout(TOOL_TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("{} did not finish in {TOOL_TIMEOUT:?}", tool.display()))?
        .map_err(|err| format!("{}: {err}", tool.display()))
}

/// Applies undo statements unlogged: they must not become a transaction of this server's
/// own (the peer would receive it).
async fn run_client(client_tool: &Path, client: &ClientFile, sql: &[u8]) -> Result<(), String> {
    let mut child = tokio::process::Command::new(client_tool)
        .arg(client.arg())
        .args([
            "--init-command=SET SESSION sql_log_bin = 0",
            "--skip-reconnect",
            "--batch",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| format!("{}: {err}", client_tool.display()))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let run = async {
        stdin.write_all(sql).await?;
        drop(stdin);
        child.wait_with_output().await
    };
    let out = tokio::time::timeout(TOOL_TIMEOUT, run)
        .await
        .map_err(|_| {
            format!(
                "{} did not finish in {TOOL_TIMEOUT:?}",
                client_tool.display()
            )
        })?
        .map_err(|err| format!("{}: {err}", client_tool.display()))?;
    if !out.status.success() {
        return Err(format!(
            "applying the undo: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(file: &str, pos: u64, kind: &str, end: u64, info: &str) -> BinlogEvent {
        BinlogEvent {
            file: file.into(),
            pos,
            kind: kind.into(),
            end,
            info: info.into(),
        }
    }

    /// A log like the one the lab leaves: db1's own transactions 1-1-3..5 and one of
    /// db2's, replicated (2-2-7), in db1-bin.000002; 1-1-6 and 1-1-7 in the next file.
    fn log() -> Vec<BinlogEvent> {
        let mut v = vec![
            ev("b.2", 4, "Format_desc", 256, ""),
            ev("b.2", 256, "Gtid_list", 285, "[1-1-2]"),
            ev("b.2", 285, "Binlog_checkpoint", 326, "b.2"),
        ];
        let tx = |v: &mut Vec<BinlogEvent>, file: &str, at: u64, gtid: &str| {
            v.push(ev(file, at, "Gtid", at + 40, &format!("BEGIN GTID {gtid}")));
            v.push(ev(
                file,
                at + 40,
                "Annotate_rows",
                at + 80,
                "UPDATE acct ...",
            ));
            v.push(ev(
                file,
                at + 80,
                "Table_map",
                at + 120,
                "table_id: 18 (lab.acct)",
            ));
            v.push(ev(
                file,
                at + 120,
                "Update_rows_v1",
                at + 160,
                "table_id: 18 flags: STMT_END_F",
            ));
            v.push(ev(file, at + 160, "Xid", at + 200, "COMMIT /* xid=3 */"));
        };
        tx(&mut v, "b.2", 326, "1-1-3");
        tx(&mut v, "b.2", 526, "2-2-7");
        tx(&mut v, "b.2", 726, "1-1-4");
        tx(&mut v, "b.2", 926, "1-1-5");
        v.push(ev("b.2", 1126, "Rotate", 1170, "b.3;pos=4"));
        v.push(ev("b.3", 4, "Format_desc", 256, ""));
        v.push(ev("b.3", 256, "Gtid_list", 299, "[1-1-5,2-2-7]"));
        tx(&mut v, "b.3", 299, "1-1-6");
        tx(&mut v, "b.3", 499, "1-1-7");
        v
    }

    fn errant(after: Option<u64>, last: u64) -> Vec<Extra> {
        vec![Extra::Maria {
            domain: 1,
            server: 1,
            after,
            last,
        }]
    }

    #[test]
    fn the_errant_tail_is_undone_newest_file_first_and_dropped_from_the_gtid_state() {
        let p = plan(&log(), &errant(Some(4), 7), "1-1-7,2-2-7").unwrap();
        assert_eq!(p.gtids, ["1-1-5", "1-1-6", "1-1-7"]);
        assert_eq!(
            p.ranges,
            [
                Range {
                    file: "b.3".into(),
                    start: 299,
                    stop: 699
                },
                Range {
                    file: "b.2".into(),
                    start: 926,
                    stop: 1126
                },
            ]
        );
        assert_eq!(p.state, "1-1-4,2-2-7");
        // The newest one alone: one stretch, the state one back.
        let p = plan(&log(), &errant(Some(6), 7), "1-1-7,2-2-7").unwrap();
        assert_eq!(
            p.ranges,
            [Range {
                file: "b.3".into(),
                start: 499,
                stop: 699
            }]
        );
        assert_eq!(p.state, "1-1-6,2-2-7");
    }

    #[test]
    fn an_origin_with_nothing_left_leaves_the_gtid_state() {
        let mut v = log();
        v.retain(|e| e.file == "b.3");
        let p = plan(&v, &errant(Some(5), 7), "1-1-7,2-2-7").unwrap();
        assert_eq!(p.state, "1-1-5,2-2-7");
        assert_eq!(
            state_without("2-2-7,1-1-2", &[(1, 1, None, 2)]).unwrap(),
            "2-2-7"
        );
    }

    #[test]
    fn what_cannot_be_undone_exactly_is_refused_with_the_reason() {
        // Another origin's transaction after the first errant one.
        let e = plan(&log(), &errant(Some(2), 7), "1-1-7,2-2-7").unwrap_err();
        assert!(e.contains("2-2-7 was logged after the errant 1-1-3"), "{e}");
        // Purged: the first errant transaction's file is gone.
        let mut v = log();
        v.retain(|e| e.file == "b.3");
        let e = plan(&v, &errant(Some(4), 7), "1-1-7").unwrap_err();
        assert!(e.contains("3 errant transactions from 1-1 but 2"), "{e}");
        // Not there at all.
        let e = plan(&log(), &errant(Some(9), 12), "1-1-12").unwrap_err();
        assert!(e.contains("not in the binary log"), "{e}");
        // DDL.
        let mut v = log();
        v.push(ev("b.3", 699, "Gtid", 740, "GTID 1-1-8"));
        v.push(ev("b.3", 740, "Query", 800, "ALTER TABLE acct ADD c INT"));
        let e = plan(&v, &errant(Some(6), 8), "1-1-8").unwrap_err();
        assert!(e.contains("1-1-8 is DDL"), "{e}");
        // A statement inside a row transaction (binlog_format = MIXED).
        let mut v = log();
        v.push(ev("b.3", 699, "Gtid", 740, "BEGIN GTID 1-1-8"));
        v.push(ev("b.3", 740, "Query", 800, "UPDATE acct SET x = RAND()"));
        v.push(ev("b.3", 800, "Xid", 830, "COMMIT /* xid=9 */"));
        let e = plan(&v, &errant(Some(6), 8), "1-1-8").unwrap_err();
        assert!(e.contains("1-1-8 holds a statement"), "{e}");
        // MySQL.
        let e = plan(
            &log(),
            &[Extra::Mysql {
                uuid: "u".into(),
                ranges: vec![(1, 2)],
            }],
            "",
        )
        .unwrap_err();
        assert!(e.contains("MySQL has no flashback"), "{e}");
    }

    #[test]
    fn gtid_events_are_read_with_and_without_begin() {
        assert_eq!(gtid_of("BEGIN GTID 1-1-5"), Some(((1, 1, 5), true)));
        assert_eq!(
            gtid_of("BEGIN GTID 0-12-345 cid=7"),
            Some(((0, 12, 345), true))
        );
        assert_eq!(gtid_of("GTID 1-1-2"), Some(((1, 1, 2), false)));
        assert_eq!(gtid_of("COMMIT"), None);
    }
}
