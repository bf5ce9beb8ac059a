//! The lines of `xvrrpd observe --json`: what the datapath saw of a segment's adverts and
//! timers, one JSON object per line tagged by `event`, and the summaries printed when it
//! stops. Defined once: the agent writes them, the labs and benches read them back.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The advert (or the timer of the VRID) an event is about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heard {
    pub ifindex: u32,
    pub interface: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
    pub vrid: u8,
    /// The advert's source (the master), or the unspecified address for a timer.
    pub src: String,
    pub priority: u8,
    pub version: u8,
    pub interval_cs: u32,
    /// How its checksum was computed (`pseudo_header`, `no_pseudo_header`,
    /// `pseudo_header_mcast_dst`, `unknown`).
    pub checksum: String,
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
}

/// Advert gaps of a VRID over the run, microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gaps {
    pub min: u64,
    pub median: u64,
    pub max: u64,
}

/// One line of `xvrrpd observe --json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Observed {
    /// A master not heard before (or heard again after master_down).
    NewMaster {
        #[serde(flatten)]
        heard: Heard,
    },
    PriorityChange {
        #[serde(flatten)]
        heard: Heard,
        old_priority: u8,
    },
    IntervalChange {
        #[serde(flatten)]
        heard: Heard,
        old_interval_cs: u32,
    },
    /// The master is leaving (priority 0).
    PriorityZero {
        #[serde(flatten)]
        heard: Heard,
    },
    /// `count` intervals without an advert so far.
    Missed {
        #[serde(flatten)]
        heard: Heard,
        count: u32,
        since_last_us: u64,
    },
    /// Master_Down_Interval passed without an advert.
    MasterDown {
        #[serde(flatten)]
        heard: Heard,
        missed: u32,
        since_last_us: u64,
    },
    /// An advert that failed a check (rate-limited), and why.
    Invalid {
        #[serde(flatten)]
        heard: Heard,
        reason: String,
    },
    /// Every valid advert (`--adverts`).
    Advert {
        #[serde(flatten)]
        heard: Heard,
        gap_us: u64,
    },
    /// The master-down timer fired late: this host stood still.
    Stalled {
        #[serde(flatten)]
        heard: Heard,
        late_us: u32,
        since_last_us: u64,
    },
    /// Another host claimed a VIP an instance holds (from `mac`).
    VipClaimed {
        #[serde(flatten)]
        heard: Heard,
        instance_id: u32,
        mac: String,
    },
    /// Per VRID, when the observer stops.
    Summary {
        ifindex: u32,
        interface: String,
        family: String,
        vrid: u8,
        master: String,
        priority: u8,
        interval_cs: u32,
        checksum: String,
        adverts: u64,
        priority_zero: u64,
        /// Invalid adverts by reason.
        invalid: BTreeMap<String, u64>,
        missed: u64,
        master_down: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gap_us: Option<Gaps>,
    },
    /// The whole segment, when the observer stops.
    SummaryGlobal {
        invalid_total: u64,
        events_lost: u64,
        map_full: u64,
        timer_errors: u64,
    },
}

impl Observed {
    /// The advert or timer it is about (None for the summaries).
    pub fn heard(&self) -> Option<&Heard> {
        use Observed::*;
        match self {
            NewMaster { heard }
            | PriorityChange { heard, .. }
            | IntervalChange { heard, .. }
            | PriorityZero { heard }
            | Missed { heard, .. }
            | MasterDown { heard, .. }
            | Invalid { heard, .. }
            | Advert { heard, .. }
            | Stalled { heard, .. }
            | VipClaimed { heard, .. } => Some(heard),
            Summary { .. } | SummaryGlobal { .. } => None,
        }
    }

    /// Its kind, as the line's `event` field spells it.
    pub fn kind(&self) -> String {
        super::event_tag(self)
    }

    /// The VRID it is about.
    pub fn vrid(&self) -> Option<u8> {
        match self {
            Self::Summary { vrid, .. } => Some(*vrid),
            other => other.heard().map(|h| h.vrid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line's keys are the documented ones: flattened advert fields beside the
    /// event's own, tagged by `event`, and read back as written.
    #[test]
    fn a_line_round_trips_with_flat_fields() {
        let o = Observed::MasterDown {
            heard: Heard {
                ifindex: 2,
                interface: "eth0".into(),
                family: "ipv4".into(),
                vrid: 41,
                src: "192.0.2.11".into(),
                priority: 150,
                version: 3,
                interval_cs: 10,
                checksum: "pseudo_header".into(),
                ts_ns: 7,
            },
            missed: 3,
            since_last_us: 36_100,
        };
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["event"], "master_down");
        assert_eq!(v["vrid"], 41);
        assert_eq!(v["since_last_us"], 36_100);
        assert_eq!(serde_json::from_value::<Observed>(v).unwrap(), o);
        let g: Observed = serde_json::from_str(
            r#"{"event":"summary_global","invalid_total":1,"events_lost":0,"map_full":0,"timer_errors":0}"#,
        )
        .unwrap();
        assert_eq!(g.vrid(), None);
    }
}
