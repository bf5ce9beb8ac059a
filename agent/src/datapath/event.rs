//! Decoding of ring-buffer events into typed values, and their text and JSON forms.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;
use xvrrpd_common::{csum_style, event_kind, reason, Event, FAMILY_V4, FAMILY_V6};
use xvrrpd_core::events::{Heard, Observed};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn from_raw(f: u8) -> Self {
        if f == FAMILY_V6 {
            Self::V6
        } else {
            Self::V4
        }
    }
    /// The key/event encoding ([`FAMILY_V4`] / [`FAMILY_V6`]).
    pub fn raw(self) -> u8 {
        match self {
            Self::V4 => FAMILY_V4,
            Self::V6 => FAMILY_V6,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::V4 => "ipv4",
            Self::V6 => "ipv6",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsumStyle {
    Unknown,
    NoPseudoHeader,
    PseudoHeader,
    PseudoHeaderMcastDst,
}

impl CsumStyle {
    pub fn from_raw(s: u8) -> Self {
        match s {
            csum_style::NO_PSEUDO => Self::NoPseudoHeader,
            csum_style::PSEUDO_HEADER => Self::PseudoHeader,
            csum_style::PSEUDO_HEADER_MCAST_DST => Self::PseudoHeaderMcastDst,
            _ => Self::Unknown,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::NoPseudoHeader => "no_pseudo_header",
            Self::PseudoHeader => "pseudo_header",
            Self::PseudoHeaderMcastDst => "pseudo_header_mcast_dst",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    NewMaster,
    PriorityChange {
        old: u8,
    },
    IntervalChange {
        old_cs: u32,
    },
    PriorityZero,
    Missed {
        count: u32,
    },
    MasterDown {
        missed: u32,
    },
    Invalid {
        reason: u32,
    },
    Advert,
    /// The master-down timer fired `late_us` late: this host stood still; the verdict
    /// waits for a recheck.
    Stalled {
        late_us: u32,
    },
    /// Another host claimed VIP `src`, held by instance `instance`, from `mac` (an ARP
    /// naming it as sender, a neighbour advertisement for it or solicitation from it).
    VipClaimed {
        instance: u32,
        mac: [u8; 6],
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::NewMaster => "new_master",
            Self::PriorityChange { .. } => "priority_change",
            Self::IntervalChange { .. } => "interval_change",
            Self::PriorityZero => "priority_zero",
            Self::Missed { .. } => "missed",
            Self::MasterDown { .. } => "master_down",
            Self::Invalid { .. } => "invalid",
            Self::Advert => "advert",
            Self::Stalled { .. } => "stalled",
            Self::VipClaimed { .. } => "vip_claimed",
        }
    }
}

/// A decoded datapath event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatapathEvent {
    pub kind: EventKind,
    pub ts_ns: u64,
    pub ifindex: u32,
    pub family: Family,
    pub vrid: u8,
    pub src: IpAddr,
    pub priority: u8,
    pub version: u8,
    /// Advert interval normalised to centiseconds (v2 seconds × 100).
    pub interval_cs: u32,
    pub csum: CsumStyle,
    /// Nanoseconds since the last valid advert (missed, master_down) or the gap (advert).
    pub since_last_ns: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventDecodeError {
    #[error("event of {0} bytes, expected {1}")]
    Size(usize, usize),
    #[error("unknown event kind {0}")]
    Kind(u8),
    #[error("unknown address family {0}")]
    Family(u8),
}

pub fn interval_cs(version: u8, interval: u16) -> u32 {
    if version == 2 {
        interval as u32 * 100
    } else {
        interval as u32
    }
}

/// The kernel's 16-byte address layout for `ip` (IPv4 in the first four bytes, the rest
/// zero): the inverse of [`addr`].
pub fn raw_addr(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    }
}

pub fn addr(family: Family, raw: &[u8; 16]) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(*raw)),
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn reason_name(r: u32) -> &'static str {
    match r as u8 {
        reason::TTL => "ttl",
        reason::VERSION => "version",
        reason::TYPE => "type",
        reason::LENGTH => "length",
        reason::CHECKSUM => "checksum",
        reason::INTERVAL => "interval",
        reason::PEER => "peer",
        reason::AUTH => "auth",
        _ => "unknown",
    }
}

impl DatapathEvent {
    /// Decodes one ring-buffer record.
    pub fn decode(bytes: &[u8]) -> Result<Self, EventDecodeError> {
        let want = std::mem::size_of::<Event>();
        if bytes.len() != want {
            return Err(EventDecodeError::Size(bytes.len(), want));
        }
        // SAFETY: length checked; Event is plain integers, any bit pattern is valid.
        let e: Event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        Self::from_raw(&e)
    }

    pub fn from_raw(e: &Event) -> Result<Self, EventDecodeError> {
        let kind = match e.kind {
            event_kind::NEW_MASTER => EventKind::NewMaster,
            event_kind::PRIORITY_CHANGE => EventKind::PriorityChange { old: e.aux as u8 },
            event_kind::INTERVAL_CHANGE => EventKind::IntervalChange {
                old_cs: interval_cs(e.version, e.aux as u16),
            },
            event_kind::PRIORITY_ZERO => EventKind::PriorityZero,
            event_kind::MISSED => EventKind::Missed { count: e.aux },
            event_kind::MASTER_DOWN => EventKind::MasterDown { missed: e.aux },
            event_kind::INVALID => EventKind::Invalid { reason: e.aux },
            event_kind::ADVERT => EventKind::Advert,
            event_kind::STALLED => EventKind::Stalled { late_us: e.aux },
            event_kind::VIP_CLAIMED => {
                let b = e.since_last_ns.to_be_bytes();
                EventKind::VipClaimed {
                    instance: e.aux,
                    mac: [b[2], b[3], b[4], b[5], b[6], b[7]],
                }
            }
            k => return Err(EventDecodeError::Kind(k)),
        };
        // 0: an event not about a packet (a timer expiry carries its VRID's family).
        if ![0, FAMILY_V4, FAMILY_V6].contains(&e.family) {
            return Err(EventDecodeError::Family(e.family));
        }
        let family = Family::from_raw(e.family);
        Ok(Self {
            kind,
            ts_ns: e.ts_ns,
            ifindex: e.ifindex,
            family,
            vrid: e.vrid,
            src: addr(family, &e.src),
            priority: e.priority,
            version: e.version,
            interval_cs: interval_cs(e.version, e.interval),
            csum: CsumStyle::from_raw(e.csum_style),
            since_last_ns: e.since_last_ns,
        })
    }

    /// The `observe --json` line ([`Observed`]).
    pub fn observed(&self, ifname: &str) -> Observed {
        let heard = Heard {
            ifindex: self.ifindex,
            interface: ifname.to_string(),
            family: self.family.name().into(),
            vrid: self.vrid,
            src: self.src.to_string(),
            priority: self.priority,
            version: self.version,
            interval_cs: self.interval_cs,
            checksum: self.csum.name().into(),
            ts_ns: self.ts_ns,
        };
        let since_last_us = self.since_last_ns / 1000;
        match self.kind {
            EventKind::NewMaster => Observed::NewMaster { heard },
            EventKind::PriorityChange { old } => Observed::PriorityChange {
                heard,
                old_priority: old,
            },
            EventKind::IntervalChange { old_cs } => Observed::IntervalChange {
                heard,
                old_interval_cs: old_cs,
            },
            EventKind::PriorityZero => Observed::PriorityZero { heard },
            EventKind::Missed { count } => Observed::Missed {
                heard,
                count,
                since_last_us,
            },
            EventKind::MasterDown { missed } => Observed::MasterDown {
                heard,
                missed,
                since_last_us,
            },
            EventKind::Invalid { reason } => Observed::Invalid {
                heard,
                reason: reason_name(reason).into(),
            },
            EventKind::Advert => Observed::Advert {
                heard,
                gap_us: since_last_us,
            },
            EventKind::Stalled { late_us } => Observed::Stalled {
                heard,
                late_us,
                since_last_us,
            },
            EventKind::VipClaimed { instance, mac } => Observed::VipClaimed {
                heard,
                instance_id: instance,
                mac: mac_text(&mac),
            },
        }
    }

    /// [`Self::observed`] as JSON.
    pub fn to_json(&self, ifname: &str) -> Value {
        serde_json::to_value(self.observed(ifname)).expect("a line serializes")
    }

    /// One human-readable line.
    pub fn to_line(&self, ifname: &str) -> String {
        let head = format!(
            "{:>15} {ifname} {} vrid {:<3} {:<15}",
            self.kind.name(),
            self.family.name(),
            self.vrid,
            self.src
        );
        let detail = match self.kind {
            EventKind::NewMaster => format!(
                "priority {} v{} interval {}cs checksum {}",
                self.priority,
                self.version,
                self.interval_cs,
                self.csum.name()
            ),
            EventKind::PriorityChange { old } => format!("priority {old} -> {}", self.priority),
            EventKind::IntervalChange { old_cs } => {
                format!("interval {old_cs}cs -> {}cs", self.interval_cs)
            }
            EventKind::PriorityZero => "priority 0: master is leaving".to_string(),
            EventKind::Missed { count } => format!(
                "missed {count} interval(s), {:.3} ms since last advert",
                self.since_last_ns as f64 / 1e6
            ),
            EventKind::MasterDown { .. } => format!(
                "MASTER DOWN {:.3} ms after the last advert",
                self.since_last_ns as f64 / 1e6
            ),
            EventKind::Invalid { reason } => format!("invalid: {}", reason_name(reason)),
            EventKind::Advert => format!("gap {:.3} ms", self.since_last_ns as f64 / 1e6),
            EventKind::Stalled { late_us } => format!(
                "host stalled: timer {:.3} ms late, {:.3} ms since last advert; rechecking",
                late_us as f64 / 1e3,
                self.since_last_ns as f64 / 1e6
            ),
            EventKind::VipClaimed { mac, .. } => {
                format!("VIP claimed by another host, MAC {}", mac_text(&mac))
            }
        };
        format!("{head} {detail}")
    }
}

#[cfg(test)]
mod tests {
    /// Found by `cargo xtask fuzz` (datapath_event): an unknown family panicked in a
    /// debug assertion instead of being refused.
    #[test]
    fn unknown_family_is_an_error_not_a_panic() {
        let mut bytes = [0u8; 48];
        bytes[..8].copy_from_slice(&1000u64.to_le_bytes());
        bytes[42] = 1; // kind: new master
        bytes[43] = 7; // family: neither 4 nor 6
        assert_eq!(
            super::DatapathEvent::decode(&bytes).unwrap_err(),
            super::EventDecodeError::Family(7)
        );
    }

    use super::*;

    fn raw(kind: u8) -> Event {
        let mut e = Event {
            ts_ns: 123,
            since_last_ns: 3_609_375_000,
            ifindex: 4,
            aux: 3,
            interval: 1,
            kind,
            family: FAMILY_V4,
            vrid: 41,
            priority: 150,
            version: 2,
            csum_style: csum_style::NO_PSEUDO,
            ..Event::default()
        };
        e.src[..4].copy_from_slice(&[192, 0, 2, 1]);
        e
    }

    fn bytes(e: &Event) -> Vec<u8> {
        let p = (e as *const Event).cast::<u8>();
        unsafe { std::slice::from_raw_parts(p, std::mem::size_of::<Event>()) }.to_vec()
    }

    #[test]
    fn decodes_master_down_with_v2_interval_normalised() {
        let ev = DatapathEvent::decode(&bytes(&raw(event_kind::MASTER_DOWN))).unwrap();
        assert_eq!(ev.kind, EventKind::MasterDown { missed: 3 });
        assert_eq!(ev.interval_cs, 100);
        assert_eq!(ev.src, "192.0.2.1".parse::<IpAddr>().unwrap());
        let j = ev.to_json("eth0");
        assert_eq!(j["event"], "master_down");
        assert_eq!(j["since_last_us"], 3_609_375);
        assert_eq!(j["vrid"], 41);
        assert_eq!(j["family"], "ipv4");
        assert_eq!(j["checksum"], "no_pseudo_header");
        assert!(ev.to_line("eth0").contains("MASTER DOWN 3609.375 ms"));
    }

    #[test]
    fn decodes_every_kind() {
        let cases = [
            (event_kind::NEW_MASTER, "new_master"),
            (event_kind::PRIORITY_CHANGE, "priority_change"),
            (event_kind::INTERVAL_CHANGE, "interval_change"),
            (event_kind::PRIORITY_ZERO, "priority_zero"),
            (event_kind::MISSED, "missed"),
            (event_kind::MASTER_DOWN, "master_down"),
            (event_kind::INVALID, "invalid"),
            (event_kind::ADVERT, "advert"),
            (event_kind::STALLED, "stalled"),
            (event_kind::VIP_CLAIMED, "vip_claimed"),
        ];
        for (k, name) in cases {
            let ev = DatapathEvent::from_raw(&raw(k)).unwrap();
            assert_eq!(ev.kind.name(), name);
            assert_eq!(ev.to_json("x")["event"], name);
        }
        let ev = DatapathEvent::from_raw(&raw(event_kind::INTERVAL_CHANGE)).unwrap();
        assert_eq!(ev.kind, EventKind::IntervalChange { old_cs: 300 });
        let ev = DatapathEvent::from_raw(&raw(event_kind::INVALID)).unwrap();
        assert_eq!(ev.to_json("x")["reason"], "length"); // aux 3 = reason::LENGTH
        let ev = DatapathEvent::from_raw(&raw(event_kind::MISSED)).unwrap();
        assert_eq!(ev.to_json("x")["count"], 3);
        let mut claim = raw(event_kind::VIP_CLAIMED);
        claim.since_last_ns = 0x0000_0201_0203_04fe;
        let ev = DatapathEvent::from_raw(&claim).unwrap();
        assert_eq!(
            ev.kind,
            EventKind::VipClaimed {
                instance: 3,
                mac: [0x02, 0x01, 0x02, 0x03, 0x04, 0xfe]
            }
        );
        assert_eq!(ev.to_json("x")["mac"], "02:01:02:03:04:fe");
        let ev = DatapathEvent::from_raw(&raw(event_kind::STALLED)).unwrap();
        assert_eq!(ev.to_json("x")["late_us"], 3);
    }

    #[test]
    fn rejects_wrong_size_and_kind() {
        assert_eq!(
            DatapathEvent::decode(&[0; 10]),
            Err(EventDecodeError::Size(10, 48))
        );
        assert_eq!(
            DatapathEvent::from_raw(&raw(99)),
            Err(EventDecodeError::Kind(99))
        );
    }

    #[test]
    fn ipv6_source_decodes() {
        let mut e = raw(event_kind::NEW_MASTER);
        e.family = FAMILY_V6;
        e.version = 3;
        e.interval = 10;
        e.src = "fe80::5".parse::<Ipv6Addr>().unwrap().octets();
        let ev = DatapathEvent::from_raw(&e).unwrap();
        assert_eq!(ev.src, "fe80::5".parse::<IpAddr>().unwrap());
        assert_eq!(ev.interval_cs, 10);
    }
}
