//! `cargo xtask bench master-down`: the kernel timer's precision against a real
//! keepalived master, SIGKILLed again and again.
use anyhow::{Context, Result};
use xvrrpd_tests::{kill_and_measure, KeepalivedConf, Observer, Segment};

use crate::record;

pub fn run(kills: usize, intervals_ms: &[u64]) -> Result<()> {
    let command = format!(
        "cargo xtask bench master-down --kills {kills} --intervals-ms {}",
        intervals_ms
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let seg = Segment::new(2)?;
    let mut obs = Observer::start(&seg.nodes[1].ns, "eth0", &[])?;
    let mut csv = record::Raw::new("advert_ms,run,missed,master_down_us,rfc_us,delta_us");
    let mut table = record::Table::new("| advert interval | kills | RFC Master_Down_Interval | delta min | delta median | delta max |");
    for (n, &ms) in intervals_ms.iter().enumerate() {
        let mut deltas = Vec::new();
        let mut rfc = 0.0;
        for run in 0..kills {
            let conf = KeepalivedConf {
                version: 3,
                vrid: 40 + n as u8,
                priority: 150,
                advert_int: ms as f64 / 1000.0,
                vip: format!("192.0.2.{}/24", 100 + n),
                state_master: true,
                unicast_peers: vec![],
                old_unicast_checksum: false,
                script: None,
            };
            let r = kill_and_measure(&seg, &mut obs, &conf, 100)
                .with_context(|| format!("{ms} ms, run {run}"))?;
            let delta = r.master_down_us as f64 - r.theoretical_us;
            rfc = r.theoretical_us;
            eprintln!(
                "{ms} ms run {run}: missed {:?}, master_down {} us, delta {delta:+.0} us",
                r.missed_counts, r.master_down_us
            );
            csv.row(format!(
                "{ms},{run},{},{},{:.0},{delta:.0}",
                r.missed_counts.len(),
                r.master_down_us,
                r.theoretical_us
            ))?;
            deltas.push(delta);
        }
        let (lo, mid, hi) = record::stats(&mut deltas);
        table.row(format!(
            "| {ms} ms | {kills} | {rfc:.0} µs | {lo:+.0} µs | {mid:+.0} µs | {hi:+.0} µs |"
        ))?;
    }
    drop(obs);
    record::record(record::Entry {
        title: "kernel master-down precision",
        command: &command,
        parts: &[record::Part::table(&table)],
        notes: "delta = `since_last_us` reported by the XDP timer's master_down event minus the RFC \
                Master_Down_Interval (3 × interval + Skew, local priority 100). keepalived 2.2.7 \
                (VRRPv3, priority 150) is SIGKILLed in one namespace; `xvrrpd observe` watches from \
                another across a bridge.",
        raw: Some(("master_down", &csv)),
    })
}
