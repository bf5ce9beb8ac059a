//! The fence: `read_only = ON` against a live, hung, dead or refusing server, run as the
//! demotion machine ([`crate::role::demotion`]) asks; what holds it up is killed while it
//! waits (sweeps), and a hung server with it.
use super::*;

/// The fence's statements wait longer for a hung server: `read_only = ON` and the sweep
/// queued inside it run the moment it resumes, racing only what was queued there before.
/// Abandoned and sent again on a new connection (the old bound), they came in only after
/// a reconnect, tens of milliseconds late, while the resumed server took writes (chaos,
/// hung mysqld: both writable for 4–8 ms in 2 runs of 4).
pub(super) const FENCE_WAIT: Duration = Duration::from_secs(30);

/// A demotion still failing when xvrrpd stops is abandoned after this many tries.
pub(super) const SHUTDOWN_TRIES: u32 = 10;

/// The head start `read_only = ON` gets before the first sweep: with nothing in flight it
/// lands in well under a millisecond and nobody is killed needlessly.
pub(super) const FENCE_FIRST_LOOK: Duration = Duration::from_millis(2);

/// Pause between two sweeps while `read_only = ON` is still waiting.
pub(super) const FENCE_SWEEP: Duration = Duration::from_millis(5);

/// With `kill_writers = false` only committing threads are killed, until the fence has
/// waited this long: then every client thread is (a held `FLUSH TABLES WITH READ LOCK`,
/// a long statement); the fence must land.
pub(super) const FENCE_PATIENCE: Duration = Duration::from_millis(100);

/// What one fence did.
pub(super) struct Fence {
    took: Duration,
    killed: usize,
    in_doubt: usize,
}

/// What a sweep killed: thread ids, and how many were in the middle of a commit (their
/// clients cannot know whether it committed).
pub(super) struct Swept {
    killed: Vec<u64>,
    in_doubt: usize,
}

/// Kills the client threads `sweep` names, committing ones first.
pub(super) async fn sweep(
    conn: &mut OwnConn,
    endpoint: &str,
    sweep: Sweep,
) -> Result<Swept, String> {
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

impl Worker {
    /// Runs the demotion ([`Demotion`]: what each failed fence leads to) against the
    /// server until it is read-only. A newer command ends it only between attempts (a
    /// fence that may still kill a hung server is never abandoned halfway).
    pub(super) async fn demote(&mut self, term: u64) -> Option<Command> {
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
    pub(super) async fn fence(
        &mut self,
        may_kill: bool,
    ) -> Result<Fence, crate::role::demotion::Answer> {
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
    pub(super) async fn fence_attempt(&mut self, answered: &AtomicBool) -> Result<Fence, String> {
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
    pub(super) fn abandon_connection(&mut self) {
        if let Some((c, _, _)) = self.conn.take() {
            self.abandoned.push(c.id());
        }
    }

    /// Kills every abandoned connection (see [`Worker::abandoned`]), so a `read_only =
    /// ON` queued in it can never land after this promotion. One already gone is fine
    /// (ER_NO_SUCH_THREAD). A server restarted since holds none of them but reuses
    /// their ids: only a thread of this account that is none of the agent's live
    /// connections is killed (never a client's, a replication thread or the tracker's).
    pub(super) async fn kill_abandoned(&mut self) -> Result<(), String> {
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

    pub(super) async fn killer_connection(&mut self) -> Result<&mut OwnConn, String> {
        if self.killer.is_none() {
            self.killer = Some(bounded(self.server.connect()).await?);
        }
        Ok(self.killer.as_mut().expect("connected"))
    }
}
