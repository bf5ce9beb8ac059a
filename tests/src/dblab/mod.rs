//! The MySQL dual-master lab: two MariaDB servers replicating from each other (GTID,
//! semi-sync, auto-increment offsets, read_only by default), a failover agent on each
//! node holding a write VIP and a read VIP, and a client that writes one row per commit
//! through the write VIP and reads through the read VIP. A fault hits the write master
//! midway; the lab measures what the client saw and what the data says afterwards.
//!
//! Used by `cargo xtask lab`, `cargo xtask bench mysql` and the integration tests, so the
//! numbers in BENCHMARKS.md and the assertions in the tests come from the same scenario.
use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::{bail, Context, Result};
use mysql_async::{prelude::Queryable, Conn, OptsBuilder};

use crate::{
    has_addr, ip_in, unique, wait_until, Db, DbFlavor, Keepalived, Netns, Router, Segment,
};

mod clients;
mod conf;
mod faults;
mod judge;
mod options;
mod report;

use xvrrpd_core::events::Record;

use clients::*;
use conf::*;
use faults::*;
use judge::*;
pub use options::*;
pub use report::*;

pub const WRITE_VIP: &str = "192.0.2.100";
pub const READ_VIP: &str = "192.0.2.101";

/// What a server holds of the workload's data.
#[derive(Clone, Debug, PartialEq)]
enum Held {
    Rows(BTreeSet<i64>),
    Accounts(crate::bank::Balances),
}

fn held(db: &Db, w: Workload) -> Result<Held> {
    Ok(match w {
        Workload::Insert => Held::Rows(rows(db)?),
        Workload::Bank => Held::Accounts(crate::bank::balances(db)?),
    })
}

/// CLOCK_MONOTONIC in ns: the clock of the agents' event streams and of the kernel.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

type Timeline = Arc<Mutex<Vec<(u64, String)>>>;

fn note(t: &Timeline, verbose: bool, what: String) {
    let now = mono_ns();
    if verbose {
        println!("  {what}");
    }
    t.lock().expect("timeline").push((now, what));
}

/// One database node: namespace, server, agent.
struct DbNode<'a> {
    name: &'static str,
    ns: &'a Netns,
    addr: String,
    port: String,
    db: Db,
    agent: Option<Agent>,
    agent_conf: String,
    events: PathBuf,
    /// CPU and disk hogs sharing a core with this node's agent (starvation faults).
    hogs: Option<crate::chaos::Hogs>,
}

enum Agent {
    X(Router),
    K(Keepalived),
}

impl DbNode<'_> {
    fn start_agent(&mut self, setup: Setup) -> Result<()> {
        // An xvrrpd restarted after a kill keeps its directory (state files, socket), as
        // under systemd.
        if let Some(Agent::X(r)) = self.agent.as_mut() {
            return r.restart(self.ns);
        }
        self.agent = Some(match setup {
            Setup::Xvrrpd => Agent::X(Router::start_with_tools(
                self.ns,
                &self.agent_conf,
                self.db.flavor.agent_tools()?,
            )?),
            Setup::Classic => Agent::K(Keepalived::start_text(self.ns, &self.agent_conf)?),
        });
        Ok(())
    }
    fn kill_agent(&mut self) {
        match self.agent.as_mut() {
            Some(Agent::X(r)) => r.kill(),
            Some(Agent::K(k)) => k.kill(),
            None => {}
        }
    }
    /// Stops or resumes the agent (SIGSTOP / SIGCONT).
    fn signal_agent(&self, sig: i32) -> Result<()> {
        let pid = self.agent_pgid().context("no agent")?;
        // SAFETY: kill(2) on a pid this lab started.
        if unsafe { libc::kill(pid, sig) } != 0 {
            bail!("kill({pid}, {sig}): {}", std::io::Error::last_os_error());
        }
        Ok(())
    }
    /// The agent's process group (its pid).
    fn agent_pgid(&self) -> Option<i32> {
        match &self.agent {
            Some(Agent::X(r)) => Some(r.proc.pid()),
            Some(Agent::K(k)) => Some(k.proc.pid()),
            None => None,
        }
    }
    /// What a reboot empties: `/run` (the control socket, the maintenance marker).
    fn empty_run(&self) {
        if let Some(Agent::X(r)) = &self.agent {
            r.empty_run();
        }
    }

    fn agent_log(&self) -> String {
        match &self.agent {
            Some(Agent::X(r)) => r.log(),
            Some(Agent::K(k)) => k.log(),
            None => String::new(),
        }
    }
}

/// Runs one lab scenario end to end. Everything it starts is torn down on return.
pub fn run(opts: &LabOptions, stop: &AtomicBool) -> Result<LabReport> {
    let timeline: Timeline = Arc::default();
    let v = opts.verbose;
    if opts.fault.needs_witness() && !opts.witness {
        bail!(
            "fault {} is a fault of the witness: add --witness",
            opts.fault.name()
        );
    }
    if opts.witness && opts.setup != Setup::Xvrrpd {
        bail!("--witness is xvrrpd's: the classic setup has none");
    }
    let seg = Segment::new(3 + usize::from(opts.witness) + usize::from(opts.stale_client))?;
    let client = &seg.nodes[2];
    // After the witness, when there is one.
    let stale = opts.stale_client.then(|| seg.nodes.last().expect("nodes"));
    let dir = std::env::temp_dir().join(unique("xvl"));
    std::fs::create_dir_all(&dir)?;
    let _cleanup = RemoveDir(dir.clone());
    // Dropped before the directory goes (declared after it).
    let mut etcd = if opts.witness {
        note(
            &timeline,
            v,
            "starting etcd on db1, db2 and witness (the write key's three members)".into(),
        );
        let members: Vec<(&crate::Netns, &str)> = [0, 1, 3]
            .iter()
            .map(|&i| (&seg.nodes[i].ns, seg.nodes[i].addr4.as_str()))
            .collect();
        Some(crate::etcd::Cluster::start(
            &members,
            &dir,
            opts.witness_tls,
        )?)
    } else {
        None
    };

    note(
        &timeline,
        v,
        format!(
            "starting {} on db1 and db2 (dual-master, GTID)",
            opts.flavor.product()
        ),
    );
    let mut nodes = Vec::new();
    for (i, name) in ["db1", "db2"].into_iter().enumerate() {
        let n = &seg.nodes[i];
        let id = i as u32 + 1;
        let args = opts.flavor.pair_args(id, opts.setup == Setup::Xvrrpd);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let db = Db::start_with(&n.ns, opts.flavor, &args)?;
        let events = dir.join(format!("{name}.events"));
        std::fs::write(&events, "")?;
        let (pw, pr) = if i == 0 { (150, 100) } else { (100, 150) };
        let agent_conf = match opts.setup {
            Setup::Xvrrpd => xvrrpd_conf(
                opts,
                &dir,
                &db.socket,
                (pw, pr),
                &events,
                &match &etcd {
                    Some(c) => c.witness_toml(name)?,
                    None => String::new(),
                },
            )?,
            Setup::Classic => keepalived_conf(opts, name, &n.addr4, pw, pr),
        };
        nodes.push(DbNode {
            name,
            ns: &n.ns,
            addr: n.addr4.clone(),
            port: n.port.clone(),
            db,
            agent: None,
            agent_conf,
            events,
            hogs: None,
        });
    }
    for n in &nodes {
        // The agent's account as the docs give it (the classic pair's check uses it too).
        let conf = (opts.setup == Setup::Xvrrpd).then(|| dir.join(format!("{}.toml", n.name)));
        if let Some(c) = &conf {
            std::fs::write(c, &n.agent_conf)?;
        }
        n.db.create_agent_account(conf.as_deref())
            .with_context(|| format!("the agent's account on {}", n.name))?;
        n.db.setup_sql(&format!(
            "{} {}",
            DbFlavor::REPLICATION_ACCOUNT,
            DbFlavor::CLIENT_ACCOUNT
        ))
        .with_context(|| format!("the lab's accounts on {}", n.name))?;
    }
    // Both servers have the replication account before either connects to the other.
    for (i, n) in nodes.iter().enumerate() {
        n.db.setup_sql(&opts.flavor.replicate_from(&nodes[1 - i].addr))
            .with_context(|| format!("setting up replication on {}", n.name))?;
    }
    nodes[0].db.setup_sql(
        "CREATE DATABASE lab;
         CREATE TABLE lab.w (id BIGINT AUTO_INCREMENT PRIMARY KEY, seq BIGINT NOT NULL UNIQUE,
           server_id INT NOT NULL) ENGINE=InnoDB;",
    )?;
    if opts.workload == Workload::Bank {
        nodes[0].db.setup_sql(crate::bank::SCHEMA)?;
    }
    let table = match opts.workload {
        Workload::Insert => "SELECT COUNT(*) >= 0 FROM lab.w",
        Workload::Bank => "SELECT COUNT(*) >= 1000 FROM lab.acct",
    };
    if !wait_until(Duration::from_secs(20), || {
        nodes[1].db.sql(table).is_ok_and(|s| s.trim() == "1")
    }) {
        bail!(
            "the schema never replicated to db2: {}",
            nodes[1]
                .db
                .sql("SHOW REPLICA STATUS\\G")
                .unwrap_or_default()
        );
    }

    if let Some(privilege) = opts.revoke_on_db2 {
        nodes[1].db.setup_sql(&format!(
            "SET sql_log_bin = 0; REVOKE {privilege} ON *.* FROM xvrrpd@'%', xvrrpd@'localhost'"
        ))?;
        note(
            &timeline,
            v,
            format!("db2's agent account lacks {privilege} (revoked)"),
        );
    }
    note(&timeline, v, format!("starting {} on both nodes (write VIP {WRITE_VIP} prefers db1, read VIP {READ_VIP} prefers db2)", match opts.setup { Setup::Xvrrpd => "xvrrpd", Setup::Classic => "keepalived (classic port check)" }));
    nodes[0].start_agent(opts.setup)?;
    if opts.setup == Setup::Xvrrpd {
        // db1 first, healthy (its MySQL check starts failing until `rise` passes), so the
        // pair starts the way a running pair looks: write master db1.
        let healthy = wait_until(Duration::from_secs(15), || {
            matches!(&nodes[0].agent, Some(Agent::X(r)) if r.status().is_ok_and(|s| {
                s["trackers"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t["kind"] == "mysql" && t["healthy"] == true))
            }))
        });
        if !healthy {
            bail!("db1's MySQL check never passed:\n{}", nodes[0].agent_log());
        }
    }
    nodes[1].start_agent(opts.setup)?;
    let converged = wait_until(Duration::from_secs(30), || {
        has_addr(nodes[0].ns, WRITE_VIP)
            && !has_addr(nodes[1].ns, WRITE_VIP)
            && has_addr(nodes[1].ns, READ_VIP)
            && (opts.setup == Setup::Classic
                || nodes[0]
                    .db
                    .sql("SELECT @@read_only")
                    .is_ok_and(|s| s.trim() == "0"))
    });
    if !converged {
        bail!(
            "the pair did not converge (write VIP on db1, writable; read VIP on db2)\ndb1:\n{}\ndb2:\n{}",
            nodes[0].agent_log(),
            nodes[1].agent_log()
        );
    }
    note(
        &timeline,
        v,
        "write VIP on db1 (writable), read VIP on db2".into(),
    );

    // Load generators and the dual-writable monitor.
    let done = Arc::new(AtomicBool::new(false));
    let writes: Arc<Mutex<Vec<Write>>> = Arc::default();
    let reads: Arc<Mutex<Vec<u64>>> = Arc::default();
    let samples: Arc<Mutex<Vec<(u64, bool)>>> = Arc::default();
    let ops: Arc<Mutex<Vec<crate::bank::Op>>> = Arc::default();
    let writer = spawn_in_ns(&client.ns.name, {
        let (done, writes, t, ops) = (done.clone(), writes.clone(), timeline.clone(), ops.clone());
        let (workload, client) = (opts.workload, opts.client);
        move || match (workload, client) {
            (Workload::Insert, Client::Builtin) => writer(done, writes, t, v),
            (Workload::Insert, Client::Pymysql) => pymysql_writer(done, writes, t, v),
            (Workload::Insert, Client::MariadbCli) => cli_writer(done, writes, t, v),
            (Workload::Bank, _) => bank_writer(done, writes, ops, t, v),
        }
    });
    let reader = spawn_in_ns(&client.ns.name, {
        let (done, reads) = (done.clone(), reads.clone());
        move || reader(done, reads)
    });
    let stale_writer = match stale {
        Some(sc) => {
            let mac = crate::mac_of(&seg.nodes[0].ns, "eth0")?;
            crate::pin_neighbour(&sc.ns, WRITE_VIP, &mac)?;
            let (done, writes) = (done.clone(), writes.clone());
            Some(spawn_in_ns(&sc.ns.name, move || stale_writer(done, writes)))
        }
        None => None,
    };
    let prober = opts.connect_prober.then(|| {
        let done = done.clone();
        spawn_in_ns_with(&client.ns.name, move || probe_connects(&done))
    });
    let monitor = {
        let (done, samples) = (done.clone(), samples.clone());
        let socks = [nodes[0].db.socket.clone(), nodes[1].db.socket.clone()];
        std::thread::spawn(move || monitor(done, samples, socks))
    };
    let vip_sampler = crate::chaos::VipSampler::start(
        &[&nodes[0].ns.name, &nodes[1].ns.name],
        WRITE_VIP.parse().expect("VIP"),
    );
    let mut recovered_ns = 0;
    let mut applier_lock: Option<std::process::Child> = None;
    let mut greeting_rx = None;
    let mut switchover_refused = None;
    let applier_lock = &mut applier_lock;
    let (mut old_master_replicated, mut given_back_ms) = (None, None);
    let (mut behind_said, mut preempted_while_behind) = (None, false);
    let result = (|| -> Result<(u64, Held)> {
        pause(opts.steady, stop)?;
        if let Some(delay) = opts.survivor_applier_delay {
            nodes[1]
                .db
                .sql(&opts.flavor.applier_delay(delay.as_secs()))?;
            note(
                &timeline,
                v,
                format!(
                    "db2's applier kept {} s behind (MASTER_DELAY): its relay log fills",
                    delay.as_secs()
                ),
            );
            // The delay holds back what arrives from now on: full once it has passed.
            pause(delay, stop)?;
        }
        if opts.stop_survivor_replication {
            *applier_lock = Some(stop_by_hand(&nodes[1].db, opts, stop)?);
            note(
                &timeline,
                v,
                format!(
                    "db2's replication stopped by hand, {} read-locked: it falls behind db1",
                    opts.workload.table()
                ),
            );
            pause(Duration::from_millis(500), stop)?;
        }
        let fault_ns = mono_ns();
        if std::env::var_os("XVRRPD_LAB_DEBUG").is_some() {
            eprintln!("fault at {} ms", fault_ns / 1_000_000);
        }
        note(&timeline, v, format!("FAULT {} on db1", opts.fault.name()));
        if opts.greeting_waiter {
            greeting_rx = Some(wait_for_greeting(&client.ns.name, fault_ns));
        }
        match inject(opts.fault, &seg, &mut nodes, etcd.as_mut()) {
            // Expected of a switchover to a backup that is behind: the judge reads why.
            Err(e) if opts.fault == Fault::Switchover && opts.stop_survivor_replication => {
                note(&timeline, v, format!("SWITCHOVER REFUSED: {e:#}"));
                switchover_refused = Some(format!("{e:#}"));
            }
            r => r?,
        }
        pause(opts.down, stop)?;
        // What the survivor holds while the old master is away: db2's, unless a witness
        // kept db1 serving (db2 never got the write key), then db1's. Told by the server
        // that acknowledged the last write (with a witness only one can), not by who holds
        // the VIP this instant: db1 may be between losing its key and taking it again.
        let last_acked = writes
            .lock()
            .expect("writes")
            .iter()
            .filter(|w| w.server.is_some())
            .max_by_key(|w| w.done_ns)
            .and_then(|w| w.server);
        let kept = opts.witness && last_acked == Some(1);
        let survivor = held(&nodes[usize::from(!kept)].db, opts.workload)?;
        note(
            &timeline,
            v,
            format!("recovering db1 ({})", opts.fault.name()),
        );
        if let Some(mut lock) = applier_lock.take() {
            let _ = lock.kill();
            let _ = lock.wait();
            note(&timeline, v, "db2's read lock released".into());
        }
        recover(opts, &seg, &mut nodes, etcd.as_mut())?;
        recovered_ns = mono_ns();
        note(&timeline, v, "db1 back".into());
        pause(opts.after, stop)?;
        if let Some(how) = opts.give_back {
            let replicated = wait_until(Duration::from_secs(30), || replicates(&nodes[0].db));
            old_master_replicated = Some(replicated);
            // And its write instance back in the election (a server rebuilt by CLONE
            // restarted: its MySQL check passes again `rise` checks later). A switchover
            // asked before that finds no backup to hand over to.
            if replicated && how == GiveBack::Switchover {
                let ready = wait_until(Duration::from_secs(30), || {
                    matches!(&nodes[0].agent, Some(Agent::X(r)) if r.status().is_ok_and(|s| {
                        s["instances"].as_array().is_some_and(|a| {
                            a.iter().any(|i| i["name"] == "write" && i["state"] == "BACKUP")
                        })
                    }))
                });
                if !ready {
                    bail!(
                        "db1 replicates but its write instance never became BACKUP:\n{}",
                        nodes[0].agent_log()
                    );
                }
            }
            if !replicated {
                bail!(
                    "db1 never replicated again after {}: {:?}",
                    opts.fault.name(),
                    nodes[0].db.replica_status()
                );
            }
            if opts.old_master_behind {
                let (said, preempted) = behind_old_master(opts, &nodes, fault_ns, &timeline, stop)?;
                behind_said = Some(said);
                preempted_while_behind = preempted;
            }
            note(
                &timeline,
                v,
                format!(
                    "db1 replicates again (IO and SQL threads running): {} back to it",
                    how.name()
                ),
            );
            if how == GiveBack::Switchover {
                match &nodes[1].agent {
                    Some(Agent::X(r)) => {
                        let (ok, _, err) = r.ctl(&["switchover", "write", "--timeout", "20s"]);
                        if !ok {
                            bail!(
                                "xvrrpd switchover write on db2: {err}\ndb1:\n{}\ndb2:\n{}",
                                nodes[0].agent_log(),
                                nodes[1].agent_log()
                            );
                        }
                    }
                    _ => bail!("give-back is an xvrrpd command: run it with the xvrrpd setup"),
                }
            }
            let back = wait_until(Duration::from_secs(40), || {
                has_addr(nodes[0].ns, WRITE_VIP)
                    && nodes[0]
                        .db
                        .sql("SELECT @@read_only")
                        .is_ok_and(|s| s.trim() == "0")
            });
            if !back {
                bail!("the write role never went back to db1 ({})", how.name());
            }
            given_back_ms = Some((mono_ns() - recovered_ns) as f64 / 1e6);
            note(&timeline, v, "write VIP back on db1 (writable)".into());
            pause(opts.after, stop)?;
        }
        Ok((fault_ns, survivor))
    })();
    let end_ns = mono_ns();
    done.store(true, Ordering::SeqCst);
    let _ = writer.join();
    let _ = reader.join();
    let _ = monitor.join();
    let connects = prober.and_then(|p| p.join().ok()).unwrap_or_default();
    if let Some(s) = stale_writer {
        let _ = s.join();
    }
    let vip = vip_sampler.stop();
    let (fault_ns, survivor) = result?;

    // Let replication settle, then look at the data.
    let converged = wait_until(
        Duration::from_secs(15),
        || matches!((held(&nodes[0].db, opts.workload), held(&nodes[1].db, opts.workload)), (Ok(a), Ok(b)) if a == b),
    );
    let mut report = LabReport {
        converged,
        fault_ns,
        recovered_ns,
        old_master_replicated,
        behind_said,
        preempted_while_behind,
        given_back_ms,
        write_vip: crate::chaos::vip_stats(&vip[0], &vip[1], fault_ns, end_ns),
        write_vip_after: crate::chaos::vip_stats(
            &vip[0],
            &vip[1],
            recovered_ns + 2_000_000_000,
            end_ns,
        ),
        ..Default::default()
    };
    report.greeting_wait = greeting_rx.and_then(|rx| rx.recv_timeout(GREETING_WAIT).ok());
    report.connects = connects
        .into_iter()
        .filter(|(at, _, _)| (fault_ns..recovered_ns.max(fault_ns)).contains(at))
        .map(|(at, took, how)| ((at - fault_ns) as f64 / 1e6, took, how))
        .collect();
    let holders: Vec<&DbNode> = nodes.iter().filter(|n| has_addr(n.ns, WRITE_VIP)).collect();
    report.final_owners = holders.len();
    // The client's cache must name the holder: ping through the VIP once, then look.
    let _ = client
        .ns
        .command("ping")
        .args(["-c1", "-W1", WRITE_VIP])
        .output();
    report.client_arp_ok = match holders.as_slice() {
        [h] => crate::mac_of(h.ns, "eth0")
            .ok()
            .zip(crate::neigh_mac(&client.ns, WRITE_VIP))
            .is_some_and(|(m, n)| m.eq_ignore_ascii_case(&n)),
        _ => false,
    };
    // Which node's guard last called its server divergent (errant GTIDs), from the events.
    for (i, n) in nodes.iter().enumerate() {
        for line in std::fs::read_to_string(&n.events)
            .unwrap_or_default()
            .lines()
        {
            match serde_json::from_str::<Record>(line) {
                Ok(Record::Divergent { errant, .. }) => report.divergent[i] = errant,
                Ok(Record::CaughtUp { .. } | Record::ErrantUndone { .. }) => {
                    report.divergent[i].clear()
                }
                Ok(Record::LeaseAcquired { fencing_term, .. }) => {
                    report.fencing_term = report.fencing_term.max(Some(fencing_term));
                }
                _ => {}
            }
        }
    }
    let writes = writes.lock().expect("writes").clone();
    report.writes = writes.iter().map(|w| (w.done_ns, w.server)).collect();
    let acked: Vec<&Write> = writes.iter().filter(|w| w.server.is_some()).collect();
    report.acked = acked.len();
    let finals = [
        rows(&nodes[0].db).unwrap_or_default(),
        rows(&nodes[1].db).unwrap_or_default(),
    ];
    report.acked_lost_final = acked
        .iter()
        .filter(|w| {
            !finals
                .iter()
                .enumerate()
                .all(|(i, f)| !report.divergent[i].is_empty() || f.contains(&w.seq))
        })
        .count();
    report.failed_writes = writes.len() - acked.len();
    report.in_doubt = writes
        .iter()
        .filter(|w| w.server.is_none() && finals.iter().any(|f| f.contains(&w.seq)))
        .count();
    // Rows acknowledged before the survivor snapshot: every one must be on the survivor.
    let snapshot_cut = fault_ns + opts.down.as_nanos() as u64;
    report.acked_missing = acked
        .iter()
        .filter(|w| {
            w.done_ns < snapshot_cut && matches!(&survivor, Held::Rows(r) if !r.contains(&w.seq))
        })
        .count();
    let snapshots = [
        held(&nodes[0].db, opts.workload).ok(),
        held(&nodes[1].db, opts.workload).ok(),
    ];
    let ops = ops.lock().expect("ops").clone();
    judge_data(&mut report, &ops, &snapshots, &survivor, snapshot_cut);
    // db2 writable: from its first acknowledged write after the fault.
    let db2_serving = acked
        .iter()
        .filter(|w| w.done_ns > fault_ns && w.server == Some(2))
        .map(|w| w.done_ns)
        .min();
    report.stale_client = opts.stale_client;
    report.stale_acked = acked
        .iter()
        .filter(|w| w.seq >= STALE_SEQ && w.server == Some(1))
        .filter(|w| db2_serving.is_some_and(|t| w.done_ns > t))
        .map(|w| (w.done_ns - fault_ns) as f64 / 1e6)
        .collect();
    report.resumed = acked
        .iter()
        .find(|w| w.done_ns > fault_ns && w.server != Some(1))
        .map(|w| ((w.done_ns - fault_ns) as f64 / 1e6, w.server.unwrap_or(0)));
    report.outage_ms = longest_gap(acked.iter().map(|w| w.done_ns), fault_ns, end_ns);
    report.read_outage_ms = longest_gap(
        reads.lock().expect("reads").iter().copied(),
        fault_ns,
        end_ns,
    );
    report.dual_writable_ms = dual_writable_ms(&samples.lock().expect("samples"));
    for (i, n) in nodes.iter().enumerate() {
        // xvrrpd's master replicates from nobody, and neither does a divergent server:
        // only an applier error counts there.
        let serving_or_quarantined = has_addr(n.ns, WRITE_VIP) || !report.divergent[i].is_empty();
        let should_replicate = opts.setup == Setup::Classic || !serving_or_quarantined;
        let errors = replication_errors(&n.db, should_replicate).unwrap_or(1);
        if errors > 0 && std::env::var_os("XVRRPD_LAB_DEBUG").is_some() {
            eprintln!("{}: {:?}", n.name, n.db.replica_status());
        }
        report.replication_errors += errors;
    }
    if std::env::var_os("XVRRPD_LAB_DEBUG").is_some() {
        for n in &nodes {
            eprintln!("--- {} agent log ---\n{}", n.name, n.agent_log());
        }
    }
    report.old_master_read_only = nodes[0]
        .db
        .sql("SELECT @@read_only")
        .ok()
        .map(|s| s.trim() == "1");
    for (i, n) in nodes.iter().enumerate() {
        report.gtid_states[i] =
            n.db.sql(opts.flavor.executed())
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|e| format!("unreadable: {e:#}"));
    }
    if opts.setup == Setup::Xvrrpd {
        for (i, n) in nodes.iter().enumerate() {
            report.term_rows[i] =
                n.db.sql("SELECT MAX(term) FROM xvrrpd.promotion WHERE instance = 'write'")
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
        }
    }
    let mut writables = Vec::new();
    let mut t = timeline.lock().expect("timeline").clone();
    for n in &nodes {
        for line in std::fs::read_to_string(&n.events)
            .unwrap_or_default()
            .lines()
        {
            let Ok(e) = serde_json::from_str::<Record>(line) else {
                continue;
            };
            let ts = e.ts_ns().unwrap_or(0);
            let after_ms = (ts as f64 - fault_ns as f64) / 1e6;
            match &e {
                Record::Transition {
                    instance,
                    from,
                    to,
                    reason,
                    ..
                } => {
                    if ts > fault_ns && n.name == "db1" && instance == "write" && to == "MASTER" {
                        report.failbacks.push((after_ms, reason.clone()));
                    }
                    report.transitions.push(TransitionSeen {
                        ts_ns: ts,
                        node: n.name,
                        instance: instance.clone(),
                        from: from.clone(),
                        to: to.clone(),
                        reason: reason.clone(),
                    });
                }
                Record::Writable {
                    instance,
                    write_term,
                    ..
                } if instance == "write" => writables.push((ts, *write_term)),
                Record::ReadOnly {
                    fence_ms,
                    killed,
                    in_doubt,
                    ..
                } if ts > fault_ns => report.fences.push(FenceSeen {
                    node: n.name,
                    at_ms: after_ms,
                    fence_ms: *fence_ms,
                    killed: *killed as u64,
                    in_doubt: *in_doubt as u64,
                }),
                _ => {}
            }
            let told = format!("{} xvrrpd {}", n.name, describe(&e, line));
            t.push((ts, told.clone()));
            report.events.push(Seen {
                node: n.name,
                record: e,
                told,
            });
        }
    }
    t.sort_by_key(|(ts, _)| *ts);
    report.timeline = t;
    report.events.sort_by_key(|s| s.record.ts_ns());
    report.switchover_refused = switchover_refused;
    writables.sort_by_key(|(ts, _)| *ts);
    report.write_terms = writables.into_iter().map(|(_, term)| term).collect();
    report.transitions.sort_by_key(|t| t.ts_ns);
    Ok(report)
}

/// A client connection: like an application with a short connect timeout, so a SYN lost
/// in the instant the VIP moves costs 50 ms, not TCP's 1 s retransmission.
pub(crate) async fn connect(ip: &str) -> Result<Conn, mysql_async::Error> {
    match tokio::time::timeout(Duration::from_millis(50), Conn::new(client_opts(ip))).await {
        Ok(r) => r,
        Err(_) => Err(mysql_async::Error::Io(mysql_async::IoError::Io(
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out after 50 ms",
            ),
        ))),
    }
}

/// A bounded client step: a dead host must not stall the client for a TCP timeout.
pub(crate) async fn bounded<T>(
    f: impl std::future::Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(Duration::from_millis(250), f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("no answer within 250 ms".into()),
    }
}

/// Samples both servers' read_only through their sockets every 2 ms.
fn monitor(done: Arc<AtomicBool>, samples: Arc<Mutex<Vec<(u64, bool)>>>, socks: [PathBuf; 2]) {
    runtime().block_on(async move {
        let mut conns: [Option<Conn>; 2] = [None, None];
        while !done.load(Ordering::SeqCst) {
            let mut writable = [false; 2];
            for i in 0..2 {
                if conns[i].is_none() {
                    let o = OptsBuilder::default()
                        .socket(Some(socks[i].to_string_lossy().into_owned()))
                        .user(Some("root"));
                    conns[i] = bounded(Conn::new(o)).await.ok();
                }
                if let Some(c) = conns[i].as_mut() {
                    match bounded(c.query_first::<u8, _>("SELECT @@global.read_only")).await {
                        Ok(ro) => writable[i] = ro == Some(0),
                        Err(_) => conns[i] = None,
                    }
                }
            }
            samples
                .lock()
                .expect("samples")
                .push((mono_ns(), writable[0] && writable[1]));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
}

/// Runs `f` on a thread inside network namespace `ns` (its sockets live there).
pub fn spawn_in_ns(ns: &str, f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    spawn_in_ns_with(ns, f)
}

/// As [`spawn_in_ns`], for a thread that returns something.
pub fn spawn_in_ns_with<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("netns file");
        use std::os::fd::AsRawFd;
        // SAFETY: a valid namespace fd; only this thread changes namespace.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            panic!("setns {path}: {}", std::io::Error::last_os_error());
        }
        f()
    })
}

fn pause(d: Duration, stop: &AtomicBool) -> Result<()> {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        if stop.load(Ordering::SeqCst) {
            bail!("interrupted: cleaning up");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

struct RemoveDir(PathBuf);
impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mariadb_prompt_is_read_as_rows_and_errors() {
        let row = |l| match cli_line(l) {
            Some(CliLine::Ok(s, id)) => Some((s, id)),
            _ => None,
        };
        let err = |l| match cli_line(l) {
            Some(CliLine::Err(m)) => Some(m),
            _ => None,
        };
        assert_eq!(row("|   2 |         1 |\r"), Some((2, 1)));
        assert_eq!(row("\u{1b}(B\u{1b}[m| 642 | 2 |"), Some((642, 2)));
        assert_eq!(row("| seq | server_id |"), None, "the header");
        assert_eq!(row("+-----+-----------+"), None);
        assert_eq!(
            row("MariaDB [lab]> INSERT INTO w (seq, server_id) VALUES (1, @@server_id) RETURNING seq, server_id;"),
            None,
            "the echo"
        );
        assert_eq!(
            err("\u{7}\u{1b}[0;7mERROR 2013 (HY000): Lost connection to server during query\r"),
            Some("Lost connection to server during query".into())
        );
        assert_eq!(err("No connection. Trying to reconnect..."), None);
    }
}
