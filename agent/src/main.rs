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
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_env("XVRRPD_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
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
