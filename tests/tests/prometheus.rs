//! A real Prometheus scrapes a pair of agents: both formats of the endpoint parse (the
//! scrape negotiates OpenMetrics; `promtool check metrics` lints the classic text), the
//! alert rules of docs/metrics.md pass `promtool check rules` and load, and after a
//! failover the transition is counted and the failover alert fires.
//! Needs root: run through `cargo xtask test`.
use std::time::Duration;

use xvrrpd_tests::{
    has_addr,
    prometheus::{check_rules, documented_rules, lab_rules, lint_metrics, Prometheus},
    router_toml, scrape_as, wait_until, Router, Segment,
};

const VIP: &str = "192.0.2.100";

/// An agent whose endpoint the namespace's neighbours reach.
fn agent(priority: u8) -> String {
    format!(
        "[global]\nmetrics_listen = \"0.0.0.0:9611\"\n\n{}",
        router_toml("w", 41, priority, 3, "100ms", "192.0.2.100/24")
    )
}

#[test]
fn the_documented_alert_rules_pass_promtool() {
    if std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_err()
    {
        // Plain `cargo test` on a machine without Prometheus: the lab test below, run by
        // `cargo xtask test` (which installs it), checks the same.
        eprintln!("promtool not installed: skipped (cargo xtask setup installs it)");
        return;
    }
    let rules = documented_rules().unwrap();
    check_rules(&rules).unwrap();
    check_rules(&lab_rules(&rules)).unwrap();
    assert!(lab_rules(&rules).contains("for: 1s") && !lab_rules(&rules).contains("for: 5m"));
}

#[test]
#[ignore = "needs root: run via cargo xtask test"]
fn prometheus_scrapes_both_agents_counts_a_failover_and_fires_its_alert() {
    let seg = Segment::new(3).unwrap();
    let (n0, n1, watcher) = (&seg.nodes[0], &seg.nodes[1], &seg.nodes[2]);
    let mut a = Router::start(&n0.ns, &agent(150)).unwrap();
    let _b = Router::start(&n1.ns, &agent(100)).unwrap();
    assert!(wait_until(Duration::from_secs(10), || has_addr(
        &n0.ns, VIP
    )));

    // The classic text format (what promtool and older scrapers read) lints clean.
    let classic = scrape_as(&n0.ns, "text/plain;version=0.0.4");
    let lint = lint_metrics(&classic).unwrap();
    assert!(
        lint.is_empty(),
        "promtool check metrics:\n{lint}\n{classic}"
    );

    let rules = lab_rules(&documented_rules().unwrap());
    check_rules(&rules).unwrap();
    let targets = [format!("{}:9611", n0.addr4), format!("{}:9611", n1.addr4)];
    let prom = Prometheus::start(&watcher.ns, &targets, &rules).unwrap();
    let documented = rules.matches("- alert:").count();
    assert!(documented >= 9, "{rules}");
    assert_eq!(prom.rules_loaded().unwrap(), documented, "{}", prom.log());
    // Both scraped (Prometheus asks for OpenMetrics first: that format parses too).
    assert!(
        wait_until(Duration::from_secs(15), || {
            prom.targets_up()
                .is_ok_and(|t| t.len() == 2 && t.iter().all(|(_, up)| *up == 1.0))
        }),
        "targets: {:?}\n{}",
        prom.targets_up(),
        prom.log()
    );
    let state = |node: &str| -> Option<f64> {
        prom.query(&format!("xvrrpd_vrrp_state{{instance=\"{node}:9611\"}}"))
            .ok()?
            .first()?["value"][1]
            .as_str()?
            .parse()
            .ok()
    };
    assert!(
        wait_until(Duration::from_secs(10), || state(&n0.addr4) == Some(2.0)
            && state(&n1.addr4) == Some(1.0)),
        "states {:?} {:?}",
        state(&n0.addr4),
        state(&n1.addr4)
    );

    // Failover: node 0's agent dies, node 1 takes over.
    a.kill();
    assert!(wait_until(Duration::from_secs(10), || has_addr(
        &n1.ns, VIP
    )));
    let counted = |prom: &Prometheus| {
        prom.query(&format!(
            "xvrrpd_vrrp_transitions_total{{instance=\"{}:9611\",to=\"MASTER\",reason=\"master_down\"}}",
            n1.addr4
        ))
        .is_ok_and(|r| !r.is_empty())
    };
    assert!(
        wait_until(Duration::from_secs(10), || counted(&prom)),
        "no transition to MASTER counted for node 1"
    );
    let firing = |prom: &Prometheus| {
        prom.alerts().is_ok_and(|alerts| {
            alerts.iter().any(|a| {
                a["labels"]["alertname"] == "VrrpFailover"
                    && a["labels"]["instance"] == format!("{}:9611", n1.addr4)
                    && a["state"] == "firing"
            })
        })
    };
    assert!(
        wait_until(Duration::from_secs(15), || firing(&prom)),
        "VrrpFailover never fired for node 1: {:?}",
        prom.alerts()
    );
}
