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

pub use xvrrpd_core::mysql::term::{verdict, Lacks, PeerTerm};

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
