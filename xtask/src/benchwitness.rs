//! `cargo xtask bench witness`: what the write lease costs and what it buys. The lab
//! scenario with and without the etcd witness, same run: the write outage of each fault,
//! and how long both servers were writable.

use anyhow::{Context, Result};
use xvrrpd_tests::dblab::{self, Fault, LabOptions};

use crate::{record, INTERRUPTED};

#[derive(clap::Args)]
pub struct WitnessArgs {
    /// Repetitions per fault and setup.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Faults to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "mysqld-kill,host-crash,partition"
    )]
    pub faults: Vec<String>,
}

pub fn run(args: WitnessArgs) -> Result<()> {
    crate::catch_interrupts();
    let command = format!(
        "cargo xtask bench witness --reps {} --faults {}",
        args.reps,
        args.faults.join(",")
    );
    let mut csv =
        record::Raw::new("witness,fault,rep,outage_ms,dual_writable_ms,acked_missing,fencing_term");
    let mut table = record::Table::new("| fault | setup | write outage, ms min / median / max | both writable, ms (max) | acked missing (sum) |");
    for f in &args.faults {
        let fault = Fault::parse(f)?;
        for witness in [false, true] {
            let name = if witness {
                "xvrrpd + witness"
            } else {
                "xvrrpd"
            };
            let (mut outage, mut dual, mut missing) = (Vec::new(), 0f64, 0);
            for rep in 0..args.reps {
                let opts = LabOptions {
                    fault,
                    witness,
                    ..LabOptions::default()
                };
                let r = dblab::run(&opts, &INTERRUPTED)
                    .with_context(|| format!("{name} {f} rep {rep}"))?;
                eprintln!("{name} {f} rep {rep}: {}", r.result_line());
                csv.row(format!(
                    "{witness},{f},{rep},{:.1},{:.1},{},{}",
                    r.outage_ms,
                    r.dual_writable_ms,
                    r.acked_missing,
                    r.fencing_term.map_or(String::new(), |t| t.to_string())
                ))?;
                outage.push(r.outage_ms);
                dual = dual.max(r.dual_writable_ms);
                missing += r.acked_missing;
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            let (lo, mid, hi) = record::stats(&mut outage);
            table.row(format!(
                "| {f} | {name} | {lo:.0} / {mid:.0} / {hi:.0} | {dual:.1} | {missing} |"
            ))?;
        }
    }
    record::record(record::Entry {
        title: "the witness: write outage and both-writable time with and without it",
        command: &command,
        parts: &[record::Part::table(&table)],
        notes: "The lab scenario (`cargo xtask lab`, MariaDB dual-master, 10 ms adverts, the lab's own client with \
         250 ms statement timeouts), without and with `--witness` (three etcd members: db1, db2 and a third \
         namespace; the default `lease = 600ms`, `margin = 250ms`). Write outage: the longest gap between two acknowledged \
         writes from the fault on. partition: db1 | db2, the client and the witness reach both.",
        raw: Some(("witness", &csv)),
    })
}
