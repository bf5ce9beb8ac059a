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

/// The log line for a rejoin's standing that changed.
fn say(name: &str, standing: &Standing) {
    match standing {
        Standing::Divergent { errant } => warn!(
            instance = %name,
            errant = %errant.join(","),
            "DIVERGENT: this server holds transactions of its own that the peer, which served writes after it, never received; read-only and out of the election until they are gone: {}",
            Flavor::rebuild_for(errant)
        ),
        Standing::Ready => {
            info!(instance = %name, "no errant transactions, replicating from the peer: rejoining the election")
        }
        Standing::Blocked(b) => warn!(
            instance = %name,
            step = %b.step,
            error = %b.error,
            "BLOCKED: read-only and out of the election until this works"
        ),
        Standing::Behind { missing, names } => warn!(
            instance = %name,
            missing,
            names = %names,
            "BEHIND: the peer's transactions of the last look are still not applied here; no preemption until they are (a failover still catches up first)"
        ),
        Standing::Waiting | Standing::Uncompared => {}
    }
}

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

/// The fence's statements wait longer for a hung server: `read_only = ON` and the sweep
/// queued inside it run the moment it resumes, racing only what was queued there before.
/// Abandoned and sent again on a new connection (the old bound), they came in only after
/// a reconnect, tens of milliseconds late, while the resumed server took writes (chaos,
/// hung mysqld: both writable for 4–8 ms in 2 runs of 4).
const FENCE_WAIT: Duration = Duration::from_secs(30);
/// How long a replica's MySQL port may take to accept a connection before it counts as
/// gone (same segment: a live server answers in well under a millisecond).
const PROBE_TIMEOUT: Duration = Duration::from_millis(50);
/// How long the peer's server may take to say whether it is read-only before it counts
/// as hung (a SIGSTOPped mysqld accepts TCP connections but never answers).
const PEER_ANSWER: Duration = Duration::from_millis(300);
/// Between two attempts to read the peer's write term while none has answered.
const PEER_RETRY: Duration = Duration::from_millis(25);
/// Parallel connection attempts before the peer counts as gone (at 30 % loss each way
/// one attempt fails half the time; six all fail about 2 % of the time).
const PEER_ATTEMPTS: usize = 6;

/// One slice of the catch-up wait: the target applied, and whether the applier runs.
/// The sets one comparison with the peer looked at.
struct Sets {
    local: Executed,
    theirs: Executed,
    peer_origin: Origin,
}

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

/// A demotion still failing when xvrrpd stops is abandoned after this many tries.
const SHUTDOWN_TRIES: u32 = 10;
/// The head start `read_only = ON` gets before the first sweep: with nothing in flight it
/// lands in well under a millisecond and nobody is killed needlessly.
const FENCE_FIRST_LOOK: Duration = Duration::from_millis(2);
/// Pause between two sweeps while `read_only = ON` is still waiting.
const FENCE_SWEEP: Duration = Duration::from_millis(5);
/// With `kill_writers = false` only committing threads are killed, until the fence has
/// waited this long: then every client thread is (a held `FLUSH TABLES WITH READ LOCK`,
/// a long statement); the fence must land.
const FENCE_PATIENCE: Duration = Duration::from_millis(100);

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

    /// A switchover's check ([`Command::ReadyPeer`]): the peer's server replicates from
    /// this one and holds, within `catchup_timeout`, every transaction of this server's
    /// origin that this server held when asked, and everything of this server's its
    /// receiver held at the first look (a snapshot of this server alone misses commits
    /// still waiting for the semi-sync ACK; an applier blocked on a lock receives and
    /// acknowledges them, and applies nothing). Otherwise refused, saying why; nothing
    /// is fenced either way (the core fences once the answer is yes).
    async fn ready_peer(&mut self, term: u64) -> Option<Command> {
        use crate::role::switchover::{Answer, Check, Step};
        let start = Instant::now();
        let mut check = Check::new(term, engine_now(), self.cfg.catchup_timeout);
        let mut snapshot = None;
        let mut received = None;
        let mut peer_conn = None;
        let mut answer = Answer::Next;
        loop {
            if let Some(next) = self.newer() {
                info!(instance = %self.name, "switchover check superseded");
                return next;
            }
            answer = match check.step(engine_now(), answer) {
                Step::Look => {
                    match self
                        .peer_holds(&mut snapshot, &mut received, &mut peer_conn)
                        .await
                    {
                        Ok(holds) => Answer::Looked(holds),
                        Err(error) => {
                            peer_conn = None;
                            Answer::Failed(Failure {
                                refused: false,
                                error,
                            })
                        }
                    }
                }
                Step::Wait(d) => {
                    tokio::time::sleep(d).await;
                    Answer::Next
                }
                Step::Report(outcome) => {
                    match &outcome {
                        Outcome::PeerReady { refused: None, .. } => {
                            info!(instance = %self.name, took = ?start.elapsed(), "switchover: the peer holds this server's transactions")
                        }
                        Outcome::PeerReady {
                            refused: Some(why), ..
                        } => {
                            warn!(instance = %self.name, reason = %why, "switchover refused: nothing fenced, still the master")
                        }
                        _ => {}
                    }
                    (self.out)(outcome);
                    Answer::Next
                }
                Step::End => return None,
            };
        }
    }

    /// One look of the switchover check: this server's executed transactions and the
    /// peer's received ones the first time (`snapshot`, `received`), the peer's replica
    /// threads and executed transactions each time (over `peer_conn`, kept between looks).
    async fn peer_holds(
        &mut self,
        snapshot: &mut Option<(Executed, Origin)>,
        received: &mut Option<Executed>,
        peer_conn: &mut Option<OwnConn>,
    ) -> Result<Holds, String> {
        let (conn, flavor, _) = self.connection().await?;
        let flavor = *flavor;
        if snapshot.is_none() {
            let (own, origin) = bounded(executed(conn, flavor)).await?;
            *snapshot = Some((own?, origin));
        }
        let (own, origin) = snapshot.as_ref().expect("taken above");
        if peer_conn.is_none() {
            let peer = self.peer_server().await?;
            *peer_conn = Some(bounded(peer.connect()).await?);
        }
        let c = peer_conn.as_mut().expect("connected above");
        let status = bounded(replica::read(c)).await?;
        match status {
            Some(s) if s.io_running && s.sql_running => {
                if received.is_none() {
                    *received = Some(match flavor {
                        Flavor::MariaDb => Executed::mariadb(&[&s.gtid_io_pos])?,
                        Flavor::Mysql => Executed::mysql(&s.retrieved_gtid_set)?,
                    });
                }
            }
            Some(s) => {
                let error = [s.last_io_error, s.last_sql_error]
                    .into_iter()
                    .filter(|e| !e.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
                return Ok(Holds::Never(format!(
                    "the peer does not replicate from this server (receiver running: {}, applier running: {}{}): it would take over without what this server acknowledged; start its replication first",
                    s.io_running,
                    s.sql_running,
                    if error.is_empty() { String::new() } else { format!(", {error}") }
                )));
            }
            None => return Ok(Holds::Never("the peer replicates from nobody: it would take over without what this server acknowledged".into())),
        }
        let (theirs, _) = bounded(executed(c, flavor)).await?;
        let theirs = theirs?;
        let mut missing = own.beyond(&theirs, origin);
        if let Some(r) = received.as_ref().filter(|_| missing.is_empty()) {
            missing = r.beyond(&theirs, origin);
        }
        Ok(if missing.is_empty() {
            Holds::Yes
        } else {
            Holds::Behind {
                missing: divergence::count(&missing),
                names: divergence::names(&missing).join(","),
            }
        })
    }

    /// Looks at the peer through our replication settings (same credentials).
    async fn peer(&mut self) -> PeerLook {
        let status = match self.connection().await {
            Ok((conn, _, _)) => bounded(replica::read(conn)).await,
            Err(e) => Err(e),
        };
        let (host, port) = match status {
            Ok(Some(s)) if !s.master_host.is_empty() => (s.master_host, s.master_port),
            Ok(_) => return PeerLook::Alone,
            Err(e) => {
                self.conn = None;
                return PeerLook::Unknown(Failure {
                    refused: false,
                    error: e,
                });
            }
        };
        let answered = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => self.probe(ip, port).await,
            // A name: resolved by the connect itself.
            Err(_) => probe_port((host.as_str(), port)).await,
        };
        if !answered {
            self.gone_peer = host.parse().ok();
            return PeerLook::Gone;
        }
        let peer = self.server.at(&host, port);
        let look = tokio::time::timeout(PEER_ANSWER, async {
            let mut c = peer.connect().await?;
            c.query_first::<u8, _>("SELECT @@global.read_only").await
        })
        .await;
        match look {
            Err(_) => PeerLook::Silent,
            Ok(Ok(Some(0))) => PeerLook::Writable,
            Ok(Ok(_)) => PeerLook::Fenced,
            Ok(Err(e @ mysql_async::Error::Server(_))) => PeerLook::Unknown(failure(&e)),
            Ok(Err(_)) => PeerLook::Gone,
        }
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
            Target::MariaGtid(gtids) | Target::MysqlGtid(gtids) => {
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

    /// The peer's server, as our replication settings name it (reached with our own
    /// credentials).
    async fn peer_server(&mut self) -> Result<Server, String> {
        let (conn, _, _) = self.connection().await?;
        match bounded(replica::read(conn)).await? {
            Some(s) if !s.master_host.is_empty() => {
                Ok(self.server.at(&s.master_host, s.master_port))
            }
            _ => Err(NO_PEER.into()),
        }
    }

    /// What each server holds of its own that the other lacks, given the peer's executed
    /// transactions (None: this server's could not be read).
    async fn lacks(&mut self, theirs: &(Executed, Origin)) -> Option<term::Lacks> {
        let (conn, flavor, _) = self.connection().await.ok()?;
        let flavor = *flavor;
        let (local, origin) = bounded(executed(conn, flavor)).await.ok()?;
        let local = local.ok()?;
        let (theirs, peer_origin) = theirs;
        Some(term::Lacks {
            we_lack: !theirs.beyond(&local, peer_origin).is_empty(),
            they_lack: !local.beyond(theirs, &origin).is_empty(),
        })
    }

    /// What the peer's server says: its own latest promotion, whether it is writable, and
    /// its executed transactions (None when they could not be read or parsed).
    async fn peer_term(&mut self) -> Result<(term::PeerTerm, Option<(Executed, Origin)>), String> {
        let peer = self.peer_server().await?;
        let name = self.name.clone();
        let flavor = match self.conn.as_ref() {
            Some((_, f, _)) => *f,
            None => Flavor::MariaDb,
        };
        // A fresh attempt every PEER_RETRY while none has finished; the first to finish
        // decides (an answer, or an error such as a refused connection). A SYN lost while
        // the path comes back (a host resuming from a freeze: its first look went out
        // before its network did) is sent again by the kernel only after 1 s; one attempt
        // bounded by PEER_ANSWER kept both servers writable ~410 ms (bench mysql,
        // host-freeze).
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let attempt = || {
            let (peer, name) = (peer.clone(), name.clone());
            Box::pin(async move {
                let mut c = peer.connect().await.map_err(|e| e.to_string())?;
                let t = term::read_peer(&mut c, &name)
                    .await
                    .map_err(|e| e.to_string())?;
                let data = match executed(&mut c, flavor).await {
                    Ok((Ok(e), origin)) => Some((e, origin)),
                    _ => None,
                };
                Ok((t, data))
            })
        };
        let deadline = tokio::time::Instant::now() + PEER_ANSWER;
        let mut pending = FuturesUnordered::new();
        loop {
            pending.push(attempt());
            let wait =
                PEER_RETRY.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            if let Ok(Some(r)) = tokio::time::timeout(wait, pending.next()).await {
                return r;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("no answer within {PEER_ANSWER:?}"));
            }
        }
    }

    /// A node that is not master: runs the rejoin machine ([`Rejoin`]) against the
    /// servers until a newer command: the comparisons, replication, the undo of errant
    /// transactions and the checks that let it promote, its standing reported after
    /// every look.
    async fn rejoin(&mut self, term: u64, await_term: Option<u64>) -> Option<Command> {
        use crate::role::rejoin::{Answer as A, Rejoin, Statement as S, Step as R};
        let name = self.name.clone();
        let mut machine = Rejoin::new(term, await_term);
        // The peer's set of the look the machine kept (what `behind` is judged against),
        // and the last comparison (its errant transactions, for the undo).
        let mut kept: Option<Sets> = None;
        let mut last: Option<divergence::Rejoin> = None;
        let transient = |error| {
            A::Failed(Failure {
                refused: false,
                error,
            })
        };
        let mut answer = A::Next;
        loop {
            if let Some(next) = self.newer() {
                return next;
            }
            answer = match machine.step(engine_now(), answer) {
                R::Run(S::ServerUp) => {
                    let up = self.connection().await.is_ok();
                    if !up {
                        self.conn = None;
                    }
                    A::Flag(up)
                }
                R::Run(S::Compare { rebase }) => match self.peer_server().await {
                    Err(e) if e == NO_PEER => A::Alone,
                    _ => match self.compare_sets().await {
                        Ok((r, sets)) => {
                            let behind = kept
                                .as_ref()
                                .filter(|_| rebase)
                                .map(|k| {
                                    divergence::behind(&r, &k.theirs, &k.peer_origin, &sets.local)
                                })
                                .filter(|late| !late.is_empty())
                                .map(|late| {
                                    (divergence::count(&late), divergence::names(&late).join(","))
                                });
                            if rebase {
                                kept = Some(sets);
                            }
                            let a = A::Compared {
                                errant: divergence::names(&r.errant),
                                replicate: r.replicate,
                                behind,
                            };
                            last = Some(r);
                            a
                        }
                        // Reconnect next time: the local server may have restarted.
                        Err(e) => {
                            self.conn = None;
                            transient(e)
                        }
                    },
                },
                R::Run(S::Replicate(on)) => match self.replicate(on).await {
                    Ok(()) => A::Ok,
                    Err(f) => {
                        self.conn = None;
                        A::Failed(f)
                    }
                },
                R::Run(S::Undo) => {
                    let errant = last.as_ref().map(|r| r.errant.clone()).unwrap_or_default();
                    A::Flag(!errant.is_empty() && self.undo(term, &errant).await)
                }
                R::Run(S::ReplicationRuns) => match self.replication_runs().await {
                    Ok(()) => A::Ok,
                    Err(b) => transient(b.error),
                },
                R::Run(S::PromotionAllowed) => match self.promotion_allowed().await {
                    Ok(()) => A::Ok,
                    Err(b) => A::Failed(Failure {
                        refused: true,
                        error: b.error,
                    }),
                },
                R::Run(S::HoldsTerm(want)) => {
                    let held = match self.connection().await {
                        Ok((conn, _, _)) => bounded(term::read(conn, &name))
                            .await
                            .map(|t| t.is_some_and(|t| t >= want)),
                        Err(e) => Err(e),
                    };
                    match held {
                        Ok(h) => A::Flag(h),
                        Err(e) => {
                            self.conn = None;
                            transient(e)
                        }
                    }
                }
                // Waiting on the queue itself: a promotion must not wait for the next look.
                R::Wait(d) => match tokio::time::timeout(d, self.rx.recv()).await {
                    Ok(next) => return next,
                    Err(_) => A::Next,
                },
                R::CannotCompare(error) => {
                    warn!(instance = %name, %error, "cannot compare transactions with the peer: replication left as it is");
                    A::Next
                }
                R::Report { outcome, changed } => {
                    if let (true, Outcome::Standing { standing, .. }) = (changed, &outcome) {
                        say(&name, standing);
                    }
                    (self.out)(outcome);
                    A::Next
                }
            };
        }
    }

    /// With `on_errant = "flashback"` (MariaDB: undo them in place) or `"clone"` (MySQL:
    /// rebuild the server from the peer): gets rid of this server's errant transactions
    /// (it is read-only and replicates from nobody: the caller just stopped it). True
    /// when they are gone; a refusal or failure is logged once and leaves the node
    /// quarantined.
    async fn undo(&mut self, term: u64, errant: &[Extra]) -> bool {
        let names = divergence::names(errant);
        if self.cfg.on_errant == ErrantPolicy::Quarantine
            || self.undo_refused.as_ref() == Some(&names)
        {
            return false;
        }
        let name = self.name.clone();
        let (server, archive) = (self.server.clone(), self.cfg.errant_archive.clone());
        let done = match self.cfg.on_errant {
            ErrantPolicy::Flashback => {
                info!(instance = %name, errant = %names.join(","), "undoing errant transactions (on_errant = flashback)");
                match self.connection().await {
                    Ok((conn, _, _)) => flashback::undo(conn, &server, errant, &archive, &name)
                        .await
                        .map(|u| (u.gtids, u.archive)),
                    Err(e) => Err(e),
                }
            }
            _ => {
                info!(instance = %name, errant = %names.join(","), "archiving errant transactions, then rebuilding this server from the peer (on_errant = clone)");
                let peer = self.peer_server().await;
                let done = match (peer, self.connection().await) {
                    (Ok(peer), Ok((conn, _, _))) => {
                        clone::rebuild(conn, &server, &peer, errant, &archive, &name)
                            .await
                            .map(|r| (r.gtids, r.archive))
                    }
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
                // The server restarted (or may have): a new connection from here on.
                self.conn = None;
                self.killer = None;
                done
            }
        };
        match done {
            Ok((gtids, archive)) => {
                info!(instance = %name, removed = %gtids.join(","), archive = %archive.display(), "errant transactions archived and gone from this server: rejoining");
                (self.out)(Outcome::Undone {
                    term,
                    gtids,
                    archive: archive.display().to_string(),
                });
                true
            }
            Err(e) => {
                warn!(instance = %name, errant = %names.join(","), error = %e, "errant transactions NOT undone: the server stays quarantined");
                self.undo_refused = Some(names);
                self.conn = None;
                false
            }
        }
    }

    /// One look at both servers' executed transactions and promotions.
    async fn compare(&mut self) -> Result<divergence::Rejoin, String> {
        self.compare_sets().await.map(|(r, _)| r)
    }

    /// [`Self::compare`], with the sets it looked at: this server's executed
    /// transactions and the peer's (with its origin).
    async fn compare_sets(&mut self) -> Result<(divergence::Rejoin, Sets), String> {
        let name = self.name.clone();
        let (conn, flavor, _) = self.connection().await?;
        let flavor = *flavor;
        let (local, origin) = bounded(executed(conn, flavor)).await?;
        let own = bounded(term::read_peer(conn, &name)).await?;
        let peer = self.peer_server().await?;
        let look = tokio::time::timeout(PEER_ANSWER, async {
            let mut c = peer.connect().await?;
            let t = term::read_peer(&mut c, &name).await?;
            let e = executed(&mut c, flavor).await?;
            Ok::<_, mysql_async::Error>((t, e))
        })
        .await;
        let (peer_term, (theirs, peer_origin)) = match look {
            Ok(r) => r.map_err(|e| format!("the peer: {e}"))?,
            Err(_) => return Err(format!("the peer did not answer within {PEER_ANSWER:?}")),
        };
        let (local, theirs) = (local?, theirs?);
        let r = divergence::rejoin(&divergence::Look {
            own_extra: local.beyond(&theirs, &origin),
            peer_extra: theirs.beyond(&local, &peer_origin),
            own_term: own.own,
            peer: peer_term,
        });
        Ok((
            r,
            Sets {
                local,
                theirs,
                peer_origin,
            },
        ))
    }

    /// After starting replication: are its threads running (the applier, and the
    /// receiver unless it is still connecting without an error)? A node whose replication
    /// is broken lacks the master's writes: it must not rejoin the election.
    async fn replication_runs(&mut self) -> Result<(), Blocked> {
        let blocked = |error: String| Blocked {
            step: "replicate from the peer".into(),
            error,
        };
        let (conn, _, _) = self.connection().await.map_err(blocked)?;
        let status = bounded(replica::read(conn)).await.map_err(blocked)?;
        let Some(s) = status else {
            return Err(blocked("this server replicates from no peer".into()));
        };
        let io_ok = s.io_running || s.last_io_error.is_empty();
        if s.sql_running && io_ok {
            return Ok(());
        }
        let yes = |b: bool| if b { "Yes" } else { "No" };
        Err(blocked(format!(
            "replication is not running (IO: {}, SQL: {}){}{}",
            yes(s.io_running),
            yes(s.sql_running),
            if s.last_io_error.is_empty() {
                String::new()
            } else {
                format!("; IO error: {}", s.last_io_error)
            },
            if s.last_sql_error.is_empty() {
                String::new()
            } else {
                format!("; SQL error: {}", s.last_sql_error)
            },
        )))
    }

    /// The privileges a promotion needs, read as `xvrrpd check` reads them (each probed
    /// in a form that changes nothing where it can be, from SHOW GRANTS otherwise): a
    /// node whose promotion would be refused halfway must not win an election. A server
    /// that cannot be reached decides nothing here (its tracker's business).
    async fn promotion_allowed(&mut self) -> Result<(), Blocked> {
        let Ok((conn, flavor, _)) = self.connection().await else {
            return Ok(());
        };
        let flavor = *flavor;
        let mut account = preflight::Snapshot::default();
        let read = bounded_for(STATEMENT_TIMEOUT, async {
            preflight::read_account(conn, flavor, &mut account).await;
            Ok::<(), mysql_async::Error>(())
        })
        .await;
        if read.is_err() {
            self.conn = None;
            return Ok(());
        }
        match preflight::missing_privileges(&account, flavor, privileges::Feature::Guard)
            .into_iter()
            .next()
        {
            None => Ok(()),
            Some(f) => Err(Blocked {
                step: "hold the privileges a promotion needs".into(),
                error: f.message,
            }),
        }
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

    /// Runs the demotion ([`Demotion`]: what each failed fence leads to) against the
    /// server until it is read-only. A newer command ends it only between attempts (a
    /// fence that may still kill a hung server is never abandoned halfway).
    async fn demote(&mut self, term: u64) -> Option<Command> {
        use crate::role::demotion::{Answer as A, Statement as S, Step as D};
        let mut machine = Demotion::new(term, self.cfg.on_hung == HungPolicy::Kill);
        let mut answer = A::Next;
        loop {
            answer = match machine.step(answer) {
                D::Run(S::Listening) => A::Flag(match self.server.listener() {
                    Some(l) => !l.nobody_listens().await,
                    None => true,
                }),
                D::Run(S::Fence { may_kill }) => match self.fence(may_kill).await {
                    Ok(f) => {
                        info!(
                            instance = %self.name,
                            fence_ms = f.took.as_secs_f64() * 1e3,
                            killed = f.killed,
                            in_doubt = f.in_doubt,
                            "fenced: read_only = ON"
                        );
                        A::Fenced {
                            killed: f.killed,
                            in_doubt: f.in_doubt,
                            took: f.took,
                        }
                    }
                    Err(a) => a,
                },
                // The server answers but refuses to become read-only (the account lost
                // its privilege): it would stay writable beside the next master. Last
                // resort, as for a hung server: killed, its service manager restarts it
                // read-only.
                D::Run(S::Kill) => match self.server.listener().map(|l| hung::kill(&l)) {
                    Some(Ok(k)) => {
                        warn!(instance = %self.name, pid = k.pid, process = %k.name, "the server refused read_only = ON: killed (SIGKILL) so it cannot take writes beside the next master; grant the privilege back (`xvrrpd grants`)");
                        A::Killed {
                            pid: k.pid,
                            process: k.name,
                        }
                    }
                    Some(Err(error)) => A::Failed(Failure {
                        refused: false,
                        error,
                    }),
                    None => A::Failed(Failure {
                        refused: false,
                        error: "no local process to kill (the server is not on this host)".into(),
                    }),
                },
                D::Wait(d) => {
                    tokio::time::sleep(d).await;
                    match self.newer() {
                        Some(Some(next)) => return Some(next),
                        Some(None) if machine.tries() >= SHUTDOWN_TRIES => {
                            warn!(instance = %self.name, "stopping with the server still writable: it did not answer");
                            return None;
                        }
                        _ => {}
                    }
                    A::Next
                }
                D::Report(outcome) => {
                    (self.out)(outcome);
                    A::Next
                }
                D::Note(line) => {
                    info!(instance = %self.name, "{line}");
                    A::Next
                }
                D::Warn(line) => {
                    warn!(instance = %self.name, "{line}");
                    A::Next
                }
                D::End => return None,
            };
        }
    }

    /// One fence attempt: `read_only = ON` is issued on the main connection and, while
    /// it waits, the killer connection kills what holds it up. MariaDB's `read_only =
    /// ON` waits for every commit in flight, and a commit in flight may be waiting for
    /// the semi-sync ACK of the very peer whose loss made us leave (up to
    /// `rpl_semi_sync_master_timeout`). `KILL CONNECTION` frees such a waiter at once
    /// (its transaction stays committed locally, its client gets error 2013: in doubt);
    /// `KILL QUERY` would tell the client OK for a transaction the peer never got, so it
    /// is never used. With `may_kill`, a server that answers nothing for [`HUNG_KILL`] is
    /// killed. A failure is the demotion's answer.
    async fn fence(&mut self, may_kill: bool) -> Result<Fence, crate::role::demotion::Answer> {
        use crate::role::demotion::Answer as A;
        let failed = |this: &mut Self, e: String| {
            this.abandon_connection();
            this.killer = None;
            A::Failed(Failure {
                refused: privileges::refusal_in(&e),
                error: e,
            })
        };
        let listener = self.server.listener().filter(|_| may_kill);
        let Some(listener) = listener else {
            return match self.fence_attempt(&AtomicBool::new(false)).await {
                Ok(f) => Ok(f),
                Err(e) => Err(failed(self, e)),
            };
        };
        // Set once the server answers anything in this attempt: it is not hung.
        let answered = AtomicBool::new(false);
        let hung = async {
            tokio::time::sleep(HUNG_KILL).await;
            if answered.load(Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
        };
        let r = tokio::select! {
            biased;
            r = self.fence_attempt(&answered) => Some(r),
            () = hung => None,
        };
        match r {
            Some(Ok(f)) => Ok(f),
            Some(Err(e)) => Err(failed(self, e)),
            None => {
                // Whatever was waiting inside the server dies with it.
                self.conn = None;
                self.killer = None;
                match hung::kill(&listener) {
                    Ok(k) => {
                        warn!(instance = %self.name, pid = k.pid, process = %k.name, "the server must be read-only and has answered nothing for 500 ms: killed (SIGKILL) so it never runs what is queued in it; its service manager restarts it read-only");
                        Err(A::Killed {
                            pid: k.pid,
                            process: k.name,
                        })
                    }
                    Err(e) => Err(A::HungNotKilled(e)),
                }
            }
        }
    }

    /// One try at the fence; `answered` is set as soon as the server answers anything.
    async fn fence_attempt(&mut self, answered: &AtomicBool) -> Result<Fence, String> {
        // Both connections before anything starts: the killer must be there when needed
        // (a full max_connections must not stop it; it is kept open between fences).
        self.connection().await?;
        self.killer_connection().await?;
        let start = Instant::now();
        let endpoint = self.server.endpoint.clone();
        let (conn, flavor, _) = self.conn.as_mut().expect("connected");
        let killer = self.killer.as_mut().expect("killer connected");
        let sql = flavor.fence();
        let mut read_only = std::pin::pin!(bounded_for(FENCE_WAIT, conn.query_drop(sql)));
        let mut killed = Vec::new();
        let mut in_doubt = 0;
        // Give the statement its head start (it is written to the socket on first poll),
        // then sweep until it lands: each sweep kills what blocks it now.
        let mut landed = tokio::time::timeout(FENCE_FIRST_LOOK, &mut read_only)
            .await
            .ok();
        while landed.is_none() {
            let everyone = self.cfg.kill_writers || start.elapsed() >= FENCE_PATIENCE;
            let swept = sweep(killer, &endpoint, Sweep::Blocking { everyone }).await?;
            answered.store(true, Ordering::Relaxed);
            in_doubt += swept.in_doubt;
            killed.extend(swept.killed);
            landed = tokio::time::timeout(FENCE_SWEEP, &mut read_only).await.ok();
        }
        if let Err(e) = landed.expect("landed") {
            // Refused (the account lost its privilege): the fence holds all the same if
            // the server is read-only already (a restarted server, read-only from
            // my.cnf); otherwise the caller's last resort applies.
            let already: Option<u8> = bounded(killer.query_first("SELECT @@global.read_only"))
                .await
                .ok()
                .flatten();
            if !(privileges::refusal_in(&e) && already == Some(1)) {
                return Err(e);
            }
        }
        let took = start.elapsed();
        // Read-only now: nothing can write. Connections still open are sent away so their
        // clients reconnect through the VIP to the new master instead of failing here.
        if self.cfg.kill_writers {
            let swept = sweep(killer, &endpoint, Sweep::Everyone).await?;
            killed.extend(swept.killed);
        }
        killed.sort_unstable();
        killed.dedup();
        Ok(Fence {
            took,
            killed: killed.len(),
            in_doubt,
        })
    }

    /// Drops the main connection after its statement failed or timed out, remembering
    /// it: the statement may still be queued in the server.
    fn abandon_connection(&mut self) {
        if let Some((c, _, _)) = self.conn.take() {
            self.abandoned.push(c.id());
        }
    }

    /// Kills every abandoned connection (see [`Worker::abandoned`]), so a `read_only =
    /// ON` queued in it can never land after this promotion. One already gone is fine
    /// (ER_NO_SUCH_THREAD). A server restarted since holds none of them but reuses
    /// their ids: only a thread of this account that is none of the agent's live
    /// connections is killed (never a client's, a replication thread or the tracker's).
    async fn kill_abandoned(&mut self) -> Result<(), String> {
        let endpoint = self.server.endpoint.clone();
        while let Some(&id) = self.abandoned.last() {
            let (conn, _, _) = self.connection().await?;
            let ours: Option<u64> = bounded(conn.exec_first(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ? AND USER = SUBSTRING_INDEX(USER(), '@', 1)",
                (id,),
            ))
            .await?;
            if ours.is_none() || is_own(&endpoint, id) {
                self.abandoned.pop();
                continue;
            }
            match bounded_err(conn.query_drop(format!("KILL CONNECTION {id}"))).await {
                Err(mysql_async::Error::Server(e)) if e.code != 1094 => {
                    return Err(format!(
                        "KILL CONNECTION {id}: ERROR {}: {}",
                        e.code, e.message
                    ))
                }
                Err(e @ mysql_async::Error::Io(_)) => {
                    self.conn = None;
                    return Err(e.to_string());
                }
                _ => {}
            }
            self.abandoned.pop();
        }
        Ok(())
    }

    async fn killer_connection(&mut self) -> Result<&mut OwnConn, String> {
        if self.killer.is_none() {
            self.killer = Some(bounded(self.server.connect()).await?);
        }
        Ok(self.killer.as_mut().expect("connected"))
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

/// What one fence did.
struct Fence {
    took: Duration,
    killed: usize,
    in_doubt: usize,
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

/// What a sweep killed: thread ids, and how many were in the middle of a commit (their
/// clients cannot know whether it committed).
struct Swept {
    killed: Vec<u64>,
    in_doubt: usize,
}

/// Kills the client threads `sweep` names, committing ones first.
async fn sweep(conn: &mut OwnConn, endpoint: &str, sweep: Sweep) -> Result<Swept, String> {
    let rows: Vec<(u64, String, String, Option<String>)> = bounded_for(FENCE_WAIT, conn.query(
        "SELECT ID, USER, COMMAND, STATE FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()",
    ))
    .await?;
    let threads: Vec<Thread> = rows
        .into_iter()
        .map(|(id, user, command, state)| Thread {
            id,
            user,
            command,
            state: state.unwrap_or_default(),
        })
        .collect();
    let victims = victims(&threads, |id| is_own(endpoint, id as u32), sweep);
    let in_doubt = victims.iter().filter(|v| v.committing).count();
    for v in &victims {
        // Already gone is fine.
        let _ = bounded_for(
            FENCE_WAIT,
            conn.query_drop(format!("KILL CONNECTION {}", v.id)),
        )
        .await;
    }
    Ok(Swept {
        killed: victims.iter().map(|v| v.id).collect(),
        in_doubt,
    })
}

/// One row of the processlist.
#[derive(Clone, Debug)]
pub struct Thread {
    pub id: u64,
    pub user: String,
    pub command: String,
    pub state: String,
}

impl Thread {
    /// Server threads, replication (both directions) and dead threads are never killed.
    fn is_client(&self) -> bool {
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
        !SERVER_USERS.contains(&self.user.as_str())
            && !SERVER_COMMANDS.contains(&self.command.as_str())
    }

    /// In a commit (MariaDB "Waiting for semi-sync ACK from slave", "Commit"; MySQL
    /// "Waiting for semi-sync ACK from replica", "waiting for handler commit"): it holds
    /// `read_only = ON` up, and its client will not know the outcome once killed.
    fn committing(&self) -> bool {
        let s = self.state.to_ascii_lowercase();
        s.contains("semi-sync") || s.contains("commit")
    }
}

/// A thread a sweep kills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Victim {
    pub id: u64,
    pub committing: bool,
}

/// The client threads to kill, committing ones first (they hold the fence up). Never
/// xvrrpd's own connections (`own`).
pub fn victims(rows: &[Thread], own: impl Fn(u64) -> bool, sweep: Sweep) -> Vec<Victim> {
    let mut v: Vec<Victim> = rows
        .iter()
        .filter(|t| t.is_client() && !own(t.id))
        .map(|t| Victim {
            id: t.id,
            committing: t.committing(),
        })
        .filter(|v| match sweep {
            Sweep::Blocking { everyone } => everyone || v.committing,
            Sweep::Everyone => true,
        })
        .collect();
    v.sort_by_key(|v| !v.committing);
    v
}

/// The replica's address from a processlist HOST (`192.0.2.10:41234`, `[2001:db8::1]:5`).
pub fn dump_peer(host: &str) -> Option<std::net::IpAddr> {
    let h = host.rsplit_once(':').map_or(host, |(h, _)| h);
    h.trim_matches(|c| c == '[' || c == ']').parse().ok()
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
    Ok(match flavor {
        Flavor::MariaDb => {
            let row: Option<(String, String, u32)> = conn.query_first(flavor.executed()).await?;
            let (logged, applied, id) = row.unwrap_or_default();
            (Executed::mariadb(&[&logged, &applied]), Origin::Maria(id))
        }
        Flavor::Mysql => {
            let row: Option<(String, String)> = conn.query_first(flavor.executed()).await?;
            let (set, uuid) = row.unwrap_or_default();
            (Executed::mysql(&set), Origin::Mysql(uuid))
        }
    })
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
