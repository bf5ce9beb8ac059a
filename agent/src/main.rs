//! The `xvrrpd` binary.
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use xvrrpd::observe::{self, ObserveOptions};

#[derive(Parser)]
#[command(
    name = "xvrrpd",
    version,
    about = "eBPF/XDP-accelerated VRRP failover agent",
    // `xvrrpd --help` and `xvrrpd SUBCOMMAND --help`; a `help` subcommand would need a man
    // page of its own (xvrrpd.8 names each subcommand's page).
    disable_help_subcommand = true
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
    /// removed, program detached, exit 0; SIGHUP: reload the configuration).
    Run {
        #[arg(long, default_value = xvrrpd::config::DEFAULT_PATH)]
        config: std::path::PathBuf,
        #[command(flatten)]
        socket: SocketArg,
        /// What must survive a reboot: each instance's anti-flap hold and whether its
        /// server must be compared with the peer's before it rejoins.
        #[arg(
            long = "state-dir",
            env = "XVRRPD_STATE_DIR",
            default_value = "/var/lib/xvrrpd"
        )]
        state_dir: std::path::PathBuf,
    },
    /// Show every instance: state, priority, master, VIPs, last transition, trackers.
    Status {
        /// The status document as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Planned handover: this node (the master of INSTANCE) fences its MySQL server, then
    /// the peer takes over; this node does not preempt back until the new master fails.
    Switchover {
        instance: String,
        /// How long to wait for the peer to take over.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Drain this node (every instance to FAULT, VIPs handed over) or bring it back. The
    /// flag survives an agent restart, not a reboot.
    Maintenance {
        #[arg(value_parser = ["on", "off"])]
        mode: String,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Re-read the configuration (as SIGHUP): unchanged instances keep their state; an
    /// invalid file is refused and the running configuration stays.
    Reload {
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Fault injection: block the agent's main loop (the engine) for DURATION, at most
    /// 60 s. The advert thread keeps a master's adverts going for its liveness bound (1 s,
    /// or three intervals), then stops them: the peer takes over.
    #[command(hide = true)]
    StallEngine {
        #[arg(value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Follow the events stream (JSON lines: transitions, MySQL promotion steps, ...).
    Events {
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Translate a keepalived.conf into an xvrrpd configuration (TOML on stdout, one
    /// warning on stderr per keyword that cannot be carried over).
    ImportKeepalived {
        path: std::path::PathBuf,
        /// keepalived's `-i CONFIG_ID`: which `@ID` lines apply (default: this host's
        /// name up to the first dot, as keepalived's default).
        #[arg(long)]
        config_id: Option<String>,
    },
    /// Print the man page (roff) generated from these definitions; with a directory,
    /// write there xvrrpd.8 and one page per subcommand (xvrrpd-run.8, ...), which
    /// xvrrpd.8 refers to.
    #[command(hide = true)]
    Man { dir: Option<std::path::PathBuf> },
    /// Print the SQL that creates xvrrpd's database account with exactly the privileges
    /// the agent's statements need (run it on both servers, with sql_log_bin = 0 or not,
    /// as the pair's other accounts). `xvrrpd check` verifies the same list.
    Grants {
        /// The server family the statements are for.
        #[arg(long, value_parser = ["mariadb", "mysql"])]
        flavor: String,
        /// Only what this configuration uses (without it: every feature of the flavor).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// The account's user name.
        #[arg(long, default_value = "xvrrpd")]
        user: String,
        /// A host part of the account (repeatable): the agent logs in to its own server
        /// (usually over the socket: localhost) and to the peer's over TCP.
        #[arg(long = "host", default_values = ["%", "localhost"])]
        hosts: Vec<String>,
        /// The password in `CREATE USER` (edit the output instead if you prefer).
        #[arg(long, default_value = "CHANGE-ME")]
        password: String,
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

#[derive(clap::Args)]
struct SocketArg {
    /// The agent's control socket.
    #[arg(long = "control-socket", env = "XVRRPD_CONTROL_SOCKET", default_value = xvrrpd::control::DEFAULT_SOCKET)]
    path: std::path::PathBuf,
}

/// Logs go to journald (with fields) when stderr is the journal, to stderr otherwise.
fn init_logging() {
    use tracing_subscriber::prelude::*;
    // The events stream's records go to the journal as fields (XVRRPD_EVENT=writable);
    // on a terminal they would repeat the log lines that tell the same facts.
    let filter = |default: &str| {
        EnvFilter::try_from_env("XVRRPD_LOG").unwrap_or_else(|_| EnvFilter::new(default))
    };
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        let filter = filter("info");
        if let Ok(journald) = tracing_journald::layer() {
            tracing_subscriber::registry()
                .with(filter)
                // XVRRPD_INSTANCE=..., XVRRPD_REASON=...: a bare PRIORITY would collide
                // with journald's own field.
                .with(
                    journald
                        .with_syslog_identifier("xvrrpd".into())
                        .with_field_prefix(Some("XVRRPD".into())),
                )
                .init();
            return;
        }
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter("info,xvrrpd::events=off"))
        .init();
}

/// Prints a client command's result; exit 1 with the error otherwise.
fn report(result: anyhow::Result<String>) -> std::process::ExitCode {
    match result {
        Ok(msg) => {
            println!("{msg}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn main() -> std::process::ExitCode {
    init_logging();
    let cli = Cli::parse();
    use xvrrpd::control::{client, Request};
    match &cli.command {
        Command::Check { config, offline } => return check(config, *offline),
        Command::Grants {
            flavor,
            config,
            user,
            hosts,
            password,
        } => return grants(flavor, config.as_deref(), user, hosts, password),
        Command::Status { json, socket } => {
            return report(client::status(&socket.path).and_then(|s| {
                Ok(if *json {
                    serde_json::to_string_pretty(&s)?
                } else {
                    xvrrpd::control::status::render(&s).trim_end().to_string()
                })
            }))
        }
        Command::Switchover {
            instance,
            timeout,
            socket,
        } => return report(client::switchover(&socket.path, instance, *timeout)),
        Command::Maintenance { mode, socket } => {
            return report(client::command(
                &socket.path,
                &Request::Maintenance { on: mode == "on" },
            ))
        }
        Command::Reload { socket } => {
            return report(client::command(&socket.path, &Request::Reload))
        }
        Command::StallEngine { duration, socket } => {
            return report(client::command(
                &socket.path,
                &Request::StallEngine {
                    ms: duration.as_millis() as u64,
                },
            ))
        }
        Command::Events { socket } => {
            return report(
                client::follow_events(&socket.path, std::io::stdout()).map(|()| String::new()),
            )
        }
        Command::ImportKeepalived { path, config_id } => {
            let id = config_id
                .clone()
                .unwrap_or_else(xvrrpd::import::default_config_id);
            return import(path, &id);
        }
        Command::Man { dir } => {
            return match man_pages(dir.as_deref()) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        _ => {}
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
            Command::Run {
                config,
                socket,
                state_dir,
            } => {
                xvrrpd::run::run(xvrrpd::run::RunOptions {
                    config,
                    control_socket: socket.path,
                    state_dir,
                })
                .await
            }
            _ => unreachable!("handled before the runtime starts"),
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

/// `xvrrpd man [DIR]`: the top page on stdout, or every page into DIR.
fn man_pages(dir: Option<&std::path::Path>) -> std::io::Result<()> {
    use std::io::Write;
    let top = <Cli as clap::CommandFactory>::command();
    let render = |cmd: clap::Command| -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).section("8").render(&mut out)?;
        Ok(out)
    };
    let Some(dir) = dir else {
        return std::io::stdout().write_all(&render(top)?);
    };
    std::fs::create_dir_all(dir)?;
    // The top page lists the subcommands as xvrrpd-NAME(8): each gets its page.
    for sub in top.get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = format!("xvrrpd-{}", sub.get_name());
        let page = sub
            .clone()
            .name(&*name.clone().leak()) // a one-shot command: the page names live until exit
            .display_name(name.clone())
            .bin_name(name.replace('-', " "));
        std::fs::write(dir.join(format!("{name}.8")), render(page)?)?;
    }
    // The configuration file's page, from the reference docs/configuration.md renders.
    std::fs::write(
        dir.join("xvrrpd.toml.5"),
        xvrrpd::config::reference::roff(env!("CARGO_PKG_VERSION")),
    )?;
    std::fs::write(dir.join("xvrrpd.8"), render(top)?)
}

/// `xvrrpd import-keepalived`: TOML on stdout, warnings on stderr.
fn import(path: &std::path::Path, config_id: &str) -> std::process::ExitCode {
    match xvrrpd::import::import_file(path, config_id) {
        Ok(out) => {
            for w in &out.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", out.toml);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `xvrrpd grants`: the account's SQL on stdout.
fn grants(
    flavor: &str,
    config: Option<&std::path::Path>,
    user: &str,
    hosts: &[String],
    password: &str,
) -> std::process::ExitCode {
    use xvrrpd::mysql::{dialect::Flavor, privileges};
    let flavor = match Flavor::parse(flavor) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: --flavor: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let uses = match config {
        None => privileges::Uses {
            guard: true,
            flashback: true,
            clone: true,
        },
        Some(path) => match xvrrpd::config::load(path, false) {
            Ok(cfg) => {
                let guards = || cfg.instances.iter().filter_map(|i| i.mysql.as_ref());
                privileges::Uses {
                    guard: guards().next().is_some(),
                    flashback: guards()
                        .any(|g| g.on_errant == xvrrpd::config::ErrantPolicy::Flashback),
                    clone: guards().any(|g| g.on_errant == xvrrpd::config::ErrantPolicy::Clone),
                }
            }
            Err(problems) => {
                for p in &problems {
                    eprintln!("{}: {}: {}", path.display(), p.key, p.message);
                }
                return std::process::ExitCode::FAILURE;
            }
        },
    };
    print!(
        "{}",
        privileges::statements(flavor, uses, user, hosts, password)
    );
    std::process::ExitCode::SUCCESS
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
            if cfg.witness.is_none() {
                for i in cfg.instances.iter().filter(|i| i.mysql.is_some()) {
                    println!(
                        "{}: warning: instance {:?} has no [witness]: a partition between the nodes can make both servers writable (docs/witness.md)",
                        path.display(),
                        i.name
                    );
                }
            }
            if !offline {
                // As this process is allowed them: run check as the service runs.
                let limits = xvrrpd::net::pacer::HostLimits::of_this_process();
                let g = &cfg.global;
                for w in
                    xvrrpd::net::pacer::host_warnings(g.realtime_priority, g.lock_memory, &limits)
                {
                    println!("host: warning: {w}");
                }
                if let Some(k) = &g.conn_sync_key {
                    if let Err(e) = xvrrpd::conntrack::load_key(k) {
                        println!("host: ERROR: {e:#}");
                        return std::process::ExitCode::FAILURE;
                    }
                }
                if let Some(w) = &cfg.witness {
                    if !check_witness(&cfg, w) {
                        return std::process::ExitCode::FAILURE;
                    }
                }
            }
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

/// The runtime `check` reads live servers with; None (nothing read) when it cannot start.
fn check_runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()
}

/// Reads each write instance's key from every etcd member, as the agent would reach
/// them (TLS included); false when the TLS files are unusable or a member does not
/// answer.
fn check_witness(cfg: &xvrrpd::config::Config, w: &xvrrpd::config::WitnessConfig) -> bool {
    let tls = match w.tls.as_ref().map(xvrrpd::witness::tls::load).transpose() {
        Ok(t) => t,
        Err(e) => {
            println!("witness: ERROR: {e:#}");
            return false;
        }
    };
    let Some(rt) = check_runtime() else {
        return true;
    };
    let mut ok = true;
    for inst in cfg.instances.iter().filter(|i| i.mysql.is_some()) {
        let key = w.key(&inst.name);
        let mut client = xvrrpd::witness::etcd::Client::new(
            w.etcd.clone(),
            key.clone(),
            String::new(),
            tls.clone(),
            std::time::Duration::from_secs(2),
        );
        for (endpoint, got) in rt.block_on(client.probe()) {
            match got {
                Ok(Some(k)) if k.holder.is_empty() => {
                    println!("witness {endpoint}: {key} free (term {})", k.term)
                }
                Ok(Some(k)) => println!(
                    "witness {endpoint}: {key} held by {} (term {})",
                    k.holder, k.term
                ),
                Ok(None) => println!("witness {endpoint}: {key} never taken yet"),
                Err(e) => {
                    println!("witness {endpoint}: ERROR: {e}");
                    ok = false;
                }
            }
        }
    }
    ok
}

/// The MySQL preflight for every write instance whose server answers; false when a
/// finding is an error.
fn preflight(cfg: &xvrrpd::config::Config) -> bool {
    use xvrrpd::mysql::{
        conn::Server,
        preflight::{
            evaluate, flashback_findings, semi_sync_report, snapshot, starts_read_only, Level,
        },
    };
    let Some(rt) = check_runtime() else {
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
                // Nothing could be checked, and promotion would fail the same way.
                println!(
                    "preflight {} ({}): ERROR: the server did not answer ({e}): promotion needs it; start it, or fix the tracker's socket/host and credentials",
                    inst.name, server.endpoint
                );
                ok = false;
                continue;
            }
        };
        let peer = local.replica.as_ref().and_then(|r| {
            let (host, port) = (r.master_host.as_str(), r.master_port);
            if host.is_empty() {
                return None;
            }
            match rt.block_on(bounded(server.at(host, port))) {
                Ok(p) => Some(p),
                // The server answered and refused: promotion looks at the peer with the
                // same login to know whether it is still writable.
                Err(e) if e.contains("Access denied") || e.contains("ERROR") => {
                    println!("preflight {} ({}): ERROR: the peer {host}:{port} refused xvrrpd's login ({e}): promotion could not tell whether the peer is still writable; create the same account there", inst.name, server.endpoint);
                    ok = false;
                    None
                }
                Err(e) => {
                    println!("preflight {} ({}): warning: the peer {host}:{port} did not answer ({e}): nothing compared with it (run check again when it is up)", inst.name, server.endpoint);
                    None
                }
            }
        });
        for line in semi_sync_report(&local) {
            println!(
                "preflight {} ({}): semi-sync: {line}",
                inst.name, server.endpoint
            );
        }
        let mut findings = evaluate(&local, peer.as_ref(), starts_read_only(&local));
        if g.on_errant == xvrrpd::config::ErrantPolicy::Flashback {
            findings.extend(flashback_findings(
                &local,
                xvrrpd::mysql::flashback::tools().map(|_| ()),
            ));
        }
        if g.on_errant == xvrrpd::config::ErrantPolicy::Clone {
            findings.extend(xvrrpd::mysql::clone::findings(
                &local,
                peer.as_ref(),
                xvrrpd::mysql::clone::binlog_tool().map(|_| ()),
            ));
        }
        if g.on_hung == xvrrpd::config::HungPolicy::Kill {
            use xvrrpd::mysql::hung;
            match server.listener().ok_or_else(|| "the server is named by a host name other than localhost".to_string()).and_then(|l| hung::locate(&l).map(|p| (l, p))) {
                Ok((l, p)) => println!(
                    "preflight {} ({}): on_hung = kill: a server that must be fenced and hangs is killed: {} pid {} (listening at {l})",
                    inst.name, server.endpoint, p.name, p.pid
                ),
                Err(e) => findings.push(xvrrpd::mysql::preflight::Finding {
                    level: Level::Warning,
                    message: format!("on_hung = kill: {e}; a hung server would only be waited for (both servers writable when it resumes, until the fence lands): run xvrrpd on the server's host, or set on_hung = \"wait\" to accept it"),
                }),
            }
        }
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
