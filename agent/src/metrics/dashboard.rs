//! The shipped Grafana dashboard (`config/grafana-xvrrpd.json`) checked against what its
//! declared `schemaVersion` means to Grafana, so that an import does not silently
//! migrate, drop or misplace panels: the rules of schema versions 36–39 (Grafana 9.0 to
//! 10.4) that a hand-edited file can break. The metric names it graphs are checked
//! against the exporter in `super::tests`.
use std::collections::HashSet;

use serde_json::Value;

/// Panel types Grafana 9–10 ship; anything else needs a plugin the operator may lack.
const CORE_PANELS: &[&str] = &[
    "timeseries",
    "state-timeline",
    "status-history",
    "stat",
    "gauge",
    "bargauge",
    "table",
    "text",
    "row",
    "logs",
    "barchart",
    "histogram",
    "heatmap",
    "piechart",
    "alertlist",
    "annolist",
    "dashlist",
    "news",
    "nodeGraph",
    "xychart",
    "canvas",
    "geomap",
];

/// Every problem with `dashboard` as Grafana's schema `schemaVersion` reads it.
pub fn problems(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let version = dashboard["schemaVersion"].as_u64().unwrap_or(0);
    if !(36..=39).contains(&version) {
        out.push(format!(
            "schemaVersion {version}: the checks here know 36–39 (datasources as {{type, uid}} references)"
        ));
    }
    let vars: HashSet<&str> = dashboard["templating"]["list"]
        .as_array()
        .map(|l| l.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    // Inputs an import asks the operator for: each must be used, or the import asks for
    // a datasource nothing reads.
    let text = dashboard.to_string();
    for input in dashboard["__inputs"].as_array().into_iter().flatten() {
        let name = input["name"].as_str().unwrap_or("");
        if !text.contains(&format!("${{{name}}}")) {
            out.push(format!("__inputs {name} is never used (${{{name}}})"));
        }
    }
    let Some(panels) = dashboard["panels"].as_array() else {
        out.push("no panels".into());
        return out;
    };
    let mut ids = HashSet::new();
    let mut boxes: Vec<(String, [u64; 4])> = Vec::new();
    for p in panels {
        let title = p["title"].as_str().unwrap_or("(untitled)").to_string();
        let ty = p["type"].as_str().unwrap_or("");
        if !CORE_PANELS.contains(&ty) {
            out.push(format!("{title}: panel type {ty:?} is not a core panel"));
        }
        match p["id"].as_u64() {
            Some(id) if ids.insert(id) => {}
            id => out.push(format!("{title}: id {id:?} missing or not unique")),
        }
        let g = &p["gridPos"];
        let pos = ["x", "y", "w", "h"].map(|k| g[k].as_u64());
        match pos {
            [Some(x), Some(y), Some(w), Some(h)] if w >= 1 && h >= 1 && x + w <= 24 => {
                boxes.push((title.clone(), [x, y, w, h]))
            }
            _ => out.push(format!(
                "{title}: gridPos {g} must hold x, y, w ≥ 1, h ≥ 1 with x + w ≤ 24"
            )),
        }
        check_datasource(&title, &p["datasource"], &vars, &mut out);
        let mut refs = HashSet::new();
        for t in p["targets"].as_array().into_iter().flatten() {
            let r = t["refId"].as_str().unwrap_or("");
            if r.is_empty() || !refs.insert(r) {
                out.push(format!("{title}: target refId {r:?} missing or repeated"));
            }
            if t["expr"].as_str().is_none_or(str::is_empty) {
                out.push(format!("{title}: target {r} has no expr"));
            }
            check_datasource(&title, &t["datasource"], &vars, &mut out);
            for var in template_vars(t["expr"].as_str().unwrap_or("")) {
                if !vars.contains(var.as_str()) && !var.starts_with("__") {
                    out.push(format!("{title}: ${var} is not a dashboard variable"));
                }
            }
        }
        if ty != "row" && ty != "text" && refs.is_empty() {
            out.push(format!("{title}: no targets"));
        }
    }
    for (i, (a, ba)) in boxes.iter().enumerate() {
        for (b, bb) in &boxes[i + 1..] {
            let apart = ba[0] + ba[2] <= bb[0]
                || bb[0] + bb[2] <= ba[0]
                || ba[1] + ba[3] <= bb[1]
                || bb[1] + bb[3] <= ba[1];
            if !apart {
                out.push(format!("panels {a:?} and {b:?} overlap"));
            }
        }
    }
    out
}

/// A datasource reference as schema 36+ has it: `{type, uid}`, the uid a variable of
/// the dashboard or a fixed one (a bare string is the pre-36 form Grafana migrates).
fn check_datasource(title: &str, ds: &Value, vars: &HashSet<&str>, out: &mut Vec<String>) {
    match ds {
        Value::Null => {}
        Value::Object(o) => {
            let uid = o.get("uid").and_then(Value::as_str).unwrap_or("");
            if o.get("type").and_then(Value::as_str) != Some("prometheus") || uid.is_empty() {
                out.push(format!(
                    "{title}: datasource {ds} must be {{\"type\": \"prometheus\", \"uid\": ...}}"
                ));
            }
            if let Some(var) = uid.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
                if !vars.contains(var) && !var.starts_with("DS_") {
                    out.push(format!(
                        "{title}: datasource variable ${{{var}}} is not defined"
                    ));
                }
            }
        }
        other => out.push(format!(
            "{title}: datasource {other} is the pre-36 string form"
        )),
    }
}

/// The `$name` / `${name}` variables an expression uses.
fn template_vars(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let name: String = if let Some(r) = rest.strip_prefix('{') {
            r.chars().take_while(|c| *c != '}' && *c != ':').collect()
        } else {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Value {
        serde_json::from_str(include_str!("../../../config/grafana-xvrrpd.json"))
            .expect("the dashboard is JSON")
    }

    #[test]
    fn the_shipped_dashboard_keeps_its_declared_schema() {
        assert_eq!(problems(&shipped()), Vec::<String>::new());
    }

    #[test]
    fn each_rule_catches_what_it_is_for() {
        let broken = |f: &dyn Fn(&mut Value)| {
            let mut d = shipped();
            f(&mut d);
            problems(&d)
        };
        let one = |p: Vec<String>, want: &str| {
            assert!(p.iter().any(|m| m.contains(want)), "{want:?} not in {p:?}");
        };
        one(
            broken(&|d| d["schemaVersion"] = 27.into()),
            "schemaVersion 27",
        );
        one(
            broken(&|d| d["panels"][0]["type"] = "graph".into()),
            "not a core panel",
        );
        one(
            broken(&|d| d["panels"][1]["id"] = d["panels"][0]["id"].clone()),
            "not unique",
        );
        one(
            broken(&|d| d["panels"][0]["gridPos"]["x"] = 12.into()),
            "x + w ≤ 24",
        );
        one(
            broken(&|d| d["panels"][1]["gridPos"] = d["panels"][0]["gridPos"].clone()),
            "overlap",
        );
        one(
            broken(&|d| d["panels"][0]["datasource"] = "Prometheus".into()),
            "pre-36 string form",
        );
        one(
            broken(&|d| {
                d["panels"][0]["targets"][0]["expr"] = "xvrrpd_vrrp_state{iname=~\"$inst\"}".into()
            }),
            "$inst is not a dashboard variable",
        );
        one(
            broken(&|d| {
                d["__inputs"] = serde_json::json!([{"name": "DS_OTHER", "type": "datasource"}])
            }),
            "DS_OTHER is never used",
        );
    }
}
