//! The write term: a number kept beside the data that grows with every promotion of a
//! write instance, so the pair can tell which server served writes last.
//!
//! It lives in `xvrrpd.promotion`, one row per instance and server: the term of that
//! server's latest promotion. A promotion takes one more than the highest term its data
//! holds (its own rows and the peer's, replicated), in the same server (and so the same
//! binary log) as the writes it orders: it replicates with them and survives restarts.
//! When two masters meet, each reads the other's own row: a row is only ever written by
//! its own server, so replication cannot make a stale master look recent.
use mysql_async::prelude::Queryable;

use crate::role::Verdict;

/// Created on first promotion (idempotent statements, safe to replicate both ways).
/// `promotion_key`: with a witness, the key's fencing term a server's latest promotion
/// was made under, so a survivor can tell whether it received that tenure's writes.
const SCHEMA: [&str; 3] = [
    "CREATE DATABASE IF NOT EXISTS xvrrpd",
    "CREATE TABLE IF NOT EXISTS xvrrpd.promotion (
       instance VARCHAR(64) NOT NULL,
       server_id INT UNSIGNED NOT NULL,
       term BIGINT UNSIGNED NOT NULL,
       since DATETIME(6) NOT NULL,
       PRIMARY KEY (instance, server_id)
     ) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS xvrrpd.promotion_key (
       instance VARCHAR(64) NOT NULL,
       server_id INT UNSIGNED NOT NULL,
       key_term BIGINT UNSIGNED NOT NULL,
       PRIMARY KEY (instance, server_id)
     ) ENGINE=InnoDB",
];

/// Takes the next term for `instance` on this server (`server_id`): one more than the
/// highest its data holds, recorded as this server's latest promotion, with the witness
/// key's fencing term it holds (`key`) in the same transaction.
pub async fn bump(
    conn: &mut mysql_async::Conn,
    instance: &str,
    server_id: u32,
    key: Option<u64>,
) -> Result<u64, mysql_async::Error> {
    for sql in SCHEMA {
        conn.query_drop(sql).await?;
    }
    let mut tx = conn
        .start_transaction(mysql_async::TxOpts::default())
        .await?;
    let next: Option<u64> = tx
        .exec_first(
            "SELECT COALESCE(MAX(term), 0) + 1 FROM xvrrpd.promotion WHERE instance = ? FOR UPDATE",
            (instance,),
        )
        .await?;
    let next = next.unwrap_or(1);
    tx.exec_drop(
        "INSERT INTO xvrrpd.promotion (instance, server_id, term, since)
         VALUES (?, ?, ?, UTC_TIMESTAMP(6))
         ON DUPLICATE KEY UPDATE term = VALUES(term), since = VALUES(since)",
        (instance, server_id, next),
    )
    .await?;
    if let Some(key) = key {
        tx.exec_drop(
            "INSERT INTO xvrrpd.promotion_key (instance, server_id, key_term)
             VALUES (?, ?, ?)
             ON DUPLICATE KEY UPDATE key_term = VALUES(key_term)",
            (instance, server_id, key),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(next)
}

/// The highest term this server's data holds for `instance` (None before any promotion):
/// it reaches the winner's term once the winner's writes arrive.
pub async fn read(
    conn: &mut mysql_async::Conn,
    instance: &str,
) -> Result<Option<u64>, mysql_async::Error> {
    match conn
        .exec_first(
            "SELECT MAX(term) FROM xvrrpd.promotion WHERE instance = ?",
            (instance,),
        )
        .await
    {
        Ok(t) => Ok(t.flatten()),
        // No table yet: nobody was ever promoted here.
        Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1049 => Ok(None),
        Err(e) => Err(e),
    }
}

/// The highest witness key term under which a promotion reached this server's data, its
/// own or the peer's, replicated (0: none, or no witness ever). An agent that restarted
/// no longer knows which tenures were its own: its own rows answer for those.
pub async fn key_received(
    conn: &mut mysql_async::Conn,
    instance: &str,
) -> Result<u64, mysql_async::Error> {
    match conn
        .exec_first(
            "SELECT MAX(key_term) FROM xvrrpd.promotion_key
             WHERE instance = ?",
            (instance,),
        )
        .await
    {
        Ok(t) => Ok(t.flatten().unwrap_or(0)),
        Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1049 => Ok(0),
        Err(e) => Err(e),
    }
}

/// What the other master's server says when two masters meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerTerm {
    /// The term of its own latest promotion (0: never promoted).
    pub own: u64,
    /// Its `read_only` is OFF.
    pub writable: bool,
}

/// The peer's own term and whether it takes writes, in one statement.
pub async fn read_peer(
    conn: &mut mysql_async::Conn,
    instance: &str,
) -> Result<PeerTerm, mysql_async::Error> {
    let row: Result<Option<(Option<u64>, u8)>, _> = conn
        .exec_first(
            "SELECT (SELECT term FROM xvrrpd.promotion WHERE instance = ? AND server_id = @@server_id),
                    @@global.read_only",
            (instance,),
        )
        .await;
    let (own, ro) = match row {
        Ok(r) => r.unwrap_or((None, 1)),
        Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1049 => {
            let ro: Option<u8> = conn.query_first("SELECT @@global.read_only").await?;
            (None, ro.unwrap_or(1))
        }
        Err(e) => return Err(e),
    };
    Ok(PeerTerm {
        own: own.unwrap_or(0),
        writable: ro == 0,
    })
}

/// What each of two masters holds of its own that the other lacks, when both servers'
/// executed transactions could be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lacks {
    /// The peer holds transactions of its own this server lacks.
    pub we_lack: bool,
    /// This server holds transactions of its own the peer lacks.
    pub they_lack: bool,
}

/// Two masters met. This node was promoted with term `own`; `peer` is what the other
/// master's server says, `lacks` what the data says (None: not readable).
/// - a peer that does not take writes is a backup preempting (its own promotion waits
///   for our fence and for our transactions): VRRP's rules;
/// - the data first: the one lacking what the other holds loses, whatever the terms and
///   the priorities (a term row can be missing, a data set cannot lie);
/// - otherwise (both hold something the other lacks, or the data is the same or not
///   readable) the node promoted last served writes last: a writable peer promoted after
///   us, we yield; before us, it is the stale side (a partition healing, a frozen host
///   resuming), we keep the role; the same term (both promoted from the same state),
///   VRRP's rules if their data is the same or unknown.
pub fn verdict(own: u64, peer: PeerTerm, lacks: Option<Lacks>) -> Verdict {
    if !peer.writable {
        return Verdict::Vrrp;
    }
    match lacks {
        Some(Lacks {
            we_lack: true,
            they_lack: false,
        }) => return Verdict::Yield { peer: peer.own },
        Some(Lacks {
            we_lack: false,
            they_lack: true,
        }) => return Verdict::Keep { peer: peer.own },
        _ => {}
    }
    if peer.own == own {
        Verdict::Vrrp
    } else if peer.own > own {
        Verdict::Yield { peer: peer.own }
    } else {
        Verdict::Keep { peer: peer.own }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(own: u64, writable: bool) -> PeerTerm {
        PeerTerm { own, writable }
    }

    #[test]
    fn the_writable_master_promoted_last_keeps_the_role() {
        let v = |own, p| verdict(own, p, None);
        // db2 promoted with term 2 while db1 (term 1) was cut off; both still writable.
        assert_eq!(v(1, peer(2, true)), Verdict::Yield { peer: 2 });
        assert_eq!(v(2, peer(1, true)), Verdict::Keep { peer: 1 });
        // A backup preempting after replicating our promotion: read-only, VRRP decides.
        assert_eq!(v(2, peer(1, false)), Verdict::Vrrp);
        // Both promoted from the same state: a tie VRRP's priorities break.
        assert_eq!(v(3, peer(3, true)), Verdict::Vrrp);
        // Writable without ever being promoted (set by hand): we keep the role.
        assert_eq!(v(3, peer(0, true)), Verdict::Keep { peer: 0 });
    }

    #[test]
    fn the_master_lacking_the_others_transactions_loses_whatever_the_terms() {
        let lacks = |we_lack, they_lack| Some(Lacks { we_lack, they_lack });
        // No term row on the peer (peer=None once fell back to priority): the data says.
        assert_eq!(
            verdict(2, peer(0, true), lacks(true, false)),
            Verdict::Yield { peer: 0 }
        );
        assert_eq!(
            verdict(1, peer(2, true), lacks(false, true)),
            Verdict::Keep { peer: 2 }
        );
        // The same term: the one holding more keeps it.
        assert_eq!(
            verdict(3, peer(3, true), lacks(false, true)),
            Verdict::Keep { peer: 3 }
        );
        // Both hold writes of their own (a split brain): the later promotion wins.
        assert_eq!(
            verdict(1, peer(2, true), lacks(true, true)),
            Verdict::Yield { peer: 2 }
        );
        // The same data: the terms, then VRRP.
        assert_eq!(
            verdict(3, peer(3, true), lacks(false, false)),
            Verdict::Vrrp
        );
        // A read-only peer is a backup preempting: VRRP (its promotion checks the data).
        assert_eq!(
            verdict(3, peer(1, false), lacks(true, false)),
            Verdict::Vrrp
        );
    }
}
