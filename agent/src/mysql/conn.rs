//! Connecting to a MySQL / MariaDB server: options from a `mysql` tracker, credentials,
//! and the registry of xvrrpd's own connections (demotion must not kill them).
use std::{
    collections::HashSet,
    ops::{Deref, DerefMut},
    path::Path,
    sync::{LazyLock, Mutex},
};

use mysql_async::{Conn, OptsBuilder};

use crate::config::TrackerConfig;

/// The environment variables that carry the agent's MySQL credentials: read here, and
/// removed from the environment of every program the agent starts (hooks, exec
/// trackers, the MySQL tools).
pub const SECRET_ENV: [&str; 2] = ["XVRRPD_MYSQL_USER", "XVRRPD_MYSQL_PASSWORD"];

/// Credentials: `user` and `password` lines (`key = value`, my.cnf style accepted) from a
/// file that only its owner may read, or the XVRRPD_MYSQL_USER / XVRRPD_MYSQL_PASSWORD
/// environment. Never logged.
pub fn credentials(file: Option<&Path>) -> Result<(Option<String>, Option<String>), String> {
    let Some(path) = file else {
        return Ok((
            std::env::var(SECRET_ENV[0]).ok(),
            std::env::var(SECRET_ENV[1]).ok(),
        ));
    };
    private_file(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (mut user, mut pass) = (None, None);
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_string();
        match k.trim() {
            "user" => user = Some(v),
            "password" => pass = Some(v),
            _ => {}
        }
    }
    Ok((user, pass))
}

/// `cmd` without the credentials' environment variables ([`SECRET_ENV`]): a hook or a
/// check is somebody else's program.
pub fn without_secrets(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    for k in SECRET_ENV {
        cmd.env_remove(k);
    }
    cmd
}

/// A file holding a secret: the file itself (not a symbolic link, which whoever owns it
/// may point elsewhere), owned by the agent's user, readable by nobody else.
pub fn private_file(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symbolic link: name the file itself",
            path.display()
        ));
    }
    // SAFETY: no arguments, cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "{} belongs to uid {}, not to the user xvrrpd runs as (uid {me}): chown it",
            path.display(),
            meta.uid()
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} is readable by group or others (mode {:o}): run chmod 600 on it",
            path.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    Ok(())
}

/// Where and as whom to connect, from a `mysql` tracker's settings.
#[derive(Clone, Debug)]
pub struct Server {
    /// Socket path or host:port: names the server in logs and in the own-connection
    /// registry.
    pub endpoint: String,
    opts: OptsBuilder,
}

impl Server {
    pub fn from_tracker(cfg: &TrackerConfig) -> Result<Self, String> {
        let (user, pass) = credentials(cfg.credentials_file.as_deref())?;
        let mut opts = OptsBuilder::default()
            .user(user)
            .pass(pass)
            .prefer_socket(false);
        let endpoint = if let Some(sock) = &cfg.socket {
            let s = sock.to_string_lossy().into_owned();
            opts = opts.socket(Some(s.clone()));
            s
        } else {
            let host = cfg.host.clone().unwrap_or_else(|| "127.0.0.1".into());
            let port = cfg.port.unwrap_or(3306);
            opts = opts.ip_or_hostname(host.clone()).tcp_port(port);
            format!("{host}:{port}")
        };
        Ok(Self { endpoint, opts })
    }

    /// The same credentials against another server (the replication peer).
    pub fn at(&self, host: &str, port: u16) -> Self {
        Self {
            endpoint: format!("{host}:{port}"),
            opts: self
                .opts
                .clone()
                .socket(None::<String>)
                .ip_or_hostname(host.to_string())
                .tcp_port(port),
        }
    }

    /// The same server and credentials as a `[client]` option group for the MariaDB / MySQL
    /// command-line tools (secret: the caller keeps it in a private file).
    /// The account's user and password (for `CLONE INSTANCE FROM`, which names them).
    pub fn account(&self) -> (Option<String>, Option<String>) {
        let opts = mysql_async::Opts::from(self.opts.clone());
        (opts.user().map(Into::into), opts.pass().map(Into::into))
    }

    pub fn client_options(&self) -> String {
        let opts = mysql_async::Opts::from(self.opts.clone());
        // Quoted: an option file reads `#` as a comment and trims spaces.
        let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
        let mut text = String::from("[client]\n");
        if let Some(u) = opts.user() {
            text += &format!("user={}\n", quote(u));
        }
        if let Some(p) = opts.pass() {
            text += &format!("password={}\n", quote(p));
        }
        match opts.socket() {
            Some(s) => text += &format!("protocol=SOCKET\nsocket={s}\n"),
            None => {
                text += &format!(
                    "protocol=TCP\nhost={}\nport={}\n",
                    opts.ip_or_hostname(),
                    opts.tcp_port()
                )
            }
        }
        text
    }

    /// Where the server listens, for [`super::hung::kill`]; None for a host name other
    /// than `localhost` (no name lookup in the middle of a fence).
    pub fn listener(&self) -> Option<super::hung::Listener> {
        let opts = mysql_async::Opts::from(self.opts.clone());
        if let Some(s) = opts.socket() {
            return Some(super::hung::Listener::Unix(s.into()));
        }
        let host = opts.ip_or_hostname();
        let addr = match host.parse() {
            Ok(ip) => ip,
            Err(_) if host == "localhost" => std::net::IpAddr::from([127, 0, 0, 1]),
            Err(_) => return None,
        };
        Some(super::hung::Listener::Tcp {
            addr,
            port: opts.tcp_port(),
        })
    }

    /// A connection registered as xvrrpd's own for as long as it lives.
    pub async fn connect(&self) -> Result<OwnConn, mysql_async::Error> {
        let conn = Conn::new(self.opts.clone()).await?;
        let key = (self.endpoint.clone(), conn.id());
        own().lock().expect("registry").insert(key.clone());
        Ok(OwnConn { conn, key })
    }
}

fn own() -> &'static Mutex<HashSet<(String, u32)>> {
    static OWN: LazyLock<Mutex<HashSet<(String, u32)>>> = LazyLock::new(Default::default);
    &OWN
}

/// Is connection `id` on `endpoint` one of xvrrpd's own?
pub fn is_own(endpoint: &str, id: u32) -> bool {
    own()
        .lock()
        .expect("registry")
        .contains(&(endpoint.to_string(), id))
}

/// A connection of xvrrpd's; unregistered when dropped.
pub struct OwnConn {
    conn: Conn,
    key: (String, u32),
}

impl Deref for OwnConn {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl DerefMut for OwnConn {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

impl OwnConn {
    /// The server's id for this connection (`CONNECTION_ID()`), what `KILL` takes.
    pub fn id(&self) -> u32 {
        self.key.1
    }
}

impl Drop for OwnConn {
    fn drop(&mut self) {
        own().lock().expect("registry").remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let p = std::env::temp_dir().join(format!("xvrrpd-cred-{}", std::process::id()));
        std::fs::write(&p, "[client]\nuser = xv\npassword = \"s3cret\"\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(credentials(Some(&p)).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            credentials(Some(&p)).unwrap(),
            (Some("xv".into()), Some("s3cret".into()))
        );
        // A link to it is refused: whoever owns the link may point it elsewhere.
        let link = p.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(credentials(Some(&link))
            .unwrap_err()
            .contains("symbolic link"));
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn programs_the_agent_starts_do_not_inherit_its_credentials() {
        let mut cmd = tokio::process::Command::new("true");
        without_secrets(&mut cmd);
        let removed: Vec<String> = cmd
            .as_std()
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        for k in SECRET_ENV {
            assert!(
                removed.iter().any(|r| r == k),
                "{k} is inherited: {removed:?}"
            );
        }
    }
}
