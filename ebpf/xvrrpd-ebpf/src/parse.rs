//! Frame classification: Ethernet (0–2 VLAN tags) → IPv4/IPv6 → VRRP, and validation.
//!
//! Every read goes through [`Pkt`], whose bounds check is the one the verifier sees.

use aya_ebpf::{bindings::xdp_md, programs::XdpContext};
use xvrrpd_common::{csum_style, reason, FAMILY_V4, FAMILY_V6, MAX_VRRP_LEN};

use crate::csum;

pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_VRRP: u8 = 112;
const ETH_HLEN: usize = 14;
const VRRP_MCAST_V4: [u8; 4] = [224, 0, 0, 18];
const VRRP_MCAST_V6: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12];

/// Pseudo-header sums: with the real destination, and with the VRRP multicast group in
/// its place (None when the packet went to the group anyway).
#[derive(Clone, Copy)]
struct Pseudo {
    real: u64,
    mcast: Option<u64>,
}

/// A validated VRRP advertisement.
pub struct Advert {
    pub src: [u8; 16],
    pub interval: u16,
    pub family: u8,
    pub vrid: u8,
    pub priority: u8,
    pub version: u8,
    pub csum_style: u8,
    pub addr_count: u8,
    /// VRRPv2: the Auth Type field and the 8 bytes of Authentication Data.
    pub auth_type: u8,
    pub auth: [u8; 8],
}

/// A VRRP packet that failed validation; `vrid` is known when the packet reached it.
pub struct Invalid {
    pub src: [u8; 16],
    pub reason: u8,
    pub family: u8,
    pub vrid: Option<u8>,
}

pub enum Outcome {
    NotVrrp,
    Fragment,
    Invalid(Invalid),
    Valid(Advert),
}

/// Bounds-checked view of the frame.
#[derive(Clone, Copy)]
pub struct Pkt {
    start: usize,
    end: usize,
    /// The `xdp_md` of this run (0 in a Pkt built over plain memory).
    md: usize,
}

impl Pkt {
    #[inline(always)]
    pub fn new(ctx: &XdpContext) -> Self {
        Self {
            start: ctx.data(),
            end: ctx.data_end(),
            md: ctx.ctx as usize,
        }
    }

    /// As [`Pkt::new`], with the context read where it is used: in a function of its own
    /// that the compiler may otherwise rewrite to take `data_end` as an argument, which
    /// the verifier refuses (no arithmetic on a `pkt_end` value).
    #[inline(always)]
    pub fn read_in_place(ctx: &XdpContext) -> Self {
        // SAFETY: `ctx.ctx` is the live xdp_md of this program run.
        let (start, end) = unsafe {
            (
                core::ptr::read_volatile(&(*ctx.ctx).data),
                core::ptr::read_volatile(&(*ctx.ctx).data_end),
            )
        };
        Self {
            start: start as usize,
            end: end as usize,
            md: ctx.ctx as usize,
        }
    }

    /// The program's context, for helpers that read the frame themselves.
    #[inline(always)]
    pub fn md(&self) -> *mut xdp_md {
        self.md as *mut xdp_md
    }

    /// Reads a `T` at byte offset `off`, or None past the end of the frame.
    #[inline(always)]
    pub fn load<T: Copy>(&self, off: usize) -> Option<T> {
        let p = self.start + off;
        if p + core::mem::size_of::<T>() > self.end {
            return None;
        }
        Some(unsafe { core::ptr::read_unaligned(p as *const T) })
    }

    /// Writes `v` at byte offset `off`; None (nothing written) past the end of the frame.
    #[inline(always)]
    pub fn store<T: Copy>(&self, off: usize, v: T) -> Option<()> {
        let p = self.start + off;
        if p + core::mem::size_of::<T>() > self.end {
            return None;
        }
        unsafe { core::ptr::write_unaligned(p as *mut T, v) };
        Some(())
    }

    /// The frame's length in bytes.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    #[inline(always)]
    fn u8(&self, off: usize) -> Option<u8> {
        self.load::<u8>(off)
    }

    #[inline(always)]
    fn be16(&self, off: usize) -> Option<u16> {
        self.load::<u16>(off).map(u16::from_be)
    }
}

#[inline(always)]
pub fn classify(ctx: &XdpContext) -> Outcome {
    classify_pkt(Pkt::new(ctx)).unwrap_or(Outcome::NotVrrp)
}

#[inline(always)]
fn classify_pkt(p: Pkt) -> Option<Outcome> {
    let (off, ethertype) = l3(p)?;
    match ethertype {
        ETH_P_IPV4 => ipv4(p, off),
        ETH_P_IPV6 => ipv6(p, off),
        _ => None,
    }
}

/// Where the network header starts, past up to two VLAN tags, and its ethertype.
#[inline(always)]
pub fn l3(p: Pkt) -> Option<(usize, u16)> {
    let mut off = ETH_HLEN;
    let mut ethertype = p.be16(12)?;
    // Up to two tags: 802.1Q, or 802.1ad outer + 802.1Q inner (QinQ).
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        ethertype = p.be16(off + 2)?;
        off += 4;
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            ethertype = p.be16(off + 2)?;
            off += 4;
        }
    }
    Some((off, ethertype))
}

#[inline(always)]
fn ipv4(p: Pkt, l3: usize) -> Option<Outcome> {
    let b0 = p.u8(l3)?;
    // Read the last byte of the fixed header first so the verifier has the whole range.
    let _ = p.load::<[u8; 20]>(l3)?;
    if b0 >> 4 != 4 || p.u8(l3 + 9)? != IPPROTO_VRRP {
        return None;
    }
    let ihl = ((b0 & 0x0f) as usize) * 4;
    if ihl < 20 {
        return None;
    }
    if p.be16(l3 + 6)? & 0x3fff != 0 {
        return Some(Outcome::Fragment);
    }
    let ttl = p.u8(l3 + 8)?;
    let total = p.be16(l3 + 2)? as usize;
    let src4 = p.load::<[u8; 4]>(l3 + 12)?;
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&src4);
    let s = p.load::<u32>(l3 + 12)? as u64;
    let d = p.load::<u32>(l3 + 16)?;
    if total < ihl {
        return Some(invalid(reason::LENGTH, FAMILY_V4, None, src));
    }
    let len = total - ihl;
    // Pseudo-header: addresses, zero + protocol, length (each in network order, summed
    // as the raw 16-bit words they are in memory).
    let base = s + (IPPROTO_VRRP as u16).to_be() as u64 + (len as u16).to_be() as u64;
    let mcast = u32::from_ne_bytes(VRRP_MCAST_V4);
    let pseudo = Pseudo {
        real: base + d as u64,
        mcast: if d == mcast {
            None
        } else {
            Some(base + mcast as u64)
        },
    };
    Some(vrrp(p, l3 + ihl, len, FAMILY_V4, ttl, pseudo, src))
}

#[inline(always)]
fn ipv6(p: Pkt, l3: usize) -> Option<Outcome> {
    let _ = p.load::<[u8; 40]>(l3)?;
    if p.u8(l3)? >> 4 != 6 || p.u8(l3 + 6)? != IPPROTO_VRRP {
        return None;
    }
    let len = p.be16(l3 + 4)? as usize;
    let hop_limit = p.u8(l3 + 7)?;
    let src = p.load::<[u8; 16]>(l3 + 8)?;
    let dst = p.load::<[u8; 16]>(l3 + 24)?;
    let mut base = (len as u32).to_be() as u64 + (IPPROTO_VRRP as u32).to_be() as u64;
    let mut i = 0;
    while i < 4 {
        base += p.load::<u32>(l3 + 8 + i * 4)? as u64;
        i += 1;
    }
    let d = csum::sum16(&dst);
    let pseudo = Pseudo {
        real: base + d,
        mcast: if dst == VRRP_MCAST_V6 {
            None
        } else {
            Some(base + csum::sum16(&VRRP_MCAST_V6))
        },
    };
    Some(vrrp(p, l3 + 40, len, FAMILY_V6, hop_limit, pseudo, src))
}

#[inline(always)]
fn invalid(reason: u8, family: u8, vrid: Option<u8>, src: [u8; 16]) -> Outcome {
    Outcome::Invalid(Invalid {
        src,
        reason,
        family,
        vrid,
    })
}

/// Validates the VRRP message at `off` of `len` bytes (the IP payload length).
#[inline(always)]
fn vrrp(
    p: Pkt,
    off: usize,
    len: usize,
    family: u8,
    ttl: u8,
    pseudo: Pseudo,
    src: [u8; 16],
) -> Outcome {
    let vrid = p.u8(off + 1);
    if ttl != 255 {
        return invalid(reason::TTL, family, vrid, src);
    }
    let hdr = match p.load::<[u8; 8]>(off) {
        Some(h) if len >= 8 => h,
        _ => return invalid(reason::LENGTH, family, vrid, src),
    };
    let version = hdr[0] >> 4;
    if version != 2 && version != 3 || (version == 2 && family == FAMILY_V6) {
        return invalid(reason::VERSION, family, vrid, src);
    }
    if hdr[0] & 0x0f != 1 {
        return invalid(reason::TYPE, family, vrid, src);
    }
    let (priority, count) = (hdr[2], hdr[3]);
    let interval = if version == 3 {
        u16::from_be_bytes([hdr[4], hdr[5]]) & 0x0fff
    } else {
        hdr[5] as u16
    };
    let addr_size = if family == FAMILY_V4 { 4 } else { 16 };
    let auth = if version == 2 { 8 } else { 0 };
    let need = 8 + count as usize * addr_size + auth;
    if need > len || len > MAX_VRRP_LEN as usize || !len.is_multiple_of(4) {
        return invalid(reason::LENGTH, family, vrid, src);
    }
    let sum = match csum::sum_words(p, off, len / 4) {
        Some(s) => s,
        // The IP header claims more payload than the frame holds.
        None => return invalid(reason::LENGTH, family, vrid, src),
    };
    let style = if version == 2 {
        if csum::fold(sum) == 0xffff {
            csum_style::NO_PSEUDO
        } else {
            csum_style::UNKNOWN
        }
    } else if csum::fold(sum + pseudo.real) == 0xffff {
        csum_style::PSEUDO_HEADER
    } else if family == FAMILY_V4 && csum::fold(sum) == 0xffff {
        // VRRPv3 over IPv4 without the pseudo-header (RFC 3768 style).
        csum_style::NO_PSEUDO
    } else if matches!(pseudo.mcast, Some(m) if csum::fold(sum + m) == 0xffff) {
        csum_style::PSEUDO_HEADER_MCAST_DST
    } else {
        csum_style::UNKNOWN
    };
    if style == csum_style::UNKNOWN {
        return invalid(reason::CHECKSUM, family, vrid, src);
    }
    if interval == 0 {
        return invalid(reason::INTERVAL, family, vrid, src);
    }
    let (auth_type, auth) = if version == 2 {
        match p.load::<[u8; 8]>(off + 8 + count as usize * addr_size) {
            Some(a) => (hdr[4], a),
            None => return invalid(reason::LENGTH, family, vrid, src),
        }
    } else {
        (0, [0; 8])
    };
    Outcome::Valid(Advert {
        auth_type,
        auth,
        src,
        interval,
        family,
        vrid: hdr[1],
        priority,
        version,
        csum_style: style,
        addr_count: count,
    })
}
