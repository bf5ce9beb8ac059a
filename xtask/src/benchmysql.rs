//! `cargo xtask bench mysql`: the lab scenario (see `xvrrpd_tests::dblab`) for xvrrpd and
//! for the classic keepalived setup, same run, several repetitions each; the dated table
//! goes to BENCHMARKS.md.
use std::time::Duration;

use anyhow::{Context, Result};
use xvrrpd_tests::dblab::{self, Fault, LabOptions, Setup, Workload};

use crate::{record, root, INTERRUPTED};

#[derive(clap::Args)]
pub struct MysqlArgs {
    /// Repetitions per setup and fault.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Faults to run.
    #[arg(long, value_delimiter = ',', default_value = "mysqld-kill,host-crash")]
    pub faults: Vec<String>,
    /// Workloads to run: insert (one new row per commit) and bank (account updates).
    #[arg(long, value_delimiter = ',', default_value = "insert,bank")]
    pub workloads: Vec<String>,
    /// Advert interval in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub interval_ms: u64,
    /// Server flavors, each in the same table: mariadb (10.11), mysql (9.7).
    #[arg(long, value_delimiter = ',', default_value = "mariadb")]
    pub flavor: Vec<String>,
}

pub fn run(args: MysqlArgs) -> Result<()> {
    crate::catch_interrupts();
    let command = format!(
        "cargo xtask bench mysql --reps {} --faults {} --workloads {} --interval-ms {} --flavor {}",
        args.reps,
        args.faults.join(","),
        args.workloads.join(","),
        args.interval_ms,
        args.flavor.join(",")
    );
    let flavors = args
        .flavor
        .iter()
        .map(|f| xvrrpd_tests::DbFlavor::parse(f))
        .collect::<Result<Vec<_>>>()?;
    let mut csv = record::Raw::new("flavor,setup,workload,fault,rep,outage_ms,acked_missing,acked_increments_missing,rows_differing,in_doubt,replication_errors,dual_writable_ms,acked");
    let mut table = record::Table::new("| fault | workload | server | setup | write outage ms min/med/max | acked missing on the survivor (sum) | acked lost after convergence (sum; bank: increments) | rows differing (sum) | in doubt, committed (sum) | replication errors (sum) | dual-writable ms (median) |");
    let workloads = args
        .workloads
        .iter()
        .map(|w| Workload::parse(w))
        .collect::<Result<Vec<_>>>()?;
    // The first rep of each setup, drawn one above the other per fault and workload.
    let mut classic_panel: Option<xvrrpd_tests::picture::Panel> = None;
    for f in &args.faults {
        let fault = Fault::parse(f)?;
        for (workload, flavor, setup) in workloads.iter().flat_map(|w| {
            flavors
                .iter()
                .flat_map(move |fl| [(*w, *fl, Setup::Classic), (*w, *fl, Setup::Xvrrpd)])
        }) {
            let server = flavor.product();
            let wname = workload.name();
            let name = match setup {
                Setup::Classic => "classic keepalived",
                Setup::Xvrrpd => "xvrrpd",
            };
            let (mut outage, mut dual) = (Vec::new(), Vec::new());
            let (mut missing, mut errors) = (0, 0);
            let (mut lost, mut differing, mut doubt) = (0, 0, 0);
            for rep in 0..args.reps {
                let opts = LabOptions {
                    setup,
                    flavor,
                    fault,
                    workload,
                    interval_ms: args.interval_ms,
                    ..LabOptions::default()
                };
                let r = dblab::run(&opts, &INTERRUPTED)
                    .with_context(|| format!("{server} {name} {f} rep {rep}"))?;
                eprintln!("{server} {name} {wname} {f} rep {rep}: {}", r.result_line());
                if rep == 0 {
                    let panel = xvrrpd_tests::picture::Panel::from_report(
                        &format!("{f}, {wname} workload, {server}: {name}"),
                        &r,
                    );
                    match setup {
                        Setup::Classic => classic_panel = Some(panel),
                        Setup::Xvrrpd => {
                            let panels: Vec<_> =
                                classic_panel.take().into_iter().chain([panel]).collect();
                            let path = xvrrpd_tests::picture::save(
                                &root().join("target/lab"),
                                &format!(
                                    "bench-mysql-{f}-{wname}-{}-{}",
                                    flavor.name(),
                                    crate::lab::unix_secs()
                                ),
                                &panels,
                            )?;
                            eprintln!("timeline picture: {}", path.display());
                        }
                    }
                }
                csv.row(format!(
                    "{},{name},{wname},{f},{rep},{:.1},{},{},{},{},{},{:.1},{}",
                    flavor.name(),
                    r.outage_ms,
                    r.acked_missing,
                    r.acked_increments_missing,
                    r.rows_differing,
                    r.in_doubt,
                    r.replication_errors,
                    r.dual_writable_ms,
                    r.acked
                ))?;
                lost += r.acked_increments_missing;
                differing += r.rows_differing;
                doubt += r.in_doubt;
                outage.push(r.outage_ms);
                dual.push(r.dual_writable_ms);
                missing += r.acked_missing;
                errors += r.replication_errors;
                std::thread::sleep(Duration::from_millis(500));
            }
            let (lo, mid, hi) = record::stats(&mut outage);
            let (_, dmid, _) = record::stats(&mut dual);
            table.row(format!("| {f} | {wname} | {server} | {name} | {lo:.0} / {mid:.0} / {hi:.0} | {missing} | {lost} | {differing} | {doubt} | {errors} | {dmid:.0} |"))?;
        }
    }
    record::record(record::Entry {
        title: "MySQL dual-master failover, xvrrpd beside the classic setup",
        command: &command,
        parts: &[record::Part::table(&table)],
        notes: "Scenario (`xvrrpd_tests::dblab`, the same as `cargo xtask lab`): MariaDB 10.11 and/or MySQL 9.7 \
         (Debian unstable, chrooted; on_errant = clone) dual-master (GTID, \
         auto-increment offsets), a client in its own namespace writing one row per commit through the write \
         VIP (2 ms pacing, 50 ms connect / 250 ms statement timeouts; insert: one new row per commit; bank: 1 000 \
         accounts, 50 % UPDATE balance+1 by email, 30 % new accounts, 20 % upserts, every acknowledged increment \
         in a ledger), fault on db1 after 3 s, db1 back after 4 s, \
         4 s more. Classic: keepalived 2.2.7, TCP port-check `vrrp_script` every 1 s (fall 2, rise 3, weight -60), \
         both servers writable, async replication. xvrrpd: write guard (catch-up, read_only fencing, anti-flap 60 s), \
         MySQL tracker, lossless semi-sync (AFTER_SYNC), read_only by default. Outage = longest gap between acknowledged writes; missing = \
         acknowledged rows absent on db2 while db1 was away; dual-writable = time both servers had read_only = OFF \
         (sampled every 2 ms).",
        raw: Some(("mysql", &csv)),
    })
}
