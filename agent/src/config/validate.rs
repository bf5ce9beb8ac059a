//! Semantic checks: everything serde cannot see. Every problem names its key and the fix.
use std::{collections::HashMap, net::IpAddr, time::Duration};

use super::{Config, InstanceConfig, Problem};

/// An address with its prefix length, parsed from `"192.0.2.100/24"` (prefix optional:
/// /32 or /128).
pub fn parse_prefixed(s: &str) -> Result<(IpAddr, u8), String> {
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = a
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        None => max,
        Some(p) => p
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|&p| p <= max)
            .ok_or_else(|| format!("prefix in {s:?} must be 0–{max}"))?,
    };
    Ok((addr, prefix))
}

pub fn validate(cfg: &Config, check_interfaces: bool) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut vrids: HashMap<(&str, bool, u8), usize> = HashMap::new();
    if cfg.instances.is_empty() {
        out.push(problem(
            "instance",
            "no instances: add at least one [[instance]] table",
        ));
    }
    if cfg.global.realtime_priority > 99 {
        out.push(problem(
            "global.realtime_priority",
            &format!(
                "{} is not a SCHED_FIFO priority: use 1–99, or 0 for ordinary scheduling",
                cfg.global.realtime_priority
            ),
        ));
    }
    if cfg.global.realtime_priority > 0
        && !(Duration::from_millis(1)..=Duration::from_secs(1))
            .contains(&cfg.global.realtime_budget)
    {
        out.push(problem(
            "global.realtime_budget",
            "must be 1ms–1s: the advert thread blocks between adverts, so it needs microseconds; too small and the kernel kills the agent, too large and a bug could hold a core",
        ));
    }
    if !(1024..=4 * 1024 * 1024).contains(&cfg.global.conn_table_size) {
        out.push(problem(
            "global.conn_table_size",
            &format!(
                "{} is out of range: use 1024–4194304 (each slot costs ~100 bytes of locked kernel memory, twice)",
                cfg.global.conn_table_size
            ),
        ));
    }
    if let Some(w) = &cfg.witness {
        validate_witness(w, &mut out);
    }
    let mut tracker_names: HashMap<&str, usize> = HashMap::new();
    for (i, t) in cfg.trackers.iter().enumerate() {
        let mut push = |k: &str, m: String| {
            out.push(Problem {
                key: format!("tracker[{i}].{k}"),
                line: None,
                message: m,
            })
        };
        if let Some(prev) = tracker_names.insert(t.name.as_str(), i) {
            push(
                "name",
                format!("{:?} is also the name of tracker[{prev}]", t.name),
            );
        }
        match t.kind {
            super::TrackerKind::Exec if t.command.is_empty() => push(
                "command",
                "an exec tracker needs command = [\"/path/to/program\", \"args\"...]".into(),
            ),
            super::TrackerKind::File if t.path.is_none() => push(
                "path",
                "a file tracker needs path = \"/path/to/file\"".into(),
            ),
            _ => {}
        }
        if t.interval.is_zero() {
            push("interval", "must be more than 0".into());
        }
        if t.timeout.is_zero() {
            push("timeout", "must be more than 0".into());
        }
        if !(-253..=253).contains(&t.weight) {
            push("weight", "must be -253–253 (keepalived's range)".into());
        }
        if t.rise == 0 || t.fall == 0 {
            push(
                if t.rise == 0 { "rise" } else { "fall" },
                "must be at least 1".into(),
            );
        }
    }
    for (i, inst) in cfg.instances.iter().enumerate() {
        let key = |k: &str| format!("instance[{i}].{k}");
        let mut push = |k: &str, m: String| {
            out.push(Problem {
                key: key(k),
                line: None,
                message: m,
            })
        };
        if let Some(prev) = names.insert(inst.name.as_str(), i) {
            push(
                "name",
                format!(
                    "{:?} is also the name of instance[{prev}]; names must be unique",
                    inst.name
                ),
            );
        }
        if inst.name.is_empty() {
            push("name", "must not be empty".into());
        }
        if inst.conn_ports.len() > xvrrpd_common::MAX_CONN_PORTS {
            push(
                "conn_ports",
                format!(
                    "{} ports listed: at most {}; leave it empty to track every port",
                    inst.conn_ports.len(),
                    xvrrpd_common::MAX_CONN_PORTS
                ),
            );
        }
        if inst.conn_ports.contains(&0) {
            push(
                "conn_ports",
                "0 is not a TCP port: list the server's ports, e.g. [3306]".into(),
            );
        }
        if inst.vrid == 0 {
            push("vrid", "must be 1–255".into());
        }
        if inst.priority == 0 {
            push(
                "priority",
                "must be 1–255 (0 is reserved for a master that is leaving)".into(),
            );
        }
        check_version_and_interval(inst, &mut push);
        let v6 = check_addresses(inst, &mut push);
        if let Some(v6) = v6 {
            if let Some(prev) = vrids.insert((inst.interface.as_str(), v6, inst.vrid), i) {
                push(
                    "vrid",
                    format!(
                        "VRID {} is already used on {} for {} by instance[{prev}]; pick another VRID",
                        inst.vrid,
                        inst.interface,
                        if v6 { "IPv6" } else { "IPv4" }
                    ),
                );
            }
            for (j, peer) in inst.unicast_peers.iter().enumerate() {
                if peer.is_ipv6() != v6 {
                    push(
                        &format!("unicast_peers[{j}]"),
                        format!("{peer} is not of the VIPs' address family"),
                    );
                }
            }
            for (j, peer) in inst.peers.iter().enumerate() {
                if peer.is_ipv6() != v6 {
                    push(
                        &format!("peers[{j}]"),
                        format!("{peer} is not of the VIPs' address family"),
                    );
                }
            }
            if let Some(src) = inst.unicast_source {
                if src.is_ipv6() != v6 {
                    push(
                        "unicast_source",
                        format!("{src} is not of the VIPs' address family"),
                    );
                }
            }
        }
        if let Some(pass) = &inst.auth_pass {
            if inst.version != 2 {
                push(
                    "auth_pass",
                    "authentication exists only in VRRPv2: remove it or set version = 2".into(),
                );
            }
            if pass.len() > 8 || pass.is_empty() {
                push(
                    "auth_pass",
                    "must be 1–8 bytes (keepalived truncates longer ones)".into(),
                );
            }
        }
        let peers = inst.advert_sources();
        if inst.spoof_filter && peers.is_empty() {
            push(
                "spoof_filter",
                "needs the other routers' addresses: set peers = [\"...\"] (or unicast_peers)"
                    .into(),
            );
        }
        if peers.len() > xvrrpd_common::MAX_PEERS {
            push(
                if inst.peers.is_empty() {
                    "unicast_peers"
                } else {
                    "peers"
                },
                format!(
                    "the spoofing filter checks at most {} advert sources; list fewer",
                    xvrrpd_common::MAX_PEERS
                ),
            );
        }
        if inst.preempt_delay > Duration::from_secs(3600) {
            push(
                "preempt_delay",
                "more than an hour: did you mean seconds?".into(),
            );
        }
        if !inst.preempt && !inst.preempt_delay.is_zero() {
            push(
                "preempt_delay",
                "has no effect with preempt = false: remove one of them".into(),
            );
        }
        for (j, t) in inst.track.iter().enumerate() {
            if !tracker_names.contains_key(t.as_str()) {
                push(
                    &format!("track[{j}]"),
                    format!("no [[tracker]] is named {t:?}"),
                );
            }
        }
        if inst.anti_flap > Duration::from_secs(86400) {
            push("anti_flap", "more than a day: did you mean seconds?".into());
        }
        if let Some(g) = &inst.mysql {
            match cfg.trackers.iter().find(|t| t.name == g.server) {
                None => push(
                    "mysql.server",
                    format!(
                        "no [[tracker]] is named {:?}: add a tracker of kind \"mysql\" for the local server and name it here",
                        g.server
                    ),
                ),
                Some(t) if t.kind != super::TrackerKind::Mysql => push(
                    "mysql.server",
                    format!("tracker {:?} is not of kind \"mysql\"", g.server),
                ),
                Some(_) => {}
            }
            if g.catchup_timeout.is_zero() {
                push(
                    "mysql.catchup_timeout",
                    "must be more than 0 (e.g. \"10s\")".into(),
                );
            }
            if !inst.track.contains(&g.server) {
                push(
                    "track",
                    format!(
                        "a write instance must follow its server: add {:?} to track",
                        g.server
                    ),
                );
            }
        }
        let a = &inst.announce;
        if a.count == 0 || a.count > 100 {
            push("announce.count", "must be 1–100 packets per burst".into());
        }
        if a.burst_delay > Duration::from_secs(1) {
            push("announce.burst_delay", "must be at most 1s".into());
        }
        if check_interfaces && crate::datapath::ifindex(&inst.interface).is_none() {
            push(
                "interface",
                format!(
                    "{:?} does not exist on this host (see `ip link`)",
                    inst.interface
                ),
            );
        }
    }
    out
}

fn problem(key: &str, message: &str) -> Problem {
    Problem {
        key: key.into(),
        line: None,
        message: message.into(),
    }
}

fn check_version_and_interval(inst: &InstanceConfig, push: &mut impl FnMut(&str, String)) {
    let iv = inst.advert_interval;
    match inst.version {
        2 => {
            if iv.subsec_nanos() != 0 || iv.as_secs() == 0 || iv.as_secs() > 255 {
                push(
                    "advert_interval",
                    format!(
                        "{iv:?}: VRRPv2 sends whole seconds, 1s–255s; use version = 3 for shorter"
                    ),
                );
            }
        }
        3 => {
            let cs_exact = iv.as_nanos().is_multiple_of(10_000_000);
            if !cs_exact || iv < Duration::from_millis(10) || iv > Duration::from_millis(40_950) {
                push(
                    "advert_interval",
                    format!("{iv:?}: VRRPv3 sends multiples of 10ms between 10ms and 40.95s"),
                );
            }
        }
        v => push("version", format!("{v} is not a VRRP version: use 2 or 3")),
    }
}

/// Checks the VIPs; returns the instance's family (true = IPv6) when it is consistent.
fn check_addresses(inst: &InstanceConfig, push: &mut impl FnMut(&str, String)) -> Option<bool> {
    if inst.virtual_addresses.is_empty() {
        push(
            "virtual_addresses",
            "no VIPs: list at least one, e.g. [\"192.0.2.100/24\"]".into(),
        );
        return None;
    }
    let mut family = None;
    let mut ok = true;
    for (j, va) in inst.virtual_addresses.iter().enumerate() {
        let k = format!("virtual_addresses[{j}]");
        match parse_prefixed(va.address()) {
            Err(e) => {
                push(&k, e);
                ok = false;
            }
            Ok((addr, _)) => {
                let v6 = addr.is_ipv6();
                if v6 && inst.version == 2 {
                    push(
                        &k,
                        format!("{addr}: VRRPv2 carries IPv4 only; use version = 3"),
                    );
                    ok = false;
                }
                match family {
                    None => family = Some(v6),
                    Some(f) if f != v6 => {
                        push(&k, format!("{addr}: one instance carries one address family; put IPv4 and IPv6 VIPs in separate instances"));
                        ok = false;
                    }
                    _ => {}
                }
            }
        }
    }
    if ok {
        family
    } else {
        None
    }
}

/// The fence a holder whose time is up must complete inside `2 × margin` (the write
/// guard kills a server that answers nothing after this long).
const FENCE_BOUND: Duration = crate::role::demotion::HUNG_KILL;

fn validate_witness(w: &super::WitnessConfig, out: &mut Vec<Problem>) {
    if w.etcd.is_empty() {
        out.push(problem(
            "witness.etcd",
            "no etcd members: list their client addresses, e.g. [\"192.0.2.30:2379\"] (three members on three hosts)",
        ));
    }
    for (i, e) in w.etcd.iter().enumerate() {
        let ok = e
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok || e.contains("://") {
            out.push(problem(
                &format!("witness.etcd[{i}]"),
                &format!("{e:?} is not host:port: write e.g. \"192.0.2.30:2379\" (no http://)"),
            ));
        }
    }
    if !w.prefix.starts_with('/') {
        out.push(problem(
            "witness.prefix",
            &format!("{:?} must start with / (e.g. \"/xvrrpd/pair1\")", w.prefix),
        ));
    }
    if w.margin * 2 < FENCE_BOUND {
        out.push(problem(
            "witness.margin",
            &format!(
                "{:?} is too short: twice the margin must cover a holder's fence, up to {FENCE_BOUND:?} (a server that answers nothing is killed then); use at least {:?}",
                w.margin,
                FENCE_BOUND / 2
            ),
        ));
    }
    if let Some(t) = &w.tls {
        if t.cert.is_some() != t.key.is_some() {
            out.push(problem(
                if t.cert.is_some() { "witness.tls.key" } else { "witness.tls.cert" },
                "give cert and key together (this node's client certificate and its key), or neither",
            ));
        }
        if t.server_name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            out.push(problem(
                "witness.tls.server_name",
                "empty: leave it out to check each member's certificate against its host in witness.etcd",
            ));
        }
    }
    if w.lease < w.margin + Duration::from_millis(100) {
        out.push(problem(
            "witness.lease",
            &format!(
                "{:?} leaves the holder less than 100 ms after a renewal (lease − margin): renewals could not keep up; use at least margin + 250ms",
                w.lease
            ),
        ));
    }
}
