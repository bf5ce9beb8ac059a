//! What "caught up" means for a node about to become writable (pure).
//!
//! The target is the replication stream that had already reached this node when promotion
//! began: MariaDB's `Gtid_IO_Pos`, MySQL's `Retrieved_Gtid_Set`, or, without GTID, the
//! position the IO thread had read up to. Waiting for it to be applied means no write the
//! old master acknowledged (with semi-sync, every acknowledged write is in the relay log)
//! is missing when this node starts taking writes.
use std::cmp::Ordering;

use super::dialect::Flavor;
pub use super::replica::ReplicaStatus;

/// What to wait for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Not a replica, or nothing received: writable at once.
    Nothing,
    /// These transactions applied ([`Flavor::gtid_wait`]: MariaDB's
    /// `MASTER_GTID_WAIT`, MySQL's `WAIT_FOR_EXECUTED_GTID_SET`).
    Gtid(String),
    /// Binary log coordinates read by the IO thread; applied when the SQL thread's
    /// executed coordinates reach them.
    Position { file: String, pos: u64 },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Nothing => write!(f, "nothing"),
            Self::Gtid(p) => write!(f, "GTID {p}"),
            Self::Position { file, pos } => write!(f, "{file}:{pos}"),
        }
    }
}

/// The target for a node with id `own_server_id`, given its replica status (None: not a
/// replica).
pub fn target(flavor: Flavor, own_server_id: u32, status: Option<&ReplicaStatus>) -> Target {
    let Some(s) = status else {
        return Target::Nothing;
    };
    match flavor.catchup_gtids(s, own_server_id) {
        Some(gtids) if gtids.is_empty() => Target::Nothing,
        Some(gtids) => Target::Gtid(gtids),
        _ if s.master_log_file.is_empty() => Target::Nothing,
        _ => Target::Position {
            file: s.master_log_file.clone(),
            pos: s.read_master_log_pos,
        },
    }
}

/// Have the executed coordinates in `s` reached `file:pos`? Binary log file names share a
/// base and differ in a fixed-width sequence number, so they order as text.
pub fn position_reached(s: &ReplicaStatus, file: &str, pos: u64) -> bool {
    match s.relay_master_log_file.as_str().cmp(file) {
        Ordering::Greater => true,
        Ordering::Equal => s.exec_master_log_pos >= pos,
        Ordering::Less => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gtid_status(io: &str) -> ReplicaStatus {
        ReplicaStatus {
            using_gtid: true,
            gtid_io_pos: io.into(),
            master_log_file: "db1-bin.000003".into(),
            read_master_log_pos: 900,
            ..Default::default()
        }
    }

    #[test]
    fn mariadb_waits_for_the_peers_gtids_only() {
        assert_eq!(
            target(Flavor::MariaDb, 2, Some(&gtid_status("1-1-57,2-2-12"))),
            Target::Gtid("1-1-57".into())
        );
        assert_eq!(
            target(Flavor::MariaDb, 2, Some(&gtid_status("2-2-12"))),
            Target::Nothing
        );
        assert_eq!(target(Flavor::MariaDb, 2, None), Target::Nothing);
    }

    #[test]
    fn without_gtid_the_read_position_is_the_target() {
        let mut s = gtid_status("");
        s.using_gtid = false;
        assert_eq!(
            target(Flavor::MariaDb, 2, Some(&s)),
            Target::Position {
                file: "db1-bin.000003".into(),
                pos: 900
            }
        );
        s.relay_master_log_file = "db1-bin.000003".into();
        s.exec_master_log_pos = 899;
        assert!(!position_reached(&s, "db1-bin.000003", 900));
        s.exec_master_log_pos = 900;
        assert!(position_reached(&s, "db1-bin.000003", 900));
        s.relay_master_log_file = "db1-bin.000004".into();
        s.exec_master_log_pos = 4;
        assert!(position_reached(&s, "db1-bin.000003", 900));
        s.relay_master_log_file = "db1-bin.000002".into();
        assert!(!position_reached(&s, "db1-bin.000003", 900));
    }

    #[test]
    fn mysql_uses_the_retrieved_set() {
        let s = ReplicaStatus {
            retrieved_gtid_set: "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5,\n 4E11FA47-71CA-11E1-9E33-C80AA9429562:1-2".into(),
            ..Default::default()
        };
        assert_eq!(
            target(Flavor::Mysql, 2, Some(&s)),
            Target::Gtid(
                "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5,4E11FA47-71CA-11E1-9E33-C80AA9429562:1-2"
                    .into()
            )
        );
    }
}
