//! Clients' TCP connections to the VIPs: tracked by the master's datapath, copied to the
//! peer, so that whoever takes over can tell those clients their connection is gone.
//!
//! A client holding a connection to a master whose host dies hears nothing: a query
//! already acknowledged at TCP level waits for an answer that never comes (hours, with
//! the keepalive defaults), and a retransmitting one waits for its backoff (seconds). The
//! XDP program keeps the master's connections (`ebpf/xvrrpd-ebpf/src/conntrack.rs`); the
//! agent mirrors them per instance ([`Table`]) and streams them to its peers over an
//! authenticated channel ([`sync`]); the backup keeps what it receives per instance, for
//! the takeover.
pub mod sync;
pub mod tickle;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
};

use anyhow::{bail, Context};
use xvrrpd_common::{conn_kind, ConnEvent, ConnKey};

use crate::datapath::event::{addr, raw_addr, Family};

/// Reads the key: a private file of at least 16 bytes.
pub fn load_key(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("[global] conn_sync_key {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "[global] conn_sync_key {} is readable by group or others (mode {:o}): run chmod 600 on it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    let key = std::fs::read(path)
        .with_context(|| format!("[global] conn_sync_key {}", path.display()))?;
    if key.len() < 16 {
        bail!(
            "[global] conn_sync_key {} holds {} bytes: at least 16 are needed (head -c 32 /dev/urandom > {})",
            path.display(),
            key.len(),
            path.display()
        );
    }
    Ok(key)
}

/// One client connection to a VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Conn {
    pub vip: SocketAddr,
    pub client: SocketAddr,
}

impl Conn {
    /// From the datapath's key (addresses as the client's segment carried them).
    pub fn from_key(k: &ConnKey) -> Self {
        let family = Family::from_raw(k.family);
        Self {
            vip: SocketAddr::new(addr(family, &k.vip), k.vip_port),
            client: SocketAddr::new(addr(family, &k.client), k.client_port),
        }
    }

    /// The datapath's key for this connection arriving on interface `ifindex`.
    pub fn key(&self, ifindex: u32) -> ConnKey {
        let family = match self.vip {
            SocketAddr::V4(_) => xvrrpd_common::FAMILY_V4,
            SocketAddr::V6(_) => xvrrpd_common::FAMILY_V6,
        };
        ConnKey {
            ifindex,
            family,
            vip_port: self.vip.port(),
            vip: raw_addr(self.vip.ip()),
            client: raw_addr(self.client.ip()),
            client_port: self.client.port(),
            ..ConnKey::default()
        }
    }
}

impl std::fmt::Display for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.client, self.vip)
    }
}

/// A change the datapath reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Add(Conn),
    Remove(Conn),
}

impl Change {
    /// The instance id and change an event carries; None for an unknown kind.
    pub fn from_event(e: &ConnEvent) -> Option<(u32, Self)> {
        let c = Conn::from_key(&e.key);
        match e.kind {
            conn_kind::ADD => Some((e.instance, Self::Add(c))),
            conn_kind::REMOVE => Some((e.instance, Self::Remove(c))),
            _ => None,
        }
    }
}

/// The connections of one instance, bounded: beyond `max` new ones are counted as
/// dropped, not kept (the kernel map has its own bound; this one guards the copy a peer
/// sends).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    conns: BTreeSet<Conn>,
    max: usize,
    pub dropped: u64,
}

impl Table {
    pub fn new(max: usize) -> Self {
        Self {
            conns: BTreeSet::new(),
            max,
            dropped: 0,
        }
    }

    /// Applies a change; true when the table changed.
    pub fn apply(&mut self, ch: Change) -> bool {
        match ch {
            Change::Add(c) if self.conns.contains(&c) => false,
            Change::Add(_) if self.conns.len() >= self.max => {
                self.dropped += 1;
                false
            }
            Change::Add(c) => self.conns.insert(c),
            Change::Remove(c) => self.conns.remove(&c),
        }
    }

    /// Replaces everything (a full copy from the peer), keeping at most `max`.
    pub fn replace(&mut self, all: impl IntoIterator<Item = Conn>) {
        self.conns.clear();
        for c in all {
            self.apply(Change::Add(c));
        }
    }

    pub fn clear(&mut self) {
        self.conns.clear();
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.conns.iter()
    }
}

/// Changes waiting to be sent to the peers, per instance name: the latest change of a
/// connection wins (an add then a remove within one batch sends the remove only).
#[derive(Clone, Debug, Default)]
pub struct Pending {
    by_instance: BTreeMap<String, BTreeMap<Conn, bool>>,
}

impl Pending {
    pub fn push(&mut self, instance: &str, ch: Change) {
        let (c, add) = match ch {
            Change::Add(c) => (c, true),
            Change::Remove(c) => (c, false),
        };
        self.by_instance
            .entry(instance.to_string())
            .or_default()
            .insert(c, add);
    }

    /// Everything pending, emptied: (instance, added, removed).
    pub fn take(&mut self) -> Vec<(String, Vec<Conn>, Vec<Conn>)> {
        std::mem::take(&mut self.by_instance)
            .into_iter()
            .map(|(name, m)| {
                let (add, rem): (Vec<_>, Vec<_>) = m.into_iter().partition(|(_, a)| *a);
                (
                    name,
                    add.into_iter().map(|(c, _)| c).collect(),
                    rem.into_iter().map(|(c, _)| c).collect(),
                )
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.by_instance.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;
    use xvrrpd_common::FAMILY_V6;

    fn conn(port: u16) -> Conn {
        Conn {
            vip: "192.0.2.100:3306".parse().unwrap(),
            client: SocketAddr::new("192.0.2.50".parse().unwrap(), port),
        }
    }

    #[test]
    fn a_datapath_key_names_the_vip_and_the_client() {
        let mut k = ConnKey {
            family: xvrrpd_common::FAMILY_V4,
            vip_port: 3306,
            client_port: 40000,
            ..ConnKey::default()
        };
        k.vip[..4].copy_from_slice(&[192, 0, 2, 100]);
        k.client[..4].copy_from_slice(&[192, 0, 2, 50]);
        assert_eq!(Conn::from_key(&k), conn(40000));
        k.ifindex = 7;
        assert_eq!(conn(40000).key(7), k, "and back");
        k.family = FAMILY_V6;
        k.vip = "2001:db8::100".parse::<Ipv6Addr>().unwrap().octets();
        k.client = "2001:db8::50".parse::<Ipv6Addr>().unwrap().octets();
        assert_eq!(
            Conn::from_key(&k).to_string(),
            "[2001:db8::50]:40000 -> [2001:db8::100]:3306"
        );
        assert_eq!(Conn::from_key(&k).key(7), k);
    }

    #[test]
    fn the_table_is_bounded_and_counts_what_it_drops() {
        let mut t = Table::new(2);
        assert!(t.apply(Change::Add(conn(1))));
        assert!(!t.apply(Change::Add(conn(1))));
        assert!(t.apply(Change::Add(conn(2))));
        assert!(!t.apply(Change::Add(conn(3))));
        assert_eq!((t.len(), t.dropped), (2, 1));
        assert!(t.apply(Change::Remove(conn(1))));
        assert!(t.apply(Change::Add(conn(3))));
        t.replace([conn(7), conn(8), conn(9)]);
        assert_eq!(
            t.iter().copied().collect::<Vec<_>>(),
            vec![conn(7), conn(8)]
        );
    }

    #[test]
    fn pending_changes_keep_the_latest_per_connection() {
        let mut p = Pending::default();
        p.push("write", Change::Add(conn(1)));
        p.push("write", Change::Remove(conn(1)));
        p.push("write", Change::Add(conn(2)));
        p.push("read", Change::Add(conn(3)));
        let out = p.take();
        assert!(p.is_empty());
        assert_eq!(
            out,
            vec![
                ("read".to_string(), vec![conn(3)], vec![]),
                ("write".to_string(), vec![conn(2)], vec![conn(1)]),
            ]
        );
    }
}
