//! The control socket: a Unix stream socket (mode 600, so root only) speaking JSON lines.
//!
//! A client writes one request line and reads one response line; `events` instead streams
//! JSON lines until the client hangs up. Requests that read or change router state go to
//! the main loop, which owns that state (a stuck main loop therefore also stops
//! answering, as it stops the watchdog).
pub mod client;
pub mod server;
pub mod status;

use serde::{Deserialize, Serialize};

/// Default path of the control socket (systemd's RuntimeDirectory=xvrrpd).
pub const DEFAULT_SOCKET: &str = "/run/xvrrpd/control.sock";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Status,
    /// Hand mastership of `instance` to the peer (fenced first for a write instance).
    Switchover {
        instance: String,
    },
    /// Drain this node (every instance to FAULT) or bring it back.
    Maintenance {
        on: bool,
    },
    /// Re-read the configuration file.
    Reload,
    /// Follow the events stream.
    Events,
    /// Fault injection: block the main loop this long (at most 60 000 ms).
    StallEngine {
        ms: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Response {
    Ok { message: String },
    Error { message: String },
    Status(status::Status),
}
