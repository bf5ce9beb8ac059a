//! Looks at the peer's server: the switchover check's looks, the peer's write term and
//! data when two masters meet, and the comparisons of both servers' transactions.
use super::*;

/// One slice of the catch-up wait: the target applied, and whether the applier runs.
/// The sets one comparison with the peer looked at.
pub(super) struct Sets {
    pub(super) local: Executed,
    pub(super) theirs: Executed,
    pub(super) peer_origin: Origin,
}

/// How long the peer's server may take to say whether it is read-only before it counts
/// as hung (a SIGSTOPped mysqld accepts TCP connections but never answers).
pub(super) const PEER_ANSWER: Duration = Duration::from_millis(300);

/// Between two attempts to read the peer's write term while none has answered.
pub(super) const PEER_RETRY: Duration = Duration::from_millis(25);

/// The replica's address from a processlist HOST (`192.0.2.10:41234`, `[2001:db8::1]:5`).
pub fn dump_peer(host: &str) -> Option<std::net::IpAddr> {
    let h = host.rsplit_once(':').map_or(host, |(h, _)| h);
    h.trim_matches(|c| c == '[' || c == ']').parse().ok()
}

impl Worker {
    /// A switchover's check ([`Command::ReadyPeer`]): the peer's server replicates from
    /// this one and holds, within `catchup_timeout`, every transaction of this server's
    /// origin that this server held when asked, and everything of this server's its
    /// receiver held at the first look (a snapshot of this server alone misses commits
    /// still waiting for the semi-sync ACK; an applier blocked on a lock receives and
    /// acknowledges them, and applies nothing). Otherwise refused, saying why; nothing
    /// is fenced either way (the core fences once the answer is yes).
    pub(super) async fn ready_peer(&mut self, term: u64) -> Option<Command> {
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
    pub(super) async fn peer_holds(
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
                    *received = Some(flavor.received(&s)?);
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
    pub(super) async fn peer(&mut self) -> PeerLook {
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

    /// The peer's server, as our replication settings name it (reached with our own
    /// credentials).
    pub(super) async fn peer_server(&mut self) -> Result<Server, String> {
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
    pub(super) async fn lacks(&mut self, theirs: &(Executed, Origin)) -> Option<term::Lacks> {
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
    pub(super) async fn peer_term(
        &mut self,
    ) -> Result<(term::PeerTerm, Option<(Executed, Origin)>), String> {
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

    /// One look at both servers' executed transactions and promotions.
    pub(super) async fn compare(&mut self) -> Result<divergence::Rejoin, String> {
        self.compare_sets().await.map(|(r, _)| r)
    }

    /// [`Self::compare`], with the sets it looked at: this server's executed
    /// transactions and the peer's (with its origin).
    pub(super) async fn compare_sets(&mut self) -> Result<(divergence::Rejoin, Sets), String> {
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
}
