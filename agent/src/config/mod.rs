//! The TOML configuration: schema, parsing and validation.
//!
//! Parsing rejects unknown keys; validation collects *every* problem, each with its key
//! path, its line and how to fix it, so `xvrrpd check` can list them all at once.
mod locate;
pub mod reference;
mod validate;

#[cfg(test)]
mod tests;

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

pub use validate::{parse_prefixed, validate};

/// Default configuration path.
pub const DEFAULT_PATH: &str = "/etc/xvrrpd/xvrrpd.toml";

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub global: Global,
    #[serde(default, rename = "instance")]
    pub instances: Vec<InstanceConfig>,
    #[serde(default, rename = "tracker")]
    pub trackers: Vec<TrackerConfig>,
    /// The optional third vote on who may write (see docs/witness.md).
    #[serde(default)]
    pub witness: Option<WitnessConfig>,
}

/// `[witness]`: an etcd cluster both nodes reach holds each write instance's write key;
/// a write instance may make its server writable only while it holds that key.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// The etcd members' client addresses, `host:port` (plain HTTP: the JSON gateway).
    pub etcd: Vec<String>,
    /// Where the keys live: `{prefix}/{instance}/write`. Both nodes of a pair use the same;
    /// another pair on the same etcd uses another.
    #[serde(default = "default_witness_prefix")]
    pub prefix: String,
    /// How long a holder's renewal keeps its right to write (`lease − margin` after the
    /// renewal was sent), and how long a successor waits for a silent holder
    /// (`lease + margin` after it last saw a renewal).
    #[serde(default = "default_witness_lease", with = "duration")]
    pub lease: Duration,
    #[serde(default = "default_witness_margin", with = "duration")]
    pub margin: Duration,
    /// TLS to the members (HTTPS, and a client certificate when they ask for one);
    /// absent: plain HTTP, fit only for a network nobody else reaches.
    #[serde(default)]
    pub tls: Option<WitnessTls>,
}

/// `[witness.tls]`: PEM files, as etcd's own `--trusted-ca-file`, `--cert-file` and
/// `--key-file` take them.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WitnessTls {
    /// The CA that signed the members' server certificates.
    pub ca: std::path::PathBuf,
    /// This node's client certificate and its key, for members run with
    /// `--client-cert-auth` (then nobody without a certificate from their CA can take
    /// or free the write key).
    #[serde(default)]
    pub cert: Option<std::path::PathBuf>,
    #[serde(default)]
    pub key: Option<std::path::PathBuf>,
    /// The name the members' certificates carry, when it is not the host in `etcd`
    /// (an IP address there is checked against the certificates' IP SANs).
    #[serde(default)]
    pub server_name: Option<String>,
}

fn default_witness_prefix() -> String {
    "/xvrrpd".into()
}

fn default_witness_lease() -> Duration {
    crate::witness::lease::Timing::DEFAULT.lease
}

fn default_witness_margin() -> Duration {
    crate::witness::lease::Timing::DEFAULT.margin
}

impl WitnessConfig {
    pub fn timing(&self) -> crate::witness::lease::Timing {
        crate::witness::lease::Timing::new(self.lease, self.margin)
    }

    /// The write key of instance `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}/{name}/write", self.prefix.trim_end_matches('/'))
    }
}

/// What a tracker checks.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TrackerKind {
    /// Runs `command` (argv, no shell): exit 0 = success (keepalived vrrp_script).
    Exec,
    /// Reads an integer from `path`; it is multiplied by `weight` (the drain knob).
    File,
    /// Native MySQL/MariaDB check: reachable, `query` succeeds, optional read_only,
    /// replication and lag conditions; a crashed mysqld fails it at once.
    Mysql,
    /// Link state of `interface` (up with carrier), from rtnetlink events.
    Interface,
}

/// A health check instances can follow (`track = ["name"]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrackerConfig {
    pub name: String,
    pub kind: TrackerKind,
    /// exec: the program and its arguments.
    #[serde(default)]
    pub command: Vec<String>,
    /// file: the file holding the integer.
    pub path: Option<std::path::PathBuf>,
    #[serde(default = "default_check_interval", with = "duration")]
    pub interval: Duration,
    #[serde(default = "default_check_timeout", with = "duration")]
    pub timeout: Duration,
    #[serde(default = "one")]
    pub rise: u32,
    #[serde(default = "one")]
    pub fall: u32,
    /// keepalived semantics: > 0 added while healthy, < 0 added while failed, 0 = Fault.
    #[serde(default)]
    pub weight: i32,
    #[serde(default)]
    pub reverse: bool,
    /// interface: the link to follow.
    pub interface: Option<String>,
    /// mysql: Unix socket of the server (else `host`/`port`).
    pub socket: Option<std::path::PathBuf>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// mysql: file with `user = ...` and `password = ...`, mode 600; else the
    /// XVRRPD_MYSQL_USER / XVRRPD_MYSQL_PASSWORD environment.
    pub credentials_file: Option<std::path::PathBuf>,
    /// mysql: the query that must succeed (default `SELECT 1`).
    pub query: Option<String>,
    /// mysql: the read_only value the server must have.
    pub read_only: Option<bool>,
    /// mysql: replication IO and SQL threads must both run.
    #[serde(default)]
    pub replication: bool,
    /// mysql: Seconds_Behind_Master must be at most this.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_lag: Option<Duration>,
}

/// Programs run on transitions, in order per instance (argv, no shell).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    #[serde(default)]
    pub master: Vec<String>,
    #[serde(default)]
    pub backup: Vec<String>,
    #[serde(default)]
    pub fault: Vec<String>,
    #[serde(default)]
    pub stop: Vec<String>,
    /// Run on every transition, after the state's own hook, with keepalived's arguments
    /// appended: `INSTANCE <name> <STATE> <priority>`.
    #[serde(default)]
    pub any: Vec<String>,
    /// A hook still running after this is killed (the next one still runs).
    #[serde(default = "default_notify_timeout", with = "duration")]
    pub timeout: Duration,
}

impl Default for Notify {
    /// No hooks, and the timeout a `[instance.notify]` table gets when it names none.
    fn default() -> Self {
        Self {
            master: Vec::new(),
            backup: Vec::new(),
            fault: Vec::new(),
            stop: Vec::new(),
            any: Vec::new(),
            timeout: default_notify_timeout(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Global {
    /// Name of this node in logs and metrics (default: the host name).
    pub router_id: Option<String>,
    /// Transitions as JSON lines, for tools that follow without scripts. A missing path is
    /// created as a FIFO (mode 600); an existing regular file is appended to. Writes never
    /// block: with no reader on the FIFO, the line is dropped.
    pub events_fifo: Option<std::path::PathBuf>,
    /// Address of the Prometheus endpoint (`/metrics`). Loopback by default; set it to
    /// "" to turn the endpoint off. 9165 is keepalived-exporter's: not used here.
    #[serde(default = "default_metrics_listen", with = "opt_socket_addr")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// SCHED_FIFO priority (1–99) of the thread that sends a master's periodic adverts;
    /// 0: ordinary scheduling. Read at start-up (a reload does not change it).
    #[serde(default = "default_realtime_priority")]
    pub realtime_priority: u8,
    /// `mlockall` the whole process at start-up, so memory pressure cannot page out
    /// what sends the adverts (keepalived's `vrrp_no_swap`).
    #[serde(default = "default_true")]
    pub lock_memory: bool,
    /// CPU time the real-time thread may use without blocking before the kernel stops it
    /// (RLIMIT_RTTIME; keepalived's `vrrp_rlimit_rttime`): a bug cannot wedge a core.
    #[serde(default = "default_realtime_budget", with = "duration")]
    pub realtime_budget: Duration,
    /// The key both agents sign the copy of the master's client connections with (a file
    /// of at least 16 bytes, mode 600; `head -c 32 /dev/urandom > FILE`). The backup
    /// tickles those clients when it takes over, so they fail at once and reconnect.
    /// Absent: nothing is copied, and a takeover tickles nobody.
    pub conn_sync_key: Option<std::path::PathBuf>,
    /// UDP port of that copy, on every address of the node.
    #[serde(default = "default_conn_sync_port")]
    pub conn_sync_port: u16,
    /// Most client connections tracked at once on this node (all instances), and most
    /// copied connections a takeover resets from the datapath. Read at start-up only.
    #[serde(default = "default_conn_table_size")]
    pub conn_table_size: u32,
}

impl Default for Global {
    fn default() -> Self {
        Self {
            router_id: None,
            events_fifo: None,
            metrics_listen: default_metrics_listen(),
            realtime_priority: default_realtime_priority(),
            lock_memory: true,
            realtime_budget: default_realtime_budget(),
            conn_sync_key: None,
            conn_sync_port: default_conn_sync_port(),
            conn_table_size: default_conn_table_size(),
        }
    }
}

fn default_conn_sync_port() -> u16 {
    5899
}

fn default_conn_table_size() -> u32 {
    xvrrpd_common::MAX_CONNS
}

fn default_realtime_priority() -> u8 {
    50
}

fn default_realtime_budget() -> Duration {
    Duration::from_millis(10)
}

fn default_true() -> bool {
    true
}

/// The default Prometheus endpoint.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9611";

fn default_metrics_listen() -> Option<std::net::SocketAddr> {
    DEFAULT_METRICS_LISTEN.parse().ok()
}

/// `"host:port"`, or `""` for none.
mod opt_socket_addr {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        a: &Option<std::net::SocketAddr>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&a.map(|a| a.to_string()).unwrap_or_default())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::net::SocketAddr>, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(None);
        }
        s.parse().map(Some).map_err(|_| {
            D::Error::custom(format!(
                "{s:?} is not an address:port such as \"127.0.0.1:9611\" or \"[::1]:9611\" (\"\" turns metrics off)"
            ))
        })
    }
}

/// Who answers a client's reply to a tickle ACK with the RST (`tickle_answer`).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TickleAnswer {
    #[default]
    Datapath,
    Kernel,
}

/// How a v3 IPv4 advert's checksum is computed when sending.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum V3Checksum {
    /// With the IPv4 pseudo-header: RFC 5798 and keepalived 2.2.7's default.
    #[default]
    PseudoHeader,
    /// Over the VRRP message only (RFC 3768 style), for peers that expect it.
    NoPseudoHeader,
    /// Pseudo-header with the multicast group as destination even for unicast adverts:
    /// keepalived's `old_unicast_checksum` (its algorithm before 1.3.6).
    PseudoHeaderMulticast,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    #[serde(default = "default_version")]
    pub version: u8,
    #[serde(default = "default_interval", with = "duration")]
    pub advert_interval: Duration,
    #[serde(default = "yes")]
    pub preempt: bool,
    #[serde(default, with = "duration")]
    pub preempt_delay: Duration,
    pub virtual_addresses: Vec<VirtualAddress>,
    /// Source address for unicast adverts (default: the interface's primary address).
    pub unicast_source: Option<IpAddr>,
    /// Unicast peers; multicast (224.0.0.18 / ff02::12) when empty.
    #[serde(default)]
    pub unicast_peers: Vec<IpAddr>,
    /// VRRPv2 PASS authentication (keepalived compatibility; at most 8 bytes).
    pub auth_pass: Option<String>,
    /// Routers allowed to send adverts for this VRID (default: `unicast_peers`). Adverts
    /// from other sources, and v2 adverts with another password, are counted as invalid
    /// (`peer`, `auth`).
    #[serde(default)]
    pub peers: Vec<IpAddr>,
    /// Drop (XDP_DROP) adverts for this VRID that fail a check — wrong TTL, bad length or
    /// checksum, a source outside `peers`, another v2 password — so a spoofed advert
    /// cannot move the VIP. Off (the default), they are only counted.
    #[serde(default)]
    pub spoof_filter: bool,
    #[serde(default)]
    pub v3_checksum: V3Checksum,
    /// Accept packets addressed to the VIPs when not the owner (needed for a database VIP).
    #[serde(default = "yes")]
    pub accept_mode: bool,
    /// After giving the VIPs up, answer TCP that still reaches this node for them with a
    /// RST (in XDP), so a client whose ARP/ND entry is stale fails at once and reconnects
    /// to the new master, instead of waiting for its SYN retransmission or connect timeout.
    #[serde(default = "yes")]
    pub refuse_released: bool,
    #[serde(default)]
    pub announce: Announce,
    /// On becoming master, send each client connection the previous master had (as it
    /// copied them here, see `[global] conn_sync_key`) a tickle ACK: the client's answer
    /// reaches this node, whose kernel resets it, and the client reconnects at once
    /// instead of waiting for TCP to give up on a dead host.
    #[serde(default = "yes")]
    pub reset_clients: bool,
    /// Who resets a client's answer to a tickle: `datapath` (the default: the XDP program
    /// sends the RST, so a firewall that drops segments of unknown connections as
    /// INVALID cannot swallow it) or `kernel` (this node's TCP stack, as CTDB does; needs
    /// a firewall that lets those answers in).
    #[serde(default)]
    pub tickle_answer: TickleAnswer,
    /// Local ports whose client connections are tracked and reset (at most 8, e.g.
    /// `[3306]`); empty, the default: every port.
    #[serde(default)]
    pub conn_ports: Vec<u16>,
    /// Names of the trackers this instance follows.
    #[serde(default)]
    pub track: Vec<String>,
    #[serde(default)]
    pub notify: Notify,
    /// After this node loses mastership, starts, or leaves FAULT, it does not preempt for
    /// this long (a failed-over pair does not fail back at once). A master that fails is
    /// still replaced at once.
    #[serde(default, with = "duration")]
    pub anti_flap: Duration,
    /// Makes this the write instance of the MySQL server it names: promotion waits for
    /// replication catch-up and sets read_only = OFF before the VIP is added; leaving
    /// master removes the VIP, then sets read_only = ON and kills client connections.
    pub mysql: Option<WriteGuardConfig>,
}

impl InstanceConfig {
    /// Who may send adverts for this VRID: `peers`, else `unicast_peers` (empty: anyone).
    pub fn advert_sources(&self) -> &[IpAddr] {
        if self.peers.is_empty() {
            &self.unicast_peers
        } else {
            &self.peers
        }
    }
}

/// The MySQL side of a write instance (see `InstanceConfig::mysql`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WriteGuardConfig {
    /// A `[[tracker]]` of kind `mysql`: the server guarded, reached with its connection
    /// settings and credentials.
    pub server: String,
    /// How long promotion waits for the relay log received from the peer to be applied.
    #[serde(default = "default_catchup_timeout", with = "duration")]
    pub catchup_timeout: Duration,
    /// What happens when catch-up does not finish in time.
    #[serde(default)]
    pub on_catchup_timeout: CatchupPolicy,
    /// Kill client connections when the node stops being the writer.
    #[serde(default = "yes")]
    pub kill_writers: bool,
    /// What a node does when its server must be made read-only and answers nothing.
    #[serde(default)]
    pub on_hung: HungPolicy,
    /// What a node that finds errant transactions of its own does about them.
    #[serde(default)]
    pub on_errant: ErrantPolicy,
    /// Where an undo keeps what it removed (the errant transactions decoded, and the
    /// statements that undid them), for the operator to reconcile.
    #[serde(default = "default_errant_archive")]
    pub errant_archive: PathBuf,
}

/// What a write instance does with errant transactions: its own commits that the peer,
/// which served writes after it, never received (see [`crate::mysql::divergence`]).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ErrantPolicy {
    /// Read-only, out of the election, the GTIDs reported, until an operator rebuilds
    /// the server or removes them.
    #[default]
    Quarantine,
    /// MariaDB: undo them (`mariadb-binlog --flashback`, applied unlogged), drop them from
    /// the binary log (RESET MASTER, `gtid_binlog_state` without them), archive what was
    /// undone, then rejoin. Where that cannot be done safely (DDL, purged binlogs, MySQL,
    /// a statement- or minimal-image binlog) the node stays quarantined and says why.
    Flashback,
    /// MySQL: archive them decoded (`mysqlbinlog --base64-output=decode-rows -v`), then
    /// rebuild the server from the peer with the clone plugin (`CLONE INSTANCE FROM` the
    /// peer; mysqld restarts on the peer's data under its service manager), point its
    /// replication back at the peer, then rejoin after the usual comparison. Where that
    /// cannot be done (MariaDB, no clone plugin, no archive) the node stays quarantined
    /// and says why.
    Clone,
}

/// What a write instance does when its server must be fenced (`read_only = ON`: the node
/// left mastership, starts, or stops) and the server has answered nothing for 500 ms. The
/// peer counts a server silent for 1 s as gone and takes the writes; a hung server that
/// resumes runs what was queued in it, clients' writes included, before the fence lands.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum HungPolicy {
    /// SIGKILL the local `mariadbd` / `mysqld` (the process holding the server's socket or
    /// port) so it never runs what is queued; its service manager restarts it, read-only
    /// from my.cnf (`read_only = ON`), and the guard fences and compares it as after any
    /// crash.
    #[default]
    Kill,
    /// Keep waiting for the fence: when the server resumes, both servers can take writes
    /// until the fence lands (milliseconds to tens of milliseconds).
    Wait,
}

pub use xvrrpd_core::config::CatchupPolicy;

/// Gratuitous ARP / unsolicited NA after becoming master.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Announce {
    /// Packets per burst.
    #[serde(default = "default_burst")]
    pub count: u32,
    /// Gap between packets of a burst.
    #[serde(default = "default_burst_delay", with = "duration")]
    pub burst_delay: Duration,
    /// A second burst this long after the first (0 = none).
    #[serde(default = "default_repeat", with = "duration")]
    pub repeat_after: Duration,
    /// Re-announce periodically while master (0 = never).
    #[serde(default, with = "duration")]
    pub refresh: Duration,
}

impl Default for Announce {
    fn default() -> Self {
        Self {
            count: default_burst(),
            burst_delay: default_burst_delay(),
            repeat_after: default_repeat(),
            refresh: Duration::ZERO,
        }
    }
}

/// A VIP: `"192.0.2.100/24"` or `{ address = "...", device = "eth1", label = "eth1:db" }`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum VirtualAddress {
    Plain(String),
    Detailed {
        address: String,
        device: Option<String>,
        label: Option<String>,
    },
}

impl VirtualAddress {
    pub fn address(&self) -> &str {
        match self {
            Self::Plain(a) => a,
            Self::Detailed { address, .. } => address,
        }
    }
}

fn default_check_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_check_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_catchup_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_notify_timeout() -> Duration {
    Duration::from_secs(10)
}
fn one() -> u32 {
    1
}
fn default_version() -> u8 {
    3
}
fn default_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_errant_archive() -> PathBuf {
    PathBuf::from("/var/lib/xvrrpd/errant")
}
fn yes() -> bool {
    true
}
fn default_burst() -> u32 {
    5
}
fn default_burst_delay() -> Duration {
    Duration::from_millis(10)
}
fn default_repeat() -> Duration {
    Duration::from_secs(1)
}

/// Durations as text: `"10ms"`, `"1s"`, `"1m 30s"`.
pub mod duration {
    use std::time::Duration;

    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    /// The text a duration is written as: whole seconds as `"Ns"`, else milliseconds.
    pub fn text(d: Duration) -> String {
        if d.subsec_nanos() == 0 {
            format!("{}s", d.as_secs())
        } else {
            format!("{}ms", d.as_millis())
        }
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&text(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            D::Error::custom(format!(
                "{s:?} is not a duration ({e}); write e.g. \"10ms\" or \"1s\""
            ))
        })
    }
}

/// Optional durations as text.
mod opt_duration {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }
}

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `instance[0].advert_interval`.
    pub key: String,
    /// 1-based line, when it could be located.
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Parses and validates `text`; `interfaces_exist` says whether to check interface names
/// against this host.
pub fn parse(text: &str, check_interfaces: bool) -> Result<Config, Vec<Problem>> {
    let cfg: Config = match toml::from_str(text) {
        Ok(c) => c,
        Err(e) => {
            let line = e.span().map(|s| locate::line_of(text, s.start));
            // A type error sits on `key = value`: name the key, not just the line.
            let key = line
                .and_then(|l| text.lines().nth(l - 1))
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| k.trim().trim_matches('"'))
                .filter(|k| {
                    !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                })
                .map_or_else(|| "(syntax)".to_string(), str::to_string);
            return Err(vec![Problem {
                key,
                line,
                message: e.message().trim().to_string(),
            }]);
        }
    };
    let mut problems = validate(&cfg, check_interfaces);
    if problems.is_empty() {
        return Ok(cfg);
    }
    locate::lines(text, &mut problems);
    Err(problems)
}

/// Reads, parses and validates the file at `path`.
pub fn load(path: &Path, check_interfaces: bool) -> Result<Config, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            key: "(file)".into(),
            line: None,
            message: format!("reading {}: {e}", path.display()),
        }]
    })?;
    parse(&text, check_interfaces)
}
