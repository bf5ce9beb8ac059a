//! `cargo xtask chaos`: the long fault suite. Every fault of the short suite, longer and
//! at several strengths, on the MariaDB pair; CPU/disk starvation also with the classic
//! keepalived setup at the same advert interval, to count false takeovers side by side.
//! Prints a table, appends it to BENCHMARKS.md, fails if an invariant broke.
use std::time::Duration;

use anyhow::{bail, Result};
use xvrrpd_tests::{
    chaos,
    dblab::{self, Fault, LabOptions, LabReport, Setup},
};

use crate::{require_root, INTERRUPTED};

#[derive(clap::Args)]
pub struct ChaosArgs {
    /// Seconds each starvation lasts (the other faults scale from it).
    #[arg(long, default_value_t = 120)]
    pub starve_s: u64,
    /// Only the faults whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
}

struct Case {
    fault: Fault,
    setup: Setup,
    interval_ms: u64,
    down: Duration,
}

/// One row of the table.
struct Row {
    case: String,
    vrrp_takeovers: usize,
    r: LabReport,
    violations: Vec<String>,
}

pub fn run(args: ChaosArgs) -> Result<()> {
    require_root("cargo xtask chaos")?;
    crate::setup::run()?;
    crate::ebpf::build()?;
    crate::test::build_agent()?;
    crate::catch_interrupts();
    let starve = Duration::from_secs(args.starve_s);
    let short = (starve / 4).max(Duration::from_secs(10));
    let mut cases = Vec::new();
    let x = |fault, interval_ms, down| Case {
        fault,
        setup: Setup::Xvrrpd,
        interval_ms,
        down,
    };
    for pct in [1, 10, 30] {
        cases.push(x(Fault::Loss(pct), 10, starve / 2));
        cases.push(x(Fault::Loss(pct), 100, starve / 2));
    }
    let netem = xvrrpd_tests::chaos::netem_available();
    if netem {
        cases.push(x(Fault::Delay(20, 10), 100, starve / 2));
    }
    for fault in [Fault::StarveMaster, Fault::StarveBackup] {
        for setup in [Setup::Xvrrpd, Setup::Classic] {
            cases.push(Case {
                fault,
                setup,
                interval_ms: 100,
                down: starve,
            });
        }
        cases.push(x(fault, 10, starve));
    }
    for fault in [
        Fault::LinkFlap,
        Fault::Partition,
        Fault::MysqldStop,
        Fault::RepeatedCrash,
        Fault::AgentKill,
        Fault::BackupAgentKill,
        Fault::MysqldKill,
        Fault::HostCrash,
        Fault::HostFreeze,
        Fault::HostFreezeAfterHang,
    ] {
        cases.push(x(fault, 10, short));
    }
    if let Some(only) = &args.only {
        cases.retain(|c| c.fault.name().contains(only.as_str()));
    }
    let mut rows = Vec::new();
    for c in cases {
        let name = format!(
            "{} / {} / {} ms / {} s",
            c.fault.name(),
            if c.setup == Setup::Xvrrpd {
                "xvrrpd"
            } else {
                "keepalived"
            },
            c.interval_ms,
            c.down.as_secs()
        );
        println!("== chaos: {name}");
        let opts = LabOptions {
            setup: c.setup,
            fault: c.fault,
            interval_ms: c.interval_ms,
            steady: Duration::from_secs(3),
            down: c.down,
            after: Duration::from_secs(5),
            ..LabOptions::default()
        };
        let r = dblab::run(&opts, &INTERRUPTED)?;
        let row = Row {
            vrrp_takeovers: chaos::vrrp_takeovers(&r, c.setup),
            violations: chaos::violations(c.fault, c.setup, c.down, &r),
            case: name,
            r,
        };
        println!(
            "   takeovers {} (VIP {}), longest dual VIP {:.1} ms, dual writable {:.1} ms, lost {}, violations {:?}",
            row.vrrp_takeovers,
            row.r.write_vip.node2_acquired,
            row.r.write_vip.longest_dual_ms,
            row.r.dual_writable_ms,
            row.r.acked_lost_final,
            row.violations
        );
        rows.push(row);
    }
    let mut table = crate::record::Table::new(
        "| fault / setup / interval / duration | VRRP takeovers by db2 | VIP taken by db2 | longest VIP on both (ms) | both writable (ms) | acked writes | acked lost | repl. errors | one owner + ARP right at the end | invariants |",
    );
    for row in &rows {
        let r = &row.r;
        table.row(format!(
            "| {} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {} | {} |",
            row.case,
            row.vrrp_takeovers,
            r.write_vip.node2_acquired,
            r.write_vip.longest_dual_ms,
            r.dual_writable_ms,
            r.acked,
            r.acked_lost_final,
            r.replication_errors,
            if r.final_owners == 1 && r.client_arp_ok {
                "yes"
            } else {
                "NO"
            },
            if row.violations.is_empty() {
                "held".to_string()
            } else {
                row.violations.join("; ")
            }
        ))?;
    }
    let command = match &args.only {
        Some(o) => format!("cargo xtask chaos --starve-s {} --only {o}", args.starve_s),
        None => format!("cargo xtask chaos --starve-s {}", args.starve_s),
    };
    crate::record::record(crate::record::Entry {
        title: "fault suite (chaos)",
        command: &command,
        parts: &[crate::record::Part::table(&table)],
        notes: &format!(
            "The MariaDB dual-master lab (semi-sync, GTID) with a client writing through the write \
             VIP. Takeovers are counted from the fault to the recovery: for loss and starvation \
             every one is false (db1 never failed). xvrrpd counts VRRP-level takeovers (db2's \
             engine became master) and VIP takeovers separately: the write guard adds the VIP \
             only once db1's server is fenced or gone, so a false takeover that db1's next advert \
             undoes never reaches the clients. Starvation: 4 busy loops and a direct-I/O writer \
             pinned to the core the starved agent is pinned to. {}",
            if netem {
                ""
            } else {
                "Delay/jitter not run: this kernel has no netem (CONFIG_NET_SCH_NETEM)."
            }
        ),
        raw: None,
    })?;
    let broken: Vec<&Row> = rows.iter().filter(|r| !r.violations.is_empty()).collect();
    if !broken.is_empty() {
        bail!(
            "invariants broken in: {:?}",
            broken.iter().map(|r| &r.case).collect::<Vec<_>>()
        );
    }
    Ok(())
}
