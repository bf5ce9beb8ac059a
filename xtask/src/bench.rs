//! `cargo xtask bench ...`: which bench runs. Each lives in its own module and records
//! what it measured through [`crate::record`].
use anyhow::Result;

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
        } => crate::masterdown::run(kills, &intervals_ms),
        Bench::Failover(args) => crate::failover::run(args),
        Bench::MysqlKill(args) => crate::mysqlkill::run(args),
        Bench::Mysql(args) => crate::benchmysql::run(args),
        Bench::Clients(args) => crate::benchclients::run(args),
        Bench::Witness(args) => crate::benchwitness::run(args),
        Bench::Scale(args) => crate::scale::run(args),
        Bench::Load(args) => crate::load::run(args),
    }
}
