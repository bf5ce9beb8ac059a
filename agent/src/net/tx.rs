//! Advert transmission on a raw IP socket (protocol 112), TTL / hop limit 255, multicast
//! to 224.0.0.18 / ff02::12 or unicast to each peer. The kernel writes the IP header.
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

/// One instance's sender.
pub struct AdvertSender {
    /// Shared with the pacer thread, which sends the periodic adverts.
    socket: Arc<Socket>,
    src: IpAddr,
    dsts: Vec<IpAddr>,
    style: ChecksumStyle,
    ifindex: u32,
}

impl AdvertSender {
    /// `src`: the address adverts come from (primary IPv4, or IPv6 link-local);
    /// `peers`: unicast destinations, multicast when empty.
    pub fn new(
        iface: &str,
        ifindex: u32,
        src: IpAddr,
        peers: &[IpAddr],
        style: ChecksumStyle,
    ) -> std::io::Result<Self> {
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
