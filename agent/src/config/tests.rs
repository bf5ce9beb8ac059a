use super::*;

fn problems(text: &str) -> Vec<Problem> {
    parse(text, false).expect_err("config should be rejected")
}

const MINIMAL: &str = r#"
[[instance]]
name = "write"
interface = "eth0"
vrid = 41
priority = 150
advert_interval = "100ms"
virtual_addresses = ["192.0.2.100/24"]
"#;

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = parse(MINIMAL, false).unwrap();
    let i = &c.instances[0];
    assert_eq!(i.version, 3);
    assert!(i.preempt && i.accept_mode);
    assert_eq!(i.preempt_delay, Duration::ZERO);
    assert_eq!(i.advert_interval, Duration::from_millis(100));
    assert_eq!(i.v3_checksum, V3Checksum::PseudoHeader);
    assert_eq!(i.announce, Announce::default());
    assert!(i.unicast_peers.is_empty());
}

#[test]
fn shipped_examples_are_valid() {
    for f in ["db1.toml", "db2.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config")
            .join(f);
        let c = load(&path, false).unwrap_or_else(|p| panic!("{f}: {p:?}"));
        assert_eq!(c.instances.len(), 2);
        assert_eq!((c.instances[0].vrid, c.instances[1].vrid), (41, 51));
    }
}

#[test]
fn unknown_keys_are_rejected_with_their_line() {
    let p = problems(&format!("{MINIMAL}preemt = false\n"));
    assert_eq!(p.len(), 1);
    assert!(p[0].message.contains("preemt"), "{}", p[0]);
    assert_eq!(p[0].line, Some(9));
}

#[test]
fn every_problem_is_listed_with_key_and_line() {
    let text = r#"
[[instance]]
name = "a"
interface = "eth0"
vrid = 41
priority = 100
version = 2
advert_interval = "1500ms"
virtual_addresses = ["2001:db8::1/64"]
auth_pass = "much-too-long"

[[instance]]
name = "a"
interface = "eth0"
vrid = 41
priority = 100
advert_interval = "15ms"
virtual_addresses = ["192.0.2.1/24", "2001:db8::2/64"]
"#;
    let p = problems(text);
    let find = |key: &str| {
        p.iter()
            .find(|x| x.key == key)
            .unwrap_or_else(|| panic!("no problem for {key}: {p:#?}"))
    };
    assert_eq!(find("instance[0].advert_interval").line, Some(8));
    assert!(find("instance[0].advert_interval")
        .message
        .contains("whole seconds"));
    assert_eq!(find("instance[0].virtual_addresses[0]").line, Some(9));
    assert!(find("instance[0].virtual_addresses[0]")
        .message
        .contains("IPv4 only"));
    assert_eq!(find("instance[0].auth_pass").line, Some(10));
    assert_eq!(find("instance[1].name").line, Some(13));
    assert!(find("instance[1].advert_interval")
        .message
        .contains("multiples of 10ms"));
    assert!(find("instance[1].virtual_addresses[1]")
        .message
        .contains("one address family"));
}

#[test]
fn duplicate_vrid_on_one_interface_and_family() {
    let text = format!("{MINIMAL}{}", MINIMAL.replace("\"write\"", "\"read\""));
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "instance[1].vrid");
    assert!(p[0].message.contains("already used on eth0"));
    assert_eq!(p[0].line, Some(13));
    // The same VRID for the other family is a different virtual router: allowed.
    let v6 = MINIMAL
        .replace("\"write\"", "\"w6\"")
        .replace("192.0.2.100/24", "2001:db8::100/64");
    assert!(parse(&format!("{MINIMAL}{v6}"), false).is_ok());
}

#[test]
fn bad_durations_and_values_name_the_fix() {
    let p = problems(&MINIMAL.replace("\"100ms\"", "\"fast\""));
    assert!(p[0].message.contains("write e.g."), "{}", p[0]);
    assert_eq!(p[0].line, Some(7));
    let p = problems(&MINIMAL.replace("priority = 150", "priority = 0"));
    assert!(p[0].message.contains("1–255"));
    let p = problems(&MINIMAL.replace("\"192.0.2.100/24\"", "\"192.0.2.100/33\""));
    assert!(p[0].message.contains("prefix"));
}

#[test]
fn unknown_interface_is_reported_when_checking_the_host() {
    let p = parse(&MINIMAL.replace("eth0", "nosuchif0"), true).unwrap_err();
    assert!(p
        .iter()
        .any(|x| x.key == "instance[0].interface" && x.message.contains("does not exist")));
}

#[test]
fn parse_prefixed_defaults_to_host_prefix() {
    assert_eq!(validate::parse_prefixed("192.0.2.1").unwrap().1, 32);
    assert_eq!(validate::parse_prefixed("2001:db8::1").unwrap().1, 128);
    assert!(validate::parse_prefixed("nope/24").is_err());
}

#[test]
fn write_guard_defaults_and_its_server_must_be_a_followed_mysql_tracker() {
    let ok = format!(
        "{MINIMAL}track = [\"db\"]\nanti_flap = \"60s\"\n[instance.mysql]\nserver = \"db\"\n\n\
         [[tracker]]\nname = \"db\"\nkind = \"mysql\"\n"
    );
    let c = parse(&ok, false).unwrap();
    let g = c.instances[0].mysql.as_ref().unwrap();
    assert_eq!(g.catchup_timeout, Duration::from_secs(10));
    assert_eq!(g.on_catchup_timeout, CatchupPolicy::StayBackup);
    assert!(g.kill_writers);
    // Errant transactions are quarantined unless the operator asks for the undo.
    assert_eq!(g.on_errant, ErrantPolicy::Quarantine);
    // A hung server that must be fenced is killed unless the operator says wait.
    assert_eq!(g.on_hung, HungPolicy::Kill);
    assert_eq!(
        g.errant_archive,
        std::path::Path::new("/var/lib/xvrrpd/errant")
    );
    assert_eq!(c.instances[0].anti_flap, Duration::from_secs(60));
    let undo = ok.replace(
        "server = \"db\"",
        "server = \"db\"\non_errant = \"flashback\"",
    );
    let g = parse(&undo, false).unwrap().instances[0]
        .mysql
        .clone()
        .unwrap();
    assert_eq!(g.on_errant, ErrantPolicy::Flashback);
    let wait = ok.replace("server = \"db\"", "server = \"db\"\non_hung = \"wait\"");
    let g = parse(&wait, false).unwrap().instances[0]
        .mysql
        .clone()
        .unwrap();
    assert_eq!(g.on_hung, HungPolicy::Wait);
    let typo = ok.replace(
        "server = \"db\"",
        "server = \"db\"\non_errant = \"rebuild\"",
    );
    assert!(
        parse(&typo, false)
            .unwrap_err()
            .iter()
            .any(|p| p.key.contains("on_errant")),
        "{:?}",
        parse(&typo, false)
    );

    let wrong_kind = ok.replace("kind = \"mysql\"", "kind = \"file\"\npath = \"/x\"");
    let p = problems(&wrong_kind);
    assert!(p
        .iter()
        .any(|p| p.key == "instance[0].mysql.server" && p.message.contains("not of kind")));
    let unfollowed = ok.replace("track = [\"db\"]\n", "");
    let p = problems(&unfollowed);
    assert!(p
        .iter()
        .any(|p| p.key == "instance[0].track" && p.message.contains("must follow its server")));
    let missing = ok.replace("server = \"db\"", "server = \"nope\"");
    assert!(problems(&missing)
        .iter()
        .any(|p| p.key == "instance[0].mysql.server" && p.line == Some(12)));
    let policy = ok.replace(
        "server = \"db\"",
        "server = \"db\"\non_catchup_timeout = \"promote-anyway\"",
    );
    assert_eq!(
        parse(&policy, false).unwrap().instances[0]
            .mysql
            .as_ref()
            .unwrap()
            .on_catchup_timeout,
        CatchupPolicy::PromoteAnyway
    );
}

#[test]
fn type_errors_name_the_key() {
    let text = "[[instance]]\nname = \"w\"\ninterface = \"eth0\"\nvrid = 300\npriority = 100\nvirtual_addresses = [\"192.0.2.100/24\"]\n";
    let p = parse(text, false).unwrap_err();
    assert_eq!((p[0].key.as_str(), p[0].line), ("vrid", Some(4)), "{p:?}");
    let p = parse("[global\n", false).unwrap_err();
    assert_eq!(p[0].key, "(syntax)");
}

#[test]
fn spoof_filter_needs_peers_of_the_right_family() {
    let inst = |extra: &str| {
        format!("[[instance]]\nname = \"w\"\ninterface = \"eth0\"\nvrid = 4\npriority = 100\nvirtual_addresses = [\"192.0.2.100/24\"]\n{extra}")
    };
    let keys = |extra: &str| -> Vec<String> {
        parse(&inst(extra), false)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.key)
            .collect()
    };
    assert_eq!(keys("spoof_filter = true\n"), ["instance[0].spoof_filter"]);
    assert!(keys("spoof_filter = true\npeers = [\"192.0.2.12\"]\n").is_empty());
    assert!(keys("spoof_filter = true\nunicast_peers = [\"192.0.2.12\"]\n").is_empty());
    assert_eq!(
        keys("peers = [\"2001:db8::1\"]\n"),
        ["instance[0].peers[0]"]
    );
    let nine: Vec<String> = (1..=9).map(|i| format!("\"192.0.2.{i}\"")).collect();
    assert_eq!(
        keys(&format!("peers = [{}]\n", nine.join(", "))),
        ["instance[0].peers"]
    );
}

/// Found by `cargo xtask fuzz` (config_toml): a quoted empty key gave a problem with an
/// empty key name.
#[test]
fn syntax_errors_on_empty_keys_still_name_something() {
    let p = parse("\"\"=.......{\u{e}\n", false).unwrap_err();
    assert!(p.iter().all(|p| !p.key.is_empty()), "{p:?}");
}

#[test]
fn connection_reset_settings_default_to_every_port_from_the_datapath_and_are_bounded() {
    let c = parse(MINIMAL, false).unwrap();
    let i = &c.instances[0];
    assert!(i.reset_clients && i.conn_ports.is_empty());
    assert_eq!(i.tickle_answer, TickleAnswer::Datapath);
    assert_eq!(c.global.conn_table_size, xvrrpd_common::MAX_CONNS);
    let with = |extra: &str| format!("{MINIMAL}{extra}\n");
    let c = parse(
        &with("conn_ports = [3306, 33060]\ntickle_answer = \"kernel\""),
        false,
    )
    .unwrap();
    assert_eq!(c.instances[0].conn_ports, [3306, 33060]);
    assert_eq!(c.instances[0].tickle_answer, TickleAnswer::Kernel);
    let p = problems(&with("conn_ports = [1, 2, 3, 4, 5, 6, 7, 8, 9]"));
    assert_eq!(p[0].key, "instance[0].conn_ports");
    assert!(p[0].message.contains("at most 8"), "{}", p[0]);
    let p = problems(&with("conn_ports = [0]"));
    assert!(p[0].message.contains("not a TCP port"), "{}", p[0]);
    let p = problems(&with("tickle_answer = \"stack\""));
    assert!(p[0].message.contains("datapath"), "{}", p[0]);
    let p = problems(&format!("[global]\nconn_table_size = 10\n{MINIMAL}"));
    assert_eq!(p[0].key, "global.conn_table_size");
}

#[test]
fn the_witness_is_checked_field_by_field_tls_included() {
    let ok = format!(
        "{MINIMAL}\n[witness]\netcd = [\"192.0.2.30:2379\"]\n[witness.tls]\nca = \"/etc/xvrrpd/etcd-ca.pem\"\ncert = \"/etc/xvrrpd/etcd-db1.pem\"\nkey = \"/etc/xvrrpd/etcd-db1.key\"\n"
    );
    let c = parse(&ok, false).unwrap();
    let w = c.witness.unwrap();
    assert_eq!(w.lease, Duration::from_millis(600));
    assert_eq!(w.margin, Duration::from_millis(250));
    let tls = w.tls.unwrap();
    assert_eq!(tls.ca, std::path::PathBuf::from("/etc/xvrrpd/etcd-ca.pem"));
    assert!(tls.server_name.is_none());

    let keys =
        |text: String| -> Vec<String> { problems(&text).into_iter().map(|p| p.key).collect() };
    // A certificate without its key, and the other way round.
    let cert_only = ok.replace("key = \"/etc/xvrrpd/etcd-db1.key\"\n", "");
    assert_eq!(keys(cert_only), ["witness.tls.key"]);
    let key_only = ok.replace("cert = \"/etc/xvrrpd/etcd-db1.pem\"\n", "");
    assert_eq!(keys(key_only), ["witness.tls.cert"]);
    let blank_name = ok.replace("[witness.tls]\n", "[witness.tls]\nserver_name = \" \"\n");
    assert_eq!(keys(blank_name), ["witness.tls.server_name"]);
    // A URL where host:port belongs, a margin too short for a fence, a lease too short.
    let url = ok.replace("\"192.0.2.30:2379\"", "\"https://192.0.2.30:2379\"");
    assert_eq!(keys(url), ["witness.etcd[0]"]);
    let margin = ok.replace("[witness.tls]", "margin = \"100ms\"\n[witness.tls]");
    assert_eq!(keys(margin), ["witness.margin"]);
    let lease = ok.replace("[witness.tls]", "lease = \"300ms\"\n[witness.tls]");
    assert_eq!(keys(lease), ["witness.lease"]);
    // An unknown TLS field is named, not ignored.
    let typo = ok.replace("ca = ", "cafile = ");
    let p = problems(&typo);
    assert!(p.iter().any(|p| p.message.contains("cafile")), "{p:?}");
}
