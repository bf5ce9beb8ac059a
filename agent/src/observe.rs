//! `xvrrpd observe`: attach the datapath and print what it sees, one line per event.
use std::{collections::BTreeMap, time::Duration};
use xvrrpd_core::events::{Gaps, Observed};

use anyhow::{bail, Context};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
};
use xvrrpd_common::{DatapathConfig, VridKey, VridParams, FAMILY_V4, FAMILY_V6};

use crate::datapath::{
    event::{DatapathEvent, EventKind},
    ifname, Datapath, VridSnapshot,
};

/// Gaps kept per VRID for the median (a day of 10 ms adverts fits well within this).
const MAX_GAPS: usize = 10_000_000;

#[derive(Debug, Clone)]
pub struct ObserveOptions {
    pub interfaces: Vec<String>,
    /// Watch only these VRIDs (all when empty).
    pub vrids: Vec<u8>,
    /// Local priority assumed for Skew_Time.
    pub priority: u8,
    pub json: bool,
    /// Also print every valid advert.
    pub adverts: bool,
}

pub async fn run(opts: ObserveOptions) -> anyhow::Result<()> {
    if opts.interfaces.is_empty() {
        bail!("give at least one --interface");
    }
    if opts.priority == 0 || opts.priority == 255 {
        bail!(
            "--priority must be 1–254 for a backup (got {})",
            opts.priority
        );
    }
    let mut dp = Datapath::load().context("loading the XDP program")?;
    dp.set_config(DatapathConfig {
        default_priority: opts.priority,
        only_listed: u8::from(!opts.vrids.is_empty()),
        emit_adverts: 1,
        _pad: [0; 5],
    })?;
    let mut indexes = Vec::new();
    for iface in &opts.interfaces {
        let index = crate::datapath::ifindex(iface)
            .with_context(|| format!("interface {iface:?} does not exist (see `ip link`)"))?;
        for &vrid in &opts.vrids {
            for family in [FAMILY_V4, FAMILY_V6] {
                dp.set_params(
                    VridKey::new(index, family, vrid),
                    VridParams::new(opts.priority),
                )?;
            }
        }
        indexes.push(index);
    }
    for iface in &opts.interfaces {
        let mode = dp.attach(iface)?;
        tracing::info!(interface = %iface, %mode, "XDP program attached; watching VRRP");
    }

    // SAFETY: the ring buffer owns its fd and keeps it open and unchanged while registered.
    let mut ring = unsafe { AsyncFd::register(dp.take_events()?) }
        .map_err(|e| anyhow::anyhow!("polling the event ring buffer: {e}"))?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut gaps: BTreeMap<VridKey, Vec<u64>> = BTreeMap::new();
    let names: BTreeMap<u32, String> = indexes.iter().map(|&i| (i, ifname(i))).collect();
    let name = |i: u32| names.get(&i).cloned().unwrap_or_else(|| ifname(i));

    // Routine adverts are queued without waking the reader: read them on a clock too.
    let mut routine = tokio::time::interval(Duration::from_millis(xvrrpd_common::ROUTINE_READ_MS));
    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                // Cleared before reading: an event committed meanwhile wakes us again.
                guard.context("waiting for events")?.clear_ready();
            }
            _ = routine.tick() => {}
            _ = sigint.recv() => { tracing::info!("SIGINT: detaching"); break; }
            _ = sigterm.recv() => { tracing::info!("SIGTERM: detaching"); break; }
        }
        let rb = ring.get_mut();
        while let Some(item) = rb.next() {
            let ev = match DatapathEvent::decode(&item) {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable datapath event");
                    continue;
                }
            };
            if ev.kind == EventKind::Advert {
                let key = VridKey::new(ev.ifindex, ev.family.raw(), ev.vrid);
                let g = gaps.entry(key).or_default();
                if ev.since_last_ns > 0 && g.len() < MAX_GAPS {
                    g.push(ev.since_last_ns);
                }
                if !opts.adverts {
                    continue;
                }
            }
            print_event(&ev, &name(ev.ifindex), opts.json);
        }
    }

    let states = dp.states()?;
    let global = dp.global_stats()?;
    // Detach before printing so the program is gone however the output is consumed.
    drop(ring);
    drop(dp);
    print_summary(&states, &mut gaps, &global, opts.json, &name);
    Ok(())
}

fn print_event(ev: &DatapathEvent, ifname: &str, json: bool) {
    if json {
        println!("{}", ev.to_json(ifname));
    } else {
        println!("{}", ev.to_line(ifname));
    }
}

/// Min, median and max of `v` (sorted in place), None when empty.
pub fn min_median_max(v: &mut [u64]) -> Option<(u64, u64, u64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some((v[0], v[v.len() / 2], v[v.len() - 1]))
}

fn print_summary(
    states: &[VridSnapshot],
    gaps: &mut BTreeMap<VridKey, Vec<u64>>,
    global: &[u64],
    json: bool,
    name: &dyn Fn(u32) -> String,
) {
    for s in states {
        let g = gaps.get_mut(&s.key).and_then(|g| min_median_max(g));
        let invalid: serde_json::Map<String, serde_json::Value> = s
            .invalid_by_reason()
            .into_iter()
            .map(|(r, n)| (r.to_string(), n.into()))
            .collect();
        if json {
            let v = Observed::Summary {
                ifindex: s.key.ifindex,
                interface: name(s.key.ifindex),
                family: s.family.name().into(),
                vrid: s.key.vrid,
                master: s.master.to_string(),
                priority: s.priority,
                interval_cs: s.interval_cs,
                checksum: s.csum.name().into(),
                adverts: s.adverts,
                priority_zero: s.priority_zero,
                invalid: s
                    .invalid_by_reason()
                    .into_iter()
                    .map(|(r, n)| (r.to_string(), n))
                    .collect(),
                missed: s.missed,
                master_down: s.master_down,
                gap_us: g.map(|(lo, mid, hi)| Gaps {
                    min: lo / 1000,
                    median: mid / 1000,
                    max: hi / 1000,
                }),
            };
            println!("{}", serde_json::to_string(&v).expect("a line serializes"));
        } else {
            let gap = g.map_or("no gaps".to_string(), |(lo, mid, hi)| {
                format!(
                    "gap min/median/max {:.3}/{:.3}/{:.3} ms",
                    lo as f64 / 1e6,
                    mid as f64 / 1e6,
                    hi as f64 / 1e6
                )
            });
            let inv = if invalid.is_empty() {
                "none".to_string()
            } else {
                s.invalid_by_reason()
                    .iter()
                    .map(|(r, n)| format!("{r}={n}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            println!(
                "summary {} {} vrid {}: master {} prio {} v{} {}cs; adverts {} (prio0 {}), invalid {}, missed {}, master_down {}; {}",
                name(s.key.ifindex),
                s.family.name(),
                s.key.vrid,
                s.master,
                s.priority,
                s.version,
                s.interval_cs,
                s.adverts,
                s.priority_zero,
                inv,
                s.missed,
                s.master_down,
                gap
            );
        }
    }
    let unattributed: u64 = global[..xvrrpd_common::INVALID_REASONS].iter().sum();
    let lost = global[xvrrpd_common::gstat::RINGBUF_FULL as usize];
    if json {
        let v = Observed::SummaryGlobal {
            invalid_total: unattributed,
            events_lost: lost,
            map_full: global[xvrrpd_common::gstat::MAP_FULL as usize],
            timer_errors: global[xvrrpd_common::gstat::TIMER_ERROR as usize],
        };
        println!("{}", serde_json::to_string(&v).expect("a line serializes"));
    } else {
        println!("summary: invalid adverts in total {unattributed}, events lost {lost}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_median_max_of_gaps() {
        assert_eq!(min_median_max(&mut []), None);
        assert_eq!(min_median_max(&mut [5]), Some((5, 5, 5)));
        assert_eq!(min_median_max(&mut [9, 1, 5, 7, 3]), Some((1, 5, 9)));
    }
}
