//! A real Prometheus (Debian's `prometheus`) in a lab namespace, scraping agents and
//! evaluating the alert rules from `docs/metrics.md`; `promtool` to lint what it reads.
use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::{unique, wait_until, Netns, Proc};

/// Where Prometheus listens inside its namespace.
const LISTEN: &str = "127.0.0.1:9090";

/// The alert rules block of `docs/metrics.md`, as an operator copies it.
pub fn documented_rules() -> Result<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md");
    let doc = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let start = doc
        .find("```yaml\ngroups:")
        .context("docs/metrics.md has no ```yaml groups: block")?
        + "```yaml\n".len();
    let len = doc[start..]
        .find("```")
        .context("unterminated yaml block")?;
    Ok(doc[start..start + len].to_string())
}

/// The same rules with every `for:` shortened to one second: the lab sees an alert fire
/// within seconds of its cause.
pub fn lab_rules(rules: &str) -> String {
    rules
        .lines()
        .map(|l| match l.find("for: ") {
            Some(i) if l.trim_start().starts_with("for: ") => format!("{}for: 1s", &l[..i]),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// `promtool check rules FILE` on `rules`: Err with promtool's words when it refuses them.
pub fn check_rules(rules: &str) -> Result<()> {
    let dir = std::env::temp_dir().join(unique("xvp"));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("rules.yml");
    std::fs::write(&file, rules)?;
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .context("running promtool (cargo xtask setup installs prometheus)");
    let _ = std::fs::remove_dir_all(&dir);
    let out = out?;
    if !out.status.success() {
        bail!(
            "promtool check rules: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `promtool check metrics` on an exposition (the classic text format): the lint
/// problems it reports, empty when none.
pub fn lint_metrics(text: &str) -> Result<String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running promtool (cargo xtask setup installs prometheus)")?;
    child
        .stdin
        .take()
        .context("promtool stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(String::new())
    } else if said.trim().is_empty() {
        bail!(
            "promtool check metrics failed without a word: {:?}",
            out.status
        )
    } else {
        Ok(said)
    }
}

/// Prometheus running in a namespace, scraping `targets` every second and evaluating
/// `rules` every second. Killed and its directory removed on drop.
pub struct Prometheus {
    proc: Proc,
    dir: PathBuf,
    ns: String,
}

impl Prometheus {
    pub fn start(ns: &Netns, targets: &[String], rules: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(unique("xvp"));
        std::fs::create_dir_all(dir.join("data"))?;
        std::fs::write(dir.join("rules.yml"), rules)?;
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: xvrrpd\n    static_configs:\n      - targets: [{}]\n",
                dir.join("rules.yml").display(),
                targets.join(", ")
            ),
        )?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let mut cmd = ns.command("prometheus");
        cmd.arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={LISTEN}"))
        .stdout(Stdio::null())
        .stderr(log);
        let proc = Proc::spawn(cmd, "prometheus")?;
        let p = Self {
            proc,
            dir,
            ns: ns.name.clone(),
        };
        if !wait_until(Duration::from_secs(30), || p.get("/-/ready", &[]).is_ok()) {
            bail!("prometheus not ready within 30 s:\n{}", p.log());
        }
        Ok(p)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// GET from Prometheus's HTTP API inside its namespace; `data` are urlencoded query
    /// parameters.
    fn get(&self, path: &str, data: &[String]) -> Result<String> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "curl", "-sfG", "--max-time", "5"])
            .arg(format!("http://{LISTEN}{path}"));
        for d in data {
            cmd.arg("--data-urlencode").arg(d);
        }
        let out = cmd.output()?;
        if !out.status.success() {
            bail!("GET {path} {data:?}: {:?}", out.status);
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// An instant query: the `data.result` vector.
    pub fn query(&self, expr: &str) -> Result<Vec<Value>> {
        let v: Value =
            serde_json::from_str(&self.get("/api/v1/query", &[format!("query={expr}")])?)?;
        v["data"]["result"]
            .as_array()
            .cloned()
            .with_context(|| format!("query {expr}: {v}"))
    }

    /// The alerts as `/api/v1/alerts` lists them (pending and firing).
    pub fn alerts(&self) -> Result<Vec<Value>> {
        let v: Value = serde_json::from_str(&self.get("/api/v1/alerts", &[])?)?;
        v["data"]["alerts"]
            .as_array()
            .cloned()
            .with_context(|| format!("alerts: {v}"))
    }

    /// The rule groups Prometheus loaded: how many rules.
    pub fn rules_loaded(&self) -> Result<usize> {
        let v: Value = serde_json::from_str(&self.get("/api/v1/rules", &[])?)?;
        Ok(v["data"]["groups"]
            .as_array()
            .map(|g| {
                g.iter()
                    .map(|g| g["rules"].as_array().map_or(0, Vec::len))
                    .sum()
            })
            .unwrap_or(0))
    }

    /// `up` per target, as the last scrape left it.
    pub fn targets_up(&self) -> Result<Vec<(String, f64)>> {
        Ok(self
            .query("up")?
            .iter()
            .map(|s| {
                (
                    s["metric"]["instance"].as_str().unwrap_or("").to_string(),
                    s["value"][1]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(f64::NAN),
                )
            })
            .collect())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.proc.signal_group(libc::SIGKILL);
        let _ = self.proc.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
