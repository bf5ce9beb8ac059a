//! The write guard: one task per write instance that makes its MySQL server writable or
//! read-only, in the order the main loop asks, one step at a time.
//!
//! What to do and when is the core's decision ([`crate::role`]); this task only carries it
//! out against the server. Promotion: wait for catch-up (bounded by `catchup_timeout`),
//! then `read_only = OFF`; only then does the core add the VIP. Demotion (the fence): the
//! VIP is already gone; `read_only = ON` (`super_read_only` on MySQL) is issued and,
//! while it waits for commits in flight, what holds it up is killed (see [`Worker::fence`]);
//! then the remaining client connections are killed. A demotion that cannot reach the server is retried until it succeeds or another
//! command supersedes it, so a mysqld that restarts is fenced as soon as it answers.
use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use mysql_async::prelude::Queryable;
use tokio::sync::mpsc::{self, error::TryRecvError, UnboundedReceiver, UnboundedSender};
use tracing::{info, warn};

use super::{
    catchup::{self, Target},
    clone,
    conn::{is_own, OwnConn, Server},
    dialect::Flavor,
    divergence::{self, Executed, Extra, Origin},
    flashback, hung, preflight, privileges, replica, term,
};
use crate::{
    config::{ErrantPolicy, HungPolicy, WriteGuardConfig},
    engine::Instant as EngineInstant,
    // How often a wait checks for a newer command.
    role::watch::WAIT_SLICE,
    role::{
        demotion::{Demotion, HUNG_KILL},
        promotion::{Answer, Failure, PeerLook, Promotion, Statement, Step, STATEMENT_TIMEOUT},
        switchover::Holds,
        Blocked, Command, KeyTenure, Outcome, Standing, Verdict,
    },
};

mod fence;
mod peer;
mod rejoin;

pub use fence::{victims, Thread, Victim};
pub use peer::dump_peer;
use peer::Sets;

/// The monotonic clock the step machines run on.
fn engine_now() -> EngineInstant {
    EngineInstant(crate::net::monotonic_ns())
}

/// The main loop's end of one guard.
pub struct Guard {
    tx: UnboundedSender<Command>,
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
            killer: None,
            gone_peer: None,
            probed: None,
            undo_refused: None,
            abandoned: Vec::new(),
        };
        Self {
            tx,
            task: tokio::spawn(worker.run()),
        }
    }

    /// Queues a command (the core numbers them).
    pub fn send(&self, cmd: Command) {
        let _ = self.tx.send(cmd);
    }

    /// Lets queued commands finish (a pending demotion above all), bounded by `timeout`.
    pub async fn finish(self, timeout: Duration) {
        drop(self.tx);
        if tokio::time::timeout(timeout, self.task).await.is_err() {
            warn!("MySQL write guard did not finish in time");
        }
    }
}

/// How long a replica's MySQL port may take to accept a connection before it counts as
/// gone (same segment: a live server answers in well under a millisecond).
const PROBE_TIMEOUT: Duration = Duration::from_millis(50);
/// Parallel connection attempts before the peer counts as gone (at 30 % loss each way
/// one attempt fails half the time; six all fail about 2 % of the time).
const PEER_ATTEMPTS: usize = 6;

struct Slice {
    reached: bool,
    applying: bool,
}

/// The error of a server that replicates from no peer.
const NO_PEER: &str = "this server replicates from no peer";

/// A failed statement, refused by the server (a privilege: retrying changes nothing) or
/// not (a timeout, a lost connection, a server starting or stopping).
fn failure(e: &mysql_async::Error) -> Failure {
    Failure {
        refused: matches!(e, mysql_async::Error::Server(s) if privileges::is_access_denied(s.code)),
        error: e.to_string(),
    }
}

struct Worker {
    name: String,
    server: Server,
    cfg: WriteGuardConfig,
    rx: UnboundedReceiver<Command>,
    out: Box<dyn Fn(Outcome) + Send>,
    conn: Option<(OwnConn, Flavor, u32)>,
    /// The fence's second connection: it kills what holds `read_only = ON` up.
    killer: Option<OwnConn>,
    /// The peer this promotion already found unreachable (its dump thread need not be
    /// probed again).
    gone_peer: Option<std::net::IpAddr>,
    /// This promotion's last probe of a server's port: address, port, when it ended,
    /// and whether it answered. The first step probes the peer (as the replica whose
    /// dump thread may hold semi-sync up); the look at the peer a few ms later reuses a
    /// fresh result instead of waiting another probe timeout for a dead host.
    probed: Option<(std::net::IpAddr, u16, Instant, bool)>,
    /// The errant transactions an undo was refused for (or failed on): not tried again
    /// until the set changes or the agent restarts.
    undo_refused: Option<Vec<String>>,
    /// Connections dropped while their fence statement had not answered (a hung or
    /// cut-off server): the statement may still be queued inside the server and run
    /// when it resumes, after a later promotion made it writable. Killed before any
    /// promotion lifts read_only.
    abandoned: Vec<u32>,
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
                Command::Promote { term, key } => self.promote(term, key).await,
                Command::Demote { term } => self.demote(term).await,
                Command::ReadyPeer { term } => self.ready_peer(term).await,
                Command::WatchCatchup { term } => self.watch(term).await,
                Command::Arbitrate { term, own } => self.arbitrate(term, own).await,
                Command::Rejoin { term, await_term } => self.rejoin(term, await_term).await,
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

    /// Runs a promotion ([`Promotion`]: every rule is there) against the servers: each
    /// statement it asks for, answered with what happened. A newer command abandons it.
    async fn promote(&mut self, term: u64, key: Option<KeyTenure>) -> Option<Command> {
        let now = engine_now;
        let deadline = Instant::now() + self.cfg.catchup_timeout;
        let mut machine = Promotion::new(
            term,
            key,
            now(),
            self.cfg.catchup_timeout,
            self.cfg.on_catchup_timeout,
        );
        // Never wait for an acknowledgement from a peer already gone: with lossless
        // semi-sync (AFTER_SYNC) and log_slave_updates, applying the last transactions
        // the dead master sent waits for that master's ACK (its binlog dump thread here
        // still counts it as a semi-sync replica) until rpl_semi_sync_master_timeout:
        // measured ~1 s of catch-up after a mysqld kill mid-commit. Its dump thread goes
        // first; a live peer's port answers and keeps its thread.
        self.gone_peer = None;
        self.probed = None;
        let mut step = |now, answer| machine.step(now, answer);
        self.run_steps(
            &mut step,
            Some(deadline),
            "promotion superseded before the server was writable",
        )
        .await
    }

    /// Runs a machine of the promotion's language against the servers until it ends
    /// (None) or a newer command supersedes it (that command). Catch-up slices run to
    /// `deadline`, toward one target kept across slices; without one (the watch), toward
    /// what has reached the server at each slice, with no deadline.
    async fn run_steps(
        &mut self,
        machine: &mut impl FnMut(EngineInstant, Answer) -> Step,
        deadline: Option<Instant>,
        superseded: &str,
    ) -> Option<Command> {
        let mut target = None;
        let mut answer = Answer::Next;
        loop {
            if let Some(next) = self.newer() {
                info!(instance = %self.name, "{superseded}");
                return next;
            }
            answer = match machine(engine_now(), answer) {
                Step::Run(statement) => match deadline {
                    Some(d) => self.execute(statement, &mut target, d).await,
                    None => {
                        let far = Instant::now() + Duration::from_secs(3600);
                        self.execute(statement, &mut None, far).await
                    }
                },
                Step::Wait(d) => {
                    tokio::time::sleep(d).await;
                    Answer::Next
                }
                Step::Note(line) => {
                    info!(instance = %self.name, "{line}");
                    Answer::Next
                }
                Step::Warn(line) => {
                    warn!(instance = %self.name, "{line}");
                    Answer::Next
                }
                Step::Report(outcome) => {
                    self.report(outcome);
                    Answer::Next
                }
                Step::End => return None,
            };
        }
    }

    /// One statement of a promotion, and what happened.
    async fn execute(
        &mut self,
        statement: Statement,
        target: &mut Option<Target>,
        deadline: Instant,
    ) -> Answer {
        let failed = |error: String| {
            Answer::Failed(Failure {
                refused: false,
                error,
            })
        };
        match statement {
            Statement::ReceiverStarted => Answer::Flag(self.receiver_started().await),
            Statement::ReleaseDeadReplicas => {
                if let Err(e) = self.release_dead_replicas().await {
                    warn!(instance = %self.name, error = %e, "checking replicas before writes");
                }
                Answer::Ok
            }
            Statement::CatchUpSlice => match self.catch_up_slice(target, deadline).await {
                Ok(slice) => Answer::CaughtUp {
                    reached: slice.reached,
                    target: target.as_ref().map_or("unknown".into(), Target::to_string),
                    applying: slice.applying,
                },
                Err(e) => {
                    self.conn = None;
                    warn!(instance = %self.name, error = %e, "catch-up: retrying");
                    failed(e)
                }
            },
            Statement::LookPeer => Answer::Peer(self.peer().await),
            Statement::Compare => match self.compare().await {
                Ok(r) => Answer::Compared {
                    errant: divergence::names(&r.errant),
                    missing: divergence::count(&r.missing),
                    missing_names: divergence::names(&r.missing).join(","),
                    replicate: r.replicate,
                },
                Err(e) => {
                    self.conn = None;
                    failed(e)
                }
            },
            Statement::StartReplication => match self.replicate(true).await {
                Ok(()) => Answer::Ok,
                Err(f) => {
                    if !f.refused {
                        self.conn = None;
                    }
                    Answer::Failed(f)
                }
            },
            Statement::StopReplication => match self.replicate(false).await {
                Ok(()) => Answer::Ok,
                Err(f) => {
                    self.conn = None;
                    Answer::Failed(f)
                }
            },
            Statement::ServedLast => self.served_last().await.map_or_else(failed, Answer::Flag),
            Statement::KeyReceived => self
                .key_received()
                .await
                .map_or_else(failed, Answer::Number),
            Statement::KillAbandoned => self
                .kill_abandoned()
                .await
                .map_or_else(failed, |()| Answer::Ok),
            Statement::AllowOwnWrites => self
                .allow_own_writes()
                .await
                .map_or_else(failed, |()| Answer::Ok),
            Statement::BumpTerm { key } => self
                .bump_term(key)
                .await
                .map_or_else(failed, Answer::Number),
            Statement::SetWritable => match self.set_writable().await {
                Ok(()) => Answer::Ok,
                Err(f) => {
                    if !f.refused {
                        self.conn = None;
                        warn!(instance = %self.name, error = %f.error, "setting read_only = OFF: retrying");
                    }
                    Answer::Failed(f)
                }
            },
        }
    }

    /// Hands a promotion's (or a watch's) outcome to the core, saying it in the log.
    fn report(&mut self, outcome: Outcome) {
        match &outcome {
            Outcome::CaughtUp { .. } => {
                info!(instance = %self.name, "relay log applied: rejoining the election")
            }
            Outcome::Blocked { blocked, .. } => {
                warn!(instance = %self.name, step = %blocked.step, error = %blocked.error, "BLOCKED: read-only and out of the election until this works")
            }
            Outcome::CatchupTimeout { target, .. } => {
                warn!(instance = %self.name, target = %target, timeout = ?self.cfg.catchup_timeout, policy = ?self.cfg.on_catchup_timeout, "catch-up timed out")
            }
            Outcome::Standing {
                standing: Standing::Divergent { errant },
                ..
            } => {
                warn!(instance = %self.name, errant = %errant.join(","), "promotion refused: DIVERGENT ({})", Flavor::rebuild_for(errant))
            }
            _ => {}
        }
        (self.out)(outcome);
    }

    /// The next write term, written beside the data before any client can reach the
    /// server (the VIP follows the outcome).
    async fn bump_term(&mut self, key: Option<u64>) -> Result<u64, String> {
        let name = self.name.clone();
        let (conn, _, id) = self.connection().await?;
        let id = *id;
        let r = bounded(term::bump(conn, &name, id, key)).await;
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    /// Is the replication receiver started (running, or connecting to a peer it lost)?
    /// An applier that stopped is catch-up's business (`on_catchup_timeout`); a receiver
    /// stopped means nothing was arriving. An error counts as no.
    async fn receiver_started(&mut self) -> bool {
        let Ok((conn, _, _)) = self.connection().await else {
            return false;
        };
        matches!(bounded(replica::read(conn)).await, Ok(Some(s)) if s.io_started)
    }

    /// The latest key tenure whose promotion this server's data holds (0: none).
    async fn key_received(&mut self) -> Result<u64, String> {
        let name = self.name.clone();
        let (conn, _, _) = self.connection().await?;
        bounded(term::key_received(conn, &name)).await
    }

    /// Did this server serve writes last, as far as its data knows (its own latest
    /// promotion is the highest term the data holds, or nobody was ever promoted)?
    async fn served_last(&mut self) -> Result<bool, String> {
        let name = self.name.clone();
        let (conn, _, _) = self.connection().await?;
        let own = bounded(term::read_peer(conn, &name)).await?.own;
        let highest = bounded(term::read(conn, &name)).await?.unwrap_or(0);
        Ok(own >= highest)
    }

    /// One bounded slice of the catch-up wait. A stopped applier is not waited for (it
    /// never gets there): the slice says so at once.
    async fn catch_up_slice(
        &mut self,
        target: &mut Option<Target>,
        deadline: Instant,
    ) -> Result<Slice, String> {
        let (conn, flavor, id) = self.connection().await?;
        let (flavor, id) = (*flavor, *id);
        let status = bounded(replica::read(conn)).await?;
        let t = target
            .get_or_insert_with(|| catchup::target(flavor, id, status.as_ref()))
            .clone();
        let applying = status.as_ref().is_none_or(|s| s.sql_running);
        // Never 0: MySQL's WAIT_FOR_EXECUTED_GTID_SET reads it as "wait for ever".
        let slice = if applying {
            WAIT_SLICE.min(deadline.saturating_duration_since(Instant::now()))
        } else {
            Duration::ZERO
        }
        .max(Duration::from_millis(1));
        let reached = match &t {
            Target::Nothing => true,
            Target::Gtid(gtids) => {
                let r: Option<i64> = bounded(
                    conn.exec_first(flavor.gtid_wait(), (gtids.as_str(), slice.as_secs_f64())),
                )
                .await?;
                r == Some(0)
            }
            Target::Position { file, pos } => {
                let done = status
                    .as_ref()
                    .is_some_and(|s| catchup::position_reached(s, file, *pos));
                if !done && applying {
                    tokio::time::sleep(slice.min(Duration::from_millis(10))).await;
                }
                done
            }
        };
        Ok(Slice { reached, applying })
    }

    /// After a stay-backup timeout: runs the watch ([`crate::role::watch::Watch`])
    /// against the server until what reached it is applied (or a refused start blocks
    /// it).
    async fn watch(&mut self, term: u64) -> Option<Command> {
        let mut machine = crate::role::watch::Watch::new(term);
        let mut step = |now, answer| machine.step(now, answer);
        self.run_steps(&mut step, None, "watch superseded").await
    }

    /// Two masters met: the peer's write term (read with our credentials through our
    /// replication settings, as promotion looks at the peer) against this node's own.
    async fn arbitrate(&mut self, term: u64, own: u64) -> Option<Command> {
        let verdict = match self.peer_term().await {
            Ok((peer, theirs)) => {
                let lacks = match theirs {
                    Some(t) => self.lacks(&t).await,
                    None => None,
                };
                term::verdict(own, peer, lacks)
            }
            Err(e) => {
                warn!(instance = %self.name, error = %e, "cannot read the other master's write term: asking again shortly");
                Verdict::Unknown
            }
        };
        info!(instance = %self.name, own, ?verdict, "another master: write terms compared");
        (self.out)(Outcome::Arbitrated { term, verdict });
        None
    }

    /// Starts or stops replicating from the peer (both threads), if not so already. A
    /// refused start is `refused` (a privilege, a syntax: retrying changes nothing).
    async fn replicate(&mut self, on: bool) -> Result<(), Failure> {
        let name = self.name.clone();
        let transient = |error| Failure {
            refused: false,
            error,
        };
        let (conn, flavor, _) = self.connection().await.map_err(transient)?;
        let flavor = *flavor;
        let Some(s) = bounded(replica::read(conn)).await.map_err(transient)? else {
            return Ok(());
        };
        if on && !(s.io_running && s.sql_running) {
            bounded_err(conn.query_drop(flavor.start_replica()))
                .await
                .map_err(|e| failure(&e))?;
            info!(instance = %name, "replicating from the peer");
        } else if !on && (s.io_running || s.sql_running) {
            stop_replicating(conn, flavor).await.map_err(transient)?;
            info!(instance = %name, "stopped replicating from the peer");
        }
        Ok(())
    }

    /// MySQL: `super_read_only = OFF` (read_only stays ON: only the agent's account, with
    /// CONNECTION_ADMIN, may write). MariaDB needs nothing (READ_ONLY ADMIN writes past
    /// read_only).
    async fn allow_own_writes(&mut self) -> Result<(), String> {
        let (conn, flavor, _) = self.connection().await?;
        if let Some(sql) = flavor.allow_own_writes() {
            bounded(conn.query_drop(sql)).await?;
        }
        Ok(())
    }

    /// `read_only = OFF` (clears `super_read_only` too on MySQL).
    async fn set_writable(&mut self) -> Result<(), Failure> {
        let (conn, _, _) = self.connection().await.map_err(|error| Failure {
            refused: false,
            error,
        })?;
        bounded_err(conn.query_drop("SET GLOBAL read_only = OFF"))
            .await
            .map_err(|e| failure(&e))?;
        info!(instance = %self.name, "MySQL read_only = OFF");
        Ok(())
    }

    /// A replica whose mysqld died can leave its binlog dump thread behind; semi-sync
    /// would hold the first commits for it until `rpl_semi_sync_master_timeout`. Dump
    /// threads whose host no longer accepts connections on its MySQL port are killed, so
    /// the new master's first write is not stalled (a live replica keeps its thread).
    async fn release_dead_replicas(&mut self) -> Result<(), String> {
        let (conn, _, _) = self.connection().await?;
        let port = bounded(replica::read(conn))
            .await?
            .map_or(3306, |s| s.master_port);
        let rows: Vec<(u64, String)> = bounded(conn.query(
            "SELECT ID, HOST FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
        ))
        .await?;
        for (id, host) in rows {
            let Some(ip) = dump_peer(&host) else { continue };
            let gone = self.gone_peer == Some(ip) || !self.probe(ip, port).await;
            if gone {
                let (conn, _, _) = self.connection().await?;
                let _ = bounded(conn.query_drop(format!("KILL CONNECTION {id}"))).await;
                info!(instance = %self.name, replica = %ip, "replica's mysqld is gone: its binlog dump thread killed");
            }
        }
        Ok(())
    }
}

impl Worker {
    /// Does `ip`'s port `port` accept connections? A result of this promotion no older
    /// than one probe timeout is reused: probing again would take as long and say the
    /// same.
    async fn probe(&mut self, ip: std::net::IpAddr, port: u16) -> bool {
        if let Some((i, p, at, answered)) = self.probed {
            if (i, p) == (ip, port) && at.elapsed() <= PROBE_TIMEOUT {
                return answered;
            }
        }
        let answered = probe_port((ip, port)).await;
        self.probed = Some((ip, port, Instant::now(), answered));
        answered
    }
}

/// Several connection attempts at once: on a lossy link one lost SYN must not make a
/// live server look gone (each attempt is lost independently), at no extra latency.
async fn probe_port<A: tokio::net::ToSocketAddrs + Clone>(addr: A) -> bool {
    let attempts = (0..PEER_ATTEMPTS).map(|_| {
        Box::pin(tokio::time::timeout(
            PROBE_TIMEOUT,
            tokio::net::TcpStream::connect(addr.clone()),
        ))
    });
    futures_util::future::select_ok(attempts.map(|a| {
        Box::pin(async move {
            match a.await {
                Ok(Ok(s)) => Ok(s),
                _ => Err(()),
            }
        })
    }))
    .await
    .is_ok()
}

/// Which client threads a sweep kills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// While `read_only = ON` waits: the threads committing (they hold it up), and every
    /// other client too when `everyone` (kill_writers, or the fence took too long).
    Blocking { everyone: bool },
    /// After the fence landed: every client connection.
    Everyone,
}

/// A statement bounded by [`STATEMENT_TIMEOUT`], its error as text.
/// Stops both replica threads without waiting on a peer that is gone. The applier stops
/// at once (it is idle after catch-up). The receiver may sit in a connect() to a frozen
/// or cut-off host, and `STOP SLAVE` waits for it: 2 s and more in the host-freeze lab,
/// on the promotion path. On MariaDB it is killed instead: KILL flags it and returns, and
/// the thread ends when its connect does, before it reads or acknowledges anything.
async fn stop_replicating(conn: &mut mysql_async::Conn, flavor: Flavor) -> Result<(), String> {
    bounded(conn.query_drop(flavor.stop_applier())).await?;
    match flavor.receiver_threads() {
        Some(sql) => {
            let receivers: Vec<u64> = bounded(conn.query(sql)).await?;
            for id in receivers {
                // Already gone is fine (ER_NO_SUCH_THREAD); refused is not: the receiver
                // would go on fetching the old master's transactions.
                match bounded_err(conn.query_drop(format!("KILL {id}"))).await {
                    Err(mysql_async::Error::Server(e)) if e.code != 1094 => {
                        return Err(format!(
                            "KILL {id} (the receiver): ERROR {}: {}",
                            e.code, e.message
                        ))
                    }
                    Err(e @ mysql_async::Error::Io(_)) => return Err(e.to_string()),
                    _ => {}
                }
            }
            Ok(())
        }
        None => bounded(conn.query_drop(flavor.stop_receiver())).await,
    }
}

/// A server's executed transactions and the origin that names its own: MariaDB's
/// `gtid_binlog_state` with `gtid_slave_pos` and `server_id`; MySQL's `gtid_executed` and
/// `server_uuid`. The parse error, if any, is the inner result.
async fn executed(
    conn: &mut mysql_async::Conn,
    flavor: Flavor,
) -> Result<(Result<Executed, String>, Origin), mysql_async::Error> {
    let row: Option<mysql_async::Row> = conn.query_first(flavor.executed()).await?;
    let cols: Vec<String> = row
        .map(|r| {
            (0..r.len())
                .map(|i| {
                    r.get_opt::<Option<String>, _>(i)
                        .and_then(Result::ok)
                        .flatten()
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(flavor.executed_from(&cols))
}

async fn bounded<T>(
    f: impl std::future::Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, String> {
    bounded_for(STATEMENT_TIMEOUT, f).await
}

/// A statement bounded by [`STATEMENT_TIMEOUT`], its error kept (a timeout is an I/O
/// error).
async fn bounded_err<T>(
    f: impl std::future::Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, mysql_async::Error> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(mysql_async::Error::Io(mysql_async::IoError::Io(
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {STATEMENT_TIMEOUT:?}"),
            ),
        ))),
    }
}

async fn bounded_for<T>(
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(id: u64, user: &str, cmd: &str, state: &str) -> Thread {
        Thread {
            id,
            user: user.into(),
            command: cmd.into(),
            state: state.into(),
        }
    }

    fn rows() -> Vec<Thread> {
        vec![
            thread(
                1,
                "system user",
                "Slave_IO",
                "Waiting for master to send event",
            ),
            thread(
                2,
                "system user",
                "Slave_SQL",
                "Slave has read all relay log",
            ),
            thread(
                3,
                "repl",
                "Binlog Dump",
                "Master has sent all binlog to slave",
            ),
            thread(4, "app", "Sleep", ""),
            thread(5, "app", "Query", "Waiting for semi-sync ACK from slave"),
            thread(6, "root", "Sleep", ""),
            thread(7, "event_scheduler", "Daemon", "Waiting on empty queue"),
            thread(8, "app", "Query", "Waiting for backup lock"),
            thread(9, "app", "Query", "waiting for handler commit"),
        ]
    }

    #[test]
    fn demotion_kills_clients_only_committing_first() {
        let ids = |v: Vec<Victim>| v.iter().map(|v| v.id).collect::<Vec<_>>();
        let all = victims(&rows(), |id| id == 6, Sweep::Everyone);
        assert_eq!(ids(all.clone()), vec![5, 9, 4, 8]);
        assert_eq!(all.iter().filter(|v| v.committing).count(), 2);
        assert_eq!(
            ids(victims(
                &rows(),
                |id| id == 6,
                Sweep::Blocking { everyone: true }
            )),
            vec![5, 9, 4, 8]
        );
    }

    #[test]
    fn a_patient_fence_kills_only_what_holds_it_up() {
        let v = victims(&rows(), |_| false, Sweep::Blocking { everyone: false });
        assert_eq!(
            v,
            vec![
                Victim {
                    id: 5,
                    committing: true
                },
                Victim {
                    id: 9,
                    committing: true
                }
            ]
        );
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
