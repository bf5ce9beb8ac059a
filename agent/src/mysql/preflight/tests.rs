use super::*;

fn good(id: &str) -> Snapshot {
    let vars = [
        ("version", "10.11.6-MariaDB"),
        ("server_id", id),
        ("log_bin", "ON"),
        ("read_only", "ON"),
        ("auto_increment_increment", "2"),
        ("auto_increment_offset", id),
        ("gtid_domain_id", id),
        ("rpl_semi_sync_master_enabled", "ON"),
        ("rpl_semi_sync_slave_enabled", "ON"),
        ("rpl_semi_sync_master_wait_no_slave", "OFF"),
        ("rpl_semi_sync_master_wait_point", "AFTER_SYNC"),
        ("rpl_semi_sync_master_timeout", "1000"),
        ("slave_net_timeout", "5"),
        ("gtid_strict_mode", "ON"),
    ];
    let replica = [
        ("Slave_IO_Running", "Yes"),
        ("Slave_SQL_Running", "Yes"),
        ("Using_Gtid", "Slave_Pos"),
        ("Seconds_Behind_Master", "0"),
    ];
    Snapshot {
        vars: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        replica: Some(ReplicaStatus::from_columns(
            &replica
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )),
        grants: vec!["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`".into()],
        ..Snapshot::default()
    }
}

/// A MySQL 9.7 node set up as docs/mysql.md says, by MySQL's names.
fn good_mysql(id: &str) -> Snapshot {
    let vars = [
        ("version", "9.7.4-2"),
        ("server_id", id),
        ("log_bin", "ON"),
        ("read_only", "ON"),
        ("super_read_only", "ON"),
        ("auto_increment_increment", "2"),
        ("auto_increment_offset", id),
        ("gtid_mode", "ON"),
        ("enforce_gtid_consistency", "ON"),
        ("rpl_semi_sync_source_enabled", "ON"),
        ("rpl_semi_sync_replica_enabled", "ON"),
        ("rpl_semi_sync_source_wait_no_replica", "OFF"),
        ("rpl_semi_sync_source_wait_point", "AFTER_SYNC"),
        ("rpl_semi_sync_source_timeout", "1000"),
        ("rpl_semi_sync_source_status", "ON"),
        ("replica_net_timeout", "5"),
        ("clone_valid_donor_list", ""),
    ];
    let replica = [
        ("Replica_IO_Running", "Yes"),
        ("Replica_SQL_Running", "Yes"),
        ("Auto_Position", "1"),
        ("Seconds_Behind_Source", "0"),
    ];
    let pairs = |p: &[(&str, &str)]| {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    Snapshot {
        vars: pairs(&vars),
        replica: Some(ReplicaStatus::from_columns(&pairs(&replica))),
        grants: vec!["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`".into()],
        ..Snapshot::default()
    }
}

/// MySQL 8.4+ has none of the `master`/`slave` names: a good node gets no finding,
/// and every finding about a bad one names MySQL's variable and statement.
#[test]
fn mysql_is_checked_by_its_own_names() {
    let (a, b) = (good_mysql("1"), good_mysql("2"));
    assert_eq!(evaluate(&a, Some(&b), Some(true)), vec![]);
    let report = semi_sync_report(&a).join("\n");
    assert!(
        report.contains("rpl_semi_sync_source_wait_no_replica OFF"),
        "{report}"
    );
    assert!(!report.contains("NOT ACTIVE"), "{report}");

    let mut bad = good_mysql("1");
    for (k, v) in [
        ("rpl_semi_sync_source_status", "OFF"),
        ("replica_net_timeout", "60"),
        ("enforce_gtid_consistency", "OFF"),
        ("super_read_only", "OFF"),
    ] {
        bad.vars.insert(k.into(), v.into());
    }
    bad.replica.as_mut().expect("replica").auto_position = false;
    let mut peer = good_mysql("2");
    peer.vars
        .insert("rpl_semi_sync_replica_enabled".into(), "OFF".into());
    let findings = evaluate(&bad, Some(&peer), Some(true));
    let text: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
    let all = text.join("\n");
    for want in [
        "rpl_semi_sync_replica_enabled = OFF there",
        "enabled but not active now (rpl_semi_sync_source_status = OFF)",
        "replica_net_timeout = 60",
        "enforce_gtid_consistency is OFF",
        "SOURCE_AUTO_POSITION = 1",
        "super_read_only is OFF",
    ] {
        assert!(all.contains(want), "{want:?} missing from:\n{all}");
    }
    for f in &text {
        assert!(
            !f.contains("slave") && !f.contains("SLAVE") && !f.contains("MASTER"),
            "a MariaDB name in a MySQL finding: {f}"
        );
    }
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    assert_eq!(
        errors, 2,
        "the peer's semi-sync and GTID consistency: {all}"
    );

    // Not replicating: the statement to fix it is MySQL's.
    let mut lone = good_mysql("1");
    lone.replica = None;
    let findings = evaluate(&lone, None, Some(true));
    assert!(
        findings
            .iter()
            .any(|f| f.message.contains("CHANGE REPLICATION SOURCE TO")
                && f.message.contains("START REPLICA")),
        "{findings:?}"
    );
}

#[test]
fn flashback_needs_mariadb_row_images_the_tools_and_five_grants() {
    let mut s = good("1");
    s.vars.insert("binlog_format".into(), "ROW".into());
    s.vars.insert("binlog_row_image".into(), "FULL".into());
    s.grants = vec!["GRANT SUPER, RELOAD, REPLICATION SLAVE ON *.* TO `xvrrpd`@`%`".into()];
    assert_eq!(flashback_findings(&s, Ok(())), vec![]);
    s.vars.insert("binlog_row_image".into(), "MINIMAL".into());
    s.grants = vec!["GRANT RELOAD, BINLOG ADMIN ON *.* TO `xvrrpd`@`%`".into()];
    let f: Vec<String> = flashback_findings(
        &s,
        Err("none of mariadb-binlog, mysqlbinlog is installed".into()),
    )
    .into_iter()
    .map(|f| f.message)
    .collect();
    assert!(f[0].contains("binlog_row_image is MINIMAL"), "{f:?}");
    assert!(f[1].contains("mariadb-binlog"), "{f:?}");
    for grant in [
        "BINLOG MONITOR",
        "REPLICATION SLAVE",
        "BINLOG REPLAY",
        "REPLICATION MASTER ADMIN",
    ] {
        assert!(
            f.iter().any(|m| m.contains(&format!("GRANT {grant} ON"))),
            "{grant}: {f:?}"
        );
    }
    assert_eq!(f.len(), 6, "{f:?}");
    s.vars.insert("version".into(), "8.0.36".into());
    let f = flashback_findings(&s, Ok(()));
    assert!(
        f.len() == 1 && f[0].message.contains("only MariaDB"),
        "{f:?}"
    );
}

#[test]
fn a_well_built_pair_has_no_findings() {
    assert_eq!(evaluate(&good("1"), Some(&good("2")), Some(true)), vec![]);
}

#[test]
fn replication_stopped_by_xvrrpd_is_not_an_error() {
    let stopped = |read_only: &str| {
        let mut s = good("1");
        s.vars.insert("read_only".into(), read_only.into());
        let r = s.replica.as_mut().unwrap();
        r.io_running = false;
        r.sql_running = false;
        evaluate(&s, Some(&good("2")), Some(true))
    };
    // The master replicates from nobody.
    assert_eq!(stopped("OFF"), vec![]);
    // A read-only server waiting for its comparison with the peer (skip_slave_start).
    let f = stopped("ON");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].level, Level::Warning);
    assert!(f[0].message.contains("DIVERGENT"), "{f:?}");
}

#[test]
fn each_hazard_is_named_with_its_fix() {
    let mut s = good("1");
    s.vars
        .insert("rpl_semi_sync_master_enabled".into(), "OFF".into());
    s.vars.insert("log_bin".into(), "OFF".into());
    s.vars.insert("slave_net_timeout".into(), "60".into());
    // SUPER no longer sets read_only on MariaDB 10.11: the probe says so.
    s.grants = vec![
        "GRANT PROCESS, SUPER ON *.* TO `xv`@`%`".into(),
        "GRANT ALL PRIVILEGES ON `superprocess`.* TO `xv`@`%`".into(),
    ];
    let read_only = privileges::NEEDS
        .iter()
        .position(|n| n.name(Flavor::MariaDb) == Some("READ_ONLY ADMIN"))
        .unwrap();
    s.probes.insert(read_only, Err("ERROR 1227: Access denied; you need (at least one of) the READ_ONLY ADMIN privilege(s) for this operation".into()));
    let r = s.replica.as_mut().unwrap();
    r.sql_running = false;
    r.last_sql_error = "Could not execute Write_rows_v1 event: Duplicate entry".into();
    let f = evaluate(&s, Some(&good("1")), Some(false));
    let text = |level| {
        f.iter()
            .filter(|x| x.level == level)
            .map(|x| x.message.clone())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let errors = text(Level::Error);
    for want in [
        "log_bin is OFF",
        "server_id 1 is also the peer's",
        "auto-increment series collide",
        "replication threads not running",
        "GRANT READ_ONLY ADMIN",
    ] {
        assert!(
            errors.contains(want),
            "missing error {want:?} in:\n{errors}"
        );
    }
    let warnings = text(Level::Warning);
    for want in [
        "semi-sync replication is off",
        "read_only = ON under [mysqld]",
        "gtid_domain_id",
        "slave_net_timeout = 60",
    ] {
        assert!(
            warnings.contains(want),
            "missing warning {want:?} in:\n{warnings}"
        );
    }
    // SUPER covers killing connections and the replication status; PROCESS is there.
    assert!(
        !errors.contains("GRANT PROCESS")
            && !errors.contains("CONNECTION ADMIN")
            && !errors.contains("SLAVE MONITOR")
    );
}

#[test]
fn only_global_grants_count() {
    let p = global_privileges(&[
        "GRANT USAGE ON *.* TO `xv`@`%`".into(),
        "GRANT ALL ON `superprocess`.* TO `xv`@`%`".into(),
        "GRANT SELECT, PROCESS, SLAVE MONITOR ON *.* TO `xv`@`%`".into(),
    ]);
    assert_eq!(p, vec!["USAGE", "SELECT", "PROCESS", "SLAVE MONITOR"]);
    let mut s = good("1");
    s.grants = vec!["GRANT ALL ON `superprocess`.* TO `xv`@`%`".into()];
    let f = evaluate(&s, Some(&good("2")), Some(true));
    let errors: Vec<_> = f.iter().filter(|f| f.level == Level::Error).collect();
    // Five global privileges and four on the term's schema.
    assert_eq!(errors.len(), 9, "{errors:?}");
}

#[test]
fn the_write_term_needs_its_schema_or_the_check_fails() {
    let g = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    let warned = |grants: Vec<String>| {
        let mut s = good("1");
        s.grants = grants;
        evaluate(&s, Some(&good("2")), Some(true))
            .iter()
            .any(|f| f.level == Level::Error && f.message.contains("xvrrpd.*"))
    };
    let base = "GRANT PROCESS, SLAVE MONITOR, CONNECTION ADMIN ON *.* TO `xv`@`%`";
    assert!(warned(g(&[base])));
    assert!(warned(g(&[
        base,
        "GRANT SELECT, INSERT ON `xvrrpd`.* TO `xv`@`%`"
    ])));
    // Another schema whose name merely starts the same does not count.
    assert!(warned(g(&[
        base,
        "GRANT ALL PRIVILEGES ON `xvrrpd_old`.* TO `xv`@`%`"
    ])));
    assert!(!warned(g(&[
        base,
        "GRANT CREATE, INSERT, UPDATE, SELECT ON `xvrrpd`.* TO `xv`@`%`"
    ])));
    assert!(!warned(g(&["GRANT ALL PRIVILEGES ON *.* TO `xv`@`%`"])));
}

#[test]
fn auto_increment_collisions_are_arithmetic() {
    // The classic pair.
    assert!(!auto_increments_collide((2, 1), (2, 2)));
    // Offset 3 above increment 2 counts as 1: it collides with offset 1.
    assert!(auto_increments_collide((2, 1), (2, 3)));
    // Increments 2 and 3 meet sooner or later whatever the offsets.
    assert!(auto_increments_collide((2, 1), (3, 2)));
    assert!(auto_increments_collide((1, 1), (1, 1)));
    assert!(!auto_increments_collide((3, 1), (3, 2)));
    assert!(!auto_increments_collide((4, 1), (2, 2)));
    assert!(auto_increments_collide((4, 1), (2, 1)));
    let mut a = good("1");
    a.vars.insert("auto_increment_increment".into(), "1".into());
    let mut b = good("2");
    b.vars.insert("auto_increment_increment".into(), "1".into());
    let f = evaluate(&a, Some(&b), Some(true));
    assert!(
        f.iter()
            .any(|f| f.level == Level::Error && f.message.contains("collide")),
        "{f:?}"
    );
}

#[test]
fn read_only_options_in_any_spelling() {
    for yes in [
        "--read-only",
        "--read_only=ON",
        "--read-only=1",
        "--read_only=TRUE",
        "--READ_ONLY=true",
        "--super-read-only",
        "--super_read_only=ON",
    ] {
        assert!(read_only_option(yes), "{yes}");
    }
    for no in [
        "--read-only=OFF",
        "--read_only=0",
        "--read-only-compressed",
        "--super-read-only=OFF",
    ] {
        assert!(!read_only_option(no), "{no}");
    }
    let s = Snapshot {
        server_args: Some(vec!["/usr/sbin/mariadbd".into(), "--read-only=ON".into()]),
        ..Snapshot::default()
    };
    assert_eq!(starts_read_only(&s), Some(true));
}

#[test]
fn after_commit_is_a_warning_and_the_report_says_what_each_setting_costs() {
    let mut s = good("1");
    let report = semi_sync_report(&s).join("\n");
    assert!(report.contains("AFTER_SYNC (lossless)"), "{report}");
    assert!(report.contains("timeout 1000 ms"), "{report}");
    assert!(report.contains("wait_no_slave OFF"), "{report}");
    s.vars.insert(
        "rpl_semi_sync_master_wait_point".into(),
        "AFTER_COMMIT".into(),
    );
    let f = evaluate(&s, Some(&good("2")), Some(true));
    assert!(
        f.iter()
            .any(|f| f.level == Level::Warning && f.message.contains("AFTER_SYNC")),
        "{f:?}"
    );
    assert!(semi_sync_report(&s)[0].contains("AFTER_COMMIT"));
}
