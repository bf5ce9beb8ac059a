//! Conformance scenarios for the composed core: two nodes' VRRP engines, write roles and
//! guard machines, run by the model's simulation against simulated servers, networks and
//! a witness. One JSON-lines file per scenario in `src/role/conformance/`: adding a
//! failover case is adding a file.
//!
//! Node 0 is db1 (priority 150, the master after start-up), node 1 is db2 (100). Each
//! line is one object:
//! - `{"comment": "..."}`: what the scenario shows (ignored);
//! - `{"settings": {...}}`, first and once: `seeds` (`[from, to)`, default `[1, 20]`: the
//!   scenario must hold for every seed of the latencies), `witness` (`true`, `false` or
//!   `"by_seed"`, the default: half the seeds run with one), `fence`
//!   (`"kills_what_holds_it_up"`, the default, or `"waits_for_commits"`), and switches
//!   that put back an old behaviour to show the model catches it (`old_guard`,
//!   `ignore_key_tenure`, `kill_hung`, `master_stops_replicating`, `undo_errant`,
//!   `data_must_converge`, `unprotected_checks`);
//! - `{"at_ms": T, "fault": F}`: inject a fault T ms into the run (the spelling of
//!   [`Fault`]: `"partition"`, `{"mysqld_kill": 0}`, `{"revoke": [1, "replication"]}`);
//! - `{"at_ms": T, "expect": {...}}`: at T ms (after that millisecond's faults) the pair
//!   is so, for every seed: `vip` and `writable` (the nodes holding the VIP, the servers
//!   clients can write to), `states` (each node's VRRP state, `null` for a dead agent),
//!   `blocked` (the nodes whose guard is blocked). Keys left out are not compared;
//! - `{"violation": "..."}`: the run must break an invariant, with this text in the
//!   violation, for at least one seed (a scenario showing the model can fail). Without
//!   it, no seed may break any invariant, and the pair must converge once all heals.
use std::path::Path;

use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    #[serde(default = "every_seed")]
    seeds: [u64; 2],
    /// `true`, `false`, or absent / `"by_seed"`: half the seeds run with one.
    witness: Option<serde_json::Value>,
    #[serde(default = "killing_fence")]
    fence: FenceModel,
    old_guard: Option<bool>,
    ignore_key_tenure: Option<bool>,
    kill_hung: Option<bool>,
    master_stops_replicating: Option<bool>,
    undo_errant: Option<bool>,
    data_must_converge: Option<bool>,
    unprotected_checks: Option<bool>,
}

fn every_seed() -> [u64; 2] {
    [1, 20]
}

fn killing_fence() -> FenceModel {
    FenceModel::KillsWhatHoldsItUp
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Expect {
    vip: Option<Vec<usize>>,
    writable: Option<Vec<usize>>,
    states: Option<Vec<Option<String>>>,
    blocked: Option<Vec<usize>>,
}

impl Scenario {
    fn sim(&self, seed: u64) -> Result<Sim, String> {
        let mut sim = match &self.witness {
            None => Sim::new(seed, self.fence),
            Some(serde_json::Value::Bool(w)) => Sim::with_witness(seed, self.fence, *w),
            Some(serde_json::Value::String(n)) if n == "by_seed" => Sim::new(seed, self.fence),
            Some(other) => {
                return Err(format!("witness {other}: write true, false or \"by_seed\""))
            }
        };
        let set = |field: &mut bool, to: Option<bool>| *field = to.unwrap_or(*field);
        set(&mut sim.old_guard, self.old_guard);
        set(&mut sim.ignore_key_tenure, self.ignore_key_tenure);
        set(&mut sim.kill_hung, self.kill_hung);
        set(
            &mut sim.master_stops_replicating,
            self.master_stops_replicating,
        );
        set(&mut sim.undo_errant, self.undo_errant);
        set(&mut sim.data_must_converge, self.data_must_converge);
        set(&mut sim.unprotected_checks, self.unprotected_checks);
        Ok(sim)
    }
}

/// What one expectation found wrong in a snapshot, if anything.
fn differs(want: &Expect, seen: &Snapshot) -> Option<String> {
    let states: Vec<Option<String>> = seen
        .states
        .iter()
        .map(|s| s.map(|s| s.name().to_string()))
        .collect();
    let mut wrong = Vec::new();
    let mut compare = |what: &str, want: Option<String>, seen: String| {
        if let Some(want) = want.filter(|w| *w != seen) {
            wrong.push(format!("{what} {seen}, expected {want}"));
        }
    };
    compare(
        "vip",
        want.vip.as_ref().map(|v| format!("{v:?}")),
        format!("{:?}", seen.vip),
    );
    compare(
        "writable",
        want.writable.as_ref().map(|v| format!("{v:?}")),
        format!("{:?}", seen.writable),
    );
    compare(
        "states",
        want.states.as_ref().map(|v| format!("{v:?}")),
        format!("{states:?}"),
    );
    compare(
        "blocked",
        want.blocked.as_ref().map(|v| format!("{v:?}")),
        format!("{:?}", seen.blocked),
    );
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

/// Runs one scenario file; Err names the line or the seed and what differed.
fn run(path: &Path) -> Result<(), String> {
    let mut scenario: Option<Scenario> = None;
    let mut script = Vec::new();
    let mut expects: Vec<(u64, Expect, usize)> = Vec::new();
    let mut violation: Option<String> = None;
    for (n, v) in crate::scenarios::lines(path)? {
        let at = |e: String| format!("line {n}: {e}");
        if let Some(s) = v.get("settings") {
            let s = Scenario::deserialize(s).map_err(|e| at(format!("settings: {e}")))?;
            scenario = Some(s);
            continue;
        }
        if let Some(text) = v.get("violation") {
            violation = Some(
                text.as_str()
                    .ok_or_else(|| at("violation: a text".into()))?
                    .into(),
            );
            continue;
        }
        let ms = v["at_ms"]
            .as_u64()
            .ok_or_else(|| at("needs at_ms (or comment, settings, violation)".into()))?;
        if let Some(f) = v.get("fault") {
            let f = Fault::deserialize(f).map_err(|e| at(format!("fault: {e}")))?;
            script.push((ms, f));
        } else if let Some(e) = v.get("expect") {
            let e = Expect::deserialize(e).map_err(|e| at(format!("expect: {e}")))?;
            expects.push((ms, e, n));
        } else {
            return Err(at("needs fault or expect".into()));
        }
    }
    let scenario = scenario.ok_or("no settings line")?;
    let [from, to] = scenario.seeds;
    let mut shown = false;
    for seed in from..to {
        let mut sim = scenario.sim(seed)?;
        for (ms, ..) in &expects {
            sim.probe(*ms);
        }
        sim.play(&script);
        for ((_, want, line), seen) in expects.iter().zip(&sim.snapshots) {
            if let Some(wrong) = differs(want, seen) {
                return Err(format!("line {line}, seed {seed}: {wrong}"));
            }
        }
        match &violation {
            None if !sim.violations.is_empty() => {
                return Err(format!("seed {seed}: {}", sim.violations.join("\n    ")))
            }
            Some(text) => shown |= sim.violations.iter().any(|v| v.contains(text.as_str())),
            None => {}
        }
    }
    match violation {
        Some(text) if !shown => Err(format!(
            "no seed in {from}..{to} broke an invariant with {text:?}"
        )),
        _ => Ok(()),
    }
}

#[test]
fn every_write_role_scenario_holds() {
    crate::scenarios::run_all("src/role/conformance", 20, run);
}

/// The harness must be able to fail: a wrong expectation, an unknown fault, a violation
/// that never happens.
#[test]
fn the_harness_catches_a_wrong_scenario() {
    let dir = std::env::temp_dir().join(format!("xvrrpd-role-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "wrong_holder",
            "{\"settings\": {\"seeds\": [1, 3]}}\n{\"at_ms\": 1500, \"expect\": {\"vip\": [1]}}\n",
            "vip [0], expected [1]",
        ),
        (
            "unknown_fault",
            "{\"settings\": {}}\n{\"at_ms\": 10, \"fault\": {\"meteor\": 0}}\n",
            "line 2: fault",
        ),
        (
            "no_violation",
            "{\"settings\": {\"seeds\": [1, 3]}}\n{\"violation\": \"both servers\"}\n",
            "no seed",
        ),
    ];
    for (name, text, want) in cases {
        let path = dir.join(format!("{name}.jsonl"));
        std::fs::write(&path, text).unwrap();
        let err = run(&path).expect_err(name);
        assert!(err.contains(want), "{name}: {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
