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
            if offline || preflight(&cfg) {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
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

/// The MySQL preflight for every write instance whose server answers; false when a
/// finding is an error.
fn preflight(cfg: &xvrrpd::config::Config) -> bool {
    use xvrrpd::mysql::{
        conn::Server,
        preflight::{evaluate, read_only_in_my_cnf, snapshot, Level},
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return true;
    };
    let mut ok = true;
    for inst in &cfg.instances {
        let Some(g) = &inst.mysql else { continue };
        let Some(t) = cfg.trackers.iter().find(|t| t.name == g.server) else {
            continue;
        };
        let server = match Server::from_tracker(t) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("preflight {}: credentials: {e}", inst.name);
                ok = false;
                continue;
            }
        };
        let bounded = |s: Server| async move {
            tokio::time::timeout(std::time::Duration::from_secs(3), snapshot(&s))
                .await
                .map_err(|_| "no answer within 3 s".to_string())?
                .map_err(|e| e.to_string())
        };
        let local = match rt.block_on(bounded(server.clone())) {
            Ok(s) => s,
            Err(e) => {
                println!(
                    "preflight {} ({}): server not reachable, skipped: {e}",
                    inst.name, server.endpoint
                );
                continue;
            }
        };
        let peer = local.replica.as_ref().and_then(|r| {
            let host = r.get("Master_Host")?;
            let port = r.get("Master_Port")?.parse().ok()?;
            match rt.block_on(bounded(server.at(host, port))) {
                Ok(p) => Some(p),
                Err(e) => {
                    println!("preflight {}: peer {host}:{port} not readable with these credentials ({e}): peer comparisons skipped", inst.name);
                    None
                }
            }
        });
        let findings = evaluate(&local, peer.as_ref(), read_only_in_my_cnf());
        if findings.is_empty() {
            println!("preflight {} ({}): ok", inst.name, server.endpoint);
        }
        for f in findings {
            let level = match f.level {
                Level::Error => {
                    ok = false;
                    "ERROR"
                }
                Level::Warning => "warning",
            };
            println!(
                "preflight {} ({}): {level}: {}",
                inst.name, server.endpoint, f.message
            );
        }
    }
    ok
}
