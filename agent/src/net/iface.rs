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

/// One `getifaddrs` snapshot of every interface: an agent preparing N instances reads the
/// host once, not N times (each read lists every address, the VIPs included).
pub struct Ifaces {
    /// By the name `getifaddrs` gives (an IPv4 address with a label comes under the label).
    by_name: std::collections::HashMap<String, Iface>,
}

impl Ifaces {
    pub fn read() -> std::io::Result<Self> {
        let mut by_name: std::collections::HashMap<String, Iface> = Default::default();
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs fills a list we free below; we only read entries.
        if unsafe { libc::getifaddrs(&mut head) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = unsafe { &*cur };
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null() {
                continue;
            }
            let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
                .to_string_lossy()
                .into_owned();
            let e = by_name.entry(name.clone()).or_insert_with(|| Iface {
                name,
                index: 0,
                mac: [0; 6],
                ethernet: false,
                addrs: Vec::new(),
            });
            let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            match family {
                libc::AF_INET => {
                    let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    e.addrs.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        sin.sin_addr.s_addr,
                    ))));
                }
                libc::AF_INET6 => {
                    let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    e.addrs
                        .push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                }
                libc::AF_PACKET => {
                    let ll = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_ll) };
                    e.index = ll.sll_ifindex as u32;
                    if ll.sll_halen == 6 {
                        e.mac.copy_from_slice(&ll.sll_addr[..6]);
                        e.ethernet = ll.sll_hatype == libc::ARPHRD_ETHER && e.mac != [0; 6];
                    }
                }
                _ => {}
            }
        }
        unsafe { libc::freeifaddrs(head) };
        Ok(Self { by_name })
    }

    /// Interface `name` as of the snapshot. None when it does not exist now.
    pub fn get(&self, name: &str) -> Option<Iface> {
        let index = crate::datapath::ifindex(name)?;
        let mut i = self.by_name.get(name).cloned().unwrap_or(Iface {
            name: name.to_string(),
            index,
            mac: [0; 6],
            ethernet: false,
            addrs: Vec::new(),
        });
        i.index = index;
        Some(i)
    }

    /// Is `addr` on the interface with index `ifindex` (under its name or a label of it)?
    pub fn holds(&self, ifindex: u32, addr: IpAddr) -> bool {
        let Some(base) = self
            .by_name
            .values()
            .find(|i| i.index == ifindex)
            .map(|i| i.name.as_str())
        else {
            return false;
        };
        self.by_name.values().any(|i| {
            (i.name == base || i.name.split(':').next() == Some(base)) && i.addrs.contains(&addr)
        })
    }
}

impl Iface {
    /// Reads the interface now. None when it does not exist.
    pub fn read(name: &str) -> std::io::Result<Option<Self>> {
        Ok(Ifaces::read()?.get(name))
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

    #[test]
    fn one_snapshot_answers_which_address_is_on_which_interface() {
        let all = Ifaces::read().unwrap();
        let lo = all.get("lo").expect("lo exists");
        assert!(all.holds(lo.index, IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(!all.holds(lo.index, "192.0.2.1".parse().unwrap()));
        assert!(!all.holds(u32::MAX, IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }
}
