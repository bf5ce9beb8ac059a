//! `cargo xtask bench failover`: client-observed VIP outage, keepalived vs xvrrpd, same run.
//!
//! Each run builds a fresh segment: db1 (priority 150, master), db2 (100), a client that
//! pings the VIP every millisecond. The fault hits db1's agent; the outage is the longest
//! gap between two echo replies the client saw.
use std::{io::Read, process::Stdio, time::Duration};

use anyhow::{bail, Context, Result};
use xvrrpd_tests::{
    has_addr, ip_in, master_down_us, router_toml, skew_us, wait_until, Keepalived, KeepalivedConf,
    Netns, Proc, Router, Segment,
};

use crate::record;

const VIP: &str = "192.0.2.100";

#[derive(clap::Args)]
pub struct FailoverArgs {
    /// Repetitions per agent, interval and fault.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Advert intervals in milliseconds.
    #[arg(long, value_delimiter = ',', default_value = "1000,100,10")]
    pub intervals_ms: Vec<u64>,
    /// Faults: sigkill, sigterm, linkdown.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sigkill,sigterm,linkdown"
    )]
    pub faults: Vec<String>,
    /// Seconds of steady state over which agent CPU is measured at 10 ms adverts (0 = skip).
    #[arg(long, default_value_t = 10)]
    pub cpu_seconds: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Agent {
    Keepalived,
    Xvrrpd,
}

impl Agent {
    fn name(self) -> &'static str {
        match self {
            Self::Keepalived => "keepalived",
            Self::Xvrrpd => "xvrrpd",
        }
    }
}

/// A running agent of either kind.
enum Running {
    K(Keepalived),
    X(Router),
}

impl Running {
    fn start(agent: Agent, ns: &Netns, prio: u8, interval_ms: u64) -> Result<Self> {
        // VRRPv3 for every interval: one protocol across the table.
        let version = 3;
        Ok(match agent {
            Agent::Keepalived => Self::K(Keepalived::start(
                ns,
                "eth0",
                &KeepalivedConf {
                    version,
                    vrid: 41,
                    priority: prio,
                    advert_int: interval_ms as f64 / 1000.0,
                    vip: format!("{VIP}/24"),
                    state_master: prio > 100,
                    unicast_peers: vec![],
                    old_unicast_checksum: false,
                    script: None,
                },
            )?),
            Agent::Xvrrpd => Self::X(Router::start(
                ns,
                &router_toml(
                    "w",
                    41,
                    prio,
                    version,
                    &format!("{interval_ms}ms"),
                    &format!("{VIP}/24"),
                ),
            )?),
        })
    }

    fn proc(&self) -> &Proc {
        match self {
            Self::K(k) => &k.proc,
            Self::X(x) => &x.proc,
        }
    }
}

/// CPU seconds used so far by process `root` and all its descendants (every thread),
/// from `schedstat` (nanoseconds, unlike the 10 ms ticks of `stat`).
pub fn tree_cpu_seconds(root: i32) -> f64 {
    tree_thread_cpu_seconds(root).values().sum()
}

/// CPU seconds of every thread of `root` and its descendants, summed by thread name
/// (`comm`: `xvrrpd`, `xvrrpd-pacer`, `tokio-runtime-w`, ...).
pub fn tree_thread_cpu_seconds(root: i32) -> std::collections::BTreeMap<String, f64> {
    let ppid_of = |pid: i32| -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 2..];
        rest.split_whitespace().nth(1)?.parse().ok()
    };
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return by_name;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // Is `root` this process or one of its ancestors?
        let (mut cur, mut ours) = (pid, false);
        for _ in 0..16 {
            if cur == root {
                ours = true;
                break;
            }
            match ppid_of(cur) {
                Some(p) if p > 1 => cur = p,
                _ => break,
            }
        }
        if !ours {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                let ns = s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                let name = std::fs::read_to_string(t.path().join("comm"))
                    .map(|c| c.trim().to_string())
                    .unwrap_or_default();
                *by_name.entry(name).or_insert(0.0) += ns as f64 / 1e9;
            }
        }
    }
    by_name
}

/// Longest gap (ms) between consecutive reply timestamps in `ping -D` output.
pub fn longest_gap_ms(ping_output: &str) -> Option<f64> {
    let stamps: Vec<f64> = ping_output
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect();
    stamps
        .windows(2)
        .map(|w| (w[1] - w[0]) * 1000.0)
        .reduce(f64::max)
}

struct Outcome {
    outage_ms: f64,
    vip_left_on_dead: bool,
}

fn one_run(agent: Agent, interval_ms: u64, fault: &str) -> Result<Outcome> {
    let seg = Segment::new(3)?;
    let (db1, db2, client) = (&seg.nodes[0], &seg.nodes[1], &seg.nodes[2]);
    let mut a1 = Running::start(agent, &db1.ns, 150, interval_ms)?;
    let _a2 = Running::start(agent, &db2.ns, 100, interval_ms)?;
    let converge = Duration::from_millis(interval_ms * 5 + 5000);
    if !wait_until(converge, || {
        has_addr(&db1.ns, VIP) && !has_addr(&db2.ns, VIP)
    }) {
        bail!("{} pair did not converge with db1 as master", agent.name());
    }
    let mut ping = client.ns.command("ping");
    ping.args(["-n", "-D", "-i", "0.001", "-W", "1", VIP])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut ping = Proc::spawn(ping, "ping")?;
    std::thread::sleep(Duration::from_millis(300));
    match fault {
        "sigkill" => a1.proc().signal_group(libc::SIGKILL),
        "sigterm" => a1.proc().signal(libc::SIGTERM),
        "linkdown" => {
            ip_in(&db1.ns.name, &["link", "set", "eth0", "down"])?;
        }
        f => bail!("unknown fault {f:?}: use sigkill, sigterm or linkdown"),
    }
    let moved = wait_until(Duration::from_millis(interval_ms * 6 + 3000), || {
        has_addr(&db2.ns, VIP)
    });
    // Let replies resume for a while so the gap closes inside the capture.
    std::thread::sleep(Duration::from_millis(500));
    ping.signal(libc::SIGINT);
    ping.wait_exit(Duration::from_secs(5));
    let mut out = String::new();
    if let Some(mut s) = ping.child.stdout.take() {
        s.read_to_string(&mut out)?;
    }
    if !moved {
        bail!("{} fault {fault}: the VIP never moved to db2", agent.name());
    }
    let outage_ms = longest_gap_ms(&out).context("no echo replies captured")?;
    // After a crash, does the dead agent's node still hold the VIP?
    let vip_left_on_dead = has_addr(&db1.ns, VIP);
    if let Running::K(k) = &mut a1 {
        k.proc.wait_exit(Duration::from_millis(1));
    }
    Ok(Outcome {
        outage_ms,
        vip_left_on_dead,
    })
}

fn cpu_at_10ms(agent: Agent, seconds: u64) -> Result<f64> {
    let seg = Segment::new(2)?;
    let a1 = Running::start(agent, &seg.nodes[0].ns, 150, 10)?;
    let _a2 = Running::start(agent, &seg.nodes[1].ns, 100, 10)?;
    std::thread::sleep(Duration::from_secs(2));
    let pid = a1.proc().pid();
    let t0 = tree_cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(seconds));
    Ok((tree_cpu_seconds(pid) - t0) / seconds as f64 * 100.0)
}

pub fn run(args: FailoverArgs) -> Result<()> {
    let command = format!(
        "cargo xtask bench failover --reps {} --intervals-ms {} --faults {} --cpu-seconds {}",
        args.reps,
        args.intervals_ms
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
        args.faults.join(","),
        args.cpu_seconds
    );
    let agents = [Agent::Keepalived, Agent::Xvrrpd];
    let mut csv = record::Raw::new("agent,advert_ms,fault,run,outage_ms,limit_ms,vip_left_on_dead");
    let mut table = record::Table::new("| advert | fault | RFC limit | keepalived min/med/max | xvrrpd min/med/max | xvrrpd/keepalived (median) | VIP left on dead node (k / x) |");
    for &iv in &args.intervals_ms {
        for fault in &args.faults {
            // Backup priority 100: Master_Down_Interval, or Skew after a priority-0 advert.
            let limit_ms = if fault == "sigterm" {
                skew_us(iv / 10, 100) / 1000.0
            } else {
                master_down_us(iv / 10, 100) / 1000.0
            };
            let mut med = Vec::new();
            let mut cells = Vec::new();
            let mut left = Vec::new();
            for agent in agents {
                let mut outages = Vec::new();
                let mut left_n = 0;
                for run in 0..args.reps {
                    let o = one_run(agent, iv, fault)
                        .with_context(|| format!("{} {iv} ms {fault} run {run}", agent.name()))?;
                    eprintln!("{} {iv} ms {fault} run {run}: outage {:.1} ms (limit {limit_ms:.1}), VIP left on dead node: {}", agent.name(), o.outage_ms, o.vip_left_on_dead);
                    csv.row(format!(
                        "{},{iv},{fault},{run},{:.2},{limit_ms:.2},{}",
                        agent.name(),
                        o.outage_ms,
                        o.vip_left_on_dead
                    ))?;
                    left_n += usize::from(o.vip_left_on_dead);
                    outages.push(o.outage_ms);
                }
                let (lo, mid, hi) = record::stats(&mut outages);
                med.push(mid);
                cells.push(format!("{lo:.1} / {mid:.1} / {hi:.1} ms"));
                left.push(format!("{left_n}/{}", args.reps));
            }
            table.row(format!(
                "| {iv} ms | {fault} | {limit_ms:.1} ms | {} | {} | {:.2} | {} / {} |",
                cells[0],
                cells[1],
                med[1] / med[0],
                left[0],
                left[1]
            ))?;
        }
    }
    let mut cpu = String::new();
    if args.cpu_seconds > 0 {
        let k = cpu_at_10ms(Agent::Keepalived, args.cpu_seconds)?;
        let x = cpu_at_10ms(Agent::Xvrrpd, args.cpu_seconds)?;
        cpu = format!(
            "Steady-state CPU of the master's agent at 10 ms adverts over {} s: keepalived {k:.2} % of a core, xvrrpd {x:.2} % (ratio {:.2}).\n\n",
            args.cpu_seconds,
            if k > 0.0 { x / k } else { f64::NAN }
        );
    }
    record::record(record::Entry {
        title: "client-observed failover outage, keepalived vs xvrrpd",
        command: &command,
        parts: &[record::Part::table(&table)],
        notes: &format!(
            "{cpu}Outage = longest gap between echo replies seen by a client pinging the VIP every 1 ms \
             across the bridge. Pairs of the same agent (db1 priority 150 master, db2 100), VRRPv3, \
             fresh namespaces per run. RFC limit = Master_Down_Interval of the backup (Skew for a \
             clean stop)."
        ),
        raw: Some(("failover", &csv)),
    })
}

#[cfg(test)]
mod tests {
    use super::longest_gap_ms;

    #[test]
    fn gap_from_ping_timestamps() {
        let out = "PING 192.0.2.100 (192.0.2.100) 56(84) bytes of data.\n\
                   [100.000] 64 bytes from 192.0.2.100: icmp_seq=1 ttl=64 time=0.1 ms\n\
                   [100.001] 64 bytes from 192.0.2.100: icmp_seq=2 ttl=64 time=0.1 ms\n\
                   [100.361] 64 bytes from 192.0.2.100: icmp_seq=3 ttl=64 time=0.1 ms\n\
                   [100.362] 64 bytes from 192.0.2.100: icmp_seq=4 ttl=64 time=0.1 ms\n";
        let g = longest_gap_ms(out).unwrap();
        assert!((g - 360.0).abs() < 0.01, "{g}");
        assert_eq!(longest_gap_ms("no replies"), None);
    }
}
