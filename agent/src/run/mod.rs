//! `xvrrpd run`: the VRRP router. Feeds datapath events, deadlines, tracker and guard
//! results to one decision core per instance ([`crate::role`]) and carries out what the
//! cores decide; answers the control socket; reloads.
//!
//! Start-up policy for VIPs left by a crash: every configured VIP found on its interface
//! is removed before the instance starts (as backup, or as master only for an owner). The
//! node then holds no VIP until it wins the election, so two owners never overlap longer
//! than the election itself takes.
mod conns;
mod datapath;
mod instance;
mod kept;
mod records;
mod reload;
mod requests;
mod tell;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{anyhow, Context};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
    sync::{broadcast, mpsc, oneshot},
};
use tracing::{debug, info, warn};
use xvrrpd_common::{gstat, DatapathConfig, VridKey};

use crate::{
    config::{self, Config, TrackerConfig, TrackerKind},
    control::{
        self,
        status::{Status, TrackerStatus},
        Request, Response,
    },
    datapath::{
        event::{DatapathEvent, EventKind},
        Datapath,
    },
    engine::{Input as VrrpInput, Instant},
    metrics::{self, Metrics},
    net::{monotonic_ns, vip},
    role::{Input, Outcome as GuardOutcome, Tracking},
    track::{self, runner::Report, Contribution},
};
use instance::{apply, EventSink, Running};

/// Wake-ups this close before a deadline are treated as at the deadline.
const TIMER_SLACK_NS: u64 = 1_000_000;

/// The loop reads the event ring at least this often: routine adverts are queued there
/// without a wake-up (the datapath wakes it for everything else).
const ROUTINE_READ: Duration = Duration::from_millis(xvrrpd_common::ROUTINE_READ_MS);

/// Every event queued in the datapath's ring, in order.
fn read_events(ring: &mut aya::maps::RingBuf<aya::maps::MapData>) -> Vec<DatapathEvent> {
    let mut evs = Vec::new();
    while let Some(item) = ring.next() {
        match DatapathEvent::decode(&item) {
            Ok(ev) => evs.push(ev),
            Err(e) => warn!(error = %e, "undecodable datapath event"),
        }
    }
    evs
}

/// Where the maintenance flag is kept, beside the control socket: it survives an agent
/// restart (a drained node stays drained), not a reboot.
fn maintenance_marker(socket: &Path) -> PathBuf {
    socket.with_file_name("maintenance")
}

/// A tracker at run time.
struct TrackerRt {
    /// Stable across reloads: reports are tagged with it.
    id: u64,
    cfg: TrackerConfig,
    contribution: Contribution,
    task: Option<tokio::task::AbortHandle>,
    /// Interface trackers: the link followed.
    ifindex: Option<u32>,
}

impl Drop for TrackerRt {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Everything the main loop owns.
pub struct Router {
    path: PathBuf,
    cfg: Config,
    nl: rtnetlink::Handle,
    dp: Datapath,
    /// Sends every master instance's periodic adverts on time (its own thread).
    pacer: crate::net::pacer::Pacer,
    /// The GARP / NA senders, one per interface.
    announcers: crate::net::announce::Announcers,
    /// The link-layer socket multicast adverts go out on.
    link: Arc<socket2::Socket>,
    instances: Vec<Running>,
    by_key: HashMap<VridKey, usize>,
    attached: Vec<String>,
    trackers: Vec<TrackerRt>,
    link_up: HashMap<u32, bool>,
    maintenance: bool,
    control_socket: PathBuf,
    /// Where instances keep their state for the next agent ([`kept`]).
    state_dir: PathBuf,
    metrics: Arc<Metrics>,
    events: broadcast::Sender<String>,
    report_tx: mpsc::UnboundedSender<Report>,
    outcome_tx: mpsc::UnboundedSender<(usize, GuardOutcome)>,
    /// Stalls the pacer found in a write instance's heartbeat: (instance id, the gap in
    /// its beats, ns).
    stall_tx: mpsc::UnboundedSender<(u64, u64)>,
    /// Witness answers, tagged with the instance id.
    witness_tx: mpsc::UnboundedSender<(u64, crate::witness::lease::Answer)>,
    notify_tasks: Vec<(tokio::task::JoinHandle<()>, Duration)>,
    next_id: u64,
    started: std::time::Instant,
    /// Wall-clock start, ms since the epoch: part of the witness identity.
    started_unix_ms: u128,
    /// Kernel-wide counters last folded into the metrics (invalid by reason, refused).
    seen_invalid: [u64; gstat::COUNT as usize],
    /// The copy of the master's client connections to the peers (with a key).
    conn_sync: Option<conns::ConnSync>,
    /// Housekeeping ticks, for what connection tracking does less often.
    conn_ticks: u32,
}

/// Options of `xvrrpd run` beyond the configuration file.
pub struct RunOptions {
    pub config: PathBuf,
    pub control_socket: PathBuf,
    /// What must survive a reboot (`/var/lib/xvrrpd`): see [`kept`].
    pub state_dir: PathBuf,
}

fn load(path: &Path) -> anyhow::Result<Config> {
    config::load(path, true).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        anyhow!(
            "invalid configuration {}:\n  {}",
            path.display(),
            list.join("\n  ")
        )
    })
}

pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let cfg = load(&opts.config)?;
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&opts.state_dir)
            .with_context(|| {
                format!(
                    "state directory {} (--state-dir): it keeps what must survive a reboot",
                    opts.state_dir.display()
                )
            })?;
    }
    let metrics = Arc::new(Metrics::new());
    let (events, _) = broadcast::channel(1024);
    let (calls_tx, mut calls) = mpsc::channel::<control::server::Call>(16);
    // Bound first: a second agent on this node is refused before it touches anything.
    let _socket = control::server::start(&opts.control_socket, calls_tx, events.clone())
        .await
        .context("control socket")?;
    if let Some(addr) = cfg.global.metrics_listen {
        metrics::serve(addr, metrics.clone())
            .await
            .with_context(|| format!("metrics_listen {addr}"))?;
        info!(%addr, "metrics at http://{addr}/metrics");
    }
    // Memory locked before the pacer starts: nothing that sends adverts is paged out.
    if cfg.global.lock_memory {
        match crate::net::pacer::lock_memory() {
            Ok(()) => info!("memory locked (mlockall): memory pressure cannot page the agent out"),
            Err(e) => {
                warn!(error = %e, "memory NOT locked: under memory pressure adverts can be late")
            }
        }
    }
    let pacer = crate::net::pacer::Pacer::spawn(crate::net::pacer::Realtime {
        priority: cfg.global.realtime_priority,
        budget: cfg.global.realtime_budget,
    })
    .context("starting the advert pacer thread")?;
    let nl = vip::connect().context("opening rtnetlink")?;
    // Before the slow part of starting (loading the XDP program): a VIP a killed agent
    // left behind answers ARP for it, against the master elsewhere, until it goes. A
    // configuration error here is reported below, where the instance is prepared.
    if let Ok(ifaces) = crate::net::iface::Ifaces::read() {
        for ic in &cfg.instances {
            if let Some(iface) = ifaces.get(&ic.interface) {
                if let Ok(vips) = instance::vips_of(ic, iface.index) {
                    instance::clear_leftovers(&ic.name, &vips, &ifaces, &nl).await;
                }
            }
        }
    }
    let mut dp =
        Datapath::load_sized(cfg.global.conn_table_size).context("loading the XDP program")?;
    dp.set_config(DatapathConfig {
        default_priority: 0,
        only_listed: 1,
        emit_adverts: 1,
        _pad: [0; 5],
    })?;
    if let Some(path) = &cfg.global.events_fifo {
        crate::notify::ensure_fifo(path)
            .with_context(|| format!("events_fifo {}", path.display()))?;
    }
    // SAFETY: the ring buffer owns its fd for as long as it is registered.
    let mut ring = unsafe { AsyncFd::register(dp.take_events()?) }
        .map_err(|e| anyhow!("polling the event ring buffer: {e}"))?;
    // SAFETY: as above.
    let mut conn_ring = unsafe { AsyncFd::register(dp.take_conn_events()?) }
        .map_err(|e| anyhow!("polling the connection ring buffer: {e}"))?;
    // SAFETY: as above.
    let mut xdp_log = unsafe { AsyncFd::register(dp.take_logger()?) }
        .map_err(|e| anyhow!("polling the XDP program's log: {e}"))?;
    let (conn_sync, mut sync_rx) = match &cfg.global.conn_sync_key {
        Some(key) => {
            let (s, rx) = conns::ConnSync::start(key, cfg.global.conn_sync_port)?;
            (Some(s), rx)
        }
        None => (None, mpsc::channel(1).1),
    };
    // Changes reach the peers at most this far behind.
    let mut sync_flush = tokio::time::interval(Duration::from_millis(10));
    sync_flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    // Link state from rtnetlink events: an instance whose interface loses carrier (or is set
    // down) goes to FAULT and gives up its VIPs, as keepalived does by default.
    let (link_tx, mut links) = mpsc::unbounded_channel();
    crate::net::link::watch(link_tx)
        .await
        .context("watching link state")?;
    let mut link_up: HashMap<u32, bool> = HashMap::new();
    while let Ok((idx, up)) = links.try_recv() {
        link_up.insert(idx, up);
    }
    let (report_tx, mut reports) = mpsc::unbounded_channel();
    let (outcome_tx, mut outcomes) = mpsc::unbounded_channel();
    let (witness_tx, mut witness_answers) = mpsc::unbounded_channel();
    let (stall_tx, mut stalls) = mpsc::unbounded_channel();
    let maintenance = maintenance_marker(&opts.control_socket).exists();
    if maintenance {
        warn!(
            "maintenance flag set (xvrrpd maintenance off to clear): every instance stays in FAULT"
        );
    }
    metrics.maintenance.set(maintenance as i64);
    let mut router = Router {
        path: opts.config.clone(),
        cfg: Config {
            global: cfg.global.clone(),
            instances: Vec::new(),
            trackers: Vec::new(),
            witness: None,
        },
        nl,
        dp,
        pacer,
        announcers: Default::default(),
        link: crate::net::tx::link_socket().context("opening the link-layer advert socket")?,
        instances: Vec::new(),
        by_key: HashMap::new(),
        attached: Vec::new(),
        trackers: Vec::new(),
        link_up,
        maintenance,
        control_socket: opts.control_socket.clone(),
        state_dir: opts.state_dir.clone(),
        metrics,
        events,
        report_tx,
        outcome_tx,
        stall_tx,
        witness_tx,
        notify_tasks: Vec::new(),
        next_id: 1,
        started: std::time::Instant::now(),
        started_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
        seen_invalid: [0; gstat::COUNT as usize],
        conn_sync,
        conn_ticks: 0,
    };
    // Start-up is a reload from nothing.
    router.apply_config(cfg).await?;

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    // The watchdog is pinged from this loop only: a stuck state machine stops the pings.
    let watchdog = sd_notify::watchdog_enabled();
    let house_every = watchdog.map_or(Duration::from_secs(1), |w| {
        (w / 2).min(Duration::from_secs(1))
    });
    let mut housekeeping = tokio::time::interval(house_every);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status_line = router.status_line();
    let _ = sd_notify::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status_line),
    ]);
    info!(instances = router.instances.len(), "running");

    loop {
        // Routine adverts wait in the ring without a wake-up: every turn of the loop reads
        // them (reading an empty ring costs no system call). Not only when the sleep below
        // ends: any other branch restarts that sleep, and a control client polling every
        // 10 ms kept the adverts unread (CI: 6 of 10 seen).
        for ev in read_events(ring.get_mut()) {
            router.datapath_event(ev).await;
        }
        // One pass: the earliest wake-up and the instances due then (only they are
        // ticked; one whose deadline a datapath event moved earlier meanwhile is found
        // by the next pass, at once).
        let mut next: Option<Instant> = None;
        let mut due: Vec<usize> = Vec::new();
        for (i, r) in router.instances.iter().enumerate() {
            let Some(w) = r.core.next_wake() else {
                continue;
            };
            match next {
                Some(n) if w > n => {}
                Some(n) if w == n => due.push(i),
                _ => {
                    next = Some(w);
                    due.clear();
                    due.push(i);
                }
            }
        }
        let sleep = next.map_or(ROUTINE_READ, |d| {
            Duration::from_nanos(d.0.saturating_sub(monotonic_ns())).min(ROUTINE_READ)
        });
        tokio::select! {
            // Adverts already received are always handled before a deadline: a starved
            // agent that wakes late must not take over from a master whose adverts are
            // waiting in the ring buffer.
            biased;
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting for datapath events")?;
                // Cleared before reading: an event committed meanwhile wakes us again.
                guard.clear_ready();
                let evs = read_events(guard.get_inner_mut());
                for ev in evs {
                    router.datapath_event(ev).await;
                }
            }
            _ = tokio::time::sleep(sleep) => {
                // Routine adverts wait in the ring without waking this loop: read them
                // before any deadline is judged, so none is judged without them.
                for ev in read_events(ring.get_mut()) {
                    router.datapath_event(ev).await;
                }
                // tokio's timer has millisecond granularity and may wake a hair before the
                // deadline; count that as on time instead of spinning once more.
                let raw = monotonic_ns();
                let now = match next {
                    Some(d) if d.0 > raw && d.0 - raw < TIMER_SLACK_NS => d,
                    _ => Instant(raw),
                };
                let Router { instances, nl, dp, .. } = &mut router;
                for &i in &due {
                    let Some(r) = instances.get_mut(i) else { continue };
                    if r.core.next_wake().is_some_and(|d| d <= now) {
                        let actions = r.core.handle(Input::Vrrp(VrrpInput::Tick { now }));
                        apply(r, actions, nl, dp).await;
                    }
                }
            }
            guard = xdp_log.readable_mut() => {
                let mut guard = guard.context("waiting for the XDP program's log")?;
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
            guard = conn_ring.readable_mut() => {
                let mut guard = guard.context("waiting for connection events")?;
                let mut evs = Vec::new();
                while let Some(item) = guard.get_inner_mut().next() {
                    if item.len() >= std::mem::size_of::<xvrrpd_common::ConnEvent>() {
                        // SAFETY: the ring carries ConnEvent records (plain bytes, any
                        // alignment read).
                        evs.push(unsafe {
                            std::ptr::read_unaligned(item.as_ptr().cast::<xvrrpd_common::ConnEvent>())
                        });
                    }
                }
                guard.clear_ready();
                router.conn_events(evs);
            }
            Some((from, msg, fresh)) = sync_rx.recv() => router.sync_message(from, msg, fresh),
            _ = sync_flush.tick() => router.sync_flush(),
            Some(rep) = reports.recv() => router.tracker_report(rep).await,
            Some((idx, up)) = links.recv() => router.link_change(idx, up).await,
            Some((id, outcome)) = outcomes.recv() => router.guard_outcome(id as u64, outcome).await,
            Some((id, answer)) = witness_answers.recv() => router.witness_answer(id, answer).await,
            Some((id, gap)) = stalls.recv() => router.stalled(id, gap).await,
            Some((req, reply)) = calls.recv() => router.control(req, reply).await,
            _ = sighup.recv() => {
                info!("SIGHUP: reloading the configuration");
                if let Err(e) = router.reload().await {
                    warn!("reload refused, the running configuration stays: {e:#}");
                }
            }
            _ = housekeeping.tick() => {
                let now = Instant(monotonic_ns());
                let overdue = router.instances.iter().find(|r| r.core.fence_overdue(now));
                match (watchdog.is_some(), overdue) {
                    (true, None) => {
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                    }
                    (_, Some(r)) => {
                        warn!(instance = %r.cfg.name, "the write key was lost and the server is still not read-only: watchdog ping withheld")
                    }
                    _ => {}
                }
                router.refresh_metrics();
                router.conn_housekeeping();
                router.stall_housekeeping().await;
                // What `systemctl status` shows, when it changed.
                let line = router.status_line();
                if line != status_line {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&line)]);
                    status_line = line;
                }
            }
            _ = sigint.recv() => { info!("SIGINT: shutting down"); break; }
            _ = sigterm.recv() => { info!("SIGTERM: shutting down"); break; }
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    router.shutdown().await;
    drop(ring);
    drop(conn_ring);
    drop(xdp_log);
    info!("stopped");
    Ok(())
}

impl Router {
    fn contributions_of(&self, r: &Running) -> Vec<Contribution> {
        self.trackers
            .iter()
            .filter(|t| r.cfg.track.contains(&t.cfg.name))
            .map(|t| t.contribution)
            .collect()
    }

    fn link_ok(&self, r: &Running) -> bool {
        self.link_up.get(&r.key.ifindex).copied().unwrap_or(true)
    }

    /// Gives instance `i` the current state of its trackers, link and the maintenance flag.
    async fn retrack(&mut self, i: usize, now: Instant) {
        let r = &self.instances[i];
        let server_up = r.cfg.mysql.as_ref().is_none_or(|g| {
            self.trackers
                .iter()
                .find(|t| t.cfg.name == g.server)
                .is_some_and(|t| t.contribution.healthy)
        });
        let tracking = Tracking {
            trackers: self.contributions_of(r),
            link_ok: self.link_ok(r),
            maintenance: self.maintenance,
            server_up,
        };
        self.feed(i, Input::Track { now, tracking }).await;
    }

    /// Hands instance `i`'s core an input and carries out what it decides.
    pub(super) async fn feed(&mut self, i: usize, input: Input) {
        let Router {
            instances, nl, dp, ..
        } = self;
        let r = &mut instances[i];
        let actions = r.core.handle(input);
        apply(r, actions, nl, dp).await;
    }

    async fn tracker_report(&mut self, rep: Report) {
        let Some(t) = self.trackers.iter_mut().find(|t| t.id == rep.tracker) else {
            return; // a tracker removed by a reload
        };
        info!(tracker = %t.cfg.name, healthy = rep.healthy, value = ?rep.file_value, "tracker changed");
        t.contribution.healthy = rep.healthy;
        t.contribution.file_value = rep.file_value;
        let name = t.cfg.name.clone();
        self.set_tracker_gauge(&name);
        let now = Instant(monotonic_ns());
        for i in 0..self.instances.len() {
            let cfg = &self.instances[i].cfg;
            let drives = cfg.mysql.as_ref().is_some_and(|g| g.server == name);
            if cfg.track.contains(&name) || drives {
                self.retrack(i, now).await;
            }
        }
    }

    fn set_tracker_gauge(&self, name: &str) {
        if let Some(t) = self.trackers.iter().find(|t| t.cfg.name == name) {
            self.metrics
                .tracker_up
                .get_or_create(&metrics::tracker_labels(&t.cfg.name, kind_name(t.cfg.kind)))
                .set(t.contribution.healthy as i64);
        }
    }

    async fn link_change(&mut self, idx: u32, up: bool) {
        if self.link_up.insert(idx, up) == Some(up) {
            return;
        }
        let mut followed = Vec::new();
        for t in self.trackers.iter_mut().filter(|t| t.ifindex == Some(idx)) {
            t.contribution.healthy = up;
            info!(tracker = %t.cfg.name, up, "tracker changed");
            followed.push(t.cfg.name.clone());
        }
        for name in &followed {
            self.set_tracker_gauge(name);
        }
        let now = Instant(monotonic_ns());
        for i in 0..self.instances.len() {
            let r = &self.instances[i];
            if r.key.ifindex == idx || r.cfg.track.iter().any(|t| followed.contains(t)) {
                info!(instance = %r.cfg.name, ifindex = idx, up, "link changed");
                self.retrack(i, now).await;
            }
        }
    }

    async fn witness_answer(&mut self, id: u64, answer: crate::witness::lease::Answer) {
        let Some(i) = self.instances.iter().position(|r| r.id == id) else {
            return; // an instance removed by a reload
        };
        let now = Instant(monotonic_ns());
        self.feed(i, Input::Witness { now, answer }).await;
    }

    /// This node's name: `router_id`, else the host name.
    fn node_name(&self) -> String {
        self.cfg.global.router_id.clone().unwrap_or_else(hostname)
    }

    /// Who this agent is in the witness's key: the node's name, this process and when it
    /// started. Never the name alone: two hosts cloned from one image share a host name,
    /// and a key naming "me" lets this process take it at once (see `witness::lease`);
    /// a restarted agent is someone else, and waits like anyone else.
    fn witness_identity(&self) -> String {
        format!(
            "{}:{}:{}",
            self.node_name(),
            std::process::id(),
            self.started_unix_ms
        )
    }

    async fn guard_outcome(&mut self, id: u64, outcome: GuardOutcome) {
        let Some(i) = self.instances.iter().position(|r| r.id == id) else {
            return; // an instance removed by a reload
        };
        let now = Instant(monotonic_ns());
        self.feed(i, Input::Guard { now, outcome }).await;
    }

    /// Folds the kernel's counters into the metrics; updates uptime.
    fn refresh_metrics(&mut self) {
        self.metrics
            .uptime
            .set(self.started.elapsed().as_secs_f64());
        if let Ok(states) = self.dp.states() {
            for snap in states {
                if let Some(&i) = self.by_key.get(&snap.key) {
                    self.instances[i].fold_kernel_counters(&snap);
                }
            }
        }
        if let Ok(stats) = self.dp.global_stats() {
            let refused = &mut self.seen_invalid[gstat::REFUSED as usize];
            let now = stats[gstat::REFUSED as usize];
            self.metrics
                .datapath_refused
                .inc_by(now.saturating_sub(*refused));
            *refused = now;
            let full = &mut self.seen_invalid[gstat::CONNS_FULL as usize];
            let now = stats[gstat::CONNS_FULL as usize];
            self.metrics.conns_full.inc_by(now.saturating_sub(*full));
            *full = now;
            let fenced = &mut self.seen_invalid[gstat::SELF_FENCED as usize];
            let now = stats[gstat::SELF_FENCED as usize];
            self.metrics.self_fenced.inc_by(now.saturating_sub(*fenced));
            *fenced = now;
            let resets = &mut self.seen_invalid[gstat::TICKLE_RESET as usize];
            let now = stats[gstat::TICKLE_RESET as usize];
            self.metrics
                .tickle_resets
                .inc_by(now.saturating_sub(*resets));
            *resets = now;
            let reasons = stats.iter().zip(self.seen_invalid.iter_mut());
            for (r, (&now, seen)) in reasons.enumerate().take(xvrrpd_common::INVALID_REASONS) {
                let d = now.saturating_sub(*seen);
                *seen = now;
                if d > 0 {
                    let reason = crate::datapath::event::reason_name(r as u32);
                    self.metrics
                        .datapath_invalid
                        .get_or_create(&vec![("reason", reason.to_string())])
                        .inc_by(d);
                }
            }
        }
    }

    /// Every instance shuts down (priority 0 from a master, VIPs removed, servers fenced),
    /// hooks drain, the XDP program is detached.
    async fn shutdown(mut self) {
        let now = Instant(monotonic_ns());
        {
            let Router {
                instances, nl, dp, ..
            } = &mut self;
            for r in instances.iter_mut() {
                let actions = r.core.handle(Input::Vrrp(VrrpInput::Shutdown { now }));
                apply(r, actions, nl, dp).await;
            }
        }
        // A master's demotion (read_only = ON, clients killed) completes before we exit.
        for r in &mut self.instances {
            if let Some(g) = r.guard.take() {
                g.finish(Duration::from_secs(5)).await;
            }
        }
        let Router {
            dp,
            instances,
            notify_tasks,
            trackers,
            ..
        } = self;
        drop(trackers);
        drop(dp); // detaches the XDP program, frees maps and timers
        drop(instances);
        // Let queued hooks (the stop hooks included) finish, each bounded by its timeout.
        for (task, timeout) in notify_tasks {
            let _ = tokio::time::timeout(timeout * 4 + Duration::from_secs(1), task).await;
        }
    }

    fn rebuild_index(&mut self) {
        self.by_key = self
            .instances
            .iter()
            .enumerate()
            .map(|(i, r)| (r.key, i))
            .collect();
    }

    fn sink(&self) -> EventSink {
        EventSink {
            fifo: self.cfg.global.events_fifo.clone(),
            tx: self.events.clone(),
        }
    }

    /// Starts tracker `cfg` with a fresh id.
    fn start_tracker(&mut self, cfg: TrackerConfig) -> TrackerRt {
        let id = self.next_id;
        self.next_id += 1;
        // Contributions start as keepalived assumes (scripts good, files 0), except MySQL
        // checks, which start failing until they pass (see track::mysql).
        let contribution = Contribution {
            weight: cfg.weight,
            reverse: cfg.reverse,
            healthy: cfg.kind != TrackerKind::Mysql,
            file_value: (cfg.kind == TrackerKind::File).then_some(0),
        };
        let mut t = TrackerRt {
            id,
            contribution,
            task: track::runner::spawn(
                id,
                cfg.clone(),
                self.report_tx.clone(),
                self.metrics.clone(),
            ),
            ifindex: None,
            cfg,
        };
        if t.cfg.kind == TrackerKind::Interface {
            let name = t.cfg.interface.clone().unwrap_or_default();
            match crate::datapath::ifindex(&name) {
                Some(idx) => {
                    t.ifindex = Some(idx);
                    t.contribution.healthy = self.link_up.get(&idx).copied().unwrap_or(false);
                }
                None => {
                    warn!(tracker = %t.cfg.name, interface = %name, "tracked interface does not exist: failing");
                    t.contribution.healthy = false;
                }
            }
        }
        t
    }
}

fn kind_name(k: TrackerKind) -> &'static str {
    match k {
        TrackerKind::Exec => "exec",
        TrackerKind::File => "file",
        TrackerKind::Mysql => "mysql",
        TrackerKind::Interface => "interface",
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
