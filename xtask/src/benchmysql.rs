//! `cargo xtask bench mysql`: the lab scenario (see `xvrrpd_tests::dblab`) for xvrrpd and
//! for the classic keepalived setup, same run, several repetitions each; the dated table
//! goes to BENCHMARKS.md.
use std::{fmt::Write as _, time::Duration};

use anyhow::{Context, Result};
use xvrrpd_tests::dblab::{self, Fault, LabOptions, Setup};

use crate::{bench, root, INTERRUPTED};

#[derive(clap::Args)]
pub struct MysqlArgs {
    /// Repetitions per setup and fault.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Faults to run.
    #[arg(long, value_delimiter = ',', default_value = "mysqld-kill,host-crash")]
    pub faults: Vec<String>,
    /// Advert interval in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub interval_ms: u64,
}

pub fn run(args: MysqlArgs) -> Result<()> {
    crate::catch_interrupts();
    let command = format!(
        "cargo xtask bench mysql --reps {} --faults {} --interval-ms {}",
        args.reps,
        args.faults.join(","),
        args.interval_ms
    );
    let mut csv = String::from(
        "setup,fault,rep,outage_ms,acked_missing,replication_errors,dual_writable_ms,acked\n",
    );
    let mut table = String::from(
        "| fault | setup | write outage ms min/med/max | acked rows missing (sum) | replication errors (sum) | dual-writable ms (median) |\n|---|---|---|---|---|---|\n",
    );
    for f in &args.faults {
        let fault = Fault::parse(f)?;
        for setup in [Setup::Classic, Setup::Xvrrpd] {
            let name = match setup {
                Setup::Classic => "classic keepalived",
                Setup::Xvrrpd => "xvrrpd",
            };
            let (mut outage, mut dual) = (Vec::new(), Vec::new());
            let (mut missing, mut errors) = (0, 0);
            for rep in 0..args.reps {
                let opts = LabOptions {
                    setup,
                    fault,
                    interval_ms: args.interval_ms,
                    ..LabOptions::default()
                };
                let r = dblab::run(&opts, &INTERRUPTED)
                    .with_context(|| format!("{name} {f} rep {rep}"))?;
                eprintln!("{name} {f} rep {rep}: {}", r.result_line());
                writeln!(
                    csv,
                    "{name},{f},{rep},{:.1},{},{},{:.1},{}",
                    r.outage_ms, r.acked_missing, r.replication_errors, r.dual_writable_ms, r.acked
                )?;
                outage.push(r.outage_ms);
                dual.push(r.dual_writable_ms);
                missing += r.acked_missing;
                errors += r.replication_errors;
                std::thread::sleep(Duration::from_millis(500));
            }
            let (lo, mid, hi) = bench::stats(&mut outage);
            let (_, dmid, _) = bench::stats(&mut dual);
            writeln!(
                table,
                "| {f} | {name} | {lo:.0} / {mid:.0} / {hi:.0} | {missing} | {errors} | {dmid:.0} |"
            )?;
        }
    }
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("mysql.csv"), &csv)?;
    println!("{table}");
    bench::append_benchmarks(&format!(
        "\n## {} — MySQL dual-master failover, xvrrpd beside the classic setup\n\nCommand: `{command}`\n\n{table}\n\
         Scenario (`xvrrpd_tests::dblab`, the same as `cargo xtask lab`): MariaDB 10.11 dual-master (GTID, \
         auto-increment offsets), a client in its own namespace writing one row per commit through the write \
         VIP (2 ms pacing, 50 ms connect / 250 ms statement timeouts), fault on db1 after 3 s, db1 back after 4 s, \
         4 s more. Classic: keepalived 2.2.7, TCP port-check `vrrp_script` every 1 s (fall 2, rise 3, weight -60), \
         both servers writable, async replication. xvrrpd: write guard (catch-up, read_only fencing, anti-flap 60 s), \
         MySQL tracker, semi-sync, read_only by default. Outage = longest gap between acknowledged writes; missing = \
         acknowledged rows absent on db2 while db1 was away; dual-writable = time both servers had read_only = OFF \
         (sampled every 2 ms). Raw data: `target/bench/mysql.csv`.\n",
        bench::today()?
    ))
}
