//! Conformance scenarios for the VRRP engine: one JSON-lines file per scenario in
//! `conformance/`, run by this one small harness. Adding a case is adding a file.
//!
//! Each line is one object:
//! - `{"comment": "..."}`: what the scenario shows (ignored);
//! - `{"settings": {...}}`: the instance (`priority`, `advert_interval_ms`, `version`,
//!   `preempt`, `preempt_delay_ms`, `anti_flap_ms`, `primary`); first, once;
//! - `{"at_ms": T, "input": KIND, ..., "expect": [ACTION, ...]}`: feed an input at T ms and
//!   expect exactly these actions, in order. KIND is `startup`, `shutdown`, `tick`,
//!   `master_down`, `fault`, `fault_cleared`, `switchover`, `priority` (with `priority`) or
//!   `advert` (with `src`, `priority`, and `interval_ms`, default 100). An ACTION is
//!   `send_advert P`, `add_vips`, `remove_vips`, `announce`, `set_local_priority P` or
//!   `transition FROM->TO reason`.
use std::{path::Path, time::Duration};

use serde_json::Value;

use super::*;

/// An action as the scenario files spell it.
fn spell(a: &Action) -> String {
    match a {
        Action::Transition { from, to, reason } => {
            format!(
                "transition {}->{} {}",
                from.name(),
                to.name(),
                reason.name()
            )
        }
        Action::SendAdvert { priority } => format!("send_advert {priority}"),
        Action::AddVips => "add_vips".into(),
        Action::RemoveVips => "remove_vips".into(),
        Action::Announce => "announce".into(),
        Action::SetLocalPriority { priority } => format!("set_local_priority {priority}"),
    }
}

fn settings(v: &Value) -> Result<Settings, String> {
    let num = |k: &str, default: u64| v[k].as_u64().unwrap_or(default);
    let priority = num("priority", 100);
    Ok(Settings {
        version: num("version", 3) as u8,
        priority: u8::try_from(priority).map_err(|_| format!("priority {priority}"))?,
        advert_interval: Duration::from_millis(num("advert_interval_ms", 100)),
        preempt: v["preempt"].as_bool().unwrap_or(true),
        preempt_delay: Duration::from_millis(num("preempt_delay_ms", 0)),
        primary_address: v["primary"]
            .as_str()
            .unwrap_or("192.0.2.10")
            .parse()
            .map_err(|e| format!("primary: {e}"))?,
        min_learned_interval: Duration::from_millis(10),
        anti_flap: Duration::from_millis(num("anti_flap_ms", 0)),
    })
}

fn input(v: &Value) -> Result<Input, String> {
    let now = Instant(
        v["at_ms"]
            .as_u64()
            .ok_or("every input needs at_ms")?
            .saturating_mul(1_000_000),
    );
    let priority = || {
        v["priority"]
            .as_u64()
            .and_then(|p| u8::try_from(p).ok())
            .ok_or("needs priority 0-255")
    };
    Ok(match v["input"].as_str().ok_or("needs input")? {
        "startup" => Input::Startup { now },
        "shutdown" => Input::Shutdown { now },
        "tick" => Input::Tick { now },
        "master_down" => Input::MasterDown { now },
        "fault" => Input::Fault { now },
        "fault_cleared" => Input::FaultCleared { now },
        "switchover" => Input::Switchover { now },
        "priority" => Input::Priority {
            now,
            priority: priority()?,
        },
        "advert" => Input::Advert {
            now,
            src: v["src"]
                .as_str()
                .ok_or("advert needs src")?
                .parse()
                .map_err(|e| format!("src: {e}"))?,
            priority: priority()?,
            interval: Duration::from_millis(v["interval_ms"].as_u64().unwrap_or(100)),
        },
        other => return Err(format!("unknown input {other:?}")),
    })
}

/// Runs one scenario file; Err names the line and what differed.
fn run(path: &Path) -> Result<(), String> {
    let mut engine: Option<Instance> = None;
    for (n, v) in crate::scenarios::lines(path)? {
        let at = |e: String| format!("line {n}: {e}");
        if let Some(s) = v.get("settings") {
            engine = Some(Instance::new(settings(s).map_err(at)?));
            continue;
        }
        let e = engine
            .as_mut()
            .ok_or_else(|| at("settings must come first".into()))?;
        let got: Vec<String> = e.handle(input(&v).map_err(at)?).iter().map(spell).collect();
        let want: Vec<String> = v["expect"]
            .as_array()
            .ok_or_else(|| at("needs expect".into()))?
            .iter()
            .map(|a| a.as_str().unwrap_or("?").to_string())
            .collect();
        if got != want {
            return Err(at(format!("expected {want:?}\n           got {got:?}")));
        }
    }
    Ok(())
}

#[test]
fn every_conformance_scenario_holds() {
    crate::scenarios::run_all("src/engine/conformance", 6, run);
}

#[test]
fn the_harness_catches_a_wrong_expectation() {
    let dir = std::env::temp_dir().join(format!("xvrrpd-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("wrong.jsonl");
    std::fs::write(
        &f,
        "{\"settings\": {\"priority\": 100}}\n{\"at_ms\": 0, \"input\": \"startup\", \"expect\": [\"add_vips\"]}\n",
    )
    .unwrap();
    let e = run(&f).unwrap_err();
    assert!(
        e.contains("line 2") && e.contains("set_local_priority 100"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
