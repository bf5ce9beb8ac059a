//! `cargo xtask bench ...`: measurements, appended to BENCHMARKS.md with the command.
use std::{fmt::Write as _, io::Write as _, process::Command};

use anyhow::{Context, Result};
use xvrrpd_tests::{kill_and_measure, KeepalivedConf, Observer, Segment};

use crate::{require_root, root};

#[derive(clap::Subcommand)]
pub enum Bench {
    /// Kernel master-down precision: SIGKILL a keepalived master repeatedly and compare the
    /// datapath's `since_last_us` with the RFC Master_Down_Interval.
    MasterDown {
        /// Kills per advert interval.
        #[arg(long, default_value_t = 10)]
        kills: usize,
        /// Advert intervals in milliseconds (multiples of 10).
        #[arg(long, value_delimiter = ',', default_value = "100,10")]
        intervals_ms: Vec<u64>,
    },
    /// Client-observed VIP outage for SIGKILL, SIGTERM and link-down of the master, for
    /// keepalived and xvrrpd pairs in the same run; plus steady-state CPU at 10 ms.
    Failover(crate::failover::FailoverArgs),
    /// mysqld SIGKILL on the write master to VIP on the peer: xvrrpd's MySQL tracker vs
    /// keepalived with a port-check vrrp_script, same run.
    MysqlKill(crate::mysqlkill::MysqlKillArgs),
    /// The MySQL lab scenario (write gap, lost acknowledged rows, replication errors,
    /// dual-writable time) for xvrrpd and the classic keepalived setup, same run.
    Mysql(crate::benchmysql::MysqlArgs),
    /// A client with default settings (PyMySQL) after the write master's host dies: time
    /// to its next acknowledged write, classic keepalived and xvrrpd with and without the
    /// reset at takeover, same run.
    Clients(crate::benchclients::ClientsArgs),
    /// The write lease through an etcd witness: write outage of mysqld-kill, host-crash
    /// and partition, and the time both servers were writable, with and without it.
    Witness(crate::benchwitness::WitnessArgs),
    /// 200 instances at 100 ms + 50 at 10 ms on one interface: every election checked,
    /// CPU of xvrrpd beside keepalived with the same configuration.
    Scale(crate::scale::ScaleArgs),
    /// False takeovers and the master's advert gaps under host load (idle, CPU, real-time
    /// bursts, disk + memory pressure), keepalived and xvrrpd pairs in the same run.
    Load(crate::load::LoadArgs),
}

pub fn run(b: Bench) -> Result<()> {
    require_root("cargo xtask bench")?;
    crate::ebpf::build()?;
    // Measure what operators run: the optimised binary.
    crate::run_cmd(
        std::process::Command::new("cargo")
            .current_dir(root())
            .env_remove("RUSTUP_TOOLCHAIN")
            .args([
                "build",
                "--quiet",
                "--release",
                "--package",
                "xvrrpd",
                "--bin",
                "xvrrpd",
            ]),
    )?;
    std::env::set_var("XVRRPD_BIN", root().join("target/release/xvrrpd"));
    match b {
        Bench::MasterDown {
            kills,
            intervals_ms,
        } => master_down(kills, &intervals_ms),
        Bench::Failover(args) => crate::failover::run(args),
        Bench::MysqlKill(args) => crate::mysqlkill::run(args),
        Bench::Mysql(args) => crate::benchmysql::run(args),
        Bench::Clients(args) => crate::benchclients::run(args),
        Bench::Witness(args) => crate::benchwitness::run(args),
        Bench::Scale(args) => crate::scale::run(args),
        Bench::Load(args) => crate::load::run(args),
    }
}

pub fn stats(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

fn master_down(kills: usize, intervals_ms: &[u64]) -> Result<()> {
    let command = format!(
        "cargo xtask bench master-down --kills {kills} --intervals-ms {}",
        intervals_ms
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let seg = Segment::new(2)?;
    let mut obs = Observer::start(&seg.nodes[1].ns, "eth0", &[])?;
    let csv_dir = root().join("target/bench");
    std::fs::create_dir_all(&csv_dir)?;
    let mut csv = String::from("advert_ms,run,missed,master_down_us,rfc_us,delta_us\n");
    let mut table = String::from(
        "| advert interval | kills | RFC Master_Down_Interval | delta min | delta median | delta max |\n|---|---|---|---|---|---|\n",
    );
    for (n, &ms) in intervals_ms.iter().enumerate() {
        let mut deltas = Vec::new();
        let mut rfc = 0.0;
        for run in 0..kills {
            let conf = KeepalivedConf {
                version: 3,
                vrid: 40 + n as u8,
                priority: 150,
                advert_int: ms as f64 / 1000.0,
                vip: format!("192.0.2.{}/24", 100 + n),
                state_master: true,
                unicast_peers: vec![],
                old_unicast_checksum: false,
                script: None,
            };
            let r = kill_and_measure(&seg, &mut obs, &conf, 100)
                .with_context(|| format!("{ms} ms, run {run}"))?;
            let delta = r.master_down_us as f64 - r.theoretical_us;
            rfc = r.theoretical_us;
            eprintln!(
                "{ms} ms run {run}: missed {:?}, master_down {} us, delta {delta:+.0} us",
                r.missed_counts, r.master_down_us
            );
            writeln!(
                csv,
                "{ms},{run},{},{},{:.0},{delta:.0}",
                r.missed_counts.len(),
                r.master_down_us,
                r.theoretical_us
            )?;
            deltas.push(delta);
        }
        let (lo, mid, hi) = stats(&mut deltas);
        writeln!(
            table,
            "| {ms} ms | {kills} | {rfc:.0} µs | {lo:+.0} µs | {mid:+.0} µs | {hi:+.0} µs |"
        )?;
    }
    drop(obs);
    std::fs::write(csv_dir.join("master_down.csv"), &csv)?;
    println!("{table}");
    let entry = format!(
        "\n## {} — kernel master-down precision\n\nCommand: `{command}`\n\n{table}\n\
         delta = `since_last_us` reported by the XDP timer's master_down event minus the RFC \
         Master_Down_Interval (3 × interval + Skew, local priority 100). keepalived 2.2.7 \
         (VRRPv3, priority 150) is SIGKILLed in one namespace; `xvrrpd observe` watches from \
         another across a bridge. Raw data: `target/bench/master_down.csv`.\n",
        today()?
    );
    append_benchmarks(&entry)
}

/// `YYYY-MM-DD HH:MM UTC` now.
pub fn today() -> Result<String> {
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()?;
    Ok(String::from_utf8_lossy(&date.stdout).trim().to_string())
}

/// Appends a section to BENCHMARKS.md.
pub fn append_benchmarks(entry: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root().join("BENCHMARKS.md"))?;
    f.write_all(entry.as_bytes())?;
    eprintln!("xtask: appended to BENCHMARKS.md");
    Ok(())
}
