//! Prometheus metrics (prometheus-client) and the HTTP endpoint that serves them.
//!
//! Names and label sets are documented in `docs/metrics.md`. Labels stay low-cardinality:
//! instance name, interface and VRID come from the config; reasons and states are closed sets;
//! no address, term or timestamp is ever a label.
use std::{net::SocketAddr, sync::Arc, time::Duration};

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::{Family, MetricConstructor},
        gauge::Gauge,
        histogram::Histogram,
        info::Info,
    },
    registry::Registry,
};

use crate::engine::State;

#[cfg(test)]
mod dashboard;
pub mod format;

pub type Labels = Vec<(&'static str, String)>;

/// Histogram with fixed buckets, built by `Family` for each new label set.
#[derive(Clone)]
pub struct Buckets(&'static [f64]);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// Gaps between adverts: 1 ms to ~33 s (covers 10 ms to 10 s advert intervals).
const GAP_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.05, 0.1, 0.15, 0.2, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0,
    10.0, 30.0,
];
/// Check latency: 100 µs to ~26 s.
const CHECK_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// keepalived-exporter's numbering, so existing dashboards and alerts keep working.
pub fn state_number(s: State) -> i64 {
    match s {
        State::Initialize => 0,
        State::Backup => 1,
        State::Master => 2,
        State::Fault => 3,
    }
}

/// Every metric xvrrpd exports.
pub struct Metrics {
    registry: Registry,
    pub state: Family<Labels, Gauge>,
    pub priority_configured: Family<Labels, Gauge>,
    pub priority_effective: Family<Labels, Gauge>,
    pub transitions: Family<Labels, Counter>,
    pub adverts_sent: Family<Labels, Counter>,
    pub adverts_received: Family<Labels, Counter>,
    pub invalid_adverts: Family<Labels, Counter>,
    pub datapath_invalid: Family<Labels, Counter>,
    pub datapath_refused: Counter,
    pub self_fenced: Counter,
    pub conns_tracked: Family<Labels, Gauge>,
    pub conns_full: Counter,
    pub peer_conns: Family<Labels, Gauge>,
    pub tickles: Family<Labels, Counter>,
    pub tickle_resets: Counter,
    pub missed_intervals: Family<Labels, Counter>,
    pub master_down: Family<Labels, Counter>,
    pub stalls: Family<Labels, Counter>,
    pub advert_gap: Family<Labels, Histogram, Buckets>,
    pub announcements: Family<Labels, Counter>,
    pub vip_claims: Family<Labels, Counter>,
    pub mysql_writable: Family<Labels, Gauge>,
    pub mysql_write_term: Family<Labels, Gauge>,
    pub mysql_divergent: Family<Labels, Gauge>,
    pub mysql_guard_blocked: Family<Labels, Gauge>,
    pub mysql_behind: Family<Labels, Gauge>,
    pub tracker_up: Family<Labels, Gauge>,
    pub check_duration: Family<Labels, Histogram, Buckets>,
    pub check_failures: Family<Labels, Counter>,
    pub mysql_lag: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub mysql_read_only: Family<Labels, Gauge>,
    pub maintenance: Gauge,
    pub start_time: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub uptime: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub reloads: Family<Labels, Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut reg = Registry::with_prefix("xvrrpd");
        let m = Self {
            state: Family::default(),
            priority_configured: Family::default(),
            priority_effective: Family::default(),
            transitions: Family::default(),
            adverts_sent: Family::default(),
            adverts_received: Family::default(),
            invalid_adverts: Family::default(),
            datapath_invalid: Family::default(),
            datapath_refused: Counter::default(),
            self_fenced: Counter::default(),
            conns_tracked: Family::default(),
            conns_full: Counter::default(),
            peer_conns: Family::default(),
            tickles: Family::default(),
            tickle_resets: Counter::default(),
            missed_intervals: Family::default(),
            master_down: Family::default(),
            stalls: Family::default(),
            advert_gap: Family::new_with_constructor(Buckets(GAP_BUCKETS)),
            announcements: Family::default(),
            vip_claims: Family::default(),
            mysql_writable: Family::default(),
            mysql_write_term: Family::default(),
            mysql_divergent: Family::default(),
            mysql_guard_blocked: Family::default(),
            mysql_behind: Family::default(),
            tracker_up: Family::default(),
            check_duration: Family::new_with_constructor(Buckets(CHECK_BUCKETS)),
            check_failures: Family::default(),
            mysql_lag: Family::default(),
            mysql_read_only: Family::default(),
            maintenance: Gauge::default(),
            start_time: Gauge::default(),
            uptime: Gauge::default(),
            reloads: Family::default(),
            registry: Registry::default(),
        };
        reg.register(
            "vrrp_state",
            "VRRP state: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT (keepalived-exporter numbering)",
            m.state.clone(),
        );
        reg.register(
            "vrrp_priority_configured",
            "Priority from the configuration",
            m.priority_configured.clone(),
        );
        reg.register(
            "vrrp_priority_effective",
            "Priority after trackers (what this node advertises)",
            m.priority_effective.clone(),
        );
        reg.register(
            "vrrp_transitions",
            "State transitions by from, to and reason",
            m.transitions.clone(),
        );
        reg.register(
            "vrrp_adverts_sent",
            "Adverts sent by this node",
            m.adverts_sent.clone(),
        );
        reg.register(
            "vrrp_adverts_received",
            "Valid adverts received for the instance (counted in the kernel)",
            m.adverts_received.clone(),
        );
        reg.register(
            "vrrp_invalid_adverts",
            "Adverts for the instance's VRID dropped by validation, by reason (kernel)",
            m.invalid_adverts.clone(),
        );
        reg.register(
            "datapath_invalid_adverts",
            "All invalid VRRP packets seen by the XDP program, by reason",
            m.datapath_invalid.clone(),
        );
        reg.register(
            "datapath_refused",
            "TCP segments for a VIP this node gave up, answered with a RST by the XDP program",
            m.datapath_refused.clone(),
        );
        reg.register(
            "datapath_self_fenced",
            "TCP segments for a write VIP refused with a RST while its master's host stood still (self-fence)",
            m.self_fenced.clone(),
        );
        reg.register(
            "conntrack_connections",
            "Client TCP connections to the instance's VIPs tracked by this node's datapath (master)",
            m.conns_tracked.clone(),
        );
        reg.register(
            "conntrack_full",
            "Client connections to a held VIP not tracked because the kernel table was full",
            m.conns_full.clone(),
        );
        reg.register(
            "conntrack_peer_connections",
            "The master's client connections as last copied to this node (tickled at takeover)",
            m.peer_conns.clone(),
        );
        reg.register(
            "conntrack_tickles",
            "Tickle ACKs sent at takeover to clients of the previous master",
            m.tickles.clone(),
        );
        reg.register(
            "conntrack_tickle_resets",
            "Clients' answers to tickle ACKs reset by this node's datapath (tickle_answer = datapath)",
            m.tickle_resets.clone(),
        );
        reg.register(
            "vrrp_missed_intervals",
            "Advert intervals that passed without an advert from the master (kernel)",
            m.missed_intervals.clone(),
        );
        reg.register(
            "vrrp_master_down",
            "Master_Down_Interval expiries detected by the kernel timer",
            m.master_down.clone(),
        );
        reg.register(
            "vrrp_stalls",
            "Master_Down_Interval expiries put off because this host had stalled (the kernel timer fired late)",
            m.stalls.clone(),
        );
        reg.register(
            "vrrp_advert_gap_seconds",
            "Gap between consecutive adverts received for the instance",
            m.advert_gap.clone(),
        );
        reg.register(
            "vrrp_announcements_sent",
            "Gratuitous ARP / unsolicited NA messages sent for the VIPs",
            m.announcements.clone(),
        );
        reg.register(
            "vrrp_vip_claims",
            "Another host claimed a VIP this master holds (ARP / neighbour discovery naming it); each was answered with a gratuitous ARP / unsolicited NA (at most one per VIP every 20 ms)",
            m.vip_claims.clone(),
        );
        reg.register(
            "mysql_writable",
            "Write instance: 1 while the guarded server is writable for this node's master term",
            m.mysql_writable.clone(),
        );
        reg.register(
            "mysql_write_term",
            "Write instance: the write term of this node's latest promotion (xvrrpd.promotion)",
            m.mysql_write_term.clone(),
        );
        reg.register(
            "mysql_divergent",
            "Write instance: 1 while the server holds errant transactions (its own, never received by the peer that served writes after it): read-only and out of the election; the GTIDs are in `xvrrpd status` and the events stream",
            m.mysql_divergent.clone(),
        );
        reg.register(
            "mysql_guard_blocked",
            "Write instance: 1 while a safety step failed (a statement refused, replication from the peer not running, data missing from the peer): read-only and out of the election; the step and error are in `xvrrpd status` and the guard_blocked event",
            m.mysql_guard_blocked.clone(),
        );
        reg.register(
            "mysql_behind",
            "Write instance, backup: the peer's transactions its server still lacks a look (2 s) after the look that found them (its applier does not keep up); no preemption while above 0",
            m.mysql_behind.clone(),
        );
        reg.register(
            "tracker_up",
            "Tracker status: 1 healthy, 0 failing",
            m.tracker_up.clone(),
        );
        reg.register(
            "tracker_check_duration_seconds",
            "Duration of each check run",
            m.check_duration.clone(),
        );
        reg.register(
            "tracker_check_failures",
            "Check runs that failed",
            m.check_failures.clone(),
        );
        reg.register(
            "mysql_replication_lag_seconds",
            "Seconds_Behind_Master seen by a mysql tracker (NaN when unknown)",
            m.mysql_lag.clone(),
        );
        reg.register(
            "mysql_read_only",
            "@@read_only seen by a mysql tracker",
            m.mysql_read_only.clone(),
        );
        reg.register(
            "maintenance",
            "1 while this node is in maintenance (drained)",
            m.maintenance.clone(),
        );
        reg.register(
            "reloads",
            "Configuration reloads by result",
            m.reloads.clone(),
        );
        reg.register(
            "start_time_seconds",
            "Start time of the process since the Unix epoch",
            m.start_time.clone(),
        );
        reg.register(
            "uptime_seconds",
            "Seconds since the process started",
            m.uptime.clone(),
        );
        reg.register(
            "build",
            "Build information",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("datapath", "xdp".to_string()),
            ]),
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        m.start_time.set(now.as_secs_f64());
        Self { registry: reg, ..m }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Forgets every series of an instance removed by a reload.
    pub fn forget_instance(&self, inst: &Labels) {
        for f in [
            &self.state,
            &self.priority_configured,
            &self.priority_effective,
            &self.mysql_writable,
            &self.mysql_write_term,
            &self.mysql_divergent,
            &self.mysql_guard_blocked,
            &self.mysql_behind,
        ] {
            f.remove(inst);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The labels naming an instance: keepalived-exporter's names (`iname`, `intf`, `vrid`),
/// which also keep clear of Prometheus's own `instance` target label.
pub fn instance_labels(name: &str, interface: &str, vrid: u8) -> Labels {
    vec![
        ("iname", name.to_string()),
        ("intf", interface.to_string()),
        ("vrid", vrid.to_string()),
    ]
}

/// `labels` plus more pairs.
pub fn with(labels: &Labels, more: &[(&'static str, &str)]) -> Labels {
    let mut l = labels.clone();
    l.extend(more.iter().map(|(k, v)| (*k, v.to_string())));
    l
}

pub fn tracker_labels(name: &str, kind: &str) -> Labels {
    vec![("tracker", name.to_string()), ("kind", kind.to_string())]
}

/// Metrics connections served at once.
const MAX_SCRAPES: usize = 16;

/// Serves `GET /metrics` (and a plain `/` pointer) on `addr` until the task is dropped.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    use http_body_util::Full;
    use hyper::{body::Bytes, server::conn::http1, service::service_fn, Response, StatusCode};

    let listener = tokio::net::TcpListener::bind(addr).await?;
    // Connections served at once: a flood of scrapers (or of anyone reaching the port)
    // waits in the listen backlog instead of taking the file descriptors the fence, the
    // guard and the witness need.
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move {
                        let resp = match req.uri().path() {
                            "/metrics" => {
                                let accept = req
                                    .headers()
                                    .get(hyper::header::ACCEPT)
                                    .and_then(|v| v.to_str().ok());
                                let (kind, body) = if format::wants_openmetrics(accept) {
                                    (format::OPENMETRICS, metrics.render())
                                } else {
                                    (format::CLASSIC, format::classic(&metrics.render()))
                                };
                                Response::builder()
                                    .header("content-type", kind)
                                    .body(Full::new(Bytes::from(body)))
                            }
                            "/" => Response::builder()
                                .body(Full::new(Bytes::from("xvrrpd: metrics at /metrics\n"))),
                            _ => Response::builder()
                                .status(StatusCode::NOT_FOUND)
                                .body(Full::new(Bytes::from("not found\n"))),
                        };
                        resp
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let conn = http1::Builder::new().serve_connection(io, svc);
                // A slow or stuck scraper cannot hold a connection open forever.
                let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_state_with_exporter_numbering_and_counters() {
        let m = Metrics::new();
        let l = instance_labels("db_write", "eth0", 51);
        m.state.get_or_create(&l).set(state_number(State::Master));
        m.transitions
            .get_or_create(&with(
                &l,
                &[
                    ("from", "BACKUP"),
                    ("to", "MASTER"),
                    ("reason", "master_down"),
                ],
            ))
            .inc();
        m.advert_gap.get_or_create(&l).observe(0.0101);
        let text = m.render();
        assert!(
            text.contains(r#"xvrrpd_vrrp_state{iname="db_write",intf="eth0",vrid="51"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"xvrrpd_vrrp_transitions_total{iname="db_write",intf="eth0",vrid="51",from="BACKUP",to="MASTER",reason="master_down"} 1"#), "{text}");
        assert!(text.contains(r#"xvrrpd_vrrp_advert_gap_seconds_bucket{le="0.01",iname="db_write",intf="eth0",vrid="51"} 0"#), "{text}");
        assert!(text.contains(r#"xvrrpd_vrrp_advert_gap_seconds_bucket{le="0.015",iname="db_write",intf="eth0",vrid="51"} 1"#), "{text}");
        assert!(text.contains("xvrrpd_build_info{version="), "{text}");
        assert!(text.ends_with("# EOF\n"));
        m.forget_instance(&l);
        assert!(!m.render().contains("xvrrpd_vrrp_state{"));
    }

    /// Metric families exported: `# TYPE name kind` lines.
    fn exported() -> Vec<String> {
        let m = Metrics::new();
        // A family shows only once it has a series.
        let l = instance_labels("i", "eth0", 1);
        for f in [
            &m.state,
            &m.priority_configured,
            &m.priority_effective,
            &m.mysql_writable,
            &m.mysql_write_term,
            &m.mysql_divergent,
            &m.mysql_guard_blocked,
            &m.mysql_behind,
            &m.tracker_up,
            &m.mysql_read_only,
            &m.conns_tracked,
            &m.peer_conns,
        ] {
            f.get_or_create(&l).set(1);
        }
        for f in [
            &m.transitions,
            &m.adverts_sent,
            &m.adverts_received,
            &m.invalid_adverts,
            &m.datapath_invalid,
            &m.missed_intervals,
            &m.master_down,
            &m.stalls,
            &m.announcements,
            &m.vip_claims,
            &m.check_failures,
            &m.reloads,
            &m.tickles,
        ] {
            f.get_or_create(&l).inc();
        }
        m.advert_gap.get_or_create(&l).observe(0.1);
        m.check_duration.get_or_create(&l).observe(0.1);
        m.mysql_lag.get_or_create(&l).set(1.0);
        m.render()
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_string)
            .collect()
    }

    /// Every `xvrrpd_...` name in `text`, with sample suffixes removed.
    fn referenced(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find("xvrrpd_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let mut name = &tail[..end];
            for suffix in ["_bucket", "_count", "_sum", "_total", "_info"] {
                if let Some(n) = name.strip_suffix(suffix) {
                    name = n;
                    break;
                }
            }
            out.push(name.to_string());
            rest = &tail[end..];
        }
        out
    }

    #[test]
    fn docs_and_dashboard_match_what_is_exported() {
        let exported = exported();
        assert!(exported.len() >= 20, "{exported:?}");
        let docs = include_str!("../../../docs/metrics.md");
        let dashboard = include_str!("../../../config/grafana-xvrrpd.json");
        let _: serde_json::Value = serde_json::from_str(dashboard).expect("dashboard is JSON");
        for name in referenced(docs).iter().chain(referenced(dashboard).iter()) {
            assert!(
                exported.contains(name),
                "{name} is documented or graphed but not exported"
            );
        }
        let documented = referenced(docs);
        for name in &exported {
            assert!(
                documented.contains(name),
                "{name} is exported but not in docs/metrics.md"
            );
        }
    }

    #[test]
    fn state_numbers_match_keepalived_exporter() {
        assert_eq!(
            [
                State::Initialize,
                State::Backup,
                State::Master,
                State::Fault
            ]
            .map(state_number),
            [0, 1, 2, 3]
        );
    }
}
