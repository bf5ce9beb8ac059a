//! The agent side of the control socket.
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::{broadcast, mpsc, oneshot},
};
use tracing::{debug, warn};

use super::{Request, Response};

/// A request for the main loop, with where its answer goes.
pub type Call = (Request, oneshot::Sender<Response>);

/// The bound socket; removes its file when dropped.
pub struct ControlSocket {
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` (mode 600) and serves it: calls go to `calls`, `events` subscribers read
/// `events`. Refuses to start when another agent answers on the socket: two agents on one
/// node would fight over the same VIPs.
pub async fn start(
    path: &Path,
    calls: mpsc::Sender<Call>,
    events: broadcast::Sender<String>,
) -> anyhow::Result<ControlSocket> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            bail!(
                "another xvrrpd answers on {} (one agent per node; set control_socket to run more)",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    // Bind with a umask that leaves no window where others could connect.
    // SAFETY: umask only changes this process's file-creation mask.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    unsafe { libc::umask(old) };
    let listener = bound.with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let calls = calls.clone();
                    let events = events.subscribe();
                    tokio::spawn(async move {
                        if let Err(e) = serve(stream, calls, events).await {
                            debug!(error = %e, "control connection");
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "control socket accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(ControlSocket {
        path: path.to_path_buf(),
    })
}

async fn serve(
    stream: UnixStream,
    calls: mpsc::Sender<Call>,
    mut events: broadcast::Receiver<String>,
) -> anyhow::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut lines = BufReader::new(rd).lines();
    let Some(line) = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await??
    else {
        return Ok(());
    };
    let req: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            let resp = Response::Error {
                message: format!("bad request: {e}"),
            };
            wr.write_all(format!("{}\n", serde_json::to_string(&resp)?).as_bytes())
                .await?;
            return Ok(());
        }
    };
    if req == Request::Events {
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(line) => wr.write_all(format!("{line}\n").as_bytes()).await?,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let gap = serde_json::json!({"event": "lagged", "dropped": n});
                        wr.write_all(format!("{gap}\n").as_bytes()).await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                // The client hung up (or sent something): stop streaming.
                _ = lines.next_line() => return Ok(()),
            }
        }
    }
    let (tx, rx) = oneshot::channel();
    calls
        .send((req, tx))
        .await
        .map_err(|_| anyhow::anyhow!("agent is shutting down"))?;
    let resp = rx.await.unwrap_or(Response::Error {
        message: "agent is shutting down".into(),
    });
    wr.write_all(format!("{}\n", serde_json::to_string(&resp)?).as_bytes())
        .await?;
    Ok(())
}
