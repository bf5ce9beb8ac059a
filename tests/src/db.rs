//! Database servers for the labs and tests, one implementation for both flavors:
//! MariaDB from the host's packages, and Oracle MySQL 9.7 from Debian's unstable suite,
//! installed with debootstrap into a root filesystem cached under `target/mysql-root/`
//! and run chrooted (each server in its node's network namespace, its datadir and socket
//! inside the root, reachable from the host by path).
//!
//! What differs between the flavors for a lab pair (server options, pointing a server at
//! its peer, the replication statements an experiment uses) is asked of [`Flavor`];
//! everything else ([`Db`]) is the same code.
use std::{
    collections::HashMap,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context, Result};

use crate::{sh, unique, wait_until, xvrrpd_bin, Netns, Proc};

/// The server family a lab or test runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB 10.11, the host's `mariadb-server`.
    Mariadb,
    /// Oracle MySQL 9.7, Debian unstable's `mysql-server-core`, chrooted.
    Mysql,
}

impl Flavor {
    pub const ALL: [Flavor; 2] = [Flavor::Mariadb, Flavor::Mysql];

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mariadb" => Ok(Self::Mariadb),
            "mysql" => Ok(Self::Mysql),
            _ => bail!("unknown flavor {s:?}: mariadb or mysql"),
        }
    }

    /// The name `--flavor` and `xvrrpd grants --flavor` take.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mariadb => "mariadb",
            Self::Mysql => "mysql",
        }
    }

    pub fn product(self) -> &'static str {
        match self {
            Self::Mariadb => "MariaDB 10.11",
            Self::Mysql => "MySQL 9.7",
        }
    }

    /// The settings of node `id` in a dual-master pair (both VIPs' servers): binary log,
    /// GTIDs, lossless semi-sync both ways, auto-increment series apart. `guarded`: the
    /// my.cnf lines docs/mysql.md recommends under xvrrpd (start read-only, replication
    /// left to the guard); the classic keepalived pair starts writable and replicating.
    /// (name, value) as my.cnf spells them; a None value is a bare flag. One list for the
    /// namespace labs ([`Self::pair_args`]) and the deploy lab's my.cnf
    /// ([`Self::pair_cnf`]).
    pub fn pair_settings(self, id: u32, guarded: bool) -> Vec<(&'static str, Option<String>)> {
        let on = || Some("ON".to_string());
        let mut v: Vec<(&'static str, Option<String>)> = vec![
            ("server_id", Some(id.to_string())),
            ("log_bin", Some(format!("db{id}-bin"))),
            ("sync_binlog", Some("1".into())),
            ("innodb_flush_log_at_trx_commit", Some("1".into())),
            ("auto_increment_increment", Some("2".into())),
            ("auto_increment_offset", Some(id.to_string())),
            // Any address: clients come in on the VIPs, which move.
            ("bind_address", Some("0.0.0.0".into())),
            ("port", Some("3306".into())),
            ("max_connections", Some("200".into())),
        ];
        let (source, replica, no_replica, timeout, point, skip_start, net_timeout) = match self {
            Self::Mariadb => {
                v.extend([
                    ("gtid_domain_id", Some(id.to_string())),
                    ("log_slave_updates", on()),
                    ("binlog_format", Some("ROW".into())),
                ]);
                (
                    "rpl_semi_sync_master_enabled",
                    "rpl_semi_sync_slave_enabled",
                    "rpl_semi_sync_master_wait_no_slave",
                    "rpl_semi_sync_master_timeout",
                    "rpl_semi_sync_master_wait_point",
                    "skip_slave_start",
                    "slave_net_timeout",
                )
            }
            Self::Mysql => {
                v.extend([
                    ("gtid_mode", on()),
                    ("enforce_gtid_consistency", on()),
                    ("log_replica_updates", on()),
                    ("plugin_load_add", Some("semisync_source.so".into())),
                    ("plugin_load_add", Some("semisync_replica.so".into())),
                    // on_errant = "clone" rebuilds a divergent server from its peer.
                    ("plugin_load_add", Some("mysql_clone.so".into())),
                ]);
                (
                    "rpl_semi_sync_source_enabled",
                    "rpl_semi_sync_replica_enabled",
                    "rpl_semi_sync_source_wait_no_replica",
                    "rpl_semi_sync_source_timeout",
                    "rpl_semi_sync_source_wait_point",
                    "skip_replica_start",
                    "replica_net_timeout",
                )
            }
        };
        // After a partition heals, replication notices its dead connection within this
        // (the default 60 s keeps the pair apart that long). docs/mysql.md recommends it.
        v.push((net_timeout, Some("5".into())));
        if guarded {
            v.push(("read_only", on()));
            if self == Self::Mysql {
                v.push(("super_read_only", on()));
            }
            // Lossless: the client hears OK only once the peer has the transaction; no
            // replica connected (the peer is down): do not wait at all.
            v.extend([
                (source, on()),
                (replica, on()),
                (no_replica, Some("OFF".into())),
                (timeout, Some("1000".into())),
                (point, Some("AFTER_SYNC".into())),
            ]);
            // Replication from the peer is the guard's decision (a master replicates
            // from nobody; a returning old master only once compared with the peer).
            v.push((skip_start, None));
        }
        v
    }

    /// [`Self::pair_settings`] as command-line options.
    pub fn pair_args(self, id: u32, guarded: bool) -> Vec<String> {
        self.pair_settings(id, guarded)
            .into_iter()
            .map(|(name, value)| {
                let name = name.replace('_', "-");
                match value {
                    Some(v) => format!("--{name}={v}"),
                    None => format!("--{name}"),
                }
            })
            .collect()
    }

    /// [`Self::pair_settings`] as a my.cnf file.
    pub fn pair_cnf(self, id: u32, guarded: bool) -> String {
        let mut s = String::from("[mysqld]\n");
        for (name, value) in self.pair_settings(id, guarded) {
            match value {
                Some(v) => s.push_str(&format!("{name} = {v}\n")),
                None => s.push_str(&format!("{name}\n")),
            }
        }
        s
    }

    /// The account replication logs in with (`repl`), created unlogged on each server.
    pub const REPLICATION_ACCOUNT: &'static str = "SET sql_log_bin = 0;
         CREATE USER repl@'%' IDENTIFIED BY 'repl';
         GRANT REPLICATION SLAVE ON *.* TO repl@'%';";

    /// The clients' account (`app`, the lab's data only), created unlogged on each
    /// server after [`Self::REPLICATION_ACCOUNT`]: clients never write as the agent.
    pub const CLIENT_ACCOUNT: &'static str = "CREATE USER app@'%' IDENTIFIED BY 'app';
         GRANT SELECT, INSERT, UPDATE, DELETE ON lab.* TO app@'%';";

    /// Points a server at its peer `peer` (user `repl`, password `repl`) by GTIDs and
    /// starts replicating.
    pub fn replicate_from(self, peer: &str) -> String {
        match self {
            Self::Mariadb => format!(
                "CHANGE MASTER TO MASTER_HOST='{peer}', MASTER_PORT=3306, MASTER_USER='repl',
                   MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
                 START SLAVE;"
            ),
            // GET_SOURCE_PUBLIC_KEY: caching_sha2_password over a connection without TLS.
            Self::Mysql => format!(
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST='{peer}', SOURCE_PORT=3306,
                   SOURCE_USER='repl', SOURCE_PASSWORD='repl', SOURCE_AUTO_POSITION=1,
                   SOURCE_CONNECT_RETRY=1, GET_SOURCE_PUBLIC_KEY=1;
                 START REPLICA;"
            ),
        }
    }

    /// The applier kept `secs` seconds behind its source (a lagging replica; it runs,
    /// so nobody restarts it, and a STOP interrupts its wait at once).
    pub fn applier_delay(self, secs: u64) -> String {
        match self {
            // MariaDB changes it only with both threads stopped.
            Self::Mariadb => {
                format!("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = {secs}; START SLAVE;")
            }
            Self::Mysql => format!(
                "STOP REPLICA SQL_THREAD; CHANGE REPLICATION SOURCE TO SOURCE_DELAY = {secs}; START REPLICA SQL_THREAD;"
            ),
        }
    }

    /// The lab's `on_errant` for this flavor (its in-place way out), and what it does.
    pub fn on_errant(self) -> (&'static str, &'static str) {
        match self {
            Self::Mariadb => ("flashback", "undone and archived, then it rejoins."),
            Self::Mysql => (
                "clone",
                "archived, the server rebuilt from the peer (CLONE), then it rejoins.",
            ),
        }
    }

    /// A directory of this flavor's client tools to put first on the agent's PATH (None:
    /// the host's are this flavor's).
    pub fn agent_tools(self) -> Result<Option<PathBuf>> {
        Ok(match self {
            Self::Mariadb => None,
            Self::Mysql => Some(mysql_tools()?),
        })
    }

    /// The agent's own words for this flavor: the lab says what the agent says.
    pub fn dialect(self) -> xvrrpd_core::mysql::dialect::Flavor {
        match self {
            Self::Mariadb => xvrrpd_core::mysql::dialect::Flavor::MariaDb,
            Self::Mysql => xvrrpd_core::mysql::dialect::Flavor::Mysql,
        }
    }

    pub fn stop_applier(self) -> &'static str {
        self.dialect().stop_applier()
    }

    /// Both replica threads stopped, as a DBA does by hand.
    pub fn stop_replica(self) -> &'static str {
        match self {
            Self::Mariadb => "STOP SLAVE",
            Self::Mysql => "STOP REPLICA",
        }
    }

    /// What the server has executed (for the report).
    pub fn executed(self) -> &'static str {
        match self {
            Self::Mariadb => "SELECT @@gtid_binlog_state",
            Self::Mysql => "SELECT @@global.gtid_executed",
        }
    }
}

/// The replica status as the agent reads it (both flavors' column names).
pub use xvrrpd_core::mysql::replica::ReplicaStatus;

/// A database server with its own datadir and socket, started inside a namespace.
pub struct Db {
    pub flavor: Flavor,
    pub proc: Proc,
    /// Its directory as the host sees it.
    pub dir: PathBuf,
    /// Its socket as the host (and the agent) sees it.
    pub socket: PathBuf,
    ns: String,
    extra: Vec<String>,
}

impl Db {
    /// A socket-only server (no TCP, no binary log).
    pub fn start(ns: &Netns, flavor: Flavor) -> Result<Self> {
        Self::start_with(ns, flavor, &["--skip-networking", "--skip-log-bin"])
    }

    /// A server with extra options (server id, binary log, bind address...).
    pub fn start_with(ns: &Netns, flavor: Flavor, extra: &[&str]) -> Result<Self> {
        let id = unique("xvm");
        let dir = match flavor {
            Flavor::Mariadb => std::env::temp_dir().join(&id),
            Flavor::Mysql => mysql_root()?.join("xv").join(&id),
        };
        let data = dir.join("data");
        // A private tmpdir: concurrent bootstraps must not share temporary tables.
        std::fs::create_dir_all(dir.join("tmp"))?;
        match flavor {
            Flavor::Mariadb => {
                std::fs::create_dir_all(&data)?;
                let out = Command::new("mariadb-install-db")
                    .args([
                        "--no-defaults",
                        "--auth-root-authentication-method=normal",
                        "--skip-test-db",
                        "--user=root",
                    ])
                    .arg(format!("--datadir={}", data.display()))
                    .arg(format!("--tmpdir={}", dir.join("tmp").display()))
                    .output()
                    .context("mariadb-install-db")?;
                if !out.status.success() {
                    bail!(
                        "mariadb-install-db failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
            Flavor::Mysql => {
                // A copy of the initialized datadir, without its server_uuid (auto.cnf):
                // each server makes its own, as a freshly installed one would.
                let st = Command::new("cp")
                    .arg("-a")
                    .arg(mysql_template()?)
                    .arg(&data)
                    .status()
                    .context("cp")?;
                if !st.success() {
                    bail!("copying MySQL's initialized datadir failed ({st})");
                }
                let _ = std::fs::remove_file(data.join("auto.cnf"));
            }
        }
        let socket = dir.join("mysqld.sock");
        let db = Self {
            flavor,
            proc: spawn(flavor, &ns.name, &dir, extra)?,
            dir,
            socket,
            ns: ns.name.clone(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        db.wait_ready()?;
        Ok(db)
    }

    fn wait_ready(&self) -> Result<()> {
        let ready = wait_until(Duration::from_secs(60), || {
            std::os::unix::net::UnixStream::connect(&self.socket).is_ok()
        });
        if !ready {
            bail!(
                "{} did not start: {}",
                self.flavor.product(),
                std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Starts the server again on the same datadir (after a kill), waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        self.proc.signal_group(libc::SIGKILL);
        let _ = self.proc.child.wait();
        let _ = std::fs::remove_file(&self.socket);
        // MySQL's lock beside the socket names the dead server's pid, which another
        // process may have by now (the restart then refuses the socket).
        let _ = std::fs::remove_file(self.socket.with_extension("sock.lock"));
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.proc = spawn(self.flavor, &self.ns, &self.dir, &extra)?;
        self.wait_ready()
    }

    /// Runs SQL through the `mariadb` client over the socket, as root (it speaks to
    /// MySQL 9.7 over a socket too).
    pub fn sql(&self, sql: &str) -> Result<String> {
        sh(&[
            "mariadb",
            "--no-defaults",
            "-uroot",
            "-N",
            "-B",
            &format!("--socket={}", self.socket.display()),
            "-e",
            sql,
        ])
    }

    /// SQL that sets the server up (accounts, replication, schema) before any agent runs:
    /// on MySQL with `super_read_only` lifted for it (root writes past `read_only`
    /// alone, as it does on MariaDB), then put back.
    pub fn setup_sql(&self, sql: &str) -> Result<String> {
        match self.flavor {
            Flavor::Mariadb => self.sql(sql),
            Flavor::Mysql => self.sql(&format!(
                "SET @xv_sro = @@global.super_read_only; SET GLOBAL super_read_only = OFF;
                 {sql};
                 SET GLOBAL super_read_only = @xv_sro;"
            )),
        }
    }

    /// Creates the agent's account `xvrrpd` (password `xvrrpd`) exactly as `xvrrpd grants`
    /// prints it for `config` (every feature without one), unlogged: never ALL, never
    /// root. A privilege the agent needs and the docs lack fails the test that needs it.
    pub fn create_agent_account(&self, config: Option<&Path>) -> Result<()> {
        let mut cmd = Command::new(xvrrpd_bin());
        cmd.args([
            "grants",
            "--flavor",
            self.flavor.name(),
            "--password",
            "xvrrpd",
        ]);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let out = cmd.output().context("xvrrpd grants")?;
        if !out.status.success() {
            bail!(
                "xvrrpd grants failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let grants = String::from_utf8(out.stdout).context("xvrrpd grants: not UTF-8")?;
        self.setup_sql(&format!("SET sql_log_bin = 0;\n{grants}"))
            .map(|_| ())
            .context("creating the agent's account from xvrrpd grants")
    }

    /// The replica status (empty when not a replica).
    /// The replica status, by the agent's statement and column reading (empty: not a
    /// replica).
    pub fn replica_status(&self) -> Result<ReplicaStatus> {
        let out = sh(&[
            "mariadb",
            "--no-defaults",
            "-uroot",
            "-B",
            &format!("--socket={}", self.socket.display()),
            "-e",
            self.flavor.dialect().replica_status(),
        ])?;
        let mut lines = out.lines();
        let (Some(head), Some(row)) = (lines.next(), lines.next()) else {
            return Ok(ReplicaStatus::default());
        };
        let cols: HashMap<String, String> = head
            .split('\t')
            .zip(row.split('\t'))
            // The client prints NULL; the agent reads it as empty.
            .map(|(k, v)| (k.to_string(), if v == "NULL" { "" } else { v }.to_string()))
            .collect();
        Ok(ReplicaStatus::from_columns(&cols))
    }

    /// Has the server process exited (killed by someone other than this lab)?
    pub fn exited(&mut self) -> bool {
        matches!(self.proc.child.try_wait(), Ok(Some(_)))
    }

    /// The server process itself (not `ip netns exec`: it execs, so the same pid).
    pub fn signal(&self, sig: i32) {
        self.proc.signal_group(sig);
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.proc.signal_group(libc::SIGCONT);
        self.proc.signal_group(libc::SIGKILL);
        let _ = self.proc.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the server of `flavor` on the datadir under `dir` (host path) in `ns`.
fn spawn(flavor: Flavor, ns: &str, dir: &Path, extra: &[&str]) -> Result<Proc> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]);
    // Paths as the server sees them.
    let inner = match flavor {
        Flavor::Mariadb => {
            cmd.arg("/usr/sbin/mariadbd");
            dir.to_path_buf()
        }
        Flavor::Mysql => {
            // Under a supervisor, as systemd runs it: mysqld asks for a restart (exit
            // code 16) after CLONE INSTANCE, and only when MYSQLD_PARENT_PID names its
            // parent; any other exit ends the loop.
            let root = mysql_root()?;
            cmd.args([
                "sh",
                "-c",
                r#"export MYSQLD_PARENT_PID=$$; while :; do "$@"; rc=$?; [ $rc = 16 ] || exit $rc; done"#,
                "mysqld-supervisor",
                "chroot",
            ])
            .arg(&root)
            .arg("/usr/sbin/mysqld");
            Path::new("/").join(dir.strip_prefix(&root).context("a MySQL dir in its root")?)
        }
    };
    cmd.args(["--no-defaults", "--user=root"])
        .args(extra)
        .args(["--innodb-buffer-pool-size=16M", "--skip-name-resolve"]);
    if flavor == Flavor::Mysql {
        // No X protocol listener; LOAD DATA / SELECT INTO OUTFILE unused (its default
        // directory does not exist in the root).
        cmd.args(["--mysqlx=OFF", "--secure-file-priv="]);
    }
    cmd.arg(format!("--datadir={}", inner.join("data").display()))
        .arg(format!("--tmpdir={}", inner.join("tmp").display()))
        .arg(format!("--socket={}", inner.join("mysqld.sock").display()))
        .arg(format!("--pid-file={}", inner.join("mysqld.pid").display()))
        .arg(format!("--log-error={}", inner.join("error.log").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Proc::spawn(cmd, flavor.name())
}

/// Where the MySQL root filesystem and its initialized datadir are cached.
fn mysql_cache() -> PathBuf {
    std::env::var_os("XVRRPD_MYSQL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
                .join("mysql-root")
        })
}

const MIRROR: &str = "http://deb.debian.org/debian";

/// The root filesystem with Debian unstable's MySQL server and client tools (9.7 today),
/// built with debootstrap on first use (a minute or two; `cargo xtask setup` does it
/// ahead); a marker file says it is complete, a lock keeps two builders apart.
pub fn mysql_root() -> Result<PathBuf> {
    let cache = mysql_cache();
    let root = cache.join("sid");
    let done = cache.join("sid.complete");
    if done.exists() {
        return Ok(root);
    }
    std::fs::create_dir_all(&cache)?;
    let _lock = Lock::take(&cache.join("build.lock"))?;
    if done.exists() {
        return Ok(root);
    }
    if root.exists() {
        std::fs::remove_dir_all(&root).context("removing an incomplete MySQL root")?;
    }
    eprintln!(
        "xvrrpd-tests: debootstrap sid with mysql-server-core into {} (once)",
        root.display()
    );
    let out = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            "--include=mysql-server-core,mysql-client-core,mysql-common",
            "sid",
        ])
        .arg(&root)
        .arg(MIRROR)
        .output()
        .context("running debootstrap (cargo xtask setup installs it)")?;
    if !out.status.success() {
        bail!(
            "debootstrap of the MySQL root failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    std::fs::write(&done, "")?;
    Ok(root)
}

/// A directory with MySQL's command-line tools the agent runs (mysqlbinlog), run from
/// the root with its own loader and libraries (no chroot: the paths they are given are
/// the host's).
pub fn mysql_tools() -> Result<PathBuf> {
    let root = mysql_root()?;
    let bin = mysql_cache().join("bin");
    std::fs::create_dir_all(&bin)?;
    let r = root.display();
    // mysqlbinlog archives the errant transactions before a clone; more tools go here.
    for tool in ["mysqlbinlog", "mysql"] {
        let path = bin.join(tool);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh
exec {r}/lib64/ld-linux-x86-64.so.2 --library-path {r}/lib/x86_64-linux-gnu:{r}/usr/lib/x86_64-linux-gnu {r}/usr/bin/{tool} \"$@\"\n"
            ),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(bin)
}

/// An initialized MySQL datadir (root without a password, over the socket), made once
/// inside the root; servers start on copies of it (initializing takes seconds).
fn mysql_template() -> Result<PathBuf> {
    let root = mysql_root()?;
    let data = root.join("xv-template").join("data");
    let done = root.join("xv-template.complete");
    if done.exists() {
        return Ok(data);
    }
    let _lock = Lock::take(&mysql_cache().join("template.lock"))?;
    if done.exists() {
        return Ok(data);
    }
    let _ = std::fs::remove_dir_all(root.join("xv-template"));
    std::fs::create_dir_all(root.join("xv-template"))?;
    let out = Command::new("chroot")
        .arg(&root)
        .args([
            "/usr/sbin/mysqld",
            "--no-defaults",
            "--initialize-insecure",
            "--user=root",
            "--skip-log-bin",
            "--datadir=/xv-template/data",
            "--log-error=/xv-template/init.log",
        ])
        .output()
        .context("mysqld --initialize-insecure")?;
    if !out.status.success() {
        bail!(
            "initializing MySQL's datadir failed: {}",
            std::fs::read_to_string(root.join("xv-template/init.log")).unwrap_or_default()
        );
    }
    std::fs::write(&done, "")?;
    Ok(data)
}

/// An exclusive lock on a file, held until dropped.
struct Lock {
    _file: std::fs::File,
}

impl Lock {
    fn take(path: &Path) -> Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!(
                "locking {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(Self { _file: f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_flavors_start_guarded_servers_read_only_without_replication() {
        for f in Flavor::ALL {
            let a = f.pair_args(2, true);
            assert!(a.contains(&"--read-only=ON".to_string()), "{f:?}");
            assert!(a
                .iter()
                .any(|a| a.starts_with("--skip-") && a.ends_with("-start")));
            assert!(a.iter().any(|a| a.ends_with("wait-point=AFTER_SYNC")));
            let classic = f.pair_args(2, false);
            assert!(!classic.iter().any(|a| a.contains("read-only")));
        }
        let m = Flavor::Mysql.pair_args(1, true);
        assert!(m.contains(&"--super-read-only=ON".to_string()));
        assert!(!m
            .iter()
            .any(|a| a.contains("slave") || a.contains("master")));
        assert!(!Flavor::Mysql.replicate_from("192.0.2.1").contains("MASTER"));
    }

    /// The deploy lab's my.cnf holds the same settings as the namespace labs' options.
    #[test]
    fn the_pair_cnf_and_the_options_are_one_list() {
        for f in Flavor::ALL {
            let cnf = f.pair_cnf(1, true);
            let lines: Vec<&str> = cnf.lines().skip(1).collect();
            assert_eq!(cnf.lines().next(), Some("[mysqld]"));
            assert_eq!(lines.len(), f.pair_args(1, true).len(), "{f:?}");
            assert!(lines.contains(&"read_only = ON"), "{cnf}");
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("skip_") && l.ends_with("_start")),
                "{cnf}"
            );
        }
    }
}
