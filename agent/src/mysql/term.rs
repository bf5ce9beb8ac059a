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
const SCHEMA: [&str; 2] = [
    "CREATE DATABASE IF NOT EXISTS xvrrpd",
    "CREATE TABLE IF NOT EXISTS xvrrpd.promotion (
       instance VARCHAR(64) NOT NULL,
       server_id INT UNSIGNED NOT NULL,
       term BIGINT UNSIGNED NOT NULL,
       since DATETIME(6) NOT NULL,
       PRIMARY KEY (instance, server_id)
     ) ENGINE=InnoDB",
];

/// Takes the next term for `instance` on this server (`server_id`): one more than the
/// highest its data holds, recorded as this server's latest promotion.
pub async fn bump(
    conn: &mut mysql_async::Conn,
    instance: &str,
    server_id: u32,
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

/// Two masters met. This node was promoted with term `own`; `peer` is what the other
/// master's server says. The node promoted last served writes last:
/// - a peer that does not take writes is a backup preempting (it waits for our fence
///   before writing): VRRP's rules;
/// - a writable peer promoted after us: we yield; before us: it is the stale side (a
///   partition healing, a frozen host resuming), we keep the role;
/// - the same term (both promoted from the same state): VRRP's rules.
pub fn verdict(own: u64, peer: PeerTerm) -> Verdict {
    if !peer.writable || peer.own == own {
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
        // db2 promoted with term 2 while db1 (term 1) was cut off; both still writable.
        assert_eq!(verdict(1, peer(2, true)), Verdict::Yield { peer: 2 });
        assert_eq!(verdict(2, peer(1, true)), Verdict::Keep { peer: 1 });
        // A backup preempting after replicating our promotion: read-only, VRRP decides.
        assert_eq!(verdict(2, peer(1, false)), Verdict::Vrrp);
        // Both promoted from the same state: a tie VRRP's priorities break.
        assert_eq!(verdict(3, peer(3, true)), Verdict::Vrrp);
        // Writable without ever being promoted (set by hand): we keep the role.
        assert_eq!(verdict(3, peer(0, true)), Verdict::Keep { peer: 0 });
    }
}
