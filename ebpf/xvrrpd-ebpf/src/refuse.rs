//! Refusing TCP for VIPs this node gave up.
//!
//! When a VIP moves, clients whose ARP/ND entry still names this node keep sending here
//! until the new master's announcement reaches them. The kernel drops those segments in
//! silence (the address is no longer local and a database host does not forward), so a
//! client's connect waits for its SYN retransmission (1 s) or its own connect timeout,
//! and a query on an old connection waits for TCP to give up. For a VIP userspace listed
//! in [`RELEASED`] this program answers each such segment with a RST, as a closed port
//! would (RFC 793 reset generation), so the client fails at once and reconnects, and its
//! retry goes to the new master as soon as the announcement lands.
//!
//! The same answer goes to a client's reply to a tickle ACK this node sent after taking a
//! VIP over (see `conntrack::tickled`): the kernel would reset it too, but a firewall
//! that drops segments of unknown connections as INVALID would drop it first, and the
//! client would wait for TCP to give up.
//!
//! And the same answer goes to every TCP segment for a write VIP whose master's host
//! stood still (a freeze, a stopped VM) for longer than the peer needs to take over: the
//! self-fence. The advert pacer beats ([`LIVE`]) with each advert it sends; a segment
//! arriving more than the bound after the last beat marks the instance [`STALLED`] and is
//! refused, as is every one after it, until userspace, having heard whether the peer took
//! over, clears the mark (or gives the VIP up). On resume every process wakes at once and
//! mysqld answers as fast as the agent; this answers first.
//!
//! Only IPv4 without options and IPv6 with TCP as the first next header are answered;
//! anything else, and every RST, is left to the kernel (which drops it).

use aya_ebpf::{
    bindings::{xdp_action, BPF_NOEXIST},
    btf_maps::HashMap,
    helpers::{bpf_ktime_get_ns, generated::bpf_xdp_adjust_tail},
    macros::btf_map,
    programs::XdpContext,
};
use xvrrpd_common::{gstat, ConnKey, Liveness, VipKey, FAMILY_V4, FAMILY_V6, MAX_RELEASED};

use crate::csum::fold;
use crate::parse::{self, Pkt, ETH_P_IPV4, ETH_P_IPV6};
use crate::{conntrack, diag};

/// VIPs this node gave up, written by userspace just before the address is removed (no
/// segment may fall between the two) and deleted before it is added again: a VIP this
/// node serves is never in here.
#[btf_map]
static RELEASED: HashMap<VipKey, u32, { MAX_RELEASED as usize }> = HashMap::new();

/// Write instances' heartbeats (see the module comment), by instance id: written by
/// userspace (the pacer) only.
#[btf_map]
static LIVE: HashMap<u32, Liveness, { MAX_RELEASED as usize }> = HashMap::new();

/// Write instances found stalled, and when (ns): inserted by this program or by the
/// pacer, removed by userspace only.
#[btf_map]
static STALLED: HashMap<u32, u64, { MAX_RELEASED as usize }> = HashMap::new();

const IPPROTO_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// The XDP verdict for a TCP segment to a released VIP or answering a tickle (`XDP_TX`
/// with the frame turned into the RST), or None for every other frame. Not inlined: its own stack frame, so the
/// advert path's and this one's never add up against BPF's 512 bytes.
#[inline(never)]
pub fn check(ctx: &XdpContext, ifindex: u32, fenced: bool) -> Option<u32> {
    let p = Pkt::new(ctx);
    let (l3, ethertype) = parse::l3(p)?;
    let (l4_end, counter) = match ethertype {
        ETH_P_IPV4 => v4(p, l3, ifindex, fenced)?,
        ETH_P_IPV6 => v6(p, l3, ifindex, fenced)?,
        _ => return None,
    };
    // Ethernet: back to where it came from (VLAN tags stay as they were).
    let dst = p.load::<[u8; 6]>(0)?;
    let src = p.load::<[u8; 6]>(6)?;
    p.store(0, src)?;
    p.store(6, dst)?;
    // Drop whatever followed the headers (options, payload). Packet pointers are stale
    // after this call: nothing is read or written past it.
    let delta = l4_end as i32 - p.len() as i32;
    if delta < 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        return Some(xdp_action::XDP_DROP);
    }
    crate::bump(counter);
    Some(xdp_action::XDP_TX)
}

/// (client port, local port) of a client's segment.
#[inline(always)]
fn ports(tcp: &[u8; 20]) -> (u16, u16) {
    (
        u16::from_be_bytes([tcp[0], tcp[1]]),
        u16::from_be_bytes([tcp[2], tcp[3]]),
    )
}

/// The reset's sequence, acknowledgement and flags for an incoming segment (RFC 793,
/// "Reset Generation"), or None for a RST (never answered). `data` is the payload length.
#[inline(always)]
fn reset_for(tcp: &[u8; 20], data: u32) -> Option<(u32, u32, u8)> {
    let flags = tcp[13];
    if flags & TCP_RST != 0 {
        return None;
    }
    if flags & TCP_ACK != 0 {
        let ack = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
        return Some((ack, 0, TCP_RST));
    }
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let len = data + (flags & TCP_SYN != 0) as u32 + (flags & TCP_FIN != 0) as u32;
    Some((0, seq.wrapping_add(len), TCP_RST | TCP_ACK))
}

/// The 20-byte RST header answering `tcp`, its checksum still zero.
#[inline(always)]
fn rst_header(tcp: &[u8; 20], seq: u32, ack: u32, flags: u8) -> [u8; 20] {
    let s = seq.to_be_bytes();
    let a = ack.to_be_bytes();
    [
        tcp[2], tcp[3], tcp[0], tcp[1], s[0], s[1], s[2], s[3], a[0], a[1], a[2], a[3], 0x50,
        flags, 0, 0, 0, 0, 0, 0,
    ]
}

/// Sum of an even-length byte array as native-order 16-bit words (see `csum`).
#[inline(always)]
fn sum<const N: usize>(b: &[u8; N]) -> u64 {
    let mut s = 0u64;
    let mut i = 0;
    while i + 1 < N {
        s += u16::from_ne_bytes([b[i], b[i + 1]]) as u64;
        i += 2;
    }
    s
}

/// The diagnostic line for a segment about to be refused.
#[inline(always)]
fn log(counter: u32, key: &ConnKey) {
    let kind = match counter {
        gstat::REFUSED => diag::kind::REFUSED,
        gstat::SELF_FENCED => diag::kind::SELF_FENCED,
        _ => diag::kind::TICKLE_RESET,
    };
    diag::conn(kind, key);
}

/// The counter for a segment to refuse: to a released VIP, to a self-fenced write VIP,
/// or a tickle's answer.
#[inline(always)]
fn refused(released: bool, fenced: bool, key: &ConnKey, tcp: &[u8; 20]) -> Option<u32> {
    if released {
        return Some(gstat::REFUSED);
    }
    if fenced {
        return Some(gstat::SELF_FENCED);
    }
    conntrack::tickled(key, tcp[13]).then_some(gstat::TICKLE_RESET)
}

/// Is this frame TCP to a VIP held by a write instance whose host stood still (marked
/// now if its beat is older than its bound)? Not inlined: its own stack frame.
#[inline(never)]
pub fn self_fenced(ctx: &XdpContext, ifindex: u32) -> bool {
    let p = Pkt::read_in_place(ctx);
    let Some((l3, ethertype)) = parse::l3(p) else {
        return false;
    };
    let mut vip = [0u8; 16];
    let family = match ethertype {
        ETH_P_IPV4 => {
            let Some(ip) = p.load::<[u8; 20]>(l3) else {
                return false;
            };
            if ip[9] != IPPROTO_TCP {
                return false;
            }
            vip[..4].copy_from_slice(&ip[16..20]);
            FAMILY_V4
        }
        ETH_P_IPV6 => {
            let Some(ip) = p.load::<[u8; 40]>(l3) else {
                return false;
            };
            if ip[6] != IPPROTO_TCP {
                return false;
            }
            let mut i = 0;
            while i < 16 {
                vip[i] = ip[24 + i];
                i += 1;
            }
            FAMILY_V6
        }
        _ => return false,
    };
    stalled(&VipKey::new(ifindex, family, vip))
}

#[inline(always)]
fn stalled(vip: &VipKey) -> bool {
    let Some(held) = conntrack::held(vip) else {
        return false;
    };
    // SAFETY: a pointer into the map's value, valid for this program run.
    let instance = unsafe { (*held).instance };
    let Some(live) = LIVE.get_ptr(instance) else {
        return false;
    };
    if STALLED.get_ptr(instance).is_some() {
        return true;
    }
    // SAFETY: a helper without arguments; `live` points into the map's value.
    let (now, live) = unsafe { (bpf_ktime_get_ns(), *live) };
    if live.bound_ns == 0 || now.saturating_sub(live.beat_ns) <= live.bound_ns {
        return false;
    }
    let _ = STALLED.insert(instance, now, BPF_NOEXIST as u64);
    true
}

/// Writes the IPv4 RST over the segment at `l3`: the end of the new headers and the
/// counter to bump, or None when the frame is not TCP to a released VIP or a tickle's
/// answer (or is a RST).
#[inline(always)]
fn v4(p: Pkt, l3: usize, ifindex: u32, fenced: bool) -> Option<(usize, u32)> {
    let ip = p.load::<[u8; 20]>(l3)?;
    if ip[0] != 0x45 || ip[9] != IPPROTO_TCP {
        return None;
    }
    let mut vip = [0u8; 16];
    let mut client = [0u8; 16];
    vip[..4].copy_from_slice(&ip[16..20]);
    client[..4].copy_from_slice(&ip[12..16]);
    let released = RELEASED
        .get_ptr(VipKey::new(ifindex, FAMILY_V4, vip))
        .is_some();
    // A later fragment carries no TCP header.
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
        return None;
    }
    let tcp = p.load::<[u8; 20]>(l3 + 20)?;
    let key = conntrack::conn(ifindex, FAMILY_V4, vip, client, ports(&tcp));
    let counter = refused(released, fenced, &key, &tcp)?;
    let total = u16::from_be_bytes([ip[2], ip[3]]) as u32;
    let doff = (tcp[12] >> 4) as u32 * 4;
    let (seq, ack, flags) = reset_for(&tcp, total.saturating_sub(20 + doff))?;
    log(counter, &key);

    let mut out = [
        0x45,
        0,
        0,
        40,
        0,
        0,
        0x40,
        0,
        64,
        IPPROTO_TCP,
        0,
        0,
        ip[16],
        ip[17],
        ip[18],
        ip[19],
        ip[12],
        ip[13],
        ip[14],
        ip[15],
    ];
    let c = (!fold(sum(&out))).to_ne_bytes();
    out[10] = c[0];
    out[11] = c[1];
    let mut t = rst_header(&tcp, seq, ack, flags);
    let pseudo = [
        out[12],
        out[13],
        out[14],
        out[15],
        out[16],
        out[17],
        out[18],
        out[19],
        0,
        IPPROTO_TCP,
        0,
        20,
    ];
    let c = (!fold(sum(&pseudo) + sum(&t))).to_ne_bytes();
    t[16] = c[0];
    t[17] = c[1];
    p.store(l3, out)?;
    p.store(l3 + 20, t)?;
    Some((l3 + 40, counter))
}

/// As [`v4`], for IPv6 (TCP directly after the fixed header only).
#[inline(always)]
fn v6(p: Pkt, l3: usize, ifindex: u32, fenced: bool) -> Option<(usize, u32)> {
    let ip = p.load::<[u8; 40]>(l3)?;
    if ip[0] >> 4 != 6 || ip[6] != IPPROTO_TCP {
        return None;
    }
    let mut dst = [0u8; 16];
    let mut src = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        src[i] = ip[8 + i];
        dst[i] = ip[24 + i];
        i += 1;
    }
    let released = RELEASED
        .get_ptr(VipKey::new(ifindex, FAMILY_V6, dst))
        .is_some();
    let tcp = p.load::<[u8; 20]>(l3 + 40)?;
    let key = conntrack::conn(ifindex, FAMILY_V6, dst, src, ports(&tcp));
    let counter = refused(released, fenced, &key, &tcp)?;
    let payload = u16::from_be_bytes([ip[4], ip[5]]) as u32;
    let doff = (tcp[12] >> 4) as u32 * 4;
    let (seq, ack, flags) = reset_for(&tcp, payload.saturating_sub(doff))?;
    log(counter, &key);

    // Version 6, no traffic class or flow label, 20 bytes of TCP, hop limit 64.
    let head: [u8; 8] = [0x60, 0, 0, 0, 0, 20, IPPROTO_TCP, 64];
    let mut t = rst_header(&tcp, seq, ack, flags);
    let lens: [u8; 8] = [0, 0, 0, 20, 0, 0, 0, IPPROTO_TCP];
    let c = (!fold(sum(&dst) + sum(&src) + sum(&lens) + sum(&t))).to_ne_bytes();
    t[16] = c[0];
    t[17] = c[1];
    p.store(l3, head)?;
    p.store(l3 + 8, dst)?;
    p.store(l3 + 24, src)?;
    p.store(l3 + 40, t)?;
    Some((l3 + 60, counter))
}
