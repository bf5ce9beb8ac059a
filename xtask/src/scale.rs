//! `cargo xtask bench scale`: 200 instances at 100 ms and 50 at 10 ms on one interface,
//! two nodes, xvrrpd and then keepalived with the same configuration: every election
//! checked (each VIP on exactly the node that should hold it, before and after the
//! preferred node stops), and the CPU each agent uses, measured in the same run.
use std::{fmt::Write as _, time::Duration};

use anyhow::{bail, Result};
use xvrrpd_tests::{addrs, sh, Keepalived, Netns, Router, Segment};

use crate::{failover::tree_thread_cpu_seconds, record};

#[derive(clap::Args)]
pub struct ScaleArgs {
    /// Instances at 100 ms adverts (one interface, IPv4 VIPs).
    #[arg(long, default_value_t = 200)]
    pub slow: u8,
    /// Instances at 10 ms adverts (the same interface).
    #[arg(long, default_value_t = 50)]
    pub fast: u8,
    /// The second size: this many instances at 100 ms, 250 per interface, IPv6 VIPs (the
    /// lab's IPv4 ranges hold ~500 addresses); 0 skips it.
    #[arg(long, default_value_t = 1000)]
    pub large: u16,
    /// Seconds of steady state over which CPU is measured.
    #[arg(long, default_value_t = 30)]
    pub cpu_seconds: u64,
}

/// VRIDs per interface in the large size (one family: at most 255).
const PER_INTERFACE: u16 = 250;

/// One instance. Node 0 prefers the even VRIDs, node 1 the odd.
#[derive(Clone, Debug)]
struct Inst {
    iface: String,
    vrid: u8,
    interval_ms: u64,
    vip: String,
    prefix: u8,
}

/// The first size: `slow` at 100 ms and `fast` at 10 ms on eth0, IPv4.
fn small(args: &ScaleArgs) -> Vec<Inst> {
    let mut v = Vec::new();
    for i in 0..args.slow {
        v.push(Inst {
            iface: "eth0".into(),
            vrid: i + 1,
            interval_ms: 100,
            vip: format!("198.51.100.{}", i + 1),
            prefix: 24,
        });
    }
    for i in 0..args.fast {
        v.push(Inst {
            iface: "eth0".into(),
            vrid: args.slow + i + 1,
            interval_ms: 10,
            vip: format!("192.0.2.{}", 100 + i),
            prefix: 24,
        });
    }
    v
}

/// The second size: `n` at 100 ms, [`PER_INTERFACE`] per interface eth0, eth1..., IPv6.
fn large(n: u16) -> Vec<Inst> {
    (0..n)
        .map(|i| {
            let (k, vrid) = (i / PER_INTERFACE, (i % PER_INTERFACE + 1) as u8);
            Inst {
                iface: format!("eth{k}"),
                vrid,
                interval_ms: 100,
                vip: format!("2001:db8:{:x}::{:x}", k + 1, vrid),
                prefix: 64,
            }
        })
        .collect()
}

fn interfaces(inst: &[Inst]) -> usize {
    inst.iter()
        .map(|i| {
            i.iface
                .trim_start_matches("eth")
                .parse::<usize>()
                .unwrap_or(0)
                + 1
        })
        .max()
        .unwrap_or(1)
}

fn prio(node: usize, vrid: u8) -> u8 {
    if (vrid as usize % 2) == node {
        150
    } else {
        100
    }
}

fn xvrrpd_conf(node: usize, inst: &[Inst]) -> String {
    let mut s = String::from("[global]\nmetrics_listen = \"\"\n\n");
    for i in inst {
        let _ = write!(
            s,
            "[[instance]]\nname = \"vi{}-{}\"\ninterface = \"{}\"\nvrid = {}\npriority = {}\n\
             version = 3\nadvert_interval = \"{}ms\"\nvirtual_addresses = [\"{}/{}\"]\n\n",
            i.iface,
            i.vrid,
            i.iface,
            i.vrid,
            prio(node, i.vrid),
            i.interval_ms,
            i.vip,
            i.prefix
        );
    }
    s
}

fn keepalived_conf(node: usize, inst: &[Inst]) -> String {
    xvrrpd_tests::KaFile {
        router_id: format!("n{node}"),
        version: 3,
        scripts: Vec::new(),
        instances: inst
            .iter()
            .map(|i| xvrrpd_tests::KaInstance {
                name: format!("VI_{}_{}", i.iface, i.vrid),
                state_master: false,
                interface: i.iface.clone(),
                vrid: i.vrid,
                priority: prio(node, i.vrid),
                advert_int: i.interval_ms as f64 / 1000.0,
                unicast_peers: Vec::new(),
                old_unicast_checksum: false,
                track_scripts: Vec::new(),
                vips: vec![format!("{}/{}", i.vip, i.prefix)],
            })
            .collect(),
    }
    .render()
}

/// Interfaces eth1.. on each node, each on its own bridge (VRIDs are per link).
fn add_links(seg: &Segment, count: usize) -> Result<()> {
    for k in 1..count {
        let br = format!("br{k}");
        let b = &seg.bridge.name;
        sh(&["ip", "-n", b, "link", "add", &br, "type", "bridge"])?;
        sh(&[
            "ip",
            "-n",
            b,
            "link",
            "set",
            &br,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        sh(&["ip", "-n", b, "link", "set", &br, "up"])?;
        for node in &seg.nodes {
            let outer = xvrrpd_tests::unique("xvq");
            let inner = format!("eth{k}");
            sh(&[
                "ip", "-n", b, "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            sh(&["ip", "-n", b, "link", "set", &inner, "netns", &node.ns.name])?;
            sh(&["ip", "-n", b, "link", "set", &outer, "master", &br, "up"])?;
            sh(&["ip", "-n", &node.ns.name, "link", "set", &inner, "up"])?;
        }
    }
    Ok(())
}

/// VIPs on the wrong node, or on both, or on none; `only` = the single node left. One
/// `ip` run per node: a pass takes milliseconds, so the times below are the agents'.
fn misplaced(seg: &Segment, inst: &[Inst], only: Option<usize>) -> Vec<String> {
    let held: Vec<_> = seg.nodes.iter().map(|n| addrs(&n.ns)).collect();
    let mut bad = Vec::new();
    for i in inst {
        let want = only.unwrap_or(i.vrid as usize % 2);
        let on: Vec<usize> = (0..2).filter(|&n| held[n].contains(&i.vip)).collect();
        if on != [want] {
            bad.push(format!(
                "{} VRID {} ({}) on {on:?}, expected [{want}]",
                i.iface, i.vrid, i.vip
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
    /// SIGTERM, without waiting: each agent resigns (priority 0) and releases its VIPs.
    fn terminate(&self) {
        match self {
            Self::X(r) => r.proc.signal(libc::SIGTERM),
            Self::K(k) => k.proc.signal(libc::SIGTERM),
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

/// Seconds from `since` until every VIP is where it should be (or `limit` passed), and
/// how many are still misplaced then.
fn wait_placed(
    seg: &Segment,
    inst: &[Inst],
    only: Option<usize>,
    since: std::time::Instant,
    limit: Duration,
) -> (f64, usize) {
    loop {
        let bad = misplaced(seg, inst, only);
        if bad.is_empty() || since.elapsed() > limit {
            if !bad.is_empty() {
                eprintln!("   still misplaced: {} (first: {})", bad.len(), bad[0]);
            }
            return (since.elapsed().as_secs_f64(), bad.len());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn measure(keepalived: bool, cpu_seconds: u64, inst: &[Inst]) -> Result<Outcome> {
    let seg = Segment::new(2)?;
    add_links(&seg, interfaces(inst))?;
    let confs: Vec<String> = (0..2)
        .map(|n| {
            if keepalived {
                keepalived_conf(n, inst)
            } else {
                xvrrpd_conf(n, inst)
            }
        })
        .collect();
    // Converged = from the first agent's start until every VIP is placed: agent start-up
    // (datapath load, instances) counts, as it does for an operator.
    let t0 = std::time::Instant::now();
    let mut agents = if keepalived {
        let mut v = Vec::new();
        for (node, conf) in confs.iter().enumerate() {
            v.push(Agent::K(Keepalived::start_text(&seg.nodes[node].ns, conf)?));
        }
        v
    } else {
        let nodes: Vec<(&Netns, &str)> = (0..2)
            .map(|n| (&seg.nodes[n].ns, confs[n].as_str()))
            .collect();
        Router::start_all(&nodes)?
            .into_iter()
            .map(Agent::X)
            .collect()
    };
    let (converge_s, misplaced) = wait_placed(&seg, inst, None, t0, Duration::from_secs(60));
    // Steady state: CPU of each node's agent (every process and thread).
    std::thread::sleep(Duration::from_secs(2));
    let t0 = [0, 1].map(|i| tree_thread_cpu_seconds(agents[i].pid()));
    std::thread::sleep(Duration::from_secs(cpu_seconds));
    let threads = [0, 1].map(|i| {
        let mut now = tree_thread_cpu_seconds(agents[i].pid());
        for (name, v) in now.iter_mut() {
            *v = (*v - t0[i].get(name).copied().unwrap_or(0.0)) / cpu_seconds as f64 * 100.0;
        }
        now
    });
    let cpu = [0, 1].map(|i| threads[i].values().sum());
    // Node 0 stops cleanly: node 1 must take every VIP, timed from the signal.
    let stopped = std::time::Instant::now();
    agents[0].terminate();
    let (after_stop_s, misplaced_after_stop) =
        wait_placed(&seg, inst, Some(1), stopped, Duration::from_secs(30));
    agents[0].stop();
    Ok(Outcome {
        cpu,
        threads,
        converge_s,
        misplaced,
        after_stop_s,
        misplaced_after_stop,
    })
}

/// One size measured, xvrrpd then keepalived: its heading, its table, what it says, and
/// how many VIPs xvrrpd misplaced.
struct Size {
    title: String,
    table: record::Table,
    said: String,
    bad: usize,
}

fn size(title: String, cpu_seconds: u64, inst: &[Inst]) -> Result<Size> {
    println!("== scale: {title}");
    let x = measure(false, cpu_seconds, inst)?;
    let k = measure(true, cpu_seconds, inst)?;
    let mut table = record::Table::new(
        "| agent | converged in | misplaced VIPs | CPU node 0 (% of a core) | CPU node 1 | all VIPs on node 1 after node 0 stops | misplaced after |",
    );
    for (name, o) in [("keepalived 2.2.7", &k), ("xvrrpd", &x)] {
        table.row(format!(
            "| {name} | {:.2} s | {} | {:.2} | {:.2} | {:.2} s | {} |",
            o.converge_s, o.misplaced, o.cpu[0], o.cpu[1], o.after_stop_s, o.misplaced_after_stop
        ))?;
    }
    let mut said = String::new();
    for (name, o) in [("keepalived", &k), ("xvrrpd", &x)] {
        let per = |t: &std::collections::BTreeMap<String, f64>| {
            t.iter()
                .filter(|(_, v)| **v >= 0.01)
                .map(|(n, v)| format!("{n} {v:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            said,
            "{name} per thread (% of a core): node 0: {}; node 1: {}.\n",
            per(&o.threads[0]),
            per(&o.threads[1])
        );
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let _ = writeln!(
        said,
        "xvrrpd / keepalived: CPU node 0 {:.2}, node 1 {:.2}; convergence {:.2}; switch-over {:.2}.",
        ratio(x.cpu[0], k.cpu[0]),
        ratio(x.cpu[1], k.cpu[1]),
        ratio(x.converge_s, k.converge_s),
        ratio(x.after_stop_s, k.after_stop_s)
    );
    println!("{}\n{said}", table.markdown());
    Ok(Size {
        title,
        table,
        said,
        bad: x.misplaced + x.misplaced_after_stop,
    })
}

pub fn run(args: ScaleArgs) -> Result<()> {
    if args.slow as usize + args.fast as usize > 255 {
        bail!("--slow + --fast: at most 255 VRIDs on one interface");
    }
    let command = format!(
        "cargo xtask bench scale --slow {} --fast {} --large {} --cpu-seconds {}",
        args.slow, args.fast, args.large, args.cpu_seconds
    );
    let mut sizes = vec![size(
        format!(
            "{} instances at 100 ms + {} at 10 ms on one interface (IPv4)",
            args.slow, args.fast
        ),
        args.cpu_seconds,
        &small(&args),
    )?];
    if args.large > 0 {
        let inst = large(args.large);
        sizes.push(size(
            format!(
                "{} instances at 100 ms on {} interfaces (IPv6)",
                args.large,
                interfaces(&inst)
            ),
            args.cpu_seconds,
            &inst,
        )?);
    }
    let parts: Vec<record::Part> = sizes
        .iter()
        .map(|s| record::Part {
            heading: &s.title,
            table: &s.table,
            after: &s.said,
        })
        .collect();
    record::record(record::Entry {
        title: "scale: two sizes, xvrrpd beside keepalived",
        command: &command,
        parts: &parts,
        notes: &format!(
            "Two nodes, one bridge per interface; node 0 prefers the even VRIDs, node 1 the odd, \
             so both send adverts. Each VIP is checked to be on exactly the node that should hold \
             it (one `ip addr` per node and pass, every 20 ms). Converged: from the first agent's \
             start until every VIP is placed (start-up included). Switch-over: from node 0's \
             SIGTERM until node 1 holds every VIP. CPU over {} s of steady state (every process \
             and thread of the agent, from schedstat), debug logging off, release build.",
            args.cpu_seconds
        ),
        raw: None,
    })?;
    if sizes.iter().any(|s| s.bad > 0) {
        bail!("xvrrpd misplaced VIPs at scale");
    }
    Ok(())
}
