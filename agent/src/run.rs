//! `xvrrpd run`: the VRRP router. Feeds datapath events and deadlines to one engine per
//! instance and carries out what the engines decide.
//!
//! Start-up policy for VIPs left by a crash: every configured VIP found on its interface
//! is removed before the instance starts (as backup, or as master only for an owner). The
//! node then holds no VIP until it wins the election, so two owners never overlap longer
//! than the election itself takes.
use std::{collections::HashMap, net::IpAddr, path::Path, time::Duration};

use anyhow::{anyhow, Context};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
};
use tracing::{info, warn};
use xvrrpd_common::{DatapathConfig, VridKey, VridParams, FAMILY_V4, FAMILY_V6};

use crate::{
    config::{self, InstanceConfig, V3Checksum},
    datapath::{
        event::{DatapathEvent, EventKind},
        Datapath,
    },
    engine::{Action, Input, Instance, Instant, Settings, State},
    mysql::{
        conn::Server,
        guard::{Command as GuardCommand, Guard, Outcome as GuardOutcome},
    },
    net::{
        announce::Announcer,
        iface::Iface,
        monotonic_ns,
        tx::AdvertSender,
        vip::{self, Vip},
    },
    track::{self, Contribution, Effective},
    vrrp::packet::{Advertisement, ChecksumStyle},
};

/// Wake-ups this close before a deadline are treated as at the deadline.
const TIMER_SLACK_NS: u64 = 1_000_000;

/// One configured instance at run time.
struct Running {
    cfg: InstanceConfig,
    key: VridKey,
    engine: Instance,
    sender: AdvertSender,
    announcer: std::sync::Arc<Announcer>,
    vips: Vec<Vip>,
    /// Bumped whenever announcing must start over or stop (new master term, or the end of
    /// one): a burst task only sends while the generation it was started with is current.
    announce_gen: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Indices of the trackers this instance follows.
    track: Vec<usize>,
    notify: tokio::sync::mpsc::UnboundedSender<crate::notify::Transition>,
    /// Where transitions go as JSON lines (global.events_fifo).
    events: Option<std::path::PathBuf>,
    /// Write instances: the MySQL side of mastership.
    write: Option<WriteRole>,
}

/// A write instance's MySQL state as the main loop sees it. In Master, the VIPs are added
/// (and the master hooks run) only once the guard reports the server writable.
struct WriteRole {
    guard: Guard,
    /// The server is writable for the current master term: the VIPs may be up.
    writable: bool,
    /// The MASTER notification, held until the server is writable.
    pending_notify: Option<crate::notify::Transition>,
    /// Catch-up timed out under `stay-backup`: FAULT until the relay log is applied.
    blocked: bool,
}

impl Running {
    /// Appends one JSON line to the events stream, if configured.
    fn emit(&self, event: serde_json::Value) {
        if let Some(path) = &self.events {
            crate::notify::write_event(path, &event.to_string());
        }
    }

    fn advert(&self, priority: u8) -> Advertisement {
        let interval = if self.cfg.version == 2 {
            self.cfg.advert_interval.as_secs() as u16
        } else {
            (self.cfg.advert_interval.as_millis() / 10) as u16
        };
        let mut auth_data = [0u8; 8];
        let auth_type = match &self.cfg.auth_pass {
            Some(p) if self.cfg.version == 2 => {
                let n = p.len().min(8);
                auth_data[..n].copy_from_slice(&p.as_bytes()[..n]);
                1
            }
            _ => 0,
        };
        Advertisement {
            version: self.cfg.version,
            vrid: self.cfg.vrid,
            priority,
            interval,
            addresses: self.vips.iter().map(|v| v.addr).collect(),
            auth_type,
            auth_data,
        }
    }
}

pub async fn run(path: &Path) -> anyhow::Result<()> {
    let cfg = config::load(path, true).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        anyhow!(
            "invalid configuration {}:\n  {}",
            path.display(),
            list.join("\n  ")
        )
    })?;
    let nl = vip::connect().context("opening rtnetlink")?;
    let mut dp = Datapath::load().context("loading the XDP program")?;
    dp.set_config(DatapathConfig {
        default_priority: 0,
        only_listed: 1,
        emit_adverts: 1,
        _pad: [0; 5],
    })?;

    let mut instances = Vec::new();
    let mut by_key: HashMap<VridKey, usize> = HashMap::new();
    let mut interfaces: Vec<String> = Vec::new();
    let events = cfg.global.events_fifo.clone();
    if let Some(path) = &events {
        crate::notify::ensure_fifo(path)
            .with_context(|| format!("events_fifo {}", path.display()))?;
    }
    let mut notify_tasks = Vec::new();
    let (outcome_tx, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
    for ic in &cfg.instances {
        let (ntx, task) = crate::notify::spawn(ic.name.clone(), ic.vrid, ic.notify.clone());
        notify_tasks.push((task, ic.notify.timeout));
        let r = prepare(ic, &cfg.trackers, ntx, &nl)
            .await
            .with_context(|| format!("instance {:?}", ic.name))?;
        dp.set_params(r.key, VridParams::new(r.engine.priority()))?;
        let mut r = r;
        r.events = events.clone();
        if let Some(g) = &ic.mysql {
            let tracker = cfg
                .trackers
                .iter()
                .find(|t| t.name == g.server)
                .ok_or_else(|| anyhow!("instance {:?}: no tracker {:?}", ic.name, g.server))?;
            let server = Server::from_tracker(tracker)
                .map_err(|e| anyhow!("instance {:?}: mysql.server {:?}: {e}", ic.name, g.server))?;
            let mut guard = Guard::spawn(
                instances.len(),
                ic.name.clone(),
                server,
                g.clone(),
                outcome_tx.clone(),
            );
            // Start fenced: this node holds no VIP until it wins, so neither may its server
            // take writes (a mysqld left writable by a crash is made read-only now).
            guard.send(|term| GuardCommand::Demote { term });
            r.write = Some(WriteRole {
                guard,
                writable: false,
                pending_notify: None,
                blocked: false,
            });
        }
        by_key.insert(r.key, instances.len());
        if !interfaces.contains(&ic.interface) {
            interfaces.push(ic.interface.clone());
        }
        instances.push(r);
    }
    for iface in &interfaces {
        let mode = dp.attach(iface)?;
        info!(interface = %iface, %mode, "XDP program attached");
    }
    // SAFETY: the ring buffer owns its fd for as long as it is registered.
    let mut ring = unsafe { AsyncFd::register(dp.take_events()?) }
        .map_err(|e| anyhow!("polling the event ring buffer: {e}"))?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;

    // Trackers: contributions start as keepalived assumes (scripts good, files 0), except
    // MySQL checks, which start failing until they pass (see track::mysql).
    let mut contributions: Vec<Contribution> = cfg
        .trackers
        .iter()
        .map(|t| Contribution {
            weight: t.weight,
            reverse: t.reverse,
            healthy: t.kind != crate::config::TrackerKind::Mysql,
            file_value: (t.kind == crate::config::TrackerKind::File).then_some(0),
        })
        .collect();
    let (report_tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    for (i, t) in cfg.trackers.iter().enumerate() {
        track::runner::spawn(i, t.clone(), report_tx.clone());
    }

    // Link state from rtnetlink events: an instance whose interface loses carrier (or is set
    // down) goes to FAULT and gives up its VIPs, as keepalived does by default.
    let (link_tx, mut links) = tokio::sync::mpsc::unbounded_channel();
    crate::net::link::watch(link_tx)
        .await
        .context("watching link state")?;
    let mut link_up: HashMap<u32, bool> = HashMap::new();
    while let Ok((idx, up)) = links.try_recv() {
        link_up.insert(idx, up);
    }

    // Interface trackers: (tracker index, ifindex), seeded from the initial link dump.
    let iface_trackers: Vec<(usize, u32)> = cfg
        .trackers
        .iter()
        .enumerate()
        .filter(|(_, t)| t.kind == crate::config::TrackerKind::Interface)
        .filter_map(|(i, t)| {
            let name = t.interface.as_deref()?;
            match crate::datapath::ifindex(name) {
                Some(idx) => Some((i, idx)),
                None => {
                    warn!(tracker = %t.name, interface = name, "tracked interface does not exist: failing");
                    contributions[i].healthy = false;
                    None
                }
            }
        })
        .collect();
    for &(t, idx) in &iface_trackers {
        contributions[t].healthy = link_up.get(&idx).copied().unwrap_or(false);
    }

    let now = Instant(monotonic_ns());
    for r in &mut instances {
        let link_ok = link_up.get(&r.key.ifindex).copied().unwrap_or(true);
        let mut actions = track_input(r, &contributions, link_ok, now);
        actions.extend(r.engine.handle(Input::Startup { now }));
        apply(r, actions, &nl, &mut dp).await;
    }

    loop {
        let next = instances
            .iter()
            .filter_map(|r| r.engine.next_deadline())
            .min();
        let sleep = next.map_or(Duration::from_secs(3600), |d| {
            Duration::from_nanos(d.0.saturating_sub(monotonic_ns()))
        });
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting for datapath events")?;
                let mut events = Vec::new();
                while let Some(item) = guard.get_inner_mut().next() {
                    match DatapathEvent::decode(&item) {
                        Ok(ev) => events.push(ev),
                        Err(e) => warn!(error = %e, "undecodable datapath event"),
                    }
                }
                guard.clear_ready();
                for ev in events {
                    let Some(&i) = by_key.get(&VridKey::new(ev.ifindex, ev.family.raw(), ev.vrid)) else { continue };
                    let input = match ev.kind {
                        // Every valid advert arrives as `advert`; the change events describe
                        // the same packets, so only adverts and timer expiries drive the engine.
                        EventKind::Advert => Input::Advert {
                            now: Instant(ev.ts_ns),
                            src: ev.src,
                            priority: ev.priority,
                            interval: Duration::from_millis(ev.interval_cs as u64 * 10),
                        },
                        EventKind::MasterDown { .. } => Input::MasterDown { now: Instant(ev.ts_ns) },
                        _ => continue,
                    };
                    let r = &mut instances[i];
                    let actions = r.engine.handle(input);
                    apply(r, actions, &nl, &mut dp).await;
                }
            }
            _ = tokio::time::sleep(sleep) => {
                // tokio's timer has millisecond granularity and may wake a hair before the
                // deadline; count that as on time instead of spinning once more.
                let raw = monotonic_ns();
                let now = match next {
                    Some(d) if d.0 > raw && d.0 - raw < TIMER_SLACK_NS => d,
                    _ => Instant(raw),
                };
                for r in &mut instances {
                    if r.engine.next_deadline().is_some_and(|d| d <= now) {
                        let actions = r.engine.handle(Input::Tick { now });
                        apply(r, actions, &nl, &mut dp).await;
                    }
                }
            }
            Some(rep) = reports.recv() => {
                let name = &cfg.trackers[rep.tracker].name;
                info!(tracker = %name, healthy = rep.healthy, value = ?rep.file_value, "tracker changed");
                if let Some(c) = contributions.get_mut(rep.tracker) {
                    c.healthy = rep.healthy;
                    c.file_value = rep.file_value;
                }
                let now = Instant(monotonic_ns());
                for r in instances.iter_mut().filter(|r| r.track.contains(&rep.tracker)) {
                    let link_ok = link_up.get(&r.key.ifindex).copied().unwrap_or(true);
                    let actions = track_input(r, &contributions, link_ok, now);
                    apply(r, actions, &nl, &mut dp).await;
                }
            }
            Some((idx, up)) = links.recv() => {
                if link_up.insert(idx, up) == Some(up) {
                    continue;
                }
                // Interface trackers following this link.
                let followed: Vec<usize> = iface_trackers.iter().filter(|(_, i)| *i == idx).map(|(t, _)| *t).collect();
                for &t in &followed {
                    contributions[t].healthy = up;
                    info!(tracker = %cfg.trackers[t].name, up, "tracker changed");
                }
                let now = Instant(monotonic_ns());
                for r in instances.iter_mut().filter(|r| r.key.ifindex == idx || r.track.iter().any(|t| followed.contains(t))) {
                    info!(instance = %r.cfg.name, ifindex = idx, up, "link changed");
                    let link_ok = link_up.get(&r.key.ifindex).copied().unwrap_or(true);
                    let actions = track_input(r, &contributions, link_ok, now);
                    apply(r, actions, &nl, &mut dp).await;
                }
            }
            Some((i, outcome)) = outcomes.recv() => {
                let r = &mut instances[i];
                let actions = guard_outcome(r, outcome, &contributions, &link_up);
                apply(r, actions, &nl, &mut dp).await;
            }
            _ = sigint.recv() => { info!("SIGINT: shutting down"); break; }
            _ = sigterm.recv() => { info!("SIGTERM: shutting down"); break; }
        }
    }
    let now = Instant(monotonic_ns());
    for r in &mut instances {
        let actions = r.engine.handle(Input::Shutdown { now });
        apply(r, actions, &nl, &mut dp).await;
    }
    // A master's demotion (read_only = ON, clients killed) completes before we exit.
    for r in &mut instances {
        if let Some(w) = r.write.take() {
            w.guard.finish(Duration::from_secs(5)).await;
        }
    }
    drop(ring);
    drop(dp); // detaches the XDP program, frees maps and timers
              // Let queued hooks (the stop hooks included) finish, each bounded by its timeout.
    drop(instances);
    for (task, timeout) in notify_tasks {
        let _ = tokio::time::timeout(timeout * 4 + Duration::from_secs(1), task).await;
    }
    info!("stopped");
    Ok(())
}

/// The engine inputs that bring instance `r` in line with its link and trackers.
fn track_input(
    r: &mut Running,
    contributions: &[Contribution],
    link_ok: bool,
    now: Instant,
) -> Vec<Action> {
    let mine: Vec<Contribution> = r.track.iter().map(|&i| contributions[i]).collect();
    let mut actions = Vec::new();
    let blocked = r.write.as_ref().is_some_and(|w| w.blocked);
    let effective = if link_ok && !blocked {
        track::effective(r.engine.settings.priority, &mine)
    } else {
        Effective::Fault
    };
    match effective {
        Effective::Fault => actions.extend(r.engine.handle(Input::Fault { now })),
        Effective::Priority(p) => {
            if r.engine.state() == State::Fault {
                actions.extend(r.engine.handle(Input::FaultCleared { now }));
            }
            actions.extend(r.engine.handle(Input::Priority { now, priority: p }));
        }
    }
    actions
}

/// Carries a guard outcome into the instance: VIPs up once writable, FAULT on a
/// stay-backup catch-up timeout, back to the election once caught up.
fn guard_outcome(
    r: &mut Running,
    outcome: GuardOutcome,
    contributions: &[Contribution],
    link_up: &HashMap<u32, bool>,
) -> Vec<Action> {
    let now = Instant(monotonic_ns());
    let Some(term_now) = r.write.as_ref().map(|w| w.guard.term()) else {
        return Vec::new();
    };
    let name = r.cfg.name.clone();
    let link_ok = link_up.get(&r.key.ifindex).copied().unwrap_or(true);
    match outcome {
        GuardOutcome::Writable {
            term,
            catchup,
            target,
            forced,
        } if term == term_now && r.engine.state() == State::Master => {
            let catchup_ms = catchup.as_secs_f64() * 1e3;
            if forced {
                warn!(instance = %name, %target, "writable WITHOUT catch-up (on_catchup_timeout = promote-anyway)");
            } else {
                info!(instance = %name, catchup_ms, %target, "MySQL caught up and writable");
            }
            r.emit(serde_json::json!({
                "event": "writable", "ts_ns": now.0, "instance": name,
                "catchup_ms": catchup_ms, "forced": forced,
            }));
            let w = r.write.as_mut().expect("write role");
            w.writable = true;
            if let Some(t) = w.pending_notify.take() {
                let _ = r.notify.send(t);
            }
            vec![Action::AddVips, Action::Announce]
        }
        GuardOutcome::CatchupTimeout { term, target } if term == term_now => {
            let stay =
                r.cfg.mysql.as_ref().is_some_and(|g| {
                    g.on_catchup_timeout == crate::config::CatchupPolicy::StayBackup
                });
            r.emit(serde_json::json!({
                "event": "catchup_timeout", "ts_ns": now.0, "instance": name,
                "target": target, "stay_backup": stay,
            }));
            if !stay {
                return Vec::new();
            }
            warn!(instance = %name, %target, "staying out of the election (FAULT) until the relay log is applied");
            // FAULT removes nothing (the VIPs were never added) but demotes; once the
            // server is read-only again, the guard watches for the catch-up.
            r.write.as_mut().expect("write role").blocked = true;
            track_input(r, contributions, link_ok, now)
        }
        GuardOutcome::CaughtUp { term } if term == term_now => {
            r.write.as_mut().expect("write role").blocked = false;
            r.emit(serde_json::json!({"event": "caught_up", "ts_ns": now.0, "instance": name}));
            let actions = track_input(r, contributions, link_ok, now);
            // It never served writes in that term: nothing to damp.
            r.engine.release_hold(now);
            actions
        }
        GuardOutcome::ReadOnly { term, killed } => {
            r.emit(serde_json::json!({
                "event": "read_only", "ts_ns": now.0, "instance": name, "killed": killed,
            }));
            let w = r.write.as_mut().expect("write role");
            if w.blocked && term == term_now {
                w.guard.send(|term| GuardCommand::WatchCatchup { term });
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// Reads the interface, clears crash leftovers, opens the sockets, builds the engine.
async fn prepare(
    ic: &InstanceConfig,
    trackers: &[crate::config::TrackerConfig],
    notify: tokio::sync::mpsc::UnboundedSender<crate::notify::Transition>,
    nl: &rtnetlink::Handle,
) -> anyhow::Result<Running> {
    let iface = Iface::read(&ic.interface)?
        .ok_or_else(|| anyhow!("interface {:?} does not exist", ic.interface))?;
    let mut vips = Vec::new();
    for va in &ic.virtual_addresses {
        let (addr, prefix) = config::parse_prefixed(va.address()).map_err(|e| anyhow!(e))?;
        let (dev, label) = match va {
            config::VirtualAddress::Plain(_) => (None, None),
            config::VirtualAddress::Detailed { device, label, .. } => {
                (device.clone(), label.clone())
            }
        };
        let ifindex = match &dev {
            Some(d) => crate::datapath::ifindex(d)
                .ok_or_else(|| anyhow!("VIP device {d:?} does not exist"))?,
            None => iface.index,
        };
        vips.push(Vip {
            addr,
            prefix,
            ifindex,
            label,
        });
    }
    for v in &vips {
        if vip::present(nl, v).await? {
            warn!(instance = %ic.name, vip = %v.addr, "VIP left on the interface (earlier crash?): removing it before the election");
            vip::remove(nl, v).await?;
        }
    }
    let vip_addrs: Vec<IpAddr> = vips.iter().map(|v| v.addr).collect();
    let v6 = vip_addrs.first().is_some_and(IpAddr::is_ipv6);
    let src =
        match (ic.unicast_source, v6) {
            (Some(s), _) => s,
            (None, false) => IpAddr::V4(iface.primary_v4(&vip_addrs).ok_or_else(|| {
                anyhow!("{} has no IPv4 address to send adverts from", ic.interface)
            })?),
            (None, true) => IpAddr::V6(
                iface
                    .link_local_v6()
                    .ok_or_else(|| anyhow!("{} has no IPv6 link-local address", ic.interface))?,
            ),
        };
    let style = match ic.v3_checksum {
        V3Checksum::PseudoHeader => ChecksumStyle::PseudoHeader,
        V3Checksum::NoPseudoHeader => ChecksumStyle::NoPseudoHeader,
        V3Checksum::PseudoHeaderMulticast => ChecksumStyle::PseudoHeaderMulticast,
    };
    let sender = AdvertSender::new(&ic.interface, iface.index, src, &ic.unicast_peers, style)
        .with_context(|| format!("opening the advert socket on {}", ic.interface))?;
    let announcer = std::sync::Arc::new(Announcer::new(&ic.interface, iface.index, iface.mac)?);
    let engine = Instance::new(Settings {
        version: ic.version,
        priority: ic.priority,
        advert_interval: ic.advert_interval,
        preempt: ic.preempt,
        preempt_delay: ic.preempt_delay,
        primary_address: src,
        min_learned_interval: Duration::from_millis(10),
        anti_flap: ic.anti_flap,
    });
    let key = VridKey::new(iface.index, if v6 { FAMILY_V6 } else { FAMILY_V4 }, ic.vrid);
    Ok(Running {
        cfg: ic.clone(),
        key,
        engine,
        sender,
        announcer,
        vips,
        announce_gen: Default::default(),
        track: ic
            .track
            .iter()
            .filter_map(|t| trackers.iter().position(|tc| &tc.name == t))
            .collect(),
        notify,
        events: None,
        write: None,
    })
}

/// Carries out the engine's actions in order. Failures are logged, never fatal: the
/// engine's view stays authoritative and the next advert or tick retries.
async fn apply(r: &mut Running, actions: Vec<Action>, nl: &rtnetlink::Handle, dp: &mut Datapath) {
    for a in actions {
        match a {
            Action::Transition { from, to, reason } => {
                info!(
                    instance = %r.cfg.name,
                    vrid = r.cfg.vrid,
                    from = from.name(),
                    to = to.name(),
                    reason = reason.name(),
                    priority = r.engine.priority(),
                    "transition"
                );
                let t = crate::notify::Transition {
                    from,
                    to,
                    priority: r.engine.priority(),
                    reason: reason.name(),
                    ts_ns: monotonic_ns(),
                };
                if let Some(path) = &r.events {
                    crate::notify::write_event(
                        path,
                        &crate::notify::event_json(&r.cfg.name, r.cfg.vrid, &t),
                    );
                }
                match &mut r.write {
                    // Master hooks run once the server is writable and the VIPs are up.
                    Some(w) if to == State::Master && !w.writable => w.pending_notify = Some(t),
                    _ => {
                        let _ = r.notify.send(t);
                    }
                }
            }
            Action::SendAdvert { priority } => {
                if let Err(e) = r.sender.send(&r.advert(priority)) {
                    warn!(instance = %r.cfg.name, error = %e, "sending advert");
                }
            }
            Action::AddVips if r.write.as_ref().is_some_and(|w| !w.writable) => {
                // Catch-up and read_only = OFF first; the VIPs follow the guard's outcome.
                let w = r.write.as_mut().expect("write role");
                w.guard.send(|term| GuardCommand::Promote { term });
                info!(instance = %r.cfg.name, "promoting MySQL: catch-up, then read_only = OFF, then the VIPs");
            }
            Action::AddVips => {
                for v in &r.vips {
                    if let Err(e) = vip::add(nl, v).await {
                        warn!(instance = %r.cfg.name, error = %e, "adding VIP");
                    }
                }
            }
            Action::RemoveVips => {
                // Never announce an address we are giving up.
                r.announce_gen
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                for v in &r.vips {
                    if let Err(e) = vip::remove(nl, v).await {
                        warn!(instance = %r.cfg.name, error = %e, "removing VIP");
                    }
                }
                // Then fence the server: the VIP is gone, so no new client reaches it.
                if let Some(w) = &mut r.write {
                    w.writable = false;
                    w.pending_notify = None;
                    w.guard.send(|term| GuardCommand::Demote { term });
                }
            }
            Action::Announce if r.write.as_ref().is_some_and(|w| !w.writable) => {}
            Action::Announce => spawn_announce(r),
            Action::SetLocalPriority { priority } => {
                if let Err(e) = dp.set_params(r.key, VridParams::new(priority)) {
                    warn!(instance = %r.cfg.name, error = %e, "updating datapath priority");
                }
            }
        }
    }
}

/// Bursts of GARP / NA (count × burst_delay), one repeat burst after `repeat_after`, then
/// one announcement every `refresh` while this master term lasts. Off the main loop; stops
/// as soon as the VIPs are removed or a new term starts.
fn spawn_announce(r: &Running) {
    use std::sync::atomic::Ordering;
    let announcer = r.announcer.clone();
    let addrs: Vec<IpAddr> = r.vips.iter().map(|v| v.addr).collect();
    let a = r.cfg.announce.clone();
    let name = r.cfg.name.clone();
    let gen = r.announce_gen.clone();
    let mine = gen.fetch_add(1, Ordering::SeqCst) + 1;
    let current = move || gen.load(Ordering::SeqCst) == mine;
    tokio::spawn(async move {
        let send = |n: u32| {
            for ip in &addrs {
                if let Err(e) = announcer.announce(*ip) {
                    warn!(instance = %name, vip = %ip, error = %e, burst = n, "gratuitous ARP/NA");
                }
            }
        };
        let bursts = if a.repeat_after.is_zero() { 1 } else { 2 };
        for b in 0..bursts {
            if b > 0 {
                tokio::time::sleep(a.repeat_after).await;
            }
            for n in 0..a.count {
                if n > 0 {
                    tokio::time::sleep(a.burst_delay).await;
                }
                if !current() {
                    return;
                }
                send(n);
            }
        }
        while !a.refresh.is_zero() {
            tokio::time::sleep(a.refresh).await;
            if !current() {
                return;
            }
            send(0);
        }
    });
}
