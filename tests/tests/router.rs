//! `xvrrpd run` as a VRRP router in namespaces: against itself and against keepalived
//! 2.2.7, VIP ownership, failover on SIGKILL and SIGTERM, GARP updating the client's cache.
//! Needs root: run through `cargo xtask test`.
use std::time::Duration;

use xvrrpd_tests::{
    has_addr, mac_of, neigh_mac, ping_once, router_toml, wait_until, Keepalived, KeepalivedConf,
    Router, Segment,
};

const VIP: &str = "192.0.2.100";

fn ka(priority: u8, version: u8, advert_int: f64, master: bool) -> KeepalivedConf {
    KeepalivedConf {
        version,
        vrid: 41,
        priority,
        advert_int,
        vip: format!("{VIP}/24"),
        state_master: master,
        unicast_peers: vec![],
    }
}

/// Node 0 wins, then crashes; node 1 must own the VIP and the client must reach it
/// through an ARP entry updated by gratuitous ARP (not a cache timeout).
fn failover_checks(seg: &Segment, crash: impl FnOnce()) {
    let (n0, n1, client) = (&seg.nodes[0], &seg.nodes[1], &seg.nodes[2]);
    assert!(
        wait_until(Duration::from_secs(10), || has_addr(&n0.ns, VIP)),
        "node 0 never took the VIP"
    );
    assert!(
        wait_until(Duration::from_secs(2), || !has_addr(&n1.ns, VIP)),
        "VIP on both nodes"
    );
    assert!(
        ping_once(&client.ns, VIP),
        "client cannot reach the VIP on node 0"
    );
    let mac0 = mac_of(&n0.ns, "eth0").unwrap();
    let mac1 = mac_of(&n1.ns, "eth0").unwrap();
    assert_eq!(neigh_mac(&client.ns, VIP).as_deref(), Some(mac0.as_str()));
    crash();
    assert!(
        wait_until(Duration::from_secs(10), || has_addr(&n1.ns, VIP)),
        "node 1 never took the VIP"
    );
    // The entry changes without the client sending anything: the GARP did it.
    assert!(
        wait_until(Duration::from_secs(3), || neigh_mac(&client.ns, VIP)
            .as_deref()
            == Some(mac1.as_str())),
        "client ARP entry still points at node 0: {:?}",
        neigh_mac(&client.ns, VIP)
    );
    assert!(
        ping_once(&client.ns, VIP),
        "client cannot reach the VIP on node 1"
    );
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn xvrrpd_master_keepalived_backup_v3() {
    let seg = Segment::new(3).unwrap();
    let mut x = Router::start(
        &seg.nodes[0].ns,
        &router_toml("w", 41, 150, 3, "100ms", "192.0.2.100/24"),
    )
    .unwrap();
    let _k = Keepalived::start(&seg.nodes[1].ns, "eth0", &ka(100, 3, 0.1, false)).unwrap();
    failover_checks(&seg, || x.kill());
    // keepalived kept the VIP; the killed xvrrpd left its VIP behind (it was SIGKILLed):
    // that is what a restart's leftover cleanup is for.
    let log = x.log();
    assert!(
        log.contains("to=\"MASTER\"") || log.contains("to=MASTER"),
        "{log}"
    );
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn keepalived_master_xvrrpd_backup_v2() {
    let seg = Segment::new(3).unwrap();
    let mut k = Keepalived::start(&seg.nodes[0].ns, "eth0", &ka(150, 2, 1.0, true)).unwrap();
    let x = Router::start(
        &seg.nodes[1].ns,
        &router_toml("w", 41, 100, 2, "1s", "192.0.2.100/24"),
    )
    .unwrap();
    failover_checks(&seg, || k.kill());
    assert!(x.log().contains("master_down"), "{}", x.log());
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn xvrrpd_pair_sigterm_hands_over_and_releases_the_vip() {
    let seg = Segment::new(3).unwrap();
    let mut a = Router::start(
        &seg.nodes[0].ns,
        &router_toml("w", 41, 150, 3, "100ms", "192.0.2.100/24"),
    )
    .unwrap();
    let b = Router::start(
        &seg.nodes[1].ns,
        &router_toml("w", 41, 100, 3, "100ms", "192.0.2.100/24"),
    )
    .unwrap();
    failover_checks(&seg, || assert_eq!(a.stop(), Some(0), "clean exit"));
    assert!(
        !has_addr(&seg.nodes[0].ns, VIP),
        "stopped node kept the VIP"
    );
    assert!(b.log().contains("master_down"), "{}", b.log());
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn restart_after_sigkill_removes_the_leftover_vip() {
    let seg = Segment::new(3).unwrap();
    let cfg_a = router_toml("w", 41, 150, 3, "100ms", "192.0.2.100/24");
    let mut a = Router::start(&seg.nodes[0].ns, &cfg_a).unwrap();
    let _b = Router::start(
        &seg.nodes[1].ns,
        &router_toml("w", 41, 100, 3, "100ms", "192.0.2.100/24"),
    )
    .unwrap();
    failover_checks(&seg, || a.kill());
    // The crashed node still holds the VIP (nobody removed it) ...
    assert!(has_addr(&seg.nodes[0].ns, VIP));
    // ... until xvrrpd starts again there and clears it before the election.
    let a2 = Router::start(&seg.nodes[0].ns, &cfg_a).unwrap();
    assert!(
        a2.log().contains("removing it before the election"),
        "{}",
        a2.log()
    );
    // Higher priority, preempt on: it wins the VIP back, and only one node holds it.
    assert!(wait_until(Duration::from_secs(5), || has_addr(
        &seg.nodes[0].ns,
        VIP
    ) && !has_addr(
        &seg.nodes[1].ns,
        VIP
    )));
}
