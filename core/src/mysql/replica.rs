//! The replica status, understood in one place. MariaDB and MySQL name its columns
//! differently (`Slave_IO_Running` / `Replica_IO_Running`, `Master_Host` /
//! `Source_Host`, ...); [`ReplicaStatus::from_columns`] knows both families of names.
//! The agent reads the row (`SHOW REPLICA STATUS`, [`super::dialect`]) and the labs read
//! it with the same code.
use std::collections::HashMap;

/// What xvrrpd uses of the replica status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub io_running: bool,
    /// The receiver was started: running, or (re)connecting to the peer (`Connecting`).
    pub io_started: bool,
    pub sql_running: bool,
    /// `Seconds_Behind_Master`; None when NULL (replication stopped or broken).
    pub lag_s: Option<u64>,
    pub last_io_error: String,
    pub last_sql_error: String,
    /// The error numbers beside them (0: none).
    pub last_io_errno: u32,
    pub last_sql_errno: u32,
    /// MariaDB: `Using_Gtid` is not `No`.
    pub using_gtid: bool,
    /// MySQL: `Auto_Position` is 1 (the receiver asks by GTIDs).
    pub auto_position: bool,
    /// MariaDB `Gtid_IO_Pos`.
    pub gtid_io_pos: String,
    /// MySQL `Retrieved_Gtid_Set`.
    pub retrieved_gtid_set: String,
    pub master_log_file: String,
    pub read_master_log_pos: u64,
    pub relay_master_log_file: String,
    pub exec_master_log_pos: u64,
    /// The peer's MySQL host and port.
    pub master_host: String,
    pub master_port: u16,
}

impl ReplicaStatus {
    /// Both threads running: the server replicates.
    pub fn replicates(&self) -> bool {
        self.io_running && self.sql_running
    }

    /// From the columns of one status row, by name, whichever family of names the server
    /// uses. A missing column reads as empty (or 0).
    pub fn from_columns(cols: &HashMap<String, String>) -> Self {
        let text = |names: &[&str]| -> String {
            names
                .iter()
                .find_map(|n| cols.get(*n))
                .cloned()
                .unwrap_or_default()
        };
        let num = |names: &[&str]| text(names).parse().unwrap_or(0);
        let yes = |names: &[&str]| text(names) == "Yes";
        Self {
            io_running: yes(&["Slave_IO_Running", "Replica_IO_Running"]),
            io_started: matches!(
                text(&["Slave_IO_Running", "Replica_IO_Running"]).as_str(),
                "Yes" | "Connecting"
            ),
            sql_running: yes(&["Slave_SQL_Running", "Replica_SQL_Running"]),
            lag_s: text(&["Seconds_Behind_Master", "Seconds_Behind_Source"])
                .parse()
                .ok(),
            last_io_error: text(&["Last_IO_Error"]),
            last_sql_error: text(&["Last_SQL_Error"]),
            last_io_errno: num(&["Last_IO_Errno"]) as u32,
            last_sql_errno: num(&["Last_SQL_Errno"]) as u32,
            using_gtid: !matches!(text(&["Using_Gtid"]).as_str(), "" | "No"),
            auto_position: text(&["Auto_Position"]) == "1",
            gtid_io_pos: text(&["Gtid_IO_Pos"]),
            retrieved_gtid_set: text(&["Retrieved_Gtid_Set"]),
            master_log_file: text(&["Master_Log_File", "Source_Log_File"]),
            read_master_log_pos: num(&["Read_Master_Log_Pos", "Read_Source_Log_Pos"]),
            relay_master_log_file: text(&["Relay_Master_Log_File", "Relay_Source_Log_File"]),
            exec_master_log_pos: num(&["Exec_Master_Log_Pos", "Exec_Source_Log_Pos"]),
            master_host: text(&["Master_Host", "Source_Host"]),
            master_port: text(&["Master_Port", "Source_Port"])
                .parse()
                .unwrap_or(3306),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn mariadb_and_mysql_names_read_the_same() {
        let maria = ReplicaStatus::from_columns(&cols(&[
            ("Slave_IO_Running", "Yes"),
            ("Slave_SQL_Running", "Yes"),
            ("Seconds_Behind_Master", "3"),
            ("Master_Host", "192.0.2.12"),
            ("Master_Port", "3307"),
            ("Master_Log_File", "db2-bin.000004"),
            ("Read_Master_Log_Pos", "1234"),
            ("Using_Gtid", "Slave_Pos"),
            ("Gtid_IO_Pos", "2-2-17"),
        ]));
        let mysql = ReplicaStatus::from_columns(&cols(&[
            ("Replica_IO_Running", "Yes"),
            ("Replica_SQL_Running", "Yes"),
            ("Seconds_Behind_Source", "3"),
            ("Source_Host", "192.0.2.12"),
            ("Source_Port", "3307"),
            ("Source_Log_File", "db2-bin.000004"),
            ("Read_Source_Log_Pos", "1234"),
        ]));
        for s in [&maria, &mysql] {
            assert!(s.io_running && s.sql_running);
            assert_eq!(s.lag_s, Some(3));
            assert_eq!(
                (s.master_host.as_str(), s.master_port),
                ("192.0.2.12", 3307)
            );
            assert_eq!(s.master_log_file, "db2-bin.000004");
            assert_eq!(s.read_master_log_pos, 1234);
        }
        assert!(maria.using_gtid && !mysql.using_gtid);
    }

    #[test]
    fn a_stopped_replica_has_no_lag() {
        let s = ReplicaStatus::from_columns(&cols(&[
            ("Slave_IO_Running", "Connecting"),
            ("Slave_SQL_Running", "No"),
            ("Seconds_Behind_Master", ""),
            ("Last_SQL_Error", "Duplicate entry"),
            ("Last_SQL_Errno", "1062"),
        ]));
        assert!(!s.io_running && !s.sql_running);
        assert_eq!(s.lag_s, None);
        assert_eq!(s.last_sql_error, "Duplicate entry");
        assert_eq!(s.last_sql_errno, 1062);
        assert_eq!(s.master_port, 3306);
    }
}
