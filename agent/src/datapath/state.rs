//! Decoding of the kernel's per-VRID state.
use std::net::IpAddr;

use xvrrpd_common::{VridKey, VridState, INVALID_REASONS};

use super::event::{addr, interval_cs, reason_name, CsumStyle, Family};

/// The state map's value as the kernel lays it out: the state, then the timer (which the
/// kernel zeroes when copying the value out).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RawEntry {
    pub state: VridState,
    pub timer: [u64; 2],
}
// SAFETY: repr(C), integers only, no padding (VridState is 200 bytes, a multiple of 8).
unsafe impl aya::Pod for RawEntry {}
const _: () = assert!(std::mem::size_of::<RawEntry>() == 216);

/// One VRID as userspace reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VridSnapshot {
    pub key: VridKey,
    pub family: Family,
    pub master: IpAddr,
    pub priority: u8,
    pub version: u8,
    pub interval_cs: u32,
    pub csum: CsumStyle,
    pub last_ns: u64,
    pub adverts: u64,
    pub priority_zero: u64,
    pub missed: u64,
    pub master_down: u64,
    /// Master_Down_Interval expiries put off because this host had stalled.
    pub stalls: u64,
    pub invalid: [u64; INVALID_REASONS],
    pub gap_min_ns: u64,
    pub gap_max_ns: u64,
}

impl VridSnapshot {
    pub fn from_raw(key: VridKey, s: &VridState) -> Self {
        let family = Family::from_raw(key.family);
        Self {
            key,
            family,
            master: addr(family, &s.src),
            priority: s.priority,
            version: s.version,
            interval_cs: interval_cs(s.version, s.interval),
            csum: CsumStyle::from_raw(s.csum_style),
            last_ns: s.last_ns,
            adverts: s.adverts,
            priority_zero: s.priority_zero,
            missed: s.missed,
            master_down: s.master_down,
            stalls: s.stalls,
            invalid: s.invalid,
            gap_min_ns: s.gap_min_ns,
            gap_max_ns: s.gap_max_ns,
        }
    }

    /// Invalid counts by reason name, non-zero ones only.
    pub fn invalid_by_reason(&self) -> Vec<(&'static str, u64)> {
        (0..INVALID_REASONS)
            .filter(|&r| self.invalid[r] > 0)
            .map(|r| (reason_name(r as u32), self.invalid[r]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvrrpd_common::{csum_style, reason, FAMILY_V6};

    #[test]
    fn decodes_v6_state_and_invalid_counts() {
        let mut s = VridState {
            adverts: 7,
            version: 3,
            interval: 10,
            priority: 200,
            csum_style: csum_style::PSEUDO_HEADER,
            ..VridState::default()
        };
        s.src = "fe80::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
        s.invalid[reason::TTL as usize] = 2;
        s.invalid[reason::CHECKSUM as usize] = 1;
        let snap = VridSnapshot::from_raw(VridKey::new(3, FAMILY_V6, 9), &s);
        assert_eq!(snap.family, Family::V6);
        assert_eq!(snap.master, "fe80::1".parse::<IpAddr>().unwrap());
        assert_eq!(snap.interval_cs, 10);
        assert_eq!(snap.csum, CsumStyle::PseudoHeader);
        assert_eq!(snap.invalid_by_reason(), vec![("ttl", 2), ("checksum", 1)]);
    }
}
