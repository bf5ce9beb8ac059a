//! `cargo xtask bench clients`: how long a real client with default settings waits for
//! its next acknowledged write after the write master's host dies, for the classic
//! keepalived setup and xvrrpd with and without the reset at takeover, same run.
use std::time::Duration;

use anyhow::{Context, Result};
use xvrrpd_tests::dblab::{self, Client, Fault, LabOptions, Setup};

use crate::{record, INTERRUPTED};

#[derive(clap::Args)]
pub struct ClientsArgs {
    /// Repetitions per setup, client and fault.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Faults to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "host-freeze,host-freeze-after-hang,mysqld-kill"
    )]
    pub faults: Vec<String>,
    /// Clients: pymysql (default settings, no timeouts), mariadb-cli (one `mariadb`
    /// session, one INSERT per line) and builtin (250 ms timeouts).
    #[arg(long, value_delimiter = ',', default_value = "pymysql")]
    pub clients: Vec<String>,
    /// Advert intervals in milliseconds (each runs the whole matrix).
    #[arg(long, value_delimiter = ',', default_value = "10")]
    pub intervals_ms: Vec<u64>,
}

/// How long the fault lasts, and how long the run goes on after it: a client that has
/// not written again by the end is reported as waiting at least that long. Four seconds,
/// plus four advert intervals (a takeover at 1 s adverts alone takes 3.6 s).
fn phases(interval_ms: u64) -> (Duration, Duration) {
    let d = Duration::from_secs(4) + Duration::from_millis(4 * interval_ms);
    (d, d)
}

/// When the fault's host goes silent, after the fault starts: the hang comes first in
/// `host-freeze-after-hang`.
fn silent_after_ms(fault: Fault) -> f64 {
    match fault {
        Fault::HostFreezeAfterHang => 100.0,
        _ => 0.0,
    }
}

pub fn run(args: ClientsArgs) -> Result<()> {
    crate::catch_interrupts();
    let command = format!(
        "cargo xtask bench clients --reps {} --faults {} --clients {} --intervals-ms {}",
        args.reps,
        args.faults.join(","),
        args.clients.join(","),
        args.intervals_ms
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut csv =
        record::Raw::new("interval_ms,setup,client,fault,rep,next_write_ms,acked_missing");
    let mut table = record::Table::new("| adverts | fault | client | setup | fault → next acknowledged write, ms min / median / max | host silent → next write, median ms | acked missing (sum) |");
    let setups = [
        ("classic keepalived", Setup::Classic, false),
        ("xvrrpd, no reset", Setup::Xvrrpd, false),
        ("xvrrpd", Setup::Xvrrpd, true),
    ];
    for &interval_ms in &args.intervals_ms {
        let (down, after) = phases(interval_ms);
        let cap_ms = (down + after).as_secs_f64() * 1e3;
        for f in &args.faults {
            let fault = Fault::parse(f)?;
            for c in &args.clients {
                let client = Client::parse(c)?;
                for (name, setup, reset) in setups {
                    let (mut next, mut missing, mut capped) = (Vec::new(), 0, false);
                    for rep in 0..args.reps {
                        let opts = LabOptions {
                            setup,
                            fault,
                            client,
                            reset_clients: reset,
                            interval_ms,
                            down,
                            after,
                            ..LabOptions::default()
                        };
                        let r = dblab::run(&opts, &INTERRUPTED)
                            .with_context(|| format!("{name} {c} {f} rep {rep}"))?;
                        // The first write the new master acknowledged after the fault: a
                        // client still waiting at the end of the run waited at least that long.
                        let next_write = r.resumed.map(|(ms, _)| ms);
                        let ms = next_write.unwrap_or(cap_ms);
                        capped |= next_write.is_none();
                        eprintln!(
                        "{interval_ms} ms adverts, {name} {c} {f} rep {rep}: next write {ms:.0} ms; {}",
                        r.result_line()
                    );
                        csv.row(format!(
                            "{interval_ms},{name},{c},{f},{rep},{ms:.1},{}",
                            r.acked_missing
                        ))?;
                        next.push(ms);
                        missing += r.acked_missing;
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    let (lo, mid, hi) = record::stats(&mut next);
                    let more = if capped {
                        " (≥: no write until the end)"
                    } else {
                        ""
                    };
                    let silent = mid - silent_after_ms(fault);
                    table.row(format!("| {interval_ms} ms | {f} | {c} | {name} | {lo:.0} / {mid:.0} / {hi:.0}{more} | {silent:.0} | {missing} |"))?;
                }
            }
        }
    }
    record::record(record::Entry {
        title: "real clients after the master host dies: reset at takeover",
        command: &command,
        parts: &[record::Part::table(&table)],
        notes: "The lab scenario (`cargo xtask lab`, MariaDB dual-master behind the write VIP) with clients as \
         people run them: pymysql = PyMySQL with its default settings (no connect, read or write timeout), one \
         persistent connection, INSERT + COMMIT every 2 ms, reconnect on error; mariadb-cli = one interactive \
         `mariadb` session on a terminal, one INSERT per line, all defaults; builtin = the lab's own client \
         (250 ms statement timeout). Figure: time from the fault to the client's first write acknowledged by \
         db2, capped at the run's end (4 s + 4 advert intervals down, as long after); the next column counts \
         from the moment the host went silent (100 ms after the fault for the hang). \
         host-freeze: db1's network silent, then its processes stopped; host-freeze-after-hang: db1's mysqld \
         stopped first (the query in flight acknowledged at TCP level and never answered), the network 100 ms \
         later. xvrrpd: the master's connections tracked in XDP and copied to the peer, tickled by the new \
         master (`reset_clients`); \"no reset\" turns that off.",
        raw: Some(("clients", &csv)),
    })
}
