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

/// A unit value's name as the stream writes it (`expired`, `keep`).
fn tag<T: serde::Serialize>(t: &T) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A record of the events stream as a timeline line (`raw`, the line itself, for one
/// this lab does not word).
pub(super) fn describe(e: &Record, raw: &str) -> String {
    match e {
        Record::Transition {
            instance,
            from,
            to,
            reason,
            ..
        } => format!("{instance} {from} -> {to} ({reason})"),
        Record::Writable {
            instance,
            catchup_ms,
            forced,
            write_term,
            ..
        } => format!(
            "{instance} MySQL writable after {catchup_ms:.1} ms catch-up, write term {}{}",
            write_term.map_or("not recorded".into(), |t| t.to_string()),
            if *forced {
                " (FORCED: catch-up timed out)"
            } else {
                ""
            }
        ),
        Record::ReadOnly {
            instance,
            fence_ms,
            killed,
            in_doubt,
            ..
        } => format!(
            "{instance} MySQL read_only = ON ({fence_ms:.1} ms fence), {killed} client connections killed, {in_doubt} in a commit"
        ),
        Record::CatchupTimeout { instance, .. } => format!("{instance} catch-up timed out"),
        Record::Divergent {
            instance, errant, ..
        } => format!(
            "{instance} DIVERGENT: errant transactions {errant:?}: read-only, out of the election until rebuilt"
        ),
        Record::MysqldKilled { instance, pid, .. } => format!(
            "{instance} mysqld (pid {pid}) hung while it had to be fenced: killed by its agent"
        ),
        Record::ErrantUndone {
            instance,
            gtids,
            archive,
            ..
        } => format!(
            "{instance} errant transactions {gtids:?} undone (flashback), archived in {archive}: rejoining"
        ),
        Record::CaughtUp { instance, .. } => format!(
            "{instance} caught up (relay log applied, or the winner's write term arrived): back in the election"
        ),
        Record::LeaseAcquired {
            instance,
            fencing_term,
            ..
        } => format!("{instance} write key held (fencing term {fencing_term})"),
        Record::LeaseLost {
            instance,
            fencing_term,
            why,
            ..
        } => format!(
            "{instance} write key lost ({}, fencing term {fencing_term})",
            tag(why)
        ),
        Record::GuardBlocked {
            instance,
            step,
            error,
            ..
        } => format!("{instance} guard_blocked, read-only and out of the election: {step}: {error}"),
        Record::Stalled { instance, .. } => format!(
            "{instance} stalled: the host stood still while master; clients refused at the VIPs until the peer is heard out"
        ),
        Record::StallCleared { instance, .. } => format!(
            "{instance} stall cleared: no other master (or the terms say keep): clients let through"
        ),
        Record::Arbitration {
            instance,
            own_term,
            peer_term,
            decision,
            ..
        } => format!(
            "{instance} another master heard: own write term {own_term}, its term {}: {}",
            peer_term.map_or("null".into(), |t| t.to_string()),
            tag(decision)
        ),
        Record::ClientsReset {
            instance,
            connections,
            why,
            ..
        } => format!(
            "{instance} {connections} client connections told to reset ({})",
            tag(why)
        ),
        Record::VipClaimed {
            instance,
            vip,
            mac,
            answered,
            ..
        } => format!(
            "{instance} {vip} claimed by {mac}{}",
            if *answered { ": announced again" } else { "" }
        ),
        _ => raw.to_string(),
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
    // An IO error the thread has since recovered from (a reconnect on a lossy link) stays
    // in Last_IO_Errno; it counts only while the IO thread is not running.
    let mut n = usize::from(st.last_sql_errno != 0);
    if !should_replicate {
        return Ok(n);
    }
    n += usize::from(!st.sql_running);
    n += usize::from(!st.io_running && st.last_io_errno != 0);
    Ok(n)
}
