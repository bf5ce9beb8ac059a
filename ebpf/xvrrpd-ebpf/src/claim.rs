//! Another host claiming a VIP this node holds: an ARP packet whose sender is the VIP, or
//! an IPv6 neighbour advertisement for it or solicitation from it.
//!
//! A host that comes back with the VIP still on its interface (a frozen host resuming, a
//! crashed agent, a rebooted host with the address in its network config) answers ARP
//! for it, and its kernel's own ARP requests name the VIP as their sender whenever it
//! sends from it (the FIN of a socket it closes, a retransmission): every client that
//! hears one points the VIP at that host, which refuses or fences them, until their
//! entry expires seconds later. Requests are broadcast, so the holder hears them too;
//! the agent answers each with a gratuitous ARP / unsolicited NA, which overrides the
//! clients' entries at once (Linux takes a gratuitous ARP whatever its `locktime`).
//!
//! Ingress only: the node's own announcements leave by the same interface and are never
//! seen here, so any claim is another host's.
use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::XdpContext};
use xvrrpd_common::{event_kind, Event, HeldVip, VipKey, FAMILY_V4, FAMILY_V6};

use crate::parse::{self, Pkt, ETH_P_IPV6};

const ETH_P_ARP: u16 = 0x0806;
const IPPROTO_ICMPV6: u8 = 58;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
/// At most one claim event per VIP in this many ns: a host that keeps claiming (two
/// masters before VRRP settles it) costs a bounded number of announcements.
const CLAIM_GAP_NS: u64 = 20_000_000;

/// Reports the frame if it claims a VIP this node holds. Never changes the verdict. Not
/// inlined: its own stack frame.
#[inline(never)]
pub fn check(ctx: &XdpContext, ifindex: u32) {
    let p = Pkt::read_in_place(ctx);
    let Some((l3, ethertype)) = parse::l3(p) else {
        return;
    };
    let claim = match ethertype {
        ETH_P_ARP => arp(p, l3),
        ETH_P_IPV6 => nd(p, l3),
        _ => None,
    };
    let Some((family, vip)) = claim else {
        return;
    };
    let Some(held) = crate::conntrack::held_mut(&VipKey::new(ifindex, family, vip)) else {
        return;
    };
    // The claimer's MAC: the frame's source.
    let Some(mac) = p.load::<[u8; 6]>(6) else {
        return;
    };
    report(held, ifindex, family, vip, mac);
}

/// The sender address of an Ethernet/IPv4 ARP request or reply.
#[inline(always)]
fn arp(p: Pkt, l3: usize) -> Option<(u8, [u8; 16])> {
    // htype 1, ptype 0x0800, hlen 6, plen 4, op, sha[6], spa[4].
    let a = p.load::<[u8; 18]>(l3)?;
    if a[0..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    let op = u16::from_be_bytes([a[6], a[7]]);
    if op != 1 && op != 2 {
        return None;
    }
    let mut vip = [0u8; 16];
    vip[..4].copy_from_slice(&a[14..18]);
    // An ARP probe (duplicate address detection) names no sender: it claims nothing.
    (vip[..4] != [0, 0, 0, 0]).then_some((FAMILY_V4, vip))
}

/// The address an IPv6 neighbour message claims: a solicitation's source (it carries the
/// sender's link-layer address), or an advertisement's target.
#[inline(always)]
fn nd(p: Pkt, l3: usize) -> Option<(u8, [u8; 16])> {
    let ip = p.load::<[u8; 40]>(l3)?;
    if ip[0] >> 4 != 6 || ip[6] != IPPROTO_ICMPV6 {
        return None;
    }
    // ICMPv6 type, code, checksum, 4 reserved / flags, then the 16-byte target.
    let icmp = p.load::<[u8; 24]>(l3 + 40)?;
    let solicit = match icmp[0] {
        ND_NEIGHBOR_SOLICIT => true,
        ND_NEIGHBOR_ADVERT => false,
        _ => return None,
    };
    let mut addr = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        addr[i] = if solicit { ip[8 + i] } else { icmp[8 + i] };
        i += 1;
    }
    // Duplicate address detection solicits from the unspecified address.
    (addr != [0u8; 16]).then_some((FAMILY_V6, addr))
}

#[inline(always)]
fn report(held: *mut HeldVip, ifindex: u32, family: u8, vip: [u8; 16], mac: [u8; 6]) {
    // SAFETY: a helper without arguments; `held` points into the map's value.
    let now = unsafe { bpf_ktime_get_ns() };
    let (instance, last) = unsafe { ((*held).instance, (*held).claimed_ns) };
    if last != 0 && now.wrapping_sub(last) < CLAIM_GAP_NS {
        return;
    }
    // SAFETY: as above.
    unsafe { (*held).claimed_ns = now };
    let mut m = [0u8; 8];
    m[2..].copy_from_slice(&mac);
    crate::emit(&Event {
        ts_ns: now,
        kind: event_kind::VIP_CLAIMED,
        ifindex,
        family,
        aux: instance,
        src: vip,
        since_last_ns: u64::from_be_bytes(m),
        ..Event::default()
    });
}
