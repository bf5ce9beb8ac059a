//! The lab's clients: the writers (the lab's own, PyMySQL, the mariadb CLI, the bank),
//! the reader, the stale-ARP writer, the greeting waiter and the connect prober.
use super::*;

/// One write attempt by the client.
#[derive(Clone, Debug)]
pub(super) struct Write {
    pub(super) seq: i64,
    pub(super) done_ns: u64,
    /// The server that acknowledged it; None when it failed or its fate is unknown.
    pub(super) server: Option<u32>,
}

pub(super) fn client_opts(ip: &str) -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname(ip.to_string())
        .tcp_port(3306)
        .user(Some("app"))
        .pass(Some("app"))
        .db_name(Some("lab"))
        .prefer_socket(false)
}

pub(super) fn writer(done: Arc<AtomicBool>, writes: Arc<Mutex<Vec<Write>>>, t: Timeline, v: bool) {
    runtime().block_on(async move {
        let mut conn: Option<(Conn, u32)> = None;
        let mut seq = 0i64;
        let mut log = ClientLog::default();
        while !done.load(Ordering::SeqCst) {
            if conn.is_none() {
                match bounded(async {
                    let mut c = connect(WRITE_VIP).await?;
                    let id: Option<u32> = c.query_first("SELECT @@server_id").await?;
                    Ok((c, id.unwrap_or(0)))
                })
                .await
                {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        if std::env::var_os("XVRRPD_LAB_DEBUG").is_some() {
                            eprintln!("client connect {} ms: {e}", mono_ns() / 1_000_000);
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    }
                }
            }
            seq += 1;
            let (c, server) = conn.as_mut().expect("connected");
            let server = *server;
            let r = bounded(c.exec_drop(
                "INSERT INTO w (seq, server_id) VALUES (?, @@server_id)",
                (seq,),
            ))
            .await;
            let done_ns = mono_ns();
            let ok = r.is_ok();
            writes.lock().expect("writes").push(Write {
                seq,
                done_ns,
                server: ok.then_some(server),
            });
            if let Err(e) = &r {
                if std::env::var_os("XVRRPD_LAB_DEBUG").is_some() {
                    eprintln!("client write {} ms: {e}", mono_ns() / 1_000_000);
                }
                conn = None;
            }
            log.result(&t, v, r.is_ok().then_some(server), r.err().as_deref());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
}

/// PyMySQL with its defaults, as an application writes (see [`Client::Pymysql`]). Its
/// commits autocommit-off, as PyMySQL defaults; one line per outcome on stdout.
pub(super) const PYMYSQL: &str = r#"
import pymysql, sys, time
vip, seq, conn, server = sys.argv[1], 0, None, 0
while True:
    if conn is None:
        try:
            conn = pymysql.connect(host=vip, user='app', password='app', database='lab')
            cur = conn.cursor()
            cur.execute('SELECT @@server_id')
            server = cur.fetchone()[0]
        except Exception as e:
            conn = None
            time.sleep(0.002)
            continue
    seq += 1
    try:
        cur.execute('INSERT INTO w (seq, server_id) VALUES (%s, @@server_id)', (seq,))
        conn.commit()
        print('ok', seq, server, time.monotonic_ns(), flush=True)
    except Exception as e:
        print('err', seq, time.monotonic_ns(), repr(e).replace('\n', ' '), flush=True)
        try:
            conn.close()
        except Exception:
            pass
        conn = None
    time.sleep(0.002)
"#;

/// Runs [`PYMYSQL`] (Debian's `python3-pymysql`, with the system Python) in this thread's
/// namespace and records what it reports, until `done`.
pub(super) fn pymysql_writer(
    done: Arc<AtomicBool>,
    writes: Arc<Mutex<Vec<Write>>>,
    t: Timeline,
    v: bool,
) {
    use std::io::BufRead;
    let mut child = match std::process::Command::new("/usr/bin/python3")
        .args(["-c", PYMYSQL, WRITE_VIP])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            note(&t, v, format!("client: cannot start PyMySQL: {e}"));
            return;
        }
    };
    let pid = child.id() as i32;
    let stdout = child.stdout.take().expect("piped");
    // The reader below ends when the client is killed.
    let watcher = std::thread::spawn(move || {
        while !done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: kill(2) on the child this function started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    let mut log = ClientLog::default();
    for line in std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
    {
        let f: Vec<&str> = line.splitn(4, ' ').collect();
        let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
        match f.first() {
            Some(&"ok") => {
                let (Some(seq), Some(server), Some(ns)) = (num(1), num(2), num(3)) else {
                    continue;
                };
                writes.lock().expect("writes").push(Write {
                    seq: seq as i64,
                    done_ns: ns,
                    server: Some(server as u32),
                });
                log.result(&t, v, Some(server as u32), None);
            }
            Some(&"err") => {
                let (Some(seq), Some(ns)) = (num(1), num(2)) else {
                    continue;
                };
                writes.lock().expect("writes").push(Write {
                    seq: seq as i64,
                    done_ns: ns,
                    server: None,
                });
                log.result(&t, v, None, f.get(3).copied());
            }
            _ => {}
        }
    }
    let _ = child.wait();
    let _ = watcher.join();
}

/// What the `mariadb` session printed: a row of an acknowledged write (`seq`, server id
/// from `RETURNING`, in the client's table format), an error (`ERROR 2013 (HY000): ...`:
/// at a prompt, always the statement last typed), or the session ended.
pub(super) enum CliLine {
    Ok(i64, u32),
    Err(String),
    Ended,
}

/// Parses one line of the session's terminal.
pub(super) fn cli_line(line: &str) -> Option<CliLine> {
    let line = plain(line);
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("ERROR ") {
        let msg = rest.split_once(": ").map_or(rest, |(_, m)| m);
        return Some(CliLine::Err(msg.to_string()));
    }
    // "| 642 |         1 |"
    let cells: Vec<&str> = line
        .strip_prefix('|')?
        .strip_suffix('|')?
        .split('|')
        .map(str::trim)
        .collect();
    match cells[..] {
        [seq, server] => Some(CliLine::Ok(seq.parse().ok()?, server.parse().ok()?)),
        _ => None,
    }
}

/// `line` without terminal control: escape sequences (`ESC [ ... letter`, `ESC ( B`),
/// bells and carriage returns.
pub(super) fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            '\u{7}' | '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// The `mariadb` command-line client as someone at its prompt uses it (see
/// [`Client::MariadbCli`]): one interactive session on a terminal (`script` gives it
/// one: a piped session is in batch mode, which never reconnects), one INSERT per line,
/// the next typed once the last one answered; every setting the client's default. A
/// session that exits is started again.
pub(super) fn cli_writer(
    done: Arc<AtomicBool>,
    writes: Arc<Mutex<Vec<Write>>>,
    t: Timeline,
    v: bool,
) {
    use std::io::{BufRead, Write as _};
    use std::process::{Command, Stdio};
    let debug = std::env::var_os("XVRRPD_LAB_DEBUG").is_some();
    let mut log = ClientLog::default();
    let mut seq: i64 = 0;
    while !done.load(Ordering::SeqCst) {
        let session = format!("mariadb -h {WRITE_VIP} -u app -papp lab");
        let mut child = match Command::new("script")
            .args(["-qfec", &session, "/dev/null"])
            // Its history is not the lab's to keep.
            .env("MYSQL_HISTFILE", "/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                note(
                    &t,
                    v,
                    format!("client: cannot start mariadb under script: {e}"),
                );
                return;
            }
        };
        let (tx, rx) = std::sync::mpsc::channel::<(u64, CliLine)>();
        let out = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if debug {
                    eprintln!("client tty {} ms: {line}", mono_ns() / 1_000_000);
                }
                if let Some(l) = cli_line(&line) {
                    let _ = tx.send((mono_ns(), l));
                }
            }
            let _ = tx.send((mono_ns(), CliLine::Ended));
        });
        let mut stdin = child.stdin.take().expect("piped");
        let mut ended = false;
        'session: while !done.load(Ordering::SeqCst) && !ended {
            seq += 1;
            let stmt = format!(
                "INSERT INTO w (seq, server_id) VALUES ({seq}, @@server_id) RETURNING seq, server_id;\n"
            );
            if stdin.write_all(stmt.as_bytes()).is_err() {
                break;
            }
            // Until this line is answered (a retried earlier line may answer first).
            loop {
                let (ns, l) = match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(x) => x,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        if done.load(Ordering::SeqCst) {
                            break 'session;
                        }
                        continue;
                    }
                    Err(_) => {
                        ended = true;
                        break;
                    }
                };
                match l {
                    CliLine::Ok(s, server) => {
                        writes.lock().expect("writes").push(Write {
                            seq: s,
                            done_ns: ns,
                            server: Some(server),
                        });
                        log.result(&t, v, Some(server), None);
                        if s == seq {
                            break;
                        }
                    }
                    CliLine::Err(msg) => {
                        writes.lock().expect("writes").push(Write {
                            seq,
                            done_ns: ns,
                            server: None,
                        });
                        log.result(&t, v, None, Some(&msg));
                        break;
                    }
                    CliLine::Ended => {
                        ended = true;
                        break;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The account workload's client ([`crate::bank::client`]); its statements also go to
/// `writes` (acknowledging server and time) for the outage figures.
pub(super) fn bank_writer(
    done: Arc<AtomicBool>,
    writes: Arc<Mutex<Vec<Write>>>,
    ops: Arc<Mutex<Vec<crate::bank::Op>>>,
    t: Timeline,
    v: bool,
) {
    let mut seq = 0;
    let mut log = ClientLog::default();
    runtime().block_on(crate::bank::client(
        WRITE_VIP,
        done,
        ops,
        |done_ns, server, err| {
            seq += 1;
            writes.lock().expect("writes").push(Write {
                seq,
                done_ns,
                server,
            });
            log.result(&t, v, server, err.as_deref());
        },
    ));
}

/// What a writing client tells the timeline: a line when its writes start being
/// acknowledged by a server (the first time, after failures, or by another server), and
/// one when they start failing.
#[derive(Default)]
pub(super) struct ClientLog {
    failing: bool,
    last_ok: Option<u32>,
}

impl ClientLog {
    fn result(&mut self, t: &Timeline, v: bool, server: Option<u32>, err: Option<&str>) {
        match server {
            Some(s) => {
                if self.failing || self.last_ok != Some(s) {
                    note(
                        t,
                        v,
                        format!("client: writes acknowledged by server_id {s}"),
                    );
                }
                self.failing = false;
                self.last_ok = Some(s);
            }
            None => {
                if !self.failing {
                    let first = err.unwrap_or("").lines().next().unwrap_or("");
                    note(t, v, format!("client: write failed: {first}"));
                }
                self.failing = true;
            }
        }
    }
}

pub(super) fn reader(done: Arc<AtomicBool>, reads: Arc<Mutex<Vec<u64>>>) {
    runtime().block_on(async move {
        let mut conn: Option<Conn> = None;
        while !done.load(Ordering::SeqCst) {
            if conn.is_none() {
                conn = bounded(connect(READ_VIP)).await.ok();
            }
            if let Some(c) = conn.as_mut() {
                match bounded(c.query_first::<i64, _>("SELECT COUNT(*) FROM w")).await {
                    Ok(_) => reads.lock().expect("reads").push(mono_ns()),
                    Err(_) => conn = None,
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The stale client's sequence numbers start here (the main writer's never get there).
pub(super) const STALE_SEQ: i64 = 1_000_000_000;

/// The stale client (see `LabOptions::stale_client`): the builtin writer's loop, its own
/// sequence numbers, through whatever its pinned ARP entry reaches.
pub(super) fn stale_writer(done: Arc<AtomicBool>, writes: Arc<Mutex<Vec<Write>>>) {
    runtime().block_on(async move {
        let mut seq = STALE_SEQ;
        while !done.load(Ordering::SeqCst) {
            let r = bounded(async {
                let mut c = connect(WRITE_VIP).await?;
                let id: Option<u32> = c.query_first("SELECT @@server_id").await?;
                Ok((c, id.unwrap_or(0)))
            })
            .await;
            let Ok((mut c, server)) = r else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            while !done.load(Ordering::SeqCst) {
                seq += 1;
                let r = bounded(c.exec_drop(
                    "INSERT INTO w (seq, server_id) VALUES (?, @@server_id)",
                    (seq,),
                ))
                .await;
                let ok = r.is_ok();
                writes.lock().expect("writes").push(Write {
                    seq,
                    done_ns: mono_ns(),
                    server: ok.then_some(server),
                });
                tokio::time::sleep(Duration::from_millis(5)).await;
                if !ok {
                    break;
                }
            }
        }
    });
}

/// How long the greeting waiter waits at most.
pub(super) const GREETING_WAIT: Duration = Duration::from_secs(20);

/// A client in `ns` that connects to the write VIP 40 ms after `fault_ns` (inside the
/// host-freeze-after-hang window: mysqld stopped, network up) and waits for MySQL's
/// greeting: when its wait ended (ms after the fault) and how.
pub(super) fn wait_for_greeting(
    ns: &str,
    fault_ns: u64,
) -> std::sync::mpsc::Receiver<(f64, String)> {
    use std::io::Read;
    let (tx, rx) = std::sync::mpsc::channel();
    spawn_in_ns(ns, move || {
        std::thread::sleep(Duration::from_millis(40));
        let addr: std::net::SocketAddr = format!("{WRITE_VIP}:3306").parse().expect("VIP");
        let how = match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Err(e) => format!("connect: {e}"),
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(GREETING_WAIT - Duration::from_secs(2)));
                let mut buf = [0u8; 256];
                match s.read(&mut buf) {
                    Ok(0) => "closed".into(),
                    Ok(_) => "greeting".into(),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "reset".into(),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        "no answer".into()
                    }
                    Err(e) => format!("read: {e}"),
                }
            }
        };
        let _ = tx.send(((mono_ns() - fault_ns) as f64 / 1e6, how));
    });
    rx
}

/// Logs in through the write VIP in a loop until `done`, as a client that reconnects
/// does (1 s timeout for the connection and login, 20 ms between attempts; a full
/// login, so the server does not count aborted handshakes against the host): per
/// attempt, when it began (monotonic ns), how long it took (ms) and how it ended.
pub(super) fn probe_connects(done: &AtomicBool) -> Vec<(u64, f64, &'static str)> {
    use std::io::ErrorKind;
    let rt = runtime();
    let mut attempts = Vec::new();
    while !done.load(Ordering::SeqCst) {
        let start = mono_ns();
        let attempt = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), Conn::new(client_opts(WRITE_VIP))).await
        });
        let how = match attempt {
            Err(_) => "no answer",
            Ok(Ok(c)) => {
                let _ = rt.block_on(c.disconnect());
                "logged in"
            }
            Ok(Err(mysql_async::Error::Io(mysql_async::IoError::Io(e)))) => match e.kind() {
                ErrorKind::ConnectionRefused => "refused",
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => "reset",
                ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe => "closed",
                _ => "I/O error",
            },
            Ok(Err(_)) => "error",
        };
        attempts.push((start, (mono_ns() - start) as f64 / 1e6, how));
        std::thread::sleep(Duration::from_millis(20));
    }
    attempts
}
