//! MySQL-safe failover against real MariaDB dual-master pairs in namespaces (the same
//! scenario as `cargo xtask lab`): no acknowledged write lost, no replication error, the
//! old master fenced on return, both catch-up timeout policies, writers killed on
//! demotion. Needs root; run by `cargo xtask test`.
use std::{
    process::Stdio,
    sync::atomic::AtomicBool,
    time::{Duration, Instant},
};

use xvrrpd_core::events::{Decision, Record};
use xvrrpd_tests::{
    dblab::{self, Client, Fault, GiveBack, LabOptions, LabReport, Workload},
    has_addr, router_toml, wait_until, Db, DbFlavor, Router, Segment,
};

static NEVER: AtomicBool = AtomicBool::new(false);

fn lab(opts: LabOptions) -> LabReport {
    let r = dblab::run(&opts, &NEVER).expect("lab scenario");
    r.print();
    r
}

fn quick(fault: Fault) -> LabOptions {
    LabOptions {
        fault,
        steady: Duration::from_secs(2),
        down: Duration::from_secs(3),
        after: Duration::from_secs(3),
        ..LabOptions::default()
    }
}

fn assert_safe(r: &LabReport) {
    assert!(
        r.acked > 200,
        "too few writes to mean anything: {}",
        r.acked
    );
    assert_eq!(
        r.acked_missing, 0,
        "acknowledged rows missing on the survivor"
    );
    assert_eq!(
        r.replication_errors, 0,
        "replication broke after the rejoin"
    );
    assert_one_history(r);
    assert_eq!(r.dual_writable_ms, 0.0, "both servers were writable");
    let (_, server) = r.resumed.expect("writes never resumed on the survivor");
    assert_eq!(server, 2, "writes resumed on server_id {server}, not db2");
}

#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn mysqld_kill_loses_no_acknowledged_write() {
    let r = lab(quick(Fault::MysqldKill));
    assert_safe(&r);
    // Its agent saw it lose mastership: anti-flap keeps it a read-only backup.
    assert_eq!(
        r.old_master_read_only,
        Some(true),
        "old master writable on return"
    );
}

#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn host_crash_loses_no_acknowledged_write() {
    assert_safe(&lab(quick(Fault::HostCrash)));
}

/// A reboot, not a crash: the old master comes back with `/run` empty (its control
/// socket and maintenance marker gone), mysqld started read-only from its my.cnf, its
/// agent started. What must survive a reboot is in the state directory: it comes back
/// read-only, compares with db2, replicates and stays a backup inside anti-flap, as after
/// an agent restart, and nothing acknowledged is lost.
#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn a_rebooted_master_comes_back_read_only_and_stays_a_backup() {
    let r = lab(quick(Fault::Reboot));
    assert_safe(&r);
    assert_eq!(
        r.old_master_read_only,
        Some(true),
        "the rebooted old master is writable"
    );
    assert!(
        r.failbacks.is_empty(),
        "the rebooted old master took the role back inside anti-flap: {:?}",
        r.failbacks
    );
    assert_eq!(r.acked_lost_final, 0, "acknowledged writes lost");
    assert_eq!(r.final_owners, 1, "write VIP owners at the end");
}

/// PyMySQL with its default settings (no timeouts: it waits on a socket as long as TCP
/// lets it) writing through the write VIP, one persistent connection, reconnecting on
/// error, while the master host freezes: silent at once, or its mysqld hung 100 ms before
/// (the query in flight acknowledged at TCP level, never answered: nothing retransmits).
/// The new master tickles the connection it copied from the old one, the client fails
/// at once, reconnects and writes on db2 (before: 1.7 s, and more than 180 s).
#[test]
#[ignore = "needs root, MariaDB, PyMySQL; run by cargo xtask test"]
fn a_default_pymysql_client_writes_again_soon_after_the_master_host_freezes() {
    for fault in [Fault::HostFreeze, Fault::HostFreezeAfterHang] {
        let r = lab(LabOptions {
            client: Client::Pymysql,
            ..quick(fault)
        });
        assert!(
            r.acked > 200,
            "{}: too few writes: {}",
            fault.name(),
            r.acked
        );
        assert_eq!(r.acked_missing, 0, "{}", fault.name());
        assert_eq!(r.replication_errors, 0, "{}", fault.name());
        assert_one_history(&r);
        let (_, server) = r.resumed.expect("writes never resumed on the survivor");
        assert_eq!(server, 2, "{}", fault.name());
        // Loose: the bench gives the figures (the target is 150 ms).
        assert!(
            r.outage_ms < 1000.0,
            "{}: no acknowledged write for {:.0} ms",
            fault.name(),
            r.outage_ms
        );
    }
}

/// A client that connected while the master's mysqld hung (the kernel completed the
/// handshake; the greeting never came) and whose host then went silent: tracked from
/// its handshake, it is reset by the takeover instead of waiting for TCP keepalive
/// (hours by default; Go's 15 s).
#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn a_client_waiting_for_a_hung_servers_greeting_is_reset_by_the_takeover() {
    let r = lab(LabOptions {
        greeting_waiter: true,
        ..quick(Fault::HostFreezeAfterHang)
    });
    let (at_ms, how) = r
        .greeting_wait
        .clone()
        .expect("the greeting waiter never said");
    eprintln!("greeting waiter: {how} after {at_ms:.0} ms");
    assert_eq!(how, "reset", "the waiting client after {at_ms:.0} ms");
    // Loose: the reset comes with the takeover (the bench gives the figures).
    assert!(at_ms < 2000.0, "reset only {at_ms:.0} ms after the fault");
    assert_eq!(r.acked_missing, 0);
    assert_eq!(r.replication_errors, 0);
    assert_eq!(r.resumed.map(|(_, server)| server), Some(2));
    // Not asserted here: both writable for the moments between the frozen host's
    // resuming and its agent's fence (issue 32, a self-fence in XDP).
}

/// A client reconnecting in a loop across a mysqld kill (as an application's pool does
/// after its connection broke): every attempt is answered (logged in, refused or reset)
/// within the takeover, never left to its SYN retransmission (a second) or its own
/// timeout. Several kills: the moments when a SYN may fall between two holders are short.
#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn a_client_reconnecting_in_a_loop_is_answered_at_every_instant_of_a_mysqld_kill() {
    for rep in 0..3 {
        let r = lab(LabOptions {
            connect_prober: true,
            ..quick(Fault::MysqldKill)
        });
        assert!(!r.connects.is_empty(), "rep {rep}: the prober never ran");
        let slowest = r
            .connects
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("attempts");
        eprintln!(
            "rep {rep}: {} attempts during the fault, slowest {:.1} ms ({}, began {:.1} ms after the kill)",
            r.connects.len(),
            slowest.1,
            slowest.2,
            slowest.0
        );
        assert!(
            slowest.1 < 500.0,
            "rep {rep}: a connect attempt waited {:.0} ms ({}), begun {:.1} ms after the kill: {:?}",
            slowest.1,
            slowest.2,
            slowest.0,
            r.connects
        );
        assert_safe(&r);
    }
}

/// The master's host freezes and db2 takes over; a client whose ARP entry still names
/// db1 keeps writing through the VIP. When db1 resumes, its mysqld is writable until its
/// agent has compared write terms with db2 and stepped down (tens of ms): the datapath
/// refuses that client from the first segment (the self-fence), so db1 acknowledges
/// nothing that its flashback would undo later.
#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn a_frozen_master_that_resumes_acknowledges_nothing_to_a_client_still_sent_there() {
    let r = lab(LabOptions {
        stale_client: true,
        resume_network_first: true,
        ..quick(Fault::HostFreeze)
    });
    assert!(
        r.stale_acked.is_empty(),
        "db1 acknowledged {} writes after db2 took over, at {:?} ms after the fault",
        r.stale_acked.len(),
        r.stale_acked
    );
    assert_eq!(r.acked_lost_final, 0, "acknowledged writes lost");
    assert_eq!(r.acked_missing, 0);
    assert_eq!(r.resumed.map(|(_, server)| server), Some(2));
    // The scenario happened: db1 resumed as master and stepped down for db2. (Whether
    // its agent or its datapath found the stall first varies: either refuses.)
    assert!(
        r.said("db1", |e| matches!(
            e,
            Record::Arbitration {
                decision: Decision::Yield,
                ..
            }
        )),
        "db1 never stepped down for db2: {:?}",
        r.timeline
    );
}

/// The account workload (updates of existing rows, where a lost write is silent): after a
/// mysqld kill and after an agent kill on the master, every acknowledged increment is on
/// both servers and they hold the same balances.
fn bank(fault: Fault) {
    bank_on(DbFlavor::Mariadb, fault)
}

fn bank_on(flavor: DbFlavor, fault: Fault) {
    let r = lab(LabOptions {
        workload: Workload::Bank,
        flavor,
        ..quick(fault)
    });
    assert_safe(&r);
    assert_eq!(
        r.acked_increments_missing, 0,
        "acknowledged increments lost"
    );
    assert_terms_grow(&r);
}

/// Both servers end with the same rows, and neither is left divergent: what the old
/// master committed alone (a commit its fence killed in flight) was undone there
/// (`on_errant = "flashback"`), never sent to db2.
fn assert_one_history(r: &LabReport) {
    assert!(
        r.divergent.iter().all(Vec::is_empty),
        "a server is left divergent (errant transactions not undone): {:?}",
        r.divergent
    );
    assert!(
        r.converged,
        "the servers hold different rows after the rejoin"
    );
    assert_eq!(r.rows_differing, 0, "the servers' rows differ");
}

/// Every promotion recorded a write term one above the last, and both servers' data end
/// with the latest: db1's first promotion, db2's takeover, and any later one.
fn assert_terms_grow(r: &LabReport) {
    let terms: Vec<u64> = r
        .write_terms
        .iter()
        .map(|t| t.expect("a promotion did not record its write term"))
        .collect();
    assert!(terms.len() >= 2, "promotions: {terms:?}");
    assert!(
        terms.windows(2).all(|w| w[1] == w[0] + 1),
        "write terms not consecutive: {terms:?}"
    );
    let last = terms.last().copied();
    assert_eq!(r.term_rows, [last, last], "xvrrpd.write_term rows");
}

#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn bank_mysqld_kill_loses_no_acknowledged_increment() {
    bank(Fault::MysqldKill);
}

/// A partition: both sides serve as master (no witness), db2 promoted with a higher write
/// term. At the heal the node promoted last keeps the role although db1 has the higher
/// priority: db1 hears db2, compares write terms and yields (fenced, read-only); db2 keeps.
/// Before the terms, db2 yielded on priority and clients wrote to db1 before db2's writes
/// had reached it (bank workload: ~80 acknowledged increments overwritten per partition).
#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn partition_heals_to_the_master_promoted_last() {
    two_masters_meet(Fault::Partition);
}

/// The master's host freezes (network silent, agent and mysqld stopped) and resumes with
/// its VIP and a writable server: it yields to db2 on the write terms, and what it
/// committed alone (a commit in flight, killed by its fence) never reaches db2.
#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn bank_host_freeze_loses_no_acknowledged_increment() {
    two_masters_meet(Fault::HostFreeze);
}

/// Both sides were masters (no witness can prevent it): bank workload, and at the end no
/// acknowledged increment missing from the servers in service, no replication error, db1
/// yielded on the write terms and is read-only, one VIP owner, and one history: what db1
/// took alone was undone there, never sent to db2.
fn two_masters_meet(fault: Fault) {
    two_masters_meet_on(DbFlavor::Mariadb, fault)
}

fn two_masters_meet_on(flavor: DbFlavor, fault: Fault) {
    let r = lab(LabOptions {
        workload: Workload::Bank,
        flavor,
        ..quick(fault)
    });
    assert!(
        r.acked > 200,
        "too few writes to mean anything: {}",
        r.acked
    );
    assert_one_history(&r);
    assert_eq!(
        r.acked_increments_missing, 0,
        "acknowledged increments lost"
    );
    assert_eq!(r.replication_errors, 0, "replication broke after the heal");
    let yielded = |node: &str| {
        r.said(node, |e| {
            matches!(
                e,
                Record::Arbitration {
                    decision: Decision::Yield,
                    ..
                }
            )
        })
    };
    assert!(yielded("db1"), "db1 did not yield on the write terms");
    assert!(!yielded("db2"), "db2 yielded");
    assert_eq!(
        r.old_master_read_only,
        Some(true),
        "db1 writable after the heal"
    );
    assert_eq!(r.final_owners, 1, "write VIP owners at the end");
    assert_terms_grow(&r);
}

#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn bank_agent_kill_loses_no_acknowledged_increment() {
    bank(Fault::AgentKill);
}

/// `xvrrpd switchover write` under write load: db1 is fenced before db2 takes over, so
/// nothing acknowledged is lost, nothing collides, and db1 does not take the role back.
#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn planned_switchover_loses_no_acknowledged_write() {
    planned_switchover(DbFlavor::Mariadb);
}

fn planned_switchover(flavor: DbFlavor) {
    let r = lab(LabOptions {
        flavor,
        ..quick(Fault::Switchover)
    });
    assert_safe(&r);
    assert_eq!(
        r.old_master_read_only,
        Some(true),
        "db1 writable after handing over"
    );
    assert!(
        r.said("db1", |e| matches!(
            e,
            Record::Transition { from, to, reason, .. }
                if from == "MASTER" && to == "BACKUP" && reason == "switchover"
        )),
        "{:?}",
        r.timeline
    );
    // db1 outranks db2 but stays a backup: the roles stay swapped.
    assert!(
        !r.said_after_fault("db1", |e| matches!(
            e,
            Record::Transition { to, .. } if to == "MASTER"
        )),
        "{:?}",
        r.timeline
    );
}

#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn stay_backup_waits_for_the_applier_before_taking_writes() {
    let r = lab(LabOptions {
        catchup_timeout: Duration::from_secs(1),
        survivor_applier_delay: Some(Duration::from_secs(3)),
        down: Duration::from_secs(4),
        ..quick(Fault::MysqldKill)
    });
    let (resumed_ms, _) = r.resumed.expect("writes never resumed");
    assert!(
        resumed_ms > 2000.0,
        "db2 took writes {resumed_ms:.0} ms after the fault, before its applier ran"
    );
    assert!(r.said("db2", |e| matches!(e, Record::CatchupTimeout { .. })));
    assert!(r.said("db2", |e| matches!(e, Record::CaughtUp { .. })));
    assert_safe(&r);
}

#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn promote_anyway_takes_writes_after_the_timeout() {
    let r = lab(LabOptions {
        catchup_timeout: Duration::from_secs(1),
        policy: "promote-anyway",
        survivor_applier_delay: Some(Duration::from_secs(3)),
        down: Duration::from_secs(4),
        ..quick(Fault::MysqldKill)
    });
    let (resumed_ms, server) = r.resumed.expect("writes never resumed");
    assert_eq!(server, 2);
    assert!(
        (1000.0..2000.0).contains(&resumed_ms),
        "promote-anyway: writes should resume after the 1 s timeout, before the applier: {resumed_ms:.0} ms"
    );
    assert!(r.said("db2", |e| matches!(
        e,
        Record::Writable { forced: true, .. }
    )));
    // The documented price: writes accepted on top of unapplied ones. Here they do not
    // collide (auto-increment offsets, client sequence), so the pair still converges.
    assert_eq!(r.replication_errors, 0);
    assert!(r.converged);
}

/// A client session through the write VIP is killed when its server stops being the
/// writer (here: xvrrpd stopped), and the server is read-only afterwards.
#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn demotion_sets_read_only_and_kills_writers() {
    let seg = Segment::new(3).unwrap();
    let (n0, n1, client) = (&seg.nodes[0], &seg.nodes[1], &seg.nodes[2]);
    let db = Db::start_with(
        &n0.ns,
        DbFlavor::Mariadb,
        &["--skip-log-bin", "--bind-address=0.0.0.0", "--read-only=ON"],
    )
    .unwrap();
    db.sql("CREATE USER app@'%' IDENTIFIED BY 'app'; GRANT ALL ON lab.* TO app@'%'; CREATE DATABASE lab;")
        .unwrap();
    db.create_agent_account(None).unwrap();
    let creds = db.dir.join("creds");
    std::fs::write(&creds, "user = xvrrpd\npassword = xvrrpd\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let vip = "192.0.2.100";
    let guarded = format!(
        "{}track = [\"db\"]\n[instance.mysql]\nserver = \"db\"\n\n[[tracker]]\nname = \"db\"\nkind = \"mysql\"\n\
         socket = \"{}\"\ncredentials_file = \"{}\"\nweight = -100\n",
        router_toml("w", 41, 150, 3, "10ms", &format!("{vip}/24")),
        db.socket.display(),
        creds.display()
    );
    let mut a = Router::start(&n0.ns, &guarded).unwrap();
    let _b = Router::start(
        &n1.ns,
        &router_toml("w", 41, 100, 3, "10ms", &format!("{vip}/24")),
    )
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || has_addr(&n0.ns, vip)
            && db.sql("SELECT @@read_only").is_ok_and(|s| s.trim() == "0")),
        "db1 never became a writable master:\n{}",
        a.log()
    );
    // A writer in the middle of a long statement through the VIP.
    let mut session = client
        .ns
        .command("mariadb")
        .args([
            "--no-defaults",
            "-h",
            vip,
            "-uapp",
            "-papp",
            "lab",
            "-e",
            "SELECT SLEEP(60)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        db.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'")
            .is_ok_and(|s| s.trim() == "1")
    }));
    let t = Instant::now();
    assert_eq!(
        a.stop(),
        Some(0),
        "xvrrpd did not stop cleanly:\n{}",
        a.log()
    );
    assert_eq!(db.sql("SELECT @@read_only").unwrap().trim(), "1");
    assert!(
        wait_until(Duration::from_secs(5), || session
            .try_wait()
            .unwrap()
            .is_some()),
        "the writer's session survived the demotion"
    );
    let status = session.wait().unwrap();
    assert!(
        !status.success(),
        "the writer's session ended normally, not killed"
    );
    assert!(t.elapsed() < Duration::from_secs(30));
    let log = a.log();
    // The fence killed the writer's session (it was not committing: not in doubt).
    assert!(
        log.lines()
            .any(|l| l.contains("fenced: read_only = ON") && l.contains("killed=1 in_doubt=0")),
        "{log}"
    );
    assert!(wait_until(Duration::from_secs(5), || has_addr(&n1.ns, vip)));
}

/// `xvrrpd check` against a live server refuses what would break a promotion: an account
/// without READ_ONLY ADMIN (on MariaDB 10.11 not even SUPER sets read_only) or SLAVE
/// MONITOR (SUPER would do for that one), and a server that does not answer. Each is an
/// error (exit 1).
#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn preflight_refuses_what_would_break_a_promotion() {
    let seg = Segment::new(1).unwrap();
    let db = Db::start_with(&seg.nodes[0].ns, DbFlavor::Mariadb, &["--read-only=ON"]).unwrap();
    db.sql("CREATE USER lim@localhost IDENTIFIED BY 'lim'; GRANT PROCESS, CONNECTION ADMIN ON *.* TO lim@localhost;")
        .unwrap();
    let creds = db.dir.join("lim.cnf");
    std::fs::write(&creds, "user = lim\npassword = lim\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = db.dir.join("xvrrpd.toml");
    std::fs::write(
        &config,
        format!(
            "{}track = [\"db\"]\n[instance.mysql]\nserver = \"db\"\n\n[[tracker]]\nname = \"db\"\nkind = \"mysql\"\nsocket = \"{}\"\ncredentials_file = \"{}\"\nweight = -100\n",
            router_toml("w", 41, 150, 3, "10ms", "192.0.2.100/24").replace("eth0", "lo"),
            db.socket.display(),
            creds.display()
        ),
    )
    .unwrap();
    let check = || xvrrpd_tests::xvrrpd_check(None, &config);
    let (code, out) = check();
    assert_eq!(code, Some(1), "{out}");
    for want in [
        // Proven by its probe: the server's own refusal is quoted.
        "ERROR: the account lacks READ_ONLY ADMIN on *.* (ERROR 1227",
        "ERROR: the account lacks REPLICATION SLAVE ADMIN on *.* (ERROR 1227",
        "ERROR: could not read the replication status",
        "SLAVE MONITOR",
        // From SHOW GRANTS: the write term's schema.
        "ERROR: the account lacks INSERT on xvrrpd.*",
        "`xvrrpd grants` prints the whole account",
        "semi-sync",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    db.signal(libc::SIGKILL);
    assert!(wait_until(Duration::from_secs(10), || !db.socket.exists()
        || db.sql("SELECT 1").is_err()));
    let (code, out) = check();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("ERROR: the server did not answer"), "{out}");
}

/// After the fault the old master comes back, replicates again (checked: both threads
/// running) and takes the write role back (a preemption once its short anti-flap hold
/// ends, or a switchover from db2): no acknowledged increment is missing from either
/// server in service, the servers end identical, and every promotion took the next term.
fn give_back(fault: Fault, how: GiveBack) {
    give_back_on(DbFlavor::Mariadb, fault, how)
}

fn give_back_on(flavor: DbFlavor, fault: Fault, how: GiveBack) {
    let r = lab(LabOptions {
        flavor,
        workload: Workload::Bank,
        give_back: Some(how),
        anti_flap: Duration::from_secs(5),
        ..quick(fault)
    });
    assert!(
        r.acked > 200,
        "too few writes to mean anything: {}",
        r.acked
    );
    assert_eq!(r.old_master_replicated, Some(true), "db1 never replicated");
    assert!(r.given_back_ms.is_some(), "the role never went back to db1");
    assert_eq!(
        r.acked_increments_missing, 0,
        "acknowledged increments lost"
    );
    assert_one_history(&r);
    assert_eq!(r.replication_errors, 0, "replication broke");
    assert_eq!(r.final_owners, 1, "write VIP owners at the end");
    assert_terms_grow(&r);
    assert!(
        r.write_terms.len() >= 3,
        "db1, db2, db1 again: {:?}",
        r.write_terms
    );
}

#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn bank_mysqld_kill_then_preempt_back_loses_no_acknowledged_increment() {
    give_back(Fault::MysqldKill, GiveBack::Preempt);
}

#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn bank_partition_then_switchover_back_loses_no_acknowledged_increment() {
    give_back(Fault::Partition, GiveBack::Switchover);
}

#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn bank_host_freeze_then_preempt_back_loses_no_acknowledged_increment() {
    give_back(Fault::HostFreeze, GiveBack::Preempt);
}

/// The survivor's account lacks one privilege of the guard (as `xvrrpd grants` prints
/// it, one line removed by a DBA): it says so at once (`guard_blocked`, naming the
/// privilege) and stays out of the election, so the master's mysqld kill costs an outage
/// until db1's server is back, never a stale promotion or a lost increment. (Without
/// SLAVE MONITOR the lab's MySQL check itself fails on db2, which is visible before any
/// fault: its read instance stays in FAULT.)
#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn a_survivor_lacking_a_privilege_is_never_promoted_and_says_which() {
    for privilege in [
        "READ_ONLY ADMIN",
        "REPLICATION SLAVE ADMIN",
        "CONNECTION ADMIN",
        "PROCESS",
    ] {
        let r = lab(LabOptions {
            workload: Workload::Bank,
            revoke_on_db2: Some(privilege),
            ..quick(Fault::MysqldKill)
        });
        // The block's error is the operator's message: it must name what to grant.
        let blocked = r.said(
            "db2",
            |e| matches!(e, Record::GuardBlocked { error, .. } if error.contains(privilege)),
        );
        assert!(blocked, "{privilege}: db2 never said it lacks it");
        assert!(
            !r.said_after_fault("db2", |e| matches!(e, Record::Writable { .. })),
            "{privilege}: db2 became writable"
        );
        assert_eq!(
            r.acked_increments_missing, 0,
            "{privilege}: acknowledged increments lost"
        );
        assert_eq!(r.dual_writable_ms, 0.0, "{privilege}: both writable");
        assert_eq!(r.rows_differing, 0, "{privilege}: the servers differ");
    }
}

// Oracle MySQL 9.7 (Debian unstable's, chrooted in each node's namespace): the
// failover-critical scenarios again, with MySQL's statements, its semi-sync and its way
// back for a divergent node (on_errant = "clone": archive, CLONE INSTANCE from the peer,
// replicate again).

#[test]
#[ignore = "needs root, MySQL 9.7 (cargo xtask setup); run by cargo xtask test"]
fn mysql_bank_mysqld_kill_then_preempt_back_loses_no_acknowledged_increment() {
    give_back_on(DbFlavor::Mysql, Fault::MysqldKill, GiveBack::Preempt);
}

/// Both sides serve during the partition; at the heal db1 yields, holds what it
/// committed alone (MySQL cannot undo it), is rebuilt from db2 by CLONE, replicates
/// again and takes the role back by a switchover.
#[test]
#[ignore = "needs root, MySQL 9.7 (cargo xtask setup); run by cargo xtask test"]
fn mysql_bank_partition_then_switchover_back_loses_no_acknowledged_increment() {
    give_back_on(DbFlavor::Mysql, Fault::Partition, GiveBack::Switchover);
}

#[test]
#[ignore = "needs root, MySQL 9.7 (cargo xtask setup); run by cargo xtask test"]
fn mysql_bank_host_freeze_loses_no_acknowledged_increment() {
    two_masters_meet_on(DbFlavor::Mysql, Fault::HostFreeze);
}

#[test]
#[ignore = "needs root, MySQL 9.7 (cargo xtask setup); run by cargo xtask test"]
fn mysql_bank_agent_kill_loses_no_acknowledged_increment() {
    bank_on(DbFlavor::Mysql, Fault::AgentKill);
}

#[test]
#[ignore = "needs root, MySQL 9.7 (cargo xtask setup); run by cargo xtask test"]
fn mysql_planned_switchover_loses_no_acknowledged_write() {
    planned_switchover(DbFlavor::Mysql);
}

/// What MySQL 9.7 does with a transaction that reached the master's binary log but not
/// its replica (lossless semi-sync, AFTER_SYNC; mysqld killed while the commit waits
/// for the ACK): crash recovery commits what the binary log holds, so the old master
/// comes back holding it alone, an errant transaction, unlike MariaDB, whose semi-sync
/// slave recovery truncates it. Its client was never told OK, and the replica never
/// had it: the guard finds it errant and rebuilds the server (`on_errant = "clone"`).
#[test]
#[ignore = "needs root, MySQL 9.7 (cargo xtask setup); run by cargo xtask test"]
fn mysql_crash_recovery_keeps_a_logged_commit_the_replica_never_acknowledged() {
    let seg = Segment::new(2).unwrap();
    let (n0, n1) = (&seg.nodes[0], &seg.nodes[1]);
    let start = |n: &xvrrpd_tests::Node, id: u32| {
        let args = DbFlavor::Mysql.pair_args(id, true);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Db::start_with(&n.ns, DbFlavor::Mysql, &args).unwrap()
    };
    let (mut master, replica) = (start(n0, 1), start(n1, 2));
    for db in [&master, &replica] {
        db.setup_sql(
            "SET sql_log_bin = 0; CREATE USER repl@'%' IDENTIFIED BY 'repl';
             GRANT REPLICATION SLAVE ON *.* TO repl@'%'",
        )
        .unwrap();
    }
    replica
        .setup_sql(&DbFlavor::Mysql.replicate_from(&n0.addr4))
        .unwrap();
    master
        .setup_sql("CREATE DATABASE lab; CREATE TABLE lab.t (id INT PRIMARY KEY)")
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || replica
            .sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'lab'")
            .is_ok_and(|n| n.trim() == "1")),
        "the table never replicated: {:?}",
        replica.replica_status()
    );
    let active = master
        .sql("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_source_status'")
        .unwrap();
    assert!(active.contains("ON"), "semi-sync not active: {active}");
    // The replica stops answering (not gone: its connection stays), the commit waits for
    // its ACK, and the master dies meanwhile.
    replica.signal(libc::SIGSTOP);
    let mut commit = std::process::Command::new("mariadb")
        .args(["--no-defaults", "-uroot"])
        .arg(format!("--socket={}", master.socket.display()))
        .args([
            "-e",
            "SET GLOBAL super_read_only = OFF; INSERT INTO lab.t VALUES (42)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let waiting = wait_until(Duration::from_secs(5), || {
        master
            .sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE LIKE '%semi-sync%'")
            .is_ok_and(|n| n.trim() == "1")
    });
    assert!(waiting, "the commit never waited for the ACK");
    // The replica, stopped, has not acknowledged it (the commit waits for exactly that).
    master.restart().unwrap();
    let _ = commit.wait();
    let held = master
        .sql("SELECT COUNT(*) FROM lab.t WHERE id = 42")
        .unwrap();
    let executed = master.sql(DbFlavor::Mysql.executed()).unwrap();
    replica.signal(libc::SIGCONT);
    eprintln!(
        "after the crash: the master holds the unacknowledged row: {}; it executed {}",
        held.trim(),
        executed.trim().replace("\\n", " ")
    );
    assert_eq!(held.trim(), "1", "MySQL 9.7 rolled the logged commit back");
}

/// A backup that falls behind (its replication stopped by hand, as a DBA does; a read
/// lock on the table keeps its applier behind even once its agent restarts it) is never
/// handed the write role: `xvrrpd switchover write` is refused before anything is
/// fenced, saying why, and db1 keeps serving; no acknowledged increment is ever missing
/// on the server holding the VIP.
fn behind_by_hand_refuses_the_switchover(flavor: DbFlavor) {
    let r = lab(LabOptions {
        workload: Workload::Bank,
        flavor,
        stop_survivor_replication: true,
        // The switchover's wait for the peer to catch up.
        catchup_timeout: Duration::from_secs(1),
        ..quick(Fault::Switchover)
    });
    let refused = r
        .switchover_refused
        .as_deref()
        .unwrap_or_else(|| panic!("the switchover was not refused: {:?}", r.timeline));
    // The answer is the operator's message: it must say why. Still stopped when asked,
    // or restarted by db2's agent and held back by the lock.
    assert!(
        refused.contains("does not replicate from this server") || refused.contains("BEHIND"),
        "the refusal does not say why: {refused}"
    );
    assert!(r.resumed.is_none(), "db2 took writes: {:?}", r.resumed);
    assert_eq!(
        r.write_vip.node2_acquired, 0,
        "the write VIP moved: {:?}",
        r.write_vip
    );
    assert_eq!(r.dual_writable_ms, 0.0, "both servers were writable");
    assert_eq!(
        r.acked_increments_missing, 0,
        "acknowledged increments missing on the server holding the VIP"
    );
    // (Its writes may pause for the semi-sync timeout once db2 stops acknowledging.)
    assert!(r.fences.is_empty(), "a server was fenced: {:?}", r.fences);
}

#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn a_switchover_to_a_backup_behind_by_hand_is_refused_and_the_master_keeps_serving() {
    behind_by_hand_refuses_the_switchover(DbFlavor::Mariadb);
}

#[test]
#[ignore = "needs root, MySQL 9.7 (cargo xtask setup); run by cargo xtask test"]
fn mysql_a_switchover_to_a_backup_behind_by_hand_is_refused() {
    behind_by_hand_refuses_the_switchover(DbFlavor::Mysql);
}

/// The same backup, behind by hand, when a false `master_down` makes it take over (db1's
/// agent killed: its server stays writable, its adverts stop): it must never serve
/// without what db1 acknowledged. It waits while db1's server is writable, and once db1
/// is read-only it fetches what it lacks (replication restarted by its guard) before
/// any write.
///
/// The stop may leave received transactions unapplied (the applier behind the
/// receiver): the promotion starts the applier for them too.
#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn a_backup_behind_by_hand_never_serves_without_the_masters_writes_after_a_false_master_down() {
    behind_by_hand_after_a_false_master_down(DbFlavor::Mariadb);
}

#[test]
#[ignore = "needs root, MySQL 9.7 (cargo xtask setup); run by cargo xtask test"]
fn mysql_a_backup_behind_by_hand_never_serves_without_the_masters_writes() {
    behind_by_hand_after_a_false_master_down(DbFlavor::Mysql);
}

fn behind_by_hand_after_a_false_master_down(flavor: DbFlavor) {
    let r = lab(LabOptions {
        workload: Workload::Bank,
        stop_survivor_replication: true,
        flavor,
        ..quick(Fault::AgentKill)
    });
    assert_eq!(r.dual_writable_ms, 0.0, "both servers were writable");
    assert_eq!(
        r.acked_increments_missing, 0,
        "acknowledged increments missing on the server holding the VIP"
    );
    assert_eq!(r.acked_lost_final, 0, "acknowledged writes lost");
}

/// A preempt back to a node that fell behind: db1, back after its mysqld was killed and
/// replicating again, has its replication stopped by hand and its applier held by a read
/// lock. Its agent says BEHIND (`xvrrpd status`) and does not preempt, even 3 s past its
/// anti-flap hold: db2 keeps serving. The lock released, db1 catches up and preempts:
/// no acknowledged increment missing on the server holding the VIP at any moment.
#[test]
#[ignore = "needs root, MariaDB; run by cargo xtask test"]
fn a_node_behind_by_hand_does_not_preempt_until_it_holds_the_masters_writes() {
    behind_then_preempt(DbFlavor::Mariadb);
}

#[test]
#[ignore = "needs root, MySQL 9.7 (cargo xtask setup); run by cargo xtask test"]
fn mysql_a_node_behind_by_hand_does_not_preempt_until_it_holds_the_masters_writes() {
    behind_then_preempt(DbFlavor::Mysql);
}

fn behind_then_preempt(flavor: DbFlavor) {
    let r = lab(LabOptions {
        flavor,
        workload: Workload::Bank,
        give_back: Some(GiveBack::Preempt),
        old_master_behind: true,
        anti_flap: Duration::from_secs(15),
        ..quick(Fault::MysqldKill)
    });
    let said = r.behind_said.as_deref().expect("db1 never said BEHIND");
    assert!(
        said.contains("transactions missing from the peer"),
        "{said}"
    );
    assert!(
        !r.preempted_while_behind,
        "db1 took the write VIP while behind"
    );
    assert!(
        r.given_back_ms.is_some(),
        "db1 never preempted once current"
    );
    assert_eq!(r.dual_writable_ms, 0.0, "both servers were writable");
    assert_eq!(
        r.acked_increments_missing, 0,
        "acknowledged increments missing on the server holding the VIP"
    );
    assert_one_history(&r);
    assert_eq!(r.replication_errors, 0, "replication broke");
    assert_eq!(r.final_owners, 1, "write VIP owners at the end");
}
