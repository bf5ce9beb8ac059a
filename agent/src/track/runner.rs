//! Tracker tasks. Each sends a [`Report`] whenever its status (or file value) changes.
use std::{path::PathBuf, process::Stdio, sync::Arc, time::Duration};

use tokio::{sync::mpsc::UnboundedSender, task::AbortHandle};
use tracing::{debug, warn};

use super::Health;
use crate::{
    config::{TrackerConfig, TrackerKind},
    metrics::Metrics,
};

/// A tracker's new state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The tracker's run-time id (stable across reloads).
    pub tracker: u64,
    pub healthy: bool,
    pub file_value: Option<i64>,
}

/// Starts the task for tracker `index`; its handle stops it (a reload).
pub fn spawn(
    index: u64,
    cfg: TrackerConfig,
    tx: UnboundedSender<Report>,
    metrics: Arc<Metrics>,
) -> Option<AbortHandle> {
    let probe = Probe::new(&cfg, metrics);
    let task = match cfg.kind {
        TrackerKind::Exec => tokio::spawn(exec_loop(index, cfg, tx, probe)),
        TrackerKind::File => tokio::spawn(file_loop(index, cfg, tx)),
        TrackerKind::Mysql => tokio::spawn(super::mysql::run(index, cfg, tx, probe)),
        // Fed by the main loop's link events (one rtnetlink subscription for everything).
        TrackerKind::Interface => return None,
    };
    Some(task.abort_handle())
}

/// Where a tracker records each check run: latency and failures.
pub struct Probe {
    pub metrics: Arc<Metrics>,
    pub labels: Vec<(&'static str, String)>,
}

impl Probe {
    fn new(cfg: &TrackerConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            labels: vec![("tracker", cfg.name.clone())],
            metrics,
        }
    }

    /// Records one check run that took `took`.
    pub fn record(&self, ok: bool, took: Duration) {
        self.metrics
            .check_duration
            .get_or_create(&self.labels)
            .observe(took.as_secs_f64());
        let failures = self.metrics.check_failures.get_or_create(&self.labels);
        if !ok {
            failures.inc();
        }
    }
}

/// Runs `argv` once: true on exit 0. A run past `timeout` is killed and reaped (no
/// zombie) and counts as a failure.
pub async fn run_once(argv: &[String], timeout: Duration) -> bool {
    run_with_env(argv, &[], timeout).await
}

/// [`run_once`] with extra environment variables.
pub async fn run_with_env(argv: &[String], env: &[(&str, String)], timeout: Duration) -> bool {
    let Some((prog, args)) = argv.split_first() else {
        return false;
    };
    let mut cmd = tokio::process::Command::new(prog);
    let mut child = match crate::mysql::conn::without_secrets(&mut cmd)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            warn!(program = %prog, error = %e, "cannot start check");
            return false;
        }
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        Ok(Err(e)) => {
            warn!(program = %prog, error = %e, "waiting for check");
            false
        }
        Err(_) => {
            warn!(program = %prog, ?timeout, "check timed out: killed");
            let _ = child.kill().await; // kill + wait: reaped
            false
        }
    }
}

async fn exec_loop(index: u64, cfg: TrackerConfig, tx: UnboundedSender<Report>, probe: Probe) {
    // Assumed good until `fall` failures say otherwise (keepalived's default).
    let mut health = Health::new(cfg.rise, cfg.fall, true);
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let t0 = std::time::Instant::now();
        let ok = run_once(&cfg.command, cfg.timeout).await;
        probe.record(ok, t0.elapsed());
        debug!(tracker = %cfg.name, ok, "check");
        if let Some(healthy) = health.observe(ok) {
            if !report(&tx, index, healthy) {
                return;
            }
        }
    }
}

/// Sends a status change; false once the main loop is gone (the task should end).
pub fn report(tx: &UnboundedSender<Report>, tracker: u64, healthy: bool) -> bool {
    tx.send(Report {
        tracker,
        healthy,
        file_value: None,
    })
    .is_ok()
}

/// Reads the integer in `path`; a missing or unparsable file counts as 0.
pub fn read_value(path: &PathBuf) -> i64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

async fn file_loop(index: u64, cfg: TrackerConfig, tx: UnboundedSender<Report>) {
    let Some(path) = cfg.path.clone() else { return };
    let mut last = None;
    let mut tick = tokio::time::interval(cfg.interval);
    loop {
        tick.tick().await;
        let v = read_value(&path);
        if last != Some(v) {
            last = Some(v);
            if tx
                .send(Report {
                    tracker: index,
                    healthy: true,
                    file_value: Some(v),
                })
                .is_err()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exec_exit_codes_and_timeout() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(run_once(&s(&["true"]), Duration::from_secs(5)).await);
        assert!(!run_once(&s(&["false"]), Duration::from_secs(5)).await);
        assert!(!run_once(&s(&["/nonexistent/check"]), Duration::from_secs(5)).await);
        let t = std::time::Instant::now();
        assert!(!run_once(&s(&["sleep", "10"]), Duration::from_millis(100)).await);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "timeout must kill the check"
        );
    }

    #[test]
    fn file_value_defaults_to_zero() {
        let p = std::env::temp_dir().join(format!("xvrrpd-file-{}", std::process::id()));
        assert_eq!(read_value(&p), 0);
        std::fs::write(&p, " 3\n").unwrap();
        assert_eq!(read_value(&p), 3);
        std::fs::write(&p, "junk").unwrap();
        assert_eq!(read_value(&p), 0);
        let _ = std::fs::remove_file(&p);
    }
}
