//! The write lease through a real three-member etcd cluster (db1, db2, witness) beside
//! the MariaDB dual-master lab: a partition leaves one writable server, a host crash
//! costs about `lease + margin` more, a handover the old master knows about costs
//! nothing more. Needs root, MariaDB and etcd; run by `cargo xtask test`.
use std::{sync::atomic::AtomicBool, time::Duration};

use xvrrpd_core::events::{LeaseLoss, Record};
use xvrrpd_tests::dblab::{self, Fault, LabOptions, LabReport};

static NEVER: AtomicBool = AtomicBool::new(false);

fn lab(fault: Fault) -> LabReport {
    let opts = LabOptions {
        fault,
        witness: true,
        steady: Duration::from_secs(2),
        down: Duration::from_secs(3),
        after: Duration::from_secs(3),
        ..LabOptions::default()
    };
    let r = dblab::run(&opts, &NEVER).expect("lab scenario");
    r.print();
    r
}

fn assert_clean(r: &LabReport) {
    assert!(
        r.acked > 200,
        "too few writes to mean anything: {}",
        r.acked
    );
    assert_eq!(r.dual_writable_ms, 0.0, "both servers were writable");
    assert_eq!(r.acked_missing, 0, "acknowledged rows missing");
    assert_eq!(r.acked_lost_final, 0, "acknowledged rows lost for good");
    assert_eq!(r.replication_errors, 0, "replication broke");
    assert!(r.fencing_term.is_some(), "no write key was ever held");
}

/// db1 | db2, the client and the witness reach both: db1 keeps the write key (it still
/// reaches etcd's majority), db2 becomes VRRP master but never gets the key, so it never
/// becomes writable (without a witness: both writable for the whole partition).
#[test]
#[ignore = "needs root, MariaDB, etcd; run by cargo xtask test"]
fn a_partition_leaves_one_writable_server() {
    let r = lab(Fault::Partition);
    assert_clean(&r);
    assert!(r.resumed.is_none(), "db2 took writes: {:?}", r.resumed);
}

/// db1 | db2 + witness: the master is on the minority side. It cannot renew and fences
/// itself; db2 takes the key once it is sure db1 stopped, and serves.
#[test]
#[ignore = "needs root, MariaDB, etcd; run by cargo xtask test"]
fn a_master_cut_off_from_the_witness_fences_itself_and_db2_serves() {
    let r = lab(Fault::PartitionMaster);
    assert_clean(&r);
    let (_, server) = r.resumed.expect("db2 never served");
    assert_eq!(server, 2);
    assert_eq!(r.fencing_term, Some(2), "db1 held term 1, db2 term 2");
}

/// The master's host dies: db2 takes the key `lease + margin` after the last renewal it
/// saw (1 s here), then promotes. Loose bound: the bench measures it.
#[test]
#[ignore = "needs root, MariaDB, etcd; run by cargo xtask test"]
fn a_host_crash_costs_about_lease_plus_margin_more() {
    let r = lab(Fault::HostCrash);
    assert_clean(&r);
    let (ms, server) = r.resumed.expect("db2 never served");
    assert_eq!(server, 2);
    assert!(ms < 2500.0, "writes back after {ms:.0} ms");
}

/// mysqld dies: its node sees it, and the key goes to db2 at once (nothing listens where
/// the server was), so the failover is as fast as without a witness.
#[test]
#[ignore = "needs root, MariaDB, etcd; run by cargo xtask test"]
fn a_dead_mysqld_hands_the_key_over_at_once() {
    let r = lab(Fault::MysqldKill);
    assert_clean(&r);
    let (ms, server) = r.resumed.expect("db2 never served");
    assert_eq!(server, 2);
    assert!(
        ms < 700.0,
        "writes back after {ms:.0} ms: the key was not freed"
    );
}

/// etcd loses its third member, or changes leader, while the master renews: nothing
/// moves.
#[test]
#[ignore = "needs root, MariaDB, etcd; run by cargo xtask test"]
fn the_witness_losing_a_member_or_its_leader_moves_nothing() {
    for fault in [Fault::WitnessDown, Fault::EtcdLeaderChange] {
        let r = lab(fault);
        assert_clean(&r);
        assert!(
            r.resumed.is_none(),
            "{}: a failover: {:?}",
            fault.name(),
            r.resumed
        );
    }
}

/// etcd loses its quorum (db2's and the witness's members killed; db1's own runs on
/// without a leader): the master cannot renew, so it fences itself and nobody writes
/// until the quorum is back (Patroni's failsafe mode would keep writing while the peer
/// confirms it is not writable; docs/witness.md says why we fence). Then a node takes the
/// key again and the writes resume, nothing lost.
#[test]
#[ignore = "needs root, MariaDB, etcd; run by cargo xtask test"]
fn etcd_losing_its_quorum_stops_the_writes_until_it_is_back() {
    let r = lab(Fault::EtcdQuorumLoss);
    assert_clean(&r);
    let expired = r.said("db1", |e| {
        matches!(
            e,
            Record::LeaseLost {
                why: LeaseLoss::Expired,
                ..
            }
        )
    });
    assert!(expired, "db1 kept writing without a quorum");
    // Writes stop for as long as etcd has no quorum (3 s), and come back after.
    assert!(
        r.outage_ms > 2000.0,
        "writes went on without a quorum: outage {:.0} ms",
        r.outage_ms
    );
    let back = r
        .writes
        .iter()
        .any(|(t, server)| *t > r.recovered_ns && server.is_some());
    assert!(back, "the writes never came back after etcd did");
}

/// `xvrrpd check` reaches the witness as the agent does, through TLS with this node's
/// client certificate, against a real etcd run with `--client-cert-auth`: it reads the
/// write key from each member, and names what is wrong when the CA is not the members'
/// or when the node offers no certificate (etcd then refuses the connection, so such a
/// node could never take the write key).
#[test]
#[ignore = "needs root and etcd; run by cargo xtask test"]
fn check_reaches_the_witness_through_tls_or_says_why_not() {
    use xvrrpd_tests::{etcd, router_toml, unique, Segment};
    let seg = Segment::new(1).unwrap();
    let node = &seg.nodes[0];
    let dir = std::env::temp_dir().join(unique("xvt"));
    std::fs::create_dir_all(&dir).unwrap();
    let cluster = etcd::Cluster::start(&[(&node.ns, node.addr4.as_str())], &dir, true).unwrap();
    let pki = cluster.pki.as_ref().unwrap();
    let stranger = etcd::Pki::new(&dir.join("stranger"), "someone else's CA").unwrap();
    let mysql = "track = [\"db\"]\n[instance.mysql]\nserver = \"db\"\n\n[[tracker]]\nname = \"db\"\nkind = \"mysql\"\nsocket = \"/nonexistent/mysqld.sock\"\nweight = -100\n";
    let check = |witness: &str| {
        let config = dir.join(unique("xvrrpd") + ".toml");
        std::fs::write(
            &config,
            format!(
                "{}{mysql}{witness}",
                router_toml("w", 41, 150, 3, "10ms", "192.0.2.100/24")
            ),
        )
        .unwrap();
        xvrrpd_tests::xvrrpd_check(Some(&node.ns), &config)
    };
    let endpoint = format!("witness {}:2379", node.addr4);

    // As the lab's agents are configured: the key is read.
    let (_, out) = check(&cluster.witness_toml("db1").unwrap());
    assert!(
        out.contains(&format!("{endpoint}: /xvrrpd/lab/w/write never taken yet")),
        "{out}"
    );
    assert!(
        !out.contains("witness: ERROR") && !out.contains(": ERROR: TLS"),
        "{out}"
    );

    // Plain HTTP to a TLS member: no answer it can read.
    let plain = format!(
        "\n[witness]\netcd = [\"{}:2379\"]\nprefix = \"/xvrrpd/lab\"\n",
        node.addr4
    );
    let (code, out) = check(&plain);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("{endpoint}: ERROR")), "{out}");

    // Another CA: the members' certificates are refused by name.
    let (cert, key) = pki.issue("db1b", "xvrrpd db1", None).unwrap();
    let tls = |ca: &std::path::Path, client: Option<(&std::path::Path, &std::path::Path)>| {
        let mut s = format!("{plain}\n[witness.tls]\nca = \"{}\"\n", ca.display());
        if let Some((c, k)) = client {
            s += &format!("cert = \"{}\"\nkey = \"{}\"\n", c.display(), k.display());
        }
        s
    };
    let (code, out) = check(&tls(&stranger.ca(), Some((&cert, &key))));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "{endpoint}: ERROR: TLS: invalid peer certificate: UnknownIssuer"
        )),
        "{out}"
    );

    // No client certificate, or one from a stranger's CA: etcd refuses the node.
    for client in [
        None,
        Some(stranger.issue("db1", "xvrrpd db1", None).unwrap()),
    ] {
        let client = client.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
        let (code, out) = check(&tls(&pki.ca(), client));
        assert_eq!(code, Some(1), "{out}");
        assert!(
            out.contains(&format!(
                "{endpoint}: ERROR: connection error: received fatal alert"
            )),
            "{out}"
        );
        assert!(!out.contains("never taken yet"), "{out}");
    }

    // A client key that is not the certificate's: refused before any connection.
    let (_, other_key) = pki.issue("db2", "xvrrpd db2", None).unwrap();
    let (code, out) = check(&tls(&pki.ca(), Some((&cert, &other_key))));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("witness: ERROR: witness.tls.key"), "{out}");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
