//! The write guard: one task per write instance that makes its MySQL server writable or
//! read-only, in the order the main loop asks, one step at a time.
//!
//! Promotion: wait for catch-up (bounded by `catchup_timeout`), then `read_only = OFF`;
//! only then does the main loop add the VIP. Demotion: the main loop has already removed
//! the VIP; `read_only = ON` (`super_read_only` on MySQL), then client connections are
//! killed. A demotion that cannot reach the server is retried until it succeeds or another
//! command supersedes it, so a mysqld that restarts is fenced as soon as it answers.
use std::time::{Duration, Instant};

use mysql_async::{prelude::Queryable, Row};
use tokio::sync::mpsc::{self, error::TryRecvError, UnboundedReceiver, UnboundedSender};
use tracing::{info, warn};

use super::{
    catchup::{self, Flavor, ReplicaStatus, Target},
    conn::{is_own, OwnConn, Server},
};
use crate::config::{CatchupPolicy, WriteGuardConfig};

/// What the main loop asks. `term` identifies the request; outcomes carry it back so a
/// superseded outcome is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Promote {
        term: u64,
    },
    Demote {
        term: u64,
    },
    /// After a catch-up timeout under `stay-backup`: report when the relay log is applied.
    WatchCatchup {
        term: u64,
    },
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Writable {
        term: u64,
        catchup: Duration,
        target: String,
        forced: bool,
    },
    CatchupTimeout {
        term: u64,
        target: String,
    },
    CaughtUp {
        term: u64,
    },
    ReadOnly {
        term: u64,
        killed: usize,
    },
}

/// The main loop's end of one guard.
pub struct Guard {
    tx: UnboundedSender<Command>,
    term: u64,
    task: tokio::task::JoinHandle<()>,
}

impl Guard {
    /// Starts the task; outcomes go to `out` tagged with `instance`.
    pub fn spawn(
        instance: usize,
        name: String,
        server: Server,
        cfg: WriteGuardConfig,
        out: UnboundedSender<(usize, Outcome)>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = Worker {
            name,
            server,
            cfg,
            rx,
            out: Box::new(move |o| {
                let _ = out.send((instance, o));
            }),
            conn: None,
            gone_peer: None,
        };
        Self {
            tx,
            term: 0,
            task: tokio::spawn(worker.run()),
        }
    }

    /// Queues a command with a fresh term; returns that term.
    pub fn send(&mut self, make: impl FnOnce(u64) -> Command) -> u64 {
        self.term += 1;
        let _ = self.tx.send(make(self.term));
        self.term
    }

    /// The term of the latest command.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Lets queued commands finish (a pending demotion above all), bounded by `timeout`.
    pub async fn finish(self, timeout: Duration) {
        drop(self.tx);
        if tokio::time::timeout(timeout, self.task).await.is_err() {
            warn!("MySQL write guard did not finish in time");
        }
    }
}

/// Each statement's bound: a hung server must not wedge the guard.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a wait checks for a newer command.
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// How long a replica's MySQL port may take to accept a connection before it counts as
/// gone (same segment: a live server answers in well under a millisecond).
const PROBE_TIMEOUT: Duration = Duration::from_millis(50);
/// Retry pause after a failed step.
const RETRY: Duration = Duration::from_millis(200);
/// How long the peer's server may take to say whether it is read-only before it counts
/// as hung (a SIGSTOPped mysqld accepts TCP connections but never answers).
const PEER_ANSWER: Duration = Duration::from_millis(300);
/// Parallel connection attempts before the peer counts as gone (at 30 % loss each way
/// one attempt fails half the time; six all fail about 2 % of the time).
const PEER_ATTEMPTS: usize = 6;
/// How long a peer may stay silent (port open, no answer) before it counts as gone: a
/// hung server cannot take writes, but on a lossy link a live one is merely slow.
const PEER_HUNG: Duration = Duration::from_secs(1);
/// Pause between two looks at a peer that is still writable.
const PEER_POLL: Duration = Duration::from_millis(20);

/// What promotion found on the peer (the server this one replicates from).
#[derive(Debug, PartialEq, Eq)]
enum Peer {
    /// Read-only, or not a replica at all: nothing to fence.
    Fenced,
    /// Its MySQL port does not accept connections.
    Gone,
    /// Its port accepts connections but the server does not answer in time: hung (a
    /// SIGSTOPped mysqld) or a very lossy link. Gone once it lasts [`PEER_HUNG`].
    Silent,
    /// It answers and is writable: it may still be the master (a false takeover).
    Writable,
    /// Reachable but not readable with our credentials.
    Unknown(String),
}
/// A demotion still failing when xvrrpd stops is abandoned after this many tries.
const SHUTDOWN_TRIES: u32 = 10;

struct Worker {
    name: String,
    server: Server,
    cfg: WriteGuardConfig,
    rx: UnboundedReceiver<Command>,
    out: Box<dyn Fn(Outcome) + Send>,
    conn: Option<(OwnConn, Flavor, u32)>,
    /// The peer this promotion already found unreachable (its dump thread need not be
    /// probed again).
    gone_peer: Option<std::net::IpAddr>,
}

impl Worker {
    async fn run(mut self) {
        let mut next = None;
        loop {
            let cmd = match next.take() {
                Some(c) => c,
                None => match self.rx.recv().await {
                    Some(c) => c,
                    None => return,
                },
            };
            next = match cmd {
                Command::Promote { term } => self.promote(term).await,
                Command::Demote { term } => self.demote(term).await,
                Command::WatchCatchup { term } => self.watch(term).await,
            };
        }
    }

    /// A newer command, if one is queued. A closed queue only interrupts promotions and
    /// watches (callers decide), never a demotion in progress.
    fn newer(&mut self) -> Option<Option<Command>> {
        match self.rx.try_recv() {
            Ok(c) => Some(Some(c)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(None),
        }
    }

    async fn connection(&mut self) -> Result<&mut (OwnConn, Flavor, u32), String> {
        if self.conn.is_none() {
            let c = bounded(async {
                let mut c = self.server.connect().await?;
                let version: Option<String> = c.query_first("SELECT @@version").await?;
                let id: Option<u32> = c.query_first("SELECT @@server_id").await?;
                Ok((
                    c,
                    Flavor::from_version(&version.unwrap_or_default()),
                    id.unwrap_or(0),
                ))
            })
            .await?;
            self.conn = Some(c);
        }
        Ok(self.conn.as_mut().expect("connected"))
    }

    /// Catch-up within `catchup_timeout` (retrying after errors), then read_only = OFF,
    /// unless the policy says to stay read-only. A newer command abandons it.
    async fn promote(&mut self, term: u64) -> Option<Command> {
        let start = Instant::now();
        let deadline = start + self.cfg.catchup_timeout;
        let mut target = None;
        let reached = loop {
            if let Some(next) = self.newer() {
                info!(instance = %self.name, "promotion superseded before the server was writable");
                return next;
            }
            if Instant::now() >= deadline {
                break false;
            }
            match self.catch_up_slice(&mut target, deadline).await {
                Ok(true) => break true,
                Ok(false) => {}
                Err(e) => {
                    self.conn = None;
                    warn!(instance = %self.name, error = %e, "catch-up: retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        };
        let what = target.as_ref().map_or("unknown".into(), Target::to_string);
        if !reached {
            warn!(instance = %self.name, target = %what, timeout = ?self.cfg.catchup_timeout, policy = ?self.cfg.on_catchup_timeout, "catch-up timed out");
            (self.out)(Outcome::CatchupTimeout {
                term,
                target: what.clone(),
            });
            if self.cfg.on_catchup_timeout == CatchupPolicy::StayBackup {
                return None;
            }
        }
        // Never two writable servers: a peer that still answers as writable is most likely
        // still the master (this node took over on lost adverts, not on a failure) and its
        // advert will send this node back to backup. Wait for it to be fenced or gone.
        let mut forced = !reached;
        let mut said = false;
        let mut silent_since: Option<Instant> = None;
        self.gone_peer = None;
        loop {
            if let Some(next) = self.newer() {
                info!(instance = %self.name, "promotion superseded while the peer was writable");
                return next;
            }
            let look = self.peer().await;
            if look != Peer::Silent {
                silent_since = None;
            }
            match look {
                Peer::Fenced | Peer::Gone => break,
                Peer::Silent
                    if silent_since.get_or_insert_with(Instant::now).elapsed() >= PEER_HUNG =>
                {
                    info!(instance = %self.name, "the peer's server has not answered for 1 s: counted as gone");
                    break;
                }
                Peer::Silent => tokio::time::sleep(PEER_POLL).await,
                Peer::Unknown(e) => {
                    warn!(instance = %self.name, error = %e, "cannot read the peer's read_only (grant SELECT to xvrrpd's user there): promoting without that check");
                    break;
                }
                Peer::Writable if Instant::now() >= deadline => {
                    warn!(instance = %self.name, policy = ?self.cfg.on_catchup_timeout, "the peer is still writable at the catch-up deadline");
                    (self.out)(Outcome::CatchupTimeout {
                        term,
                        target: "peer still writable".into(),
                    });
                    if self.cfg.on_catchup_timeout == CatchupPolicy::StayBackup {
                        return None;
                    }
                    forced = true;
                    break;
                }
                Peer::Writable => {
                    if !said {
                        info!(instance = %self.name, "the peer's server is still writable: waiting until it is fenced or gone");
                        said = true;
                    }
                    tokio::time::sleep(PEER_POLL).await;
                }
            }
        }
        if let Err(e) = self.release_dead_replicas().await {
            warn!(instance = %self.name, error = %e, "checking replicas before writes");
        }
        loop {
            match self.set_read_only(false).await {
                Ok(()) => break,
                Err(e) => {
                    self.conn = None;
                    warn!(instance = %self.name, error = %e, "setting read_only = OFF: retrying");
                }
            }
            tokio::time::sleep(RETRY).await;
            if let Some(next) = self.newer() {
                return next;
            }
        }
        (self.out)(Outcome::Writable {
            term,
            catchup: start.elapsed(),
            target: what,
            forced,
        });
        None
    }

    /// Looks at the peer through our replication settings (same credentials).
    async fn peer(&mut self) -> Peer {
        let status = match self.connection().await {
            Ok((conn, _, _)) => bounded(replica_status(conn)).await,
            Err(e) => Err(e),
        };
        let (host, port) = match status {
            Ok(Some(s)) if !s.master_host.is_empty() => (s.master_host, s.master_port),
            Ok(_) => return Peer::Fenced,
            Err(e) => return Peer::Unknown(e),
        };
        // Several connection attempts at once: on a lossy link one lost SYN must not make
        // a live peer look gone (each attempt is lost independently), at no extra latency.
        let attempts = (0..PEER_ATTEMPTS).map(|_| {
            Box::pin(tokio::time::timeout(
                PROBE_TIMEOUT,
                tokio::net::TcpStream::connect((host.as_str(), port)),
            ))
        });
        let answered = futures_util::future::select_ok(attempts.map(|a| {
            Box::pin(async move {
                match a.await {
                    Ok(Ok(s)) => Ok(s),
                    _ => Err(()),
                }
            })
        }))
        .await
        .is_ok();
        if !answered {
            self.gone_peer = host.parse().ok();
            return Peer::Gone;
        }
        let peer = self.server.at(&host, port);
        let look = tokio::time::timeout(PEER_ANSWER, async {
            let mut c = peer.connect().await?;
            c.query_first::<u8, _>("SELECT @@global.read_only").await
        })
        .await;
        match look {
            Err(_) => Peer::Silent,
            Ok(Ok(Some(0))) => Peer::Writable,
            Ok(Ok(_)) => Peer::Fenced,
            Ok(Err(mysql_async::Error::Server(e))) => Peer::Unknown(e.to_string()),
            Ok(Err(_)) => Peer::Gone,
        }
    }

    /// One bounded slice of the catch-up wait: Ok(true) when the target is applied.
    async fn catch_up_slice(
        &mut self,
        target: &mut Option<Target>,
        deadline: Instant,
    ) -> Result<bool, String> {
        let (conn, flavor, id) = self.connection().await?;
        let (flavor, id) = (*flavor, *id);
        let status = bounded(replica_status(conn)).await?;
        let t = target
            .get_or_insert_with(|| catchup::target(flavor, id, status.as_ref()))
            .clone();
        let slice = WAIT_SLICE.min(deadline.saturating_duration_since(Instant::now()));
        let secs = slice.as_secs_f64();
        match &t {
            Target::Nothing => Ok(true),
            Target::MariaGtid(pos) => {
                let r: Option<i64> =
                    bounded(conn.exec_first("SELECT MASTER_GTID_WAIT(?, ?)", (pos.as_str(), secs)))
                        .await?;
                Ok(r == Some(0))
            }
            Target::MysqlGtid(set) => {
                let r: Option<i64> = bounded(conn.exec_first(
                    "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)",
                    (set.as_str(), secs),
                ))
                .await?;
                Ok(r == Some(0))
            }
            Target::Position { file, pos } => {
                let done = status
                    .as_ref()
                    .is_some_and(|s| catchup::position_reached(s, file, *pos));
                if !done {
                    tokio::time::sleep(slice.min(Duration::from_millis(10))).await;
                }
                Ok(done)
            }
        }
    }

    /// After a stay-backup timeout: waits (without a deadline) until what has reached the
    /// node is applied, then reports it.
    async fn watch(&mut self, term: u64) -> Option<Command> {
        loop {
            if let Some(next) = self.newer() {
                return next;
            }
            let mut target = None;
            let far = Instant::now() + Duration::from_secs(3600);
            match self.catch_up_slice(&mut target, far).await {
                Ok(true) => {
                    info!(instance = %self.name, "relay log applied: rejoining the election");
                    (self.out)(Outcome::CaughtUp { term });
                    return None;
                }
                Ok(false) => {}
                Err(_) => {
                    self.conn = None;
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    async fn demote(&mut self, term: u64) -> Option<Command> {
        let mut tries = 0;
        loop {
            let res = async {
                self.set_read_only(true).await?;
                if self.cfg.kill_writers {
                    self.kill_clients().await
                } else {
                    Ok(0)
                }
            }
            .await;
            match res {
                Ok(killed) => {
                    (self.out)(Outcome::ReadOnly { term, killed });
                    return None;
                }
                Err(e) => {
                    self.conn = None;
                    if tries % 25 == 0 {
                        warn!(instance = %self.name, error = %e, "demotion (read_only = ON): retrying until the server answers");
                    }
                }
            }
            tries += 1;
            tokio::time::sleep(RETRY).await;
            match self.newer() {
                Some(Some(next)) => return Some(next),
                Some(None) if tries >= SHUTDOWN_TRIES => {
                    warn!(instance = %self.name, "stopping with the server still writable: it did not answer");
                    return None;
                }
                _ => {}
            }
        }
    }

    async fn set_read_only(&mut self, on: bool) -> Result<(), String> {
        let (conn, flavor, _) = self.connection().await?;
        let sql = match (on, *flavor) {
            // super_read_only = ON implies read_only = ON; read_only = OFF clears both.
            (true, Flavor::Mysql) => "SET GLOBAL super_read_only = ON",
            (true, Flavor::MariaDb) => "SET GLOBAL read_only = ON",
            (false, _) => "SET GLOBAL read_only = OFF",
        };
        bounded(conn.query_drop(sql)).await?;
        info!(instance = %self.name, read_only = on, "MySQL read_only set");
        Ok(())
    }

    /// A replica whose mysqld died can leave its binlog dump thread behind; semi-sync
    /// would hold the first commits for it until `rpl_semi_sync_master_timeout`. Dump
    /// threads whose host no longer accepts connections on its MySQL port are killed, so
    /// the new master's first write is not stalled (a live replica keeps its thread).
    async fn release_dead_replicas(&mut self) -> Result<(), String> {
        let (conn, _, _) = self.connection().await?;
        let port = bounded(replica_status(conn))
            .await?
            .map_or(3306, |s| s.master_port);
        let rows: Vec<(u64, String)> = bounded(conn.query(
            "SELECT ID, HOST FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
        ))
        .await?;
        for (id, host) in rows {
            let Some(ip) = dump_peer(&host) else { continue };
            let gone = self.gone_peer == Some(ip) || {
                let probe =
                    tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect((ip, port)))
                        .await;
                !matches!(probe, Ok(Ok(_)))
            };
            if gone {
                let (conn, _, _) = self.connection().await?;
                let _ = bounded(conn.query_drop(format!("KILL CONNECTION {id}"))).await;
                info!(instance = %self.name, replica = %ip, "replica's mysqld is gone: its binlog dump thread killed");
            }
        }
        Ok(())
    }

    async fn kill_clients(&mut self) -> Result<usize, String> {
        let endpoint = self.server.endpoint.clone();
        let (conn, _, _) = self.connection().await?;
        let rows: Vec<(u64, String, String)> = bounded(conn.query(
            "SELECT ID, USER, COMMAND FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()",
        ))
        .await?;
        let victims = clients(&rows, |id| is_own(&endpoint, id as u32));
        for id in &victims {
            // Already gone is fine.
            let _ = bounded(conn.query_drop(format!("KILL CONNECTION {id}"))).await;
        }
        if !victims.is_empty() {
            info!(instance = %self.name, killed = ?victims, "client connections killed");
        }
        Ok(victims.len())
    }
}

/// Client connections to kill on demotion: everything but server threads, replication
/// (both directions) and xvrrpd's own connections.
pub fn clients(rows: &[(u64, String, String)], own: impl Fn(u64) -> bool) -> Vec<u64> {
    const SERVER_USERS: &[&str] = &["system user", "event_scheduler", "DELAYED"];
    const SERVER_COMMANDS: &[&str] = &[
        "Daemon",
        "Binlog Dump",
        "Binlog Dump GTID",
        "Slave_IO",
        "Slave_SQL",
        "Slave_worker",
        "Killed",
    ];
    rows.iter()
        .filter(|(id, user, cmd)| {
            !SERVER_USERS.contains(&user.as_str())
                && !SERVER_COMMANDS.contains(&cmd.as_str())
                && !own(*id)
        })
        .map(|(id, _, _)| *id)
        .collect()
}

/// The replica's address from a processlist HOST (`192.0.2.10:41234`, `[2001:db8::1]:5`).
pub fn dump_peer(host: &str) -> Option<std::net::IpAddr> {
    let h = host.rsplit_once(':').map_or(host, |(h, _)| h);
    h.trim_matches(|c| c == '[' || c == ']').parse().ok()
}

async fn replica_status(conn: &mut OwnConn) -> Result<Option<ReplicaStatus>, mysql_async::Error> {
    let row: Option<Row> = conn.query_first("SHOW SLAVE STATUS").await?;
    Ok(row.map(|row| {
        let text = |names: &[&str]| -> String {
            names
                .iter()
                .find_map(|n| {
                    row.get_opt::<Option<String>, _>(*n)
                        .and_then(|r| r.ok())
                        .flatten()
                })
                .unwrap_or_default()
        };
        let num = |names: &[&str]| text(names).parse().unwrap_or(0);
        ReplicaStatus {
            using_gtid: !matches!(text(&["Using_Gtid"]).as_str(), "" | "No"),
            gtid_io_pos: text(&["Gtid_IO_Pos"]),
            retrieved_gtid_set: text(&["Retrieved_Gtid_Set"]),
            master_log_file: text(&["Master_Log_File", "Source_Log_File"]),
            read_master_log_pos: num(&["Read_Master_Log_Pos", "Read_Source_Log_Pos"]),
            relay_master_log_file: text(&["Relay_Master_Log_File", "Relay_Source_Log_File"]),
            exec_master_log_pos: num(&["Exec_Master_Log_Pos", "Exec_Source_Log_Pos"]),
            master_host: text(&["Master_Host", "Source_Host"]),
            master_port: text(&["Master_Port", "Source_Port"])
                .parse()
                .unwrap_or(3306),
        }
    }))
}

/// A statement bounded by [`STATEMENT_TIMEOUT`], its error as text.
async fn bounded<T>(
    f: impl std::future::Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {STATEMENT_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demotion_kills_clients_only() {
        let row = |id: u64, user: &str, cmd: &str| (id, user.to_string(), cmd.to_string());
        let rows = vec![
            row(1, "system user", "Slave_IO"),
            row(2, "system user", "Slave_SQL"),
            row(3, "repl", "Binlog Dump"),
            row(4, "app", "Query"),
            row(5, "app", "Sleep"),
            row(6, "root", "Sleep"),
            row(7, "event_scheduler", "Daemon"),
        ];
        assert_eq!(clients(&rows, |id| id == 6), vec![4, 5]);
    }

    #[test]
    fn replica_address_from_processlist_host() {
        assert_eq!(
            dump_peer("192.0.2.10:41234"),
            Some("192.0.2.10".parse().unwrap())
        );
        assert_eq!(
            dump_peer("[2001:db8::10]:5"),
            Some("2001:db8::10".parse().unwrap())
        );
        assert_eq!(dump_peer("localhost"), None);
    }
}
