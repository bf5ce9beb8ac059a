//! A real etcd cluster for the lab's witness (Debian's `etcd-server`): one member per
//! namespace given, on its node's address, elections tuned for a LAN (heartbeat 10 ms,
//! election timeout 100 ms, pre-vote on). With TLS, as an operator should run it: a lab
//! CA (made with `openssl`) signs each member's certificate and each client's, and the
//! members ask every client and peer for one (`--client-cert-auth`). Members are killed
//! and their data removed when the cluster is dropped.
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

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
    /// The lab CA and its certificates, with TLS.
    pub pki: Option<Pki>,
}

/// A lab CA and the certificates it signed, as PEM files in one directory.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    /// A new CA named `name` (P-256, valid one day) in `dir`.
    pub fn new(dir: &Path, name: &str) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let pki = Self {
            dir: dir.to_path_buf(),
        };
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN={name}"),
            ],
            &[
                ("-keyout", pki.path("ca.key")),
                ("-out", pki.path("ca.pem")),
            ],
        )?;
        Ok(pki)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The CA's certificate.
    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// Signs a certificate `NAME.pem` (key `NAME.key`) for `cn`: a server's for `ip` (and
    /// a client's too, as etcd's peers are both), or a client's when `ip` is None.
    pub fn issue(&self, name: &str, cn: &str, ip: Option<&str>) -> Result<(PathBuf, PathBuf)> {
        let (key, csr, cert) = (
            self.path(&format!("{name}.key")),
            self.path(&format!("{name}.csr")),
            self.path(&format!("{name}.pem")),
        );
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
            ],
            &[("-keyout", key.clone()), ("-out", csr.clone())],
        )?;
        // A private key, as xvrrpd requires of its own: readable by its owner only.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        let ext = self.path(&format!("{name}.ext"));
        std::fs::write(
            &ext,
            match ip {
                Some(ip) => {
                    format!("subjectAltName = IP:{ip}\nextendedKeyUsage = serverAuth, clientAuth\n")
                }
                None => "extendedKeyUsage = clientAuth\n".into(),
            },
        )?;
        openssl(
            &["x509", "-req", "-days", "1", "-CAcreateserial"],
            &[
                ("-in", csr),
                ("-CA", self.ca()),
                ("-CAkey", self.path("ca.key")),
                ("-extfile", ext),
                ("-out", cert.clone()),
            ],
        )?;
        Ok((cert, key))
    }
}

/// Runs `openssl ARGS FLAG PATH...`; an error with its stderr when it fails.
fn openssl(args: &[&str], files: &[(&str, PathBuf)]) -> Result<()> {
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(args);
    for (flag, path) in files {
        cmd.arg(flag).arg(path);
    }
    let out = cmd
        .output()
        .context("running openssl (apt-get install openssl)")?;
    if !out.status.success() {
        bail!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
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
    /// One member in each of `nodes` (namespace, address), data under `dir`, with TLS
    /// everywhere when `tls`; returns once every member answers its health check.
    pub fn start(nodes: &[(&Netns, &str)], dir: &Path, tls: bool) -> Result<Self> {
        if !Path::new(ETCD).exists() {
            bail!("{ETCD} is missing: apt-get install etcd-server (cargo xtask setup does)");
        }
        let pki = if tls {
            Some(Pki::new(&dir.join("pki"), "xvrrpd lab etcd CA")?)
        } else {
            None
        };
        let scheme = if tls { "https" } else { "http" };
        let token = unique("xve");
        let initial: Vec<String> = nodes
            .iter()
            .enumerate()
            .map(|(i, (_, a))| format!("m{i}={scheme}://{a}:2380"))
            .collect();
        let initial = initial.join(",");
        let mut members = Vec::new();
        for (i, (ns, addr)) in nodes.iter().enumerate() {
            let name = format!("m{i}");
            let data = dir.join(format!("etcd-{name}"));
            let mut args = vec![
                "--name".into(),
                name.clone(),
                "--data-dir".into(),
                data.display().to_string(),
                "--listen-client-urls".into(),
                format!("{scheme}://{addr}:2379"),
                "--advertise-client-urls".into(),
                format!("{scheme}://{addr}:2379"),
                "--listen-peer-urls".into(),
                format!("{scheme}://{addr}:2380"),
                "--initial-advertise-peer-urls".into(),
                format!("{scheme}://{addr}:2380"),
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
            if let Some(pki) = &pki {
                let (cert, key) = pki.issue(&name, &format!("etcd {name}"), Some(addr))?;
                let (cert, key, ca) = (
                    cert.display().to_string(),
                    key.display().to_string(),
                    pki.ca().display().to_string(),
                );
                for (flag, v) in [
                    ("--cert-file", &cert),
                    ("--key-file", &key),
                    ("--trusted-ca-file", &ca),
                    ("--peer-cert-file", &cert),
                    ("--peer-key-file", &key),
                    ("--peer-trusted-ca-file", &ca),
                ] {
                    args.push(flag.into());
                    args.push(v.clone());
                }
                args.push("--client-cert-auth".into());
                args.push("--peer-client-cert-auth".into());
            }
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
        if let Some(pki) = &pki {
            // What the lab's own requests (health, status) use.
            pki.issue("lab", "xvrrpd lab", None)?;
        }
        let c = Self { members, pki };
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

    /// The `[witness]` section for node `node` (its own client certificate with TLS).
    pub fn witness_toml(&self, node: &str) -> Result<String> {
        let list: Vec<String> = self
            .endpoints()
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect();
        let mut s = format!(
            "\n[witness]\netcd = [{}]\nprefix = \"/xvrrpd/lab\"\n",
            list.join(", ")
        );
        if let Some(pki) = &self.pki {
            let (cert, key) = pki.issue(node, &format!("xvrrpd {node}"), None)?;
            s += &format!(
                "\n[witness.tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
                pki.ca().display(),
                cert.display(),
                key.display()
            );
        }
        Ok(s)
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
        self.curl(m, path, &[])
    }

    fn post(&self, m: &Member, path: &str, body: &str) -> Option<String> {
        self.curl(m, path, &["-X", "POST", "-d", body])
    }

    /// `curl` to member `m`'s client URL from its namespace (with the lab's client
    /// certificate under TLS); the body on success.
    fn curl(&self, m: &Member, path: &str, args: &[&str]) -> Option<String> {
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &m.ns, "curl", "-sf", "--max-time", "2"])
            .args(args);
        let url = match &self.pki {
            Some(pki) => {
                cmd.arg("--cacert")
                    .arg(pki.ca())
                    .arg("--cert")
                    .arg(pki.path("lab.pem"))
                    .arg("--key")
                    .arg(pki.path("lab.key"));
                format!("https://{}{path}", m.endpoint())
            }
            None => format!("http://{}{path}", m.endpoint()),
        };
        let out = cmd.arg(url).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
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

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
    }
}
