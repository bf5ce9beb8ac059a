//! What a lab run reports: the client's figures, the data's verdict, and every record
//! of the agents' event streams.
use super::*;

/// What the lab measured.
#[derive(Clone, Debug, Default)]
pub struct LabReport {
    /// With `give_back`: the old master replicated again (IO and SQL threads running)
    /// before the role went back, and ms from its recovery until it held the write VIP
    /// on a writable server again.
    pub old_master_replicated: Option<bool>,
    /// With `old_master_behind`: what db1's agent said while behind (`xvrrpd status`),
    /// and whether db1 held the write VIP at any look while it was behind.
    pub behind_said: Option<String>,
    pub preempted_while_behind: bool,
    pub given_back_ms: Option<f64>,
    /// Longest gap between two acknowledged writes, from the fault on (ms).
    pub outage_ms: f64,
    /// Acknowledged rows missing on the survivor while the old master was away.
    pub acked_missing: usize,
    /// Replication errors on either node after the old master rejoined.
    pub replication_errors: usize,
    /// Time both servers accepted writes (read_only = OFF on both, both up), ms.
    pub dual_writable_ms: f64,
    pub acked: usize,
    pub failed_writes: usize,
    /// Longest gap between two successful reads through the read VIP (ms).
    pub read_outage_ms: f64,
    /// After the run: the old master's read_only, its role, and whether both servers hold
    /// the same rows.
    pub old_master_read_only: Option<bool>,
    pub converged: bool,
    /// (monotonic ns, what) in order.
    pub timeline: Vec<(u64, String)>,
    pub fault_ns: u64,
    /// The write VIP from the fault to the end: time on both nodes, longest such stretch,
    /// times db2 took it (a takeover), owner changes.
    pub write_vip: crate::chaos::VipStats,
    /// The same from the recovery (+2 s to settle) to the end: must be clean.
    pub write_vip_after: crate::chaos::VipStats,
    /// At the end: how many nodes hold the write VIP, and whether the client's ARP entry
    /// for it names the holder's MAC.
    pub final_owners: usize,
    pub client_arp_ok: bool,
    /// Acknowledged rows missing from the final data (after recovery and convergence):
    /// lost for good.
    pub acked_lost_final: usize,
    /// First write acknowledged after the fault by a server other than db1: when (ms
    /// after the fault) and by which server_id.
    pub resumed: Option<(f64, u32)>,
    /// With `greeting_waiter`: when (ms after the fault) its wait ended, and how
    /// ("reset", "closed", "greeting", "no answer", or the connect error).
    pub greeting_wait: Option<(f64, String)>,
    /// With `connect_prober`: its attempts from the fault until the recovery (ms after
    /// the fault it began, ms it took, how it ended).
    pub connects: Vec<(f64, f64, &'static str)>,
    /// With `stale_client`: its writes db1 acknowledged after the fault (ms after the
    /// fault), while db2 was writable.
    pub stale_acked: Vec<f64>,
    /// The stale client ran (the RESULT line names its figure).
    pub stale_client: bool,
    /// db1's write instance becoming master again after the fault: (ms after the fault,
    /// reason), from its event stream.
    pub failbacks: Vec<(f64, String)>,
    /// Every fence after the fault, from the event streams.
    pub fences: Vec<FenceSeen>,
    /// When db1 was brought back (monotonic ns; 0 if the run stopped before).
    pub recovered_ns: u64,
    /// Every transition of either node, from their JSON event streams, in time order.
    pub transitions: Vec<TransitionSeen>,
    /// Every record of both nodes' event streams, in time order: what the tests judge
    /// the agents by (never the timeline's wording).
    pub events: Vec<Seen>,
    /// A switchover the lab expected to be refused was: the control socket's answer.
    pub switchover_refused: Option<String>,
    /// Every write the client attempted, in order: when it ended (CLOCK_MONOTONIC ns) and
    /// the server that acknowledged it (None: failed). The timeline picture draws them.
    pub writes: Vec<(u64, Option<u32>)>,
    /// Acknowledged writes missing from the final data of either server, counted as
    /// increments (bank) or rows (insert).
    pub acked_increments_missing: usize,
    /// Rows (accounts) that differ between the two servers after convergence.
    pub rows_differing: usize,
    /// Writes the client saw fail (error or no answer) that are committed all the same:
    /// their outcome was unknown to the client (a commit killed by a fence is one).
    pub in_doubt: usize,
    /// The write terms of the write instance's promotions, from both events streams in
    /// time order (None: a promotion that could not record it).
    pub write_terms: Vec<Option<u64>>,
    /// The highest write term of the write instance in db1's and db2's data at the end.
    pub term_rows: [Option<u64>; 2],
    /// `@@gtid_binlog_state` of db1 and db2 at the end: what each server has executed and
    /// logged, per (domain, origin server).
    pub gtid_states: [String; 2],
    /// The errant GTIDs each node's guard last reported (empty: not divergent).
    pub divergent: [Vec<String>; 2],
    /// With a witness: the highest fencing term either node acquired the write key as.
    pub fencing_term: Option<u64>,
}

/// One record of a node's events stream.
#[derive(Clone, Debug)]
pub struct Seen {
    pub node: &'static str,
    pub record: Record,
    /// How the timeline words it (for people: nothing is judged by it).
    pub told: String,
}

/// One transition as a node's events stream told it.
#[derive(Clone, Debug)]
pub struct TransitionSeen {
    pub ts_ns: u64,
    pub node: &'static str,
    pub instance: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// One fence (`read_only = ON` by a guard) as its events stream told it.
#[derive(Clone, Debug)]
pub struct FenceSeen {
    pub node: &'static str,
    /// When it landed, ms after the fault.
    pub at_ms: f64,
    /// From the statement to read_only in force.
    pub fence_ms: f64,
    pub killed: u64,
    /// Killed while committing: committed on this server alone, client not told.
    pub in_doubt: u64,
}

impl LabReport {
    /// `node`'s records about the write instance, in time order.
    pub fn write_records<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Record> + 'a {
        self.events
            .iter()
            .filter(move |s| s.node == node && s.record.instance() == Some("write"))
            .map(|s| &s.record)
    }

    /// `node` said this of its write instance after the fault.
    pub fn said_after_fault(&self, node: &str, what: impl Fn(&Record) -> bool) -> bool {
        self.write_records(node)
            .any(|r| r.ts_ns().is_some_and(|t| t > self.fault_ns) && what(r))
    }

    /// `node` said this of its write instance at any time.
    pub fn said(&self, node: &str, what: impl Fn(&Record) -> bool) -> bool {
        self.write_records(node).any(what)
    }

    /// The RESULT line and the timeline (ms from the fault) on stderr.
    pub fn print(&self) {
        eprintln!("{}", self.result_line());
        for (ts, what) in &self.timeline {
            eprintln!(
                "{:>10.1} ms  {what}",
                (*ts as f64 - self.fault_ns as f64) / 1e6
            );
        }
    }

    pub fn result_line(&self) -> String {
        let mut fencing = self
            .fencing_term
            .map_or(String::new(), |t| format!(" fencing_term={t}"));
        if let Some(r) = self.old_master_replicated {
            fencing.push_str(&format!(" old_master_replicated={r}"));
        }
        if let Some(ms) = self.given_back_ms {
            fencing.push_str(&format!(" given_back_ms={ms:.1}"));
        }
        if self.behind_said.is_some() {
            fencing.push_str(&format!(
                " preempted_while_behind={}",
                self.preempted_while_behind
            ));
        }
        if self.stale_client {
            fencing.push_str(&format!(" stale_acked={}", self.stale_acked.len()));
        }
        format!(
            "RESULT outage_ms={:.1} acked_missing={} replication_errors={} dual_writable_ms={:.1} in_doubt={} acked_increments_missing={} rows_differing={} divergent={}{fencing}",
            self.outage_ms,
            self.acked_missing,
            self.replication_errors,
            self.dual_writable_ms,
            self.in_doubt,
            self.acked_increments_missing,
            self.rows_differing,
            self.divergent.iter().filter(|d| !d.is_empty()).count()
        )
    }
}
