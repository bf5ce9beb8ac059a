//! Trackers and notify hooks in `xvrrpd run` (namespaces, real processes).
//! Needs root: run through `cargo xtask test`.
use std::{path::Path, time::Duration};

use xvrrpd_tests::{has_addr, router_toml, unique, wait_until, Router, Segment};

const VIP: &str = "192.0.2.100";

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(unique(name))
}

/// An instance config following one tracker.
fn tracked(prio: u8, tracker: &str) -> String {
    format!(
        "{}track = [\"t\"]\n\n{tracker}",
        router_toml("w", 41, prio, 3, "100ms", "192.0.2.100/24")
    )
}

/// db1 (priority 150, following `tracker`) and db2 (100), converged with the VIP on db1.
fn tracked_pair(
    n0: &xvrrpd_tests::Netns,
    n1: &xvrrpd_tests::Netns,
    tracker: &str,
) -> (Router, Router) {
    let a = Router::start(n0, &tracked(150, tracker)).unwrap();
    let b = Router::start(n1, &router_toml("w", 41, 100, 3, "100ms", "192.0.2.100/24")).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || has_addr(n0, VIP)
            && !has_addr(n1, VIP)),
        "{}",
        a.log()
    );
    (a, b)
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn exec_tracker_failure_lowers_priority_and_the_peer_takes_over() {
    let seg = Segment::new(2).unwrap();
    let flag = tmp("xvflag");
    let tracker = format!(
        "[[tracker]]\nname = \"t\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"! test -e {}\"]\n\
         interval = \"50ms\"\nfall = 2\nrise = 2\nweight = -60\n",
        flag.display()
    );
    let (n0, n1) = (&seg.nodes[0].ns, &seg.nodes[1].ns);
    let (a, _b) = tracked_pair(n0, n1, &tracker);
    std::fs::write(&flag, "").unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || has_addr(n1, VIP)
            && !has_addr(n0, VIP)),
        "{}",
        a.log()
    );
    assert!(a.log().contains("tracker changed"), "{}", a.log());
    std::fs::remove_file(&flag).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || has_addr(n0, VIP)
            && !has_addr(n1, VIP)),
        "{}",
        a.log()
    );
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn weight_zero_means_fault_and_file_weight_drains() {
    let seg = Segment::new(2).unwrap();
    let (n0, n1) = (&seg.nodes[0].ns, &seg.nodes[1].ns);
    let drain = tmp("xvdrain");
    std::fs::write(&drain, "0\n").unwrap();
    let tracker = format!(
        "[[tracker]]\nname = \"t\"\nkind = \"file\"\npath = \"{}\"\ninterval = \"50ms\"\nweight = -10\n",
        drain.display()
    );
    let (a, _b) = tracked_pair(n0, n1, &tracker);
    // 150 - 6 × 10 = 90 < 100: drained to the peer.
    std::fs::write(&drain, "6\n").unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || has_addr(n1, VIP)
            && !has_addr(n0, VIP)),
        "{}",
        a.log()
    );
    std::fs::write(&drain, "0\n").unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || has_addr(n0, VIP)),
        "{}",
        a.log()
    );
    drop(a);
    let _ = std::fs::remove_file(&drain);

    // Weight 0: a failing check puts the instance in FAULT, which gives up the VIP.
    let flag = tmp("xvflag");
    let tracker0 = format!(
        "[[tracker]]\nname = \"t\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"! test -e {}\"]\ninterval = \"50ms\"\nweight = 0\n",
        flag.display()
    );
    let seg = Segment::new(2).unwrap();
    let (n0, n1) = (&seg.nodes[0].ns, &seg.nodes[1].ns);
    let (a, _b) = tracked_pair(n0, n1, &tracker0);
    std::fs::write(&flag, "").unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || has_addr(n1, VIP)
            && !has_addr(n0, VIP)),
        "{}",
        a.log()
    );
    assert!(a.log().contains("to=\"FAULT\""), "{}", a.log());
    let _ = std::fs::remove_file(&flag);
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn notify_hooks_run_in_transition_order_with_environment() {
    let seg = Segment::new(1).unwrap();
    let out = tmp("xvnotify");
    let flag = tmp("xvflag");
    // A slow hook with a random delay *before* it writes: run concurrently, hooks would
    // finish out of order; delivered one at a time, they cannot.
    let hook = format!(
        "sleep $(shuf -i 0-150 -n 1 | sed \"s/^/0.0/; s/0.0\\([0-9][0-9][0-9]\\)/0.\\1/\"); \
         echo \"$XVRRPD_OLD_STATE>$XVRRPD_NEW_STATE $XVRRPD_REASON $2\" >> {}",
        out.display()
    );
    let events = tmp("xvevents");
    std::fs::write(&events, "").unwrap();
    let cfg = format!(
        "[global]\nevents_fifo = \"{}\"\n\n{}track = [\"t\"]\n[instance.notify]\nany = [\"/bin/sh\", \"-c\", '{hook}']\ntimeout = \"5s\"\n\n\
         [[tracker]]\nname = \"t\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"! test -e {}\"]\ninterval = \"20ms\"\nweight = 0\n",
        events.display(),
        router_toml("w", 41, 150, 3, "50ms", "192.0.2.100/24"),
        flag.display()
    );
    let mut a = Router::start(&seg.nodes[0].ns, &cfg).unwrap();
    assert!(wait_until(Duration::from_secs(5), || has_addr(
        &seg.nodes[0].ns,
        VIP
    )));
    // Fault, recover, fault, recover quickly.
    for _ in 0..2 {
        std::fs::write(&flag, "").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        std::fs::remove_file(&flag).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(a.stop(), Some(0));
    let log = a.log();
    // The transitions as the daemon logged them, in order...
    let logged: Vec<String> = log
        .lines()
        .filter(|l| l.contains("transition"))
        .map(|l| {
            let field = |k: &str| {
                l.split(&format!("{k}=\""))
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or("")
                    .to_string()
            };
            format!("{}>{}", field("from"), field("to"))
        })
        .collect();
    // ...must be exactly the hooks' order.
    let hooks: Vec<String> = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    assert!(
        logged.len() >= 6,
        "expected startup, master, 2×(fault, backup, master...), stop: {logged:?}\n{log}"
    );
    assert_eq!(hooks, logged, "hooks ran out of order\n{log}");
    // The JSON-lines stream carries the same transitions, in the same order.
    let stream: Vec<String> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            assert_eq!(v["instance"], "w");
            assert_eq!(v["vrid"], 41);
            format!(
                "{}>{}",
                v["from"].as_str().unwrap(),
                v["to"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(stream, logged);
    let _ = std::fs::remove_file(&events);
    assert!(Path::new(&out).exists());
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains(">INIT shutdown STOP"), "{text}");
    let _ = std::fs::remove_file(&out);
}

/// A write instance following a native MySQL check on the master's MariaDB.
fn mysql_pair(seg: &Segment, db: &xvrrpd_tests::Db) -> (Router, Router) {
    let tracker = format!(
        "[[tracker]]\nname = \"t\"\nkind = \"mysql\"\nsocket = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nfall = 1\nrise = 1\nweight = -60\n",
        db.socket.display()
    );
    let (n0, n1) = (&seg.nodes[0].ns, &seg.nodes[1].ns);
    // Credentials from the environment: root over the socket, no password (test server).
    std::env::set_var("XVRRPD_MYSQL_USER", "root");
    tracked_pair(n0, n1, &tracker)
}

#[test]
#[ignore = "needs root and MariaDB: run via cargo xtask test"]
fn mysqld_killed_fails_the_check_at_once_and_the_peer_takes_the_vip() {
    let seg = Segment::new(2).unwrap();
    let db = xvrrpd_tests::Db::start(&seg.nodes[0].ns, xvrrpd_tests::DbFlavor::Mariadb).unwrap();
    let (a, _b) = mysql_pair(&seg, &db);
    // Let a poll pass so the watch connection is parked in the server.
    std::thread::sleep(Duration::from_millis(1500));
    let t = std::time::Instant::now();
    db.signal(libc::SIGKILL);
    assert!(
        wait_until(Duration::from_secs(5), || has_addr(&seg.nodes[1].ns, VIP)),
        "{}",
        a.log()
    );
    eprintln!(
        "mysqld SIGKILL -> VIP on the peer: {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    // Detected by the closed connection, not by the next poll.
    assert!(
        a.log().contains("connection to mysqld closed"),
        "{}",
        a.log()
    );
}

#[test]
#[ignore = "needs root and MariaDB: run via cargo xtask test"]
fn mysqld_frozen_is_caught_by_the_timeout() {
    let seg = Segment::new(2).unwrap();
    let db = xvrrpd_tests::Db::start(&seg.nodes[0].ns, xvrrpd_tests::DbFlavor::Mariadb).unwrap();
    let (a, _b) = mysql_pair(&seg, &db);
    db.signal(libc::SIGSTOP);
    assert!(
        wait_until(Duration::from_secs(6), || has_addr(&seg.nodes[1].ns, VIP)),
        "{}",
        a.log()
    );
    assert!(a.log().contains("tracker changed"), "{}", a.log());
    db.signal(libc::SIGCONT);
}

#[test]
#[ignore = "needs root and MariaDB: run via cargo xtask test"]
fn stopped_replication_moves_the_read_vip_but_not_the_write_vip() {
    let seg = Segment::new(2).unwrap();
    let (n0, n1) = (&seg.nodes[0], &seg.nodes[1]);
    let bind = |a: &str| format!("--bind-address={a}");
    let (b0, b1) = (bind(&n0.addr4), bind(&n1.addr4));
    let primary = xvrrpd_tests::Db::start_with(
        &n0.ns,
        xvrrpd_tests::DbFlavor::Mariadb,
        &["--server-id=1", "--log-bin=mysql-bin", &b0],
    )
    .unwrap();
    let replica = xvrrpd_tests::Db::start_with(
        &n1.ns,
        xvrrpd_tests::DbFlavor::Mariadb,
        &["--server-id=2", "--log-bin=mysql-bin", &b1],
    )
    .unwrap();
    primary
        .sql("CREATE USER 'repl'@'%' IDENTIFIED BY 'replpass'; GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';")
        .unwrap();
    replica
        .sql(&format!(
            "CHANGE MASTER TO MASTER_HOST='{}', MASTER_USER='repl', MASTER_PASSWORD='replpass', MASTER_USE_GTID=slave_pos; START SLAVE;",
            n0.addr4
        ))
        .unwrap();
    let running = || {
        replica
            .sql("SHOW SLAVE STATUS\\G")
            .map(|s| {
                s.matches(": Yes").count() >= 2
                    || s.lines().filter(|l| l.trim() == "Yes").count() >= 2
            })
            .unwrap_or(false)
    };
    assert!(
        wait_until(Duration::from_secs(20), running),
        "replication did not start: {:?}",
        replica.sql("SHOW SLAVE STATUS\\G")
    );

    // db2 (n1) masters both VIPs: write follows reachability, read follows replication.
    let trackers = format!(
        "[[tracker]]\nname = \"alive\"\nkind = \"mysql\"\nsocket = \"{s}\"\ninterval = \"200ms\"\ntimeout = \"500ms\"\nweight = -60\n\n\
         [[tracker]]\nname = \"replica\"\nkind = \"mysql\"\nsocket = \"{s}\"\ninterval = \"200ms\"\ntimeout = \"500ms\"\nreplication = true\nmax_lag = \"10s\"\nweight = -60\n",
        s = replica.socket.display()
    );
    let node_cfg = |wprio: u8, rprio: u8, track: bool| {
        let t = |name: &str| {
            if track {
                format!("track = [\"{name}\"]\n")
            } else {
                String::new()
            }
        };
        format!(
            "{}{}\n{}{}\n{}",
            router_toml("write", 41, wprio, 3, "100ms", "192.0.2.100/24"),
            t("alive"),
            router_toml("read", 51, rprio, 3, "100ms", "192.0.2.101/24"),
            t("replica"),
            if track {
                trackers.clone()
            } else {
                String::new()
            }
        )
    };
    std::env::set_var("XVRRPD_MYSQL_USER", "root");
    let _a = Router::start(&n0.ns, &node_cfg(100, 100, false)).unwrap();
    let b = Router::start(&n1.ns, &node_cfg(150, 150, true)).unwrap();
    let on_b = |vip: &str| has_addr(&n1.ns, vip) && !has_addr(&n0.ns, vip);
    assert!(
        wait_until(Duration::from_secs(10), || on_b("192.0.2.100")
            && on_b("192.0.2.101")),
        "{}",
        b.log()
    );

    replica.sql("STOP SLAVE SQL_THREAD").unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || has_addr(&n0.ns, "192.0.2.101")
            && !has_addr(&n1.ns, "192.0.2.101")),
        "read VIP did not move:\n{}",
        b.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(on_b("192.0.2.100"), "the write VIP must stay:\n{}", b.log());
    let write_transitions = b
        .log()
        .lines()
        .filter(|l| l.contains("instance=write") && l.contains("transition"))
        .count();
    assert_eq!(
        write_transitions,
        2,
        "write instance: INIT→BACKUP→MASTER only\n{}",
        b.log()
    );
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn exec_timeout_counts_as_failure_and_flapping_is_held_by_hysteresis() {
    // A check that hangs past its timeout fails (and is killed, not left behind).
    let seg = Segment::new(2).unwrap();
    let (n0, n1) = (&seg.nodes[0].ns, &seg.nodes[1].ns);
    let hang = tmp("xvhang");
    let tracker = format!(
        "[[tracker]]\nname = \"t\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"if test -e {}; then sleep 30; fi\"]\n\
         interval = \"100ms\"\ntimeout = \"200ms\"\nfall = 1\nweight = -60\n",
        hang.display()
    );
    let (a, _b) = tracked_pair(n0, n1, &tracker);
    std::fs::write(&hang, "").unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || has_addr(n1, VIP)),
        "{}",
        a.log()
    );
    assert!(a.log().contains("timed out"), "{}", a.log());
    let _ = std::fs::remove_file(&hang);
    drop(a);

    // A check failing every other run never reaches fall = 3: the VIP does not move.
    let seg = Segment::new(2).unwrap();
    let (n0, n1) = (&seg.nodes[0].ns, &seg.nodes[1].ns);
    let toggle = tmp("xvtoggle");
    let tracker = format!(
        "[[tracker]]\nname = \"t\"\nkind = \"exec\"\n\
         command = [\"/bin/sh\", \"-c\", \"if test -e {f}; then rm -f {f}; exit 1; else touch {f}; exit 0; fi\"]\n\
         interval = \"50ms\"\nfall = 3\nrise = 2\nweight = -60\n",
        f = toggle.display()
    );
    let (a, _b) = tracked_pair(n0, n1, &tracker);
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            has_addr(n0, VIP) && !has_addr(n1, VIP),
            "flapping check moved the VIP:\n{}",
            a.log()
        );
    }
    assert!(!a.log().contains("tracker changed"), "{}", a.log());
    let _ = std::fs::remove_file(&toggle);
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn interface_tracker_follows_carrier_from_link_events() {
    let seg = Segment::new(2).unwrap();
    let (n0, n1) = (&seg.nodes[0].ns, &seg.nodes[1].ns);
    // A second link on db1 (say, the storage network): a veth pair inside the namespace.
    let ip = |args: &[&str]| xvrrpd_tests::ip_in(&n0.name, args).unwrap();
    ip(&[
        "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
    ]);
    ip(&["link", "set", "eth1", "up"]);
    ip(&["link", "set", "eth1p", "up"]);
    let tracker =
        "[[tracker]]\nname = \"t\"\nkind = \"interface\"\ninterface = \"eth1\"\nweight = 0\n";
    let (a, _b) = tracked_pair(n0, n1, tracker);
    // The far end goes down: eth1 loses carrier (it stays administratively up).
    ip(&["link", "set", "eth1p", "down"]);
    assert!(
        wait_until(Duration::from_secs(5), || has_addr(n1, VIP)
            && !has_addr(n0, VIP)),
        "{}",
        a.log()
    );
    assert!(a.log().contains("to=\"FAULT\""), "{}", a.log());
    ip(&["link", "set", "eth1p", "up"]);
    assert!(
        wait_until(Duration::from_secs(5), || has_addr(n0, VIP)
            && !has_addr(n1, VIP)),
        "{}",
        a.log()
    );
}
