//! VRRP v2 (RFC 3768) and v3 (RFC 5798 / 9568) advertisement codec.
//!
//! ```text
//!  v3:  0                   1                   2                   3
//!      |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//!      |(rsvd) |     Max Adver Int     |          Checksum             |
//!      |                      IPvX Address(es)                         |
//!  v2: |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
//!      |   Auth Type   |   Adver Int   |          Checksum             |
//!      |                         IP Address(es)                        |
//!      |                     Authentication Data (8 bytes)             |
//! ```
use std::net::IpAddr;

/// How the checksum covers the message: v2 and keepalived's `v3_checksum_as_v2` use the
/// message alone; v3 (RFC 5798, keepalived's default) prepends the IP pseudo-header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumStyle {
    NoPseudoHeader,
    PseudoHeader,
    /// Pseudo-header, but with the VRRP multicast group as the destination even when the
    /// advert is unicast (keepalived `old_unicast_checksum`). The caller passes the group
    /// as the destination in `ips`.
    PseudoHeaderMulticast,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advertisement {
    /// 2 or 3.
    pub version: u8,
    pub vrid: u8,
    pub priority: u8,
    /// Centiseconds for v3 (12 bits), seconds for v2 (8 bits).
    pub interval: u16,
    /// All of one family; v2 carries IPv4 only.
    pub addresses: Vec<IpAddr>,
    /// v2 only: authentication type and data (keepalived PASS = type 1).
    pub auth_type: u8,
    pub auth_data: [u8; 8],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("message shorter than its header or its {count} addresses ({len} bytes)")]
    Truncated { len: usize, count: u8 },
    #[error("unsupported VRRP version {0}")]
    Version(u8),
    #[error("VRRP type {0} is not 1 (ADVERTISEMENT)")]
    Type(u8),
}

impl Advertisement {
    /// Encodes the message with its checksum. `ips` is (source, destination) of the IP
    /// packet that will carry it, needed for the pseudo-header style.
    pub fn encode(&self, style: ChecksumStyle, ips: (IpAddr, IpAddr)) -> Vec<u8> {
        let mut b = Vec::with_capacity(8 + self.addresses.len() * 16 + 8);
        b.push((self.version << 4) | 1);
        b.push(self.vrid);
        b.push(self.priority);
        b.push(self.addresses.len() as u8);
        if self.version == 2 {
            b.push(self.auth_type);
            b.push(self.interval as u8);
        } else {
            b.extend_from_slice(&(self.interval & 0x0fff).to_be_bytes());
        }
        b.extend_from_slice(&[0, 0]);
        for a in &self.addresses {
            match a {
                IpAddr::V4(v4) => b.extend_from_slice(&v4.octets()),
                IpAddr::V6(v6) => b.extend_from_slice(&v6.octets()),
            }
        }
        if self.version == 2 {
            b.extend_from_slice(&self.auth_data);
        }
        let pseudo = (style != ChecksumStyle::NoPseudoHeader).then_some(ips);
        let c = checksum(&b, pseudo);
        b[6..8].copy_from_slice(&c.to_be_bytes());
        b
    }

    /// Decodes a message; `v6` says whether the carrying packet is IPv6.
    pub fn decode(b: &[u8], v6: bool) -> Result<Self, DecodeError> {
        if b.len() < 8 {
            return Err(DecodeError::Truncated {
                len: b.len(),
                count: 0,
            });
        }
        let version = b[0] >> 4;
        if version != 2 && version != 3 {
            return Err(DecodeError::Version(version));
        }
        if b[0] & 0x0f != 1 {
            return Err(DecodeError::Type(b[0] & 0x0f));
        }
        let count = b[3];
        let size = if v6 { 16 } else { 4 };
        let auth = if version == 2 { 8 } else { 0 };
        if b.len() < 8 + count as usize * size + auth {
            return Err(DecodeError::Truncated {
                len: b.len(),
                count,
            });
        }
        let addresses = b[8..8 + count as usize * size]
            .chunks(size)
            .map(|c| match c.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(c).expect("4-byte chunk")),
                _ => IpAddr::from(<[u8; 16]>::try_from(c).expect("16-byte chunk")),
            })
            .collect();
        let (interval, auth_type, mut auth_data) = if version == 2 {
            (b[5] as u16, b[4], [0u8; 8])
        } else {
            (u16::from_be_bytes([b[4], b[5]]) & 0x0fff, 0, [0u8; 8])
        };
        if version == 2 {
            let at = 8 + count as usize * size;
            auth_data.copy_from_slice(&b[at..at + 8]);
        }
        Ok(Self {
            version,
            vrid: b[1],
            priority: b[2],
            interval,
            addresses,
            auth_type,
            auth_data,
        })
    }
}

/// Internet checksum of the VRRP message `msg` (checksum field included as it stands),
/// optionally with the IPv4 or IPv6 pseudo-header of (source, destination). Returns the
/// value to store.
pub fn checksum(msg: &[u8], pseudo: Option<(IpAddr, IpAddr)>) -> u16 {
    inet_checksum(msg, pseudo, 112)
}

/// The Internet checksum of a message of IP protocol `proto` (VRRP, TCP, ...), with the
/// pseudo-header of (source, destination) when given.
pub fn inet_checksum(msg: &[u8], pseudo: Option<(IpAddr, IpAddr)>, proto: u8) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for c in bytes.chunks(2) {
            sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u64;
        }
    };
    match pseudo {
        Some((IpAddr::V4(s), IpAddr::V4(d))) => {
            add(&s.octets());
            add(&d.octets());
            add(&[0, proto]);
            add(&(msg.len() as u16).to_be_bytes());
        }
        Some((s, d)) => {
            let six = |a: IpAddr| match a {
                IpAddr::V6(v) => v.octets(),
                IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
            };
            add(&six(s));
            add(&six(d));
            add(&(msg.len() as u32).to_be_bytes());
            add(&[0, 0, 0, proto]);
        }
        None => {}
    }
    add(msg);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// True when `msg` carries a correct checksum in `style`.
pub fn verify(msg: &[u8], style: ChecksumStyle, ips: (IpAddr, IpAddr)) -> bool {
    let pseudo = (style != ChecksumStyle::NoPseudoHeader).then_some(ips);
    checksum(msg, pseudo) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ips4() -> (IpAddr, IpAddr) {
        ("192.0.2.1".parse().unwrap(), "224.0.0.18".parse().unwrap())
    }

    #[test]
    fn v3_round_trip_and_both_checksum_styles() {
        let a = Advertisement {
            version: 3,
            vrid: 41,
            priority: 150,
            interval: 10,
            addresses: vec!["192.0.2.100".parse().unwrap()],
            auth_type: 0,
            auth_data: [0; 8],
        };
        for style in [ChecksumStyle::PseudoHeader, ChecksumStyle::NoPseudoHeader] {
            let b = a.encode(style, ips4());
            assert_eq!(b.len(), 12);
            assert!(verify(&b, style, ips4()));
            let other = match style {
                ChecksumStyle::NoPseudoHeader => ChecksumStyle::PseudoHeader,
                _ => ChecksumStyle::NoPseudoHeader,
            };
            assert!(!verify(&b, other, ips4()), "styles must be distinguishable");
            assert_eq!(Advertisement::decode(&b, false).unwrap(), a);
        }
    }

    #[test]
    fn v2_carries_auth_and_seconds() {
        let a = Advertisement {
            version: 2,
            vrid: 51,
            priority: 100,
            interval: 1,
            addresses: vec![
                "192.0.2.101".parse().unwrap(),
                "192.0.2.102".parse().unwrap(),
            ],
            auth_type: 1,
            auth_data: *b"secret\0\0",
        };
        let b = a.encode(ChecksumStyle::NoPseudoHeader, ips4());
        assert_eq!(b.len(), 8 + 8 + 8);
        assert_eq!(b[4], 1);
        assert_eq!(b[5], 1);
        assert!(verify(&b, ChecksumStyle::NoPseudoHeader, ips4()));
        assert_eq!(Advertisement::decode(&b, false).unwrap(), a);
    }

    #[test]
    fn known_checksum_vector() {
        // v2 VRID 1 prio 100 one address 192.0.2.100, auth none, 1 s: computed by hand.
        let b = [
            0x21, 1, 100, 1, 0, 1, 0, 0, 192, 0, 2, 100, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        // Words: 0x2101 + 0x6401 + 0x0001 + 0xc000 + 0x0264 = 0x14767 -> 0x4768 -> !0xb897
        assert_eq!(checksum(&b, None), 0xb897);
    }

    #[test]
    fn decode_rejects_bad_input() {
        assert_eq!(
            Advertisement::decode(&[0x31, 1, 1], false),
            Err(DecodeError::Truncated { len: 3, count: 0 })
        );
        assert_eq!(
            Advertisement::decode(&[0x41, 1, 1, 0, 0, 1, 0, 0], false),
            Err(DecodeError::Version(4))
        );
        assert_eq!(
            Advertisement::decode(&[0x32, 1, 1, 0, 0, 1, 0, 0], false),
            Err(DecodeError::Type(2))
        );
        assert!(matches!(
            Advertisement::decode(&[0x31, 1, 1, 2, 0, 1, 0, 0, 1, 2, 3, 4], false),
            Err(DecodeError::Truncated { count: 2, .. })
        ));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), v6 in any::<bool>()) {
            let _ = Advertisement::decode(&bytes, v6);
        }

        #[test]
        fn v6_round_trip(vrid in 1u8..=255, prio in any::<u8>(), iv in 1u16..4096, n in 0usize..8) {
            let addrs: Vec<IpAddr> = (0..n).map(|i| IpAddr::V6(format!("2001:db8::{}", i + 1).parse().unwrap())).collect();
            let a = Advertisement { version: 3, vrid, priority: prio, interval: iv, addresses: addrs, auth_type: 0, auth_data: [0; 8] };
            let ips: (IpAddr, IpAddr) = ("fe80::1".parse().unwrap(), "ff02::12".parse().unwrap());
            let b = a.encode(ChecksumStyle::PseudoHeader, ips);
            prop_assert!(verify(&b, ChecksumStyle::PseudoHeader, ips));
            prop_assert_eq!(Advertisement::decode(&b, true).unwrap(), a);
        }
    }
}
