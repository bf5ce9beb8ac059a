//! Fault tools for the lab: netem on links, CPU and disk hogs pinned with an agent to one
//! core, and a sampler of who holds a VIP (the split-brain invariant).
use std::{
    net::Ipv4Addr,
    path::Path,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::{Context, Result};

use crate::{ip_in, Proc};

/// Faults act where the wire starts: the lab node's `eth0`, on its egress hook (nftables
/// `netdev` family). An `output` hook would miss xvrrpd's adverts, which leave as link
/// frames (see the agent's `net::tx`), and XDP sees frames before any input hook: so a
/// loss, a silence or a cut is made of egress drops at the senders.
fn egress(table: &str, rule: &str) -> String {
    format!(
        "table netdev {table} {{\n  chain out {{ type filter hook egress device \"eth0\" priority 0; {rule} }}\n}}\n"
    )
}

/// Drops `pct` % of what `ns` sends (VRRP adverts, ARP, MySQL and client traffic), so the
/// link loses that much in each direction when applied on both ends.
pub fn loss(ns: &str, pct: u8) -> Result<()> {
    nft(
        ns,
        &egress(
            "xvrrpd_chaos",
            &format!("numgen random mod 100 < {pct} drop;"),
        ),
    )
}

pub fn loss_off(ns: &str) -> Result<()> {
    delete_table(ns, "netdev", "xvrrpd_chaos");
    Ok(())
}

/// Nothing leaves `ns` on the wire any more, ARP included: a host gone silent.
pub fn silence(ns: &str) -> Result<()> {
    nft(ns, &egress("xvrrpd_silent", "drop;"))
}

pub fn silence_off(ns: &str) {
    delete_table(ns, "netdev", "xvrrpd_silent");
}

/// Cuts each namespace's IPv4 traffic to the given addresses (multicast adverts and ARP
/// aside), at the senders.
pub fn cut(rules: &[(&str, Vec<String>)]) -> Result<()> {
    for (ns, to) in rules {
        let set = to.join(", ");
        nft(
            ns,
            &egress("xvrrpd_cut", &format!("ip daddr {{ {set} }} drop;")),
        )?;
    }
    Ok(())
}

pub fn cut_end(nss: &[&str]) {
    for ns in nss {
        delete_table(ns, "netdev", "xvrrpd_cut");
    }
}

/// A host firewall as hardened setups run it: segments that belong to no connection the
/// kernel knows (`nf_conntrack_tcp_loose = 0`: no pick-up of connections mid-stream) are
/// INVALID and dropped on input, with a counter ([`invalid_dropped`]).
pub fn drop_invalid(ns: &str) -> Result<()> {
    nft(
        ns,
        "table inet xvrrpd_strict {\n  chain in { type filter hook input priority 0; ct state invalid counter drop; }\n}\n",
    )?;
    // Exists once the namespace has conntrack, which the rule above brings.
    crate::sh(&[
        "ip",
        "netns",
        "exec",
        ns,
        "sysctl",
        "-qw",
        "net.netfilter.nf_conntrack_tcp_loose=0",
    ])
    .map(|_| ())
}

/// Packets [`drop_invalid`]'s rule dropped so far in `ns`.
pub fn invalid_dropped(ns: &str) -> u64 {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "nft",
            "list",
            "table",
            "inet",
            "xvrrpd_strict",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn nft(ns: &str, rules: &str) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .context("nft (apt-get install nftables)")?;
    use std::io::Write;
    child
        .stdin
        .take()
        .context("nft stdin")?
        .write_all(rules.as_bytes())?;
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "nft failed in {ns}");
    Ok(())
}

fn delete_table(ns: &str, family: &str, name: &str) {
    // Gone already is fine.
    let _ = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "delete", "table", family, name])
        .stderr(Stdio::null())
        .status();
}

/// `tc qdisc replace dev eth0 root netem ARGS` in `ns` (delay, jitter).
pub fn netem(ns: &str, args: &[&str]) -> Result<()> {
    let mut cmd = vec![
        "tc", "-n", ns, "qdisc", "replace", "dev", "eth0", "root", "netem",
    ];
    cmd.extend_from_slice(args);
    crate::sh(&cmd)
        .map(|_| ())
        .context("netem (this kernel may lack CONFIG_NET_SCH_NETEM)")
}

pub fn netem_off(ns: &str) -> Result<()> {
    let _ = crate::sh(&["tc", "-n", ns, "qdisc", "del", "dev", "eth0", "root"]);
    Ok(())
}

/// Can this kernel run netem? (Probed in a throwaway namespace.)
pub fn netem_available() -> bool {
    let Ok(ns) = crate::Netns::new("xvq") else {
        return false;
    };
    let _ = ip_in(&ns.name, &["link", "add", "d0", "type", "dummy"]);
    crate::sh(&[
        "tc", "-n", &ns.name, "qdisc", "add", "dev", "d0", "root", "netem", "delay", "1ms",
    ])
    .is_ok()
}

/// The CPU the hogs and the starved agent share.
pub const HOG_CPU: &str = "1";

/// Busy loops and a direct-I/O writer pinned to [`HOG_CPU`]; killed on drop.
pub struct Hogs {
    procs: Vec<Proc>,
}

impl Hogs {
    /// `cpu` busy loops and one disk writer (in `dir`), all on [`HOG_CPU`].
    pub fn start(cpu: usize, dir: &Path) -> Result<Self> {
        let mut procs = Vec::new();
        for _ in 0..cpu {
            let mut c = Command::new("taskset");
            c.args(["-c", HOG_CPU, "sh", "-c", "while :; do :; done"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            procs.push(Proc::spawn(c, "cpu hog")?);
        }
        let file = dir.join("io-hog");
        let mut c = Command::new("taskset");
        c.args([
            "-c",
            HOG_CPU,
            "sh",
            "-c",
            &format!(
                "while :; do dd if=/dev/zero of={} bs=1M count=64 oflag=direct status=none; done",
                file.display()
            ),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        procs.push(Proc::spawn(c, "disk hog")?);
        Ok(Self { procs })
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for p in &self.procs {
            p.signal_group(libc::SIGKILL);
        }
    }
}

/// Every process in process group `pgid` (an agent and its children).
fn group(pgid: i32) -> Vec<i32> {
    let out = Command::new("pgrep")
        .args(["-g", &pgid.to_string()])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Pins every thread of every process in group `pgid` to `cpus` (e.g. "1", or "0-1").
pub fn pin_group(pgid: i32, cpus: &str) -> Result<()> {
    for pid in group(pgid) {
        Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("taskset")?;
    }
    Ok(())
}

/// All CPUs of this machine, for un-pinning.
pub fn all_cpus() -> String {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("0-{}", n - 1)
}

/// Does this thread's network namespace hold `addr` on an interface that is up with
/// carrier (one that can answer for it)?
fn holds(addr: Ipv4Addr) -> bool {
    let mut ifa: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below; we only read it.
    if unsafe { libc::getifaddrs(&mut ifa) } != 0 {
        return false;
    }
    let mut found = false;
    let mut cur = ifa;
    while !cur.is_null() {
        let a = unsafe { (*cur).ifa_addr };
        let flags = unsafe { (*cur).ifa_flags };
        let running = flags & libc::IFF_UP as u32 != 0 && flags & libc::IFF_RUNNING as u32 != 0;
        if running && !a.is_null() && unsafe { (*a).sa_family } as i32 == libc::AF_INET {
            let sin = unsafe { &*(a as *const libc::sockaddr_in) };
            if u32::from_be(sin.sin_addr.s_addr) == u32::from(addr) {
                found = true;
                break;
            }
        }
        cur = unsafe { (*cur).ifa_next };
    }
    unsafe { libc::freeifaddrs(ifa) };
    found
}

/// One node's samples: (monotonic ns, holds the VIP).
type Samples = Arc<Mutex<Vec<(u64, bool)>>>;

/// Who held a VIP, sampled every 2 ms from inside each node's namespace.
pub struct VipSampler {
    done: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Per node: (monotonic ns, holds).
    pub samples: Vec<Samples>,
}

impl VipSampler {
    pub fn start(namespaces: &[&str], vip: Ipv4Addr) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut samples = Vec::new();
        for ns in namespaces {
            let out: Samples = Arc::default();
            samples.push(out.clone());
            let d = done.clone();
            threads.push(crate::dblab::spawn_in_ns(ns, move || {
                while !d.load(Ordering::SeqCst) {
                    let h = holds(vip);
                    out.lock()
                        .expect("samples")
                        .push((crate::dblab::mono_ns(), h));
                    std::thread::sleep(Duration::from_millis(2));
                }
            }));
        }
        Self {
            done,
            threads,
            samples,
        }
    }

    /// Stops sampling; returns the per-node step functions.
    pub fn stop(self) -> Vec<Vec<(u64, bool)>> {
        self.done.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        self.samples
            .iter()
            .map(|s| s.lock().expect("samples").clone())
            .collect()
    }
}

/// The value of a sampled step function at `t` (false before the first sample).
fn at(s: &[(u64, bool)], t: u64) -> bool {
    match s.partition_point(|(ts, _)| *ts <= t) {
        0 => false,
        i => s[i - 1].1,
    }
}

/// What the samples of two nodes say about a VIP from `from` to `to` (ns).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VipStats {
    /// Time both nodes held it (ms).
    pub dual_ms: f64,
    /// Longest single stretch both held it (ms).
    pub longest_dual_ms: f64,
    /// Times node 2 acquired it (from not holding to holding).
    pub node2_acquired: usize,
    /// Times the owner changed.
    pub moves: usize,
}

pub fn vip_stats(a: &[(u64, bool)], b: &[(u64, bool)], from: u64, to: u64) -> VipStats {
    let mut times: Vec<u64> = a
        .iter()
        .chain(b.iter())
        .map(|(t, _)| *t)
        .filter(|t| (from..=to).contains(t))
        .collect();
    times.sort_unstable();
    times.dedup();
    let mut st = VipStats::default();
    let mut run = 0u64;
    let mut prev: Option<(u64, bool, bool)> = None;
    // The last node that held it alone: a move is a change of sole holder, even when the
    // two held it together in between.
    let mut sole: Option<u8> = None;
    for t in times {
        let (ha, hb) = (at(a, t), at(b, t));
        if let Some((pt, pa, pb)) = prev {
            if pa && pb {
                run += t - pt;
                st.dual_ms += (t - pt) as f64 / 1e6;
                st.longest_dual_ms = st.longest_dual_ms.max(run as f64 / 1e6);
            } else {
                run = 0;
            }
            if hb && !pb {
                st.node2_acquired += 1;
            }
        }
        let now_sole = match (ha, hb) {
            (true, false) => Some(1),
            (false, true) => Some(2),
            _ => None,
        };
        if let Some(o) = now_sole {
            if sole.is_some_and(|s| s != o) {
                st.moves += 1;
            }
            sole = Some(o);
        }
        prev = Some((t, ha, hb));
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dual_time_moves_and_acquisitions() {
        // a holds 0..100, b takes over at 90 (10 ms overlap), a takes it back at 200.
        let ms = 1_000_000;
        let a = vec![(0, true), (100 * ms, false), (200 * ms, true)];
        let b = vec![(0, false), (90 * ms, true), (210 * ms, false)];
        let s = vip_stats(&a, &b, 0, 300 * ms);
        assert_eq!(s.node2_acquired, 1);
        assert_eq!(s.moves, 2);
        assert!((s.dual_ms - 20.0).abs() < 1e-9, "{s:?}");
        assert!((s.longest_dual_ms - 10.0).abs() < 1e-9, "{s:?}");
    }
}

/// What a fault may cost at most, beyond the invariants that hold after every fault.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Times db2 may take the write VIP while the fault lasts.
    pub vip_takeovers: usize,
    /// db2's write instance becoming master at the VRRP level (xvrrpd), per second of
    /// fault; None when not bounded (a real failure makes it 1 anyway).
    pub vrrp_takeovers_per_s: Option<f64>,
    /// May db1's write instance become master again before the run ends (the anti-flap
    /// hold outlasts every run, so only a fault that heals into a priority contest may)?
    pub failback: bool,
}

/// The bounds of each fault. db1 never fails under loss, starvation or a killed backup
/// agent: the VIP must not move. Every other fault moves it once, and one fault must not
/// cost two client-visible failovers.
pub fn bounds(fault: crate::dblab::Fault) -> Bounds {
    use crate::dblab::Fault::*;
    match fault {
        // 20 % loss each way at 10 ms adverts: three adverts in a row lost ~0.8 times a
        // second; the guard keeps the VIP where the server is writable.
        Loss(_) | Delay(..) => Bounds {
            vip_takeovers: 0,
            vrrp_takeovers_per_s: Some(5.0),
            failback: false,
        },
        StarveMaster | StarveBackup | BackupAgentKill | WitnessDown | EtcdLeaderChange => Bounds {
            vip_takeovers: 0,
            vrrp_takeovers_per_s: Some(1.0),
            failback: false,
        },
        // At the heal the node promoted last keeps the role (write terms): no failback.
        MysqldKill | HostCrash | Reboot | HostFreeze | HostFreezeAfterHang | Partition | AgentKill
        | Switchover | LinkFlap | MysqldStop | RepeatedCrash | PartitionMaster
        // Nobody writes until etcd has its quorum back; then either node may hold the key.
        | EtcdQuorumLoss => Bounds {
            vip_takeovers: 1,
            vrrp_takeovers_per_s: None,
            failback: false,
        },
    }
}

/// db2's write instance becoming master between the fault and db1's recovery, from the
/// event streams (xvrrpd); for keepalived, the VIP moving to db2 is the same thing.
pub fn vrrp_takeovers(r: &crate::dblab::LabReport, setup: crate::dblab::Setup) -> usize {
    if setup == crate::dblab::Setup::Classic {
        return r.write_vip.node2_acquired;
    }
    let until = if r.recovered_ns == 0 {
        u64::MAX
    } else {
        r.recovered_ns
    };
    r.transitions
        .iter()
        .filter(|t| t.ts_ns > r.fault_ns && t.ts_ns < until)
        .filter(|t| t.node == "db2" && t.instance == "write" && t.to == "MASTER")
        .count()
}

/// Every broken invariant or exceeded bound of one lab run (empty: all held). The tests
/// and `cargo xtask chaos` judge runs with this one function.
pub fn violations(
    fault: crate::dblab::Fault,
    setup: crate::dblab::Setup,
    down: Duration,
    r: &crate::dblab::LabReport,
) -> Vec<String> {
    use crate::dblab::{Fault, Setup};
    let mut v = Vec::new();
    let mut need = |ok: bool, what: String| {
        if !ok {
            v.push(what);
        }
    };
    need(
        r.acked > 100,
        format!("too few writes to mean anything: {}", r.acked),
    );
    need(
        r.acked_lost_final == 0,
        format!("{} acknowledged writes lost", r.acked_lost_final),
    );
    need(
        r.replication_errors == 0,
        format!("{} replication errors", r.replication_errors),
    );
    need(
        r.divergent.iter().all(Vec::is_empty),
        format!(
            "a server is left divergent (errant transactions not undone): {:?}",
            r.divergent
        ),
    );
    need(r.converged, "the servers hold different rows".into());
    need(
        r.final_owners == 1,
        format!("{} write VIP holders at the end", r.final_owners),
    );
    need(
        r.client_arp_ok,
        "the client's ARP entry does not name the VIP's holder".into(),
    );
    need(
        r.write_vip_after.dual_ms == 0.0,
        format!(
            "VIP on both nodes after recovery ({:.1} ms)",
            r.write_vip_after.dual_ms
        ),
    );
    if setup == Setup::Classic {
        return v;
    }
    // A partition or a frozen host: each side keeps its VIP while it cannot see the other.
    if !matches!(
        fault,
        Fault::Partition | Fault::HostFreeze | Fault::HostFreezeAfterHang
    ) {
        need(
            r.write_vip.dual_ms == 0.0,
            format!(
                "VIP on both nodes during the fault ({:.1} ms)",
                r.write_vip.dual_ms
            ),
        );
        need(
            r.dual_writable_ms == 0.0,
            format!("both servers writable {:.1} ms", r.dual_writable_ms),
        );
    }
    let b = bounds(fault);
    need(
        r.write_vip.node2_acquired <= b.vip_takeovers,
        format!(
            "db2 took the write VIP {} times (bound {})",
            r.write_vip.node2_acquired, b.vip_takeovers
        ),
    );
    if let Some(per_s) = b.vrrp_takeovers_per_s {
        let n = vrrp_takeovers(r, setup);
        let max = (per_s * down.as_secs_f64()).ceil() as usize;
        need(
            n <= max,
            format!("{n} false VRRP takeovers by db2 (bound {max})"),
        );
    }
    if !b.failback {
        need(
            r.failbacks.is_empty(),
            format!("db1 failed back: {:?}", r.failbacks),
        );
    }
    v
}
