//! The CLI side of the control socket (blocking: the commands are one-shot).
use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

use super::{status::Status, Request, Response};

fn connect(path: &Path) -> anyhow::Result<UnixStream> {
    UnixStream::connect(path).with_context(|| {
        format!(
            "connecting to {} (is xvrrpd running? are you root?)",
            path.display()
        )
    })
}

/// Sends one request and reads its response.
pub fn call(path: &Path, req: &Request) -> anyhow::Result<Response> {
    let mut s = connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    writeln!(s, "{}", serde_json::to_string(req)?)?;
    let mut line = String::new();
    BufReader::new(&s)
        .read_line(&mut line)
        .context("reading the answer")?;
    if line.is_empty() {
        bail!("the agent closed the connection without answering");
    }
    serde_json::from_str(&line).with_context(|| format!("undecodable answer {line:?}"))
}

pub fn status(path: &Path) -> anyhow::Result<Status> {
    match call(path, &Request::Status)? {
        Response::Status(s) => Ok(s),
        Response::Error { message } => bail!("{message}"),
        other => bail!("unexpected answer {other:?}"),
    }
}

/// A call whose answer is a message: Ok(message) or the agent's error.
pub fn command(path: &Path, req: &Request) -> anyhow::Result<String> {
    match call(path, req)? {
        Response::Ok { message } => Ok(message),
        Response::Error { message } => bail!("{message}"),
        other => bail!("unexpected answer {other:?}"),
    }
}

/// Starts a switchover and waits until the instance is a backup following another master.
pub fn switchover(path: &Path, instance: &str, timeout: Duration) -> anyhow::Result<String> {
    let start = Instant::now();
    let msg = command(
        path,
        &Request::Switchover {
            instance: instance.to_string(),
        },
    )?;
    loop {
        let s = status(path)?;
        let i = s
            .instances
            .iter()
            .find(|i| i.name == instance)
            .with_context(|| format!("instance {instance:?} vanished"))?;
        if let Some(why) = &i.switchover_refused {
            bail!("{instance}: switchover refused, nothing fenced, still the master: {why}");
        }
        if i.state == "BACKUP" && i.master.is_some() {
            return Ok(format!(
                "{msg}; {instance} is BACKUP, master now {} (after {} ms)",
                i.master.as_deref().unwrap_or("?"),
                start.elapsed().as_millis()
            ));
        }
        if start.elapsed() > timeout {
            bail!(
                "{instance} is {} {} after the switchover request (no peer took over?)",
                i.state,
                humantime::format_duration(Duration::from_millis(
                    start.elapsed().as_millis() as u64
                ))
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Prints the events stream until it ends (or the process is interrupted).
pub fn follow_events(path: &Path, mut out: impl Write) -> anyhow::Result<()> {
    let mut s = connect(path)?;
    writeln!(s, "{}", serde_json::to_string(&Request::Events)?)?;
    for line in BufReader::new(&s).lines() {
        let line = line?;
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}
