//! The main loop's side of connection tracking: the datapath's events into each master
//! instance's table, the copy to and from the peers ([`crate::conntrack::sync`]), and
//! ageing out connections whose client went silent.
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::anyhow;
use tokio::{net::UdpSocket, sync::mpsc};
use tracing::{debug, info, warn};
use xvrrpd_common::ConnEvent;

use super::Router;
use crate::{
    conntrack::{
        sync::{self, Assembly, Message},
        Change, Conn, Pending,
    },
    engine::State,
};

/// A peer that has not said hello for this long gets no more copies.
const SUBSCRIBER_TTL: Duration = Duration::from_secs(3);
/// Peers copied to per instance at most (a pair has one; a spoofed source cannot grow
/// the table past this).
const MAX_SUBSCRIBERS: usize = 4;
/// Authenticated datagrams waiting for the main loop at most; more are dropped (the next
/// whole copy repairs what a backup missed).
const QUEUE: usize = 1024;
/// A master's challenge changes this often (a backup's changes with every hello, each
/// second): a peer must have heard the master within two of these to be copied to.
const MASTER_CHALLENGE_EVERY: u32 = 10;
/// A master answers stale hellos for an instance at most this often.
const CHALLENGE_GAP: Duration = Duration::from_millis(100);
/// A master sends each subscriber its whole list this often (repairs lost datagrams).
const FULL_EVERY: u32 = 5;
/// A connection whose client sent nothing for this long is forgotten (its client died
/// without FIN or RST). Generous: an idle pooled connection must stay known.
const CONN_IDLE: Duration = Duration::from_secs(3 * 3600);
/// Ageing runs every this many housekeeping ticks (seconds).
const AGE_EVERY: u32 = 60;

/// An authenticated datagram: who sent it, what it says, how fresh it is.
pub type Received = (SocketAddr, Message, sync::Fresh);

/// The copy between the agents; None in the router when no key is configured.
pub struct ConnSync {
    sock: Arc<UdpSocket>,
    key: Arc<Vec<u8>>,
    port: u16,
    /// Per instance name: the peers that said hello with a fresh echo, when last, and
    /// their challenge (echoed in what they are sent).
    subscribers: HashMap<String, HashMap<SocketAddr, (Instant, u64)>>,
    /// Per instance name, as a backup: the parts of the master's whole copy.
    assemblies: HashMap<String, Assembly>,
    /// This node's challenges: as a backup (rotated with each hello) and as a master
    /// (rotated every [`MASTER_CHALLENGE_EVERY`] seconds).
    backup_challenge: sync::Challenges,
    master_challenge: sync::Challenges,
    /// Per instance name, as a backup: the master's latest challenge, echoed in hellos.
    masters: HashMap<String, u64>,
    /// Per instance name, as a master: when it last answered a stale hello (replayed
    /// hellos get one challenge per [`CHALLENGE_GAP`], not one each).
    challenged: HashMap<String, Instant>,
    pending: Pending,
    gen: u32,
}

impl ConnSync {
    /// Binds the port (every address, both families) and starts the receiving task,
    /// whose authenticated messages arrive on the returned channel.
    pub fn start(key_file: &Path, port: u16) -> anyhow::Result<(Self, mpsc::Receiver<Received>)> {
        let key = Arc::new(crate::conntrack::load_key(key_file)?);
        let std_sock =
            bind(port).map_err(|e| anyhow!("[global] conn_sync_port {port}: binding UDP: {e}"))?;
        let sock = Arc::new(UdpSocket::from_std(std_sock)?);
        let (tx, rx) = mpsc::channel(QUEUE);
        let (rsock, rkey) = (sock.clone(), key.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok((n, from)) = rsock.recv_from(&mut buf).await else {
                    continue;
                };
                match sync::decode(&buf[..n], &rkey) {
                    Ok((m, fresh)) => match tx.try_send((from, m, fresh)) {
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            debug!(%from, "connection copy: queue full, datagram dropped")
                        }
                        Ok(()) => {}
                    },
                    Err(e) => debug!(%from, error = %e, "connection copy: datagram refused"),
                }
            }
        });
        info!(port, "copying client connections with the peers");
        Ok((
            Self {
                sock,
                key,
                port,
                subscribers: HashMap::new(),
                assemblies: HashMap::new(),
                backup_challenge: sync::Challenges::new(random_u64()),
                master_challenge: sync::Challenges::new(random_u64()),
                masters: HashMap::new(),
                challenged: HashMap::new(),
                pending: Pending::default(),
                gen: 0,
            },
            rx,
        ))
    }

    fn send(&self, to: SocketAddr, msg: &Message, fresh: sync::Fresh) {
        // Never blocks the main loop: a full socket buffer drops the datagram, and the
        // next whole copy repairs it.
        let _ = self
            .sock
            .try_send_to(&sync::encode(msg, fresh, &self.key), to);
    }

    /// A backup's hello for `instance` to its master: this node's challenge, and the
    /// master's latest it learned (0: none yet, answered with a challenge).
    fn send_hello(&self, instance: &str, master: IpAddr) {
        let hello = Message::Hello {
            instance: instance.to_string(),
        };
        let fresh = sync::Fresh {
            nonce: self.backup_challenge.current,
            echo: self.masters.get(instance).copied().unwrap_or(0),
        };
        self.send(SocketAddr::new(master, self.port), &hello, fresh);
    }

    /// What a master sends a subscriber whose challenge is `theirs`.
    fn as_master(&self, theirs: u64) -> sync::Fresh {
        sync::Fresh {
            nonce: self.master_challenge.current,
            echo: theirs,
        }
    }

    fn send_full(&mut self, name: &str, conns: &[Conn], to: &[(SocketAddr, u64)]) {
        self.gen = self.gen.wrapping_add(1);
        for m in sync::split(name, self.gen, conns) {
            for (t, theirs) in to {
                self.send(*t, &m, self.as_master(*theirs));
            }
        }
    }
}

/// A random challenge (getrandom(2); never 0).
fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: a valid buffer of its length.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        // Eight bytes from an initialised pool are never short; should the call fail,
        // the clock still makes each challenge one nobody captured before.
        b = (crate::net::monotonic_ns() ^ u64::from(std::process::id()).rotate_left(40))
            .to_ne_bytes();
    }
    u64::from_ne_bytes(b) | 1
}

/// A dual-stack UDP socket on every address (IPv4 only when IPv6 is off).
fn bind(port: u16) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let six = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).and_then(|s| {
        s.set_only_v6(false)?;
        s.bind(&SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port).into())?;
        Ok(s)
    });
    let sock = match six {
        Ok(s) => s,
        Err(_) => {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            s.bind(&SocketAddr::new([0, 0, 0, 0].into(), port).into())?;
            s
        }
    };
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// The same address as the other side of a dual-stack socket sees it.
fn canonical(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

impl Router {
    /// Connection events from the datapath: into the owning master instance's table,
    /// and queued for its subscribers.
    pub(super) fn conn_events(&mut self, evs: Vec<ConnEvent>) {
        for ev in evs {
            let Some((id, ch)) = Change::from_event(&ev) else {
                continue;
            };
            let Some(r) = self.instances.iter_mut().find(|r| r.id as u32 == id) else {
                continue;
            };
            if r.conns.apply(ch) {
                if let Some(s) = &mut self.conn_sync {
                    s.pending.push(&r.cfg.name, ch);
                }
                r.metrics
                    .conns_tracked
                    .get_or_create(&r.labels)
                    .set(r.conns.len() as i64);
            }
        }
    }

    /// A message from a peer: taken only from a configured peer of its instance (its
    /// `peers`, else `unicast_peers`, when any is set) and, as a backup, only from the
    /// master it hears, echoing one of this node's last two challenges.
    pub(super) fn sync_message(&mut self, from: SocketAddr, msg: Message, fresh: sync::Fresh) {
        let from = canonical(from);
        let Some(sync) = &mut self.conn_sync else {
            return;
        };
        let name = msg.instance().to_string();
        let Some(r) = self.instances.iter_mut().find(|r| r.cfg.name == name) else {
            return;
        };
        let peers = r.cfg.advert_sources();
        if !peers.is_empty() && !peers.contains(&from.ip()) {
            debug!(instance = %name, %from, "connection copy: not a configured peer, refused");
            return;
        }
        let master = r.core.state() == State::Master;
        match msg {
            Message::Hello { .. } if master => {
                if !sync.master_challenge.holds(fresh.echo) {
                    // A peer that has not heard this master lately (or a replay): no
                    // copy, only this master's challenge, no larger than the hello.
                    let last = sync.challenged.get(&name);
                    if last.is_none_or(|t| t.elapsed() >= CHALLENGE_GAP) {
                        sync.challenged.insert(name.clone(), Instant::now());
                        let challenge = Message::Challenge {
                            instance: name.clone(),
                        };
                        sync.send(from, &challenge, sync.as_master(fresh.nonce));
                    }
                    return;
                }
                let subs = sync.subscribers.entry(name.clone()).or_default();
                if !subs.contains_key(&from) && subs.len() >= MAX_SUBSCRIBERS {
                    debug!(instance = %name, %from, "connection copy: too many peers, refused");
                    return;
                }
                if subs.insert(from, (Instant::now(), fresh.nonce)).is_none() {
                    info!(instance = %name, peer = %from, connections = r.conns.len(), "a peer asked for the client connections: copying them");
                    let all: Vec<Conn> = r.conns.iter().copied().collect();
                    sync.send_full(&name, &all, &[(from, fresh.nonce)]);
                }
            }
            Message::Hello { .. } => {}
            // Only a backup keeps the master's copy: a master tracks its own.
            _ if master => {}
            // A backup takes the copy from the master it hears, and only fresh.
            _ if r.master_src != Some(from.ip()) || !sync.backup_challenge.holds(fresh.echo) => {
                debug!(instance = %name, %from, "connection copy: not from the master, or stale, refused");
                return;
            }
            // Answered at once: the copy starts a round trip later, not a second.
            Message::Challenge { .. } => {
                sync.masters.insert(name.clone(), fresh.nonce);
                sync.send_hello(&name, from.ip());
            }
            Message::Full {
                gen,
                part,
                parts,
                conns,
                ..
            } => {
                sync.masters.insert(name.clone(), fresh.nonce);
                let a = sync.assemblies.entry(name).or_default();
                if let Some(all) = a.add(gen, part, parts, conns) {
                    r.peer_conns.replace(all);
                }
            }
            Message::Delta { add, remove, .. } => {
                sync.masters.insert(name, fresh.nonce);
                for c in add {
                    r.peer_conns.apply(Change::Add(c));
                }
                for c in remove {
                    r.peer_conns.apply(Change::Remove(c));
                }
            }
        }
        r.metrics
            .peer_conns
            .get_or_create(&r.labels)
            .set(r.peer_conns.len() as i64);
    }

    /// Sends what changed since the last flush to each instance's subscribers.
    pub(super) fn sync_flush(&mut self) {
        let Some(sync) = &mut self.conn_sync else {
            return;
        };
        if sync.pending.is_empty() {
            return;
        }
        for (name, add, remove) in sync.pending.take() {
            let Some(subs) = sync.subscribers.get(&name) else {
                continue;
            };
            let to: Vec<(SocketAddr, u64)> = subs.iter().map(|(a, (_, c))| (*a, *c)).collect();
            for m in sync::deltas(&name, &add, &remove) {
                for (t, theirs) in &to {
                    sync.send(*t, &m, sync.as_master(*theirs));
                }
            }
        }
    }

    /// Once a second: backups say hello to their master, masters send whole copies now
    /// and then and forget silent subscribers, and idle connections age out.
    pub(super) fn conn_housekeeping(&mut self) {
        self.conn_ticks = self.conn_ticks.wrapping_add(1);
        if self.conn_ticks.is_multiple_of(AGE_EVERY) {
            self.age_conns();
        }
        // Tickles whose rounds are over are answered by the kernel again.
        if let Err(e) = self.dp.forget_tickles(None, crate::net::monotonic_ns()) {
            warn!(error = %e, "forgetting answered tickles");
        }
        let full = self.conn_ticks.is_multiple_of(FULL_EVERY);
        let Some(sync) = &mut self.conn_sync else {
            return;
        };
        // A fresh challenge with every hello; the master's lasts longer (see its const).
        sync.backup_challenge.rotate(random_u64());
        if self.conn_ticks.is_multiple_of(MASTER_CHALLENGE_EVERY) {
            sync.master_challenge.rotate(random_u64());
        }
        for r in &self.instances {
            let name = &r.cfg.name;
            if r.core.state() == State::Master {
                sync.assemblies.remove(name);
                sync.masters.remove(name);
                let subs = sync.subscribers.entry(name.clone()).or_default();
                subs.retain(|_, (t, _)| t.elapsed() < SUBSCRIBER_TTL);
                if full && !subs.is_empty() {
                    let to: Vec<(SocketAddr, u64)> =
                        subs.iter().map(|(a, (_, c))| (*a, *c)).collect();
                    let all: Vec<Conn> = r.conns.iter().copied().collect();
                    sync.send_full(name, &all, &to);
                }
            } else if r.cfg.reset_clients {
                sync.subscribers.remove(name);
                if let Some(m) = r.master_src {
                    sync.send_hello(name, m);
                }
            }
        }
    }

    /// Forgets connections whose client sent nothing for [`CONN_IDLE`].
    fn age_conns(&mut self) {
        let Ok(all) = self.dp.conns() else {
            return;
        };
        let now = crate::net::monotonic_ns();
        for (key, seen) in all {
            if now.saturating_sub(seen) < CONN_IDLE.as_nanos() as u64 {
                continue;
            }
            if let Err(e) = self.dp.forget_conn(&key) {
                warn!(error = %e, "ageing out a tracked connection");
                continue;
            }
            let c = Conn::from_key(&key);
            for r in &mut self.instances {
                if r.conns.apply(Change::Remove(c)) {
                    if let Some(s) = &mut self.conn_sync {
                        s.pending.push(&r.cfg.name, Change::Remove(c));
                    }
                    r.metrics
                        .conns_tracked
                        .get_or_create(&r.labels)
                        .set(r.conns.len() as i64);
                }
            }
        }
    }
}
