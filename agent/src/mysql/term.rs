//! The write term: a number kept beside the data that grows with every promotion of a
//! write instance, so the pair can tell which server served writes last.
//!
//! It lives in a one-row-per-instance table, `xvrrpd.write_term`, written by the
//! promoting guard in the same server (and so the same binary log) as the writes it
//! orders: it replicates with them, survives restarts and backups, and a node whose data
//! lacks the current master's term visibly lacks that master's writes too. Two nodes that
//! both served as master during a partition each hold their own term; the later
//! promotion has the higher one.
use mysql_async::prelude::Queryable;

/// Created on first promotion (idempotent statements, safe to replicate both ways).
const SCHEMA: [&str; 2] = [
    "CREATE DATABASE IF NOT EXISTS xvrrpd",
    "CREATE TABLE IF NOT EXISTS xvrrpd.write_term (
       instance VARCHAR(64) NOT NULL PRIMARY KEY,
       term BIGINT UNSIGNED NOT NULL,
       server_id INT UNSIGNED NOT NULL,
       since DATETIME(6) NOT NULL
     ) ENGINE=InnoDB",
];

/// Takes the next term for `instance` on this server: one more than the term its data
/// holds (its own last promotion, or the peer's replicated to it). One statement, so two
/// promotions can never read the same term: `LAST_INSERT_ID(expr)` hands back the value
/// written.
pub async fn bump(
    conn: &mut mysql_async::Conn,
    instance: &str,
    server_id: u32,
) -> Result<u64, mysql_async::Error> {
    for sql in SCHEMA {
        conn.query_drop(sql).await?;
    }
    conn.exec_drop(
        "INSERT INTO xvrrpd.write_term (instance, term, server_id, since)
         VALUES (?, LAST_INSERT_ID(1), ?, UTC_TIMESTAMP(6))
         ON DUPLICATE KEY UPDATE term = LAST_INSERT_ID(term + 1),
           server_id = VALUES(server_id), since = VALUES(since)",
        (instance, server_id),
    )
    .await?;
    Ok(conn.last_insert_id().unwrap_or(0))
}

/// The term this server's data holds for `instance` (None before any promotion).
pub async fn read(
    conn: &mut mysql_async::Conn,
    instance: &str,
) -> Result<Option<u64>, mysql_async::Error> {
    match conn
        .exec_first(
            "SELECT term FROM xvrrpd.write_term WHERE instance = ?",
            (instance,),
        )
        .await
    {
        Ok(t) => Ok(t),
        // No table yet: nobody was ever promoted here.
        Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1049 => Ok(None),
        Err(e) => Err(e),
    }
}
