//! Test fixtures for namespace integration tests, the lab and benchmarks.
//!
//! Every fixture cleans up in `Drop` (also on panic): namespaces are deleted, and only
//! the processes a fixture started are killed (by their own process group). Names carry
//! the PID and a counter so concurrent runs never collide.
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc::{self, Receiver},
    },
    time::{Duration, Instant},
};

pub mod bank;
pub mod chaos;
pub mod db;
pub mod dblab;
pub mod etcd;
pub mod keepalived;
pub mod picture;
pub mod prometheus;

pub use keepalived::{KaFile, KaInstance, Keepalived, KeepalivedConf, VrrpScript};

use anyhow::{bail, Context, Result};
pub use db::{Db, Flavor as DbFlavor};
use serde_json::Value;
pub use xvrrpd_core::events::Observed;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `<prefix><pid hex><n>`, at most 15 bytes so
/// it also fits interface names.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{:x}{n}", std::process::id() & 0xfffff);
    assert!(name.len() <= 15, "name {name} too long for an interface");
    name
}

/// Runs a command to completion, failing with its stderr.
pub fn sh(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {args:?}"))?;
    if !out.status.success() {
        bail!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip` inside namespace `ns`.
pub fn ip_in(ns: &str, args: &[&str]) -> Result<String> {
    let mut v = vec!["ip", "-n", ns];
    v.extend_from_slice(args);
    sh(&v)
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Result<Self> {
        let name = unique(prefix);
        sh(&["ip", "netns", "add", &name])?;
        let ns = Self { name };
        ip_in(&ns.name, &["link", "set", "lo", "up"])?;
        // Lab addresses must be usable at once: no IPv6 duplicate address detection delay.
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
        Ok(ns)
    }

    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.name,
            "sysctl",
            "-qw",
            &format!("{key}={value}"),
        ])?;
        Ok(())
    }

    /// A `Command` that runs `program` inside this namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A node on the lab segment: a namespace whose `eth0` is a veth into the bridge.
pub struct Node {
    pub ns: Netns,
    /// The bridge-side end of the node's veth (in the bridge namespace).
    pub port: String,
    pub ifname: String,
    pub addr4: String,
    pub addr6: String,
}

/// A layer-2 segment: a bridge in its own namespace, and nodes attached to it.
/// Addresses are 192.0.2.<10+i>/24 and 2001:db8::<10+i>/64.
pub struct Segment {
    pub nodes: Vec<Node>,
    /// Dropped last (fields drop in order): nodes first, then the bridge.
    pub bridge: Netns,
}

impl Segment {
    pub fn new(nodes: usize) -> Result<Self> {
        let bridge = Netns::new("xvb")?;
        ip_in(&bridge.name, &["link", "add", "br0", "type", "bridge"])?;
        // A switch, not a firewall: where the host loaded br_netfilter, every bridged
        // frame would go through this namespace's iptables hooks, a cost charged to
        // whichever lab process sent it (a quarter of the pacer thread's CPU in `bench
        // scale`). Without br_netfilter the keys do not exist and there is nothing to do.
        for family in ["iptables", "ip6tables", "arptables"] {
            let key = format!("net.bridge.bridge-nf-call-{family}");
            if std::path::Path::new("/proc/sys")
                .join(key.replace('.', "/"))
                .exists()
            {
                bridge.sysctl(&key, "0")?;
            }
        }
        // No snooping: VRRP multicast reaches every port, as on a plain switch.
        ip_in(
            &bridge.name,
            &[
                "link",
                "set",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
        )?;
        ip_in(&bridge.name, &["link", "set", "br0", "up"])?;
        let mut seg = Self {
            nodes: Vec::new(),
            bridge,
        };
        for i in 0..nodes {
            let ns = Netns::new("xvn")?;
            let outer = unique("xvp");
            // Create the pair inside the bridge namespace, then move one end to the node.
            ip_in(
                &seg.bridge.name,
                &[
                    "link", "add", &outer, "type", "veth", "peer", "name", "eth0",
                ],
            )?;
            ip_in(
                &seg.bridge.name,
                &["link", "set", "eth0", "netns", &ns.name],
            )?;
            ip_in(
                &seg.bridge.name,
                &["link", "set", &outer, "master", "br0", "up"],
            )?;
            let addr4 = format!("192.0.2.{}", 10 + i);
            let addr6 = format!("2001:db8::{}", 10 + i);
            ip_in(
                &ns.name,
                &["addr", "add", &format!("{addr4}/24"), "dev", "eth0"],
            )?;
            ip_in(
                &ns.name,
                &[
                    "addr",
                    "add",
                    &format!("{addr6}/64"),
                    "dev",
                    "eth0",
                    "nodad",
                ],
            )?;
            ip_in(&ns.name, &["link", "set", "eth0", "up"])?;
            seg.nodes.push(Node {
                ns,
                port: outer,
                ifname: "eth0".into(),
                addr4,
                addr6,
            });
        }
        Ok(seg)
    }
}

/// A child process in its own process group, killed (the whole group) on drop.
pub struct Proc {
    pub child: Child,
    pub what: String,
}

impl Proc {
    pub fn spawn(mut cmd: Command, what: &str) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        // Own process group: signals reach the program and its children, nothing else.
        cmd.process_group(0);
        let child = cmd.spawn().with_context(|| format!("starting {what}"))?;
        Ok(Self {
            child,
            what: what.to_string(),
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `sig` to the whole process group at once.
    pub fn signal_group(&self, sig: i32) {
        unsafe { libc::kill(-self.pid(), sig) };
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for exit up to `timeout`; true if it exited.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal_group(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Path of the `xvrrpd` binary under test: `XVRRPD_BIN`, else the workspace's debug build.
pub fn xvrrpd_bin() -> PathBuf {
    std::env::var_os("XVRRPD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/xvrrpd"))
}

/// `xvrrpd check --config CONFIG` (online), in `ns` when given: its exit code and
/// everything it printed.
pub fn xvrrpd_check(ns: Option<&Netns>, config: &Path) -> (Option<i32>, String) {
    let bin = xvrrpd_bin();
    let mut cmd = match ns {
        Some(ns) => ns.command(&bin.display().to_string()),
        None => Command::new(&bin),
    };
    let out = cmd
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("running xvrrpd check");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

/// `xvrrpd observe --json` running in a namespace, its JSON lines collected by a thread.
pub struct Observer {
    pub proc: Proc,
    lines: Receiver<Observed>,
    /// Every line received so far, in order.
    pub seen: Vec<Observed>,
}

impl Observer {
    pub fn start(ns: &Netns, iface: &str, extra: &[&str]) -> Result<Self> {
        let bin = xvrrpd_bin();
        let mut cmd = ns.command(bin.to_str().context("binary path")?);
        cmd.args(["observe", "--json", "--interface", iface])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn(cmd, "xvrrpd observe")?;
        let stdout = proc.child.stdout.take().context("observer stdout")?;
        let stderr = proc.child.stderr.take().context("observer stderr")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if let Ok(v) = serde_json::from_str::<Observed>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        // Ready once it logs that the program is attached (or fail with its error).
        let (rtx, rrx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                eprintln!("[observe] {line}");
                if !sent && (line.contains("attached") || line.contains("error")) {
                    let _ = rtx.send(line.clone());
                    sent = true;
                }
            }
        });
        match rrx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) if l.contains("attached") => {}
            Ok(l) => bail!("xvrrpd observe failed: {l}"),
            Err(_) => bail!("xvrrpd observe did not attach within 20 s"),
        }
        Ok(Self {
            proc,
            lines: rx,
            seen: Vec::new(),
        })
    }

    /// Waits for the first event (after those already consumed) matching `pred`.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Observed) -> bool,
    ) -> Option<Observed> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return Some(v);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Stops it with SIGTERM and returns the remaining lines (the summary).
    pub fn stop(mut self) -> Vec<Observed> {
        self.proc.signal(libc::SIGTERM);
        self.proc.wait_exit(Duration::from_secs(10));
        let mut rest = Vec::new();
        while let Ok(v) = self.lines.recv_timeout(Duration::from_millis(500)) {
            rest.push(v);
        }
        rest
    }
}

/// A new master for `vrid` (a live one: priority above 0).
pub fn new_master(o: &Observed, vrid: u8) -> bool {
    matches!(o, Observed::NewMaster { heard } if heard.vrid == vrid && heard.priority != 0)
}

/// RFC Master_Down_Interval in microseconds for a v3 advert interval and local priority
/// (the kernel's and the engine's arithmetic, [`xvrrpd_common::master_down_ns`]).
pub fn master_down_us(interval_cs: u64, local_priority: u8) -> f64 {
    let iv = xvrrpd_common::interval_ns(3, interval_cs as u16);
    xvrrpd_common::master_down_ns(iv, local_priority) as f64 / 1e3
}

/// RFC Skew_Time in microseconds for a v3 advert interval and local priority.
pub fn skew_us(interval_cs: u64, local_priority: u8) -> f64 {
    let iv = xvrrpd_common::interval_ns(3, interval_cs as u16);
    xvrrpd_common::skew_ns(iv, local_priority) as f64 / 1e3
}

/// One keepalived crash observed by `xvrrpd observe`: what master_down reported.
pub struct KillResult {
    pub missed_counts: Vec<u64>,
    pub master_down_us: u64,
    pub theoretical_us: f64,
}

/// Starts keepalived on node 0 of `seg`, waits for its adverts at node 1's observer,
/// SIGKILLs it and returns the observer's missed/master_down report.
pub fn kill_and_measure(
    seg: &Segment,
    obs: &mut Observer,
    conf: &KeepalivedConf,
    observer_priority: u64,
) -> Result<KillResult> {
    let node = &seg.nodes[0];
    let mut ka = Keepalived::start(&node.ns, &node.ifname, conf)?;
    let vrid = conf.vrid;
    // keepalived starts as backup; it becomes master after its own Master_Down_Interval.
    let wait = Duration::from_secs_f64(conf.advert_int * 4.0 + 10.0);
    let Some(first) = obs.wait_for(wait, |o| new_master(o, vrid)) else {
        bail!(
            "no advert from keepalived within {wait:?}; its log:\n{}",
            ka.log()
        );
    };
    // Let a few adverts pass so the timer is in its steady state.
    std::thread::sleep(Duration::from_secs_f64(conf.advert_int * 3.0));
    let _ = first;
    ka.kill();
    let mut missed = Vec::new();
    let down_us = loop {
        let Some(o) = obs.wait_for(Duration::from_secs_f64(conf.advert_int * 6.0 + 2.0), |o| {
            o.vrid() == Some(vrid)
                && matches!(o, Observed::Missed { .. } | Observed::MasterDown { .. })
        }) else {
            bail!("no master_down after killing keepalived (missed so far: {missed:?})");
        };
        match o {
            Observed::Missed { count, .. } => missed.push(u64::from(count)),
            Observed::MasterDown { since_last_us, .. } => break since_last_us,
            _ => unreachable!("filtered above"),
        }
    };
    Ok(KillResult {
        missed_counts: missed,
        master_down_us: down_us,
        theoretical_us: master_down_us(
            conf.advert_int.mul_add(100.0, 0.0).round() as u64,
            observer_priority as u8,
        ),
    })
}

/// `xvrrpd run` in a namespace with a generated config file.
pub struct Router {
    pub proc: Proc,
    pub dir: PathBuf,
    /// Directories searched for tools before PATH (MySQL's mysqlbinlog in the labs).
    tools: Option<PathBuf>,
}

impl Router {
    pub fn start(ns: &Netns, toml: &str) -> Result<Self> {
        Self::start_with_tools(ns, toml, None)
    }

    /// An agent that finds the command-line tools it runs in `tools` first.
    pub fn start_with_tools(ns: &Netns, toml: &str, tools: Option<PathBuf>) -> Result<Self> {
        let dir = std::env::temp_dir().join(unique("xvr"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("xvrrpd.toml"), toml)?;
        let proc = Self::spawn(ns, &dir, tools.as_deref())?;
        let mut r = Self { proc, dir, tools };
        r.wait_ready()?;
        Ok(r)
    }

    /// Agents in several namespaces started together: every process is spawned before
    /// any is waited for, so none runs alone while another loads its datapath.
    pub fn start_all(nodes: &[(&Netns, &str)]) -> Result<Vec<Self>> {
        let mut all = Vec::new();
        for (ns, toml) in nodes {
            let dir = std::env::temp_dir().join(unique("xvr"));
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("xvrrpd.toml"), toml)?;
            let proc = Self::spawn(ns, &dir, None)?;
            all.push(Self {
                proc,
                dir,
                tools: None,
            });
        }
        for r in &mut all {
            r.wait_ready()?;
        }
        Ok(all)
    }

    /// Starts the agent again in the same directory (same config, control socket and
    /// state files), as systemd restarts a dead agent. The old process must be gone.
    pub fn restart(&mut self, ns: &Netns) -> Result<()> {
        self.proc = Self::spawn(ns, &self.dir, self.tools.as_deref())?;
        self.wait_ready()
    }

    fn spawn(ns: &Netns, dir: &Path, tools: Option<&Path>) -> Result<Proc> {
        let bin = xvrrpd_bin();
        let mut cmd = ns.command(bin.to_str().context("binary path")?);
        if let Some(t) = tools {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let dirs = std::iter::once(t.to_path_buf()).chain(std::env::split_paths(&path));
            cmd.env("PATH", std::env::join_paths(dirs)?);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("xvrrpd.log"))?;
        cmd.arg("run")
            .arg("--config")
            .arg(dir.join("xvrrpd.toml"))
            .env("XVRRPD_CONTROL_SOCKET", dir.join("control.sock"))
            .env("XVRRPD_STATE_DIR", dir)
            .stdout(Stdio::null())
            .stderr(log);
        Proc::spawn(cmd, "xvrrpd run")
    }

    /// Ready when `xvrrpd status --json` answers with every configured instance (the
    /// main loop answers only once the configuration is applied); failed when the
    /// process exits first.
    fn wait_ready(&mut self) -> Result<()> {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(Some(status)) = self.proc.child.try_wait() {
                bail!("xvrrpd run exited ({status}):\n{}", self.log());
            }
            if let Ok(s) = self.status() {
                if s["instances"].as_array().is_some_and(|a| !a.is_empty()) {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("xvrrpd run was not ready within 20 s:\n{}", self.log())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("xvrrpd.log")).unwrap_or_default()
    }

    /// This agent's control socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// Runs `xvrrpd ARGS` against this agent's control socket: (success, stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(xvrrpd_bin())
            .args(args)
            .env("XVRRPD_CONTROL_SOCKET", self.socket())
            .output()
            .expect("running the xvrrpd CLI");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `xvrrpd status --json`.
    pub fn status(&self) -> Result<Value> {
        let (ok, out, err) = self.ctl(&["status", "--json"]);
        if !ok {
            bail!("xvrrpd status failed: {err}");
        }
        Ok(serde_json::from_str(&out)?)
    }

    /// Rewrites the config file (for a reload).
    pub fn write_config(&self, toml: &str) -> Result<()> {
        std::fs::write(self.dir.join("xvrrpd.toml"), toml)?;
        Ok(())
    }

    pub fn kill(&mut self) {
        self.proc.signal_group(libc::SIGKILL);
        self.proc.wait_exit(Duration::from_secs(5));
    }

    /// What a reboot of a stopped agent's host removes: everything it keeps under
    /// `/run` (the control socket, the maintenance marker). The state directory stays.
    pub fn empty_run(&self) {
        for f in ["control.sock", "maintenance"] {
            let _ = std::fs::remove_file(self.dir.join(f));
        }
    }

    /// SIGTERM and wait; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        self.proc.signal(libc::SIGTERM);
        self.proc.wait_exit(Duration::from_secs(10));
        self.proc
            .child
            .try_wait()
            .ok()
            .flatten()
            .and_then(|s| s.code())
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.proc.signal_group(libc::SIGKILL);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A one-instance router config for the lab segment.
pub fn router_toml(
    name: &str,
    vrid: u8,
    priority: u8,
    version: u8,
    interval: &str,
    vip: &str,
) -> String {
    format!(
        "[[instance]]\nname = \"{name}\"\ninterface = \"eth0\"\nvrid = {vrid}\npriority = {priority}\n\
         version = {version}\nadvert_interval = \"{interval}\"\nvirtual_addresses = [\"{vip}\"]\n"
    )
}

/// GET http://127.0.0.1:9611/metrics (xvrrpd's default endpoint) inside `ns`, as curl
/// asks for it (no format named: the classic text format).
pub fn scrape(ns: &Netns) -> String {
    scrape_as(ns, "*/*")
}

/// The same with an `Accept` header (Prometheus names OpenMetrics first).
pub fn scrape_as(ns: &Netns, accept: &str) -> String {
    let out = ns
        .command("curl")
        .args(["-sf", "--max-time", "5", "-H"])
        .arg(format!("Accept: {accept}"))
        .arg("http://127.0.0.1:9611/metrics")
        .output()
        .expect("curl");
    assert!(out.status.success(), "scrape failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the sample whose line starts with `series` (name and labels).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Does namespace `ns` hold address `addr` on any interface?
/// Every address configured in `ns` (one `ip` run, without prefix lengths).
pub fn addrs(ns: &Netns) -> std::collections::HashSet<String> {
    ip_in(&ns.name, &["-o", "addr", "show"])
        .map(|out| {
            out.lines()
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    w.find(|x| *x == "inet" || *x == "inet6")?;
                    Some(w.next()?.split('/').next()?.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn has_addr(ns: &Netns, addr: &str) -> bool {
    ip_in(&ns.name, &["-o", "addr", "show"])
        .map(|out| {
            out.split_whitespace()
                .any(|w| w.split('/').next() == Some(addr))
        })
        .unwrap_or(false)
}

/// Polls `f` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// MAC address of `ifname` in `ns`.
pub fn mac_of(ns: &Netns, ifname: &str) -> Result<String> {
    let out = ip_in(&ns.name, &["-o", "link", "show", ifname])?;
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "link/ether" {
            return Ok(words.next().unwrap_or_default().to_string());
        }
    }
    bail!("no MAC for {ifname} in {}", ns.name)
}

/// Pins `ns`'s neighbour entry for `ip` on eth0 to `mac` (permanent): a client that
/// missed every announcement, or behind a switch that still sends there.
pub fn pin_neighbour(ns: &Netns, ip: &str, mac: &str) -> Result<()> {
    ip_in(
        &ns.name,
        &[
            "neigh",
            "replace",
            ip,
            "lladdr",
            mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    )
    .map(drop)
}

/// The client's ARP entry for `ip` (its MAC), if any.
pub fn neigh_mac(ns: &Netns, ip: &str) -> Option<String> {
    let out = ip_in(&ns.name, &["neigh", "show", ip]).ok()?;
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "lladdr" {
            return words.next().map(str::to_string);
        }
    }
    None
}

/// One ping from `ns` to `ip` (populates the ARP cache); true if it answered.
pub fn ping_once(ns: &Netns, ip: &str) -> bool {
    ns.command("ping")
        .args(["-c", "1", "-W", "1", ip])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
