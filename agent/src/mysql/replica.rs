//! The replica status, read in one place and understood in one place. MariaDB and MySQL
//! name its columns differently (`Slave_IO_Running` / `Replica_IO_Running`,
//! `Master_Host` / `Source_Host`, ...), and MySQL 8.4 no longer accepts `SHOW SLAVE
//! STATUS`: [`read`] asks `SHOW REPLICA STATUS` (MariaDB ≥ 10.5.1, MySQL ≥ 8.0.22) and
//! falls back to the old spelling; [`ReplicaStatus::from_columns`] (pure, in the core)
//! knows both families of names.
use std::collections::HashMap;

use mysql_async::{prelude::Queryable, Conn, Row};

use super::dialect::REPLICA_STATUS_SPELLINGS;

pub use xvrrpd_core::mysql::replica::ReplicaStatus;

/// The server's replica status; None when it is not a replica.
pub async fn read(conn: &mut Conn) -> Result<Option<ReplicaStatus>, mysql_async::Error> {
    // For a caller that does not know the flavor yet: the spellings newest first (one
    // statement on MySQL 8.4+ and MariaDB ≥ 10.5.1, which knows the new one too).
    let mut row: Option<Row> = None;
    for (i, statement) in REPLICA_STATUS_SPELLINGS.iter().enumerate() {
        match conn.query_first(*statement).await {
            // ER_PARSE_ERROR: a server older than this spelling.
            Err(mysql_async::Error::Server(e))
                if e.code == 1064 && i + 1 < REPLICA_STATUS_SPELLINGS.len() => {}
            r => {
                row = r?;
                break;
            }
        }
    }
    Ok(row.map(|r| ReplicaStatus::from_columns(&columns(&r))))
}

/// Every column of `row` as text (NULL as empty).
fn columns(row: &Row) -> HashMap<String, String> {
    row.columns_ref()
        .iter()
        .enumerate()
        .map(|(i, col)| {
            let v = row
                .get_opt::<Option<String>, _>(i)
                .and_then(|x| x.ok())
                .flatten()
                .unwrap_or_default();
            (col.name_str().into_owned(), v)
        })
        .collect()
}
