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
        old_unicast_checksum: false,
        script: None,
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

/// The advert thread is tied to the engine: while the master's main loop is blocked its
/// adverts go on (a starved loop must not cause a takeover), but not forever: after the
/// liveness bound (1 s at 10 ms adverts) they stop and the backup takes over while the
/// loop is still blocked. When the loop runs again, it hears the new master.
#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn a_wedged_engine_stops_its_adverts_after_the_liveness_bound() {
    let seg = Segment::new(2).unwrap();
    let a = Router::start(
        &seg.nodes[0].ns,
        &router_toml("w", 41, 150, 3, "10ms", "192.0.2.100/24"),
    )
    .unwrap();
    let b = Router::start(
        &seg.nodes[1].ns,
        &router_toml("w", 41, 100, 3, "10ms", "192.0.2.100/24"),
    )
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || has_addr(&seg.nodes[0].ns, VIP)
            && !has_addr(&seg.nodes[1].ns, VIP)),
        "node 0 never became the only master"
    );
    let stall = std::thread::scope(|s| {
        let stall = s.spawn(|| a.ctl(&["stall-engine", "4s"]));
        let start = std::time::Instant::now();
        // Paced adverts keep node 1 a backup well past Master_Down_Interval (~36 ms)...
        std::thread::sleep(Duration::from_millis(400));
        assert!(
            !has_addr(&seg.nodes[1].ns, VIP),
            "node 1 took over 400 ms into the stall: the adverts stopped with the main loop"
        );
        // ...and stop after the bound: node 1 takes over while node 0 is still stalled.
        assert!(
            wait_until(Duration::from_millis(3_000), || has_addr(
                &seg.nodes[1].ns,
                VIP
            )),
            "node 1 never took over: a wedged engine kept advertising\n{}",
            b.log()
        );
        let took = start.elapsed();
        assert!(took < Duration::from_millis(3_500), "takeover {took:?}");
        stall.join().expect("stall thread")
    });
    assert!(stall.0, "stall-engine: {} {}", stall.1, stall.2);
    // Node 0 runs again: it hears node 1 (higher priority, preempt) and takes the role back,
    // or stays backup; either way one master.
    assert!(
        wait_until(Duration::from_secs(5), || has_addr(&seg.nodes[0].ns, VIP)
            != has_addr(&seg.nodes[1].ns, VIP)),
        "VIP on both or neither after the stall"
    );
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

/// A client whose ARP entry still names the old master (the new master's announcement
/// has not reached it) is refused with a RST by the old master's XDP program, instead of
/// its SYN vanishing until TCP retransmits it a second later; and once the node holds the
/// VIP again, its own connections are not touched.
#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn a_client_with_a_stale_arp_entry_is_refused_by_the_old_master() {
    let seg = Segment::new(3).unwrap();
    let a = Router::start(
        &seg.nodes[0].ns,
        &router_toml("w", 41, 150, 3, "100ms", "192.0.2.100/24"),
    )
    .unwrap();
    let _b = Router::start(
        &seg.nodes[1].ns,
        &router_toml("w", 41, 100, 3, "100ms", "192.0.2.100/24"),
    )
    .unwrap();
    let (n0, client) = (&seg.nodes[0].ns, &seg.nodes[2].ns);
    assert!(wait_until(Duration::from_secs(5), || has_addr(n0, VIP)));
    // A listener on node 1 and a client that keeps sending to node 1's MAC.
    let mut server = n0.command("python3").args(["-c", LISTEN]).spawn().unwrap();
    let mac = mac_of(n0, "eth0").unwrap();
    xvrrpd_tests::pin_neighbour(client, VIP, &mac).unwrap();
    let connect = || {
        let out = client
            .command("python3")
            .args(["-c", CONNECT, VIP])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert!(
        wait_until(Duration::from_secs(5), || connect() == "connected"),
        "the master's own listener unreachable through the VIP"
    );
    // Node 1 gives the VIP up: the stale client is refused, not left waiting.
    let (ok, _, err) = a.ctl(&["maintenance", "on"]);
    assert!(ok, "{err}");
    assert!(wait_until(Duration::from_secs(5), || !has_addr(n0, VIP)));
    assert_eq!(connect(), "refused", "{}", a.log());
    // Back in service and master again: its VIP is its own, nothing is refused.
    let (ok, _, err) = a.ctl(&["maintenance", "off"]);
    assert!(ok, "{err}");
    assert!(
        wait_until(Duration::from_secs(10), || has_addr(n0, VIP)),
        "{}",
        a.log()
    );
    assert_eq!(connect(), "connected", "{}", a.log());
    let _ = server.kill();
    let _ = server.wait();
}

/// Listens on every address, port 3307, accepting forever.
const LISTEN: &str = "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',3307))\ns.listen(64)\nwhile True:\n    s.accept()[0].close()\n";
/// Connects to argv[1]:3307 within 2 s: prints connected, refused or timeout.
const CONNECT: &str = "import socket,sys\ns=socket.socket()\ns.settimeout(2)\ntry:\n    s.connect((sys.argv[1],3307)); print('connected')\nexcept ConnectionRefusedError: print('refused')\nexcept OSError as e: print('timeout' if isinstance(e, TimeoutError) else repr(e))\n";

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn master_link_down_moves_the_vip_and_it_returns_after() {
    let seg = Segment::new(3).unwrap();
    let a = Router::start(
        &seg.nodes[0].ns,
        &router_toml("w", 41, 150, 3, "100ms", "192.0.2.100/24"),
    )
    .unwrap();
    let b = Router::start(
        &seg.nodes[1].ns,
        &router_toml("w", 41, 100, 3, "100ms", "192.0.2.100/24"),
    )
    .unwrap();
    let n0 = &seg.nodes[0].ns;
    failover_checks(&seg, || {
        xvrrpd_tests::ip_in(&n0.name, &["link", "set", "eth0", "down"]).unwrap();
    });
    assert!(b.log().contains("master_down"), "{}", b.log());
    // The node that lost its link went to FAULT and dropped the VIP (no stale owner).
    assert!(
        wait_until(Duration::from_secs(2), || !has_addr(n0, VIP)),
        "VIP left on the unlinked node"
    );
    assert!(a.log().contains("to=\"FAULT\""), "{}", a.log());
    // Link back: the higher priority preempts and the backup gives the VIP up.
    xvrrpd_tests::ip_in(&n0.name, &["link", "set", "eth0", "up"]).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || !has_addr(&seg.nodes[1].ns, VIP)),
        "backup kept the VIP after the master returned:\n{}",
        b.log()
    );
    // The VIP goes first (fence first), the transition's log line just after it.
    assert!(
        wait_until(Duration::from_secs(2), || b
            .log()
            .contains("higher_priority")),
        "{}",
        b.log()
    );
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn write_and_read_instances_fail_over_independently() {
    let seg = Segment::new(3).unwrap();
    let two = |wprio: u8, rprio: u8| {
        format!(
            "{}\n{}",
            router_toml("write", 41, wprio, 3, "100ms", "192.0.2.100/24"),
            router_toml("read", 51, rprio, 3, "100ms", "192.0.2.101/24")
        )
    };
    let (n0, n1) = (&seg.nodes[0].ns, &seg.nodes[1].ns);
    let mut a = Router::start(n0, &two(150, 100)).unwrap();
    let b = Router::start(n1, &two(100, 150)).unwrap();
    let split = || {
        has_addr(n0, "192.0.2.100")
            && has_addr(n1, "192.0.2.101")
            && !has_addr(n0, "192.0.2.101")
            && !has_addr(n1, "192.0.2.100")
    };
    assert!(
        wait_until(Duration::from_secs(10), split),
        "write on db1 and read on db2 expected"
    );
    a.kill();
    assert!(
        wait_until(Duration::from_secs(5), || has_addr(n1, "192.0.2.100")),
        "write VIP did not move"
    );
    // The read instance on db2 was master all along: no transition for it.
    let read_transitions = b
        .log()
        .lines()
        .filter(|l| l.contains("instance=read") && l.contains("transition"))
        .count();
    assert_eq!(
        read_transitions,
        2,
        "read instance should only go INIT→BACKUP→MASTER:\n{}",
        b.log()
    );
    drop(a);
    // db1 returns (its leftover VIP cleared at start) and takes the write VIP back.
    let _a2 = Router::start(n0, &two(150, 100)).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), split),
        "roles not restored after db1 returned"
    );
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn unicast_interop_with_keepalived_both_ways() {
    unicast_interop(false);
}

/// The interop matrix: VRRP v2 and v3, xvrrpd as master and as backup against keepalived,
/// and xvrrpd against itself. Each pair must converge on the higher priority and stay there.
#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn interop_matrix_converges_on_the_right_master() {
    let cases = [(2u8, "1s", 1.0), (3, "100ms", 0.1)];
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (version, interval, int_s) in cases {
            for xvrrpd_wins in [true, false] {
                for peer_is_keepalived in [true, false] {
                    if !peer_is_keepalived && !xvrrpd_wins {
                        continue; // xvrrpd vs xvrrpd is symmetric
                    }
                    handles.push(s.spawn(move || {
                        let what = format!(
                            "v{version} xvrrpd_wins={xvrrpd_wins} keepalived={peer_is_keepalived}"
                        );
                        let seg = Segment::new(2).unwrap();
                        let (xprio, pprio) = if xvrrpd_wins { (150, 100) } else { (100, 150) };
                        let _x = Router::start(
                            &seg.nodes[0].ns,
                            &router_toml("w", 41, xprio, version, interval, "192.0.2.100/24"),
                        )
                        .unwrap();
                        let (_k, _y);
                        if peer_is_keepalived {
                            _k = Keepalived::start(
                                &seg.nodes[1].ns,
                                "eth0",
                                &ka(pprio, version, int_s, !xvrrpd_wins),
                            )
                            .unwrap();
                        } else {
                            _y = Router::start(
                                &seg.nodes[1].ns,
                                &router_toml("w", 41, pprio, version, interval, "192.0.2.100/24"),
                            )
                            .unwrap();
                        }
                        let (w, l) = if xvrrpd_wins {
                            (&seg.nodes[0].ns, &seg.nodes[1].ns)
                        } else {
                            (&seg.nodes[1].ns, &seg.nodes[0].ns)
                        };
                        let ok = || has_addr(w, VIP) && !has_addr(l, VIP);
                        assert!(
                            wait_until(Duration::from_secs(15), ok),
                            "{what}: did not converge"
                        );
                        std::thread::sleep(Duration::from_secs_f64(int_s * 4.0));
                        assert!(ok(), "{what}: not stable");
                    }));
                }
            }
        }
        for h in handles {
            h.join().expect("matrix case");
        }
    });
}

/// keepalived's `old_unicast_checksum` (multicast group in a unicast advert's pseudo-header):
/// xvrrpd accepts it on receive, and sends it when `v3_checksum = "pseudo-header-multicast"`.
#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn old_unicast_checksum_interop_with_keepalived() {
    unicast_interop(true);
}

/// xvrrpd and keepalived over unicast, each side as master in turn: the right node holds the
/// VIP, the other does not, and it stays so. `old_checksum` sets keepalived's
/// `old_unicast_checksum` and xvrrpd's matching `v3_checksum`.
fn unicast_interop(old_checksum: bool) {
    for xvrrpd_wins in [true, false] {
        let seg = Segment::new(2).unwrap();
        let (n0, n1) = (&seg.nodes[0], &seg.nodes[1]);
        let (xprio, kprio) = if xvrrpd_wins { (150, 100) } else { (100, 150) };
        let checksum = if old_checksum {
            "v3_checksum = \"pseudo-header-multicast\"\n"
        } else {
            ""
        };
        let toml = format!(
            "{}unicast_peers = [\"{}\"]\n{checksum}",
            router_toml("w", 41, xprio, 3, "100ms", "192.0.2.100/24"),
            n1.addr4
        );
        let _x = Router::start(&n0.ns, &toml).unwrap();
        let mut k = ka(kprio, 3, 0.1, !xvrrpd_wins);
        k.unicast_peers = vec![n0.addr4.clone()];
        k.old_unicast_checksum = old_checksum;
        let k = Keepalived::start(&n1.ns, "eth0", &k).unwrap();
        let (winner, loser) = if xvrrpd_wins {
            (&n0.ns, &n1.ns)
        } else {
            (&n1.ns, &n0.ns)
        };
        let ok = || has_addr(winner, VIP) && !has_addr(loser, VIP);
        let what = format!("xvrrpd_wins={xvrrpd_wins} old_checksum={old_checksum}");
        assert!(
            wait_until(Duration::from_secs(10), ok),
            "{what}\n{}",
            k.log()
        );
        std::thread::sleep(Duration::from_secs(1));
        assert!(ok(), "not stable, {what}\n{}", k.log());
    }
}

/// A client blocked reading an answer from a master whose host goes silent (its query
/// was acknowledged at TCP level, then nothing) hears at once that its connection is
/// gone: the master's datapath tracked the connection, its agent copied it to the backup,
/// and the backup tickles it when it takes over. Without that, nothing ever reaches the
/// client again and it waits for TCP keepalive (hours): the 20 s bound here.
#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn a_silent_masters_blocked_clients_are_reset_by_the_new_master() {
    // The new master's kernel answers the clients' replies to its tickles.
    let r = blocked_clients_at_takeover(Ending::Silent, "kernel", false, 20);
    assert_eq!(r.resets, 3, "{}", r.logs);
    // Loose: the bench measures it (the takeover takes ~35 ms, the first tickle follows).
    assert!(r.took < Duration::from_secs(5), "{:?}", r.took);
    assert!(r.tickles >= 3.0);
    assert_eq!(r.datapath_resets, 0.0, "the kernel answered: {}", r.logs);
}

/// The same behind a firewall on the new master that drops segments of unknown
/// connections as INVALID: the kernel never sees the clients' replies, so the datapath
/// answers them (`tickle_answer = "datapath"`, the default). Shown first the other way:
/// with the kernel answering, the replies are dropped and the clients stay blocked.
#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn behind_a_firewall_that_drops_invalid_the_datapath_resets_the_clients() {
    let r = blocked_clients_at_takeover(Ending::Silent, "kernel", true, 4);
    assert_eq!(r.resets, 0, "the firewall let the replies in: {}", r.logs);
    assert!(
        r.invalid_dropped >= 3,
        "dropped {}: {}",
        r.invalid_dropped,
        r.logs
    );
    let r = blocked_clients_at_takeover(Ending::Silent, "datapath", true, 20);
    assert_eq!(r.resets, 3, "{}", r.logs);
    assert!(r.took < Duration::from_secs(5), "{:?}", r.took);
    assert!(r.datapath_resets >= 3.0, "{}", r.logs);
}

/// A master that gives its VIP up alive (here: maintenance) tells its own clients too:
/// a client blocked reading an answer that will never come (a fenced or hung server)
/// gets a tickle from the released VIP, and the old master's datapath refuses its reply
/// with a RST. No connections are copied here, so the new master has nothing to tickle:
/// the reset can only come from the old one.
#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn a_master_giving_its_vip_up_alive_resets_its_own_blocked_clients() {
    let r = blocked_clients_at_takeover(Ending::Maintenance, "datapath", false, 20);
    assert_eq!(r.resets, 3, "{}", r.logs);
    assert!(r.took < Duration::from_secs(5), "{:?}", r.took);
    assert_eq!(
        r.tickles.max(0.0),
        0.0,
        "the new master had nothing to tickle: {}",
        r.logs
    );
}

/// How the master stops serving in [`blocked_clients_at_takeover`].
#[derive(Clone, Copy, PartialEq)]
enum Ending {
    /// Its host goes silent (connections copied to the backup, which tickles them).
    Silent,
    /// It is put in maintenance and gives the VIP up alive (nothing copied).
    Maintenance,
}

/// What [`blocked_clients_at_takeover`] saw.
struct Takeover {
    /// Client connections reset (of 3), and how long after the master went silent the
    /// client stopped waiting (all reset, or its bound).
    resets: usize,
    took: Duration,
    /// The new master's counters: tickles sent, replies reset by its datapath, packets
    /// its firewall dropped as INVALID.
    tickles: f64,
    datapath_resets: f64,
    invalid_dropped: u64,
    logs: String,
}

/// Three clients block reading from the master, which then stops serving (`ending`); the
/// backup takes over (`tickle_answer` = `answer`; a firewall dropping INVALID on it when
/// `firewall`). The clients wait at most `bound_s` seconds.
fn blocked_clients_at_takeover(
    ending: Ending,
    answer: &str,
    firewall: bool,
    bound_s: u32,
) -> Takeover {
    let seg = Segment::new(3).unwrap();
    let dir = std::env::temp_dir().join(xvrrpd_tests::unique("xvk"));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("sync.key");
    std::fs::write(&key, b"lab key, 32 bytes, never reused!").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let global = match ending {
        Ending::Silent => format!("[global]\nconn_sync_key = \"{}\"\n\n", key.display()),
        Ending::Maintenance => String::new(),
    };
    let toml = |priority| {
        format!(
            "{global}{}tickle_answer = \"{answer}\"\n",
            router_toml("w", 43, priority, 3, "10ms", "192.0.2.100/24")
        )
    };
    let a = Router::start(&seg.nodes[0].ns, &toml(150)).unwrap();
    let b = Router::start(&seg.nodes[1].ns, &toml(100)).unwrap();
    let (n0, n1, client) = (&seg.nodes[0].ns, &seg.nodes[1].ns, &seg.nodes[2].ns);
    assert!(wait_until(Duration::from_secs(5), || has_addr(n0, VIP)));
    // Killed however the test ends.
    struct Children(Vec<std::process::Child>);
    impl Drop for Children {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut procs = Children(
        [n0, n1]
            .iter()
            .map(|n| n.command("python3").args(["-c", HOLD]).spawn().unwrap())
            .collect(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut c = client
        .command("python3")
        .args(["-c", BLOCKED, VIP, &bound_s.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(c.stdout.take().unwrap());
    procs.0.push(c);
    let mut line = String::new();
    use std::io::BufRead;
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the client could not connect");
    let gauge = |ns: &xvrrpd_tests::Netns, name: &str| {
        xvrrpd_tests::scrape(ns)
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(-1.0)
    };
    let copied = match ending {
        Ending::Silent => 3.0,
        Ending::Maintenance => 0.0,
    };
    for (ns, name, want, log) in [
        (n0, "xvrrpd_conntrack_connections", 3.0, a.log()),
        (n1, "xvrrpd_conntrack_peer_connections", copied, b.log()),
    ] {
        assert!(
            // Never set (-1 here) when nothing is copied.
            wait_until(Duration::from_secs(5), || gauge(ns, name).max(0.0) == want),
            "{name} is not {want} on {}: {log}",
            ns.name
        );
    }
    if firewall {
        xvrrpd_tests::chaos::drop_invalid(&n1.name).unwrap();
    }
    let t0 = std::time::Instant::now();
    match ending {
        // The master's host goes silent: nothing leaves it any more.
        Ending::Silent => xvrrpd_tests::chaos::silence(&n0.name).unwrap(),
        Ending::Maintenance => {
            let (ok, _, err) = a.ctl(&["maintenance", "on"]);
            assert!(ok, "{err}");
        }
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let took = t0.elapsed();
    eprintln!(
        "tickle_answer = {answer}, firewall {firewall}: client done after {took:?}: {rest:?}"
    );
    xvrrpd_tests::chaos::silence_off(&n0.name);
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
    if answer == "datapath" {
        // The kernel's counters reach the metrics once a second.
        wait_until(Duration::from_secs(3), || {
            gauge(n1, "xvrrpd_conntrack_tickle_resets_total") > 0.0
        });
    }
    Takeover {
        resets: rest.lines().filter(|l| *l == "reset").count(),
        took,
        tickles: gauge(n1, "xvrrpd_conntrack_tickles_total"),
        datapath_resets: gauge(n1, "xvrrpd_conntrack_tickle_resets_total"),
        invalid_dropped: xvrrpd_tests::chaos::invalid_dropped(&n1.name),
        logs: format!(
            "client: {rest}\nold master: {}\nnew master: {}",
            a.log(),
            b.log()
        ),
    }
}

/// Listens on port 3307, accepts, and never answers (the connections stay open).
const HOLD: &str = "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',3307))\ns.listen(64)\nkeep=[]\nwhile True:\n    keep.append(s.accept()[0])\n";
/// Three connections to argv[1]:3307, one byte sent on each, then blocked reading: prints
/// `ready`, then `reset` or `closed` per connection as it fails, for at most argv[2] s.
const BLOCKED: &str = "import socket,select,sys,time\nss=[]\nfor i in range(3):\n    s=socket.create_connection((sys.argv[1],3307),timeout=5)\n    s.sendall(b'q')\n    ss.append(s)\nprint('ready',flush=True)\nt=time.monotonic()\nleft=set(ss)\nwhile left and time.monotonic()-t<float(sys.argv[2]):\n    r,_,_=select.select(list(left),[],[],0.5)\n    for s in r:\n        try:\n            d=s.recv(1)\n        except OSError:\n            print('reset',flush=True)\n            left.discard(s)\n            continue\n        if not d:\n            print('closed',flush=True)\n            left.discard(s)\nprint('left',len(left),flush=True)\n";

/// A host that comes back with the VIP still on its interface (frozen and resumed, its
/// agent killed) sends ARP naming the VIP as its sender whenever it sends from it: every
/// client that hears it points the VIP at that host. The master hears the same broadcast
/// and announces the VIP again at once; keepalived, as master, leaves the client
/// pointing at the stale host (its ARP entry would expire only seconds later, after
/// failed connections). Node 3 plays the stale host.
#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn a_host_claiming_the_masters_vip_is_answered_at_once() {
    for keepalived in [true, false] {
        let seg = Segment::new(4).unwrap();
        let (n0, client, stale) = (&seg.nodes[0].ns, &seg.nodes[2], &seg.nodes[3].ns);
        let (router, _keepalived) = if keepalived {
            let k = Keepalived::start(n0, "eth0", &ka(150, 3, 0.1, true)).unwrap();
            (None, Some(k))
        } else {
            let cfg = router_toml("w", 41, 150, 3, "100ms", "192.0.2.100/24");
            (Some(Router::start(n0, &cfg).unwrap()), None)
        };
        assert!(wait_until(Duration::from_secs(10), || has_addr(n0, VIP)));
        let master = mac_of(n0, "eth0").unwrap();
        let claimer = mac_of(stale, "eth0").unwrap();
        xvrrpd_tests::ip_in(
            &stale.name,
            &["addr", "add", "192.0.2.100/24", "dev", "eth0"],
        )
        .unwrap();
        // Its first packet from the VIP to the client: an ARP request naming the VIP.
        let _ = stale
            .command("ping")
            .args(["-c1", "-W1", "-I", VIP, &client.addr4])
            .output();
        let fixed = wait_until(Duration::from_secs(2), || {
            neigh_mac(&client.ns, VIP).as_deref() == Some(master.as_str())
        });
        let now = neigh_mac(&client.ns, VIP);
        match &router {
            None => assert_eq!(
                now.as_deref(),
                Some(claimer.as_str()),
                "keepalived as master: the client should still point at the stale host"
            ),
            Some(r) => {
                assert!(fixed, "the client still points at {now:?}: {}", r.log());
                let m = xvrrpd_tests::scrape(n0);
                assert!(
                    m.lines()
                        .any(|l| l.starts_with("xvrrpd_vrrp_vip_claims_total{")
                            && !l.ends_with(" 0")),
                    "{m}"
                );
                assert!(
                    r.log().contains("another host claims this VIP"),
                    "{}",
                    r.log()
                );
            }
        }
    }
}
