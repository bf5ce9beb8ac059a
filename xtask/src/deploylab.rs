//! `cargo xtask deploy-lab`: the .deb on a booted Debian pair, as an operator runs it.
//! Two bookworm containers (systemd as PID 1, booted by systemd-nspawn, each in its own
//! lab network namespace on a shared bridge) run MariaDB from Debian and xvrrpd from
//! `apt install ./xvrrpd_*.deb`, configured from the shipped examples; a third namespace
//! holds a client and a real Prometheus. The containers get only the capabilities the
//! unit's CapabilityBoundingSet names beyond nspawn's own set, so a capability the unit
//! lacks shows up here. Each check is a line of the report; the RESULT line sums them.
use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use xvrrpd_tests::{has_addr, prometheus::Prometheus, unique, wait_until, Segment};

use crate::nspawn::{self, Container};

const WRITE_VIP: &str = "192.0.2.100";
const READ_VIP: &str = "192.0.2.101";
/// The unit's CapabilityBoundingSet (config/xvrrpd.service).
const UNIT_CAPS: &str = "CAP_NET_ADMIN,CAP_NET_RAW,CAP_BPF,CAP_PERFMON,CAP_KILL";

#[derive(clap::Args)]
pub struct DeployLabArgs {
    /// Keep the containers' root filesystems (under target/deploy-lab/) after the run.
    #[arg(long)]
    pub keep: bool,
}

/// One line of the report.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

pub fn run(args: DeployLabArgs) -> Result<()> {
    crate::require_root("cargo xtask deploy-lab")?;
    crate::setup::run()?;
    let deb = crate::deb::build()?;
    let cache = crate::root().join("target/deploy-lab");
    let rootfs = nspawn::rootfs(&cache)?;
    let run_dir = cache.join(unique("run"));
    std::fs::create_dir_all(&run_dir)?;
    let result = scenario(&rootfs, &run_dir, &deb);
    if !args.keep {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    let checks = result?;
    println!("== deploy-lab report");
    for c in &checks {
        println!(
            "  {:<24} {}  {}",
            c.name,
            if c.ok { "ok  " } else { "FAIL" },
            c.detail
        );
    }
    let line: Vec<String> = checks
        .iter()
        .map(|c| format!("{}={}", c.name, if c.ok { "ok" } else { "fail" }))
        .collect();
    println!("RESULT {}", line.join(" "));
    if checks.iter().any(|c| !c.ok) {
        bail!("deploy-lab: a check failed");
    }
    Ok(())
}

fn scenario(rootfs: &Path, run_dir: &Path, deb: &Path) -> Result<Vec<Check>> {
    // Node 0: the client and Prometheus (192.0.2.10); 1: db1 (.11); 2: db2 (.12), the
    // addresses the shipped examples name.
    let seg = Segment::new(3)?;
    let deb_dir = deb.parent().context("deb path")?;
    let deb_name = deb
        .file_name()
        .context("deb name")?
        .to_string_lossy()
        .into_owned();
    let mut dbs = Vec::new();
    for (i, name) in [(1, "db1"), (2, "db2")] {
        eprintln!("deploy-lab: booting {name}");
        let c = Container::boot(
            &unique(&format!("xvd{name}")),
            name,
            rootfs,
            &run_dir.join(name),
            &seg.nodes[i].ns.name,
            UNIT_CAPS,
            &[(deb_dir, "/mnt/deb")],
        )?;
        dbs.push(c);
    }
    for c in &dbs {
        let state = c.wait_booted(Duration::from_secs(120))?;
        eprintln!("deploy-lab: {} booted ({state})", c.host);
    }
    for (i, c) in dbs.iter().enumerate() {
        setup_mariadb(
            c,
            i as u32 + 1,
            if i == 0 { "192.0.2.12" } else { "192.0.2.11" },
        )?;
    }
    dbs[0].exec(&[
        "mariadb",
        "-e",
        "CREATE DATABASE lab; CREATE TABLE lab.w (id BIGINT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(40));",
    ])?;
    for (i, c) in dbs.iter().enumerate() {
        eprintln!("deploy-lab: apt install ./{deb_name} on {}", c.host);
        c.exec(&[
            "apt-get",
            "install",
            "-y",
            "--no-install-recommends",
            &format!("/mnt/deb/{deb_name}"),
        ])?;
        let example = if i == 0 {
            "/etc/xvrrpd/xvrrpd.toml.example"
        } else {
            "/etc/xvrrpd/db2.toml.example"
        };
        let conf = c
            .exec(&["cat", example])?
            .replace(
                "[global]\n",
                "[global]\nmetrics_listen = \"0.0.0.0:9611\"\n",
            )
            // A hook under the unit's sandbox: logger writes to the journal.
            .replacen(
                "# master = [\"/usr/local/bin/db-notify\", \"master\"]",
                "master = [\"/usr/bin/logger\", \"-t\", \"xvrrpd-hook\", \"write master\"]",
                1,
            );
        c.write("/etc/xvrrpd/xvrrpd.toml", &conf)?;
        c.write(
            "/etc/xvrrpd/mysql.cnf",
            "user = xvrrpd\npassword = xvrrpd\n",
        )?;
        c.sh("chmod 600 /etc/xvrrpd/mysql.cnf /etc/xvrrpd/xvrrpd.toml")?;
        // The agent's account exactly as the installed package prints it for this
        // configuration (unlogged, as the pair's other accounts).
        c.sh("{ echo 'SET sql_log_bin = 0;'; xvrrpd grants --flavor mariadb --config /etc/xvrrpd/xvrrpd.toml --password xvrrpd; } | mariadb")
            .context("creating the agent's account from xvrrpd grants")?;
        c.exec(&[
            "xvrrpd",
            "check",
            "--offline",
            "--config",
            "/etc/xvrrpd/xvrrpd.toml",
        ])?;
        c.exec(&["systemctl", "enable", "xvrrpd"])?;
    }
    let mut checks = Vec::new();

    // systemctl start returns once the agent said READY=1: it answers at once.
    let (db1, db2) = (&dbs[0], &dbs[1]);
    let t0 = Instant::now();
    let started = db1.exec(&["systemctl", "start", "xvrrpd"]);
    let took = t0.elapsed();
    let show = db1.exec(&[
        "systemctl",
        "show",
        "-p",
        "ActiveState,SubState,StatusText",
        "xvrrpd",
    ])?;
    let status = db1.exec(&["xvrrpd", "status"]);
    record(
        &mut checks,
        Check {
            name: "ready_notify",
            ok: started.is_ok() && show.contains("ActiveState=active") && status.is_ok(),
            detail: format!(
                "systemctl start returned after {took:?}; then {}; xvrrpd status {}",
                show.trim().replace('\n', ", "),
                if status.is_ok() { "answered" } else { "failed" }
            ),
        },
    );
    if let Err(e) = &started {
        eprintln!("{e:#}\n{}", journal(db1));
    }
    db2.exec(&["systemctl", "start", "xvrrpd"])?;
    let converged = wait_until(Duration::from_secs(30), || {
        has_addr(&seg.nodes[1].ns, WRITE_VIP) && has_addr(&seg.nodes[2].ns, READ_VIP)
    });
    if !converged {
        bail!(
            "the pair never converged (write VIP on db1, read VIP on db2):\n{}\n{}",
            journal(db1),
            journal(db2)
        );
    }
    let status_text = db1.exec(&["systemctl", "status", "--no-pager", "xvrrpd"])?;
    let status_line = status_text
        .lines()
        .find(|l| l.trim_start().starts_with("Status:"))
        .unwrap_or("")
        .trim()
        .to_string();
    record(
        &mut checks,
        Check {
            name: "status_text",
            ok: !status_line.is_empty(),
            detail: format!("systemctl status shows {status_line:?}"),
        },
    );
    let hook = wait_until(Duration::from_secs(5), || {
        db1.exec(&["journalctl", "-t", "xvrrpd-hook", "--no-pager"])
            .is_ok_and(|j| j.contains("write master"))
    });
    record(
        &mut checks,
        Check {
            name: "hooks_run",
            ok: hook,
            detail: format!(
                "the write instance's master hook (logger, under the unit's sandbox) ran: {hook}"
            ),
        },
    );

    // A real Prometheus scraping both agents with the documented rules.
    let rules = xvrrpd_tests::prometheus::lab_rules(&xvrrpd_tests::prometheus::documented_rules()?);
    let prom = Prometheus::start(
        &seg.nodes[0].ns,
        &["192.0.2.11:9611".into(), "192.0.2.12:9611".into()],
        &rules,
    )?;

    // systemctl reload: a priority change applied with no transition.
    let before = transitions(db2);
    let conf = db2.exec(&["cat", "/etc/xvrrpd/xvrrpd.toml"])?;
    let changed = change_read_priority(&conf, 150, 140)?;
    db2.write("/etc/xvrrpd/xvrrpd.toml", &changed)?;
    let reloaded = db2.exec(&["systemctl", "reload", "xvrrpd"]);
    std::thread::sleep(Duration::from_secs(3));
    let read_priority = db2
        .exec(&["xvrrpd", "status", "--json"])
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| {
            v["instances"]
                .as_array()?
                .iter()
                .find(|i| i["name"] == "read")?["configured_priority"]
                .as_u64()
        });
    let after = transitions(db2);
    record(&mut checks, Check {
        name: "reload_no_transition",
        ok: reloaded.is_ok() && after == before && read_priority == Some(140),
        detail: format!(
            "read priority 150 -> 140 on db2: status says {read_priority:?}; transitions in its journal before {before}, after {after}"
        ),
    });

    // A SIGSTOPped agent: the watchdog kills it, systemd restarts it, and the new agent
    // clears the VIP the old one left before any election.
    let pid = main_pid(db1)?;
    let restarts_before = n_restarts(db1)?;
    db1.exec(&["kill", "-STOP", &pid.to_string()])?;
    let t0 = Instant::now();
    let restarted = wait_until(Duration::from_secs(60), || {
        n_restarts(db1).is_ok_and(|n| n > restarts_before)
            && main_pid(db1).is_ok_and(|p| p != 0 && p != pid)
    });
    let took = t0.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let j = journal(db1);
    let cleared = j.contains("VIP left on the interface");
    let watchdog = j.contains("Watchdog timeout") || j.contains("watchdog timeout");
    record(&mut checks, Check {
        name: "watchdog_restart",
        ok: restarted && watchdog && cleared,
        detail: format!(
            "restarted after {took:?}: {restarted}; journal: watchdog timeout {watchdog}, leftover VIP cleared before the election {cleared}"
        ),
    });

    // The failover scenario: the write master's mysqld killed; writes go on through the
    // write VIP from the client.
    let master = if has_addr(&seg.nodes[1].ns, WRITE_VIP) {
        0
    } else {
        1
    };
    let survivor = 1 - master;
    let write = || {
        seg.nodes[0]
            .ns
            .command("mariadb")
            .args([
                "-h",
                WRITE_VIP,
                // The application's account, as the namespace labs' clients: the
                // agent's has nothing on the application's data.
                "-u",
                "app",
                "-papp",
                "--connect-timeout=1",
                "-e",
                "INSERT INTO lab.w (note) VALUES ('deploy-lab')",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let wrote_before = wait_until(Duration::from_secs(20), write);
    dbs[master].exec(&["pkill", "-KILL", "-x", "mariadbd"])?;
    let t0 = Instant::now();
    let moved = wait_until(Duration::from_secs(20), || {
        has_addr(&seg.nodes[survivor + 1].ns, WRITE_VIP) && write()
    });
    let took = t0.elapsed();
    if !moved {
        // Each entry with its structured fields (the message alone says "transition").
        let lines: Vec<String> = journal_json(&dbs[survivor], &[])
            .iter()
            .rev()
            .take(60)
            .rev()
            .map(|e| {
                let fields: Vec<String> = e
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| k.starts_with("XVRRPD_") || *k == "MESSAGE")
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("?")))
                    .collect();
                format!(
                    "{} {}",
                    e["__REALTIME_TIMESTAMP"].as_str().unwrap_or("?"),
                    fields.join(" ")
                )
            })
            .collect();
        eprintln!(
            "deploy-lab: the failover did not happen; {}'s journal:\n{}",
            dbs[survivor].host,
            lines.join("\n")
        );
    }
    record(
        &mut checks,
        Check {
            name: "mysqld_kill_failover",
            ok: wrote_before && moved,
            detail: format!(
                "{}'s mysqld killed: writes through the VIP on {} after {took:?} (writes before the kill: {wrote_before}, after: {moved})",
                dbs[master].host, dbs[survivor].host
            ),
        },
    );

    // Prometheus: both targets up, the failover counted, the VrrpFailover alert firing.
    let fired = wait_until(Duration::from_secs(30), || {
        prom.alerts().is_ok_and(|a| {
            a.iter()
                .any(|a| a["labels"]["alertname"] == "VrrpFailover" && a["state"] == "firing")
        })
    });
    let up = prom.targets_up().unwrap_or_default();
    record(
        &mut checks,
        Check {
            name: "prometheus_alert_fired",
            ok: fired && up.len() == 2 && up.iter().all(|(_, v)| *v == 1.0),
            detail: format!("targets up {up:?}; VrrpFailover firing: {fired}"),
        },
    );

    // systemctl stop on the write master: priority 0, the peer takes over within Skew.
    let w = if has_addr(&seg.nodes[1].ns, WRITE_VIP) {
        0
    } else {
        1
    };
    let peer = 1 - w;
    // The peer's mysqld came back (systemd restarted it): once its check passes again it
    // is a backup that can take over.
    if !wait_until(Duration::from_secs(60), || {
        state_of(&dbs[peer], "write").as_deref() == Some("BACKUP")
    }) {
        bail!(
            "{} never became a healthy backup again:\n{}",
            dbs[peer].host,
            journal(&dbs[peer])
        );
    }
    let since = now_realtime_us(&dbs[peer])?;
    dbs[w].exec(&["systemctl", "stop", "xvrrpd"])?;
    let took_over = wait_until(Duration::from_secs(5), || {
        has_addr(&seg.nodes[peer + 1].ns, WRITE_VIP)
    });
    let gap = takeover_gap_ms(&dbs[w], &dbs[peer], since);
    record(&mut checks, Check {
        name: "stop_prio0",
        ok: took_over && gap.is_some_and(|g| g < 300.0),
        detail: format!(
            "{} stopped: {} master {} ms after the shutdown transition (Master_Down_Interval 360 ms)",
            dbs[w].host,
            dbs[peer].host,
            gap.map_or("?".into(), |g| format!("{g:.0}"))
        ),
    });

    // journald: every record of the events stream as fields, selectable by kind.
    let entries = journal_json(
        &dbs[peer],
        &["XVRRPD_EVENT=transition", "XVRRPD_INSTANCE=write"],
    );
    let transitions_seen = entries
        .iter()
        .filter_map(|e| e["XVRRPD_RECORD"].as_str())
        .filter_map(|r| serde_json::from_str::<xvrrpd_core::events::Record>(r).ok())
        .filter(|r| matches!(r, xvrrpd_core::events::Record::Transition { .. }))
        .count();
    record(&mut checks, Check {
        name: "journald_fields",
        ok: transitions_seen > 0,
        detail: format!(
            "journalctl -u xvrrpd XVRRPD_EVENT=transition XVRRPD_INSTANCE=write: {} entries, {transitions_seen} transition records in XVRRPD_RECORD",
            entries.len()
        ),
    });

    // The configuration's man page opens as an operator would open it.
    let page = dbs[peer]
        .sh("MANWIDTH=100 man -P cat xvrrpd.toml 2>&1")
        .unwrap_or_else(|e| format!("{e:#}"));
    let keys = config_keys();
    let documented = keys.iter().filter(|k| page.contains(*k)).count();
    record(
        &mut checks,
        Check {
            name: "man_xvrrpd_toml",
            ok: page.starts_with("XVRRPD.TOML(5)") && !keys.is_empty() && documented == keys.len(),
            detail: format!(
                "man xvrrpd.toml: {} lines, {documented}/{} configuration keys",
                page.lines().count(),
                keys.len()
            ),
        },
    );

    // apt remove stops the service; apt purge removes what the package installed.
    let c = &dbs[peer];
    let removed = c.exec(&["apt-get", "remove", "-y", "xvrrpd"]);
    let active = c
        .command(&["systemctl", "is-active", "xvrrpd"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let vip_gone = !has_addr(&seg.nodes[peer + 1].ns, WRITE_VIP);
    let purged = c.exec(&["apt-get", "purge", "-y", "xvrrpd"]);
    let left = c
        .sh("ls /etc/xvrrpd/*.example /usr/sbin/xvrrpd /usr/lib/systemd/system/xvrrpd.service 2>/dev/null || true")
        .unwrap_or_default();
    record(
        &mut checks,
        Check {
            name: "apt_remove_purge",
            ok: removed.is_ok()
                && active != "active"
                && vip_gone
                && purged.is_ok()
                && left.trim().is_empty(),
            detail: format!(
                "after remove: service {active}, write VIP gone {vip_gone}; after purge left: {:?}",
                left.trim()
            ),
        },
    );
    drop(prom);
    drop(dbs);
    Ok(checks)
}

/// MariaDB from Debian, set up as the the pair docs/mysql.md describes: server id, binary log with GTIDs,
/// read-only at start, semi-sync both ways, replication from the peer.
fn setup_mariadb(c: &Container, id: u32, peer: &str) -> Result<()> {
    // The pair's my.cnf and statements are the namespace labs' own (one list of settings
    // per flavor, xvrrpd_tests::DbFlavor), here as Debian's MariaDB reads them.
    let flavor = xvrrpd_tests::DbFlavor::Mariadb;
    c.write(
        "/etc/mysql/mariadb.conf.d/60-xvrrpd.cnf",
        &flavor.pair_cnf(id, true),
    )?;
    c.exec(&["systemctl", "restart", "mariadb"])
        .context("restarting MariaDB with the pair's settings")?;
    c.exec(&[
        "mariadb",
        "-e",
        &format!(
            "{} {} {}",
            xvrrpd_tests::DbFlavor::REPLICATION_ACCOUNT,
            xvrrpd_tests::DbFlavor::CLIENT_ACCOUNT,
            flavor.replicate_from(peer)
        ),
    ])?;
    Ok(())
}

/// The read instance's `priority = FROM` line changed to `TO`.
fn change_read_priority(conf: &str, from: u8, to: u8) -> Result<String> {
    let at = conf.find("name = \"read\"").context("no read instance")?;
    let (head, tail) = conf.split_at(at);
    let line = format!("priority = {from}");
    if !tail.contains(&line) {
        bail!("the read instance has no {line:?}");
    }
    Ok(format!(
        "{head}{}",
        tail.replacen(&line, &format!("priority = {to}"), 1)
    ))
}

/// Every key docs/configuration.md documents (the page's source is the same reference).
fn config_keys() -> Vec<String> {
    std::fs::read_to_string(crate::root().join("docs/configuration.md"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next().map(str::to_string))
        .collect()
}

fn journal(c: &Container) -> String {
    c.exec(&["journalctl", "-u", "xvrrpd", "--no-pager", "-n", "200"])
        .unwrap_or_default()
}

/// How many transitions the agent's journal holds (entries with XVRRPD_TO).
fn transitions(c: &Container) -> usize {
    journal_json(c, &[])
        .iter()
        .filter(|e| e.get("XVRRPD_TO").is_some())
        .count()
}

/// The agent's journal entries as JSON objects, with extra `journalctl` matches.
fn journal_json(c: &Container, matches: &[&str]) -> Vec<serde_json::Value> {
    let mut argv = vec!["journalctl", "-u", "xvrrpd", "-o", "json", "--no-pager"];
    argv.extend_from_slice(matches);
    c.exec(&argv)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The state of instance `name` as `xvrrpd status --json` reports it.
fn state_of(c: &Container, name: &str) -> Option<String> {
    let v: serde_json::Value =
        serde_json::from_str(&c.exec(&["xvrrpd", "status", "--json"]).ok()?).ok()?;
    v["instances"]
        .as_array()?
        .iter()
        .find(|i| i["name"] == name)?["state"]
        .as_str()
        .map(String::from)
}

fn main_pid(c: &Container) -> Result<u32> {
    let v = c.exec(&["systemctl", "show", "-p", "MainPID", "--value", "xvrrpd"])?;
    Ok(v.trim().parse()?)
}

fn n_restarts(c: &Container) -> Result<u32> {
    let v = c.exec(&["systemctl", "show", "-p", "NRestarts", "--value", "xvrrpd"])?;
    Ok(v.trim().parse()?)
}

/// The journal's realtime clock (µs), for `--since`-like filtering by timestamp.
fn now_realtime_us(c: &Container) -> Result<u64> {
    let s = c.exec(&["date", "+%s%6N"])?;
    Ok(s.trim().parse()?)
}

/// From the old master's shutdown transition to the peer's transition to MASTER, by
/// their journal timestamps (one host clock), both after `since` (µs).
fn takeover_gap_ms(old: &Container, new: &Container, since: u64) -> Option<f64> {
    let at = |c: &Container, want: &dyn Fn(&serde_json::Value) -> bool| -> Option<u64> {
        journal_json(c, &["XVRRPD_INSTANCE=write"])
            .into_iter()
            .filter(|e| want(e))
            .filter_map(|e| e["__REALTIME_TIMESTAMP"].as_str()?.parse::<u64>().ok())
            .filter(|t| *t >= since)
            .min()
    };
    let down = at(old, &|e| e["XVRRPD_REASON"] == "shutdown")?;
    let up = at(new, &|e| e["XVRRPD_TO"] == "MASTER")?;
    Some((up as f64 - down as f64) / 1000.0)
}

/// Adds `c` to the report, and says it now (the run is long).
fn record(checks: &mut Vec<Check>, c: Check) {
    eprintln!(
        "deploy-lab: {} {}: {}",
        c.name,
        if c.ok { "ok" } else { "FAIL" },
        c.detail
    );
    checks.push(c);
}
