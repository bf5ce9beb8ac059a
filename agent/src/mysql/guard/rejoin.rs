//! A node that is not master: the rejoin machine ([`crate::role::rejoin`]) run against
//! the servers, and the undo of errant transactions.
use super::*;

/// The log line for a rejoin's standing that changed.
pub(super) fn say(name: &str, standing: &Standing) {
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

impl Worker {
    /// A node that is not master: runs the rejoin machine ([`Rejoin`]) against the
    /// servers until a newer command: the comparisons, replication, the undo of errant
    /// transactions and the checks that let it promote, its standing reported after
    /// every look.
    pub(super) async fn rejoin(&mut self, term: u64, await_term: Option<u64>) -> Option<Command> {
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
    pub(super) async fn undo(&mut self, term: u64, errant: &[Extra]) -> bool {
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

    /// After starting replication: are its threads running (the applier, and the
    /// receiver unless it is still connecting without an error)? A node whose replication
    /// is broken lacks the master's writes: it must not rejoin the election.
    pub(super) async fn replication_runs(&mut self) -> Result<(), Blocked> {
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
    pub(super) async fn promotion_allowed(&mut self) -> Result<(), Blocked> {
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
}
