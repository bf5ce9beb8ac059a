//! `cargo xtask bench load`: does a loaded host delay a master's adverts into a false
//! takeover? A keepalived pair and an xvrrpd pair (VRRPv3, 10 ms adverts, priority 150 /
//! 100) run side by side, each on its own segment, under the same load on the host. An
//! observer on a third node of each segment records every advert with its kernel
//! timestamp (XDP), so a starved observer does not blur the figures.
//!
//! - false takeovers: how many times the backup started advertising (the master never
//!   failed, so every one is false);
//! - the master's advert gap p50 / p99 / max, over the window;
//! - CPU used by the master's agent over the window.
use std::{
    process::{Child, Command},
    time::Duration,
};

use anyhow::{bail, Context, Result};

use xvrrpd_tests::{
    has_addr, router_toml, wait_until, Keepalived, KeepalivedConf, Observed, Observer, Router,
    Segment,
};

use crate::{failover::tree_cpu_seconds, record};

const VIP: &str = "192.0.2.100";

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Length of each load's window, in seconds.
    #[arg(long, default_value_t = 120)]
    pub secs: u64,
    /// Loads: idle, cpu (stress-ng --cpu on every core), rt (SCHED_FIFO spinners at
    /// priority 10 on every core, 200 ms on / 300 ms off), io-mem (stress-ng --hdd 2 --vm 2
    /// --vm-bytes 4G).
    #[arg(long, value_delimiter = ',', default_value = "idle,cpu,rt,io-mem")]
    pub loads: Vec<String>,
}

/// What one pair did under one load.
struct Figures {
    takeovers: usize,
    gap_ms: (f64, f64, f64),
    adverts: usize,
    cpu_s: f64,
    /// Share of the host's CPU time the hypervisor took back during the window (steal).
    steal_pct: f64,
    /// Every advert seen: kernel timestamp (ns), and whether the master sent it.
    seen: Vec<(u64, bool)>,
}

pub fn run(args: LoadArgs) -> Result<()> {
    for l in &args.loads {
        if !["idle", "cpu", "rt", "io-mem"].contains(&l.as_str()) {
            bail!("unknown load {l:?}: use idle, cpu, rt or io-mem");
        }
    }
    if args.loads.iter().any(|l| l == "cpu" || l == "io-mem")
        && Command::new("stress-ng").arg("--version").output().is_err()
    {
        bail!("stress-ng is missing: run cargo xtask setup");
    }
    let command = format!(
        "cargo xtask bench load --secs {} --loads {}",
        args.secs,
        args.loads.join(",")
    );
    let mut table = record::Table::new(
        "| load | agent | false takeovers | master's advert gap p50 / p99 / max (ms) | adverts seen | master agent CPU (s) | CPU stolen by the hypervisor |",
    );
    for load in &args.loads {
        let (k, x) = one_load(load, Duration::from_secs(args.secs))?;
        for (agent, f) in [("keepalived", &k), ("xvrrpd", &x)] {
            let line = format!(
                "| {load} | {agent} | {} | {:.2} / {:.2} / {:.2} | {} | {:.2} | {:.1} % |",
                f.takeovers, f.gap_ms.0, f.gap_ms.1, f.gap_ms.2, f.adverts, f.cpu_s, f.steal_pct
            );
            eprintln!("{line}");
            table.row(line)?;
        }
    }
    record::record(record::Entry {
        title: "adverts under load",
        command: &command,
        parts: &[record::Part::table(&table)],
        notes: "keepalived 2.2.7 and xvrrpd pairs side by side, VRRPv3 at 10 ms, priority 150 / 100, each on its own segment; an observer on a third node timestamps every advert in XDP. Every takeover is false (the master never fails). xvrrpd: periodic adverts from its real-time pacer thread (SCHED_FIFO 50, memory locked); keepalived: its defaults.",
        raw: None,
    })
}

fn one_load(load: &str, window: Duration) -> Result<(Figures, Figures)> {
    let seg_k = Segment::new(3)?;
    let seg_x = Segment::new(3)?;
    let conf = |priority| KeepalivedConf {
        version: 3,
        vrid: 41,
        priority,
        advert_int: 0.01,
        vip: format!("{VIP}/24"),
        state_master: priority > 100,
        unicast_peers: vec![],
        old_unicast_checksum: false,
        script: None,
    };
    let k1 = Keepalived::start(&seg_k.nodes[0].ns, "eth0", &conf(150))?;
    let _k2 = Keepalived::start(&seg_k.nodes[1].ns, "eth0", &conf(100))?;
    let toml = |priority| router_toml("w", 41, priority, 3, "10ms", &format!("{VIP}/24"));
    let x1 = Router::start(&seg_x.nodes[0].ns, &toml(150))?;
    let _x2 = Router::start(&seg_x.nodes[1].ns, &toml(100))?;
    for (name, seg) in [("keepalived", &seg_k), ("xvrrpd", &seg_x)] {
        if !wait_until(Duration::from_secs(15), || {
            has_addr(&seg.nodes[0].ns, VIP) && !has_addr(&seg.nodes[1].ns, VIP)
        }) {
            bail!("{name}: node 1 never became the only master");
        }
    }
    let obs_k = Observer::start(&seg_k.nodes[2].ns, "eth0", &["--adverts"])?;
    let obs_x = Observer::start(&seg_x.nodes[2].ns, "eth0", &["--adverts"])?;
    let cpu0 = (
        tree_cpu_seconds(k1.proc.pid()),
        tree_cpu_seconds(x1.proc.pid()),
    );
    eprintln!("xtask: load {load} for {} s", window.as_secs());
    let ticks0 = cpu_ticks()?;
    let mut hogs = Load::start(load, window)?;
    std::thread::sleep(window);
    hogs.stop();
    let ticks1 = cpu_ticks()?;
    let steal_pct = 100.0 * (ticks1.1 - ticks0.1) as f64 / (ticks1.0 - ticks0.0).max(1) as f64;
    let cpu1 = (
        tree_cpu_seconds(k1.proc.pid()),
        tree_cpu_seconds(x1.proc.pid()),
    );
    let master = seg_k.nodes[0].addr4.clone();
    let k = figures(obs_k.stop(), &master, cpu1.0 - cpu0.0, steal_pct);
    let x = figures(
        obs_x.stop(),
        &seg_x.nodes[0].addr4,
        cpu1.1 - cpu0.1,
        steal_pct,
    );
    for (agent, f) in [("keepalived", &k), ("xvrrpd", &x)] {
        dump(load, agent, f)?;
    }
    Ok((k, x))
}

/// All CPU time of the host so far and the part of it stolen by the hypervisor (the
/// `cpu` line of /proc/stat, in ticks). On a VM whose vCPUs the host throttles, nothing
/// inside the VM runs while they are stolen: not even a real-time thread can send then.
fn cpu_ticks() -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    Ok((f.iter().take(8).sum(), f.get(7).copied().unwrap_or(0)))
}

/// Every advert the observer saw, as `ts_ns from_master` lines in
/// `target/bench/load-LOAD-AGENT.tsv`: where the gaps are is read from there.
fn dump(load: &str, agent: &str, f: &Figures) -> Result<()> {
    let dir = crate::root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let lines: String = f
        .seen
        .iter()
        .map(|(ts, m)| format!("{ts}\t{}\n", u8::from(*m)))
        .collect();
    let path = dir.join(format!("load-{load}-{agent}.tsv"));
    std::fs::write(&path, lines).with_context(|| format!("writing {}", path.display()))
}

/// Takeovers and the master's gaps from an observer's advert lines.
fn figures(seen: Vec<Observed>, master: &str, cpu_s: f64, steal_pct: f64) -> Figures {
    let adverts: Vec<(u64, bool)> = seen
        .iter()
        .filter_map(|o| match o {
            Observed::Advert { heard, .. } if heard.vrid == 41 => {
                Some((heard.ts_ns, heard.src == master))
            }
            _ => None,
        })
        .collect();
    let mut takeovers = 0;
    let mut last_master_ts = None;
    let mut backup_speaking = false;
    let mut gaps = Vec::new();
    for &(ts, from_master) in &adverts {
        if from_master {
            if let Some(prev) = last_master_ts {
                gaps.push((ts - prev) as f64 / 1e6);
            }
            last_master_ts = Some(ts);
            backup_speaking = false;
        } else if !backup_speaking {
            takeovers += 1;
            backup_speaking = true;
        }
    }
    gaps.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| {
        gaps.get(((gaps.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Figures {
        takeovers,
        gap_ms: (pick(0.5), pick(0.99), pick(1.0)),
        adverts: adverts.len(),
        cpu_s,
        steal_pct,
        seen: adverts,
    }
}

/// The load on the host, for the window: stress-ng children, or real-time spinner
/// threads of this process (one per core, SCHED_FIFO 10, 200 ms busy / 300 ms asleep).
struct Load {
    children: Vec<Child>,
    spinners: Vec<std::thread::JoinHandle<()>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Load {
    fn start(load: &str, window: Duration) -> Result<Self> {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let secs = format!("{}s", window.as_secs() + 5);
        let mut me = Self {
            children: Vec::new(),
            spinners: Vec::new(),
            stop: Default::default(),
        };
        let stress = |args: &[&str]| -> Result<Child> {
            Command::new("stress-ng")
                .arg("--quiet")
                .args(args)
                .args(["--timeout", &secs])
                .spawn()
                .context("starting stress-ng")
        };
        match load {
            "idle" => {}
            "cpu" => me.children.push(stress(&["--cpu", &cpus.to_string()])?),
            "io-mem" => me
                .children
                .push(stress(&["--hdd", "2", "--vm", "2", "--vm-bytes", "4G"])?),
            "rt" => {
                for cpu in 0..cpus {
                    let stop = me.stop.clone();
                    me.spinners
                        .push(std::thread::spawn(move || spin(cpu, &stop)));
                }
            }
            other => bail!("unknown load {other:?}"),
        }
        Ok(me)
    }

    fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.spinners.drain(..) {
            let _ = s.join();
        }
        for mut c in self.children.drain(..) {
            // SIGTERM: stress-ng stops its own workers.
            // SAFETY: signalling a child this bench started.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A real-time hog on `cpu`: busy 200 ms, asleep 300 ms, until `stop`.
fn spin(cpu: usize, stop: &std::sync::atomic::AtomicBool) {
    // SAFETY: a zeroed cpu_set_t, this thread, valid pointers.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        let param = libc::sched_param { sched_priority: 10 };
        if libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) != 0 {
            eprintln!(
                "xtask: spinner on cpu {cpu} not real-time: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let busy = std::time::Instant::now();
        while busy.elapsed() < Duration::from_millis(200) {
            std::hint::spin_loop();
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}
