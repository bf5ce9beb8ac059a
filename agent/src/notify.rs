//! Notify hooks: per instance, transitions are delivered in order, one hook at a time; a
//! hook that outlives its timeout is killed and the next one runs. Hooks run off the main
//! loop, so a hanging hook never delays a failover.
use tokio::sync::mpsc;

use crate::{config::Notify, engine::State, track::runner::run_with_env};

/// One transition to report.
#[derive(Clone, Debug)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub priority: u8,
    pub reason: &'static str,
}

/// Starts the delivery task for one instance; returns its queue and the task handle.
pub fn spawn(
    instance: String,
    vrid: u8,
    cfg: Notify,
) -> (
    mpsc::UnboundedSender<Transition>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Transition>();
    let handle = tokio::spawn(async move {
        while let Some(t) = rx.recv().await {
            let own = match t.to {
                State::Master => &cfg.master,
                State::Backup => &cfg.backup,
                State::Fault => &cfg.fault,
                State::Initialize => &cfg.stop,
            };
            let env = [
                ("XVRRPD_INSTANCE", instance.clone()),
                ("XVRRPD_VRID", vrid.to_string()),
                ("XVRRPD_OLD_STATE", t.from.name().to_string()),
                ("XVRRPD_NEW_STATE", t.to.name().to_string()),
                ("XVRRPD_PRIORITY", t.priority.to_string()),
                ("XVRRPD_REASON", t.reason.to_string()),
            ];
            if !own.is_empty() {
                run_with_env(own, &env, cfg.timeout).await;
            }
            if !cfg.any.is_empty() {
                // keepalived's generic notify arguments: TYPE NAME STATE PRIORITY.
                let mut argv = cfg.any.clone();
                let state = if t.to == State::Initialize {
                    "STOP"
                } else {
                    t.to.name()
                };
                argv.extend([
                    "INSTANCE".to_string(),
                    instance.clone(),
                    state.to_string(),
                    t.priority.to_string(),
                ]);
                run_with_env(&argv, &env, cfg.timeout).await;
            }
        }
    });
    (tx, handle)
}
