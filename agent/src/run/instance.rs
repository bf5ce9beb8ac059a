//! One configured instance at run time: its decision core, sockets, VIPs, MySQL guard, and
//! the code that carries out what the core decides. Nothing here decides: see
//! [`crate::role`].
use std::{
    net::IpAddr,
    path::PathBuf,
    sync::{atomic::AtomicU64, Arc},
};

use anyhow::{anyhow, Context};
use tokio::sync::{broadcast, mpsc::UnboundedSender};
use tracing::{debug, info, warn};
use xvrrpd_common::{VridKey, VridParams, FAMILY_V4, FAMILY_V6};

use xvrrpd_core::events::Record;

use super::{records::event, tell::*};

use crate::{
    config::{self, InstanceConfig, TrackerConfig, V3Checksum},
    control::status::{Hold, InstanceStatus, LastTransition},
    datapath::{state::VridSnapshot, Datapath},
    engine::{Instant, Settings, State},
    metrics::{self, state_number, Metrics},
    mysql::guard::Guard,
    net::{
        announce::{Announcer, Announcers},
        iface::Ifaces,
        monotonic_ns, pacer,
        tx::AdvertSender,
        vip::{self, Vip},
    },
    notify::Transition,
    role::{Action, Core, Outcome as GuardOutcome},
    vrrp::packet::{Advertisement, ChecksumStyle},
};

/// Where events go: the configured FIFO/file and the control socket's `events` followers.
#[derive(Clone)]
pub struct EventSink {
    pub fifo: Option<PathBuf>,
    pub tx: broadcast::Sender<String>,
}

impl EventSink {
    /// One record: a JSON line to the FIFO and the control socket's followers, and a
    /// journal entry with its fields (`XVRRPD_EVENT`, `XVRRPD_INSTANCE`,
    /// `XVRRPD_RECORD`). Every record of the stream goes through here.
    pub fn emit(&self, record: &Record) {
        let line = record.line();
        info!(
            target: "xvrrpd::events",
            event = %record.kind(),
            instance = record.instance().unwrap_or(""),
            record = %line,
            "event"
        );
        if let Some(path) = &self.fifo {
            crate::notify::write_event(path, &line);
        }
        // No follower is not an error.
        let _ = self.tx.send(line);
    }
}

/// Kernel counters last folded into the metrics (they are cumulative in the kernel).
#[derive(Default)]
pub struct SeenCounters {
    adverts: u64,
    missed: u64,
    master_down: u64,
    stalls: u64,
    invalid: [u64; xvrrpd_common::INVALID_REASONS],
}

/// Handles on one instance's most-updated metric series (see [`Running::series`]).
pub struct Series {
    pub state: prometheus_client::metrics::gauge::Gauge,
    pub priority_effective: prometheus_client::metrics::gauge::Gauge,
    pub priority_configured: prometheus_client::metrics::gauge::Gauge,
    pub adverts_sent: prometheus_client::metrics::counter::Counter,
    /// Observed for every advert heard: looked up once, not by label hash each time.
    pub advert_gap: prometheus_client::metrics::histogram::Histogram,
}

impl Series {
    fn of(m: &Metrics, labels: &metrics::Labels) -> Self {
        Self {
            state: m.state.get_or_create(labels).clone(),
            priority_effective: m.priority_effective.get_or_create(labels).clone(),
            priority_configured: m.priority_configured.get_or_create(labels).clone(),
            adverts_sent: m.adverts_sent.get_or_create(labels).clone(),
            advert_gap: m.advert_gap.get_or_create(labels).clone(),
        }
    }
}

pub struct Running {
    /// Stable across reloads: guard outcomes are tagged with it.
    pub id: u64,
    pub cfg: InstanceConfig,
    pub key: VridKey,
    /// Every decision: the VRRP engine and the write role.
    pub core: Core,
    pub sender: AdvertSender,
    /// The periodic adverts of a mastership, sent on time by the pacer thread.
    pub paced: pacer::Slot,
    /// Write instances serving: the self-fence heartbeat the pacer beats.
    pub beat: Option<Arc<crate::datapath::beat::Beat>>,
    /// Where that heartbeat reports a stall.
    pub stalls: Option<UnboundedSender<(u64, u64)>>,
    /// The advert's frames for the priority last sent: everything else in them is fixed
    /// for the instance's life, so the engine's periodic advert (every interval, per
    /// instance) neither builds nor checksums anything.
    pub advert_frames: Option<(u8, crate::net::tx::Frames)>,
    pub announcer: Arc<Announcer>,
    pub vips: Vec<Vip>,
    /// Bumped whenever announcing must start over or stop (new master term, or the end of
    /// one): a burst task only sends while the generation it was started with is current.
    pub announce_gen: Arc<AtomicU64>,
    pub notify: UnboundedSender<Transition>,
    pub events: EventSink,
    /// Write instances: the task that carries out promotions and fences.
    pub guard: Option<Guard>,
    /// Requests to the witness (etcd), answered into the main loop.
    pub witness: Option<UnboundedSender<crate::witness::lease::Request>>,
    pub metrics: Arc<Metrics>,
    pub labels: Vec<(&'static str, String)>,
    /// This instance's series that change with every advert or transition, looked up
    /// once: a lookup hashes the label set under a lock, and the main loop updates them
    /// after every tick of every instance (thousands a second at scale).
    pub series: Series,
    pub last_transition: Option<(Transition, std::time::Instant)>,
    /// Kernel timestamp of the last advert received (advert gap histogram).
    pub last_advert_ns: Option<u64>,
    pub seen: SeenCounters,
    /// What the datapath knows of this VRID (priority, spoofing checks).
    pub params: VridParams,
    /// Where the core's [`Memory`] is kept across agent restarts.
    pub memory_file: PathBuf,
    /// Master: the clients' connections to this instance's VIPs, as the datapath tracks
    /// them.
    pub conns: crate::conntrack::Table,
    /// Backup: the master's, as it last copied them here (tickled at takeover).
    pub peer_conns: crate::conntrack::Table,
    /// Source of the last valid advert: the master a backup asks for the copy.
    pub master_src: Option<std::net::IpAddr>,
    /// The last warning about another host claiming a VIP: when, the claimer, the VIP.
    pub last_claim_log: Option<(std::time::Instant, [u8; 6], std::net::IpAddr)>,
}

impl Running {
    /// Appends one record to the events stream ([`EventSink::emit`]).
    pub fn emit(&self, record: &Record) {
        self.events.emit(record);
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

    /// Sets the state, priority and writable gauges from the engine.
    pub fn refresh_gauges(&self) {
        let m = &self.metrics;
        self.series.state.set(state_number(self.core.state()));
        self.series
            .priority_effective
            .set(self.core.engine().priority() as i64);
        self.series
            .priority_configured
            .set(self.cfg.priority as i64);
        if let Some(w) = self.core.writable() {
            m.mysql_writable.get_or_create(&self.labels).set(w as i64);
        }
        if let Some(t) = self.core.write_term() {
            m.mysql_write_term.get_or_create(&self.labels).set(t as i64);
        }
        if self.core.writable().is_some() {
            m.mysql_divergent
                .get_or_create(&self.labels)
                .set(!self.core.errant().is_empty() as i64);
            m.mysql_guard_blocked
                .get_or_create(&self.labels)
                .set(self.core.guard_blocked().is_some() as i64);
            m.mysql_behind
                .get_or_create(&self.labels)
                .set(self.core.behind().map_or(0, |(n, _)| n) as i64);
        }
    }

    /// Folds the kernel's per-VRID counters into the metrics.
    pub fn fold_kernel_counters(&mut self, snap: &VridSnapshot) {
        let m = &self.metrics;
        let delta = |now: u64, seen: &mut u64| {
            let d = now.saturating_sub(*seen);
            *seen = now;
            d
        };
        m.adverts_received
            .get_or_create(&self.labels)
            .inc_by(delta(snap.adverts, &mut self.seen.adverts));
        m.missed_intervals
            .get_or_create(&self.labels)
            .inc_by(delta(snap.missed, &mut self.seen.missed));
        m.master_down
            .get_or_create(&self.labels)
            .inc_by(delta(snap.master_down, &mut self.seen.master_down));
        m.stalls
            .get_or_create(&self.labels)
            .inc_by(delta(snap.stalls, &mut self.seen.stalls));
        for r in 0..xvrrpd_common::INVALID_REASONS {
            let d = delta(snap.invalid[r], &mut self.seen.invalid[r]);
            if d > 0 {
                let reason = crate::datapath::event::reason_name(r as u32);
                m.invalid_adverts
                    .get_or_create(&metrics::with(&self.labels, &[("reason", reason)]))
                    .inc_by(d);
            }
        }
    }

    /// The `status` view of this instance.
    pub fn status(&self, trackers: Vec<crate::control::status::TrackerStatus>) -> InstanceStatus {
        let engine = self.core.engine();
        let state = engine.state();
        let master = match state {
            State::Master => Some(self.sender.source().to_string()),
            State::Backup => engine.master().map(|m| m.to_string()),
            _ => None,
        };
        let now = Instant(monotonic_ns());
        let hold = engine.preempt_hold_until();
        let hold = (state == State::Backup && hold > now).then(|| {
            if hold == Instant::FOREVER {
                Hold::UntilMasterFails
            } else {
                Hold::Seconds(hold.since(now).as_secs_f64())
            }
        });
        InstanceStatus {
            name: self.cfg.name.clone(),
            interface: self.cfg.interface.clone(),
            vrid: self.cfg.vrid,
            state: state.name().to_string(),
            priority: engine.priority(),
            configured_priority: self.cfg.priority,
            master,
            vips: self
                .vips
                .iter()
                .map(|v| format!("{}/{}", v.addr, v.prefix))
                .collect(),
            last_transition: self.last_transition.as_ref().map(|(t, at)| LastTransition {
                from: t.from.name().to_string(),
                to: t.to.name().to_string(),
                reason: t.reason.to_string(),
                ago_s: at.elapsed().as_secs_f64(),
            }),
            trackers,
            writable: self.core.writable(),
            write_term: self.core.write_term(),
            fencing_term: self.core.lease_term(),
            awaiting_write_key: self.core.awaiting_lease(),
            errant: self.core.errant().to_vec(),
            blocked: self
                .core
                .guard_blocked()
                .map(|b| format!("{}: {}", b.step, b.error)),
            switchover_refused: self.core.switchover_refused().map(str::to_string),
            behind: self
                .core
                .behind()
                .map(|(n, names)| format!("{n} transactions missing from the peer ({names})")),
            hold,
        }
    }
}

/// Removes the instance's VIPs found on their interfaces (left by a crashed agent) before
/// its election: a restarted node owns nothing until it wins again.
/// Removes the instance's VIPs that `ifaces` (read at start) shows on their interfaces.
pub async fn clear_leftovers(name: &str, vips: &[Vip], ifaces: &Ifaces, nl: &rtnetlink::Handle) {
    for v in vips.iter().filter(|v| ifaces.holds(v.ifindex, v.addr)) {
        warn!(instance = %name, vip = %v.addr, "VIP left on the interface (earlier crash?): removing it before the election");
        if let Err(e) = vip::remove(nl, v).await {
            warn!(instance = %name, vip = %v.addr, error = %e, "removing a leftover VIP");
        }
    }
}

/// The instance's VIPs, each on its interface (`ifindex`: the instance's own, unless the
/// address names a device).
pub fn vips_of(ic: &InstanceConfig, ifindex: u32) -> anyhow::Result<Vec<Vip>> {
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
            None => ifindex,
        };
        vips.push(Vip {
            addr,
            prefix,
            ifindex,
            label,
        });
    }
    Ok(vips)
}

/// Reads the interface, opens the sockets, builds the core. Changes nothing on the node:
/// a reload prepares every new instance before it touches a running one.
/// The self-fence's bound, in advert intervals: a host whose adverts stopped for longer
/// may have been replaced (every Master_Down_Interval is longer than three intervals).
const SELF_FENCE_INTERVALS: u32 = 3;

/// What the process shares with the instances it prepares: the advert pacer thread, one
/// GARP / NA sender per interface, the link socket, and one reading of the interfaces.
pub struct Shared<'a> {
    pub pacer: &'a pacer::Pacer,
    pub announcers: &'a mut Announcers,
    /// The link-layer socket multicast adverts go out on (see [`crate::net::tx`]).
    pub link: &'a Arc<socket2::Socket>,
    pub ifaces: &'a Ifaces,
}

pub fn prepare(
    id: u64,
    ic: &InstanceConfig,
    memory_file: PathBuf,
    notify: UnboundedSender<Transition>,
    events: EventSink,
    metrics: Arc<Metrics>,
    shared: Shared<'_>,
) -> anyhow::Result<Running> {
    let Shared {
        pacer,
        announcers,
        link,
        ifaces,
    } = shared;
    let iface = ifaces
        .get(&ic.interface)
        .ok_or_else(|| anyhow!("interface {:?} does not exist", ic.interface))?;
    let vips = vips_of(ic, iface.index)?;
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
    let link = iface.ethernet.then_some((link, iface.mac));
    let sender = AdvertSender::new(
        &ic.interface,
        iface.index,
        src,
        &ic.unicast_peers,
        style,
        link,
    )
    .with_context(|| format!("opening the advert socket on {}", ic.interface))?;
    let announcer = announcers.get(&ic.interface, iface.index, iface.mac, iface.link_local_v6())?;
    let mut core = Core::new(
        settings(ic, src),
        ic.mysql.as_ref().map(|g| g.on_catchup_timeout),
    );
    if let Some(m) = super::kept::recall(&memory_file, ic.anti_flap) {
        info!(instance = %ic.name, was_master = m.master, "state kept by the previous agent: no preemption inside the anti-flap hold");
        core.restore(m, Instant(monotonic_ns()));
    }
    let key = VridKey::new(iface.index, if v6 { FAMILY_V6 } else { FAMILY_V4 }, ic.vrid);
    let labels = metrics::instance_labels(&ic.name, &ic.interface, ic.vrid);
    let series = Series::of(&metrics, &labels);
    // The pacer thread counts what it sends in the instance's own counter.
    let sent = series.adverts_sent.clone();
    Ok(Running {
        id,
        labels,
        series,
        cfg: ic.clone(),
        key,
        core,
        sender,
        paced: pacer.slot(sent),
        beat: None,
        stalls: None,
        advert_frames: None,
        announcer,
        vips,
        announce_gen: Default::default(),
        notify,
        events,
        guard: None,
        witness: None,
        metrics,
        last_transition: None,
        last_advert_ns: None,
        seen: SeenCounters::default(),
        params: datapath_params(ic, ic.priority),
        memory_file,
        // Sized to the datapath's tables by the caller.
        conns: crate::conntrack::Table::new(0),
        peer_conns: crate::conntrack::Table::new(0),
        master_src: None,
        last_claim_log: None,
    })
}

/// The datapath parameters of an instance: local priority, peers, v2 password, filter.
pub fn datapath_params(ic: &InstanceConfig, priority: u8) -> VridParams {
    let mut p = VridParams::new(priority);
    p.filter = ic.spoof_filter as u8;
    let sources = ic.advert_sources();
    for (slot, ip) in p.peers.iter_mut().zip(sources) {
        *slot = crate::datapath::event::raw_addr(*ip);
    }
    p.peer_count = sources.len().min(xvrrpd_common::MAX_PEERS) as u8;
    if let (2, Some(pass)) = (ic.version, &ic.auth_pass) {
        p.auth_type = 1;
        let n = pass.len().min(8);
        p.auth[..n].copy_from_slice(&pass.as_bytes()[..n]);
    }
    p
}

/// The engine settings an instance config asks for.
pub fn settings(ic: &InstanceConfig, primary: IpAddr) -> Settings {
    Settings {
        version: ic.version,
        priority: ic.priority,
        advert_interval: ic.advert_interval,
        preempt: ic.preempt,
        preempt_delay: ic.preempt_delay,
        primary_address: primary,
        min_learned_interval: std::time::Duration::from_millis(10),
        anti_flap: ic.anti_flap,
    }
}

/// Carries out the core's actions in order. Failures are logged, never fatal: the core's
/// view stays authoritative and the next advert or tick retries.
pub async fn apply(
    r: &mut Running,
    actions: Vec<Action>,
    nl: &rtnetlink::Handle,
    dp: &mut Datapath,
) {
    // Nothing decided, nothing to show: a routine advert to a backup (thousands a second
    // at scale). A write instance's role may change its gauges without an action.
    if actions.is_empty() && r.cfg.mysql.is_none() {
        return;
    }
    for a in actions {
        match a {
            Action::Transition(t) => {
                info!(
                    instance = %r.cfg.name,
                    vrid = r.cfg.vrid,
                    from = t.from.name(),
                    to = t.to.name(),
                    reason = t.reason,
                    priority = t.priority,
                    "transition"
                );
                r.metrics
                    .transitions
                    .get_or_create(&metrics::with(
                        &r.labels,
                        &[
                            ("from", t.from.name()),
                            ("to", t.to.name()),
                            ("reason", t.reason),
                        ],
                    ))
                    .inc();
                r.emit(&crate::notify::transition_record(
                    &r.cfg.name,
                    r.cfg.vrid,
                    &t,
                ));
                r.last_transition = Some((t, std::time::Instant::now()));
            }
            Action::Notify(t) => {
                let _ = r.notify.send(t);
            }
            Action::SendAdvert { priority } => {
                if r.advert_frames.as_ref().is_none_or(|(p, _)| *p != priority) {
                    r.advert_frames = Some((priority, r.sender.frames(&r.advert(priority))));
                }
                let frames = &r.advert_frames.as_ref().expect("built above").1;
                // A mastership that goes on is paced by the pacer thread; the engine's
                // periodic advert only feeds it. A first advert, new content, or the
                // priority-0 one of a master leaving go out from here at once.
                let send_now = if priority == 0 || r.core.state() != State::Master {
                    r.paced.stop();
                    true
                } else {
                    let interval = r.cfg.advert_interval;
                    r.paced
                        .advert(frames, interval, r.sender.socket(), monotonic_ns())
                };
                if send_now {
                    if let Err(e) = r.sender.send(frames) {
                        warn!(instance = %r.cfg.name, error = %e, "sending advert");
                    } else {
                        r.series.adverts_sent.inc();
                    }
                }
            }
            Action::AddVips => {
                // A write instance's master beats for the self-fence from the start: a
                // host that stands still later is refused clients at the VIPs until it
                // has heard the peer out.
                if let (Some(_), Some(stalls)) = (&r.cfg.mysql, &r.stalls) {
                    let bound = (r.cfg.advert_interval * SELF_FENCE_INTERVALS).as_nanos() as u64;
                    match dp.beat(r.id as u32, bound, monotonic_ns(), stalls.clone()) {
                        Ok(b) => {
                            let b = Arc::new(b);
                            r.paced.set_beat(Some(b.clone()));
                            r.beat = Some(b);
                        }
                        Err(e) => {
                            warn!(instance = %r.cfg.name, error = %e, "no self-fence heartbeat: a host that stands still will not refuse its clients")
                        }
                    }
                }
                for v in &r.vips {
                    // Stop refusing before the address is ours: never reset our own.
                    if let Err(e) = dp.reclaim_vip(v.ifindex, v.addr) {
                        warn!(instance = %r.cfg.name, error = %e, "clearing the VIP's refusal");
                    }
                    if let Err(e) = vip::add(nl, v).await {
                        warn!(instance = %r.cfg.name, error = %e, "adding VIP");
                        continue;
                    }
                    if let Err(e) = dp.hold_vip(v.ifindex, v.addr, r.id as u32, &r.cfg.conn_ports) {
                        warn!(instance = %r.cfg.name, error = %e, "tracking the VIP's client connections");
                    }
                }
                spawn_tickles(r, dp);
            }
            Action::RemoveVips => {
                // Leaving mastership: no paced advert after this one.
                r.paced.stop();
                r.paced.set_beat(None);
                if let Some(b) = r.beat.take() {
                    if b.stalled() {
                        info!(instance = %r.cfg.name, "this host had stood still: its clients were refused at the VIPs until now");
                    }
                    if let Err(e) = b.end() {
                        warn!(instance = %r.cfg.name, error = %e, "ending the self-fence heartbeat");
                    }
                }
                // Never announce an address we are giving up.
                r.announce_gen
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Its connections are the next master's to track; they are told to go.
                let leaving: Vec<crate::conntrack::Conn> = r.conns.iter().copied().collect();
                // None known, none dropped: the kernel table is not walked. A connection
                // whose report is still queued stays there, for a VIP no longer held, and
                // ages out like any silent one.
                let known_none = leaving.is_empty() && r.conns.dropped == 0;
                r.conns.clear();
                r.metrics.conns_tracked.get_or_create(&r.labels).set(0);
                for v in &r.vips {
                    if let Err(e) = dp.unhold_vip(v.ifindex, v.addr, known_none) {
                        warn!(instance = %r.cfg.name, error = %e, "forgetting the VIP's client connections");
                    }
                    if let Err(e) = dp.forget_tickles(Some((v.ifindex, v.addr)), 0) {
                        warn!(instance = %r.cfg.name, error = %e, "no longer answering tickles");
                    }
                    // Refused before the address goes: a SYN that lands between the two
                    // would be dropped by the kernel (no longer a local address), and the
                    // client's connect would wait for its retransmission, a second. Its
                    // connections here are being torn down anyway.
                    if r.cfg.refuse_released {
                        match dp.release_vip(v.ifindex, v.addr) {
                            Ok(()) => {
                                debug!(instance = %r.cfg.name, vip = %v.addr, ifindex = v.ifindex, "refusing TCP for the released VIP")
                            }
                            Err(e) => {
                                warn!(instance = %r.cfg.name, error = %e, "refusing TCP for the released VIP")
                            }
                        }
                    }
                    if let Err(e) = vip::remove(nl, v).await {
                        warn!(instance = %r.cfg.name, error = %e, "removing VIP");
                    }
                }
                spawn_release_tickles(r, leaving);
            }
            Action::Announce => spawn_announce(r),
            Action::ClearStall => {
                if let Some(b) = &r.beat {
                    match b.clear() {
                        Ok(()) => {
                            info!(instance = %r.cfg.name, "the peer heard out: clients reach the VIPs again")
                        }
                        Err(e) => {
                            warn!(instance = %r.cfg.name, error = %e, "clearing the self-fence")
                        }
                    }
                }
            }
            Action::Witness(req) => match &r.witness {
                Some(tx) => {
                    let _ = tx.send(req);
                }
                None => warn!(instance = %r.cfg.name, "no witness client running"),
            },
            Action::SetLocalPriority { priority } => {
                r.params.priority = priority;
                if let Err(e) = dp.set_params(r.key, r.params) {
                    warn!(instance = %r.cfg.name, error = %e, "updating datapath priority");
                }
            }
            Action::Guard(cmd) => match &r.guard {
                Some(g) => {
                    if let crate::role::Command::Promote { .. } = cmd {
                        info!(instance = %r.cfg.name, "promoting MySQL: catch-up, then read_only = OFF, then the VIPs");
                    }
                    g.send(cmd);
                }
                None => warn!(instance = %r.cfg.name, ?cmd, "no MySQL guard running"),
            },
            Action::Event(e) => event(r, e),
            Action::Remember(m) => {
                if let Err(e) = super::kept::remember(&r.memory_file, m) {
                    warn!(instance = %r.cfg.name, file = %r.memory_file.display(), error = %e, "keeping state for the next agent");
                }
            }
        }
    }
    r.refresh_gauges();
}

/// Spawns the write guard of a write instance (start-up, or a reload that made it one).
/// The core's first command follows: fence the server.
pub fn start_guard(
    r: &mut Running,
    server: crate::mysql::conn::Server,
    outcomes: UnboundedSender<(usize, GuardOutcome)>,
) -> Vec<Action> {
    let Some(g) = &r.cfg.mysql else {
        return Vec::new();
    };
    r.guard = Some(Guard::spawn(
        r.id as usize,
        r.cfg.name.clone(),
        server,
        g.clone(),
        outcomes,
    ));
    r.core.guard_started()
}

/// Gives a write instance its write lease: the core waits for the key before it
/// promotes, and a task sends its requests to etcd, one at a time, answering into
/// `answers` with the instance's id; through `tls` (`[witness.tls]`, loaded) when set.
pub fn start_witness(
    r: &mut Running,
    w: &crate::config::WitnessConfig,
    tls: Option<crate::witness::tls::Tls>,
    me: &str,
    answers: UnboundedSender<(u64, crate::witness::lease::Answer)>,
) {
    if r.cfg.mysql.is_none() {
        return;
    }
    let timing = w.timing();
    r.core.set_witness(me, timing);
    let mut client = crate::witness::etcd::Client::new(
        w.etcd.clone(),
        w.key(&r.cfg.name),
        me.to_string(),
        tls,
        // Within the holder's time after a renewal, with room for a second try.
        (timing.holder_valid() / 2).min(std::time::Duration::from_millis(500)),
    )
    // A renewal commits in a few ms on a LAN; half a renew interval is one that hangs.
    .with_attempt((timing.renew_every / 2).max(std::time::Duration::from_millis(20)));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let id = r.id;
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let answer = client.send(&req).await;
            if answers.send((id, answer)).is_err() {
                return;
            }
        }
    });
    info!(instance = %r.cfg.name, key = %w.key(&r.cfg.name), tls = w.tls.is_some(), "write lease through the witness");
    r.witness = Some(tx);
}

/// The server a write instance's guard drives: its `mysql.server` tracker's, with the
/// credentials read now (a reload checks this before it changes anything).
pub fn guard_server(
    ic: &InstanceConfig,
    trackers: &[TrackerConfig],
) -> anyhow::Result<crate::mysql::conn::Server> {
    let Some(g) = &ic.mysql else {
        anyhow::bail!("instance {:?} has no [instance.mysql]", ic.name);
    };
    let tracker = trackers
        .iter()
        .find(|t| t.name == g.server)
        .ok_or_else(|| anyhow!("instance {:?}: no tracker {:?}", ic.name, g.server))?;
    crate::mysql::conn::Server::from_tracker(tracker)
        .map_err(|e| anyhow!("instance {:?}: mysql.server {:?}: {e}", ic.name, g.server))
}
