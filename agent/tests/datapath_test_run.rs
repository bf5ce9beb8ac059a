//! The XDP program in the kernel, fed crafted frames with `BPF_PROG_TEST_RUN`.
//! Needs root (run through `cargo xtask test`). Each test loads its own copy of the
//! program, so maps start empty.
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use aya::programs::{TestRun, TestRunOptions};
use xvrrpd::{
    datapath::{
        event::{CsumStyle, DatapathEvent, EventKind, Family},
        Datapath, VridSnapshot,
    },
    vrrp::packet::{Advertisement, ChecksumStyle},
};
use xvrrpd_common::{gstat, reason, DatapathConfig, VridKey, VridParams, FAMILY_V4, FAMILY_V6};

const XDP_PASS: u32 = 2;
const MCAST4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
const SRC4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn mcast6() -> Ipv6Addr {
    "ff02::12".parse().unwrap()
}
fn src6() -> Ipv6Addr {
    "fe80::1".parse().unwrap()
}

/// How to wrap a VRRP message.
#[derive(Clone)]
struct Wrap {
    /// VLAN TPIDs, outermost first.
    vlans: Vec<u16>,
    ttl: u8,
    /// IPv4 options bytes (multiple of 4); ignored for IPv6.
    options: usize,
    v6: bool,
    dst: IpAddr,
}

impl Default for Wrap {
    fn default() -> Self {
        Self {
            vlans: vec![],
            ttl: 255,
            options: 0,
            v6: false,
            dst: MCAST4.into(),
        }
    }
}

fn frame(w: &Wrap, vrrp: &[u8]) -> Vec<u8> {
    let mut f = vec![0x01, 0x00, 0x5e, 0, 0, 18, 0x00, 0x00, 0x5e, 0, 1, 41];
    for (i, tpid) in w.vlans.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(100 + i as u16).to_be_bytes());
    }
    if w.v6 {
        f.extend_from_slice(&0x86ddu16.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(vrrp.len() as u16).to_be_bytes());
        f.push(112);
        f.push(w.ttl);
        f.extend_from_slice(&src6().octets());
        match w.dst {
            IpAddr::V6(d) => f.extend_from_slice(&d.octets()),
            IpAddr::V4(_) => panic!("v6 frame needs a v6 destination"),
        }
    } else {
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let ihl = 5 + w.options / 4;
        let total = ihl * 4 + vrrp.len();
        f.push(0x40 | ihl as u8);
        f.push(0xc0);
        f.extend_from_slice(&(total as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.push(w.ttl);
        f.push(112);
        f.extend_from_slice(&[0, 0]); // header checksum: not checked by the datapath
        f.extend_from_slice(&SRC4.octets());
        match w.dst {
            IpAddr::V4(d) => f.extend_from_slice(&d.octets()),
            IpAddr::V6(_) => panic!("v4 frame needs a v4 destination"),
        }
        // Router Alert option then NOPs.
        let mut opts = vec![1u8; w.options];
        if w.options >= 4 {
            opts[..4].copy_from_slice(&[148, 4, 0, 0]);
        }
        f.extend_from_slice(&opts);
    }
    f.extend_from_slice(vrrp);
    f
}

fn advert(version: u8, vrid: u8, priority: u8, interval: u16, v6: bool) -> Advertisement {
    let addresses = if v6 {
        vec![IpAddr::V6("2001:db8::100".parse().unwrap())]
    } else {
        vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100))]
    };
    Advertisement {
        version,
        vrid,
        priority,
        interval,
        addresses,
        auth_type: 0,
        auth_data: [0; 8],
    }
}

fn v2(vrid: u8, priority: u8) -> Vec<u8> {
    advert(2, vrid, priority, 1, false)
        .encode(ChecksumStyle::NoPseudoHeader, (SRC4.into(), MCAST4.into()))
}

fn v3_4(vrid: u8, priority: u8, interval: u16, style: ChecksumStyle) -> Vec<u8> {
    advert(3, vrid, priority, interval, false).encode(style, (SRC4.into(), MCAST4.into()))
}

fn v3_6(vrid: u8, priority: u8, interval: u16) -> Vec<u8> {
    advert(3, vrid, priority, interval, true).encode(
        ChecksumStyle::PseudoHeader,
        (src6().into(), mcast6().into()),
    )
}

struct Dp {
    dp: Datapath,
    ring: aya::maps::RingBuf<aya::maps::MapData>,
}

impl Dp {
    fn new() -> Self {
        let mut dp = Datapath::load().expect("load XDP program (are you root?)");
        let ring = dp.take_events().expect("ring");
        Self { dp, ring }
    }

    fn run(&mut self, frame: &[u8]) -> u32 {
        let r = self
            .dp
            .program()
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ..TestRunOptions::new()
            })
            .expect("BPF_PROG_TEST_RUN");
        r.return_value
    }

    fn state(&self, family: u8, vrid: u8) -> Option<VridSnapshot> {
        let key = VridKey::new(test_ifindex(), family, vrid);
        self.dp
            .states()
            .expect("states")
            .into_iter()
            .find(|s| s.key == key)
    }

    fn global(&self, slot: u32) -> u64 {
        self.dp.global_stats().expect("stats")[slot as usize]
    }

    fn events(&mut self) -> Vec<DatapathEvent> {
        let mut out = Vec::new();
        while let Some(item) = self.ring.next() {
            out.push(DatapathEvent::decode(&item).expect("decodable event"));
        }
        out
    }
}

/// Test runs receive on the loopback device of the caller's namespace.
fn test_ifindex() -> u32 {
    xvrrpd::datapath::ifindex("lo").expect("lo")
}

fn assert_valid(dp: &mut Dp, frame: &[u8], family: u8, vrid: u8) -> VridSnapshot {
    assert_eq!(dp.run(frame), XDP_PASS);
    dp.state(family, vrid)
        .unwrap_or_else(|| panic!("no state for vrid {vrid}; stats {:?}", dp.dp.global_stats()))
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn valid_v2_is_tracked_with_an_event() {
    let mut dp = Dp::new();
    let s = assert_valid(
        &mut dp,
        &frame(&Wrap::default(), &v2(41, 150)),
        FAMILY_V4,
        41,
    );
    assert_eq!(s.adverts, 1);
    assert_eq!(s.version, 2);
    assert_eq!(s.priority, 150);
    assert_eq!(s.interval_cs, 100);
    assert_eq!(s.csum, CsumStyle::NoPseudoHeader);
    assert_eq!(s.master, IpAddr::V4(SRC4));
    assert_eq!(dp.global(gstat::VALID), 1);
    let ev = dp.events();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].kind, EventKind::NewMaster);
    assert_eq!(
        (ev[0].vrid, ev[0].priority, ev[0].interval_cs),
        (41, 150, 100)
    );
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn v3_ipv4_both_checksum_styles_are_recorded() {
    let mut dp = Dp::new();
    let a = frame(
        &Wrap::default(),
        &v3_4(1, 100, 10, ChecksumStyle::PseudoHeader),
    );
    assert_eq!(
        assert_valid(&mut dp, &a, FAMILY_V4, 1).csum,
        CsumStyle::PseudoHeader
    );
    let b = frame(
        &Wrap::default(),
        &v3_4(2, 100, 10, ChecksumStyle::NoPseudoHeader),
    );
    assert_eq!(
        assert_valid(&mut dp, &b, FAMILY_V4, 2).csum,
        CsumStyle::NoPseudoHeader
    );
    // Unicast with the multicast group in the pseudo-header (keepalived old_unicast_checksum).
    let peer = Ipv4Addr::new(192, 0, 2, 2);
    let w = Wrap {
        dst: peer.into(),
        ..Wrap::default()
    };
    let old = advert(3, 3, 100, 10, false)
        .encode(ChecksumStyle::PseudoHeader, (SRC4.into(), MCAST4.into()));
    assert_eq!(
        assert_valid(&mut dp, &frame(&w, &old), FAMILY_V4, 3).csum,
        CsumStyle::PseudoHeaderMcastDst
    );
    let new = advert(3, 4, 100, 10, false)
        .encode(ChecksumStyle::PseudoHeader, (SRC4.into(), peer.into()));
    assert_eq!(
        assert_valid(&mut dp, &frame(&w, &new), FAMILY_V4, 4).csum,
        CsumStyle::PseudoHeader
    );
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn valid_v3_ipv6() {
    let mut dp = Dp::new();
    let w = Wrap {
        v6: true,
        dst: mcast6().into(),
        ..Wrap::default()
    };
    let s = assert_valid(&mut dp, &frame(&w, &v3_6(9, 200, 5)), FAMILY_V6, 9);
    assert_eq!(s.family, Family::V6);
    assert_eq!(s.master, IpAddr::V6(src6()));
    assert_eq!(
        (s.priority, s.interval_cs, s.csum),
        (200, 5, CsumStyle::PseudoHeader)
    );
    // v2 over IPv6 does not exist.
    let bad = advert(2, 10, 100, 1, true).encode(
        ChecksumStyle::NoPseudoHeader,
        (src6().into(), mcast6().into()),
    );
    assert_eq!(dp.run(&frame(&w, &bad)), XDP_PASS);
    assert_eq!(dp.global(reason::VERSION as u32), 1);
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn vlan_tags_and_ipv4_options_are_parsed() {
    let mut dp = Dp::new();
    let cases = [
        (
            Wrap {
                vlans: vec![0x8100],
                ..Wrap::default()
            },
            11,
        ),
        (
            Wrap {
                vlans: vec![0x88a8, 0x8100],
                ..Wrap::default()
            },
            12,
        ),
        (
            Wrap {
                options: 4,
                ..Wrap::default()
            },
            13,
        ),
        (
            Wrap {
                options: 40,
                vlans: vec![0x8100],
                ..Wrap::default()
            },
            14,
        ),
        (
            Wrap {
                vlans: vec![0x8100],
                v6: true,
                dst: mcast6().into(),
                ..Wrap::default()
            },
            15,
        ),
    ];
    for (w, vrid) in cases {
        let msg = if w.v6 {
            v3_6(vrid, 100, 100)
        } else {
            v3_4(vrid, 100, 100, ChecksumStyle::PseudoHeader)
        };
        let fam = if w.v6 { FAMILY_V6 } else { FAMILY_V4 };
        let s = assert_valid(&mut dp, &frame(&w, &msg), fam, vrid);
        assert_eq!(s.adverts, 1, "vrid {vrid}");
    }
    // Three tags: the third is not parsed, so the frame is not VRRP to us.
    let w = Wrap {
        vlans: vec![0x88a8, 0x8100, 0x8100],
        ..Wrap::default()
    };
    assert_eq!(
        dp.run(&frame(&w, &v3_4(16, 100, 100, ChecksumStyle::PseudoHeader))),
        XDP_PASS
    );
    assert!(dp.state(FAMILY_V4, 16).is_none());
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn every_truncation_passes_and_counts_as_length_once_ip_is_complete() {
    let mut dp = Dp::new();
    for w in [
        Wrap::default(),
        Wrap {
            v6: true,
            dst: mcast6().into(),
            ..Wrap::default()
        },
    ] {
        let msg = if w.v6 {
            v3_6(20, 100, 100)
        } else {
            v3_4(20, 100, 100, ChecksumStyle::PseudoHeader)
        };
        let full = frame(&w, &msg);
        let ip_end = 14 + if w.v6 { 40 } else { 20 };
        let before = dp.global(reason::LENGTH as u32);
        for cut in 14..full.len() {
            assert_eq!(dp.run(&full[..cut]), XDP_PASS, "cut at {cut}");
        }
        let counted = dp.global(reason::LENGTH as u32) - before;
        assert_eq!(
            counted as usize,
            full.len() - ip_end,
            "length errors for v6={}",
            w.v6
        );
        assert_eq!(dp.global(gstat::VALID), 0);
    }
    assert!(dp.state(FAMILY_V4, 20).is_none() && dp.state(FAMILY_V6, 20).is_none());
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn invalid_adverts_are_counted_by_reason_and_attributed() {
    let mut dp = Dp::new();
    let w = Wrap::default();
    // A valid advert first, so later invalid ones are attributed to VRID 30.
    assert_valid(
        &mut dp,
        &frame(&w, &v3_4(30, 100, 100, ChecksumStyle::PseudoHeader)),
        FAMILY_V4,
        30,
    );
    dp.events();

    let mut bad_csum = v3_4(30, 100, 100, ChecksumStyle::PseudoHeader);
    bad_csum[6] ^= 0xff;
    let mut bad_version = v3_4(30, 100, 100, ChecksumStyle::PseudoHeader);
    bad_version[0] = 0x41;
    let mut bad_type = v3_4(30, 100, 100, ChecksumStyle::PseudoHeader);
    bad_type[0] = 0x32;
    // Count says 3 addresses, the message carries one.
    let mut bad_count = advert(3, 30, 100, 100, false);
    bad_count.addresses.truncate(1);
    let mut bad_count = bad_count.encode(ChecksumStyle::PseudoHeader, (SRC4.into(), MCAST4.into()));
    bad_count[3] = 3;
    let zero_interval = v3_4(30, 100, 0, ChecksumStyle::PseudoHeader);

    let cases: Vec<(Vec<u8>, u8)> = vec![
        (frame(&w, &bad_csum), reason::CHECKSUM),
        (
            frame(
                &Wrap {
                    ttl: 254,
                    ..w.clone()
                },
                &v3_4(30, 100, 100, ChecksumStyle::PseudoHeader),
            ),
            reason::TTL,
        ),
        (frame(&w, &bad_version), reason::VERSION),
        (frame(&w, &bad_type), reason::TYPE),
        (frame(&w, &bad_count), reason::LENGTH),
        (frame(&w, &zero_interval), reason::INTERVAL),
    ];
    for (f, r) in &cases {
        assert_eq!(dp.run(f), XDP_PASS);
        assert_eq!(dp.global(*r as u32), 1, "global counter for reason {r}");
        let s = dp.state(FAMILY_V4, 30).unwrap();
        assert_eq!(s.invalid[*r as usize], 1, "per-VRID counter for reason {r}");
        assert_eq!(s.adverts, 1, "an invalid advert must not count as valid");
    }
    // One rate-limited invalid event per reason.
    let ev = dp.events();
    let reasons: Vec<u32> = ev
        .iter()
        .filter_map(|e| {
            if let EventKind::Invalid { reason } = e.kind {
                Some(reason)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(reasons.len(), cases.len(), "{ev:?}");
    // Same reason again within the second: counted, no new event.
    assert_eq!(dp.run(&cases[0].0), XDP_PASS);
    assert_eq!(
        dp.state(FAMILY_V4, 30).unwrap().invalid[reason::CHECKSUM as usize],
        2
    );
    assert!(dp.events().is_empty());
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn non_vrrp_traffic_is_passed_untouched_and_uncounted() {
    let mut dp = Dp::new();
    // UDP over IPv4.
    let mut udp = frame(&Wrap::default(), &[0u8; 16]);
    udp[14 + 9] = 17;
    // ARP.
    let mut arp = vec![0xff; 12];
    arp.extend_from_slice(&0x0806u16.to_be_bytes());
    arp.extend_from_slice(&[0u8; 28]);
    // An IPv4 fragment of protocol 112.
    let mut frag = frame(&Wrap::default(), &v2(40, 100));
    frag[14 + 6] = 0x20; // more fragments
    for f in [&udp, &arp, &frag] {
        let mut out = vec![0u8; f.len()];
        let r = dp
            .dp
            .program()
            .test_run(TestRunOptions {
                data_in: Some(f),
                data_out: Some(&mut out),
                ..TestRunOptions::new()
            })
            .unwrap();
        assert_eq!(r.return_value, XDP_PASS);
        assert_eq!(
            &out[..r.data_size_out as usize],
            &f[..],
            "frame must be unchanged"
        );
    }
    let stats = dp.dp.global_stats().unwrap();
    assert_eq!(
        stats[..xvrrpd_common::INVALID_REASONS].iter().sum::<u64>(),
        0
    );
    assert_eq!(stats[gstat::VALID as usize], 0);
    assert_eq!(stats[gstat::FRAGMENT as usize], 1);
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn changes_of_master_priority_and_interval_are_events() {
    let mut dp = Dp::new();
    let w = Wrap::default();
    dp.run(&frame(&w, &v3_4(50, 100, 100, ChecksumStyle::PseudoHeader)));
    dp.run(&frame(&w, &v3_4(50, 120, 100, ChecksumStyle::PseudoHeader)));
    dp.run(&frame(&w, &v3_4(50, 120, 50, ChecksumStyle::PseudoHeader)));
    dp.run(&frame(&w, &v3_4(50, 0, 50, ChecksumStyle::PseudoHeader)));
    let kinds: Vec<EventKind> = dp.events().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::NewMaster,
            EventKind::PriorityChange { old: 100 },
            EventKind::IntervalChange { old_cs: 100 },
            EventKind::PriorityChange { old: 120 },
            EventKind::PriorityZero,
        ]
    );
    let s = dp.state(FAMILY_V4, 50).unwrap();
    assert_eq!((s.adverts, s.priority_zero), (4, 1));
}

/// Waits (bounded) until `f` holds; kernel timers run asynchronously.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn kernel_timer_reports_missed_intervals_then_master_down() {
    let mut dp = Dp::new();
    // Local priority 200 for VRID 60 (Skew = 56/256 of the interval).
    dp.dp
        .set_params(
            VridKey::new(test_ifindex(), FAMILY_V4, 60),
            VridParams::new(200),
        )
        .unwrap();
    dp.run(&frame(
        &Wrap::default(),
        &v3_4(60, 150, 2, ChecksumStyle::PseudoHeader),
    ));
    assert!(
        eventually(|| dp.state(FAMILY_V4, 60).unwrap().master_down == 1),
        "no master_down"
    );
    let s = dp.state(FAMILY_V4, 60).unwrap();
    assert_eq!(s.missed, 3);
    let ev = dp.events();
    let tail: Vec<_> = ev.iter().skip(1).map(|e| e.kind).collect();
    assert_eq!(
        tail,
        vec![
            EventKind::Missed { count: 1 },
            EventKind::Missed { count: 2 },
            EventKind::Missed { count: 3 },
            EventKind::MasterDown { missed: 3 }
        ]
    );
    // The kernel reports the silence it measured; it can only be late, never early.
    let mdi = xvrrpd_common::master_down_ns(20_000_000, 200);
    assert!(
        ev[4].since_last_ns >= mdi,
        "{} < {}",
        ev[4].since_last_ns,
        mdi
    );
    // The master speaks again: it is reported as a (returning) new master.
    dp.run(&frame(
        &Wrap::default(),
        &v3_4(60, 150, 2, ChecksumStyle::PseudoHeader),
    ));
    let back: Vec<_> = dp.events().into_iter().map(|e| e.kind).collect();
    assert_eq!(back.first(), Some(&EventKind::NewMaster), "{back:?}");
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn only_listed_vrids_are_tracked_when_asked() {
    let mut dp = Dp::new();
    dp.dp
        .set_config(DatapathConfig {
            only_listed: 1,
            ..DatapathConfig::default()
        })
        .unwrap();
    dp.dp
        .set_params(
            VridKey::new(test_ifindex(), FAMILY_V4, 70),
            VridParams::new(100),
        )
        .unwrap();
    dp.run(&frame(
        &Wrap::default(),
        &v3_4(70, 100, 100, ChecksumStyle::PseudoHeader),
    ));
    dp.run(&frame(
        &Wrap::default(),
        &v3_4(71, 100, 100, ChecksumStyle::PseudoHeader),
    ));
    assert!(dp.state(FAMILY_V4, 70).is_some());
    assert!(dp.state(FAMILY_V4, 71).is_none());
    assert_eq!(dp.global(gstat::UNLISTED), 1);
}

const XDP_DROP: u32 = 1;

/// Spoofing-check parameters for VRID `vrid`: peers, optional v2 password, filter on/off.
fn guarded(dp: &mut Dp, vrid: u8, peers: &[Ipv4Addr], pass: Option<&[u8]>, filter: bool) {
    let mut p = VridParams::new(100);
    p.filter = filter as u8;
    for (slot, ip) in p.peers.iter_mut().zip(peers) {
        slot[..4].copy_from_slice(&ip.octets());
    }
    p.peer_count = peers.len() as u8;
    if let Some(pass) = pass {
        p.auth_type = 1;
        p.auth[..pass.len()].copy_from_slice(pass);
    }
    dp.dp
        .set_params(VridKey::new(test_ifindex(), FAMILY_V4, vrid), p)
        .unwrap();
}

fn v2_with_pass(vrid: u8, priority: u8, pass: &[u8]) -> Vec<u8> {
    let mut a = advert(2, vrid, priority, 1, false);
    a.auth_type = 1;
    a.auth_data[..pass.len()].copy_from_slice(pass);
    a.encode(ChecksumStyle::NoPseudoHeader, (SRC4.into(), MCAST4.into()))
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn spoof_filter_drops_non_peers_and_counts_them_when_off() {
    let mut dp = Dp::new();
    let stranger = Ipv4Addr::new(192, 0, 2, 99);
    let good = frame(
        &Wrap::default(),
        &v3_4(80, 255, 100, ChecksumStyle::PseudoHeader),
    );
    // Filter off, SRC4 not a peer: counted as `peer`, still passed and tracked.
    guarded(&mut dp, 80, &[stranger], None, false);
    assert_eq!(dp.run(&good), XDP_PASS);
    let s = dp
        .state(FAMILY_V4, 80)
        .expect("tracked with the filter off");
    assert_eq!((s.adverts, s.invalid[reason::PEER as usize]), (1, 1));
    // Filter on: dropped, not tracked as an advert, counted.
    guarded(&mut dp, 80, &[stranger], None, true);
    assert_eq!(dp.run(&good), XDP_DROP);
    let s = dp.state(FAMILY_V4, 80).unwrap();
    assert_eq!((s.adverts, s.invalid[reason::PEER as usize]), (1, 2));
    assert_eq!(dp.global(gstat::FILTERED), 1);
    // SRC4 listed: passed.
    guarded(&mut dp, 80, &[stranger, SRC4], None, true);
    assert_eq!(dp.run(&good), XDP_PASS);
    assert_eq!(dp.state(FAMILY_V4, 80).unwrap().adverts, 2);
    // Other VRIDs are never dropped.
    let other = frame(
        &Wrap {
            ttl: 64,
            ..Wrap::default()
        },
        &v3_4(81, 200, 100, ChecksumStyle::PseudoHeader),
    );
    assert_eq!(dp.run(&other), XDP_PASS);
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn spoof_filter_drops_bad_ttl_checksum_and_password() {
    let mut dp = Dp::new();
    guarded(&mut dp, 82, &[SRC4], Some(b"secret"), true);
    let ttl = frame(
        &Wrap {
            ttl: 64,
            ..Wrap::default()
        },
        &v2_with_pass(82, 200, b"secret"),
    );
    assert_eq!(dp.run(&ttl), XDP_DROP);
    let mut bad_sum = v2_with_pass(82, 200, b"secret");
    bad_sum[6] ^= 0xff; // checksum bytes
    assert_eq!(dp.run(&frame(&Wrap::default(), &bad_sum)), XDP_DROP);
    let wrong = frame(&Wrap::default(), &v2_with_pass(82, 200, b"guess"));
    assert_eq!(dp.run(&wrong), XDP_DROP);
    let none = frame(&Wrap::default(), &v2(82, 200));
    assert_eq!(dp.run(&none), XDP_DROP);
    // A configured VRID is counted from the first packet, before any valid advert.
    let s = dp.state(FAMILY_V4, 82).expect("configured VRID counted");
    assert_eq!(s.adverts, 0, "a rejected advert was tracked");
    let right = frame(&Wrap::default(), &v2_with_pass(82, 200, b"secret"));
    assert_eq!(dp.run(&right), XDP_PASS);
    let s = dp.state(FAMILY_V4, 82).unwrap();
    assert_eq!(s.adverts, 1);
    let by = |r: u8| s.invalid[r as usize];
    assert_eq!(
        (by(reason::TTL), by(reason::CHECKSUM), by(reason::AUTH)),
        (1, 1, 2)
    );
    assert_eq!(dp.global(reason::AUTH as u32), 2);
    assert_eq!(dp.global(gstat::FILTERED), 4);
    // The first valid advert is still reported as a new master.
    assert!(dp.events().iter().any(|e| e.kind == EventKind::NewMaster));
    // With the filter off the same bad packets pass (counted only).
    guarded(&mut dp, 82, &[SRC4], Some(b"secret"), false);
    assert_eq!(dp.run(&ttl), XDP_PASS);
    assert_eq!(dp.run(&wrong), XDP_PASS);
    let s = dp.state(FAMILY_V4, 82).unwrap();
    assert_eq!(
        (
            s.invalid[reason::TTL as usize],
            s.invalid[reason::AUTH as usize]
        ),
        (2, 3)
    );
}

const XDP_TX: u32 = 3;
const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const CLIENT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);

/// A TCP segment from a client (port 40000) to `dst`:3306 with `flags`, `seq`, `ack`,
/// 12 bytes of options and `data` bytes of payload, behind one VLAN tag.
fn tcp_frame(src: IpAddr, dst: IpAddr, flags: u8, seq: u32, ack: u32, data: usize) -> Vec<u8> {
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&40000u16.to_be_bytes());
    tcp.extend_from_slice(&3306u16.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.extend_from_slice(&[0x80, flags, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(&[2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7]);
    tcp.extend(std::iter::repeat_n(0xab, data));
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00, 0, 100];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            f.extend_from_slice(&[0x45, 0]);
            f.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
            f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 63, 6, 0, 0]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            f.extend_from_slice(&[6, 63]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed families"),
    }
    f.extend_from_slice(&tcp);
    f
}

/// RFC 1071 over `bytes` (odd length padded), folded and complemented.
fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What the program sent back: (XDP verdict, frame).
fn run_out(dp: &mut Dp, frame: &[u8]) -> (u32, Vec<u8>) {
    let mut out = vec![0u8; 256];
    let r = dp
        .dp
        .program()
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::new()
        })
        .expect("BPF_PROG_TEST_RUN");
    out.truncate(r.data_size_out as usize);
    (r.return_value, out)
}

/// Checks an IPv4 RST answering the client's segment: addresses, ports, MACs and VLAN
/// turned round, both checksums valid, no options or payload. Returns (seq, ack, flags).
fn rst4(out: &[u8]) -> (u32, u32, u8) {
    assert_eq!(out.len(), 18 + 40, "{out:02x?}");
    assert_eq!(
        &out[..12],
        &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1],
        "MACs swapped"
    );
    assert_eq!(&out[12..18], &[0x81, 0x00, 0, 100, 0x08, 0x00], "VLAN kept");
    let ip = &out[18..38];
    assert_eq!(internet_checksum(ip), 0, "IPv4 header checksum");
    assert_eq!((ip[0], ip[3], ip[8], ip[9]), (0x45, 40, 64, 6));
    assert_eq!(&ip[12..16], &VIP4.octets());
    assert_eq!(&ip[16..20], &CLIENT4.octets());
    let tcp = &out[38..58];
    let mut pseudo = ip[12..20].to_vec();
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    pseudo.extend_from_slice(tcp);
    assert_eq!(internet_checksum(&pseudo), 0, "TCP checksum");
    assert_eq!(&tcp[..4], &[0x0c, 0xea, 0x9c, 0x40], "ports swapped");
    assert_eq!(tcp[12], 0x50);
    (
        u32::from_be_bytes(tcp[4..8].try_into().unwrap()),
        u32::from_be_bytes(tcp[8..12].try_into().unwrap()),
        tcp[13],
    )
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn tcp_to_a_released_vip_is_answered_with_a_reset() {
    let mut dp = Dp::new();
    let (vip, client) = (IpAddr::V4(VIP4), IpAddr::V4(CLIENT4));
    let syn = tcp_frame(client, vip, 0x02, 1000, 0, 0);
    // Not released: the kernel's business.
    assert_eq!(dp.run(&syn), XDP_PASS);
    dp.dp.release_vip(test_ifindex(), vip).unwrap();
    // A SYN: RST|ACK acknowledging the SYN, sequence 0 (RFC 793 reset generation).
    let (verdict, out) = run_out(&mut dp, &syn);
    assert_eq!(verdict, XDP_TX);
    assert_eq!(rst4(&out), (0, 1001, 0x14));
    // A segment of an old connection (ACK, 100 bytes): RST at the acknowledged sequence.
    let data = tcp_frame(client, vip, 0x18, 5000, 777, 100);
    let (verdict, out) = run_out(&mut dp, &data);
    assert_eq!(verdict, XDP_TX);
    assert_eq!(rst4(&out), (777, 0, 0x04));
    // A FIN without ACK counts one, like a SYN.
    let fin = tcp_frame(client, vip, 0x01, 9, 0, 3);
    assert_eq!(rst4(&run_out(&mut dp, &fin).1), (0, 13, 0x14));
    // A RST is never answered; another address is not touched.
    assert_eq!(dp.run(&tcp_frame(client, vip, 0x04, 1, 0, 0)), XDP_PASS);
    let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 101));
    assert_eq!(dp.run(&tcp_frame(client, other, 0x02, 1, 0, 0)), XDP_PASS);
    assert_eq!(dp.global(gstat::REFUSED), 3);
    // Reclaimed (before the address is added back): passed again.
    dp.dp.reclaim_vip(test_ifindex(), vip).unwrap();
    assert_eq!(dp.run(&syn), XDP_PASS);
    // Reclaiming what is not released is not an error.
    dp.dp.reclaim_vip(test_ifindex(), vip).unwrap();
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn tcp_to_a_released_ipv6_vip_is_answered_with_a_reset() {
    let mut dp = Dp::new();
    let vip: IpAddr = "2001:db8::100".parse().unwrap();
    let client: IpAddr = "2001:db8::50".parse().unwrap();
    dp.dp.release_vip(test_ifindex(), vip).unwrap();
    let (verdict, out) = run_out(&mut dp, &tcp_frame(client, vip, 0x02, 41, 0, 0));
    assert_eq!(verdict, XDP_TX);
    assert_eq!(out.len(), 18 + 60, "{out:02x?}");
    let ip = &out[18..58];
    assert_eq!(&ip[..8], &[0x60, 0, 0, 0, 0, 20, 6, 64]);
    let (IpAddr::V6(v), IpAddr::V6(c)) = (vip, client) else {
        unreachable!()
    };
    assert_eq!(&ip[8..24], &v.octets());
    assert_eq!(&ip[24..40], &c.octets());
    let tcp = &out[58..78];
    let mut pseudo = ip[8..40].to_vec();
    pseudo.extend_from_slice(&[0, 0, 0, 20, 0, 0, 0, 6]);
    pseudo.extend_from_slice(tcp);
    assert_eq!(internet_checksum(&pseudo), 0, "TCP checksum");
    assert_eq!(&tcp[..4], &[0x0c, 0xea, 0x9c, 0x40]);
    assert_eq!(&tcp[4..14], &[0, 0, 0, 0, 0, 0, 0, 42, 0x50, 0x14]);
}

/// The connection `tcp_frame` builds, as the datapath keys it.
fn conn_key(client: IpAddr, vip: IpAddr) -> xvrrpd_common::ConnKey {
    xvrrpd::conntrack::Conn {
        vip: std::net::SocketAddr::new(vip, 3306),
        client: std::net::SocketAddr::new(client, 40000),
    }
    .key(test_ifindex())
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn a_tickles_answer_is_reset_until_its_time_is_up_and_a_syn_ends_it() {
    let mut dp = Dp::new();
    let (vip, client) = (IpAddr::V4(VIP4), IpAddr::V4(CLIENT4));
    let key = conn_key(client, vip);
    let later = xvrrpd::net::monotonic_ns() + 60_000_000_000;
    // The client's answer to a tickle: an ACK with its real numbers.
    let answer = tcp_frame(client, vip, 0x10, 5000, 777, 0);
    assert_eq!(dp.run(&answer), XDP_PASS, "not tickled: the kernel's");
    assert_eq!(dp.dp.answer_tickles(&[key], later).unwrap(), 1);
    let (verdict, out) = run_out(&mut dp, &answer);
    assert_eq!(verdict, XDP_TX);
    assert_eq!(rst4(&out), (777, 0, 0x04), "RST at the sequence it expects");
    // A retransmitted request (data) is reset the same way, and stays listed.
    let data = tcp_frame(client, vip, 0x18, 5000, 777, 100);
    assert_eq!(rst4(&run_out(&mut dp, &data).1), (777, 0, 0x04));
    assert_eq!(dp.global(gstat::TICKLE_RESET), 2);
    assert_eq!(dp.global(gstat::REFUSED), 0, "not a released VIP");
    // Another client's segment is not this connection's.
    let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 51));
    assert_eq!(dp.run(&tcp_frame(other, vip, 0x10, 5000, 777, 0)), XDP_PASS);
    // The client reuses its port for a new connection: passed, and the entry goes.
    assert_eq!(dp.run(&tcp_frame(client, vip, 0x02, 1, 0, 0)), XDP_PASS);
    assert_eq!(dp.run(&answer), XDP_PASS);
    // An entry whose time is over is passed and dropped too.
    let past = xvrrpd::net::monotonic_ns() - 1;
    dp.dp.answer_tickles(&[key], past).unwrap();
    assert_eq!(dp.run(&answer), XDP_PASS);
    assert_eq!(dp.global(gstat::TICKLE_RESET), 2);
    // Userspace forgets a VIP's entries when it gives the VIP up, and expired ones.
    dp.dp.answer_tickles(&[key], later).unwrap();
    assert_eq!(
        dp.dp
            .forget_tickles(None, xvrrpd::net::monotonic_ns())
            .unwrap(),
        0
    );
    assert_eq!(
        dp.dp
            .forget_tickles(Some((test_ifindex(), vip)), 0)
            .unwrap(),
        1
    );
    assert_eq!(dp.run(&answer), XDP_PASS);
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn a_tickles_answer_over_ipv6_is_reset() {
    let mut dp = Dp::new();
    let vip: IpAddr = "2001:db8::100".parse().unwrap();
    let client: IpAddr = "2001:db8::50".parse().unwrap();
    let later = xvrrpd::net::monotonic_ns() + 60_000_000_000;
    dp.dp
        .answer_tickles(&[conn_key(client, vip)], later)
        .unwrap();
    let (verdict, out) = run_out(&mut dp, &tcp_frame(client, vip, 0x10, 9, 4242, 0));
    assert_eq!(verdict, XDP_TX);
    let tcp = &out[58..78];
    assert_eq!(&tcp[4..14], &[0, 0, 0x10, 0x92, 0, 0, 0, 0, 0x50, 0x04]);
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn a_held_vips_connections_are_tracked_on_its_listed_ports_only() {
    let (vip, client) = (IpAddr::V4(VIP4), IpAddr::V4(CLIENT4));
    let request = tcp_frame(client, vip, 0x18, 5000, 777, 100);
    for (ports, tracked) in [
        (&[][..], true),
        (&[3306][..], true),
        (&[3307, 22][..], false),
    ] {
        let mut dp = Dp::new();
        dp.dp.hold_vip(test_ifindex(), vip, 9, ports).unwrap();
        // A bare ACK never adds one; the first segment with data does.
        assert_eq!(
            dp.run(&tcp_frame(client, vip, 0x10, 5000, 777, 0)),
            XDP_PASS
        );
        assert!(dp.dp.conns().unwrap().is_empty());
        assert_eq!(dp.run(&request), XDP_PASS);
        let conns: Vec<_> = dp.dp.conns().unwrap().into_iter().map(|(k, _)| k).collect();
        let want = if tracked {
            vec![conn_key(client, vip)]
        } else {
            vec![]
        };
        assert_eq!(conns, want, "ports {ports:?}");
        // The client's FIN ends it.
        assert_eq!(
            dp.run(&tcp_frame(client, vip, 0x11, 5100, 777, 0)),
            XDP_PASS
        );
        assert!(dp.dp.conns().unwrap().is_empty());
    }
}

/// An ARP request or reply (`op`) from `mac`, naming `sender` as its sender address.
fn arp_frame(mac: [u8; 6], op: u16, sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&mac);
    f.extend_from_slice(&sender.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// A neighbour solicitation (135) or advertisement (136) from `mac` and `src` for
/// `target` (checksums are not checked by the datapath).
fn nd_frame(mac: [u8; 6], kind: u8, src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let mut f = vec![0x33, 0x33, 0, 0, 0, 1];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 58, 255]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&"ff02::1".parse::<Ipv6Addr>().unwrap().octets());
    f.extend_from_slice(&[kind, 0, 0, 0, 0x20, 0, 0, 0]);
    f.extend_from_slice(&target.octets());
    f.extend_from_slice(&[2, 1]);
    f.extend_from_slice(&mac);
    f
}

fn claims(dp: &mut Dp) -> Vec<(IpAddr, u32, [u8; 6])> {
    dp.events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::VipClaimed { instance, mac } => Some((e.src, instance, mac)),
            _ => None,
        })
        .collect()
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn another_host_claiming_a_held_vip_is_reported_at_most_every_20_ms() {
    let mut dp = Dp::new();
    let other = [0x02, 0, 0, 0, 0, 0x0b];
    let request = arp_frame(other, 1, VIP4, CLIENT4);
    // Not held: nothing to report.
    assert_eq!(dp.run(&request), XDP_PASS);
    assert!(claims(&mut dp).is_empty());
    dp.dp.hold_vip(test_ifindex(), VIP4.into(), 9, &[]).unwrap();
    // The stale holder's ARP request from the VIP, then its reply: one report, the
    // second inside the 20 ms.
    assert_eq!(dp.run(&request), XDP_PASS);
    assert_eq!(dp.run(&arp_frame(other, 2, VIP4, CLIENT4)), XDP_PASS);
    assert_eq!(claims(&mut dp), [(IpAddr::V4(VIP4), 9, other)]);
    std::thread::sleep(Duration::from_millis(25));
    assert_eq!(dp.run(&arp_frame(other, 2, VIP4, CLIENT4)), XDP_PASS);
    assert_eq!(claims(&mut dp).len(), 1, "reported again after 20 ms");
    // A client asking for the VIP, and a probe (sender 0.0.0.0), claim nothing.
    std::thread::sleep(Duration::from_millis(25));
    assert_eq!(dp.run(&arp_frame(other, 1, CLIENT4, VIP4)), XDP_PASS);
    assert_eq!(
        dp.run(&arp_frame(other, 1, Ipv4Addr::UNSPECIFIED, VIP4)),
        XDP_PASS
    );
    assert!(claims(&mut dp).is_empty());

    // IPv6: an advertisement for the VIP, a solicitation from it; not a client's
    // solicitation for it nor duplicate address detection.
    let vip: Ipv6Addr = "2001:db8::100".parse().unwrap();
    let client: Ipv6Addr = "2001:db8::50".parse().unwrap();
    dp.dp.hold_vip(test_ifindex(), vip.into(), 4, &[]).unwrap();
    assert_eq!(dp.run(&nd_frame(other, 135, client, vip)), XDP_PASS);
    assert_eq!(
        dp.run(&nd_frame(other, 135, Ipv6Addr::UNSPECIFIED, vip)),
        XDP_PASS
    );
    assert!(claims(&mut dp).is_empty());
    assert_eq!(dp.run(&nd_frame(other, 136, vip, vip)), XDP_PASS);
    assert_eq!(claims(&mut dp), [(IpAddr::V6(vip), 4, other)]);
    std::thread::sleep(Duration::from_millis(25));
    assert_eq!(dp.run(&nd_frame(other, 135, vip, client)), XDP_PASS);
    assert_eq!(claims(&mut dp), [(IpAddr::V6(vip), 4, other)]);
    // Given up: nothing more.
    dp.dp.unhold_vip(test_ifindex(), vip.into(), false).unwrap();
    std::thread::sleep(Duration::from_millis(25));
    assert_eq!(dp.run(&nd_frame(other, 136, vip, vip)), XDP_PASS);
    assert!(claims(&mut dp).is_empty());
}

/// Collects what a tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn diagnostic_lines_reach_the_agents_log_once_a_second_when_debug_is_on() {
    let out = Captured::default();
    let run = |filter: &str| {
        let sub = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer({
                let out = out.clone();
                move || out.clone()
            })
            .finish();
        tracing::subscriber::with_default(sub, || {
            // Loaded under this filter: the program's level follows it.
            let mut dp = Dp::new();
            let mut log = dp.dp.take_logger().unwrap();
            let (vip, client) = (IpAddr::V4(VIP4), IpAddr::V4(CLIENT4));
            dp.dp.release_vip(test_ifindex(), vip).unwrap();
            for _ in 0..3 {
                assert_eq!(
                    run_out(&mut dp, &tcp_frame(client, vip, 0x02, 1, 0, 0)).0,
                    XDP_TX
                );
            }
            log.flush();
        });
        String::from_utf8(std::mem::take(&mut *out.0.lock().unwrap())).unwrap()
    };
    let on = run("xvrrpd::xdp=debug");
    let lines: Vec<&str> = on.lines().filter(|l| l.contains("released VIP")).collect();
    assert_eq!(lines.len(), 1, "one line a second, not one per RST: {on}");
    assert!(
        lines[0].contains("192.0.2.50:40000 -> 192.0.2.100:3306")
            && lines[0].contains("xvrrpd_xdp"),
        "{on}"
    );
    let off = run("xvrrpd::xdp=info");
    assert!(
        !off.contains("released VIP"),
        "debug off, nothing written: {off}"
    );
}
