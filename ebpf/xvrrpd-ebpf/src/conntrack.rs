//! Tracking clients' TCP connections to the VIPs this node holds.
//!
//! A backup that takes over must tell every client of the old master that its
//! connection is gone (a tickle ACK the client answers, which the new master's kernel
//! resets): a client blocked reading an answer, or retransmitting with a backoff of
//! seconds, otherwise waits for TCP to give up. For that it needs the connections'
//! addresses and ports before the old master dies, so the master keeps them here and its
//! agent copies them to the peer.
//!
//! XDP, not a socket hook: it already runs on the VIP's interface and parses these
//! frames (see `refuse`), it sees connections opened before the agent started as soon as
//! their next segment arrives, and it needs no cgroup. Each client segment costs one
//! hash lookup; a connection is added at the end of its handshake (the client's first
//! ACK after its SYN came here) or, for one opened before this node held the VIP or the
//! agent started, on its first segment that carries data; it is removed on the client's
//! FIN or RST. From the handshake, not from the first data: MySQL's server speaks first,
//! and a client waiting for the greeting of a server that hung sends nothing until TCP
//! keepalive, hours later. A bare ACK without a SYN seen here never adds one: a client
//! answering a tickle for a connection this node never had (the new master, right after
//! a takeover) must not be tracked. A connection that ends without FIN or RST (its
//! client died) stays until the agent ages it out: the last-seen time is refreshed at
//! most once a second.
//!
//! The new master also answers the clients' replies to its tickles itself (see
//! [`tickled`] and `refuse`), so a firewall that drops them as INVALID cannot keep
//! the reset from reaching the client.
use aya_ebpf::{
    bindings::{BPF_ANY, BPF_NOEXIST},
    btf_maps::{HashMap, LruHashMap, RingBuf},
    helpers::bpf_ktime_get_ns,
    macros::btf_map,
    programs::XdpContext,
};
use xvrrpd_common::{
    conn_kind, gstat, ConnEvent, ConnKey, HeldVip, VipKey, CONN_RING_BYTES, FAMILY_V4, FAMILY_V6,
    MAX_CONNS, MAX_RELEASED,
};

use crate::parse::{self, Pkt, ETH_P_IPV4, ETH_P_IPV6};

/// VIPs this node holds, with the instance holding them and the ports it tracks: written
/// by userspace once the address is added, deleted before it is removed.
#[btf_map]
static HELD: HashMap<VipKey, HeldVip, { MAX_RELEASED as usize }> = HashMap::new();

/// The held VIP's entry, read-only.
#[inline(always)]
pub fn held(key: &VipKey) -> Option<*const HeldVip> {
    HELD.get_ptr(key)
}

/// The held VIP's entry, writable (see `claim`).
#[inline(always)]
pub fn held_mut(key: &VipKey) -> Option<*mut HeldVip> {
    HELD.get_ptr_mut(key)
}

/// Tracked connections and when (ns) a client segment was last seen, to within a second.
#[btf_map]
static CONNS: HashMap<ConnKey, u64, { MAX_CONNS as usize }> = HashMap::new();

/// Handshakes under way: a client's SYN to a held VIP and when (ns). Least recently used
/// entries go first, so a flood of SYNs that never complete cannot fill it for good.
#[btf_map]
static OPENING: LruHashMap<ConnKey, u64, { MAX_CONNS as usize }> = LruHashMap::new();

/// How long a handshake may take to complete (the client's ACK) and still be tracked.
const OPENING_NS: u64 = 10_000_000_000;

/// Connections this node just tickled after taking their VIP over, and until when (ns)
/// their clients' answers are reset here: written by userspace before the first tickle.
#[btf_map]
static TICKLED: HashMap<ConnKey, u64, { MAX_CONNS as usize }> = HashMap::new();

#[btf_map]
static CONN_EVENTS: RingBuf<ConnEvent, { CONN_RING_BYTES as usize }> = RingBuf::new();

const IPPROTO_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
/// Refresh the last-seen time at most this often: one map write per second per
/// connection at most, not one per segment.
const REFRESH_NS: u64 = 1_000_000_000;

/// Tracks the frame if it is a client's TCP segment to a held VIP. Never changes the
/// verdict. Not inlined: its own stack frame.
#[inline(never)]
pub fn track(ctx: &XdpContext, ifindex: u32) {
    let p = Pkt::read_in_place(ctx);
    let Some((l3, ethertype)) = parse::l3(p) else {
        return;
    };
    let seen = match ethertype {
        ETH_P_IPV4 => v4(p, l3, ifindex),
        ETH_P_IPV6 => v6(p, l3, ifindex),
        _ => None,
    };
    if let Some((key, instance, flags, data)) = seen {
        update(key, instance, flags, data);
    }
}

/// The connection, its instance, the TCP flags and whether it carries data, for an IPv4
/// segment to a held VIP.
#[inline(always)]
fn v4(p: Pkt, l3: usize, ifindex: u32) -> Option<(ConnKey, u32, u8, bool)> {
    let ip = p.load::<[u8; 20]>(l3)?;
    if ip[9] != IPPROTO_TCP || ip[0] >> 4 != 4 {
        return None;
    }
    let mut vip = [0u8; 16];
    let mut client = [0u8; 16];
    vip[..4].copy_from_slice(&ip[16..20]);
    client[..4].copy_from_slice(&ip[12..16]);
    let held = HELD.get_ptr(VipKey::new(ifindex, FAMILY_V4, vip))?;
    // A later fragment carries no TCP header.
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
        return None;
    }
    let ihl = (ip[0] & 0x0f) as usize * 4;
    if ihl < 20 {
        return None;
    }
    let tcp = p.load::<[u8; 14]>(l3 + ihl)?;
    let instance = tracked(held, &tcp)?;
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    let data = total > ihl + (tcp[12] >> 4) as usize * 4;
    Some((
        conn(ifindex, FAMILY_V4, vip, client, ports(&tcp)),
        instance,
        tcp[13],
        data,
    ))
}

/// As [`v4`], for IPv6 (TCP directly after the fixed header only).
#[inline(always)]
fn v6(p: Pkt, l3: usize, ifindex: u32) -> Option<(ConnKey, u32, u8, bool)> {
    let ip = p.load::<[u8; 40]>(l3)?;
    if ip[0] >> 4 != 6 || ip[6] != IPPROTO_TCP {
        return None;
    }
    let mut vip = [0u8; 16];
    let mut client = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        client[i] = ip[8 + i];
        vip[i] = ip[24 + i];
        i += 1;
    }
    let held = HELD.get_ptr(VipKey::new(ifindex, FAMILY_V6, vip))?;
    let tcp = p.load::<[u8; 14]>(l3 + 40)?;
    let instance = tracked(held, &tcp)?;
    let payload = u16::from_be_bytes([ip[4], ip[5]]) as usize;
    let data = payload > (tcp[12] >> 4) as usize * 4;
    Some((
        conn(ifindex, FAMILY_V6, vip, client, ports(&tcp)),
        instance,
        tcp[13],
        data,
    ))
}

/// The instance holding the VIP, if it tracks the segment's destination port.
#[inline(always)]
fn tracked(held: *const HeldVip, tcp: &[u8; 14]) -> Option<u32> {
    // SAFETY: a pointer into the map's value, valid for this program run.
    let held = unsafe { &*held };
    held.tracks(u16::from_be_bytes([tcp[2], tcp[3]]))
        .then_some(held.instance)
}

/// (client port, VIP port) of a client's segment.
#[inline(always)]
fn ports(tcp: &[u8; 14]) -> (u16, u16) {
    (
        u16::from_be_bytes([tcp[0], tcp[1]]),
        u16::from_be_bytes([tcp[2], tcp[3]]),
    )
}

/// The key of the connection a client's segment belongs to.
#[inline(always)]
pub fn conn(
    ifindex: u32,
    family: u8,
    vip: [u8; 16],
    client: [u8; 16],
    (client_port, vip_port): (u16, u16),
) -> ConnKey {
    ConnKey {
        ifindex,
        family,
        _pad: 0,
        vip_port,
        vip,
        client,
        client_port,
        _pad2: 0,
    }
}

/// Is this client segment the answer to a tickle this node sent, to be reset here? A
/// SYN means the client reuses the port for a new connection: never reset, and the
/// entry goes, as does one whose time is up.
#[inline(always)]
pub fn tickled(key: &ConnKey, flags: u8) -> bool {
    let Some(until) = TICKLED.get_ptr(key) else {
        return false;
    };
    // SAFETY: a helper without arguments; `until` points into the map's value.
    let expired = unsafe { bpf_ktime_get_ns() > *until };
    if expired || flags & TCP_SYN != 0 {
        let _ = TICKLED.remove(key);
        return false;
    }
    true
}

#[inline(always)]
fn update(key: ConnKey, instance: u32, flags: u8, data: bool) {
    if flags & (TCP_FIN | TCP_RST) != 0 {
        let _ = OPENING.remove(key);
        if CONNS.remove(key).is_ok() {
            emit(key, instance, conn_kind::REMOVE);
        }
        return;
    }
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if flags & TCP_SYN != 0 {
        // A new connection (or a port reused): tracked once the handshake completes.
        let _ = OPENING.insert(key, now, BPF_ANY as u64);
        return;
    }
    if let Some(seen) = CONNS.get_ptr_mut(key) {
        // SAFETY: a pointer into the map's value, valid for this program run.
        unsafe {
            if now.wrapping_sub(*seen) > REFRESH_NS {
                *seen = now;
            }
        }
        return;
    }
    if !data {
        // The client's ACK that completes a handshake begun here.
        let Some(syn) = OPENING.get_ptr(key) else {
            return;
        };
        // SAFETY: a pointer into the map's value, valid for this program run.
        let fresh = now.wrapping_sub(unsafe { *syn }) < OPENING_NS;
        let _ = OPENING.remove(key);
        if !fresh {
            return;
        }
    } else {
        let _ = OPENING.remove(key);
    }
    if CONNS.insert(key, now, BPF_NOEXIST as u64).is_err() {
        crate::bump(gstat::CONNS_FULL);
        crate::diag::conn(crate::diag::kind::CONNS_FULL, &key);
        return;
    }
    emit(key, instance, conn_kind::ADD);
}

#[inline(always)]
fn emit(key: ConnKey, instance: u32, kind: u8) {
    let ev = ConnEvent {
        key,
        instance,
        kind,
        _pad: [0; 3],
    };
    if CONN_EVENTS.output(ev, 0).is_err() {
        crate::bump(gstat::CONN_RING_FULL);
    }
}
