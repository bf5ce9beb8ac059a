//! `cargo xtask observe-lab`: the observer demo. A keepalived pair on a bridged segment in
//! namespaces, `xvrrpd observe` on a third node, the master SIGKILLed midway. Prints the
//! events as they come and a short report. Cleans up on success, failure or Ctrl-C.
use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use xvrrpd_tests::{
    master_down_us, new_master, Keepalived, KeepalivedConf, Observed, Observer, Segment,
};

use crate::{require_root, INTERRUPTED};

#[derive(clap::Args)]
pub struct ObserveLabArgs {
    /// Advert interval in milliseconds (multiple of 10; VRRPv3).
    #[arg(long, default_value_t = 100)]
    pub interval_ms: u64,
    /// Seconds of steady state before the master is killed.
    #[arg(long, default_value_t = 3)]
    pub steady_s: u64,
}

/// Sleeps in small steps so Ctrl-C ends the lab promptly (and cleanup runs).
fn pause(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted: cleaning up");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

pub fn run(args: ObserveLabArgs) -> Result<()> {
    require_root("cargo xtask observe-lab")?;
    if args.interval_ms < 10 || !args.interval_ms.is_multiple_of(10) || args.interval_ms > 40_950 {
        bail!("--interval-ms must be a multiple of 10 between 10 and 40950");
    }
    crate::catch_interrupts();
    crate::ebpf::build()?;
    crate::test::build_agent()?;

    let advert_int = args.interval_ms as f64 / 1000.0;
    println!(
        "== lab: db1 and db2 run keepalived (VRRPv3, VRID 41, {} ms), obs runs xvrrpd observe",
        args.interval_ms
    );
    // Everything below is dropped (namespaces deleted, processes killed) on any exit.
    let seg = Segment::new(3)?;
    let (db1, db2, obs_node) = (&seg.nodes[0], &seg.nodes[1], &seg.nodes[2]);
    let mut obs = Observer::start(&obs_node.ns, "eth0", &["--vrid", "41"])?;
    let conf = |prio: u8, master: bool| KeepalivedConf {
        version: 3,
        vrid: 41,
        priority: prio,
        advert_int,
        vip: "192.0.2.100/24".into(),
        state_master: master,
        unicast_peers: vec![],
        old_unicast_checksum: false,
        script: None,
    };
    let mut k1 = Keepalived::start(&db1.ns, "eth0", &conf(150, true))?;
    let _k2 = Keepalived::start(&db2.ns, "eth0", &conf(100, false))?;
    let t0 = Instant::now();
    let stamp = |t: Instant| format!("{:>9.3} s", t.duration_since(t0).as_secs_f64());
    let show = |o: &Observed| {
        let extra = match o {
            Observed::Missed {
                count,
                since_last_us,
                ..
            } => format!(" count={count} since_last={since_last_us}us"),
            Observed::MasterDown { since_last_us, .. } => format!(" since_last={since_last_us}us"),
            _ => String::new(),
        };
        let kind = o.kind();
        if let Some(h) = o.heard() {
            println!(
                "{} {kind:<15} vrid {} src {} prio {} interval {}cs checksum {}{extra}",
                stamp(Instant::now()),
                h.vrid,
                h.src,
                h.priority,
                h.interval_cs,
                h.checksum,
            );
        }
    };
    let first = obs
        .wait_for(Duration::from_secs(15), |o| {
            new_master(o, 41) && o.heard().is_some_and(|h| h.src == db1.addr4)
        })
        .ok_or_else(|| anyhow::anyhow!("db1 never became master; keepalived log:\n{}", k1.log()))?;
    show(&first);
    pause(Duration::from_secs(args.steady_s))?;

    println!(
        "{} SIGKILL keepalived on db1 (no priority-0 advert: a host crash)",
        stamp(Instant::now())
    );
    let killed_at = Instant::now();
    k1.kill();
    let mut down_us = None;
    let mut takeover = None;
    while takeover.is_none() {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted: cleaning up");
        }
        let Some(v) = obs.wait_for(Duration::from_millis(200), |o| {
            o.vrid() == Some(41) && !matches!(o, Observed::Advert { .. })
        }) else {
            if killed_at.elapsed() > Duration::from_secs_f64(advert_int * 10.0 + 5.0) {
                bail!("db2 never took over");
            }
            continue;
        };
        show(&v);
        match &v {
            Observed::MasterDown { since_last_us, .. } => down_us = Some(*since_last_us),
            Observed::NewMaster { heard } if heard.src == db2.addr4 => {
                takeover = Some(killed_at.elapsed());
            }
            _ => {}
        }
    }
    pause(Duration::from_secs(1))?;
    let summary = obs.stop();
    println!("== summary from xvrrpd observe");
    for s in &summary {
        if let Observed::Summary {
            vrid,
            master,
            adverts,
            missed,
            master_down,
            gap_us,
            ..
        } = s
        {
            println!(
                "   vrid {vrid} master {master} adverts {adverts} missed {missed} master_down {master_down} gap_us {gap_us:?}"
            );
        }
    }
    let rfc = master_down_us(args.interval_ms / 10, 100);
    println!("== report");
    if let Some(d) = down_us {
        println!("   master_down seen {d} us after db1's last advert; RFC Master_Down_Interval {rfc:.0} us ({:+.0} us)", d as f64 - rfc);
    }
    if let Some(t) = takeover {
        println!(
            "   db2 (keepalived) advertised as the new master {:.1} ms after the kill",
            t.as_secs_f64() * 1e3
        );
    }
    println!(
        "RESULT master_down_us={} rfc_us={rfc:.0} takeover_ms={:.1}",
        down_us.unwrap_or(0),
        takeover.map_or(0.0, |t| t.as_secs_f64() * 1e3)
    );
    Ok(())
}
