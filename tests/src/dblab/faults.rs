//! What the lab does to the pair: the faults and their recovery, partitions, a node
//! put behind by hand.
use super::*;

pub(super) fn inject(
    fault: Fault,
    seg: &Segment,
    nodes: &mut [DbNode],
    etcd: Option<&mut crate::etcd::Cluster>,
) -> Result<()> {
    let db1 = &mut nodes[0];
    match fault {
        Fault::PartitionMaster => partition_master(seg, true)?,
        Fault::WitnessDown => etcd.context("no witness")?.members[2].kill(),
        Fault::EtcdQuorumLoss => {
            let etcd = etcd.context("no witness")?;
            etcd.members[1].kill();
            etcd.members[2].kill();
        }
        Fault::EtcdLeaderChange => {
            let old = etcd.context("no witness")?.change_leader()?;
            eprintln!("etcd leader {old} killed and restarted");
        }
        Fault::MysqldKill => db1.db.signal(libc::SIGKILL),
        Fault::HostCrash | Fault::Reboot => {
            ip_in(&db1.ns.name, &["link", "set", "eth0", "down"])?;
            db1.kill_agent();
            db1.db.signal(libc::SIGKILL);
        }
        Fault::HostFreeze => {
            crate::chaos::silence(&db1.ns.name)?;
            db1.signal_agent(libc::SIGSTOP)?;
            db1.db.signal(libc::SIGSTOP);
        }
        Fault::HostFreezeAfterHang => {
            db1.db.signal(libc::SIGSTOP);
            std::thread::sleep(Duration::from_millis(100));
            crate::chaos::silence(&db1.ns.name)?;
            db1.signal_agent(libc::SIGSTOP)?;
        }
        Fault::AgentKill => db1.kill_agent(),
        Fault::Partition => isolate(seg, &[&nodes[0].port, &nodes[1].port], true)?,
        Fault::Switchover => match &db1.agent {
            Some(Agent::X(r)) => {
                let (ok, out, err) = r.ctl(&["switchover", "write"]);
                if !ok {
                    bail!("xvrrpd switchover write: {}", err.trim());
                }
                eprintln!("{}", out.trim());
            }
            _ => bail!("switchover is an xvrrpd command: run it with the xvrrpd setup"),
        },
        Fault::Loss(pct) => {
            for n in nodes.iter() {
                crate::chaos::loss(&n.ns.name, pct)?;
            }
        }
        Fault::Delay(ms, jitter) => {
            for n in nodes.iter() {
                crate::chaos::netem(
                    &n.ns.name,
                    &["delay", &format!("{ms}ms"), &format!("{jitter}ms")],
                )?;
            }
        }
        Fault::StarveMaster | Fault::StarveBackup => {
            let n = &mut nodes[if fault == Fault::StarveMaster { 0 } else { 1 }];
            let pgid = n.agent_pgid().context("no agent to starve")?;
            n.hogs = Some(crate::chaos::Hogs::start(4, &n.db.dir)?);
            crate::chaos::pin_group(pgid, crate::chaos::HOG_CPU)?;
        }
        Fault::LinkFlap => {
            for _ in 0..6 {
                ip_in(&db1.ns.name, &["link", "set", "eth0", "down"])?;
                std::thread::sleep(Duration::from_millis(150));
                ip_in(&db1.ns.name, &["link", "set", "eth0", "up"])?;
                std::thread::sleep(Duration::from_millis(350));
            }
        }
        Fault::MysqldStop => db1.db.signal(libc::SIGSTOP),
        Fault::RepeatedCrash => {
            for _ in 0..2 {
                db1.db.signal(libc::SIGKILL);
                std::thread::sleep(Duration::from_millis(700));
                db1.db.restart()?;
                std::thread::sleep(Duration::from_millis(1500));
            }
            nodes[0].db.signal(libc::SIGKILL);
        }
        Fault::BackupAgentKill => nodes[1].kill_agent(),
    }
    Ok(())
}

pub(super) fn recover(
    opts: &LabOptions,
    seg: &Segment,
    nodes: &mut [DbNode],
    etcd: Option<&mut crate::etcd::Cluster>,
) -> Result<()> {
    let (fault, setup) = (opts.fault, opts.setup);
    match fault {
        Fault::PartitionMaster => partition_master(seg, false)?,
        Fault::WitnessDown => etcd.context("no witness")?.members[2].restart()?,
        Fault::EtcdQuorumLoss => {
            let etcd = etcd.context("no witness")?;
            etcd.members[1].restart()?;
            etcd.members[2].restart()?;
        }
        Fault::EtcdLeaderChange => {}
        Fault::MysqldKill => nodes[0].db.restart()?,
        Fault::HostCrash => {
            ip_in(&nodes[0].ns.name, &["link", "set", "eth0", "up"])?;
            nodes[0].db.restart()?;
            nodes[0].start_agent(setup)?;
        }
        Fault::Reboot => {
            ip_in(&nodes[0].ns.name, &["link", "set", "eth0", "up"])?;
            nodes[0].empty_run();
            nodes[0].db.restart()?;
            nodes[0].start_agent(setup)?;
        }
        Fault::HostFreeze | Fault::HostFreezeAfterHang if opts.resume_network_first => {
            crate::chaos::silence_off(&nodes[0].ns.name);
            nodes[0].db.signal(libc::SIGCONT);
            // mysqld gets the CPU first, as it may on a resumed host.
            std::thread::sleep(Duration::from_millis(20));
            nodes[0].signal_agent(libc::SIGCONT)?;
        }
        Fault::HostFreeze | Fault::HostFreezeAfterHang => {
            nodes[0].db.signal(libc::SIGCONT);
            nodes[0].signal_agent(libc::SIGCONT)?;
            crate::chaos::silence_off(&nodes[0].ns.name);
        }
        Fault::AgentKill => nodes[0].start_agent(setup)?,
        Fault::Partition => isolate(seg, &[&nodes[0].port, &nodes[1].port], false)?,
        // Planned: db1 stays a read-only backup until db2 fails.
        Fault::Switchover => {}
        Fault::Loss(_) => {
            for n in nodes.iter() {
                crate::chaos::loss_off(&n.ns.name)?;
            }
        }
        Fault::Delay(..) => {
            for n in nodes.iter() {
                crate::chaos::netem_off(&n.ns.name)?;
            }
        }
        Fault::StarveMaster | Fault::StarveBackup => {
            for n in nodes.iter_mut() {
                n.hogs = None;
                if let Some(pgid) = n.agent_pgid() {
                    crate::chaos::pin_group(pgid, &crate::chaos::all_cpus())?;
                }
            }
        }
        Fault::LinkFlap => {}
        Fault::MysqldStop => {
            // Killed meanwhile by its agent (on_hung = "kill"): started again, as its
            // service manager would (systemd: Restart=on-abort).
            if nodes[0].db.exited() {
                nodes[0].db.restart()?;
            } else {
                nodes[0].db.signal(libc::SIGCONT);
            }
        }
        Fault::RepeatedCrash => nodes[0].db.restart()?,
        Fault::BackupAgentKill => nodes[1].start_agent(setup)?,
    }
    Ok(())
}

/// db1 (node 0) | db2 (1) and the witness (3); the client (2) reaches everyone.
pub(super) fn partition_master(seg: &Segment, on: bool) -> Result<()> {
    let n = |i: usize| seg.nodes.get(i).context("partition-master needs --witness");
    let (db1, db2, w) = (n(0)?, n(1)?, n(3)?);
    if !on {
        crate::chaos::cut_end(&[&db1.ns.name, &db2.ns.name, &w.ns.name]);
        return Ok(());
    }
    crate::chaos::cut(&[
        (&db1.ns.name, vec![db2.addr4.clone(), w.addr4.clone()]),
        (&db2.ns.name, vec![db1.addr4.clone()]),
        (&w.ns.name, vec![db1.addr4.clone()]),
    ])
}

/// Bridge port isolation: isolated ports cannot talk to each other, only to the others.
pub(super) fn isolate(seg: &Segment, ports: &[&str], on: bool) -> Result<()> {
    for p in ports {
        crate::sh(&[
            "bridge",
            "-n",
            &seg.bridge.name,
            "link",
            "set",
            "dev",
            p,
            "isolated",
            if on { "on" } else { "off" },
        ])?;
    }
    Ok(())
}

/// Stops `db`'s replication as a DBA does on a busy replica, and holds its applier back
/// with a read lock on the workload's table (its agent may start replication again: the
/// lock keeps it from catching up all the same). The applier first, then the receiver a
/// moment later: what the receiver got meanwhile sits in the relay log unapplied. Stopped
/// before the lock: STOP SLAVE waits for an applier blocked on it. Kill the returned
/// client to release the lock.
pub(super) fn stop_by_hand(
    db: &Db,
    opts: &LabOptions,
    stop: &AtomicBool,
) -> Result<std::process::Child> {
    db.sql(opts.flavor.stop_applier())?;
    pause(Duration::from_millis(200), stop)?;
    db.sql(opts.flavor.stop_replica())?;
    std::process::Command::new("mariadb")
        .args(["--no-defaults", "-uroot"])
        .arg(format!("--socket={}", db.socket.display()))
        .arg("-e")
        .arg(format!(
            "LOCK TABLES {} READ; SELECT SLEEP(600)",
            opts.workload.table()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("holding a read lock")
}

/// db1, back and replicating, is put behind db2 by hand before it may preempt: its
/// agent must say BEHIND and leave db2 serving past its anti-flap hold; once the lock
/// is released it catches up, and the caller waits for the preemption. (What db1's
/// agent said, whether db1 held the write VIP at any look meanwhile.)
pub(super) fn behind_old_master(
    opts: &LabOptions,
    nodes: &[DbNode],
    fault_ns: u64,
    timeline: &Timeline,
    stop: &AtomicBool,
) -> Result<(String, bool)> {
    let v = opts.verbose;
    let mut lock = stop_by_hand(&nodes[0].db, opts, stop)?;
    note(
        timeline,
        v,
        format!(
            "db1's replication stopped by hand, {} read-locked: it falls behind db2",
            opts.workload.table()
        ),
    );
    let behind = || match &nodes[0].agent {
        Some(Agent::X(r)) => r.status().ok().and_then(|s| {
            s["instances"].as_array().and_then(|a| {
                a.iter()
                    .find(|i| i["name"] == "write")
                    .and_then(|i| i["behind"].as_str().map(str::to_string))
            })
        }),
        _ => None,
    };
    let mut said = None;
    let mut preempted = false;
    // Until 3 s past the anti-flap hold (counted from the fault, a little before db1
    // left mastership), and at least until db1 said so.
    let until = fault_ns + (opts.anti_flap + Duration::from_secs(3)).as_nanos() as u64;
    let give_up = mono_ns() + Duration::from_secs(30).as_nanos() as u64;
    while (mono_ns() < until || said.is_none()) && mono_ns() < give_up {
        if stop.load(Ordering::SeqCst) {
            bail!("stopped");
        }
        preempted |= has_addr(nodes[0].ns, WRITE_VIP);
        if said.is_none() {
            said = behind();
            if let Some(s) = &said {
                note(timeline, v, format!("db1 says BEHIND: {s}"));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = lock.kill();
    let _ = lock.wait();
    note(timeline, v, "db1's read lock released".into());
    let said =
        said.with_context(|| format!("db1 never said it was behind:\n{}", nodes[0].agent_log()))?;
    Ok((said, preempted))
}
