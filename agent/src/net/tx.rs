//! Advert transmission, TTL / hop limit 255, multicast to 224.0.0.18 / ff02::12 or
//! unicast to each peer.
//!
//! Multicast adverts on an Ethernet interface go out as whole frames built once
//! (Ethernet and IP headers included) on the process's one link-layer socket: nothing to
//! route, fragment or checksum per advert, and the pacer sends every frame due at one
//! instant in one `sendmmsg`. The IP layer's output path was a fifth of the pacer's CPU
//! (`cargo xtask bench scale`). Unicast adverts, which need a route and a neighbour,
//! stay on a raw IP socket (protocol 112), where the kernel writes the IP header.
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::vrrp::packet::{Advertisement, ChecksumStyle};

pub const VRRP_MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
pub const VRRP_MCAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
const IPPROTO_VRRP: i32 = 112;

/// An advert as it goes on the wire: one frame per destination.
pub type Frames = Vec<(SockAddr, Vec<u8>)>;

/// The process's link-layer socket (`AF_PACKET`, protocol 0: it receives nothing), shared
/// by every instance: closing one waits an RCU grace period.
pub fn link_socket() -> std::io::Result<Arc<Socket>> {
    let s = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))?;
    s.set_nonblocking(true)?;
    Ok(Arc::new(s))
}

/// Where link frames go: the multicast MAC of 224.0.0.18 / ff02::12 and its EtherType.
fn link_destination(v6: bool) -> ([u8; 6], u16) {
    if v6 {
        ([0x33, 0x33, 0, 0, 0, 0x12], 0x86dd)
    } else {
        ([0x01, 0x00, 0x5e, 0, 0, 0x12], 0x0800)
    }
}

/// `sockaddr_ll` for a frame out of `ifindex` to `mac`.
fn link_address(ifindex: u32, mac: [u8; 6], ethertype: u16) -> SockAddr {
    let mut storage = socket2::SockAddrStorage::zeroed();
    // SAFETY: sockaddr_storage is larger than sockaddr_ll and suitably aligned.
    let ll: &mut libc::sockaddr_ll = unsafe { storage.view_as() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = ethertype.to_be();
    ll.sll_ifindex = ifindex as i32;
    ll.sll_halen = 6;
    ll.sll_addr[..6].copy_from_slice(&mac);
    // SAFETY: the storage holds an initialised sockaddr_ll of that length.
    unsafe { SockAddr::new(storage, std::mem::size_of::<libc::sockaddr_ll>() as u32) }
}

/// Ethernet + IP header + `vrrp`: what the kernel would have sent from a raw socket
/// (DF and IP ID 0 for IPv4, an atomic datagram), with the network-control class (CS6)
/// keepalived uses.
fn link_frame(mac: [u8; 6], src: IpAddr, vrrp: &[u8]) -> Vec<u8> {
    let (dst_mac, ethertype) = link_destination(src.is_ipv6());
    let mut f = Vec::with_capacity(14 + 40 + vrrp.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ethertype.to_be_bytes());
    match src {
        IpAddr::V4(s) => {
            let mut h = [0u8; 20];
            h[0] = 0x45;
            h[1] = 0xc0;
            h[2..4].copy_from_slice(&((20 + vrrp.len()) as u16).to_be_bytes());
            h[6] = 0x40; // DF
            h[8] = 255;
            h[9] = IPPROTO_VRRP as u8;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&VRRP_MCAST_V4.octets());
            let sum = crate::vrrp::packet::inet_checksum(&h, None, 0);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            f.extend_from_slice(&h);
        }
        IpAddr::V6(s) => {
            f.extend_from_slice(&(0x6000_0000u32 | 0xc0 << 20).to_be_bytes());
            f.extend_from_slice(&(vrrp.len() as u16).to_be_bytes());
            f.push(IPPROTO_VRRP as u8);
            f.push(255);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&VRRP_MCAST_V6.octets());
        }
    }
    f.extend_from_slice(vrrp);
    f
}

/// One instance's sender.
pub struct AdvertSender {
    /// Shared with the pacer thread, which sends the periodic adverts.
    socket: Arc<Socket>,
    src: IpAddr,
    dsts: Vec<IpAddr>,
    style: ChecksumStyle,
    ifindex: u32,
    /// Multicast on Ethernet: whole frames from this MAC on the link socket.
    link_mac: Option<[u8; 6]>,
}

impl AdvertSender {
    /// `src`: the address adverts come from (primary IPv4, or IPv6 link-local);
    /// `peers`: unicast destinations, multicast when empty.
    /// `link`: the process's link socket and the interface's MAC, when it is Ethernet.
    pub fn new(
        iface: &str,
        ifindex: u32,
        src: IpAddr,
        peers: &[IpAddr],
        style: ChecksumStyle,
        link: Option<(&Arc<Socket>, [u8; 6])>,
    ) -> std::io::Result<Self> {
        if let (true, Some((socket, mac))) = (peers.is_empty(), link) {
            return Ok(Self {
                socket: socket.clone(),
                src,
                dsts: vec![if src.is_ipv4() {
                    IpAddr::V4(VRRP_MCAST_V4)
                } else {
                    IpAddr::V6(VRRP_MCAST_V6)
                }],
                style,
                ifindex,
                link_mac: Some(mac),
            });
        }
        let domain = if src.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let socket = Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)))?;
        socket.bind_device(Some(iface.as_bytes()))?;
        match src {
            IpAddr::V4(v4) => {
                socket.set_multicast_ttl_v4(255)?;
                socket.set_ttl_v4(255)?;
                socket.set_multicast_loop_v4(false)?;
                socket.set_multicast_if_v4(&v4)?;
            }
            IpAddr::V6(_) => {
                socket.set_multicast_hops_v6(255)?;
                socket.set_unicast_hops_v6(255)?;
                socket.set_multicast_loop_v6(false)?;
                socket.set_multicast_if_v6(ifindex)?;
            }
        }
        // Bind the source so the kernel uses it (and our pseudo-header matches).
        let bind = match src {
            IpAddr::V4(v4) => SocketAddr::new(IpAddr::V4(v4), 0),
            IpAddr::V6(v6) => SocketAddr::V6(std::net::SocketAddrV6::new(v6, 0, 0, ifindex)),
        };
        socket.bind(&SockAddr::from(bind))?;
        socket.set_nonblocking(true)?;
        let dsts = if peers.is_empty() {
            vec![if src.is_ipv4() {
                IpAddr::V4(VRRP_MCAST_V4)
            } else {
                IpAddr::V6(VRRP_MCAST_V6)
            }]
        } else {
            peers.to_vec()
        };
        Ok(Self {
            socket: Arc::new(socket),
            src,
            dsts,
            style,
            ifindex,
            link_mac: None,
        })
    }

    /// `adv` as it goes on the wire, one frame per destination.
    pub fn frames(&self, adv: &Advertisement) -> Frames {
        self.dsts
            .iter()
            .map(|dst| {
                let style = match (adv.version, self.src) {
                    (2, _) => ChecksumStyle::NoPseudoHeader,
                    (_, IpAddr::V6(_)) => ChecksumStyle::PseudoHeader,
                    _ => self.style,
                };
                let pseudo_dst = match (style, dst) {
                    (ChecksumStyle::PseudoHeaderMulticast, IpAddr::V4(_)) => {
                        IpAddr::V4(VRRP_MCAST_V4)
                    }
                    (ChecksumStyle::PseudoHeaderMulticast, IpAddr::V6(_)) => {
                        IpAddr::V6(VRRP_MCAST_V6)
                    }
                    _ => *dst,
                };
                let bytes = adv.encode(style, (self.src, pseudo_dst));
                if let Some(mac) = self.link_mac {
                    let (dst_mac, ethertype) = link_destination(self.src.is_ipv6());
                    return (
                        link_address(self.ifindex, dst_mac, ethertype),
                        link_frame(mac, self.src, &bytes),
                    );
                }
                let to = match dst {
                    IpAddr::V4(v4) => SocketAddr::new(IpAddr::V4(*v4), 0),
                    IpAddr::V6(v6) => {
                        SocketAddr::V6(std::net::SocketAddrV6::new(*v6, 0, 0, self.ifindex))
                    }
                };
                (SockAddr::from(to), bytes)
            })
            .collect()
    }

    /// Sends `frames` to their destinations; the first error is returned after trying all.
    pub fn send(&self, frames: &[(SockAddr, Vec<u8>)]) -> std::io::Result<()> {
        let mut first_err = None;
        for (to, bytes) in frames {
            if let Err(e) = self.socket.send_to(bytes, to) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The socket, for the pacer.
    pub fn socket(&self) -> &Arc<Socket> {
        &self.socket
    }

    pub fn source(&self) -> IpAddr {
        self.src
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::packet::inet_checksum;

    #[test]
    fn a_link_frame_is_what_the_raw_socket_sent_with_its_headers_written_once() {
        let mac = [2, 0, 0, 0, 0, 1];
        let vrrp = [0x31, 7, 150, 1, 0, 10, 0, 0, 198, 51, 100, 7];
        let f = link_frame(mac, "192.0.2.10".parse().unwrap(), &vrrp);
        assert_eq!(&f[..6], &[0x01, 0x00, 0x5e, 0, 0, 0x12], "224.0.0.18's MAC");
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        let ip = &f[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 32, "total length");
        assert_eq!((ip[6], ip[8], ip[9]), (0x40, 255, 112), "DF, TTL 255, VRRP");
        assert_eq!(&ip[12..16], &[192, 0, 2, 10]);
        assert_eq!(&ip[16..20], &[224, 0, 0, 18]);
        assert_eq!(inet_checksum(ip, None, 0), 0, "header checksum verifies");
        assert_eq!(&f[34..], &vrrp);

        let f = link_frame(mac, "fe80::1".parse().unwrap(), &vrrp);
        assert_eq!(&f[..6], &[0x33, 0x33, 0, 0, 0, 0x12], "ff02::12's MAC");
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        let ip = &f[14..54];
        assert_eq!(ip[0] >> 4, 6);
        assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 12, "payload length");
        assert_eq!((ip[6], ip[7]), (112, 255), "VRRP, hop limit 255");
        assert_eq!(&ip[24..40], &VRRP_MCAST_V6.octets());
        assert_eq!(&f[54..], &vrrp);
    }
}
