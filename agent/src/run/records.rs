//! What the write role's events become: records of the events stream (and the metrics
//! that count them).
use xvrrpd_core::events::Record;

use super::{instance::*, *};
use crate::{net::monotonic_ns, role::Event};

/// Logs a write-role fact and streams it.
pub(super) fn event(r: &Running, e: Event) {
    use crate::role::Verdict;
    use xvrrpd_core::events::{Decision, LeaseLoss};
    let name = &r.cfg.name;
    let (ts_ns, instance) = (monotonic_ns(), name.clone());
    let record = match e {
        Event::Writable {
            catchup,
            target,
            forced,
            write_term,
        } => {
            let catchup_ms = catchup.as_secs_f64() * 1e3;
            if forced {
                warn!(instance = %name, %target, ?write_term, "writable WITHOUT catch-up (on_catchup_timeout = promote-anyway)");
            } else {
                info!(instance = %name, catchup_ms, %target, ?write_term, "MySQL caught up and writable");
            }
            Record::Writable {
                ts_ns,
                instance,
                catchup_ms,
                forced,
                write_term,
            }
        }
        Event::CatchupTimeout {
            target,
            stay_backup,
        } => {
            if stay_backup {
                warn!(instance = %name, %target, "staying out of the election (FAULT) until the relay log is applied");
            }
            Record::CatchupTimeout {
                ts_ns,
                instance,
                target,
                stay_backup,
            }
        }
        Event::Arbitration { own, verdict } => {
            let (decision, peer) = match verdict {
                Verdict::Keep { peer } => (Decision::Keep, Some(peer)),
                Verdict::Yield { peer } => (Decision::Yield, Some(peer)),
                Verdict::Vrrp => (Decision::Vrrp, None),
                Verdict::Unknown => (Decision::Unknown, None),
            };
            if decision == Decision::Yield {
                warn!(instance = %name, own, ?peer, "another master was promoted later: stepping down (fence first), out of the election until this server holds its term")
            } else {
                info!(instance = %name, own, ?peer, ?decision, "another master heard: write terms compared")
            }
            Record::Arbitration {
                ts_ns,
                instance,
                own_term: own,
                peer_term: peer,
                decision,
            }
        }
        Event::CaughtUp => Record::CaughtUp { ts_ns, instance },
        // The guard logged it with the way out; the stream carries the GTIDs.
        Event::Divergent { errant } => {
            let remedy = crate::mysql::dialect::Flavor::rebuild_for(&errant);
            Record::Divergent {
                ts_ns,
                instance,
                errant,
                remedy: remedy.into(),
            }
        }
        // The guard logged it as it happened; the stream carries the step and the error.
        Event::GuardBlocked(b) => Record::GuardBlocked {
            ts_ns,
            instance,
            step: b.step,
            error: b.error,
        },
        Event::ServerKilled { pid, process } => Record::MysqldKilled {
            ts_ns,
            instance,
            pid,
            process,
            reason: "hung while it had to be fenced".into(),
        },
        Event::ErrantUndone { gtids, archive } => Record::ErrantUndone {
            ts_ns,
            instance,
            gtids,
            archive,
        },
        Event::ReadOnly {
            killed,
            in_doubt,
            took,
        } => Record::ReadOnly {
            ts_ns,
            instance,
            killed,
            in_doubt,
            fence_ms: took.as_secs_f64() * 1e3,
        },
        Event::Stalled => Record::Stalled { ts_ns, instance },
        Event::StallCleared => Record::StallCleared { ts_ns, instance },
        // The guard logged it with the count; the stream carries which.
        Event::Behind { missing, names } => Record::Behind {
            ts_ns,
            instance,
            missing,
            names,
        },
        Event::Current => {
            info!(instance = %name, "holds the peer's transactions again: preemption allowed");
            Record::Current { ts_ns, instance }
        }
        Event::SwitchoverRefused { reason } => Record::SwitchoverRefused {
            ts_ns,
            instance,
            reason,
        },
        Event::SwitchoverFenced => {
            info!(instance = %name, "switchover: server fenced, handing over");
            Record::SwitchoverFenced { ts_ns, instance }
        }
        Event::LeaseAcquired { term } => {
            info!(instance = %name, fencing_term = term, "write key held: this node may write");
            Record::LeaseAcquired {
                ts_ns,
                instance,
                fencing_term: term,
            }
        }
        Event::LeaseLost { term, why } => {
            let why = match why {
                crate::witness::lease::Loss::Expired => LeaseLoss::Expired,
                crate::witness::lease::Loss::Taken => LeaseLoss::Taken,
                crate::witness::lease::Loss::Released => LeaseLoss::Released,
            };
            if why == LeaseLoss::Released {
                info!(instance = %name, fencing_term = term, "write key freed for the successor");
            } else {
                warn!(instance = %name, fencing_term = term, ?why, "write key lost: fencing the server");
            }
            Record::LeaseLost {
                ts_ns,
                instance,
                fencing_term: term,
                why,
            }
        }
    };
    r.emit(&record);
}
