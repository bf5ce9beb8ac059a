//! The exposition format a scraper asked for: OpenMetrics (what the registry writes)
//! when its `Accept` names it, the classic Prometheus text format (0.0.4) otherwise, for
//! `promtool check metrics`, older scrapers and agents that read only that one.
//!
//! The classic format differs in naming, not in data: a counter family is named with its
//! `_total`, an info family becomes a gauge named `..._info`, and there are no `# UNIT`
//! or `# EOF` lines and no `_created` samples.
use std::collections::HashMap;

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Does this `Accept` header ask for OpenMetrics (with a non-zero quality)? Prometheus
/// sends `application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5`.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let kind = parts.next().unwrap_or("");
            let q = parts
                .find_map(|p| p.strip_prefix("q="))
                .and_then(|q| q.parse::<f64>().ok())
                .unwrap_or(1.0);
            kind.eq_ignore_ascii_case("application/openmetrics-text") && q > 0.0
        })
    })
}

/// OpenMetrics text (as the registry writes it) in the classic text format.
pub fn classic(openmetrics: &str) -> String {
    // Family name → its classic name, from the TYPE lines.
    let mut renamed: HashMap<&str, String> = HashMap::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (w.next(), w.next()) {
                match kind {
                    "counter" => {
                        renamed.insert(name, format!("{name}_total"));
                    }
                    "info" => {
                        renamed.insert(name, format!("{name}_info"));
                    }
                    _ => {}
                }
            }
        }
    }
    let name_of = |name: &str| {
        renamed
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    };
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split_whitespace();
            let (name, kind) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
            let kind = match kind {
                "info" | "stateset" => "gauge",
                "gaugehistogram" => "histogram",
                k => k,
            };
            out.push_str(&format!("# TYPE {} {kind}\n", name_of(name)));
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str(&format!("# HELP {} {help}\n", name_of(name)));
        } else {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            if name.ends_with("_created") {
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_asked_for() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
    }

    #[test]
    fn classic_names_counters_and_info_as_the_old_format_does() {
        let om = "# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n# HELP x_t Transitions.\n# TYPE x_t counter\n# UNIT x_t transitions\nx_t_total{a=\"b\"} 3\nx_t_created{a=\"b\"} 1.7e9\n# HELP x_build Build.\n# TYPE x_build info\nx_build_info{version=\"1\"} 1\n# EOF\n";
        assert_eq!(
            classic(om),
            "# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n# HELP x_t_total Transitions.\n# TYPE x_t_total counter\nx_t_total{a=\"b\"} 3\n# HELP x_build_info Build.\n# TYPE x_build_info gauge\nx_build_info{version=\"1\"} 1\n"
        );
    }
}
