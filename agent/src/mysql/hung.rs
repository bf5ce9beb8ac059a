//! The last resort of a fence: killing the local server process when it hangs.
//!
//! A node that leaves mastership sets `read_only = ON`. A hung mysqld (stopped, wedged on
//! a lock, stuck in the kernel) answers nothing, so the statement waits inside it. The
//! peer counts a server that accepts connections but does not answer for a second as
//! gone and takes the writes. When the hung server resumes, the statements queued in it
//! run in no particular order: clients' commits and reads see `read_only = OFF` for the
//! tens of milliseconds the fence still needs (chaos, hung mysqld: both writable 4–58 ms
//! in 2 runs of 6). Killing the process before the peer's second is up closes that: a
//! killed server never runs what was queued, and it comes back (its service manager
//! restarts it) read-only from my.cnf, its in-doubt commits undone like any errant ones.
//!
//! The process is the one listening on the server's socket. On a Unix socket the kernel
//! says who that is (`SO_PEERCRED` of a connection, which completes in the kernel even
//! while the server is stopped; no privilege needed). Otherwise (a TCP port on a
//! loopback, wildcard or the configured address, or a Unix socket whose backlog is full)
//! it is found the way `ss -p` finds it: the socket's inode in `/proc/net/*`, then the
//! `/proc/PID/fd` link naming it (reading another user's fds needs CAP_SYS_PTRACE and
//! CAP_DAC_READ_SEARCH). Only a process named `mariadbd` or `mysqld` is killed.
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

/// Names of the server processes a hung fence may kill.
const SERVER_NAMES: &[&str] = &["mariadbd", "mysqld"];

/// Where the local server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listener {
    Unix(PathBuf),
    Tcp { addr: IpAddr, port: u16 },
}

impl Listener {
    /// Is nothing listening there (the connection refused, the socket file gone)? A
    /// server in that state cannot take a write, and one that starts again starts
    /// read-only (my.cnf, checked by `xvrrpd check`). False when unsure (no answer).
    pub async fn nobody_listens(&self) -> bool {
        use std::io::ErrorKind::{ConnectionRefused, NotFound};
        let r = match self {
            Self::Unix(p) => tokio::time::timeout(
                std::time::Duration::from_millis(100),
                tokio::net::UnixStream::connect(p),
            )
            .await
            .map(|r| r.map(drop)),
            Self::Tcp { addr, port } => tokio::time::timeout(
                std::time::Duration::from_millis(100),
                tokio::net::TcpStream::connect((*addr, *port)),
            )
            .await
            .map(|r| r.map(drop)),
        };
        matches!(r, Ok(Err(e)) if matches!(e.kind(), ConnectionRefused | NotFound))
    }
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "{}", p.display()),
            Self::Tcp { addr, port } => write!(f, "{}", std::net::SocketAddr::new(*addr, *port)),
        }
    }
}

/// The server's process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub name: String,
}

/// Inodes of the listening Unix sockets bound to `path` in `/proc/net/unix` text
/// (`Num RefCount Protocol Flags Type St Inode Path`; a listener has `__SO_ACCEPTCON`,
/// flag 0x10000).
pub fn unix_inodes(table: &str, path: &Path) -> Vec<u64> {
    let want = path.to_string_lossy();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            let listening = flags & 0x1_0000 != 0;
            (listening && *f.get(7)? == want).then(|| f.get(6)?.parse().ok())?
        })
        .collect()
}

/// Inodes of the TCP sockets listening on `port` at `addr` or a wildcard address, in
/// `/proc/net/tcp` or `/proc/net/tcp6` text (`sl local rem st ... uid timeout inode`,
/// addresses in hex as the kernel stores them, state 0A = LISTEN).
pub fn tcp_inodes(table: &str, addr: IpAddr, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if *f.get(3)? != "0A" {
                return None;
            }
            let (a, p) = f.get(1)?.split_once(':')?;
            let local = proc_addr(a)?;
            let matches = u16::from_str_radix(p, 16).ok()? == port
                && (local == addr || local.is_unspecified() || same_loopback(local, addr));
            matches.then(|| f.get(9)?.parse().ok())?
        })
        .collect()
}

/// `127.0.0.1` asked, `::1` or a v4-mapped loopback bound (or the reverse): the same host.
fn same_loopback(a: IpAddr, b: IpAddr) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    canon(a) == canon(b) || (a.is_loopback() && b.is_loopback())
}

/// An address from `/proc/net/tcp*`: each 32-bit word in host (little-endian) order.
fn proc_addr(hex: &str) -> Option<IpAddr> {
    let words: Option<Vec<u32>> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect();
    let bytes: Vec<u8> = words?.iter().flat_map(|w| w.to_le_bytes()).collect();
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// Kills the server process listening at `listener` (SIGKILL): it must never run the
/// statements queued in it.
pub fn kill(listener: &Listener) -> Result<Process, String> {
    let p = locate(listener)?;
    // SAFETY: kill(2) with a pid read from /proc; no memory is touched.
    if unsafe { libc::kill(p.pid as libc::pid_t, libc::SIGKILL) } != 0 {
        return Err(format!(
            "kill -9 {} ({}): {}",
            p.pid,
            p.name,
            std::io::Error::last_os_error()
        ));
    }
    Ok(p)
}

/// The server process listening at `listener`, if it is `mariadbd` or `mysqld` (what
/// `xvrrpd check` shows, and what [`kill`] would kill).
pub fn locate(listener: &Listener) -> Result<Process, String> {
    let (pid, name) = match listener {
        Listener::Unix(path) => match peer_pid(path) {
            Ok(pid) => (pid, comm(pid)),
            Err(_) => owner_by_inode(listener)?,
        },
        Listener::Tcp { .. } => owner_by_inode(listener)?,
    };
    if !SERVER_NAMES.contains(&name.as_str()) {
        return Err(format!(
            "{listener} is held by process {pid} ({name}), not mariadbd or mysqld: it is never killed"
        ));
    }
    Ok(Process { pid, name })
}

/// The pid of the process listening on Unix socket `path`: a non-blocking connect (the
/// kernel completes it from the backlog, whatever the server is doing), then
/// `SO_PEERCRED`.
fn peer_pid(path: &Path) -> Result<u32, String> {
    use std::os::fd::AsRawFd;
    let sock = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
        .map_err(|e| format!("socket: {e}"))?;
    sock.set_nonblocking(true)
        .map_err(|e| format!("socket: {e}"))?;
    let addr = socket2::SockAddr::unix(path).map_err(|e| format!("{}: {e}", path.display()))?;
    sock.connect(&addr)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, a live ucred.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 || cred.pid <= 0 {
        return Err(format!(
            "SO_PEERCRED on {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(cred.pid as u32)
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The process holding the listening socket, by its inode.
fn owner_by_inode(listener: &Listener) -> Result<(u32, String), String> {
    let inodes = match listener {
        Listener::Unix(path) => unix_inodes(&read("/proc/net/unix")?, path),
        Listener::Tcp { addr, port } => {
            let mut v = tcp_inodes(&read("/proc/net/tcp")?, *addr, *port);
            // No IPv6 on the host is fine.
            v.extend(tcp_inodes(
                &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default(),
                *addr,
                *port,
            ));
            v
        }
    };
    if inodes.is_empty() {
        return Err(format!(
            "no process on this host listens at {listener} (the server is on another host, or in another network namespace)"
        ));
    }
    owner(&inodes)
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

/// The process holding one of `inodes` open, and its name.
fn owner(inodes: &[u64]) -> Result<(u32, String), String> {
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let procs = std::fs::read_dir("/proc").map_err(|e| format!("/proc: {e}"))?;
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A process that exits meanwhile, or a kernel thread, has nothing to read.
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
        });
        if holds {
            return Ok((pid, comm(pid)));
        }
    }
    Err("no process this agent may look into holds the server's listening socket (another user's: needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH; a Unix socket is found without them)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIX: &str = "\
Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 31337 /run/mysqld/mysqld.sock
0000000000000000: 00000003 00000000 00000000 0001 03 31338 /run/mysqld/mysqld.sock
0000000000000000: 00000002 00000000 00010000 0001 01 4242 /run/other.sock
";

    #[test]
    fn the_unix_listener_is_found_by_its_path_not_its_connections() {
        assert_eq!(
            unix_inodes(UNIX, Path::new("/run/mysqld/mysqld.sock")),
            vec![31337]
        );
        assert!(unix_inodes(UNIX, Path::new("/run/none.sock")).is_empty());
    }

    // 127.0.0.1:3306 listening, 0.0.0.0:3307 listening, 127.0.0.1:3306 established.
    const TCP: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 5001 1 0
   1: 00000000:0CEB 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 5002 1 0
   2: 0100007F:0CEA 0100007F:D431 01 00000000:00000000 00:00000000 00000000   106        0 5003 1 0
";
    // :::3306 listening (wildcard), ::1:3308 listening.
    const TCP6: &str = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0CEA 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 6001 1 0
   1: 00000000000000000000000001000000:0CEC 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 6002 1 0
";

    #[test]
    fn a_tcp_listener_matches_its_address_a_wildcard_or_the_same_loopback() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(tcp_inodes(TCP, lo, 3306), vec![5001]);
        assert_eq!(
            tcp_inodes(TCP, "192.0.2.1".parse().unwrap(), 3307),
            vec![5002]
        );
        assert!(tcp_inodes(TCP, "192.0.2.1".parse().unwrap(), 3306).is_empty());
        assert_eq!(tcp_inodes(TCP6, lo, 3306), vec![6001]);
        assert_eq!(tcp_inodes(TCP6, lo, 3308), vec![6002]);
        assert_eq!(tcp_inodes(TCP6, "::1".parse().unwrap(), 3308), vec![6002]);
        assert!(tcp_inodes(TCP6, "2001:db8::1".parse().unwrap(), 3308).is_empty());
    }

    #[test]
    fn proc_addresses_are_decoded_in_host_order() {
        assert_eq!(proc_addr("0100007F"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(
            proc_addr("B80D0120000000000000000001000000"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(proc_addr("zz"), None);
    }

    #[test]
    fn the_process_listening_on_a_unix_socket_is_found_by_its_credentials() {
        let dir = std::env::temp_dir().join(format!("xvrrpd-hung-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mysqld.sock");
        let _ = std::fs::remove_file(&path);
        // Bound and listening, never accepting: like a stopped server.
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(peer_pid(&path), Ok(std::process::id()));
        // This test process is no server: found, and refused.
        let e = locate(&Listener::Unix(path.clone())).unwrap_err();
        assert!(e.contains("not mariadbd or mysqld"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_listener_is_an_error_naming_it() {
        let l = Listener::Unix(PathBuf::from("/nonexistent/xvrrpd-test.sock"));
        let e = kill(&l).unwrap_err();
        assert!(e.contains("/nonexistent/xvrrpd-test.sock"), "{e}");
    }
}
