//! Facts about an interface: index, MAC, primary IPv4, link-local IPv6 (getifaddrs).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    /// An Ethernet interface (ARPHRD_ETHER, a non-zero MAC): link frames can be built.
    pub ethernet: bool,
    /// Every address on it, in the kernel's order.
    pub addrs: Vec<IpAddr>,
}

impl Iface {
    /// Reads the interface now. None when it does not exist.
    pub fn read(name: &str) -> std::io::Result<Option<Self>> {
        let Some(index) = crate::datapath::ifindex(name) else {
            return Ok(None);
        };
        let mut mac = [0u8; 6];
        let mut ethernet = false;
        let mut addrs = Vec::new();
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs fills a list we free below; we only read entries.
        if unsafe { libc::getifaddrs(&mut head) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = unsafe { &*cur };
            cur = ifa.ifa_next;
            let ifname = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
            if ifname.to_bytes() != name.as_bytes() || ifa.ifa_addr.is_null() {
                continue;
            }
            let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            match family {
                libc::AF_INET => {
                    let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    addrs.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        sin.sin_addr.s_addr,
                    ))));
                }
                libc::AF_INET6 => {
                    let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    addrs.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                }
                libc::AF_PACKET => {
                    let ll = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_ll) };
                    if ll.sll_halen == 6 {
                        mac.copy_from_slice(&ll.sll_addr[..6]);
                        ethernet = ll.sll_hatype == libc::ARPHRD_ETHER && mac != [0; 6];
                    }
                }
                _ => {}
            }
        }
        unsafe { libc::freeifaddrs(head) };
        Ok(Some(Self {
            name: name.to_string(),
            index,
            mac,
            ethernet,
            addrs,
        }))
    }

    /// The first IPv4 address that is not one of `vips`.
    pub fn primary_v4(&self, vips: &[IpAddr]) -> Option<Ipv4Addr> {
        self.addrs.iter().find_map(|a| match a {
            IpAddr::V4(v4) if !vips.contains(a) => Some(*v4),
            _ => None,
        })
    }

    /// The first link-local IPv6 address (VRRPv3 over IPv6 is sent from it).
    pub fn link_local_v6(&self) -> Option<Ipv6Addr> {
        self.addrs.iter().find_map(|a| match a {
            IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => Some(*v6),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_read_and_primary_skips_vips() {
        let lo = Iface::read("lo").unwrap().expect("lo exists");
        assert!(lo.index > 0);
        assert!(lo.addrs.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(lo.primary_v4(&[]), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(lo.primary_v4(&[IpAddr::V4(Ipv4Addr::LOCALHOST)]), None);
        assert!(Iface::read("nosuchif0").unwrap().is_none());
    }
}
