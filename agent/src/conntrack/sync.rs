//! The wire format of the connection copy between the agents (pure: no sockets).
//!
//! UDP datagrams on the instance's segment, each authenticated with HMAC-SHA256 under a
//! key both agents read from a mode-600 file. A backup says `Hello` for each instance it
//! may take over to the master it hears; the master answers each new peer with a `Full`
//! copy (in parts), streams `Delta`s as the datapath reports changes, and sends a fresh
//! `Full` every few seconds, which repairs a lost datagram. What arrives only ever fills
//! the receiver's list of connections to tickle at takeover: it never adds a VIP or
//! changes a state.
//!
//! Freshness ([`Fresh`]): each side keeps a random challenge ([`Challenges`]) and every
//! datagram echoes the other side's latest. A master answers a `Hello` whose echo is not
//! its own current or previous challenge with a `Challenge` of the same size (no copy,
//! no amplification), so only a peer that holds the key and heard the master lately is
//! sent the list; a backup takes a `Full`, `Delta` or `Challenge` only if it echoes one
//! of its own last two challenges (a second or two), so a captured datagram replayed
//! later is refused.
use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Conn;
use crate::datapath::event::{addr, raw_addr, Family};

const MAGIC: &[u8; 4] = b"XVCS";
const VERSION: u8 = 2;
const TAG: usize = 32;
/// One entry: family, VIP address and port, client address and port.
const ENTRY: usize = 1 + 16 + 2 + 16 + 2;
/// Entries per datagram: with the header and the tag, under 1400 bytes (no
/// fragmentation on any Ethernet path).
pub const PER_DATAGRAM: usize = 32;
/// Longest instance name carried.
pub const MAX_NAME: usize = 64;

/// One message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// "I may take `instance` over: send me its connections."
    Hello { instance: String },
    /// Part `part` of `parts` of the whole list of generation `gen`.
    Full {
        instance: String,
        gen: u32,
        part: u16,
        parts: u16,
        conns: Vec<Conn>,
    },
    /// Changes since the last message.
    Delta {
        instance: String,
        add: Vec<Conn>,
        remove: Vec<Conn>,
    },
    /// A master's answer to a `Hello` that did not echo its challenge: "say it again with
    /// this one".
    Challenge { instance: String },
}

impl Message {
    pub fn instance(&self) -> &str {
        match self {
            Self::Hello { instance }
            | Self::Full { instance, .. }
            | Self::Delta { instance, .. }
            | Self::Challenge { instance } => instance,
        }
    }
}

/// What makes a datagram fresh: the sender's own challenge, and the receiver's that it
/// echoes (0: none known yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fresh {
    pub nonce: u64,
    pub echo: u64,
}

/// This side's challenge and the one before it: an echo of either is fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Challenges {
    pub current: u64,
    previous: u64,
}

impl Challenges {
    pub fn new(first: u64) -> Self {
        Self {
            current: first | 1,
            previous: first | 1,
        }
    }

    /// A new challenge; the current one stays good until the next rotation.
    pub fn rotate(&mut self, next: u64) {
        self.previous = self.current;
        self.current = next | 1;
    }

    /// Does `echo` name one of this side's last two challenges?
    pub fn holds(&self, echo: u64) -> bool {
        echo != 0 && (echo == self.current || echo == self.previous)
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not an xvrrpd connection-sync datagram")]
    NotOurs,
    #[error("version {0} (this agent speaks {VERSION})")]
    Version(u8),
    #[error("truncated or malformed")]
    Malformed,
    #[error("authentication failed (another key, or altered)")]
    Auth,
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// Encodes `msg` with its freshness, signed with `key`. Lists longer than
/// [`PER_DATAGRAM`] and names longer than [`MAX_NAME`] are the caller's to split or
/// refuse (see [`split`]).
pub fn encode(msg: &Message, fresh: Fresh, key: &[u8]) -> Vec<u8> {
    let (kind, name, gen, part, parts, add, remove): (u8, &str, u32, u16, u16, &[Conn], &[Conn]) =
        match msg {
            Message::Hello { instance } => (1, instance, 0, 0, 0, &[], &[]),
            Message::Full {
                instance,
                gen,
                part,
                parts,
                conns,
            } => (2, instance, *gen, *part, *parts, conns, &[]),
            Message::Delta {
                instance,
                add,
                remove,
            } => (3, instance, 0, 0, 0, add, remove),
            Message::Challenge { instance } => (4, instance, 0, 0, 0, &[], &[]),
        };
    let name = &name.as_bytes()[..name.len().min(MAX_NAME)];
    let mut b = Vec::with_capacity(32 + name.len() + (add.len() + remove.len()) * ENTRY + TAG);
    b.extend_from_slice(MAGIC);
    b.push(VERSION);
    b.push(kind);
    b.push(name.len() as u8);
    b.extend_from_slice(name);
    b.extend_from_slice(&fresh.nonce.to_be_bytes());
    b.extend_from_slice(&fresh.echo.to_be_bytes());
    b.extend_from_slice(&gen.to_be_bytes());
    b.extend_from_slice(&part.to_be_bytes());
    b.extend_from_slice(&parts.to_be_bytes());
    b.extend_from_slice(&(add.len() as u16).to_be_bytes());
    b.extend_from_slice(&(remove.len() as u16).to_be_bytes());
    for c in add.iter().chain(remove) {
        put(&mut b, c);
    }
    let tag = {
        let mut m = mac(key);
        m.update(&b);
        m.finalize().into_bytes()
    };
    b.extend_from_slice(&tag);
    b
}

/// One entry: the family (both ends of a connection share it), then each end's address
/// (16 bytes, IPv4 in the first four) and port.
fn put(b: &mut Vec<u8>, c: &Conn) {
    b.push(if c.vip.is_ipv4() { 4 } else { 6 });
    for a in [c.vip, c.client] {
        b.extend_from_slice(&raw_addr(a.ip()));
        b.extend_from_slice(&a.port().to_be_bytes());
    }
}

/// Checks the tag with `key`, then decodes.
pub fn decode(d: &[u8], key: &[u8]) -> Result<(Message, Fresh), DecodeError> {
    if d.len() < 4 || &d[..4] != MAGIC {
        return Err(DecodeError::NotOurs);
    }
    if d.len() < 7 + TAG {
        return Err(DecodeError::Malformed);
    }
    if d[4] != VERSION {
        return Err(DecodeError::Version(d[4]));
    }
    let (body, tag) = d.split_at(d.len() - TAG);
    let mut m = mac(key);
    m.update(body);
    m.verify_slice(tag).map_err(|_| DecodeError::Auth)?;
    let mut r = Reader { b: body, at: 5 };
    let kind = r.u8()?;
    let n = r.u8()? as usize;
    let instance = String::from_utf8(r.take(n)?.to_vec()).map_err(|_| DecodeError::Malformed)?;
    let fresh = Fresh {
        nonce: r.u64()?,
        echo: r.u64()?,
    };
    let gen = u32::from_be_bytes(r.take(4)?.try_into().expect("4 bytes"));
    let part = r.u16()?;
    let parts = r.u16()?;
    let n_add = r.u16()? as usize;
    let n_rem = r.u16()? as usize;
    let mut entries = Vec::with_capacity((n_add + n_rem).min(PER_DATAGRAM * 4));
    for _ in 0..n_add + n_rem {
        entries.push(r.entry()?);
    }
    if r.at != body.len() {
        return Err(DecodeError::Malformed);
    }
    let remove = entries.split_off(n_add);
    let msg = match kind {
        1 => Message::Hello { instance },
        2 if parts > 0 && part < parts => Message::Full {
            instance,
            gen,
            part,
            parts,
            conns: entries,
        },
        3 => Message::Delta {
            instance,
            add: entries,
            remove,
        },
        4 => Message::Challenge { instance },
        _ => return Err(DecodeError::Malformed),
    };
    Ok((msg, fresh))
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let s = self
            .b
            .get(self.at..self.at + n)
            .ok_or(DecodeError::Malformed)?;
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn addr(&mut self, family: u8) -> Result<SocketAddr, DecodeError> {
        let raw: [u8; 16] = self.take(16)?.try_into().expect("16 bytes");
        let port = self.u16()?;
        let family = match family {
            4 => Family::V4,
            6 => Family::V6,
            _ => return Err(DecodeError::Malformed),
        };
        Ok(SocketAddr::new(addr(family, &raw), port))
    }
    fn entry(&mut self) -> Result<Conn, DecodeError> {
        let family = self.u8()?;
        let vip = self.addr(family)?;
        let client = self.addr(family)?;
        Ok(Conn { vip, client })
    }
}

/// A whole list as `Full` messages of at most [`PER_DATAGRAM`] entries (one empty part
/// for an empty list: "nothing any more" must reach the peer too).
pub fn split(instance: &str, gen: u32, conns: &[Conn]) -> Vec<Message> {
    let chunks: Vec<&[Conn]> = if conns.is_empty() {
        vec![&[]]
    } else {
        conns.chunks(PER_DATAGRAM).collect()
    };
    let parts = chunks.len().min(u16::MAX as usize) as u16;
    chunks
        .into_iter()
        .take(parts as usize)
        .enumerate()
        .map(|(i, c)| Message::Full {
            instance: instance.to_string(),
            gen,
            part: i as u16,
            parts,
            conns: c.to_vec(),
        })
        .collect()
}

/// Deltas of at most [`PER_DATAGRAM`] entries each.
pub fn deltas(instance: &str, add: &[Conn], remove: &[Conn]) -> Vec<Message> {
    let tagged: Vec<(Conn, bool)> = add
        .iter()
        .map(|c| (*c, true))
        .chain(remove.iter().map(|c| (*c, false)))
        .collect();
    tagged
        .chunks(PER_DATAGRAM)
        .map(|chunk| Message::Delta {
            instance: instance.to_string(),
            add: chunk.iter().filter(|(_, a)| *a).map(|(c, _)| *c).collect(),
            remove: chunk.iter().filter(|(_, a)| !*a).map(|(c, _)| *c).collect(),
        })
        .collect()
}

/// Gathers the parts of `Full` copies; yields a list once every part of one generation
/// arrived (a newer generation discards an unfinished older one).
#[derive(Debug, Default)]
pub struct Assembly {
    gen: Option<u32>,
    parts: Vec<Option<Vec<Conn>>>,
}

impl Assembly {
    pub fn add(&mut self, gen: u32, part: u16, parts: u16, conns: Vec<Conn>) -> Option<Vec<Conn>> {
        if self.gen != Some(gen) || self.parts.len() != parts as usize {
            self.gen = Some(gen);
            self.parts = vec![None; parts as usize];
        }
        *self.parts.get_mut(part as usize)? = Some(conns);
        if self.parts.iter().all(Option::is_some) {
            let all = self.parts.drain(..).flatten().flatten().collect();
            self.gen = None;
            return Some(all);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const FRESH: Fresh = Fresh {
        nonce: 0x1234_5678_9abc_def1,
        echo: 77,
    };

    fn conn(i: u16) -> Conn {
        Conn {
            vip: "192.0.2.100:3306".parse().unwrap(),
            client: SocketAddr::new("192.0.2.50".parse().unwrap(), 30000 + i),
        }
    }

    fn conn6(i: u16) -> Conn {
        Conn {
            vip: "[2001:db8::100]:3306".parse().unwrap(),
            client: SocketAddr::new("2001:db8::50".parse().unwrap(), 30000 + i),
        }
    }

    #[test]
    fn every_message_survives_the_wire() {
        for m in [
            Message::Hello {
                instance: "write".into(),
            },
            Message::Full {
                instance: "write".into(),
                gen: 7,
                part: 1,
                parts: 3,
                conns: vec![conn(1), conn6(2)],
            },
            Message::Delta {
                instance: "read".into(),
                add: vec![conn(3)],
                remove: vec![conn6(4), conn(5)],
            },
            Message::Challenge {
                instance: "write".into(),
            },
        ] {
            let d = encode(&m, FRESH, KEY);
            assert!(d.len() < 1400);
            assert_eq!(decode(&d, KEY), Ok((m, FRESH)));
        }
    }

    /// A master's challenge answers a stale hello with a datagram no larger than it: a
    /// replayed hello buys nothing bigger than itself.
    #[test]
    fn a_challenge_is_no_larger_than_the_hello_it_answers() {
        let hello = encode(
            &Message::Hello {
                instance: "write".into(),
            },
            FRESH,
            KEY,
        );
        let challenge = encode(
            &Message::Challenge {
                instance: "write".into(),
            },
            FRESH,
            KEY,
        );
        assert!(challenge.len() <= hello.len());
    }

    /// Only this side's last two challenges are fresh: an echo of an older one (a
    /// datagram captured and replayed after two rotations) is not.
    #[test]
    fn only_the_last_two_challenges_are_fresh() {
        let mut c = Challenges::new(10);
        assert!(c.holds(c.current) && !c.holds(0));
        let first = c.current;
        c.rotate(20);
        assert!(c.holds(first) && c.holds(c.current));
        c.rotate(30);
        assert!(!c.holds(first), "two rotations later");
        assert!(!c.holds(12345));
    }

    #[test]
    fn a_full_datagram_stays_under_the_path_mtu() {
        let conns: Vec<Conn> = (0..PER_DATAGRAM as u16).map(conn6).collect();
        let m = Message::Full {
            instance: "x".repeat(MAX_NAME),
            gen: 1,
            part: 0,
            parts: 1,
            conns,
        };
        let d = encode(&m, FRESH, KEY);
        assert!(d.len() <= 1400, "{}", d.len());
    }

    #[test]
    fn another_key_a_changed_byte_or_a_cut_datagram_is_refused() {
        let d = encode(
            &Message::Delta {
                instance: "write".into(),
                add: vec![conn(1)],
                remove: vec![],
            },
            FRESH,
            KEY,
        );
        assert_eq!(decode(&d, b"another key"), Err(DecodeError::Auth));
        for i in 4..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 1;
            assert!(decode(&bad, KEY).is_err(), "byte {i}");
        }
        for n in 0..d.len() {
            assert!(decode(&d[..n], KEY).is_err(), "cut at {n}");
        }
        assert_eq!(decode(b"GET / HTTP/1.1", KEY), Err(DecodeError::NotOurs));
    }

    #[test]
    fn a_list_is_split_and_assembled_in_any_order() {
        let conns: Vec<Conn> = (0..75).map(conn).collect();
        let mut parts = split("write", 3, &conns);
        assert_eq!(parts.len(), 3);
        parts.reverse();
        let mut a = Assembly::default();
        let mut got = None;
        for p in parts {
            let Message::Full {
                gen,
                part,
                parts,
                conns,
                ..
            } = decode(&encode(&p, FRESH, KEY), KEY).unwrap().0
            else {
                panic!("not full")
            };
            got = a.add(gen, part, parts, conns);
        }
        let mut got = got.expect("assembled");
        got.sort();
        assert_eq!(got, conns);
        // An empty list is one empty part.
        let empty = split("write", 4, &[]);
        assert_eq!(empty.len(), 1);
        let Message::Full { part, parts, .. } = &empty[0] else {
            panic!()
        };
        assert_eq!(a.add(4, *part, *parts, vec![]), Some(vec![]));
    }

    #[test]
    fn deltas_are_cut_to_datagrams() {
        let add: Vec<Conn> = (0..40).map(conn).collect();
        let rem: Vec<Conn> = (40..50).map(conn).collect();
        let ds = deltas("write", &add, &rem);
        assert_eq!(ds.len(), 2);
        let (mut a, mut r) = (0, 0);
        for d in &ds {
            let Message::Delta { add, remove, .. } = d else {
                panic!()
            };
            assert!(add.len() + remove.len() <= PER_DATAGRAM);
            a += add.len();
            r += remove.len();
        }
        assert_eq!((a, r), (40, 10));
    }
}
