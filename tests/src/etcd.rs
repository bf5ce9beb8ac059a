//! A real etcd cluster for the lab's witness (Debian's `etcd-server`): one member per
//! namespace given, on its node's address, plain HTTP, elections tuned for a LAN
//! (heartbeat 10 ms, election timeout 100 ms, pre-vote on). Members are killed and their data
//! removed when the cluster is dropped.
use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{bail, Context, Result};

use crate::{unique, wait_until, Netns, Proc};

/// Where Debian puts etcd.
pub const ETCD: &str = "/usr/bin/etcd";

pub struct Member {
    pub name: String,
    pub ns: String,
    pub addr: String,
    proc: Option<Proc>,
    args: Vec<String>,
}

pub struct Cluster {
    pub members: Vec<Member>,
}

impl Member {
    /// `host:port` of its client URL.
    pub fn endpoint(&self) -> String {
        format!("{}:2379", self.addr)
    }

    fn start(&mut self) -> Result<()> {
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, ETCD])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.proc = Some(Proc::spawn(cmd, &format!("etcd {}", self.name))?);
        Ok(())
    }

    /// Kills it (SIGKILL): a member host gone.
    pub fn kill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.signal_group(libc::SIGKILL);
            drop(p);
        }
    }

    /// Starts it again on its data.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.start()
    }
}

impl Cluster {
    /// One member in each of `nodes` (namespace, address), data under `dir`; returns once
    /// every member answers its health check.
    pub fn start(nodes: &[(&Netns, &str)], dir: &Path) -> Result<Self> {
        if !Path::new(ETCD).exists() {
            bail!("{ETCD} is missing: apt-get install etcd-server (cargo xtask setup does)");
        }
        let token = unique("xve");
        let initial: Vec<String> = nodes
            .iter()
            .enumerate()
            .map(|(i, (_, a))| format!("m{i}=http://{a}:2380"))
            .collect();
        let initial = initial.join(",");
        let mut members = Vec::new();
        for (i, (ns, addr)) in nodes.iter().enumerate() {
            let name = format!("m{i}");
            let data = dir.join(format!("etcd-{name}"));
            let args = vec![
                "--name".into(),
                name.clone(),
                "--data-dir".into(),
                data.display().to_string(),
                "--listen-client-urls".into(),
                format!("http://{addr}:2379"),
                "--advertise-client-urls".into(),
                format!("http://{addr}:2379"),
                "--listen-peer-urls".into(),
                format!("http://{addr}:2380"),
                "--initial-advertise-peer-urls".into(),
                format!("http://{addr}:2380"),
                "--initial-cluster".into(),
                initial.clone(),
                "--initial-cluster-token".into(),
                token.clone(),
                "--initial-cluster-state".into(),
                "new".into(),
                // A leader's loss must cost far less than the lease's 500 ms after a
                // renewal: on a LAN, elections in about 100–200 ms.
                "--heartbeat-interval".into(),
                "10".into(),
                "--election-timeout".into(),
                "100".into(),
                // A member cut off and back must not start an election that stalls
                // every write (and every renewal) for a round (3.4's default is off).
                "--pre-vote".into(),
            ];
            let mut m = Member {
                name,
                ns: ns.name.clone(),
                addr: addr.to_string(),
                proc: None,
                args,
            };
            m.start()?;
            members.push(m);
        }
        let c = Self { members };
        for m in &c.members {
            if !wait_until(Duration::from_secs(20), || c.healthy(m)) {
                bail!(
                    "etcd member {} at {} never became healthy",
                    m.name,
                    m.endpoint()
                );
            }
        }
        Ok(c)
    }

    /// The members' client endpoints, for `[witness] etcd`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    /// Does `m` answer `/health` with a leader elected?
    pub fn healthy(&self, m: &Member) -> bool {
        self.get(m, "/health")
            .is_some_and(|b| b.contains("\"true\""))
    }

    /// The member that leads now, by its status (`/v3/maintenance/status`).
    pub fn leader(&self) -> Option<usize> {
        for m in &self.members {
            let Some(body) = self.post(m, "/v3/maintenance/status", "{}") else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let leader = v["leader"].as_str()?;
            let me = v["header"]["member_id"].as_str()?;
            if leader == me {
                return self.members.iter().position(|x| x.name == m.name);
            }
        }
        None
    }

    fn get(&self, m: &Member, path: &str) -> Option<String> {
        curl(m, path, &[])
    }

    fn post(&self, m: &Member, path: &str, body: &str) -> Option<String> {
        curl(m, path, &["-X", "POST", "-d", body])
    }

    /// Kills the leader and starts it again: the others elect a new one meanwhile.
    pub fn change_leader(&mut self) -> Result<String> {
        let i = self.leader().context("no etcd leader to move")?;
        let name = self.members[i].name.clone();
        self.members[i].kill();
        let moved = wait_until(Duration::from_secs(5), || {
            self.leader().is_some_and(|l| l != i)
        });
        self.members[i].restart()?;
        if !moved {
            bail!("no new etcd leader after {name} was killed");
        }
        Ok(name)
    }
}

/// `curl` to member `m`'s client URL from its namespace; the body on success.
fn curl(m: &Member, path: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &m.ns, "curl", "-sf", "--max-time", "2"])
        .args(args)
        .arg(format!("http://{}{path}", m.endpoint()))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
    }
}
