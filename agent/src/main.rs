//! The `xvrrpd` binary.
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use xvrrpd::observe::{self, ObserveOptions};

#[derive(Parser)]
#[command(
    name = "xvrrpd",
    version,
    about = "eBPF/XDP-accelerated VRRP failover agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Attach the XDP watcher and print VRRP events (adverts, missed intervals, master down).
    Observe {
        /// Interface to watch (repeatable).
        #[arg(short, long = "interface", required = true)]
        interfaces: Vec<String>,
        /// Watch only this VRID (repeatable; all VRIDs when absent).
        #[arg(long = "vrid", value_parser = clap::value_parser!(u8).range(1..=255))]
        vrids: Vec<u8>,
        /// Local priority assumed for Skew_Time in Master_Down_Interval.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=254))]
        priority: u8,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Also print every valid advert (with its gap to the previous one).
        #[arg(long)]
        adverts: bool,
    },
    /// Run the VRRP router in the foreground (SIGTERM/SIGINT: priority-0 advert, VIPs
    /// removed, program detached, exit 0).
    Run {
        #[arg(long, default_value = xvrrpd::config::DEFAULT_PATH)]
        config: std::path::PathBuf,
    },
    /// Validate a configuration; list every problem with its key and line, exit 1 if any.
    Check {
        #[arg(long, default_value = xvrrpd::config::DEFAULT_PATH)]
        config: std::path::PathBuf,
        /// Do not check interface names against this host (validating for another node).
        #[arg(long)]
        offline: bool,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_env("XVRRPD_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    if let Command::Check { config, offline } = &cli.command {
        return check(config, *offline);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Observe {
                interfaces,
                vrids,
                priority,
                json,
                adverts,
            } => {
                observe::run(ObserveOptions {
                    interfaces,
                    vrids,
                    priority,
                    json,
                    adverts,
                })
                .await
            }
            Command::Run { config } => xvrrpd::run::run(&config).await,
            Command::Check { .. } => unreachable!("handled before the runtime starts"),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `xvrrpd check`: prints `PATH:LINE: KEY: MESSAGE` per problem.
fn check(path: &std::path::Path, offline: bool) -> std::process::ExitCode {
    match xvrrpd::config::load(path, !offline) {
        Ok(cfg) => {
            println!(
                "{}: ok ({} instance(s))",
                path.display(),
                cfg.instances.len()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                match p.line {
                    Some(l) => eprintln!("{}:{l}: {}: {}", path.display(), p.key, p.message),
                    None => eprintln!("{}: {}: {}", path.display(), p.key, p.message),
                }
            }
            eprintln!("{}: {} problem(s)", path.display(), problems.len());
            std::process::ExitCode::FAILURE
        }
    }
}
