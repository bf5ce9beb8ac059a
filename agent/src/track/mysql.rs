//! The native MySQL / MariaDB tracker (mysql_async).
//!
//! Two connections per check: a *watch* connection parked in `DO SLEEP(...)`, whose error
//! the moment mysqld dies (the socket closes) fails the check at once, without waiting for
//! the next poll; and a *poll* connection that runs the conditions every interval, bounded
//! by the timeout, which is what catches a hung (e.g. SIGSTOPped) server.
use std::time::Duration;

use mysql_async::{prelude::Queryable, Conn};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, warn};

use super::{
    runner::{report, Probe, Report},
    Health,
};
use crate::{
    config::TrackerConfig,
    mysql::conn::{OwnConn, Server},
};

/// What the poll found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub read_only: bool,
    /// None when the server is not a replica.
    pub io_running: Option<bool>,
    pub sql_running: Option<bool>,
    /// Seconds_Behind_Master; None when unknown (NULL: replication broken or stopped).
    pub lag_s: Option<u64>,
}

/// The conditions of one check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    pub read_only: Option<bool>,
    pub replication: bool,
    pub max_lag: Option<Duration>,
}

/// Pure verdict: Ok, or why the check fails.
pub fn evaluate(s: &Status, c: &Conditions) -> Result<(), String> {
    if let Some(want) = c.read_only {
        if s.read_only != want {
            return Err(format!("read_only is {}, expected {want}", s.read_only));
        }
    }
    if c.replication {
        match (s.io_running, s.sql_running) {
            (Some(true), Some(true)) => {}
            (None, _) | (_, None) => return Err("not a replica (no replication status)".into()),
            (io, sql) => {
                return Err(format!(
                    "replication stopped (IO running: {}, SQL running: {})",
                    io.unwrap_or(false),
                    sql.unwrap_or(false)
                ))
            }
        }
    }
    if let Some(max) = c.max_lag {
        match s.lag_s {
            Some(l) if l <= max.as_secs() => {}
            Some(l) => return Err(format!("replication lag {l}s > {}s", max.as_secs())),
            None => return Err("replication lag unknown (replication not running)".into()),
        }
    }
    Ok(())
}

async fn poll(conn: &mut Conn, query: &str) -> Result<Status, mysql_async::Error> {
    conn.query_drop(query).await?;
    let ro: Option<u8> = conn.query_first("SELECT @@global.read_only").await?;
    let mut status = Status {
        read_only: ro.unwrap_or(0) != 0,
        ..Status::default()
    };
    if let Some(r) = crate::mysql::replica::read(conn).await? {
        status.io_running = Some(r.io_running);
        status.sql_running = Some(r.sql_running);
        status.lag_s = r.lag_s;
    }
    Ok(status)
}

/// The tracker task.
pub async fn run(index: u64, cfg: TrackerConfig, tx: UnboundedSender<Report>, probe: Probe) {
    let server = match Server::from_tracker(&cfg) {
        Ok(s) => s,
        Err(e) => {
            warn!(tracker = %cfg.name, error = %e, "MySQL credentials refused: the check fails");
            let _ = tx.send(Report {
                tracker: index,
                healthy: false,
                file_value: None,
            });
            return;
        }
    };
    let conds = Conditions {
        read_only: cfg.read_only,
        replication: cfg.replication,
        max_lag: cfg.max_lag,
    };
    let query = cfg.query.clone().unwrap_or_else(|| "SELECT 1".into());
    // A server counts as failing until `rise` checks pass (keepalived's `init_fail`): a
    // node that just started must not claim its full priority before its database has
    // been looked at.
    let mut health = Health::new(cfg.rise, cfg.fall, false);
    let (dead_tx, mut dead_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watching = false;
    let mut conn: Option<OwnConn> = None;
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let ok = tokio::select! {
            _ = tick.tick() => {
                let t0 = std::time::Instant::now();
                let res = tokio::time::timeout(cfg.timeout, async {
                    if conn.is_none() {
                        conn = Some(server.connect().await?);
                    }
                    poll(conn.as_mut().expect("connected"), &query).await
                })
                .await;
                let verdict = match res {
                    Ok(Ok(status)) => {
                        let m = &probe.metrics;
                        m.mysql_read_only.get_or_create(&probe.labels).set(status.read_only as i64);
                        m.mysql_lag
                            .get_or_create(&probe.labels)
                            .set(status.lag_s.map_or(f64::NAN, |l| l as f64));
                        evaluate(&status, &conds)
                    }
                    Ok(Err(e)) => Err(format!("MySQL error: {e}")),
                    Err(_) => Err(format!("no answer within {:?}", cfg.timeout)),
                };
                probe.record(verdict.is_ok(), t0.elapsed());
                if verdict.is_err() {
                    conn = None; // reconnect next time
                }
                if verdict.is_ok() && !watching {
                    watching = true;
                    spawn_watch(server.clone(), dead_tx.clone());
                }
                if let Err(why) = &verdict {
                    debug!(tracker = %cfg.name, %why, "check failed");
                }
                Some(verdict.is_ok())
            }
            Some(()) = dead_rx.recv() => {
                watching = false;
                conn = None;
                warn!(tracker = %cfg.name, "connection to mysqld closed: failing now");
                None
            }
        };
        let change = match ok {
            Some(ok) => health.observe(ok),
            None => health.fail_now(),
        };
        if let Some(healthy) = change {
            if !report(&tx, index, healthy) {
                return;
            }
        }
    }
}

/// Parks a connection in a long sleep; its error (the server went away) is reported.
fn spawn_watch(server: Server, dead: UnboundedSender<()>) {
    tokio::spawn(async move {
        let Ok(mut c) = server.connect().await else {
            let _ = dead.send(());
            return;
        };
        loop {
            tokio::select! {
                r = c.query_drop("DO SLEEP(86400)") => if r.is_err() {
                    let _ = dead.send(());
                    return;
                },
                // The tracker was stopped (a reload): let go of the connection.
                _ = dead.closed() => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(io: bool, sql: bool, lag: Option<u64>) -> Status {
        Status {
            read_only: true,
            io_running: Some(io),
            sql_running: Some(sql),
            lag_s: lag,
        }
    }

    #[test]
    fn conditions() {
        let any = Conditions::default();
        assert!(evaluate(&Status::default(), &any).is_ok());
        let ro = Conditions {
            read_only: Some(true),
            ..Conditions::default()
        };
        assert!(evaluate(&Status::default(), &ro)
            .unwrap_err()
            .contains("read_only"));
        let repl = Conditions {
            replication: true,
            max_lag: Some(Duration::from_secs(5)),
            ..Conditions::default()
        };
        assert!(evaluate(&replica(true, true, Some(2)), &repl).is_ok());
        assert!(evaluate(&replica(true, false, None), &repl)
            .unwrap_err()
            .contains("SQL running: false"));
        assert!(evaluate(&replica(true, true, Some(9)), &repl)
            .unwrap_err()
            .contains("lag 9s"));
        assert!(evaluate(&Status::default(), &repl)
            .unwrap_err()
            .contains("not a replica"));
    }
}
