//! Notify hooks: per instance, transitions are delivered in order, one hook at a time; a
//! hook that outlives its timeout is killed and the next one runs. Hooks run off the main
//! loop, so a hanging hook never delays a failover.
use std::{io::Write, path::Path};

use tokio::sync::mpsc;

use crate::{config::Notify, engine::State, track::runner::run_with_env};

pub use xvrrpd_core::notify::Transition;

/// A transition as a record of the events stream.
pub fn transition_record(instance: &str, vrid: u8, t: &Transition) -> xvrrpd_core::events::Record {
    xvrrpd_core::events::Record::Transition {
        ts_ns: t.ts_ns,
        instance: instance.into(),
        vrid,
        from: t.from.name().into(),
        to: t.to.name().into(),
        reason: t.reason.into(),
        priority: t.priority,
    }
}

/// Creates `path` as a FIFO (mode 600) unless something is already there.
pub fn ensure_fifo(path: &Path) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a valid C string; mkfifo has no other preconditions.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Appends `line` without ever blocking: a FIFO without a reader drops it (ENXIO). Called
/// from the main loop, so the stream is never held up by a slow hook.
pub fn write_event(path: &Path, line: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    match f {
        Ok(mut f) => {
            if let Err(e) = f.write_all(format!("{line}\n").as_bytes()) {
                tracing::debug!(error = %e, "events stream write");
            }
        }
        Err(e) => tracing::debug!(error = %e, "events stream has no reader"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_without_reader_never_blocks_and_files_get_json_lines() {
        let dir = std::env::temp_dir().join(format!("xvrrpd-ev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("events");
        ensure_fifo(&fifo).unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        // No reader: returns at once (the line is dropped).
        let t = std::time::Instant::now();
        write_event(&fifo, "{}");
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        let file = dir.join("events.jsonl");
        std::fs::write(&file, "").unwrap();
        ensure_fifo(&file).unwrap(); // exists: left alone
        let tr = Transition {
            from: State::Backup,
            to: State::Master,
            priority: 150,
            reason: "master_down",
            ts_ns: 7,
        };
        write_event(&file, &transition_record("write", 41, &tr).line());
        let v: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&file).unwrap().trim()).unwrap();
        assert_eq!(
            (v["from"].as_str(), v["to"].as_str(), v["priority"].as_u64()),
            (Some("BACKUP"), Some("MASTER"), Some(150))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
