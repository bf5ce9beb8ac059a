//! Booted Debian containers for `cargo xtask deploy-lab`: a bookworm root filesystem made
//! once with debootstrap (cached under target/deploy-lab/), copied per container, booted
//! by systemd-nspawn with systemd as PID 1 inside a lab network namespace, and commands
//! run inside with nsenter (the host's PID 1 is not systemd, so there is no machined to
//! ask: the container is registered nowhere).
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

/// What the containers need besides systemd: MariaDB (installed from the Debian
/// registry while the root filesystem is built: the containers themselves never reach
/// outside the lab), curl for the checks, procps for pgrep.
/// man-db: the package's pages must open with `man`.
const PACKAGES: &str =
    "systemd,systemd-sysv,dbus,iproute2,mariadb-server,mariadb-client,curl,procps,ca-certificates,man-db";
const MIRROR: &str = "http://deb.debian.org/debian";

/// The bookworm root filesystem, built on first use; a marker file says it is complete,
/// with which packages (a changed list builds it again).
pub fn rootfs(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join("bookworm");
    let done = cache.join("bookworm.complete");
    if std::fs::read_to_string(&done).is_ok_and(|p| p == PACKAGES) {
        return Ok(dir);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).context("removing an incomplete root filesystem")?;
    }
    std::fs::create_dir_all(cache)?;
    eprintln!(
        "deploy-lab: debootstrap bookworm into {} (once)",
        dir.display()
    );
    let st = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={PACKAGES}"),
            "bookworm",
        ])
        .arg(&dir)
        .arg(MIRROR)
        .stdout(Stdio::null())
        .status()
        .context("running debootstrap (cargo xtask setup installs it)")?;
    if !st.success() {
        bail!("debootstrap failed ({st})");
    }
    std::fs::write(&done, PACKAGES)?;
    Ok(dir)
}

/// A booted container.
pub struct Container {
    /// The machine name (unique per run).
    pub name: String,
    /// Its host name (db1, db2): what the report calls it.
    pub host: String,
    pub dir: PathBuf,
    nspawn: Option<Child>,
    /// The container's PID 1, seen from the host.
    pub leader: u32,
    pub console: PathBuf,
}

impl Container {
    /// Copies `rootfs` to `dir`, sets its host name to `hostname` and boots it in the
    /// network namespace `netns` with only `caps` beyond nspawn's own set, `binds`
    /// (host, container) mounted read-only.
    pub fn boot(
        name: &str,
        hostname: &str,
        rootfs: &Path,
        dir: &Path,
        netns: &str,
        caps: &str,
        binds: &[(&Path, &str)],
    ) -> Result<Self> {
        let st = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(rootfs)
            .arg(dir)
            .status()?;
        if !st.success() {
            bail!("copying the root filesystem to {}", dir.display());
        }
        std::fs::write(dir.join("etc/hostname"), format!("{hostname}\n"))?;
        let console = dir.with_extension("console.log");
        let mut cmd = Command::new("systemd-nspawn");
        cmd.arg("-D")
            .arg(dir)
            .args([
                "--boot",
                "--register=no",
                "--keep-unit",
                "--console=pipe",
                "--link-journal=no",
            ])
            .arg(format!("--machine={name}"))
            .arg(format!("--hostname={hostname}"))
            .arg(format!("--network-namespace-path=/run/netns/{netns}"))
            .arg(format!("--capability={caps}"))
            // nspawn's own seccomp filter refuses bpf() with EPERM to every process
            // under the container's init (a process nsentered from the host, outside
            // the filter, loads the XDP program with the unit's five capabilities):
            // allow what the unit's own SystemCallFilter allows.
            .arg("--system-call-filter=bpf perf_event_open");
        for (host, inside) in binds {
            cmd.arg(format!("--bind-ro={}:{inside}", host.display()));
        }
        let log = std::fs::File::create(&console)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd.spawn().context("running systemd-nspawn")?;
        let pid = child.id();
        let mut c = Self {
            name: name.to_string(),
            host: hostname.to_string(),
            dir: dir.to_path_buf(),
            nspawn: Some(child),
            leader: 0,
            console,
        };
        let t0 = Instant::now();
        while c.leader == 0 {
            if t0.elapsed() > Duration::from_secs(20) {
                bail!(
                    "{name}: no container init under nspawn {pid}:\n{}",
                    c.console_log()
                );
            }
            c.leader = find_init(pid).unwrap_or(0);
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(c)
    }

    /// Runs `argv` inside (all of the container's namespaces); its output, or an error
    /// with it when it fails.
    pub fn exec(&self, argv: &[&str]) -> Result<String> {
        let out = self.command(argv).output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "{}: {} failed ({}): {}{}",
                self.name,
                argv.join(" "),
                out.status,
                text,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(text)
    }

    /// `sh -c script` inside.
    pub fn sh(&self, script: &str) -> Result<String> {
        self.exec(&["sh", "-c", script])
    }

    /// The nsenter command for `argv`, not yet run.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.leader.to_string())
            .args(["-m", "-u", "-i", "-n", "-p", "-C", "--"])
            .args([
                "env",
                "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8",
            ])
            .args(argv);
        c
    }

    /// Waits until systemd inside says the boot is over (running or degraded).
    pub fn wait_booted(&self, within: Duration) -> Result<String> {
        let t0 = Instant::now();
        loop {
            let out = self.command(&["systemctl", "is-system-running"]).output()?;
            let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if state == "running" || state == "degraded" {
                return Ok(state);
            }
            if t0.elapsed() > within {
                bail!(
                    "{} did not finish booting within {within:?} (state {state:?}):\n{}",
                    self.name,
                    self.console_log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn console_log(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// Writes `text` to `path` inside (through the host's view of its root).
    pub fn write(&self, path: &str, text: &str) -> Result<()> {
        let p = self.dir.join(path.trim_start_matches('/'));
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, text).with_context(|| format!("{}: writing {path}", self.name))
    }
}

/// The PID of the container's init: the child of nspawn `pid` (or of its child) whose
/// command is systemd.
fn find_init(pid: u32) -> Option<u32> {
    let mut frontier = vec![pid];
    for _ in 0..3 {
        let mut next = Vec::new();
        for p in &frontier {
            for c in children(*p) {
                let comm = std::fs::read_to_string(format!("/proc/{c}/comm")).unwrap_or_default();
                if comm.trim() == "systemd" {
                    return Some(c);
                }
                next.push(c);
            }
        }
        frontier = next;
    }
    None
}

fn children(pid: u32) -> Vec<u32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

impl Drop for Container {
    /// Powers the container off (systemd stops its services), then makes sure nspawn is
    /// gone; its copied root filesystem is removed by the caller's directory.
    fn drop(&mut self) {
        if let Some(mut child) = self.nspawn.take() {
            let _ = self.command(&["systemctl", "poweroff"]).output();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
