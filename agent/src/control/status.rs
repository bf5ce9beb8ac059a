//! The `status` document and its table rendering (pure).
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub router_id: String,
    pub version: String,
    pub pid: u32,
    pub uptime_s: f64,
    pub config: String,
    pub maintenance: bool,
    pub instances: Vec<InstanceStatus>,
    pub trackers: Vec<TrackerStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// INIT, BACKUP, MASTER or FAULT.
    pub state: String,
    pub priority: u8,
    pub configured_priority: u8,
    /// The master's address: this node's own when master, None when unknown.
    pub master: Option<String>,
    pub vips: Vec<String>,
    pub last_transition: Option<LastTransition>,
    /// Names of the trackers followed, with their status.
    pub trackers: Vec<TrackerStatus>,
    /// Write instances: whether the guarded server is writable for this master term.
    pub writable: Option<bool>,
    /// Write instances: the write term of this node's latest promotion (recorded beside
    /// the data; the later promotion has the higher term).
    #[serde(default)]
    pub write_term: Option<u64>,
    /// Write instances: the errant GTIDs (transactions of this server's own that the peer,
    /// which served writes after it, never received) that keep it out of the election.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errant: Vec<String>,
    /// Write instances: the safety step that failed and keeps it read-only and out of
    /// the election (`step: error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// Write instances: why the latest switchover was refused (nothing was fenced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switchover_refused: Option<String>,
    /// Write instances: a backup whose applier does not keep up (`N transactions
    /// missing from the peer (names)`): it does not preempt meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behind: Option<String>,
    /// A backup that does not preempt for now: anti-flap, or after a switchover.
    pub hold: Option<Hold>,
    /// Write instances with a witness: the fencing term of the write key held (None:
    /// not held), and whether this master waits for the key before it promotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing_term: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaiting_write_key: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hold {
    /// Anti-flap: seconds left.
    Seconds(f64),
    /// After a switchover: until the new master fails or lowers its priority.
    UntilMasterFails,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastTransition {
    pub from: String,
    pub to: String,
    pub reason: String,
    pub ago_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackerStatus {
    pub name: String,
    pub kind: String,
    pub healthy: bool,
}

/// Seconds as a short human text (`850ms`, `12.3s`, `4m05s`, `2h10m`, `3d04h`).
pub fn human(s: f64) -> String {
    if s < 1.0 {
        return format!("{:.0}ms", s * 1e3);
    }
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let t = s as u64;
    match t {
        0..3600 => format!("{}m{:02}s", t / 60, t % 60),
        3600..86400 => format!("{}h{:02}m", t / 3600, t % 3600 / 60),
        _ => format!("{}d{:02}h", t / 86400, t % 86400 / 3600),
    }
}

/// The one line `systemctl status` shows (sd_notify `STATUS=`): each instance's state,
/// and for a write instance whether its server is writable, e.g.
/// `write MASTER (writable), read BACKUP`.
pub fn summary(instances: &[InstanceStatus]) -> String {
    if instances.is_empty() {
        return "no instances".into();
    }
    instances
        .iter()
        .map(|i| match i.writable {
            Some(true) => format!("{} {} (writable)", i.name, i.state),
            Some(false) if i.state == "MASTER" => {
                format!("{} {} (not writable yet)", i.name, i.state)
            }
            _ => format!("{} {}", i.name, i.state),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `xvrrpd status` table.
pub fn render(s: &Status) -> String {
    let mut out = format!(
        "xvrrpd {} on {} (pid {}, up {}){}\nconfig {}\n\n",
        s.version,
        s.router_id,
        s.pid,
        human(s.uptime_s),
        if s.maintenance {
            " — MAINTENANCE: drained"
        } else {
            ""
        },
        s.config
    );
    let header = [
        "INSTANCE", "IFACE", "VRID", "STATE", "PRIO", "MASTER", "VIPS", "LAST", "TRACKERS",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for i in &s.instances {
        let mut state = i.state.clone();
        if i.writable == Some(false) && i.state == "MASTER" {
            state.push_str(" (catching up)");
        }
        if !i.errant.is_empty() {
            state.push_str(" (DIVERGENT)");
        }
        if i.blocked.is_some() {
            state.push_str(" (BLOCKED)");
        }
        if i.behind.is_some() {
            state.push_str(" (BEHIND)");
        }
        let prio = if i.priority == i.configured_priority {
            i.priority.to_string()
        } else {
            format!("{}/{}", i.priority, i.configured_priority)
        };
        let last = i.last_transition.as_ref().map_or("-".to_string(), |t| {
            format!("{}->{} {} {} ago", t.from, t.to, t.reason, human(t.ago_s))
        });
        let trackers = if i.trackers.is_empty() {
            "-".to_string()
        } else {
            i.trackers
                .iter()
                .map(|t| format!("{}:{}", t.name, if t.healthy { "up" } else { "DOWN" }))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut last = last;
        match &i.hold {
            Some(Hold::Seconds(h)) => last.push_str(&format!(" (no preempt for {})", human(*h))),
            Some(Hold::UntilMasterFails) => last.push_str(" (no preempt: switched over)"),
            None => {}
        }
        rows.push(vec![
            i.name.clone(),
            i.interface.clone(),
            i.vrid.to_string(),
            state,
            prio,
            i.master.clone().unwrap_or_else(|| "-".into()),
            i.vips.join(","),
            last,
            trackers,
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, v)| format!("{v:<w$}", w = widths[c]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for i in &s.instances {
        if let Some(b) = &i.blocked {
            out.push_str(&format!(
                "\n{}: BLOCKED, read-only and out of the election until this works: {b}\n",
                i.name
            ));
        }
    }
    for i in &s.instances {
        if let Some(b) = &i.behind {
            out.push_str(&format!(
                "\n{}: BEHIND: {b}; no preemption until they are applied\n",
                i.name
            ));
        }
    }
    for i in &s.instances {
        if let Some(why) = &i.switchover_refused {
            out.push_str(&format!(
                "\n{}: the latest switchover was refused (still the master): {why}\n",
                i.name
            ));
        }
    }
    for i in s.instances.iter().filter(|i| !i.errant.is_empty()) {
        out.push_str(&format!(
            "\n{}: DIVERGENT, out of the election. Errant transactions (this server's own, never received by the peer that served writes after it): {}\nWay out: {}\n",
            i.name,
            i.errant.join(", "),
            crate::mysql::dialect::Flavor::rebuild_for(&i.errant)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        Status {
            router_id: "db1".into(),
            version: "0.1.0".into(),
            pid: 42,
            uptime_s: 3725.0,
            config: "/etc/xvrrpd/xvrrpd.toml".into(),
            maintenance: false,
            instances: vec![InstanceStatus {
                name: "db_write".into(),
                interface: "eth0".into(),
                vrid: 51,
                state: "MASTER".into(),
                priority: 50,
                configured_priority: 150,
                master: Some("192.0.2.11".into()),
                vips: vec!["192.0.2.100/24".into()],
                last_transition: Some(LastTransition {
                    from: "BACKUP".into(),
                    to: "MASTER".into(),
                    reason: "master_down".into(),
                    ago_s: 0.25,
                }),
                trackers: vec![TrackerStatus {
                    name: "mysql".into(),
                    kind: "mysql".into(),
                    healthy: false,
                }],
                writable: Some(false),
                write_term: Some(3),
                fencing_term: None,
                awaiting_write_key: false,
                errant: Vec::new(),
                blocked: None,
                switchover_refused: None,
                behind: None,
                hold: Some(Hold::Seconds(30.0)),
            }],
            trackers: vec![],
        }
    }

    #[test]
    fn the_systemd_status_line_names_each_instance_and_the_writable_server() {
        let mut s = sample();
        assert_eq!(summary(&s.instances), "db_write MASTER (not writable yet)");
        s.instances[0].writable = Some(true);
        let mut read = s.instances[0].clone();
        read.name = "db_read".into();
        read.state = "BACKUP".into();
        read.writable = None;
        s.instances.push(read);
        assert_eq!(
            summary(&s.instances),
            "db_write MASTER (writable), db_read BACKUP"
        );
        assert_eq!(summary(&[]), "no instances");
    }

    #[test]
    fn table_shows_what_an_operator_needs() {
        let t = render(&sample());
        assert!(
            t.starts_with("xvrrpd 0.1.0 on db1 (pid 42, up 1h02m)"),
            "{t}"
        );
        let row = t.lines().find(|l| l.starts_with("db_write")).unwrap();
        for want in [
            "MASTER (catching up)",
            "50/150",
            "192.0.2.11",
            "192.0.2.100/24",
            "BACKUP->MASTER master_down 250ms ago",
            "mysql:DOWN",
            "(no preempt for 30.0s)",
        ] {
            assert!(row.contains(want), "{want:?} missing from {row:?}");
        }
        // Columns line up: the header's STATE starts where the row's state does.
        let header = t.lines().find(|l| l.starts_with("INSTANCE")).unwrap();
        assert_eq!(header.find("STATE"), row.find("MASTER"));
    }

    #[test]
    fn json_round_trip() {
        let s = sample();
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&text).unwrap(), s);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(0.0123), "12ms");
        assert_eq!(human(12.34), "12.3s");
        assert_eq!(human(245.0), "4m05s");
        assert_eq!(human(7800.0), "2h10m");
        assert_eq!(human(273600.0), "3d04h");
    }
}
