//! `xvrrpd import-keepalived`: a keepalived.conf translated into an xvrrpd configuration.
//!
//! Everything with an equivalent is carried over; every keyword without one produces a
//! warning that names it, where it was, and why. Nothing is silently dropped.
mod parse;

use std::{net::IpAddr, path::Path, time::Duration};

use anyhow::Context;

use crate::config::{
    Announce, Config, Global, InstanceConfig, Notify, TrackerConfig, TrackerKind, V3Checksum,
    VirtualAddress,
};

pub use parse::Node;

/// The translation and what could not be carried over.
#[derive(Debug, Default)]
pub struct Imported {
    pub toml: String,
    pub warnings: Vec<String>,
}

/// Translates the file at `path` as the host whose keepalived config id is `config_id`
/// (it selects the `@ID` lines) reads it.
pub fn import_file(path: &Path, config_id: &str) -> anyhow::Result<Imported> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    import_text(&text, path, config_id)
}

/// Translates `text`, read from `path` (which anchors relative includes).
pub fn import_text(text: &str, path: &Path, config_id: &str) -> anyhow::Result<Imported> {
    let (nodes, mut warnings) = parse::parse(text, path, config_id)?;
    let mut c = Converter::default();
    c.run(&nodes)?;
    let toml = c.render(path)?;
    warnings.append(&mut c.warnings);
    Ok(Imported { toml, warnings })
}

/// keepalived's default config id: this host's name up to the first dot.
pub fn default_config_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string()
}

#[derive(Debug, Default, Clone)]
struct Script {
    name: String,
    command: Vec<String>,
    interval: Option<Duration>,
    timeout: Option<Duration>,
    rise: Option<u32>,
    fall: Option<u32>,
    weight: i32,
    reverse: bool,
    kind: &'static str,
    path: Option<String>,
    interface: Option<String>,
}

#[derive(Debug, Default)]
struct Inst {
    name: String,
    interface: Option<String>,
    vrid: Option<u8>,
    priority: Option<u8>,
    version: Option<u8>,
    advert: Option<Duration>,
    preempt: bool,
    preempt_delay: Option<Duration>,
    vips: Vec<(String, Option<String>, Option<String>)>,
    unicast_source: Option<String>,
    unicast_peers: Vec<String>,
    auth_pass: Option<String>,
    track: Vec<String>,
    notify: Vec<(&'static str, Vec<String>)>,
    announce: Vec<Garp>,
}

/// A GARP setting, global (`vrrp_garp_*`) or per instance (`garp_*`).
#[derive(Debug, Clone, Copy)]
enum Garp {
    RepeatAfter(Duration),
    Count(u32),
    Refresh(Duration),
    BurstDelay(Duration),
}

impl Garp {
    fn apply(self, a: &mut Announce) {
        match self {
            Self::RepeatAfter(d) => a.repeat_after = d,
            Self::Count(n) => a.count = n,
            Self::Refresh(d) => a.refresh = d,
            Self::BurstDelay(d) => a.burst_delay = d,
        }
    }
}

#[derive(Default)]
struct Converter {
    warnings: Vec<String>,
    router_id: Option<String>,
    version: Option<u8>,
    /// `vrrp_rt_priority` and `vrrp_rlimit_rttime` (µs); `vrrp_no_swap` is the default
    /// here (`lock_memory`).
    rt_priority: Option<u8>,
    rttime_us: Option<u64>,
    global_announce: Vec<Garp>,
    scripts: Vec<Script>,
    files: Vec<Script>,
    trackers: Vec<Script>,
    instances: Vec<Inst>,
}

/// A keepalived time in (possibly fractional) seconds.
fn seconds(n: &Node, i: usize) -> anyhow::Result<Duration> {
    let v = n
        .arg(i)
        .with_context(|| format!("{}: {} needs a value in seconds", n.at(), n.key()))?;
    let f: f64 = v
        .parse()
        .ok()
        .filter(|f: &f64| f.is_finite() && *f >= 0.0)
        .with_context(|| format!("{}: {} {v:?} is not a number of seconds", n.at(), n.key()))?;
    Ok(Duration::from_micros((f * 1e6).round() as u64))
}

fn number<T: std::str::FromStr>(n: &Node, i: usize) -> anyhow::Result<T> {
    let v = n
        .arg(i)
        .with_context(|| format!("{}: {} needs a value", n.at(), n.key()))?;
    v.parse()
        .ok()
        .with_context(|| format!("{}: {} {v:?} is not a valid number here", n.at(), n.key()))
}

/// keepalived runs scripts without a shell, splitting on blanks (quotes group words).
/// A command that needs a shell (pipes, redirections, variables, `&&`) is run by one.
pub fn argv(script: &str) -> Vec<String> {
    if script.chars().any(|c| "|&;<>$`(){}*?".contains(c)) && !script.starts_with("/bin/sh -c") {
        return vec!["/bin/sh".into(), "-c".into(), script.to_string()];
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in script.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Why a keyword has no equivalent (None: not known to us at all).
fn unsupported(key: &str) -> Option<&'static str> {
    Some(match key {
        "use_vmac" | "vmac_xmit_base" => {
            "xvrrpd does not create VMAC interfaces: the VIPs use the interface's own MAC and gratuitous ARP moves them"
        }
        "virtual_routes" | "virtual_rules" => "xvrrpd manages addresses only; add routes from a notify hook",
        "track_process" | "vrrp_track_process" => {
            "no process tracker: use an exec tracker (e.g. [\"pidof\", \"mysqld\"]) or, for MySQL, kind = \"mysql\""
        }
        "track_bfd" | "bfd_instance" => "no BFD: the XDP timer already detects a silent master within Master_Down_Interval",
        "smtp_alert" | "notification_email" | "notification_email_from" | "smtp_server"
        | "smtp_connect_timeout" => "no e-mail alerts: use notify hooks or alert on the Prometheus metrics",
        "virtual_server" | "virtual_server_group" | "real_server" | "lvs_sync_daemon" | "lvs_id" => {
            "no LVS: xvrrpd does VRRP only"
        }
        "vrrp_strict" => "xvrrpd always follows RFC 5798 strictly where it matters (TTL, checksums, lengths)",
        "dont_track_primary" => "xvrrpd always follows the instance's interface (link down = FAULT)",
        "script_user" | "enable_script_security" => {
            "hooks and exec trackers run as the agent's user (root under the systemd unit); check their ownership"
        }
        "native_ipv6" | "vrrp_skip_check_adv_addr" | "vrrp_check_unicast_src" => {
            "xvrrpd's behaviour is fixed here"
        }
        "state" => "xvrrpd elects by priority from BACKUP (keepalived's `state` is only a start hint); use priority 255 for an address owner",
        "garp_lower_prio_repeat" | "garp_lower_prio_delay" | "vrrp_garp_lower_prio_repeat"
        | "vrrp_garp_lower_prio_delay" => "xvrrpd re-announces when it sees a lower-priority master",
        "lvs_sync_group" | "max_auto_priority" | "checker_no_swap" | "vrrp_priority"
        | "checker_priority" => {
            "xvrrpd has no checker process and no nice level: its advert thread is real-time ([global] realtime_priority) and its memory locked ([global] lock_memory)"
        }
        _ => return None,
    })
}

impl Converter {
    fn warn(&mut self, n: &Node, what: &str, why: &str) {
        self.warnings
            .push(format!("{}: {what} not carried over: {why}", n.at()));
    }

    fn skip(&mut self, n: &Node, ctx: &str) {
        let why = unsupported(n.key()).unwrap_or("unknown to xvrrpd");
        self.warn(n, &format!("{ctx}`{}`", n.key()), why);
    }

    fn run(&mut self, nodes: &[Node]) -> anyhow::Result<()> {
        // Scripts and track files first: instances refer to them by name.
        for n in nodes {
            match n.key() {
                "vrrp_script" => self.script(n)?,
                "vrrp_track_file" => self.track_file(n)?,
                _ => {}
            }
        }
        for n in nodes {
            match n.key() {
                "global_defs" => self.global(n)?,
                "vrrp_instance" => self.instance(n)?,
                "vrrp_sync_group" => self.sync_group(n),
                "vrrp_script" | "vrrp_track_file" => {}
                _ => self.skip(n, ""),
            }
        }
        for t in &self.trackers {
            if !self.instances.iter().any(|i| i.track.contains(&t.name)) {
                self.warnings.push(format!(
                    "tracker {:?} is defined but no instance follows it (kept, unused)",
                    t.name
                ));
            }
        }
        Ok(())
    }

    fn global(&mut self, g: &Node) -> anyhow::Result<()> {
        for n in g.children() {
            match n.key() {
                "router_id" => self.router_id = n.arg(1).map(str::to_string),
                "vrrp_version" => self.version = Some(number(n, 1)?),
                "vrrp_garp_master_delay" => {
                    self.global_announce.push(Garp::RepeatAfter(seconds(n, 1)?))
                }
                "vrrp_garp_master_repeat" => self.global_announce.push(Garp::Count(number(n, 1)?)),
                "vrrp_garp_master_refresh" => {
                    self.global_announce.push(Garp::Refresh(seconds(n, 1)?))
                }
                "vrrp_garp_interval" => self.global_announce.push(Garp::BurstDelay(seconds(n, 1)?)),
                "vrrp_rt_priority" => self.rt_priority = Some(number(n, 1)?),
                "vrrp_no_swap" => {}
                "vrrp_rlimit_rttime" => self.rttime_us = Some(number(n, 1)?),
                _ => self.skip(n, "global_defs "),
            }
        }
        Ok(())
    }

    fn script(&mut self, s: &Node) -> anyhow::Result<()> {
        let name = s
            .arg(1)
            .with_context(|| format!("{}: vrrp_script needs a name", s.at()))?;
        let mut sc = Script {
            name: name.to_string(),
            kind: "exec",
            ..Script::default()
        };
        for n in s.children() {
            match n.key() {
                "script" => {
                    let text = n.words[1..].join(" ");
                    sc.command = argv(&text);
                    if text.contains("3306") || text.contains("mysql") {
                        self.warnings.push(format!(
                            "{}: vrrp_script {name}: a shell MySQL check only sees the port; consider a native tracker (kind = \"mysql\", replication = true, max_lag) and [instance.mysql] for safe promotion",
                            n.at()
                        ));
                    }
                }
                "interval" => sc.interval = Some(seconds(n, 1)?),
                "timeout" => sc.timeout = Some(seconds(n, 1)?),
                "rise" => sc.rise = Some(number(n, 1)?),
                "fall" => sc.fall = Some(number(n, 1)?),
                "weight" => {
                    sc.weight = number(n, 1)?;
                    sc.reverse = n.arg(2) == Some("reverse");
                }
                "user" => self.warn(
                    n,
                    &format!("vrrp_script {name} `user`"),
                    "exec trackers run as the agent's user",
                ),
                "init_fail" => self.warn(
                    n,
                    &format!("vrrp_script {name} `init_fail`"),
                    "exec trackers start healthy (MySQL trackers start failing)",
                ),
                _ => self.skip(n, &format!("vrrp_script {name} ")),
            }
        }
        if sc.command.is_empty() {
            self.warn(s, &format!("vrrp_script {name}"), "it has no `script` line");
            return Ok(());
        }
        self.scripts.push(sc);
        Ok(())
    }

    fn track_file(&mut self, s: &Node) -> anyhow::Result<()> {
        let name = s
            .arg(1)
            .with_context(|| format!("{}: vrrp_track_file needs a name", s.at()))?;
        let mut f = Script {
            name: name.to_string(),
            kind: "file",
            weight: 1,
            ..Script::default()
        };
        for n in s.children() {
            match n.key() {
                "file" => f.path = n.arg(1).map(str::to_string),
                "weight" => {
                    f.weight = number(n, 1)?;
                    f.reverse = n.arg(2) == Some("reverse");
                }
                _ => self.skip(n, &format!("vrrp_track_file {name} ")),
            }
        }
        self.files.push(f);
        Ok(())
    }

    /// The tracker an instance follows for `base` with an optional per-instance weight:
    /// the shared one, or a copy carrying the instance's weight (xvrrpd keeps weights on
    /// trackers).
    fn follow(&mut self, inst: &mut Inst, base: Script, weight: Option<(i32, bool)>) {
        let t = match weight {
            Some((w, rev)) if (w, rev) != (base.weight, base.reverse) => Script {
                name: format!("{}_{}", base.name, inst.name),
                weight: w,
                reverse: rev,
                ..base
            },
            _ => base,
        };
        if !self.trackers.iter().any(|x| x.name == t.name) {
            self.trackers.push(t.clone());
        }
        if !inst.track.contains(&t.name) {
            inst.track.push(t.name);
        }
    }

    fn weight_of(n: &Node) -> anyhow::Result<Option<(i32, bool)>> {
        match n.words.iter().position(|w| w == "weight") {
            Some(i) => Ok(Some((number(n, i + 1)?, n.arg(i + 2) == Some("reverse")))),
            None => Ok(None),
        }
    }

    fn instance(&mut self, b: &Node) -> anyhow::Result<()> {
        let name = b
            .arg(1)
            .with_context(|| format!("{}: vrrp_instance needs a name", b.at()))?;
        let mut inst = Inst {
            name: name.to_string(),
            preempt: true,
            ..Inst::default()
        };
        let ctx = format!("vrrp_instance {name} ");
        for n in b.children() {
            match n.key() {
                "interface" => inst.interface = n.arg(1).map(str::to_string),
                "virtual_router_id" => inst.vrid = Some(number(n, 1)?),
                "priority" => inst.priority = Some(number(n, 1)?),
                "version" => inst.version = Some(number(n, 1)?),
                "advert_int" => inst.advert = Some(seconds(n, 1)?),
                "nopreempt" => inst.preempt = false,
                "preempt" => inst.preempt = true,
                "preempt_delay" => inst.preempt_delay = Some(seconds(n, 1)?),
                "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                    if n.key() == "virtual_ipaddress_excluded" {
                        self.warnings.push(format!("{}: {ctx}virtual_ipaddress_excluded: carried over as ordinary VIPs (they are listed in adverts)", n.at()));
                    }
                    for v in n.children() {
                        let mut addr = v.key().to_string();
                        if !addr.contains('/') {
                            addr.push_str(if addr.contains(':') { "/128" } else { "/32" });
                        }
                        let opt = |k: &str| {
                            v.words
                                .iter()
                                .position(|w| w == k)
                                .and_then(|i| v.words.get(i + 1).cloned())
                        };
                        for extra in v.words.iter().skip(1).step_by(2) {
                            if !["dev", "label"].contains(&extra.as_str()) {
                                self.warn(
                                    v,
                                    &format!("{ctx}VIP option `{extra}`"),
                                    "only `dev` and `label` are supported",
                                );
                            }
                        }
                        inst.vips.push((addr, opt("dev"), opt("label")));
                    }
                }
                "unicast_src_ip" => inst.unicast_source = n.arg(1).map(str::to_string),
                "unicast_peer" => {
                    for p in n.children() {
                        inst.unicast_peers.push(p.key().to_string());
                        if p.words.len() > 1 {
                            self.warn(
                                p,
                                &format!("{ctx}unicast_peer options"),
                                "per-peer options (min_ttl, max_ttl) are not supported",
                            );
                        }
                    }
                }
                "authentication" => {
                    for a in n.children() {
                        match (a.key(), a.arg(1)) {
                            ("auth_type", Some("PASS")) => {}
                            ("auth_type", Some(t)) => self.warn(
                                a,
                                &format!("{ctx}auth_type {t}"),
                                "only PASS (VRRPv2) is supported",
                            ),
                            ("auth_pass", Some(p)) => {
                                inst.auth_pass = Some(p.chars().take(8).collect())
                            }
                            _ => self.skip(a, &format!("{ctx}authentication ")),
                        }
                    }
                }
                "track_script" => {
                    for t in n.children() {
                        let w = Self::weight_of(t)?;
                        match self.scripts.iter().find(|s| s.name == t.key()).cloned() {
                            Some(s) => self.follow(&mut inst, s, w),
                            None => self.warn(
                                t,
                                &format!("{ctx}track_script {}", t.key()),
                                "no vrrp_script of that name",
                            ),
                        }
                    }
                }
                "track_file" => {
                    for t in n.children() {
                        let w = Self::weight_of(t)?;
                        match self.files.iter().find(|s| s.name == t.key()).cloned() {
                            Some(s) => self.follow(&mut inst, s, w),
                            None => self.warn(
                                t,
                                &format!("{ctx}track_file {}", t.key()),
                                "no vrrp_track_file of that name",
                            ),
                        }
                    }
                }
                "track_interface" => {
                    for t in n.children() {
                        let w = Self::weight_of(t)?;
                        let base = Script {
                            name: format!("link_{}", t.key()),
                            kind: "interface",
                            interface: Some(t.key().to_string()),
                            ..Script::default()
                        };
                        self.follow(&mut inst, base, w);
                    }
                }
                "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify" => {
                    let which = match n.key() {
                        "notify_master" => "master",
                        "notify_backup" => "backup",
                        "notify_fault" => "fault",
                        "notify_stop" => "stop",
                        _ => "any",
                    };
                    inst.notify.push((which, argv(&n.words[1..].join(" "))));
                }
                "garp_master_delay" => inst.announce.push(Garp::RepeatAfter(seconds(n, 1)?)),
                "garp_master_repeat" => inst.announce.push(Garp::Count(number(n, 1)?)),
                "garp_master_refresh" => inst.announce.push(Garp::Refresh(seconds(n, 1)?)),
                "garp_interval" => inst.announce.push(Garp::BurstDelay(seconds(n, 1)?)),
                _ => self.skip(n, &ctx),
            }
        }
        if inst.interface.is_none() || inst.vrid.is_none() || inst.vips.is_empty() {
            self.warn(
                b,
                &format!("vrrp_instance {name}"),
                "it needs interface, virtual_router_id and virtual_ipaddress",
            );
            return Ok(());
        }
        // One address family per VRRP instance (RFC 5798): IPv6 VIPs of a mixed instance
        // get an instance of their own with the same VRID (VRIDs are per family).
        let is_v6 = |a: &str| a.contains(':');
        let first_v6 = is_v6(&inst.vips[0].0);
        let (same, other): (Vec<_>, Vec<_>) =
            inst.vips.drain(..).partition(|v| is_v6(&v.0) == first_v6);
        inst.vips = same;
        if !other.is_empty() {
            let split = format!("{name}_v6");
            self.warnings.push(format!(
                "{}: vrrp_instance {name}: IPv4 and IPv6 VIPs split into {name} and {split} (same VRID, one family each; unicast peers stay with the IPv4 one)",
                b.at()
            ));
            let twin = Inst {
                name: split,
                interface: inst.interface.clone(),
                vrid: inst.vrid,
                priority: inst.priority,
                version: Some(3),
                advert: inst.advert,
                preempt: inst.preempt,
                preempt_delay: inst.preempt_delay,
                vips: other,
                unicast_source: None,
                unicast_peers: Vec::new(),
                auth_pass: None,
                track: inst.track.clone(),
                notify: inst.notify.clone(),
                announce: inst.announce.clone(),
            };
            self.instances.push(inst);
            self.instances.push(twin);
        } else {
            self.instances.push(inst);
        }
        Ok(())
    }

    fn sync_group(&mut self, g: &Node) {
        let name = g.arg(1).unwrap_or("?");
        self.warnings.push(format!(
            "{}: vrrp_sync_group {name} not carried over: xvrrpd instances fail over independently (each follows its own trackers); for a MySQL pair, put the same trackers on both instances so they move together",
            g.at()
        ));
        for n in g.children() {
            if n.key() != "group" {
                self.skip(n, &format!("vrrp_sync_group {name} "));
            }
        }
    }

    /// The configuration as xvrrpd's TOML: a [`Config`] serialized, so the file says
    /// exactly what `xvrrpd run` will read (every default written out).
    fn render(&self, path: &Path) -> anyhow::Result<String> {
        let text = toml::to_string(&self.config()?).context("writing the TOML")?;
        Ok(format!(
            "# Imported from {} by `xvrrpd import-keepalived`.\n\
             # Review the warnings it printed, then `xvrrpd check --config FILE`.\n\n{text}",
            path.display()
        ))
    }

    fn config(&self) -> anyhow::Result<Config> {
        let mut instances = Vec::new();
        for i in &self.instances {
            instances.push(self.instance_config(i)?);
        }
        Ok(Config {
            global: Global {
                router_id: self.router_id.clone(),
                // keepalived's RT priority applies to its whole VRRP process; here to the
                // thread that sends adverts. Memory is locked by default either way.
                realtime_priority: self
                    .rt_priority
                    .unwrap_or(Global::default().realtime_priority),
                lock_memory: true,
                realtime_budget: self
                    .rttime_us
                    .map_or(Global::default().realtime_budget, Duration::from_micros),
                ..Global::default()
            },
            instances,
            trackers: self.trackers.iter().map(tracker_config).collect(),
            // keepalived has none: the import says so through `check`.
            witness: None,
        })
    }

    fn instance_config(&self, i: &Inst) -> anyhow::Result<InstanceConfig> {
        let ip = |what: &str, a: &str| -> anyhow::Result<IpAddr> {
            a.parse().with_context(|| {
                format!(
                    "vrrp_instance {}: {what} {a:?} is not an IP address",
                    i.name
                )
            })
        };
        let mut announce = Announce::default();
        for g in self.global_announce.iter().chain(&i.announce) {
            g.apply(&mut announce);
        }
        let mut notify = Notify::default();
        for (which, argv) in &i.notify {
            let slot = match *which {
                "master" => &mut notify.master,
                "backup" => &mut notify.backup,
                "fault" => &mut notify.fault,
                "stop" => &mut notify.stop,
                _ => &mut notify.any,
            };
            *slot = argv.clone();
        }
        Ok(InstanceConfig {
            name: i.name.clone(),
            interface: i.interface.clone().unwrap_or_default(),
            vrid: i.vrid.unwrap_or(0),
            priority: i.priority.unwrap_or(100),
            // keepalived's default is VRRPv2.
            version: i.version.or(self.version).unwrap_or(2),
            advert_interval: i.advert.unwrap_or(Duration::from_secs(1)),
            preempt: i.preempt,
            preempt_delay: i.preempt_delay.unwrap_or_default(),
            virtual_addresses: i
                .vips
                .iter()
                .map(|(address, device, label)| match (device, label) {
                    (None, None) => VirtualAddress::Plain(address.clone()),
                    _ => VirtualAddress::Detailed {
                        address: address.clone(),
                        device: device.clone(),
                        label: label.clone(),
                    },
                })
                .collect(),
            unicast_source: i
                .unicast_source
                .as_deref()
                .map(|a| ip("unicast_src_ip", a))
                .transpose()?,
            unicast_peers: i
                .unicast_peers
                .iter()
                .map(|a| ip("unicast_peer", a))
                .collect::<anyhow::Result<_>>()?,
            auth_pass: i.auth_pass.clone(),
            peers: Vec::new(),
            spoof_filter: false,
            refuse_released: true,
            reset_clients: true,
            tickle_answer: Default::default(),
            conn_ports: Vec::new(),
            v3_checksum: V3Checksum::default(),
            accept_mode: true,
            announce,
            track: i.track.clone(),
            notify,
            anti_flap: Duration::ZERO,
            mysql: None,
        })
    }
}

/// A keepalived script, track file or tracked interface as an xvrrpd tracker.
fn tracker_config(t: &Script) -> TrackerConfig {
    let interval = t.interval.unwrap_or(Duration::from_secs(1));
    TrackerConfig {
        name: t.name.clone(),
        kind: match t.kind {
            "exec" => TrackerKind::Exec,
            "file" => TrackerKind::File,
            _ => TrackerKind::Interface,
        },
        command: t.command.clone(),
        path: t.path.as_ref().map(Into::into),
        interval,
        // keepalived's default timeout is the interval.
        timeout: t.timeout.unwrap_or(if t.kind == "exec" {
            interval
        } else {
            Duration::from_secs(2)
        }),
        rise: t.rise.unwrap_or(1),
        fall: t.fall.unwrap_or(1),
        weight: t.weight,
        reverse: t.reverse,
        interface: t.interface.clone(),
        socket: None,
        host: None,
        port: None,
        credentials_file: None,
        query: None,
        read_only: None,
        replication: false,
        max_lag: None,
    }
}

#[cfg(test)]
mod tests;
