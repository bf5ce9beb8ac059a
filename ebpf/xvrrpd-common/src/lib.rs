//! Types shared by the xvrrpd XDP program (kernel) and the agent (userspace).
//!
//! Every type here is `#[repr(C)]`, `Copy` and free of implicit padding, because the
//! kernel and userspace exchange them as raw bytes through BPF maps and the ring buffer.
//! The `user` feature adds `aya::Pod` implementations for the agent.
#![no_std]

/// Largest number of (interface, family, VRID) entries the datapath tracks.
pub const MAX_VRIDS: u32 = 1024;

/// Size of the event ring buffer in bytes (a power of two, multiple of the page size).
/// Routine adverts wait in it without waking the agent (see [`ROUTINE_READ_MS`]): 1 MiB
/// holds ~18 000 events, 1.8 s of 1 000 instances at 100 ms.
pub const EVENT_RING_BYTES: u32 = 1024 * 1024;

/// The agent reads the event ring at least this often (ms): routine adverts are queued
/// without a wake-up, and must neither fill the ring nor reach the engine late.
pub const ROUTINE_READ_MS: u64 = 50;

/// Longest VRRP message the datapath checksums: 8 header bytes plus 255 IPv6 addresses.
pub const MAX_VRRP_LEN: u32 = 8 + 255 * 16;

/// Address family values used in keys and events (the IP version number).
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// Priority assumed for the local router when userspace has written no parameters for a
/// VRID (the RFC default). Only observing: it shapes Skew_Time and so Master_Down_Interval.
pub const DEFAULT_LOCAL_PRIORITY: u8 = 100;

/// Why an advert failed validation. The values index [`VridState::invalid`] and the
/// first [`INVALID_REASONS`] slots of the global statistics map.
pub mod reason {
    /// IPv4 TTL or IPv6 hop limit is not 255.
    pub const TTL: u8 = 0;
    /// VRRP version is not 2 or 3, or version 2 arrived over IPv6.
    pub const VERSION: u8 = 1;
    /// VRRP type is not 1 (ADVERTISEMENT).
    pub const TYPE: u8 = 2;
    /// Truncated headers, or an address count / auth data larger than the IP payload.
    pub const LENGTH: u8 = 3;
    /// Checksum wrong (in every style the version and family allow).
    pub const CHECKSUM: u8 = 4;
    /// Advertisement interval of zero.
    pub const INTERVAL: u8 = 5;
    /// The source is not one of the VRID's configured peers (spoofing check). Counted
    /// whether or not the filter drops it.
    pub const PEER: u8 = 6;
    /// VRRPv2 authentication differs from the VRID's password (spoofing check).
    pub const AUTH: u8 = 7;
}
/// Number of distinct invalid reasons.
pub const INVALID_REASONS: usize = 8;

/// Most peers a VRID's spoofing filter can list.
pub const MAX_PEERS: usize = 8;

/// How the sender computed the VRRP checksum.
pub mod csum_style {
    /// Not known yet (no valid advert seen).
    pub const UNKNOWN: u8 = 0;
    /// Over the VRRP message only: VRRPv2, and VRRPv3 over IPv4 as RFC 3768 computes it
    /// (keepalived's `v3_checksum_as_v2`).
    pub const NO_PSEUDO: u8 = 1;
    /// Over an IP pseudo-header plus the message: VRRPv3 over IPv6, and VRRPv3 over IPv4
    /// as RFC 5798 and keepalived (by default) compute it.
    pub const PSEUDO_HEADER: u8 = 2;
    /// Pseudo-header style, but a unicast advert whose pseudo-header carries the VRRP
    /// multicast group (224.0.0.18 / ff02::12) instead of the real destination: what
    /// keepalived sends with `old_unicast_checksum` (and before 1.3.6 by default).
    pub const PSEUDO_HEADER_MCAST_DST: u8 = 3;
}

/// Indices of the global per-CPU statistics array.
pub mod gstat {
    /// Slots 0..INVALID_REASONS: invalid adverts by reason, attributable to a VRID or not.
    pub const VALID: u32 = 8;
    /// A valid advert for a VRID that could not be tracked because the state map was full.
    pub const MAP_FULL: u32 = 9;
    /// An event was dropped because the ring buffer was full (userspace too slow).
    pub const RINGBUF_FULL: u32 = 10;
    /// A kernel timer helper failed (init, set_callback or start).
    pub const TIMER_ERROR: u32 = 11;
    /// A valid advert for a VRID userspace did not ask to watch (`only_listed`).
    pub const UNLISTED: u32 = 12;
    /// IPv4 fragments of protocol 112: not parsed, passed.
    pub const FRAGMENT: u32 = 13;
    /// Packets dropped (XDP_DROP) by a VRID's spoofing filter, whatever the reason.
    pub const FILTERED: u32 = 14;
    /// TCP segments for a released VIP answered with a RST (XDP_TX).
    pub const REFUSED: u32 = 15;
    /// A connection to a held VIP that could not be tracked: [`super::MAX_CONNS`] reached.
    pub const CONNS_FULL: u32 = 16;
    /// A tracking event lost because the connection ring buffer was full.
    pub const CONN_RING_FULL: u32 = 17;
    /// A client's answer to a tickle ACK, reset from the datapath (XDP_TX).
    pub const TICKLE_RESET: u32 = 18;
    /// TCP to a write VIP refused while its master's host stood still (self-fence).
    pub const SELF_FENCED: u32 = 19;
    /// Number of slots.
    pub const COUNT: u32 = 20;
}

/// Event kinds sent on the ring buffer.
pub mod event_kind {
    /// First valid advert for a VRID, one from a different source address, or the first
    /// after a master_down (the master came back).
    pub const NEW_MASTER: u8 = 1;
    /// Same master, new priority (`aux` = old priority).
    pub const PRIORITY_CHANGE: u8 = 2;
    /// Same master, new advert interval (`aux` = old interval, raw units).
    pub const INTERVAL_CHANGE: u8 = 3;
    /// A valid advert with priority 0: the master is leaving.
    pub const PRIORITY_ZERO: u8 = 4;
    /// One more advert interval passed without a valid advert (`aux` = count since the last).
    pub const MISSED: u8 = 5;
    /// Master_Down_Interval passed without a valid advert (`since_last_ns` says how long).
    pub const MASTER_DOWN: u8 = 6;
    /// An advert failed validation (`aux` = reason); rate-limited to one per reason a second.
    pub const INVALID: u8 = 7;
    /// Every valid advert, only when [`super::DatapathConfig::emit_adverts`] is set
    /// (`since_last_ns` = gap since the previous valid advert, 0 for the first).
    pub const ADVERT: u8 = 8;
    /// The timer fired so late that this host cannot have been watching: the master's
    /// deadline passed while the host stood still (`aux` = lateness in µs, `since_last_ns`
    /// as for MASTER_DOWN). The verdict waits for a recheck (see [`super::stall_recheck_ns`]).
    pub const STALLED: u8 = 9;
    /// Another host claimed a VIP this node holds (an ARP from it, a neighbour
    /// advertisement for it or solicitation from it): `src` = the VIP, `aux` = the
    /// holding instance's id, `since_last_ns` = the claimer's MAC in its low six bytes.
    /// At most one per VIP every 20 ms.
    pub const VIP_CLAIMED: u8 = 10;
}

/// Key of the per-VRID maps.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VridKey {
    pub ifindex: u32,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    pub vrid: u8,
    pub _pad: [u8; 2],
}

impl VridKey {
    pub const fn new(ifindex: u32, family: u8, vrid: u8) -> Self {
        Self {
            ifindex,
            family,
            vrid,
            _pad: [0; 2],
        }
    }
}

/// At most this many released VIPs are refused at once (every VIP of every instance).
pub const MAX_RELEASED: u32 = 4096;

/// Key of the released-VIP map: a VIP this node gave up, on the interface it was on. TCP
/// that still reaches this node for it (a client whose ARP/ND entry is stale) is refused
/// with a RST instead of being dropped in silence.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipKey {
    pub ifindex: u32,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    pub _pad: [u8; 3],
    /// IPv4 in the first four bytes, the rest zero.
    pub addr: [u8; 16],
}

impl VipKey {
    pub const fn new(ifindex: u32, family: u8, addr: [u8; 16]) -> Self {
        Self {
            ifindex,
            family,
            _pad: [0; 3],
            addr,
        }
    }
}

/// Most client connections to held VIPs tracked at once, on this node, unless
/// userspace sizes the tables otherwise at load time (`[global] conn_table_size`).
pub const MAX_CONNS: u32 = 131_072;

/// Most local ports an instance can restrict its connection tracking to.
pub const MAX_CONN_PORTS: usize = 8;

/// A write instance's heartbeat, for the datapath's self-fence: the advert pacer writes
/// `beat_ns` (monotonic) with every advert it sends for a mastership; a client segment
/// to one of its VIPs more than `bound_ns` after the last beat finds a host that stood
/// still long enough for the peer to take over, and is refused until userspace, having
/// heard the peer, clears the stall. Keyed by the instance's id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Liveness {
    pub beat_ns: u64,
    pub bound_ns: u64,
}

/// Value of the held-VIP map: which instance holds the VIP, and which of its local
/// ports are tracked.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeldVip {
    /// The owning instance's id, echoed in [`ConnEvent::instance`].
    pub instance: u32,
    /// The tracked local ports; all zero tracks every port (0 is never a valid one).
    pub ports: [u16; MAX_CONN_PORTS],
    pub _pad: u32,
    /// When (ns) the datapath last reported another host claiming this VIP; written by
    /// the datapath only (its rate limit), zero from userspace.
    pub claimed_ns: u64,
}

impl HeldVip {
    /// Is a connection to local port `port` tracked?
    #[inline(always)]
    pub fn tracks(&self, port: u16) -> bool {
        let mut any = false;
        let mut i = 0;
        while i < MAX_CONN_PORTS {
            let p = self.ports[i];
            if p != 0 && p == port {
                return true;
            }
            any |= p != 0;
            i += 1;
        }
        !any
    }
}

/// Size of the connection-event ring buffer in bytes.
pub const CONN_RING_BYTES: u32 = 1024 * 1024;

/// One TCP connection from a client to a VIP this node holds, as the client's segments
/// name it (the VIP is their destination).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub ifindex: u32,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    pub _pad: u8,
    pub vip_port: u16,
    /// IPv4 in the first four bytes, the rest zero.
    pub vip: [u8; 16],
    pub client: [u8; 16],
    pub client_port: u16,
    pub _pad2: u16,
}

/// Connection-event kinds.
pub mod conn_kind {
    /// A client's segment for a connection not tracked yet (its first ACK, or the first
    /// segment seen after this node took the VIP).
    pub const ADD: u8 = 1;
    /// The client sent a FIN or a RST.
    pub const REMOVE: u8 = 2;
}

/// One connection-tracking event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnEvent {
    pub key: ConnKey,
    /// The owning instance's id, as userspace wrote it in the held-VIP map.
    pub instance: u32,
    /// [`conn_kind`].
    pub kind: u8,
    pub _pad: [u8; 3],
}

/// What the kernel knows about one VRID on one interface. Written by the XDP program and
/// its timer callback; read by userspace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VridState {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) of the last valid advert.
    pub last_ns: u64,
    /// Time of the first valid advert.
    pub first_ns: u64,
    /// Advert interval in nanoseconds, from the last valid advert.
    pub interval_ns: u64,
    /// Master_Down_Interval in force (3 × interval + Skew, or Skew after a priority-0 advert).
    pub master_down_ns: u64,
    /// Lateness tolerated before an interval counts as missed (see [`miss_grace_ns`]).
    pub miss_grace_ns: u64,
    /// Valid adverts.
    pub adverts: u64,
    /// Valid adverts with priority 0.
    pub priority_zero: u64,
    /// Advert intervals that passed without a valid advert, in total.
    pub missed: u64,
    /// Master_Down_Interval expiries.
    pub master_down: u64,
    /// Invalid adverts by [`reason`], counted once the VRID has an entry.
    pub invalid: [u64; INVALID_REASONS],
    /// Smallest and largest gap between consecutive valid adverts.
    pub gap_min_ns: u64,
    pub gap_max_ns: u64,
    /// Source address of the last valid advert (IPv4 in the first four bytes).
    pub src: [u8; 16],
    /// Advert interval as sent: centiseconds (v3) or seconds (v2).
    pub interval: u16,
    pub priority: u8,
    pub version: u8,
    /// [`csum_style`] of the last valid advert.
    pub csum_style: u8,
    pub addr_count: u8,
    /// Missed intervals since the last valid advert (already reported as events).
    pub missed_now: u8,
    /// Non-zero once master_down was reported for the current silence.
    pub down_reported: u8,
    /// When the timer is armed to fire (absolute CLOCK_MONOTONIC ns): how late it fired
    /// tells whether this host was running to watch.
    pub armed_ns: u64,
    /// Non-zero while a stall recheck is pending for the current silence (its deadline).
    pub recheck_ns: u64,
    /// Master_Down_Interval expiries put off because the host had stalled.
    pub stalls: u64,
}

/// Per-VRID parameters written by userspace.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VridParams {
    /// Local priority: determines Skew_Time (RFC 5798 §6.1).
    pub priority: u8,
    /// Non-zero: adverts for this VRID failing a check (TTL, checksum, length, peer,
    /// authentication, ...) are dropped (`XDP_DROP`) instead of passed. Off, they are only
    /// counted: the datapath never drops what it was not told to drop.
    pub filter: u8,
    /// 1: VRRPv2 adverts must carry `auth` (simple text password); 0: not checked.
    pub auth_type: u8,
    /// How many of `peers` are set; 0: the source is not checked.
    pub peer_count: u8,
    pub _pad: [u8; 4],
    pub auth: [u8; 8],
    /// Allowed source addresses (IPv4 in the first four bytes).
    pub peers: [[u8; 16]; MAX_PEERS],
}

impl VridParams {
    pub const fn new(priority: u8) -> Self {
        Self {
            priority,
            filter: 0,
            auth_type: 0,
            peer_count: 0,
            _pad: [0; 4],
            auth: [0; 8],
            peers: [[0; 16]; MAX_PEERS],
        }
    }

    /// Is `src` allowed? (Always, when no peers are listed.)
    #[inline(always)]
    pub fn peer_allowed(&self, src: &[u8; 16]) -> bool {
        if self.peer_count == 0 {
            return true;
        }
        let mut i = 0;
        while i < MAX_PEERS {
            if i < self.peer_count as usize && self.peers[i] == *src {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// Global datapath settings (slot 0 of a one-entry array).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatapathConfig {
    /// Local priority for VRIDs without [`VridParams`]; 0 means [`DEFAULT_LOCAL_PRIORITY`].
    pub default_priority: u8,
    /// Non-zero: track only VRIDs that have [`VridParams`].
    pub only_listed: u8,
    /// Non-zero: send an [`event_kind::ADVERT`] event for every valid advert.
    pub emit_adverts: u8,
    pub _pad: [u8; 5],
}

/// One ring-buffer event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// `bpf_ktime_get_ns` when the event was produced.
    pub ts_ns: u64,
    /// Time since the last valid advert (missed, master_down) or the gap (advert).
    pub since_last_ns: u64,
    pub ifindex: u32,
    /// Kind-specific: missed count, old priority, old interval, invalid reason.
    pub aux: u32,
    /// Advert source (IPv4 in the first four bytes); zero for unattributed invalid events.
    pub src: [u8; 16],
    /// Advert interval in raw units of `version` (centiseconds v3, seconds v2).
    pub interval: u16,
    /// [`event_kind`].
    pub kind: u8,
    pub family: u8,
    pub vrid: u8,
    pub priority: u8,
    pub version: u8,
    pub csum_style: u8,
}

/// Advert interval in nanoseconds: v3 counts centiseconds, v2 whole seconds.
pub const fn interval_ns(version: u8, interval: u16) -> u64 {
    if version == 2 {
        interval as u64 * 1_000_000_000
    } else {
        interval as u64 * 10_000_000
    }
}

/// Skew_Time = ((256 - Priority) × Master_Adver_Interval) / 256 (RFC 5798 §6.1).
pub const fn skew_ns(interval_ns: u64, local_priority: u8) -> u64 {
    (256 - local_priority as u64) * interval_ns / 256
}

/// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time (RFC 5798 §6.1).
pub const fn master_down_ns(interval_ns: u64, local_priority: u8) -> u64 {
    3 * interval_ns + skew_ns(interval_ns, local_priority)
}

/// How late an advert may be before its interval counts as missed: senders jitter (keepalived
/// by ~0.1 % of the interval), so an exact deadline would report a "miss" on most adverts.
/// One eighth of the interval, but at most half the Skew so that the third miss is still
/// reported before Master_Down_Interval expires.
pub const fn miss_grace_ns(interval_ns: u64, local_priority: u8) -> u64 {
    let eighth = interval_ns / 8;
    let half_skew = skew_ns(interval_ns, local_priority) / 2;
    if eighth < half_skew {
        eighth
    } else {
        half_skew
    }
}

/// Timer lateness beyond which this host was not running to watch (a vCPU the hypervisor
/// descheduled, a stalled softirq): a kernel timer normally fires within tens of µs.
pub const STALL_TOLERANCE_NS: u64 = 1_000_000;

/// Whether a Master_Down_Interval that expired on a timer firing `late_ns` after it was
/// due is a verdict, and if not, how long to keep watching (0: it is a verdict).
///
/// A host that stood still (both vCPUs descheduled by the hypervisor, softirqs starved)
/// resumes with every expired timer firing at once, while the master's adverts that
/// arrived meanwhile still sit in the receive ring, or, when the master shares the stall,
/// are about to be sent. The silence it measured is its own. So it watches for as long as
/// it was blind, at least 1 ms and at most one advert interval (within which a live
/// master's next advert is due), once per silence; a dead master costs that much more.
pub const fn stall_recheck_ns(late_ns: u64, interval_ns: u64) -> u64 {
    if late_ns <= STALL_TOLERANCE_NS {
        return 0;
    }
    let at_most = if interval_ns > STALL_TOLERANCE_NS {
        interval_ns
    } else {
        STALL_TOLERANCE_NS
    };
    if late_ns < at_most {
        late_ns
    } else {
        at_most
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)], Copy, and contain only integers and integer
    // arrays laid out without implicit padding (checked by the size assertions below).
    unsafe impl aya::Pod for super::VridKey {}
    unsafe impl aya::Pod for super::VipKey {}
    unsafe impl aya::Pod for super::VridState {}
    unsafe impl aya::Pod for super::VridParams {}
    unsafe impl aya::Pod for super::DatapathConfig {}
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::ConnKey {}
    unsafe impl aya::Pod for super::ConnEvent {}
    unsafe impl aya::Pod for super::HeldVip {}
    unsafe impl aya::Pod for super::Liveness {}
}

// Padding-free layouts: a change that introduces padding fails the build here.
const _: () = assert!(core::mem::size_of::<VridKey>() == 8);
const _: () = assert!(core::mem::size_of::<VipKey>() == 24);
const _: () = assert!(core::mem::size_of::<VridState>() == 200);
const _: () = assert!(core::mem::size_of::<VridParams>() == 144);
const _: () = assert!(core::mem::size_of::<DatapathConfig>() == 8);
const _: () = assert!(core::mem::size_of::<Event>() == 48);
const _: () = assert!(core::mem::size_of::<ConnKey>() == 44);
const _: () = assert!(core::mem::size_of::<ConnEvent>() == 52);
const _: () = assert!(core::mem::size_of::<HeldVip>() == 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_down_interval_matches_rfc_formula() {
        // v2, 1 s, priority 100: 3 s + 156/256 s.
        let iv = interval_ns(2, 1);
        assert_eq!(iv, 1_000_000_000);
        assert_eq!(skew_ns(iv, 100), 609_375_000);
        assert_eq!(master_down_ns(iv, 100), 3_609_375_000);
        // v3, 100 ms (10 cs), priority 255: skew is 1/256 of the interval.
        let iv = interval_ns(3, 10);
        assert_eq!(iv, 100_000_000);
        assert_eq!(skew_ns(iv, 255), 390_625);
        // v3, 10 ms, priority 1.
        assert_eq!(master_down_ns(interval_ns(3, 1), 1), 30_000_000 + 9_960_937);
    }

    #[test]
    fn miss_grace_stays_below_skew() {
        let iv = interval_ns(3, 10);
        assert_eq!(miss_grace_ns(iv, 100), iv / 8);
        // Priority 254: skew is 2/256 of the interval, grace half of that.
        assert_eq!(miss_grace_ns(iv, 254), skew_ns(iv, 254) / 2);
        for p in 1..=254u8 {
            assert!(3 * iv + miss_grace_ns(iv, p) < master_down_ns(iv, p));
        }
    }

    #[test]
    fn a_timer_on_time_is_a_verdict_a_late_one_watches_as_long_as_it_was_blind() {
        let ms = 1_000_000;
        let iv = 10 * ms;
        // On time, or within normal timer latency: the master is down.
        assert_eq!(stall_recheck_ns(0, iv), 0);
        assert_eq!(stall_recheck_ns(STALL_TOLERANCE_NS, iv), 0);
        // Blind for 4 ms: watch 4 ms more.
        assert_eq!(stall_recheck_ns(4 * ms, iv), 4 * ms);
        // Blind for 30 ms at 10 ms adverts: one interval, when a live master must speak.
        assert_eq!(stall_recheck_ns(30 * ms, iv), iv);
        // At 1 s adverts a 5 ms stall costs 5 ms, not a second.
        assert_eq!(stall_recheck_ns(5 * ms, 1000 * ms), 5 * ms);
        // Never less than the tolerance itself, even for sub-ms intervals.
        assert_eq!(stall_recheck_ns(3 * ms, ms / 2), STALL_TOLERANCE_NS);
    }

    #[test]
    fn a_held_vip_tracks_its_listed_ports_or_every_port_when_none_is_listed() {
        let all = HeldVip::default();
        assert!(all.tracks(3306) && all.tracks(22));
        let mut some = HeldVip::default();
        some.ports[0] = 3306;
        some.ports[3] = 33060;
        assert!(some.tracks(3306) && some.tracks(33060));
        assert!(!some.tracks(22) && !some.tracks(0));
    }
}
