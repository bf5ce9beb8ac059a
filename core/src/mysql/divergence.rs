//! Errant transactions: what a server committed itself that its peer never received.
//!
//! A master that loses its role can keep a few transactions nobody else has: a commit
//! the fence killed while it waited for the semi-sync ACK (committed here, its client
//! told nothing), or one acknowledged after the semi-sync timeout fell back to async on a
//! cut-off master. They must never flow to the new master: with row-based replication
//! their row images silently overwrite what the new master acknowledged since. So a
//! master replicates from nobody, and a node that leaves mastership compares its
//! executed GTIDs with its peer's before it replicates again or rejoins the election
//! ([`rejoin`]). Where crash recovery could not remove them (MariaDB's semi-sync slave
//! recovery rolls back and truncates what was only prepared), the node is *divergent*:
//! read-only, out of the election, its errant GTIDs reported, until it is rebuilt.
//!
//! Pure: the guard reads the GTID states, this module says what they mean.
use std::{collections::BTreeMap, fmt};

use super::{gtid, term::PeerTerm};

/// Errant transactions as GTIDs or ranges, for logs, events and status.
pub fn names(extras: &[Extra]) -> Vec<String> {
    extras.iter().map(ToString::to_string).collect()
}

/// One server's executed transactions, by origin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Executed {
    /// MariaDB: (domain, origin server_id) → highest sequence number; MySQL: origin
    /// server_uuid → intervals of transaction numbers (domain unused, 0).
    maria: BTreeMap<(u32, u32), u64>,
    mysql: BTreeMap<String, Vec<(u64, u64)>>,
}

/// Transactions one server holds and the other lacks, from one origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extra {
    /// MariaDB: in `domain`, from `server`, sequence numbers after `after` up to `last`
    /// (in a domain shared by both servers some of those numbers are the other origin's).
    Maria {
        domain: u32,
        server: u32,
        after: Option<u64>,
        last: u64,
    },
    /// MySQL: `uuid:a-b:c-d` (`uuid` is `uuid:tag` for tagged transactions).
    Mysql {
        uuid: String,
        ranges: Vec<(u64, u64)>,
    },
}

impl fmt::Display for Extra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Maria {
                domain,
                server,
                after,
                last,
            } => {
                let first = after.map_or(1, |a| a + 1);
                if first == *last {
                    write!(f, "{domain}-{server}-{last}")
                } else {
                    write!(f, "{domain}-{server}-{first}..{domain}-{server}-{last}")
                }
            }
            Self::Mysql { uuid, ranges } => {
                write!(f, "{uuid}")?;
                for (a, b) in ranges {
                    if a == b {
                        write!(f, ":{a}")?;
                    } else {
                        write!(f, ":{a}-{b}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Executed {
    /// MariaDB: `@@gtid_binlog_state` and `@@gtid_slave_pos` together (what the server
    /// logged, and what it applied from a master: a server rebuilt from a backup may hold
    /// transactions only the latter names).
    pub fn mariadb(lists: &[&str]) -> Result<Self, String> {
        let mut maria = BTreeMap::new();
        for list in lists {
            for (d, s, seq) in gtid::maria_list(list)? {
                let e = maria.entry((d, s)).or_insert(seq);
                *e = (*e).max(seq);
            }
        }
        Ok(Self {
            maria,
            ..Self::default()
        })
    }

    /// MySQL: `@@gtid_executed` (`uuid:1-5:7,uuid2:1-3`, possibly across lines; tagged
    /// transactions are sources of their own, see [`gtid::mysql_set`]).
    pub fn mysql(set: &str) -> Result<Self, String> {
        Ok(Self {
            mysql: gtid::mysql_set(set)?,
            ..Self::default()
        })
    }

    /// What this server holds from `origin` (a MariaDB server_id, or a MySQL server_uuid)
    /// that `other` lacks.
    pub fn beyond(&self, other: &Self, origin: &Origin) -> Vec<Extra> {
        match origin {
            Origin::Maria(server) => self
                .maria
                .iter()
                .filter(|((_, s), _)| s == server)
                .filter_map(|(&(domain, server), &last)| {
                    let after = other.maria.get(&(domain, server)).copied();
                    (after.is_none_or(|a| a < last)).then_some(Extra::Maria {
                        domain,
                        server,
                        after,
                        last,
                    })
                })
                .collect(),
            // Its own transactions, tagged or not.
            Origin::Mysql(uuid) => self
                .mysql
                .iter()
                .filter(|(source, _)| gtid::source_uuid(source).eq_ignore_ascii_case(uuid))
                .filter_map(|(source, mine)| {
                    let theirs = other.mysql.get(source).map_or(&[][..], Vec::as_slice);
                    let ranges = gtid::subtract(mine, theirs);
                    (!ranges.is_empty()).then(|| Extra::Mysql {
                        uuid: source.clone(),
                        ranges,
                    })
                })
                .collect(),
        }
    }
}

/// Who committed a transaction first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Maria(u32),
    Mysql(String),
}

/// What one look at both servers found, for a node that is not master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Look {
    /// This server's own transactions the peer lacks.
    pub own_extra: Vec<Extra>,
    /// The peer's own transactions this server lacks.
    pub peer_extra: Vec<Extra>,
    /// The term of this server's own latest promotion (0: never promoted).
    pub own_term: u64,
    pub peer: PeerTerm,
}

/// What a node that is not master does about its peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejoin {
    /// Its own errant transactions: non-empty means divergent (out of the election,
    /// replicating from nobody, until rebuilt).
    pub errant: Vec<Extra>,
    /// It may replicate from the peer.
    pub replicate: bool,
    /// The data-currency rule: the peer's own transactions this server lacks that the
    /// peer may have acknowledged (all of them, unless the peer is the stale side, whose
    /// extras are its errant ones). A server may become writable only when this is
    /// empty (after catch-up).
    pub missing: Vec<Extra>,
}

/// How many transactions `extras` name (MariaDB ranges in a domain shared by both
/// servers count the other origin's numbers too: an upper bound).
pub fn count(extras: &[Extra]) -> u64 {
    extras
        .iter()
        .map(|e| match e {
            Extra::Maria { after, last, .. } => last - after.unwrap_or(0),
            Extra::Mysql { ranges, .. } => ranges.iter().map(|(a, b)| b - a + 1).sum(),
        })
        .sum()
}

/// The rule. The peer *served writes after us* when it is writable now (it is the
/// master) or its own latest promotion came after ours. Then:
/// - our own transactions it lacks were never acknowledged through it and it moved on
///   without them: they are errant, we are divergent (never replicate, never promote);
/// - its own transactions we lack are simply what we have not received yet: replicate.
///
/// When we served writes after the peer, its own transactions we lack are *its* errant
/// ones (a stale master that came back): we must not replicate them. Equal terms (a
/// pair never promoted by xvrrpd, or both from the same state) decide nothing: the pair
/// replicates both ways as it was set up.
pub fn rejoin(look: &Look) -> Rejoin {
    let peer_later = look.peer.writable || look.peer.own > look.own_term;
    let peer_stale = !look.peer.writable && look.peer.own < look.own_term;
    let errant = if peer_later {
        look.own_extra.clone()
    } else {
        Vec::new()
    };
    // A stale peer's own extras are its errant transactions: never take them.
    let takes_errant = peer_stale && !look.peer_extra.is_empty();
    let replicate = errant.is_empty() && !takes_errant;
    // Anything else of the peer's may have been acknowledged to a client: equal terms
    // (never promoted, or both from one state) prove nothing errant.
    let missing = if peer_stale {
        Vec::new()
    } else {
        look.peer_extra.clone()
    };
    Rejoin {
        errant,
        replicate,
        missing,
    }
}

/// What this server (`local`, now) still lacks of the peer's transactions as an
/// earlier look found them (`before`, with the peer's origin), when the rule says it
/// lacks something now (`now.missing`): a replica keeping up applies in milliseconds
/// what a look a poll later still finds missing. Empty: current, or the peer is the
/// stale side (nothing of its own to miss).
pub fn behind(now: &Rejoin, before: &Executed, origin: &Origin, local: &Executed) -> Vec<Extra> {
    if now.missing.is_empty() {
        return Vec::new();
    }
    before.beyond(local, origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(own: u64, writable: bool) -> PeerTerm {
        PeerTerm { own, writable }
    }

    fn extra(s: &str) -> Vec<Extra> {
        // A stand-in with a readable name: the rule only looks at emptiness.
        vec![Extra::Mysql {
            uuid: s.into(),
            ranges: vec![(1, 1)],
        }]
    }

    #[test]
    fn mariadb_errant_transactions_are_own_origin_beyond_the_peer() {
        // db1 (server 1, domain 1) resumed with one commit the fence killed in flight.
        let db1 = Executed::mariadb(&["1-1-570,2-2-1403", ""]).unwrap();
        let db2 = Executed::mariadb(&["1-1-569,2-2-1403", "1-1-569"]).unwrap();
        let own = db1.beyond(&db2, &Origin::Maria(1));
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].to_string(), "1-1-570");
        assert!(db2.beyond(&db1, &Origin::Maria(2)).is_empty());
        // Nothing of ours there at all (the peer never replicated from us).
        let bare = Executed::mariadb(&["2-2-9"]).unwrap();
        assert_eq!(
            db1.beyond(&bare, &Origin::Maria(1))[0].to_string(),
            "1-1-1..1-1-570"
        );
        // What the peer applied but did not log (log_slave_updates off) still counts.
        let applied = Executed::mariadb(&["2-2-1403", "1-1-570"]).unwrap();
        assert!(db1.beyond(&applied, &Origin::Maria(1)).is_empty());
        assert!(Executed::mariadb(&["1-1"]).is_err());
        assert!(Executed::mariadb(&["a-1-2"]).is_err());
    }

    #[test]
    fn mysql_errant_transactions_are_set_differences() {
        let u = "3E11FA47-71CA-11E1-9E33-C80AA9429562";
        let db1 = Executed::mysql(&format!(
            "{u}:1-10:12,\n4e11fa47-71ca-11e1-9e33-c80aa9429562:1-3"
        ))
        .unwrap();
        let db2 = Executed::mysql(&format!("{}:1-4:6-9", u.to_lowercase())).unwrap();
        let own = db1.beyond(&db2, &Origin::Mysql(u.into()));
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].to_string(), format!("{}:5:10:12", u.to_lowercase()));
        assert!(db2.beyond(&db1, &Origin::Mysql(u.into())).is_empty());
        assert!(Executed::mysql(&format!("{u}:x-2")).is_err());
        // Tagged transactions (MySQL 8.3+) of its own are errant as well.
        let tagged = Executed::mysql(&format!("{u}:1-10:12:batch:1-2")).unwrap();
        let own = tagged.beyond(&db2, &Origin::Mysql(u.into()));
        assert_eq!(
            names(&own),
            [
                format!("{}:5:10:12", u.to_lowercase()),
                format!("{}:batch:1-2", u.to_lowercase())
            ]
        );
    }

    #[test]
    fn a_node_whose_peer_served_writes_after_it_is_divergent_with_errant_transactions() {
        let look = |own_extra, peer_extra, own_term, p| Look {
            own_extra,
            peer_extra,
            own_term,
            peer: p,
        };
        // The resumed old master (term 1) holds a commit the new master (term 2) lacks.
        let r = rejoin(&look(extra("mine"), extra("theirs"), 1, peer(2, true)));
        assert!(!r.errant.is_empty() && !r.replicate);
        // Same, the new master itself fenced since (read-only, later term).
        assert!(!rejoin(&look(extra("mine"), vec![], 1, peer(2, false)))
            .errant
            .is_empty());
        // Nothing of ours is missing there: replicate what we lack.
        let r = rejoin(&look(vec![], extra("theirs"), 1, peer(2, true)));
        assert!(r.errant.is_empty() && r.replicate);
        // We served writes last; the read-only peer holds its own stale extras: we stay
        // clean and must not take its errant transactions.
        let r = rejoin(&look(extra("mine"), extra("theirs"), 3, peer(2, false)));
        assert!(r.errant.is_empty() && !r.replicate);
        // A stale peer that holds nothing we lack: replicate (nothing will flow).
        assert!(rejoin(&look(extra("mine"), vec![], 3, peer(2, false))).replicate);
        // Never promoted by xvrrpd (terms 0): the pair replicates as it was set up.
        let r = rejoin(&look(extra("mine"), extra("theirs"), 0, peer(0, false)));
        assert!(r.errant.is_empty() && r.replicate);
    }

    #[test]
    fn a_server_lacking_what_the_peer_may_have_acknowledged_is_not_current() {
        let look = |peer_extra, own_term, p| Look {
            own_extra: vec![],
            peer_extra,
            own_term,
            peer: p,
        };
        // The peer served writes after us (a switchover back, a preempt): everything of
        // its own we lack may have been acknowledged.
        assert_eq!(
            rejoin(&look(extra("theirs"), 1, peer(2, false))).missing,
            extra("theirs")
        );
        assert_eq!(
            rejoin(&look(extra("theirs"), 1, peer(2, true))).missing,
            extra("theirs")
        );
        // No term tells the sides apart: nothing is proven errant, all of it counts.
        assert_eq!(
            rejoin(&look(extra("theirs"), 0, peer(0, false))).missing,
            extra("theirs")
        );
        assert_eq!(
            rejoin(&look(extra("theirs"), 2, peer(2, false))).missing,
            extra("theirs")
        );
        // We served writes after the read-only peer: its extras are its errant ones.
        assert!(rejoin(&look(extra("theirs"), 3, peer(2, false)))
            .missing
            .is_empty());
        assert!(rejoin(&look(vec![], 1, peer(2, false))).missing.is_empty());
    }

    #[test]
    fn missing_transactions_are_counted() {
        let m = Extra::Maria {
            domain: 2,
            server: 2,
            after: Some(100),
            last: 16_252,
        };
        let y = Extra::Mysql {
            uuid: "u".into(),
            ranges: vec![(1, 5), (7, 7)],
        };
        assert_eq!(count(&[m, y]), 16_152 + 6);
    }

    /// Behind: what the peer held a look ago and this server still lacks. A replica
    /// that applied it is current even if the peer wrote more since.
    #[test]
    fn behind_is_what_the_last_look_found_and_is_still_missing() {
        let u = "3E11FA47-71CA-11E1-9E33-C80AA9429562".to_lowercase();
        let origin = Origin::Mysql(u.clone());
        let set = |s: &str| Executed::mysql(&format!("{u}:{s}")).unwrap();
        let look = |peer_extra, own_term, p| Look {
            own_extra: vec![],
            peer_extra,
            own_term,
            peer: p,
        };
        let lacking = rejoin(&look(extra("theirs"), 1, peer(2, false)));
        // The peer had 1-100 at the last look.
        let before = set("1-100");
        // Applied up to 95: 5 behind.
        let late = behind(&lacking, &before, &origin, &set("1-95"));
        assert_eq!(count(&late), 5);
        // Applied all of it (the peer is at 1-130 now): current.
        assert!(behind(&lacking, &before, &origin, &set("1-100")).is_empty());
        // Nothing missing by the rule (a stale peer): never behind.
        let stale = rejoin(&look(extra("theirs"), 3, peer(2, false)));
        assert!(behind(&stale, &before, &origin, &set("1-95")).is_empty());
    }
}
