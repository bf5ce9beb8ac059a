//! The importer on real-world style configurations: every translation must load as an
//! xvrrpd configuration, and every dropped keyword must be warned about.
use std::path::Path;

use super::*;
use crate::config::{self, TrackerKind, VirtualAddress};

fn import(text: &str) -> (config::Config, Vec<String>, String) {
    let out = import_text(text, Path::new("/etc/keepalived/keepalived.conf"), "db1").unwrap();
    let cfg = config::parse(&out.toml, false)
        .unwrap_or_else(|p| panic!("translation does not load: {p:?}\n{}", out.toml));
    (cfg, out.warnings, out.toml)
}

/// The classic dual-master MySQL pair: a write and a read VIP, a port-check script,
/// notify scripts, nopreempt, VRRPv2 with PASS authentication.
pub const CLASSIC_MYSQL: &str = r#"
! Configuration File for keepalived
global_defs {
   notification_email {
     dba@example.com
   }
   router_id db1
   script_user root
   enable_script_security
}

vrrp_script chk_mysql {
    script "/bin/bash -c '</dev/tcp/127.0.0.1/3306'"
    interval 2
    timeout 1
    fall 3
    rise 2
    weight -50
}

vrrp_instance VI_WRITE {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    nopreempt
    authentication {
        auth_type PASS
        auth_pass s3cretpw
    }
    virtual_ipaddress {
        192.0.2.100/24 dev eth0 label eth0:w
    }
    track_script {
        chk_mysql
    }
    notify_master "/etc/keepalived/notify.sh master write"
    notify_backup "/etc/keepalived/notify.sh backup write"
    notify_fault  "/etc/keepalived/notify.sh fault write"
}

vrrp_instance VI_READ {
    state MASTER
    interface eth0
    virtual_router_id 52
    priority 100
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass s3cretpw
    }
    virtual_ipaddress {
        192.0.2.101/24
    }
    track_script {
        chk_mysql weight -20
    }
    notify /etc/keepalived/notify_any.sh
}
"#;

#[test]
fn classic_mysql_pair() {
    let (cfg, warnings, toml) = import(CLASSIC_MYSQL);
    assert_eq!(cfg.global.router_id.as_deref(), Some("db1"));
    assert_eq!(cfg.instances.len(), 2, "{toml}");
    let w = &cfg.instances[0];
    assert_eq!(
        (w.name.as_str(), w.vrid, w.priority, w.version),
        ("VI_WRITE", 51, 150, 2)
    );
    assert!(!w.preempt);
    assert_eq!(w.advert_interval, Duration::from_secs(1));
    assert_eq!(w.auth_pass.as_deref(), Some("s3cretpw"));
    assert_eq!(
        w.virtual_addresses,
        [VirtualAddress::Detailed {
            address: "192.0.2.100/24".into(),
            device: Some("eth0".into()),
            label: Some("eth0:w".into()),
        }]
    );
    assert_eq!(w.track, ["chk_mysql"]);
    assert_eq!(
        w.notify.master,
        ["/etc/keepalived/notify.sh", "master", "write"]
    );
    assert_eq!(
        w.notify.fault,
        ["/etc/keepalived/notify.sh", "fault", "write"]
    );
    let r = &cfg.instances[1];
    assert!(r.preempt);
    assert_eq!(r.notify.any, ["/etc/keepalived/notify_any.sh"]);
    // The per-instance weight becomes its own tracker.
    assert_eq!(r.track, ["chk_mysql_VI_READ"]);
    let chk = cfg.trackers.iter().find(|t| t.name == "chk_mysql").unwrap();
    assert_eq!(chk.kind, TrackerKind::Exec);
    // A redirection needs a shell: the whole script goes to /bin/sh -c.
    assert_eq!(
        chk.command,
        ["/bin/sh", "-c", "/bin/bash -c '</dev/tcp/127.0.0.1/3306'"]
    );
    assert_eq!(
        (chk.interval, chk.timeout, chk.rise, chk.fall, chk.weight),
        (Duration::from_secs(2), Duration::from_secs(1), 2, 3, -50)
    );
    let chk_r = cfg
        .trackers
        .iter()
        .find(|t| t.name == "chk_mysql_VI_READ")
        .unwrap();
    assert_eq!((chk_r.weight, &chk_r.command), (-20, &chk.command));
    let all = warnings.join("\n");
    for want in [
        "keepalived.conf:4: global_defs `notification_email` not carried over",
        "`script_user` not carried over",
        "vrrp_instance VI_WRITE `state` not carried over",
        "native tracker (kind = \"mysql\"",
    ] {
        assert!(all.contains(want), "missing warning {want:?} in:\n{all}");
    }
}

#[test]
fn unicast_sync_group_interfaces_files_and_v3() {
    let text = r#"
global_defs {
  router_id lb2
  vrrp_version 3
  vrrp_garp_master_delay 2
  vrrp_garp_master_repeat 3
}
vrrp_track_file drain {
  file /etc/keepalived/drain
  weight -10
}
vrrp_sync_group G1 {
  group {
    VI_A
    VI_B
  }
  notify_master /usr/local/bin/group_master
}
vrrp_instance VI_A {
  interface eth1
  virtual_router_id 7
  priority 200
  advert_int 0.1
  preempt_delay 30
  unicast_src_ip 198.51.100.1
  unicast_peer {
    198.51.100.2
  }
  virtual_ipaddress {
    198.51.100.10
    2001:db8::10
  }
  track_interface {
    eth2 weight -30
    eth3
  }
  track_file {
    drain
  }
  use_vmac
  garp_master_refresh 60
}
vrrp_instance VI_B {
  interface eth1
  virtual_router_id 8
  virtual_ipaddress {
    198.51.100.11/24
  }
}
virtual_server 198.51.100.10 3306 {
  delay_loop 6
}
"#;
    let (cfg, warnings, toml) = import(text);
    let a = &cfg.instances[0];
    assert_eq!(
        (a.version, a.advert_interval),
        (3, Duration::from_millis(100)),
        "{toml}"
    );
    assert_eq!(a.preempt_delay, Duration::from_secs(30));
    assert_eq!(a.unicast_source, Some("198.51.100.1".parse().unwrap()));
    assert_eq!(
        a.unicast_peers,
        ["198.51.100.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(
        a.virtual_addresses,
        [VirtualAddress::Plain("198.51.100.10/32".into())]
    );
    // Mixed families become two instances (one address family per VRRP instance).
    let a6 = cfg.instances.iter().find(|i| i.name == "VI_A_v6").unwrap();
    assert_eq!(
        a6.virtual_addresses,
        [VirtualAddress::Plain("2001:db8::10/128".into())]
    );
    assert_eq!((a6.vrid, a6.priority, &a6.track), (7, 200, &a.track));
    assert!(a6.unicast_peers.is_empty() && a6.unicast_source.is_none());
    assert_eq!(a.track, ["link_eth2_VI_A", "link_eth3", "drain"]);
    assert_eq!(a.announce.count, 3);
    assert_eq!(a.announce.repeat_after, Duration::from_secs(2));
    assert_eq!(a.announce.refresh, Duration::from_secs(60));
    let b = cfg.instances.iter().find(|i| i.name == "VI_B").unwrap();
    assert_eq!((b.priority, b.version, b.announce.count), (100, 3, 3));
    let eth2 = cfg
        .trackers
        .iter()
        .find(|t| t.name == "link_eth2_VI_A")
        .unwrap();
    assert_eq!(
        (eth2.kind, eth2.weight, eth2.interface.as_deref()),
        (TrackerKind::Interface, -30, Some("eth2"))
    );
    let eth3 = cfg.trackers.iter().find(|t| t.name == "link_eth3").unwrap();
    assert_eq!(
        eth3.weight, 0,
        "no weight: link down = FAULT, as in keepalived"
    );
    let drain = cfg.trackers.iter().find(|t| t.name == "drain").unwrap();
    assert_eq!((drain.kind, drain.weight), (TrackerKind::File, -10));
    let all = warnings.join("\n");
    for want in [
        "vrrp_sync_group G1 not carried over",
        "vrrp_sync_group G1 `notify_master`",
        "vrrp_instance VI_A `use_vmac` not carried over: xvrrpd does not create VMAC",
        "`virtual_server` not carried over: no LVS",
        "VI_A: IPv4 and IPv6 VIPs split into VI_A and VI_A_v6",
    ] {
        assert!(all.contains(want), "missing warning {want:?} in:\n{all}");
    }
}

#[test]
fn script_splitting_follows_keepalived() {
    assert_eq!(
        argv("/usr/bin/killall -0 mysqld"),
        ["/usr/bin/killall", "-0", "mysqld"]
    );
    assert_eq!(
        argv("/x/check 'two words' \"q\""),
        ["/x/check", "two words", "q"]
    );
    assert_eq!(
        argv("pidof mysqld || exit 1"),
        ["/bin/sh", "-c", "pidof mysqld || exit 1"]
    );
}

#[test]
fn broken_input_is_an_error_with_its_place() {
    let e = import_text(
        "vrrp_instance X {\n priority high\n}\n",
        Path::new("k.conf"),
        "db1",
    )
    .unwrap_err();
    assert!(e.to_string().contains("k.conf:2: priority \"high\""), "{e}");
}

#[test]
fn the_translation_is_a_serialized_config_with_every_default_written() {
    let (cfg, _, toml) = import(CLASSIC_MYSQL);
    let w = &cfg.instances[0];
    // Hooks keep the timeout xvrrpd gives them (a zero timeout would kill them at once).
    assert_eq!(w.notify.timeout, Duration::from_secs(10));
    assert!(!w.notify.master.is_empty());
    assert!(toml.contains("accept_mode = true"), "{toml}");
    // Reading it back and writing it again gives the same file.
    let again = toml::to_string(&cfg).unwrap();
    assert!(toml.ends_with(&again), "{toml}\n---\n{again}");
}

#[test]
fn an_address_that_is_not_one_is_refused_with_its_keyword() {
    let text = "vrrp_instance V {\n interface eth0\n virtual_router_id 5\n priority 100\n unicast_src_ip 192.0.2.300\n virtual_ipaddress {\n  192.0.2.5/24\n }\n}\n";
    let e = import_text(text, Path::new("/etc/keepalived/keepalived.conf"), "db1").unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains("unicast_src_ip") && e.contains("192.0.2.300"),
        "{e}"
    );
}

#[test]
fn keepalived_scheduling_keywords_map_to_the_advert_thread() {
    let text = r#"
global_defs {
  router_id db1
  vrrp_rt_priority 60
  vrrp_rlimit_rttime 5000
  vrrp_no_swap
}
vrrp_instance VI_W {
  interface eth0
  virtual_router_id 51
  priority 150
  advert_int 1
  virtual_ipaddress {
    192.0.2.100/24
  }
}
"#;
    let (cfg, warnings, _) = import(text);
    assert_eq!(cfg.global.realtime_priority, 60);
    assert_eq!(cfg.global.realtime_budget, Duration::from_millis(5));
    assert!(cfg.global.lock_memory);
    let all = warnings.join("\n");
    for kw in ["vrrp_rt_priority", "vrrp_rlimit_rttime", "vrrp_no_swap"] {
        assert!(!all.contains(kw), "{kw} dropped: {all}");
    }
}

/// One keepalived.conf for both hosts, with per-host lines (`@db1 priority 150`), and
/// its last `}` missing (keepalived runs it, warning "There are 1 missing '}'s"): each
/// host gets its own priority, and the warnings say what was skipped and closed.
#[test]
fn one_file_for_two_hosts_imports_for_each_with_keepalived_leniency() {
    let text = "vrrp_instance db_write {\n interface eth0\n virtual_router_id 51\n @db1 priority 150\n @db2 priority 100\n @^db1 nopreempt\n advert_int 1\n virtual_ipaddress {\n  192.0.2.100/24\n }\n";
    let for_host = |id: &str| {
        let out = import_text(text, Path::new("/etc/keepalived/keepalived.conf"), id).unwrap();
        let cfg = config::parse(&out.toml, false)
            .unwrap_or_else(|p| panic!("translation does not load: {p:?}\n{}", out.toml));
        (cfg, out.warnings)
    };
    let (db1, w1) = for_host("db1");
    assert_eq!(db1.instances[0].priority, 150);
    assert!(db1.instances[0].preempt, "@^db1 nopreempt is not db1's");
    assert!(
        w1.iter()
            .any(|w| w.contains("keepalived.conf:5: line for host \"db2\"")),
        "{w1:?}"
    );
    assert!(w1.iter().any(|w| w.contains("never closed")), "{w1:?}");
    let (db2, w2) = for_host("db2");
    assert_eq!(db2.instances[0].priority, 100);
    assert!(!db2.instances[0].preempt);
    assert!(
        w2.iter().any(|w| w.contains("line for host \"db1\"")),
        "{w2:?}"
    );
}
