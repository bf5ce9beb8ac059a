//! The judge: what the servers hold against what the clients were told.
use super::*;

/// The data figures of the bank workload (the insert workload's are computed from its
/// rows above), and for both: rows differing between the servers.
pub(super) fn judge_data(
    report: &mut LabReport,
    ops: &[crate::bank::Op],
    finals: &[Option<Held>; 2],
    survivor: &Held,
    cut: u64,
) {
    use crate::bank::{audit, rows_differing};
    match (finals, survivor) {
        ([Some(Held::Accounts(a)), Some(Held::Accounts(b))], Held::Accounts(s)) => {
            let (fa, fb) = (audit(ops, a, u64::MAX), audit(ops, b, u64::MAX));
            // A divergent server is quarantined (replicates from nobody, out of the
            // election, until rebuilt): what is lost is what the others lack.
            let serving = |i: usize, missing: i64| {
                if report.divergent[i].is_empty() {
                    missing
                } else {
                    0
                }
            };
            report.acked_increments_missing =
                serving(0, fa.missing).max(serving(1, fb.missing)) as usize;
            report.acked_lost_final = report.acked_increments_missing;
            report.in_doubt = fa.extra.max(fb.extra) as usize;
            report.acked_missing = audit(ops, s, cut).missing as usize;
            report.rows_differing = rows_differing(a, b);
        }
        ([Some(Held::Rows(a)), Some(Held::Rows(b))], _) => {
            report.acked_increments_missing = report.acked_lost_final;
            report.rows_differing = a.symmetric_difference(b).count();
        }
        // A server that could not be read differs everywhere.
        _ => report.rows_differing = usize::MAX,
    }
}

pub(super) fn describe(e: &serde_json::Value) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or("?").to_string();
    match e["event"].as_str() {
        Some("transition") => format!(
            "{} {} -> {} ({})",
            s("instance"),
            s("from"),
            s("to"),
            s("reason")
        ),
        Some("writable") => format!(
            "{} MySQL writable after {:.1} ms catch-up, write term {}{}",
            s("instance"),
            e["catchup_ms"].as_f64().unwrap_or(0.0),
            e["write_term"]
                .as_u64()
                .map_or("not recorded".into(), |t| t.to_string()),
            if e["forced"].as_bool() == Some(true) {
                " (FORCED: catch-up timed out)"
            } else {
                ""
            }
        ),
        Some("read_only") => format!(
            "{} MySQL read_only = ON ({:.1} ms fence), {} client connections killed, {} in a commit",
            s("instance"),
            e["fence_ms"].as_f64().unwrap_or(0.0),
            e["killed"],
            e["in_doubt"]
        ),
        Some("catchup_timeout") => format!("{} catch-up timed out", s("instance")),
        Some("divergent") => format!(
            "{} DIVERGENT: errant transactions {}: read-only, out of the election until rebuilt",
            s("instance"),
            e["errant"]
        ),
        Some("mysqld_killed") => format!(
            "{} mysqld (pid {}) hung while it had to be fenced: killed by its agent",
            s("instance"),
            e["pid"]
        ),
        Some("errant_undone") => format!(
            "{} errant transactions {} undone (flashback), archived in {}: rejoining",
            s("instance"),
            e["gtids"],
            s("archive")
        ),
        Some("caught_up") => format!(
            "{} caught up (relay log applied, or the winner's write term arrived): back in the election",
            s("instance")
        ),
        Some("lease_acquired") => format!(
            "{} write key held (fencing term {})",
            s("instance"),
            e["fencing_term"]
        ),
        Some("lease_lost") => format!(
            "{} write key lost ({}, fencing term {})",
            s("instance"),
            s("why"),
            e["fencing_term"]
        ),
        Some("guard_blocked") => format!(
            "{} guard_blocked, read-only and out of the election: {}: {}",
            s("instance"),
            s("step"),
            s("error")
        ),
        Some("stalled") => format!(
            "{} stalled: the host stood still while master; clients refused at the VIPs until the peer is heard out",
            s("instance")
        ),
        Some("stall_cleared") => format!(
            "{} stall cleared: no other master (or the terms say keep): clients let through",
            s("instance")
        ),
        Some("arbitration") => format!(
            "{} another master heard: own write term {}, its term {}: {}",
            s("instance"),
            e["own_term"],
            e["peer_term"],
            s("decision")
        ),
        _ => e.to_string(),
    }
}

/// Longest gap between successes that ends after `from`, counting a silence from the last
/// success to `end` as a gap too.
pub(super) fn longest_gap(times: impl Iterator<Item = u64>, from: u64, end: u64) -> f64 {
    let mut prev: Option<u64> = None;
    let mut worst = 0u64;
    for t in times {
        if let Some(p) = prev {
            if t > from {
                worst = worst.max(t.saturating_sub(p));
            }
        }
        prev = Some(t);
    }
    if let Some(p) = prev {
        worst = worst.max(end.saturating_sub(p));
    }
    worst as f64 / 1e6
}

pub(super) fn dual_writable_ms(samples: &[(u64, bool)]) -> f64 {
    samples
        .windows(2)
        .filter(|w| w[0].1 && w[1].1)
        .map(|w| w[1].0 - w[0].0)
        .sum::<u64>() as f64
        / 1e6
}

/// Both replication threads running.
pub(super) fn replicates(db: &Db) -> bool {
    db.replica_status().is_ok_and(|s| s.replicates())
}

pub(super) fn rows(db: &Db) -> Result<BTreeSet<i64>> {
    Ok(db
        .sql("SELECT seq FROM lab.w")?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// Replication errors on `db`: a recorded error or a stopped SQL thread counts.
pub(super) fn replication_errors(db: &Db, should_replicate: bool) -> Result<usize> {
    let st = db.replica_status()?;
    let field = |name: &str| st.get(name);
    // An IO error the thread has since recovered from (a reconnect on a lossy link) stays
    // in Last_IO_Errno; it counts only while the IO thread is not running.
    let mut n = 0;
    if !matches!(field("Last_SQL_Errno"), "0" | "") {
        n += 1;
    }
    if !should_replicate {
        return Ok(n);
    }
    if field("Slave_SQL_Running") != "Yes" {
        n += 1;
    }
    if field("Slave_IO_Running") != "Yes" && !matches!(field("Last_IO_Errno"), "0" | "") {
        n += 1;
    }
    Ok(n)
}
