//! `cargo xtask bench scale`: 200 instances at 100 ms and 50 at 10 ms on one interface,
//! two nodes, xvrrpd and then keepalived with the same configuration: every election
//! checked (each VIP on exactly the node that should hold it, before and after the
//! preferred node stops), and the CPU each agent uses, measured in the same run.
use std::{fmt::Write as _, time::Duration};

use anyhow::{bail, Result};
use xvrrpd_tests::{has_addr, Keepalived, Netns, Router, Segment};

use crate::failover::tree_thread_cpu_seconds;

#[derive(clap::Args)]
pub struct ScaleArgs {
    /// Instances at 100 ms adverts.
    #[arg(long, default_value_t = 200)]
    pub slow: u8,
    /// Instances at 10 ms adverts.
    #[arg(long, default_value_t = 50)]
    pub fast: u8,
    /// Seconds of steady state over which CPU is measured.
    #[arg(long, default_value_t = 30)]
    pub cpu_seconds: u64,
}

/// One instance: VRID, interval (ms), VIP. Node 0 prefers the even VRIDs, node 1 the odd.
fn instances(args: &ScaleArgs) -> Vec<(u8, u64, String)> {
    let mut v = Vec::new();
    for i in 0..args.slow {
        v.push((i + 1, 100, format!("198.51.100.{}", i + 1)));
    }
    for i in 0..args.fast {
        v.push((args.slow + i + 1, 10, format!("192.0.2.{}", 100 + i)));
    }
    v
}

fn prio(node: usize, vrid: u8) -> u8 {
    if (vrid as usize % 2) == node {
        150
    } else {
        100
    }
}

fn xvrrpd_conf(node: usize, inst: &[(u8, u64, String)]) -> String {
    let mut s = String::from("[global]\nmetrics_listen = \"\"\n\n");
    for (vrid, iv, vip) in inst {
        let _ = write!(
            s,
            "[[instance]]\nname = \"vi{vrid}\"\ninterface = \"eth0\"\nvrid = {vrid}\npriority = {}\n\
             version = 3\nadvert_interval = \"{iv}ms\"\nvirtual_addresses = [\"{vip}/24\"]\n\n",
            prio(node, *vrid)
        );
    }
    s
}

fn keepalived_conf(node: usize, inst: &[(u8, u64, String)]) -> String {
    let mut s = format!(
        "global_defs {{\n  router_id n{node}\n  vrrp_version 3\n  max_auto_priority -1\n}}\n"
    );
    for (vrid, iv, vip) in inst {
        let _ = write!(
            s,
            "vrrp_instance VI_{vrid} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {vrid}\n  \
             priority {}\n  advert_int {}\n  virtual_ipaddress {{\n    {vip}/24\n  }}\n}}\n",
            prio(node, *vrid),
            *iv as f64 / 1000.0
        );
    }
    s
}

/// VIPs on the wrong node, or on both, or on none; `only` = the single node left.
fn misplaced(seg: &Segment, inst: &[(u8, u64, String)], only: Option<usize>) -> Vec<String> {
    let ns: Vec<&Netns> = seg.nodes.iter().map(|n| &n.ns).collect();
    let mut bad = Vec::new();
    for (vrid, _, vip) in inst {
        let want = only.unwrap_or(*vrid as usize % 2);
        let held: Vec<usize> = (0..2).filter(|&i| has_addr(ns[i], vip)).collect();
        if held != [want] {
            bad.push(format!(
                "VRID {vrid} ({vip}) on {held:?}, expected [{want}]"
            ));
        }
    }
    bad
}

enum Agent {
    X(Router),
    K(Keepalived),
}

impl Agent {
    fn pid(&self) -> i32 {
        match self {
            Self::X(r) => r.proc.pid(),
            Self::K(k) => k.proc.pid(),
        }
    }
    fn stop(&mut self) {
        match self {
            Self::X(r) => {
                r.stop();
            }
            Self::K(k) => {
                k.stop();
            }
        }
    }
}

struct Outcome {
    cpu: [f64; 2],
    /// Per node, % of a core by thread name.
    threads: [std::collections::BTreeMap<String, f64>; 2],
    converge_s: f64,
    misplaced: usize,
    after_stop_s: f64,
    misplaced_after_stop: usize,
}

fn wait_placed(
    seg: &Segment,
    inst: &[(u8, u64, String)],
    only: Option<usize>,
    limit: Duration,
) -> (f64, usize) {
    let t = std::time::Instant::now();
    loop {
        let bad = misplaced(seg, inst, only);
        if bad.is_empty() || t.elapsed() > limit {
            if !bad.is_empty() {
                eprintln!("   still misplaced: {} (first: {})", bad.len(), bad[0]);
            }
            return (t.elapsed().as_secs_f64(), bad.len());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn measure(keepalived: bool, args: &ScaleArgs, inst: &[(u8, u64, String)]) -> Result<Outcome> {
    let seg = Segment::new(2)?;
    let mut agents = Vec::new();
    for node in 0..2 {
        let ns = &seg.nodes[node].ns;
        agents.push(if keepalived {
            Agent::K(Keepalived::start_text(ns, &keepalived_conf(node, inst))?)
        } else {
            Agent::X(Router::start(ns, &xvrrpd_conf(node, inst))?)
        });
    }
    let (converge_s, misplaced) = wait_placed(&seg, inst, None, Duration::from_secs(60));
    // Steady state: CPU of each node's agent (every process and thread).
    std::thread::sleep(Duration::from_secs(2));
    let t0 = [0, 1].map(|i| tree_thread_cpu_seconds(agents[i].pid()));
    std::thread::sleep(Duration::from_secs(args.cpu_seconds));
    let threads = [0, 1].map(|i| {
        let mut now = tree_thread_cpu_seconds(agents[i].pid());
        for (name, v) in now.iter_mut() {
            *v = (*v - t0[i].get(name).copied().unwrap_or(0.0)) / args.cpu_seconds as f64 * 100.0;
        }
        now
    });
    let cpu = [0, 1].map(|i| threads[i].values().sum());
    // Node 0 stops cleanly: node 1 must take every VIP.
    agents[0].stop();
    let (after_stop_s, misplaced_after_stop) =
        wait_placed(&seg, inst, Some(1), Duration::from_secs(30));
    Ok(Outcome {
        cpu,
        threads,
        converge_s,
        misplaced,
        after_stop_s,
        misplaced_after_stop,
    })
}

pub fn run(args: ScaleArgs) -> Result<()> {
    if args.slow as usize + args.fast as usize > 255 {
        bail!("at most 255 VRIDs on one interface");
    }
    let inst = instances(&args);
    let command = format!(
        "cargo xtask bench scale --slow {} --fast {} --cpu-seconds {}",
        args.slow, args.fast, args.cpu_seconds
    );
    println!(
        "== scale: {} instances at 100 ms + {} at 10 ms, two nodes",
        args.slow, args.fast
    );
    let x = measure(false, &args, &inst)?;
    let k = measure(true, &args, &inst)?;
    let mut table = String::from(
        "| agent | converged in | misplaced VIPs | CPU node 0 (% of a core) | CPU node 1 | all VIPs on node 1 after node 0 stops | misplaced after |\n|---|---|---|---|---|---|---|\n",
    );
    for (name, o) in [("keepalived 2.2.7", &k), ("xvrrpd", &x)] {
        let _ = writeln!(
            table,
            "| {name} | {:.1} s | {} | {:.2} | {:.2} | {:.1} s | {} |",
            o.converge_s, o.misplaced, o.cpu[0], o.cpu[1], o.after_stop_s, o.misplaced_after_stop
        );
    }
    for (name, o) in [("keepalived", &k), ("xvrrpd", &x)] {
        let per = |t: &std::collections::BTreeMap<String, f64>| {
            t.iter()
                .filter(|(_, v)| **v >= 0.01)
                .map(|(n, v)| format!("{n} {v:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            table,
            "\n{name} per thread (% of a core): node 0: {}; node 1: {}.",
            per(&o.threads[0]),
            per(&o.threads[1])
        );
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let _ = writeln!(
        table,
        "\nxvrrpd / keepalived CPU: node 0 {:.2}, node 1 {:.2}.",
        ratio(x.cpu[0], k.cpu[0]),
        ratio(x.cpu[1], k.cpu[1])
    );
    println!("{table}");
    crate::bench::append_benchmarks(&format!(
        "\n## {} — scale: {} instances at 100 ms + {} at 10 ms on one interface\n\nCommand: `{command}`\n\n{table}\n\
         Two nodes on one bridge; node 0 prefers the even VRIDs, node 1 the odd, so both \
         send adverts. Each VIP is checked to be on exactly the node that should hold it. \
         CPU over {} s of steady state (every process and thread of the agent, from schedstat), \
         debug logging off, release build.\n",
        crate::bench::today()?,
        args.slow,
        args.fast,
        args.cpu_seconds
    ))?;
    if x.misplaced + x.misplaced_after_stop > 0 {
        bail!("xvrrpd misplaced VIPs at scale");
    }
    Ok(())
}
