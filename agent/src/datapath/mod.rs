//! The kernel side as userspace sees it: load the embedded XDP object, attach it to
//! interfaces (native mode, falling back to generic), push parameters, read state,
//! counters and events.
pub mod beat;
pub mod diag;
pub mod event;
pub mod state;

use std::ffi::CString;
use std::net::IpAddr;

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::{ProgramError, Xdp, XdpMode},
    Ebpf, EbpfError, EbpfLoader,
};
use xvrrpd_common::{
    gstat, ConnKey, DatapathConfig, HeldVip, VipKey, VridKey, VridParams, FAMILY_V4, FAMILY_V6,
    MAX_CONNS, MAX_CONN_PORTS,
};

pub use state::VridSnapshot;

/// The XDP object built by `cargo xtask build-ebpf`, embedded at compile time.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(env!("XVRRPD_EBPF_OBJ_PATH"));

/// Name of the XDP entry point in the object.
pub const PROGRAM: &str = "xvrrpd_xdp";

#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error(
        "permission denied loading BPF: run as root, or with CAP_BPF, CAP_NET_ADMIN and \
         CAP_PERFMON ({0})"
    )]
    Permission(String),
    #[error(
        "this xvrrpd was built without its XDP object (an empty stub is embedded): run \
         `cargo xtask build-ebpf`, then build xvrrpd again"
    )]
    Stub,
    #[error("loading the eBPF object failed: {0}")]
    Load(#[source] EbpfError),
    #[error("the kernel refused the XDP program: {0}")]
    Verifier(#[source] ProgramError),
    #[error("interface {0:?} does not exist (see `ip link`)")]
    NoInterface(String),
    #[error("attaching XDP to {iface} failed in native and generic mode: {source}")]
    Attach {
        iface: String,
        #[source]
        source: ProgramError,
    },
    #[error("reading the XDP program's diagnostic lines: {0}")]
    Log(String),
    #[error("the eBPF object has no {0} (built from another version?)")]
    Missing(&'static str),
    #[error("BPF map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("BPF map {map}: duplicating its file descriptor: {source}")]
    Dup {
        map: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// How a program ended up attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    Native,
    Generic,
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Generic => "generic",
        })
    }
}

/// A loaded (and possibly attached) datapath. Dropping it detaches every link and frees
/// the maps and timers: a crashed agent leaves nothing running in the kernel.
pub struct Datapath {
    ebpf: Ebpf,
    /// Size of the connection tables (tracked, tickled), fixed at load.
    conn_table: u32,
    /// TICKLED may hold entries (only this process adds them). Walking an empty hash map
    /// still visits each of its buckets: with 1 000 instances, the walks for VIPs that
    /// never tickled were most of an agent's stop.
    tickles_maybe: bool,
}

fn map_err(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> DatapathError {
    move |source| DatapathError::Map { map, source }
}

impl Datapath {
    /// Loads the object and the program into the kernel (running the verifier).
    pub fn load() -> Result<Self, DatapathError> {
        Self::load_sized(MAX_CONNS)
    }

    /// As [`Self::load`], with room for `conn_table` connections in each connection
    /// table (`[global] conn_table_size`).
    pub fn load_sized(conn_table: u32) -> Result<Self, DatapathError> {
        if EBPF_OBJECT.is_empty() {
            return Err(DatapathError::Stub);
        }
        let level = diag::level() as u8;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("CONNS", conn_table)
            .map_max_entries("TICKLED", conn_table)
            .override_global("AYA_LOG_LEVEL", &level, true)
            .load(EBPF_OBJECT)
            .map_err(|e| {
                if chain_has_eperm(&e) {
                    DatapathError::Permission(e.to_string())
                } else {
                    DatapathError::Load(e)
                }
            })?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or(DatapathError::Missing("program xvrrpd_xdp"))?
            .try_into()
            .map_err(DatapathError::Verifier)?;
        prog.load().map_err(|e| match &e {
            ProgramError::LoadError { io_error, .. }
                if io_error.raw_os_error() == Some(libc::EPERM) =>
            {
                DatapathError::Permission(e.to_string())
            }
            _ => DatapathError::Verifier(e),
        })?;
        Ok(Self {
            ebpf,
            conn_table,
            tickles_maybe: false,
        })
    }

    /// How many connections each connection table holds.
    pub fn conn_table_size(&self) -> u32 {
        self.conn_table
    }

    /// The loaded XDP program (tests drive it with `BPF_PROG_TEST_RUN`).
    pub fn program(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(PROGRAM)
            .and_then(|p| p.try_into().ok())
            .expect("program checked at load")
    }

    /// Attaches to `iface`, native mode first, generic if the driver cannot. A veth goes
    /// straight to generic: its native mode runs the program on the skb the stack built
    /// anyway (nothing saved), and drops what the program sends back (`XDP_TX`, the RST
    /// for a released VIP) unless the other end of the pair runs XDP too.
    pub fn attach(&mut self, iface: &str) -> Result<AttachMode, DatapathError> {
        if ifindex(iface).is_none() {
            return Err(DatapathError::NoInterface(iface.to_string()));
        }
        let veth = driver(iface).as_deref() == Some("veth");
        let prog = self.program();
        if !veth {
            match prog.attach(iface, XdpMode::Driver) {
                Ok(_) => return Ok(AttachMode::Native),
                Err(native) => tracing::info!(
                    interface = iface,
                    error = %native,
                    "native XDP unavailable, falling back to generic (skb) mode"
                ),
            }
        }
        prog.attach(iface, XdpMode::Skb)
            .map(|_| AttachMode::Generic)
            .map_err(|source| DatapathError::Attach {
                iface: iface.to_string(),
                source,
            })
    }

    pub fn set_config(&mut self, cfg: DatapathConfig) -> Result<(), DatapathError> {
        let map = self
            .ebpf
            .map_mut("CONFIG")
            .ok_or(DatapathError::Missing("map CONFIG"))?;
        let mut arr: Array<_, DatapathConfig> = Array::try_from(map).map_err(map_err("CONFIG"))?;
        arr.set(0, cfg, 0).map_err(map_err("CONFIG"))
    }

    /// The hash map `name`, writable.
    fn hash_mut<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &'static str,
    ) -> Result<HashMap<&mut MapData, K, V>, DatapathError> {
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(DatapathError::Missing(name))?;
        HashMap::try_from(map).map_err(map_err(name))
    }

    /// The per-VRID parameters map, writable.
    fn params_map(&mut self) -> Result<HashMap<&mut MapData, VridKey, VridParams>, DatapathError> {
        self.hash_mut("PARAMS")
    }

    pub fn set_params(&mut self, key: VridKey, params: VridParams) -> Result<(), DatapathError> {
        self.params_map()?
            .insert(key, params, 0)
            .map_err(map_err("PARAMS"))
    }

    /// Forgets a VRID (an instance removed by a reload): its adverts are ignored again.
    pub fn remove_params(&mut self, key: VridKey) -> Result<(), DatapathError> {
        self.params_map()?.remove(&key).map_err(map_err("PARAMS"))
    }

    /// The released-VIP map, writable.
    fn released_map(&mut self) -> Result<HashMap<&mut MapData, VipKey, u32>, DatapathError> {
        self.hash_mut("RELEASED")
    }

    /// Refuses TCP for a VIP this node gives up: call when leaving, just before the
    /// address is removed (every segment to it is reset from now on, so none falls in
    /// the moment between the two).
    pub fn release_vip(&mut self, ifindex: u32, addr: IpAddr) -> Result<(), DatapathError> {
        self.released_map()?
            .insert(vip_key(ifindex, addr), 1, 0)
            .map_err(map_err("RELEASED"))
    }

    /// Stops refusing a VIP: call before the address is added.
    pub fn reclaim_vip(&mut self, ifindex: u32, addr: IpAddr) -> Result<(), DatapathError> {
        // Not listed: nothing to undo.
        absent_ok(
            self.released_map()?.remove(&vip_key(ifindex, addr)),
            "RELEASED",
        )
    }

    /// The self-fence's heartbeat of write instance `instance` for a new mastership
    /// (beating now, not stalled): the pacer beats it, a beat later than `bound_ns`
    /// after the one before reports a stall on `stalls`, with the gap (see [`beat`]).
    pub fn beat(
        &self,
        instance: u32,
        bound_ns: u64,
        now: u64,
        stalls: tokio::sync::mpsc::UnboundedSender<(u64, u64)>,
    ) -> Result<beat::Beat, DatapathError> {
        let data = |name: &'static str| match self.ebpf.map(name) {
            Some(aya::maps::Map::HashMap(m)) => Ok(m),
            Some(_) => Err(DatapathError::Missing(name)),
            None => Err(DatapathError::Missing(name)),
        };
        beat::Beat::new(
            data("LIVE")?,
            data("STALLED")?,
            instance,
            bound_ns,
            now,
            stalls,
        )
    }

    /// The held-VIP map, writable.
    fn held_map(&mut self) -> Result<HashMap<&mut MapData, VipKey, HeldVip>, DatapathError> {
        self.hash_mut("HELD")
    }

    /// Tracks clients' connections to a VIP this node now holds, for instance `id`, on
    /// the local `ports` (at most [`MAX_CONN_PORTS`], checked by the configuration; none:
    /// every port).
    pub fn hold_vip(
        &mut self,
        ifindex: u32,
        addr: IpAddr,
        id: u32,
        ports: &[u16],
    ) -> Result<(), DatapathError> {
        let mut held = HeldVip {
            instance: id,
            ..HeldVip::default()
        };
        for (slot, &p) in held.ports.iter_mut().zip(ports.iter().take(MAX_CONN_PORTS)) {
            *slot = p;
        }
        self.held_map()?
            .insert(vip_key(ifindex, addr), held, 0)
            .map_err(map_err("HELD"))
    }

    /// Resets the clients' answers to the tickles this node is about to send, from the
    /// datapath, until `until_ns` (CLOCK_MONOTONIC). Returns how many were listed (the
    /// rest did not fit).
    pub fn answer_tickles(
        &mut self,
        conns: &[ConnKey],
        until_ns: u64,
    ) -> Result<usize, DatapathError> {
        self.tickles_maybe = true;
        let mut h: HashMap<&mut MapData, ConnKey, u64> = self.hash_mut("TICKLED")?;
        let mut listed = 0;
        for k in conns {
            match h.insert(k, until_ns, 0) {
                Ok(()) => listed += 1,
                // Full (E2BIG): the kernel answers the rest.
                Err(_) => break,
            }
        }
        Ok(listed)
    }

    /// Stops answering tickles: for the VIP `addr` (given up), or those whose time is
    /// over (`addr` None, `now_ns` given). Returns how many entries went.
    pub fn forget_tickles(
        &mut self,
        vip: Option<(u32, IpAddr)>,
        now_ns: u64,
    ) -> Result<usize, DatapathError> {
        if !self.tickles_maybe {
            return Ok(0);
        }
        let mut h: HashMap<&mut MapData, ConnKey, u64> = self.hash_mut("TICKLED")?;
        let key = vip.map(|(ifindex, addr)| vip_key(ifindex, addr));
        let all: Vec<(ConnKey, u64)> = h.iter().filter_map(Result::ok).collect();
        let gone: Vec<ConnKey> = all
            .iter()
            .filter(|(k, until)| match key {
                Some(v) => k.ifindex == v.ifindex && k.family == v.family && k.vip == v.addr,
                None => *until < now_ns,
            })
            .map(|(k, _)| *k)
            .collect();
        for k in &gone {
            let _ = h.remove(k);
        }
        if gone.len() == all.len() {
            self.tickles_maybe = false;
        }
        Ok(gone.len())
    }

    /// Stops tracking a VIP given up, and forgets its connections (the next master
    /// tracks them). Returns how many were forgotten. `known_none`: the agent saw no
    /// connection to it added, and none of the datapath's reports was ever lost, so the
    /// table holds none to walk for (an empty hash map's walk visits every bucket).
    pub fn unhold_vip(
        &mut self,
        ifindex: u32,
        addr: IpAddr,
        known_none: bool,
    ) -> Result<usize, DatapathError> {
        let key = vip_key(ifindex, addr);
        absent_ok(self.held_map()?.remove(&key), "HELD")?;
        if known_none && self.global_stat(gstat::CONN_RING_FULL)? == 0 {
            return Ok(0);
        }
        let mut conns: HashMap<&mut MapData, ConnKey, u64> = self.hash_mut("CONNS")?;
        let gone: Vec<ConnKey> = conns
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.ifindex == ifindex && k.family == key.family && k.vip == key.addr)
            .collect();
        for k in &gone {
            let _ = conns.remove(k);
        }
        Ok(gone.len())
    }

    /// Every tracked connection, and when (CLOCK_MONOTONIC ns) its client last sent.
    pub fn conns(&self) -> Result<Vec<(ConnKey, u64)>, DatapathError> {
        let map = self
            .ebpf
            .map("CONNS")
            .ok_or(DatapathError::Missing("map CONNS"))?;
        let h: HashMap<_, ConnKey, u64> = HashMap::try_from(map).map_err(map_err("CONNS"))?;
        Ok(h.iter().filter_map(Result::ok).collect())
    }

    /// Forgets one tracked connection (aged out: its client went silent).
    pub fn forget_conn(&mut self, key: &ConnKey) -> Result<(), DatapathError> {
        let mut h: HashMap<&mut MapData, ConnKey, u64> = self.hash_mut("CONNS")?;
        absent_ok(h.remove(key), "CONNS")
    }

    /// Takes the connection-event ring buffer (once).
    pub fn take_conn_events(&mut self) -> Result<RingBuf<MapData>, DatapathError> {
        let map = self
            .ebpf
            .take_map("CONN_EVENTS")
            .ok_or(DatapathError::Missing("map CONN_EVENTS"))?;
        RingBuf::try_from(map).map_err(map_err("CONN_EVENTS"))
    }

    /// Takes the reader of the program's diagnostic lines (once).
    pub fn take_logger(&mut self) -> Result<diag::Logger, DatapathError> {
        diag::Logger::init_with_logger(&mut self.ebpf, diag::ToTracing)
            .map_err(|e| DatapathError::Log(e.to_string()))
    }

    /// Takes the event ring buffer (once).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, DatapathError> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .ok_or(DatapathError::Missing("map EVENTS"))?;
        RingBuf::try_from(map).map_err(map_err("EVENTS"))
    }

    /// Every tracked VRID, sorted by key.
    pub fn states(&self) -> Result<Vec<VridSnapshot>, DatapathError> {
        let map = self
            .ebpf
            .map("STATE")
            .ok_or(DatapathError::Missing("map STATE"))?;
        let h: HashMap<_, VridKey, state::RawEntry> =
            HashMap::try_from(map).map_err(map_err("STATE"))?;
        let mut out = Vec::new();
        for item in h.iter() {
            let (k, v) = item.map_err(map_err("STATE"))?;
            out.push(VridSnapshot::from_raw(k, &v.state));
        }
        out.sort_by_key(|s| s.key);
        Ok(out)
    }

    /// Global counters summed over CPUs, indexed by [`gstat`] / reason.
    /// One of the datapath's global counters, summed over the CPUs.
    pub fn global_stat(&self, slot: u32) -> Result<u64, DatapathError> {
        let map = self
            .ebpf
            .map("STATS")
            .ok_or(DatapathError::Missing("map STATS"))?;
        let arr: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(map_err("STATS"))?;
        Ok(arr.get(&slot, 0).map_err(map_err("STATS"))?.iter().sum())
    }

    pub fn global_stats(&self) -> Result<[u64; gstat::COUNT as usize], DatapathError> {
        let mut out = [0u64; gstat::COUNT as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = self.global_stat(i as u32)?;
        }
        Ok(out)
    }
}

/// A removal from `map` whose key was already gone counts as done.
fn absent_ok(r: Result<(), aya::maps::MapError>, map: &'static str) -> Result<(), DatapathError> {
    match r {
        Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        Err(aya::maps::MapError::SyscallError(e))
            if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
        {
            Ok(())
        }
        r => r.map_err(map_err(map)),
    }
}

/// True when an `EPERM` I/O error is anywhere in `e`'s source chain.
fn chain_has_eperm(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.raw_os_error() == Some(libc::EPERM) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// The kernel driver behind `iface` (ETHTOOL_GDRVINFO), None when it cannot be asked.
fn driver(iface: &str) -> Option<String> {
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        rest: [u8; 164],
    }
    let mut info = DrvInfo {
        cmd: 0x3, // ETHTOOL_GDRVINFO
        driver: [0; 32],
        rest: [0; 164],
    };
    let name = CString::new(iface).ok()?;
    // SAFETY: plain ioctl on a socket we own; ifreq and DrvInfo are sized as the kernel
    // expects and outlive the call.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes_with_nul()) {
            *d = *s as libc::c_char;
        }
        req.ifr_ifru.ifru_data = (&mut info as *mut DrvInfo).cast();
        let r = libc::ioctl(fd, libc::SIOCETHTOOL, &mut req);
        libc::close(fd);
        if r < 0 {
            return None;
        }
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Some(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// The released-VIP map's key for an address on an interface.
fn vip_key(ifindex: u32, addr: IpAddr) -> VipKey {
    let family = if addr.is_ipv4() { FAMILY_V4 } else { FAMILY_V6 };
    VipKey::new(ifindex, family, event::raw_addr(addr))
}

/// The kernel's index for `iface`, None when it does not exist.
pub fn ifindex(iface: &str) -> Option<u32> {
    let c = CString::new(iface).ok()?;
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => None,
        i => Some(i),
    }
}

/// The name of interface `index`, or the number as text.
pub fn ifname(index: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return index.to_string();
    }
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}
