//! Operating xvrrpd: metrics scraped over HTTP, the control socket (status, switchover,
//! maintenance, events, reload), the keepalived.conf importer against a keepalived peer,
//! and the systemd unit.
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use xvrrpd_tests::*;

const VIP: &str = "192.0.2.100";

/// A pair config with an exec tracker that always passes.
fn pair_toml(priority: u8) -> String {
    router_toml("w", 41, priority, 3, "100ms", "192.0.2.100/24")
        + "track = [\"alive\"]\n\n[[tracker]]\nname = \"alive\"\nkind = \"exec\"\ncommand = [\"true\"]\ninterval = \"200ms\"\n"
}

fn inst<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == name))
        .unwrap_or_else(|| panic!("no instance {name} in {status}"))
}

fn state_of(r: &Router, name: &str) -> String {
    r.status()
        .map(|s| inst(&s, name)["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn metrics_status_switchover_maintenance_and_events() {
    let seg = Segment::new(2).unwrap();
    let (na, nb) = (&seg.nodes[0], &seg.nodes[1]);
    let a = Router::start(&na.ns, &pair_toml(150)).unwrap();
    let b = Router::start(&nb.ns, &pair_toml(100)).unwrap();
    assert!(wait_until(Duration::from_secs(10), || has_addr(
        &na.ns, VIP
    ) && state_of(
        &b, "w"
    ) == "BACKUP"));
    // Metrics, scraped over HTTP. Counters from the kernel are folded in once a second:
    // scraped once ten adverts (ten gaps) are in both (a fixed pause raced the fold).
    let l = r#"{iname="w",intf="eth0",vrid="41"}"#;
    assert!(wait_until(Duration::from_secs(5), || {
        let m = scrape(&nb.ns);
        ["adverts_received_total", "advert_gap_seconds_count"]
            .iter()
            .all(|k| sample(&m, &format!("xvrrpd_vrrp_{k}{l}")).is_some_and(|n| n >= 10.0))
    }));
    let ma = scrape(&na.ns);
    let mb = scrape(&nb.ns);
    assert_eq!(
        sample(&ma, &format!("xvrrpd_vrrp_state{l}")),
        Some(2.0),
        "{ma}"
    );
    assert_eq!(
        sample(&mb, &format!("xvrrpd_vrrp_state{l}")),
        Some(1.0),
        "{mb}"
    );
    assert_eq!(
        sample(&ma, &format!("xvrrpd_vrrp_priority_configured{l}")),
        Some(150.0)
    );
    assert_eq!(
        sample(&ma, &format!("xvrrpd_vrrp_priority_effective{l}")),
        Some(150.0)
    );
    assert!(
        sample(&ma, &format!("xvrrpd_vrrp_adverts_sent_total{l}")).unwrap() >= 10.0,
        "{ma}"
    );
    assert!(
        sample(&mb, &format!("xvrrpd_vrrp_adverts_received_total{l}")).unwrap() >= 10.0,
        "{mb}"
    );
    assert!(sample(&ma, &format!("xvrrpd_vrrp_announcements_sent_total{l}")).unwrap() >= 1.0);
    let gaps = sample(&mb, &format!("xvrrpd_vrrp_advert_gap_seconds_count{l}")).unwrap();
    assert!(gaps >= 10.0, "{mb}");
    // 100 ms adverts: nearly every gap is in the 0.1–0.15 s bucket or below.
    let le_015 = sample(
        &mb,
        r#"xvrrpd_vrrp_advert_gap_seconds_bucket{le="0.15",iname="w",intf="eth0",vrid="41"}"#,
    )
    .unwrap();
    assert!(le_015 >= gaps - 2.0, "gaps {gaps}, under 150 ms {le_015}");
    assert_eq!(
        sample(
            &ma,
            r#"xvrrpd_vrrp_transitions_total{iname="w",intf="eth0",vrid="41",from="BACKUP",to="MASTER",reason="master_down"}"#
        ),
        Some(1.0),
        "{ma}"
    );
    assert_eq!(
        sample(&ma, r#"xvrrpd_tracker_up{tracker="alive",kind="exec"}"#),
        Some(1.0),
        "{ma}"
    );
    assert!(
        sample(
            &ma,
            r#"xvrrpd_tracker_check_duration_seconds_count{tracker="alive"}"#
        )
        .unwrap()
            >= 2.0
    );
    assert_eq!(
        sample(
            &ma,
            r#"xvrrpd_tracker_check_failures_total{tracker="alive"}"#
        ),
        Some(0.0)
    );
    assert!(ma.contains("xvrrpd_build_info{version="), "{ma}");
    assert!(sample(&ma, "xvrrpd_uptime_seconds").unwrap() > 0.5);
    // A scraper that does not ask for OpenMetrics (curl, promtool, older agents) gets the
    // classic text format; Prometheus, which asks, gets OpenMetrics.
    assert!(!ma.contains("# EOF"), "{ma}");
    assert!(
        ma.contains("# TYPE xvrrpd_vrrp_adverts_sent_total counter"),
        "{ma}"
    );
    assert!(ma.contains("# TYPE xvrrpd_build_info gauge"), "{ma}");
    let om = scrape_as(
        &na.ns,
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("# TYPE xvrrpd_vrrp_adverts_sent counter"),
        "{om}"
    );

    // Status, as JSON and as a table.
    let s = a.status().unwrap();
    let w = inst(&s, "w");
    assert_eq!(w["state"], "MASTER");
    assert_eq!(w["master"], na.addr4.as_str());
    assert_eq!(w["vips"][0], "192.0.2.100/24");
    assert_eq!(w["trackers"][0]["healthy"], true);
    let sb = b.status().unwrap();
    assert_eq!(inst(&sb, "w")["master"], na.addr4.as_str());
    let (ok, table, err) = a.ctl(&["status"]);
    assert!(ok, "{err}");
    let row = table
        .lines()
        .find(|l| l.starts_with("w "))
        .unwrap_or_default();
    assert!(
        row.contains("MASTER") && row.contains("alive:up"),
        "{table}"
    );

    // Follow the events stream while switching over.
    let mut events = Command::new(xvrrpd_bin())
        .arg("events")
        .env("XVRRPD_CONTROL_SOCKET", a.socket())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = events.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(200));

    // A switchover on a backup is refused with the reason.
    let (ok, _, err) = b.ctl(&["switchover", "w"]);
    assert!(!ok && err.contains("not MASTER"), "{err}");
    let (ok, _, err) = a.ctl(&["switchover", "nope"]);
    assert!(!ok && err.contains("no instance \"nope\""), "{err}");

    let t = Instant::now();
    let (ok, out, err) = a.ctl(&["switchover", "w"]);
    assert!(ok, "switchover failed: {err}\n{}", a.log());
    assert!(out.contains(&format!("master now {}", nb.addr4)), "{out}");
    assert!(has_addr(&nb.ns, VIP) || wait_until(Duration::from_secs(2), || has_addr(&nb.ns, VIP)));
    assert!(
        !has_addr(&na.ns, VIP),
        "VIP on both nodes after the switchover"
    );
    eprintln!("switchover took {} ms", t.elapsed().as_millis());
    // a outranks b but does not preempt back.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        has_addr(&nb.ns, VIP) && !has_addr(&na.ns, VIP),
        "preempted back after a switchover"
    );
    let s = a.status().unwrap();
    assert_eq!(inst(&s, "w")["state"], "BACKUP");
    assert_eq!(inst(&s, "w")["hold"], "until-master-fails", "{s}");
    assert_eq!(inst(&s, "w")["last_transition"]["reason"], "switchover");
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(line);
        }
        if seen.iter().any(|l| l.contains("\"reason\":\"switchover\"")) {
            break;
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    assert!(
        seen.iter().any(|l| l.contains("\"event\":\"switchover\"")),
        "{seen:?}"
    );
    let tr: Value = serde_json::from_str(
        seen.iter()
            .find(|l| l.contains("\"reason\":\"switchover\""))
            .expect("transition event"),
    )
    .unwrap();
    assert_eq!(
        (tr["from"].as_str(), tr["to"].as_str()),
        (Some("MASTER"), Some("BACKUP"))
    );

    // Maintenance drains b (the master now): a takes over, b stays out until it is off.
    let (ok, out, err) = b.ctl(&["maintenance", "on"]);
    assert!(ok, "{err}");
    assert!(out.contains("maintenance on"), "{out}");
    assert!(
        wait_until(Duration::from_secs(3), || has_addr(&na.ns, VIP)),
        "a did not take over from the drained node"
    );
    assert!(!has_addr(&nb.ns, VIP));
    let s = b.status().unwrap();
    assert_eq!(
        (s["maintenance"].as_bool(), inst(&s, "w")["state"].as_str()),
        (Some(true), Some("FAULT"))
    );
    assert_eq!(sample(&scrape(&nb.ns), "xvrrpd_maintenance"), Some(1.0));
    let (ok, _, err) = b.ctl(&["maintenance", "off"]);
    assert!(ok, "{err}");
    assert!(wait_until(Duration::from_secs(3), || state_of(&b, "w") == "BACKUP"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        has_addr(&na.ns, VIP) && !has_addr(&nb.ns, VIP),
        "b took the VIP back after maintenance"
    );
    let mb = scrape(&nb.ns);
    assert_eq!(
        sample(
            &mb,
            r#"xvrrpd_vrrp_transitions_total{iname="w",intf="eth0",vrid="41",from="MASTER",to="FAULT",reason="fault"}"#
        ),
        Some(1.0),
        "{mb}"
    );
}

/// Watches `ns` for `addr` every few ms on a thread; returns whether it was ever missing.
fn watch_addr(
    ns: &str,
    addr: &str,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<bool>,
) {
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (ns, addr, s) = (ns.to_string(), addr.to_string(), stop.clone());
    let h = std::thread::spawn(move || {
        let mut missing = false;
        while !s.load(Ordering::SeqCst) {
            let out = ip_in(&ns, &["-o", "addr", "show"]).unwrap_or_default();
            if !out.contains(&format!(" {addr}/")) {
                missing = true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        missing
    });
    (stop, h)
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn reload_keeps_unchanged_instances_and_refuses_bad_configs() {
    let seg = Segment::new(1).unwrap();
    let n = &seg.nodes[0];
    let base = router_toml("w", 41, 150, 3, "100ms", "192.0.2.100/24")
        + "\n"
        + &router_toml("r", 42, 100, 3, "100ms", "192.0.2.101/24");
    let a = Router::start(&n.ns, &base).unwrap();
    assert!(wait_until(Duration::from_secs(5), || has_addr(&n.ns, VIP)
        && has_addr(&n.ns, "192.0.2.101")));
    let transitions = |r: &Router, inst: &str| {
        r.log()
            .lines()
            .filter(|l| l.contains("transition") && l.contains(&format!("instance={inst} ")))
            .count()
    };
    let before_w = transitions(&a, "w");
    let (stop, watcher) = watch_addr(&n.ns.name, VIP);

    // w unchanged; r's priority changed (in place); x added; a tracker added.
    let new = base.replace("priority = 100", "priority = 120")
        + "\n"
        + &router_toml("x", 43, 100, 3, "100ms", "192.0.2.102/24")
        + "track = [\"alive\"]\n\n[[tracker]]\nname = \"alive\"\nkind = \"exec\"\ncommand = [\"true\"]\n";
    a.write_config(&new).unwrap();
    let (ok, out, err) = a.ctl(&["reload"]);
    assert!(ok, "reload failed: {err}\n{}", a.log());
    assert!(
        out.contains("kept 1 (w)") && out.contains("updated 1 (r)") && out.contains("added 1 (x)"),
        "{out}"
    );
    assert!(wait_until(Duration::from_secs(5), || has_addr(
        &n.ns,
        "192.0.2.102"
    )));
    let s = a.status().unwrap();
    assert_eq!(inst(&s, "r")["priority"], 120);
    assert_eq!(inst(&s, "r")["state"], "MASTER");
    assert_eq!(inst(&s, "x")["trackers"][0]["name"], "alive");

    // An invalid file is refused, with the key, and nothing changes.
    a.write_config(&new.replace("vrid = 43", "vrid = 300"))
        .unwrap();
    let (ok, _, err) = a.ctl(&["reload"]);
    assert!(
        !ok && err.contains("vrid") && err.contains("running configuration stays"),
        "{err}"
    );
    assert_eq!(
        a.status().unwrap()["instances"].as_array().unwrap().len(),
        3
    );

    // A file that validates but cannot be prepared is refused whole, before anything
    // changes: a new write instance whose credentials others can read, and a new
    // instance on an interface that does not exist, each beside a priority change of r.
    let creds = a.dir.join("creds.cnf");
    std::fs::write(&creds, "user = x\npassword = y\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let write_instance = format!(
        "\n{}track = [\"db\"]\n\n[instance.mysql]\nserver = \"db\"\n\n[[tracker]]\nname = \"db\"\nkind = \"mysql\"\nsocket = \"/nonexistent.sock\"\ncredentials_file = \"{}\"\n",
        router_toml("m", 44, 100, 3, "100ms", "192.0.2.104/24"),
        creds.display()
    );
    let missing_if = "\n".to_string()
        + &router_toml("y", 45, 100, 3, "100ms", "192.0.2.105/24").replace("eth0", "nosuch0");
    for (extra, why) in [
        (write_instance.as_str(), "chmod 600"),
        (missing_if.as_str(), "nosuch0"),
    ] {
        a.write_config(&(new.replace("priority = 120", "priority = 110") + extra))
            .unwrap();
        let (ok, _, err) = a.ctl(&["reload"]);
        assert!(!ok && err.contains(why), "{why}: {err}");
        let s = a.status().unwrap();
        assert_eq!(s["instances"].as_array().unwrap().len(), 3, "{s}");
        assert_eq!(inst(&s, "r")["priority"], 120, "half applied: {s}");
        assert!(has_addr(&n.ns, "192.0.2.102"), "x lost its VIP");
    }

    // SIGHUP: x removed (its VIP goes), w still untouched.
    a.write_config(&base).unwrap();
    a.proc.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(5), || !has_addr(&n.ns, "192.0.2.102")),
        "{}",
        a.log()
    );
    assert!(wait_until(Duration::from_secs(5), || a
        .status()
        .map(|s| s["instances"].as_array().map_or(0, Vec::len) == 2)
        .unwrap_or(false)));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        !watcher.join().unwrap(),
        "the unchanged instance's VIP went away during a reload"
    );
    assert_eq!(
        transitions(&a, "w"),
        before_w,
        "the unchanged instance changed state:\n{}",
        a.log()
    );
    assert_eq!(state_of(&a, "w"), "MASTER");
    assert!(a.log().contains("reload refused"), "{}", a.log());
}

/// The classic pair's keepalived.conf for one node (write VIP 192.0.2.100, read 192.0.2.101).
fn classic_conf(
    router_id: &str,
    write_prio: u8,
    read_prio: u8,
    check_file: &str,
    notify_file: &str,
) -> String {
    format!(
        r#"! classic MySQL dual-master pair
global_defs {{
   router_id {router_id}
   script_user root
   enable_script_security
   max_auto_priority -1
}}
vrrp_script chk_mysql {{
    script "/bin/sh -c 'test -e {check_file}'"
    interval 1
    fall 1
    rise 1
    weight -60
}}
vrrp_instance VI_WRITE {{
    state BACKUP
    interface eth0
    virtual_router_id 61
    priority {write_prio}
    advert_int 1
    authentication {{
        auth_type PASS
        auth_pass pairpw
    }}
    virtual_ipaddress {{
        192.0.2.100/24
    }}
    track_script {{
        chk_mysql
    }}
    notify_master "/bin/sh -c 'echo write-master >> {notify_file}'"
}}
vrrp_instance VI_READ {{
    state BACKUP
    interface eth0
    virtual_router_id 62
    priority {read_prio}
    advert_int 1
    authentication {{
        auth_type PASS
        auth_pass pairpw
    }}
    virtual_ipaddress {{
        192.0.2.101/24
    }}
}}
"#
    )
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn imported_keepalived_conf_elects_correctly_against_keepalived() {
    let seg = Segment::new(2).unwrap();
    let (na, nb) = (&seg.nodes[0], &seg.nodes[1]);
    let dir = std::env::temp_dir().join(unique("xvimp"));
    std::fs::create_dir_all(&dir).unwrap();
    let check = dir.join("mysql-ok");
    let notify = dir.join("notified");
    std::fs::write(&check, "").unwrap();
    let conf_a = dir.join("keepalived-a.conf");
    std::fs::write(
        &conf_a,
        classic_conf(
            "db1",
            150,
            100,
            check.to_str().unwrap(),
            notify.to_str().unwrap(),
        ),
    )
    .unwrap();

    // db1 moves to xvrrpd with the imported config; db2 stays on keepalived.
    let out = Command::new(xvrrpd_bin())
        .args(["import-keepalived"])
        .arg(&conf_a)
        .output()
        .unwrap();
    let toml = String::from_utf8_lossy(&out.stdout).into_owned();
    let warnings = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{warnings}");
    assert!(warnings.contains("`state` not carried over"), "{warnings}");
    assert!(
        warnings.contains("`max_auto_priority` not carried over"),
        "{warnings}"
    );
    let cfg_path = dir.join("imported.toml");
    std::fs::write(&cfg_path, &toml).unwrap();
    let chk = Command::new(xvrrpd_bin())
        .args(["check", "--offline", "--config"])
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(
        chk.status.success(),
        "imported config does not validate: {chk:?}\n{toml}"
    );

    let db2 = dir.join("unused-b");
    // db2's check always passes (`test -e /`).
    let _kb = Keepalived::start_text(
        &nb.ns,
        &classic_conf("db2", 100, 150, "/", db2.to_str().unwrap()),
    )
    .unwrap();
    let a = Router::start(&na.ns, &toml).unwrap();

    // Each VIP on the node with the higher priority: write on db1, read on db2.
    assert!(
        wait_until(Duration::from_secs(15), || has_addr(&na.ns, "192.0.2.100")
            && has_addr(&nb.ns, "192.0.2.101")),
        "{}",
        a.log()
    );
    assert!(!has_addr(&nb.ns, "192.0.2.100") && !has_addr(&na.ns, "192.0.2.101"));
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&notify)
            .unwrap_or_default()
            .contains("write-master")),
        "imported notify_master did not run"
    );

    // db1's MySQL check fails: weight -60 drops it to 90 and keepalived's db2 takes the write VIP.
    std::fs::remove_file(&check).unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || has_addr(&nb.ns, "192.0.2.100")
            && !has_addr(&na.ns, "192.0.2.100")),
        "{}",
        a.log()
    );
    // It recovers: db1 (150) preempts back.
    std::fs::write(&check, "").unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || has_addr(&na.ns, "192.0.2.100")
            && !has_addr(&nb.ns, "192.0.2.100")),
        "{}",
        a.log()
    );
    assert!(has_addr(&nb.ns, "192.0.2.101"), "read VIP moved");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs the built binary and systemd-analyze: run via cargo xtask test"]
fn systemd_unit_verifies() {
    // systemd-analyze checks that ExecStart exists and that man pages resolve: point both
    // at this build.
    let dir = std::env::temp_dir().join(unique("xvunit"));
    std::fs::create_dir_all(dir.join("man/man8")).unwrap();
    let man = Command::new(xvrrpd_bin()).arg("man").output().unwrap();
    assert!(man.status.success());
    std::fs::write(dir.join("man/man8/xvrrpd.8"), &man.stdout).unwrap();
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/xvrrpd.service"
    ))
    .unwrap();
    for want in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=",
        "ProtectSystem=strict",
        "LimitMEMLOCK=",
        "SystemCallFilter=@system-service bpf",
        "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_BPF CAP_PERFMON CAP_KILL",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET",
    ] {
        assert!(unit.contains(want), "unit lacks {want}");
    }
    let local = dir.join("xvrrpd.service");
    std::fs::write(
        &local,
        unit.replace("/usr/sbin/xvrrpd", xvrrpd_bin().to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&local)
        .env("MANPATH", dir.join("man"))
        .output()
        .expect("systemd-analyze");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
