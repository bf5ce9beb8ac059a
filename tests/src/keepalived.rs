//! keepalived in the labs: the one keepalived.conf writer ([`KaFile`]), a one-instance
//! shorthand ([`KeepalivedConf`]) and the process ([`Keepalived`]), run as the peer of
//! interop tests and as the classic baseline of the labs and benches.
use std::{fmt::Write as _, path::PathBuf, process::Stdio, time::Duration};

use anyhow::Result;

use crate::{unique, Netns, Proc};

/// keepalived settings for one VRRP instance.
#[derive(Clone, Debug)]
pub struct KeepalivedConf {
    pub version: u8,
    pub vrid: u8,
    pub priority: u8,
    /// Seconds; fractional for v3 (0.01 granularity).
    pub advert_int: f64,
    pub vip: String,
    pub state_master: bool,
    /// Unicast peers (multicast when empty).
    pub unicast_peers: Vec<String>,
    /// keepalived's `old_unicast_checksum`: the multicast group in a unicast advert's
    /// pseudo-header (keepalived before 1.3.6).
    pub old_unicast_checksum: bool,
    /// A keepalived `vrrp_script` tracked by the instance.
    pub script: Option<VrrpScript>,
}

/// keepalived `vrrp_script` settings (the classic MySQL port check).
#[derive(Clone, Debug)]
pub struct VrrpScript {
    pub command: String,
    pub interval_s: u32,
    pub fall: u32,
    pub rise: u32,
    pub weight: i32,
}

impl KeepalivedConf {
    /// The file keepalived reads: this instance (`VI_<vrid>`) and its script.
    pub fn render(&self, iface: &str, router_id: &str) -> String {
        KaFile {
            router_id: router_id.to_string(),
            version: self.version,
            scripts: self
                .script
                .iter()
                .map(|s| ("chk".into(), s.clone()))
                .collect(),
            instances: vec![KaInstance {
                name: format!("VI_{}", self.vrid),
                state_master: self.state_master,
                interface: iface.to_string(),
                vrid: self.vrid,
                priority: self.priority,
                advert_int: self.advert_int,
                unicast_peers: self.unicast_peers.clone(),
                old_unicast_checksum: self.old_unicast_checksum,
                track_scripts: self.script.iter().map(|_| "chk".into()).collect(),
                vips: vec![self.vip.clone()],
            }],
        }
        .render()
    }
}

/// A whole keepalived.conf, the one writer every lab and bench uses: `global_defs`, the
/// `vrrp_script`s, the `vrrp_instance`s.
#[derive(Clone, Debug)]
pub struct KaFile {
    pub router_id: String,
    pub version: u8,
    /// (name, script).
    pub scripts: Vec<(String, VrrpScript)>,
    pub instances: Vec<KaInstance>,
}

/// One `vrrp_instance`.
#[derive(Clone, Debug)]
pub struct KaInstance {
    pub name: String,
    pub state_master: bool,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    /// Seconds; fractional for v3 (0.01 granularity).
    pub advert_int: f64,
    /// Unicast peers (multicast when empty).
    pub unicast_peers: Vec<String>,
    pub old_unicast_checksum: bool,
    /// The `vrrp_script`s it tracks, by name.
    pub track_scripts: Vec<String>,
    /// `address/prefix` each.
    pub vips: Vec<String>,
}

impl KaFile {
    pub fn render(&self) -> String {
        let mut s = format!(
            "global_defs {{\n  router_id {}\n  vrrp_version {}\n  max_auto_priority -1\n  script_user root\n  enable_script_security\n}}\n",
            self.router_id, self.version
        );
        for (name, c) in &self.scripts {
            let _ = write!(
                s,
                "vrrp_script {name} {{\n  script \"{}\"\n  interval {}\n  fall {}\n  rise {}\n  weight {}\n}}\n",
                c.command, c.interval_s, c.fall, c.rise, c.weight
            );
        }
        for i in &self.instances {
            let _ = write!(
                s,
                "vrrp_instance {} {{\n  state {}\n  interface {}\n  virtual_router_id {}\n  priority {}\n  advert_int {}\n",
                i.name,
                if i.state_master { "MASTER" } else { "BACKUP" },
                i.interface,
                i.vrid,
                i.priority,
                i.advert_int
            );
            if !i.unicast_peers.is_empty() {
                let _ = write!(
                    s,
                    "  unicast_peer {{\n    {}\n  }}\n",
                    i.unicast_peers.join("\n    ")
                );
            }
            if i.old_unicast_checksum {
                s.push_str("  old_unicast_checksum\n");
            }
            if !i.track_scripts.is_empty() {
                let _ = write!(
                    s,
                    "  track_script {{\n    {}\n  }}\n",
                    i.track_scripts.join("\n    ")
                );
            }
            let _ = write!(
                s,
                "  virtual_ipaddress {{\n    {}\n  }}\n}}\n",
                i.vips.join("\n    ")
            );
        }
        s
    }
}

/// A keepalived (VRRP subsystem only) running in a namespace with private pid files.
pub struct Keepalived {
    pub proc: Proc,
    pub dir: PathBuf,
}

impl Keepalived {
    pub fn start(ns: &Netns, iface: &str, conf: &KeepalivedConf) -> Result<Self> {
        Self::start_text(ns, &conf.render(iface, &ns.name))
    }

    /// keepalived with a complete keepalived.conf.
    pub fn start_text(ns: &Netns, text: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(unique("xvk"));
        std::fs::create_dir_all(&dir)?;
        let cfg = dir.join("keepalived.conf");
        std::fs::write(&cfg, text)?;
        let mut cmd = ns.command("keepalived");
        cmd.args([
            "--dont-fork",
            "--log-console",
            "--vrrp",
            "--dont-respawn",
            "--no-syslog",
        ])
        .arg("--use-file")
        .arg(&cfg)
        .arg("--pid")
        .arg(dir.join("k.pid"))
        .arg("--vrrp_pid")
        .arg(dir.join("v.pid"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("keepalived.log"))?);
        let proc = Proc::spawn(cmd, "keepalived")?;
        Ok(Self { proc, dir })
    }

    /// A crash: the parent and its VRRP child die at once, no priority-0 advert.
    pub fn kill(&mut self) {
        self.proc.signal_group(libc::SIGKILL);
        self.proc.wait_exit(Duration::from_secs(5));
    }

    /// A clean stop: keepalived sends priority 0 and releases its VIPs.
    pub fn stop(&mut self) -> bool {
        self.proc.signal(libc::SIGTERM);
        self.proc.wait_exit(Duration::from_secs(10))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("keepalived.log")).unwrap_or_default()
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.proc.signal_group(libc::SIGKILL);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_instance_renders_its_script_peers_and_checksum_style() {
        let conf = KeepalivedConf {
            version: 3,
            vrid: 41,
            priority: 100,
            advert_int: 0.1,
            vip: "192.0.2.100/24".into(),
            state_master: false,
            unicast_peers: vec!["192.0.2.11".into(), "192.0.2.12".into()],
            old_unicast_checksum: true,
            script: Some(VrrpScript {
                command: "/bin/true".into(),
                interval_s: 1,
                fall: 2,
                rise: 3,
                weight: -60,
            }),
        };
        let text = conf.render("eth0", "db1");
        let instance = &text[text.find("vrrp_instance VI_41 {").expect("instance")..];
        for line in [
            "  advert_int 0.1\n",
            "  unicast_peer {\n    192.0.2.11\n    192.0.2.12\n  }\n",
            "  old_unicast_checksum\n",
            "  track_script {\n    chk\n  }\n",
            "  virtual_ipaddress {\n    192.0.2.100/24\n  }\n}\n",
        ] {
            assert!(instance.contains(line), "{line:?} missing from\n{text}");
        }
        assert!(text.contains("vrrp_script chk {\n  script \"/bin/true\"\n"));
        assert_eq!(text.matches('{').count(), text.matches('}').count());
    }
}
