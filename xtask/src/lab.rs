//! `cargo xtask lab`: the MySQL dual-master lab (see `xvrrpd_tests::dblab`). Builds what
//! it needs, runs the scenario, prints the timeline and a report ending in one RESULT
//! line. Cleans up on success, failure or Ctrl-C.
use std::time::Duration;

use anyhow::{bail, Result};
use xvrrpd_tests::dblab::{self, Client, Fault, GiveBack, LabOptions, LabReport, Setup, Workload};

use crate::{require_root, INTERRUPTED};

#[derive(clap::Args)]
pub struct LabArgs {
    /// What hits the write master: mysqld-kill, host-crash, host-freeze,
    /// host-freeze-after-hang, agent-kill, partition,
    /// switchover, loss-PCT, delay-MS-JITTER, starve-master, starve-backup, link-flap,
    /// mysqld-stop, repeated-crash, backup-agent-kill.
    #[arg(long, default_value = "mysqld-kill")]
    pub fault: String,
    /// Advert interval in milliseconds (multiple of 10; VRRPv3).
    #[arg(long, default_value_t = 10)]
    pub interval_ms: u64,
    /// Run the classic setup instead (keepalived + port check, async, no fencing).
    #[arg(long)]
    pub classic: bool,
    /// What the client writes: insert (one new row per commit) or bank (1 000 accounts
    /// updated by email, new accounts, upserts; every acknowledged increment counted).
    #[arg(long, default_value = "insert")]
    pub workload: String,
    /// Who writes the insert workload: builtin (the lab's client, 250 ms timeouts) or
    /// pymysql (PyMySQL with its default settings: no timeouts, as applications run it),
    /// mariadb-cli (one `mariadb` session fed one INSERT per line).
    #[arg(long, default_value = "builtin")]
    pub client: String,
    /// Seconds the fault lasts before the old master comes back.
    #[arg(long, default_value_t = 4)]
    pub down_s: u64,
    /// A three-member etcd cluster (db1, db2 and a third namespace, witness) holds the
    /// write key (`[witness]`): a partition cannot make both servers writable. Faults of
    /// its own: partition-master, witness-down, etcd-leader-change, etcd-quorum-loss.
    #[arg(long)]
    pub witness: bool,
    /// The witness over plain HTTP instead of TLS with client certificates.
    #[arg(long, requires = "witness")]
    pub witness_plain: bool,
    /// Once db1 is back and replicates again (checked), hand the write role back to it:
    /// `switchover` (xvrrpd switchover write on db2) or `preempt` (db1 preempts once its
    /// anti-flap hold, 5 s here, ends).
    #[arg(long)]
    pub then: Option<String>,
    /// With `--then preempt`: db1, back and replicating, is put behind by hand first
    /// (replication stopped, its applier held by a read lock). It must not preempt while
    /// behind, even past its anti-flap hold (15 s here); the lock released, it catches
    /// up and preempts.
    #[arg(long)]
    pub behind: bool,
    /// A second client whose ARP entry for the write VIP stays on db1 writes through it
    /// in a loop (with host-freeze: the host resumes network first, then mysqld, then
    /// the agent); the RESULT line counts what db1 acknowledged after db2 took over
    /// (`stale_acked`, writes a stale master took). Insert workload.
    #[arg(long)]
    pub stale_client: bool,
    /// The servers: mariadb (10.11, the host's) or mysql (9.7, Debian unstable's, in a
    /// debootstrap root built once under target/mysql-root/).
    #[arg(long, default_value = "mariadb")]
    pub flavor: String,
}

pub fn run(args: LabArgs) -> Result<()> {
    require_root("cargo xtask lab")?;
    if args.interval_ms < 10 || !args.interval_ms.is_multiple_of(10) || args.interval_ms > 40_950 {
        bail!("--interval-ms must be a multiple of 10 between 10 and 40950");
    }
    let fault = Fault::parse(&args.fault)?;
    let workload = Workload::parse(&args.workload)?;
    let client = Client::parse(&args.client)?;
    let give_back = args.then.as_deref().map(GiveBack::parse).transpose()?;
    let flavor = xvrrpd_tests::DbFlavor::parse(&args.flavor)?;
    if args.behind && give_back != Some(GiveBack::Preempt) {
        bail!("--behind puts db1 behind before it preempts back: use it with --then preempt");
    }
    if give_back.is_some() && args.classic {
        bail!("--then hands the role back with xvrrpd: not with --classic");
    }
    if args.stale_client && workload != Workload::Insert {
        bail!("--stale-client writes the insert workload only");
    }
    if client != Client::Builtin && workload != Workload::Insert {
        bail!("--client {} writes the insert workload only", client.name());
    }
    crate::setup::run()?;
    crate::ebpf::build()?;
    crate::test::build_agent()?;
    crate::catch_interrupts();
    let opts = LabOptions {
        setup: if args.classic {
            Setup::Classic
        } else {
            Setup::Xvrrpd
        },
        flavor,
        fault,
        workload,
        client,
        interval_ms: args.interval_ms,
        down: Duration::from_secs(args.down_s),
        witness: args.witness,
        witness_tls: !args.witness_plain,
        stale_client: args.stale_client,
        resume_network_first: args.stale_client,
        verbose: true,
        give_back,
        old_master_behind: args.behind,
        // A preemption back is the test: let it come soon after the old master is back
        // (with --behind: after db1 has been put behind and said so).
        anti_flap: if args.behind {
            Duration::from_secs(15)
        } else if give_back == Some(GiveBack::Preempt) {
            Duration::from_secs(5)
        } else {
            LabOptions::default().anti_flap
        },
        ..LabOptions::default()
    };
    println!(
        "== lab: {} dual-master, {} on db1/db2, VRRPv3 {} ms adverts, fault {}, workload {}, client {}",
        flavor.product(),
        if args.classic {
            "classic keepalived"
        } else {
            "xvrrpd"
        },
        args.interval_ms,
        fault.name(),
        workload.name(),
        client.name()
    );
    let report = dblab::run(&opts, &INTERRUPTED)?;
    print_report(&opts, &report);
    let name = format!("lab-{}-{}", fault.name(), unix_secs());
    let title = format!(
        "cargo xtask lab: {} on db1, {}, {} ms adverts",
        fault.name(),
        match opts.setup {
            Setup::Classic => "classic keepalived",
            Setup::Xvrrpd => "xvrrpd",
        },
        args.interval_ms
    );
    let path = xvrrpd_tests::picture::save(
        &crate::root().join("target/lab"),
        &name,
        &[xvrrpd_tests::picture::Panel::from_report(&title, &report)],
    )?;
    println!("timeline picture: {} (and .png beside it)", path.display());
    Ok(())
}

/// Seconds since the epoch: unique enough names for the pictures of successive runs.
pub fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn print_report(opts: &LabOptions, r: &LabReport) {
    println!("== timeline (ms from the fault)");
    for (ts, what) in &r.timeline {
        let ms = (*ts as f64 - r.fault_ns as f64) / 1e6;
        println!("{ms:>10.1}  {what}");
    }
    println!("== report");
    println!(
        "   writes: {} acknowledged, {} failed; longest write gap {:.1} ms; longest read gap {:.1} ms",
        r.acked, r.failed_writes, r.outage_ms, r.read_outage_ms
    );
    println!(
        "   survivor (db2) held every acknowledged row while db1 was away: {}",
        if r.acked_missing == 0 {
            "yes".to_string()
        } else {
            format!("NO, {} missing", r.acked_missing)
        }
    );
    println!(
        "   old master (db1) at the end: read_only = {}; both servers hold the same rows: {}",
        match r.old_master_read_only {
            Some(true) => "ON",
            Some(false) => "OFF",
            None => "unknown",
        },
        if r.converged { "yes" } else { "NO" }
    );
    if opts.setup == Setup::Xvrrpd {
        let fail_back = if r.failbacks.is_empty() {
            format!(
                "none: db1's write instance never became master again after the fault (anti-flap {} s)",
                opts.anti_flap.as_secs()
            )
        } else {
            r.failbacks
                .iter()
                .map(|(ms, why)| format!("at {ms:.1} ms ({why})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("   db1's write instance master again: {fail_back}");
        for f in &r.fences {
            println!(
                "   fence on {} at {:.1} ms: read_only = ON in {:.1} ms, {} connections killed, {} in a commit (in doubt)",
                f.node, f.at_ms, f.fence_ms, f.killed, f.in_doubt
            );
        }
    } else {
        println!("   classic setup: both servers always writable, nothing fenced");
    }
    println!(
        "   writes whose outcome the client did not know but that committed (in doubt): {}",
        r.in_doubt
    );
    println!(
        "   acknowledged {} missing after convergence: {}; rows differing between the servers: {}",
        if opts.workload == Workload::Bank {
            "increments"
        } else {
            "rows"
        },
        r.acked_increments_missing,
        r.rows_differing
    );
    println!(
        "   replication errors after rejoin: {}; both servers writable for {:.1} ms",
        r.replication_errors, r.dual_writable_ms
    );
    println!(
        "   executed GTIDs: db1 {}; db2 {}",
        r.gtid_states[0], r.gtid_states[1]
    );
    for (name, errant) in ["db1", "db2"].iter().zip(&r.divergent) {
        if !errant.is_empty() {
            println!(
                "   {name} DIVERGENT (out of the election until rebuilt): errant {}",
                errant.join(", ")
            );
        }
    }
    if let Some(b) = opts.give_back {
        println!(
            "   {} back to db1 once it replicated again: {}",
            b.name(),
            match r.given_back_ms {
                Some(ms) => format!("db1 writable with the VIP {ms:.0} ms after its recovery"),
                None => "never".into(),
            }
        );
    }
    println!("{}", r.result_line());
}
