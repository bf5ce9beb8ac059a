//! Gratuitous ARP (AF_PACKET) and unsolicited neighbour advertisements (raw ICMPv6) for
//! the VIPs, so every cache on the segment points at the new master at once.
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::{Arc, Weak},
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// A gratuitous ARP request frame: sender = target = `ip`, broadcast.
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]); // Ethernet, IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip.octets());
    f
}

/// An unsolicited NA body (ICMPv6 type 136, override flag, target link-layer option);
/// the kernel fills the checksum on raw ICMPv6 sockets.
pub fn na_message(mac: [u8; 6], target: Ipv6Addr) -> Vec<u8> {
    let mut m = vec![136, 0, 0, 0, 0x20, 0, 0, 0]; // type, code, checksum, flags = Override
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[2, 1]); // option: target link-layer address, 8 bytes
    m.extend_from_slice(&mac);
    m
}

/// One [`Announcer`] per interface, shared by the instances on it. Closing a packet
/// socket waits for an RCU grace period (~16 ms here): with one per instance, an agent
/// with 250 instances took 4 s to exit, after its VIPs were gone.
#[derive(Default)]
pub struct Announcers(HashMap<(u32, [u8; 6]), Weak<Announcer>>);

impl Announcers {
    /// The announcer of interface `iface` (index `ifindex`, address `mac`), opened when
    /// no instance holds one.
    pub fn get(
        &mut self,
        iface: &str,
        ifindex: u32,
        mac: [u8; 6],
        link_local: Option<Ipv6Addr>,
    ) -> std::io::Result<Arc<Announcer>> {
        if let Some(a) = self.0.get(&(ifindex, mac)).and_then(Weak::upgrade) {
            return Ok(a);
        }
        let a = Arc::new(Announcer::new(iface, ifindex, mac, link_local)?);
        self.0.retain(|_, w| w.strong_count() > 0);
        self.0.insert((ifindex, mac), Arc::downgrade(&a));
        Ok(a)
    }
}

/// Sends gratuitous ARPs / NAs out of one interface.
pub struct Announcer {
    packet: Socket,
    icmp6: Option<Socket>,
    ifindex: u32,
    mac: [u8; 6],
}

impl Announcer {
    /// `link_local`: the interface's link-local address, the source of its NAs.
    pub fn new(
        iface: &str,
        ifindex: u32,
        mac: [u8; 6],
        link_local: Option<Ipv6Addr>,
    ) -> std::io::Result<Self> {
        let packet = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))?;
        let icmp6 = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).ok();
        if let Some(s) = &icmp6 {
            s.bind_device(Some(iface.as_bytes()))?;
            s.set_multicast_hops_v6(255)?;
            s.set_multicast_if_v6(ifindex)?;
            // A bound source: otherwise the kernel chooses one for every NA among all the
            // interface's addresses, the VIPs included (half the agent's CPU while 1 000
            // IPv6 VIPs were announced).
            if let Some(ll) = link_local {
                s.bind(&SockAddr::from(std::net::SocketAddrV6::new(
                    ll, 0, 0, ifindex,
                )))?;
            }
        }
        Ok(Self {
            packet,
            icmp6,
            ifindex,
            mac,
        })
    }

    /// One announcement for `ip`.
    pub fn announce(&self, ip: IpAddr) -> std::io::Result<()> {
        match ip {
            IpAddr::V4(v4) => {
                let frame = garp_frame(self.mac, v4);
                // SAFETY: sockaddr_ll is plain data; we fill the fields AF_PACKET needs.
                let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_protocol = 0x0806u16.to_be();
                sll.sll_ifindex = self.ifindex as i32;
                sll.sll_halen = 6;
                sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
                let n = unsafe {
                    libc::sendto(
                        std::os::fd::AsRawFd::as_raw_fd(&self.packet),
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&sll as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                if n < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            }
            IpAddr::V6(v6) => {
                let Some(s) = &self.icmp6 else { return Ok(()) };
                let all_nodes = std::net::SocketAddrV6::new(
                    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
                    0,
                    0,
                    self.ifindex,
                );
                s.send_to(&na_message(self.mac, v6), &SockAddr::from(all_nodes))
                    .map(|_| ())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_is_a_broadcast_request_for_itself() {
        let mac = [2, 0, 0, 0, 0, 1];
        let f = garp_frame(mac, Ipv4Addr::new(192, 0, 2, 100));
        assert_eq!(f.len(), 42);
        assert_eq!(&f[..6], &[0xff; 6]);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "opcode request");
        assert_eq!(&f[22..28], &mac);
        assert_eq!(&f[28..32], &f[38..42], "sender IP = target IP");
    }

    #[test]
    fn na_carries_override_and_target_link_layer_option() {
        let mac = [2, 0, 0, 0, 0, 1];
        let m = na_message(mac, "2001:db8::100".parse().unwrap());
        assert_eq!(m[0], 136);
        assert_eq!(m[4] & 0x20, 0x20);
        assert_eq!(&m[24..26], &[2, 1]);
        assert_eq!(&m[26..32], &mac);
    }
}
