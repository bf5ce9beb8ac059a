//! The XDP program's diagnostic lines (aya-log, see `ebpf/xvrrpd-ebpf/src/diag.rs`)
//! forwarded into the agent's tracing, under the target [`TARGET`] with the program's
//! name. The program writes them only when that target's debug level is enabled when the
//! agent starts (`RUST_LOG=xvrrpd::xdp=debug`): otherwise it skips them at one load.
use aya_log::{EbpfLogger, Level};

/// The tracing target of the datapath's lines.
pub const TARGET: &str = "xvrrpd::xdp";

/// The level the program logs at, from the agent's filter: debug when the target's
/// debug lines would be shown, else info (the program has no line above debug).
pub fn level() -> Level {
    if tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
        Level::Debug
    } else {
        Level::Info
    }
}

/// A `log` sink writing each record as a tracing event.
pub struct ToTracing;

impl log::Log for ToTracing {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, r: &log::Record) {
        let program = super::PROGRAM;
        let msg = r.args();
        match r.level() {
            log::Level::Error => tracing::error!(target: TARGET, program, "{msg}"),
            log::Level::Warn => tracing::warn!(target: TARGET, program, "{msg}"),
            log::Level::Info => tracing::info!(target: TARGET, program, "{msg}"),
            log::Level::Debug => tracing::debug!(target: TARGET, program, "{msg}"),
            log::Level::Trace => tracing::trace!(target: TARGET, program, "{msg}"),
        }
    }

    fn flush(&self) {}
}

/// The reader of the program's lines: poll its fd, then `flush` it.
pub type Logger = EbpfLogger<ToTracing>;
