//! Project automation: `cargo xtask <command>`.
mod bench;
mod benchclients;
mod benchmysql;
mod benchwitness;
mod chaos;
mod deb;
mod deploylab;
mod ebpf;
mod failover;
mod fuzz;
mod lab;
mod load;
mod masterdown;
mod mysqlkill;
mod nspawn;
mod observelab;
mod record;
mod scale;
mod setup;
mod test;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Build, set up, test, lab and bench xvrrpd")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the XDP object (nightly, bpfel-unknown-none) that the agent embeds.
    BuildEbpf,
    /// Install what a fresh machine lacks (Debian packages, bpf-linker, rust-src). Idempotent.
    Setup,
    /// Set up, build, lint, then run every test (unit, datapath, namespace integration).
    Test(test::TestArgs),
    /// The MySQL lab: a MariaDB dual-master pair behind xvrrpd's write and read VIPs, a
    /// client writing through them, a fault on the write master; ends with a RESULT line.
    Lab(lab::LabArgs),
    /// The observer demo: a keepalived pair watched by `xvrrpd observe`, master killed.
    ObserveLab(observelab::ObserveLabArgs),
    /// The long fault suite on the MariaDB pair (loss, starvation vs keepalived, flapping,
    /// partition, hung/crashing mysqld, agent kills); appends its table to BENCHMARKS.md.
    Chaos(chaos::ChaosArgs),
    /// Fuzz the parsers (VRRP codec, config, keepalived.conf import, datapath events,
    /// control requests) with cargo fuzz, from the committed seeds.
    Fuzz(fuzz::FuzzArgs),
    /// Build the Debian package (release binary, systemd unit, example config, man page)
    /// into target/debian/.
    Deb,
    /// The .deb on a booted Debian pair (debootstrap + systemd-nspawn, systemd as PID 1):
    /// readiness, watchdog, reload, stop, journald, a mysqld-kill failover, apt remove and
    /// purge, scraped by a real Prometheus; ends with a RESULT line of checks.
    DeployLab(deploylab::DeployLabArgs),
    /// Benchmarks (results are appended to BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        which: bench::Bench,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Cmd::BuildEbpf => ebpf::build(),
        Cmd::Setup => setup::run(),
        Cmd::Test(args) => test::run(args),
        Cmd::Lab(args) => lab::run(args),
        Cmd::ObserveLab(args) => observelab::run(args),
        Cmd::Bench { which } => bench::run(which),
        Cmd::Fuzz(args) => fuzz::run(args),
        Cmd::Chaos(args) => chaos::run(args),
        Cmd::DeployLab(args) => deploylab::run(args),
        Cmd::Deb => deb::build().map(|p| println!("{}", p.display())),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The workspace root.
pub fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs `cmd`, failing with what it was when it exits non-zero.
pub fn run_cmd(cmd: &mut std::process::Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .map_err(|e| anyhow::anyhow!("starting {cmd:?}: {e}"))?;
    if !status.success() {
        anyhow::bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Fails unless running as root (XDP, BPF maps, namespaces need it).
pub fn require_root(what: &str) -> anyhow::Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("{what} needs root (XDP programs and network namespaces): run it as root");
    }
    Ok(())
}

/// Set by SIGINT / SIGTERM once [`catch_interrupts`] ran: labs and benches stop at their
/// next pause and clean up (namespaces, processes) on the way out.
pub static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

pub fn catch_interrupts() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_interrupt as *const () as libc::sighandler_t,
        );
    }
}
