//! GTID syntax of both flavors, parsed in one place (pure).
//!
//! - MariaDB: `domain-server-seq`, in comma lists (`@@gtid_binlog_state`,
//!   `Gtid_IO_Pos`): one highest sequence number per (domain, server).
//! - MySQL: sets `uuid:1-5:7-9,uuid2:3`, possibly across lines, and since 8.3 tagged
//!   transactions `uuid:1-5:tag:1-3` (a tag applies to the intervals after it, up to the
//!   next tag or the next uuid).
use std::collections::BTreeMap;

/// One MariaDB GTID: (domain, server_id, sequence number).
pub fn maria(gtid: &str) -> Result<(u32, u32, u64), String> {
    let bad = || format!("{gtid:?} is not a MariaDB GTID (domain-server-seq)");
    let mut parts = gtid.trim().split('-');
    let (Some(d), Some(s), Some(n), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok((
        d.parse().map_err(|_| bad())?,
        s.parse().map_err(|_| bad())?,
        n.parse().map_err(|_| bad())?,
    ))
}

/// A MariaDB GTID list (`0-1-5,0-2-9`; empty entries skipped).
pub fn maria_list(list: &str) -> Result<Vec<(u32, u32, u64)>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(maria)
        .collect()
}

/// A MariaDB GTID list without the entries server `own` wrote: in dual-master its own
/// transactions come back in the stream but are never applied, so waiting for them
/// would never end. An entry that does not parse is kept (the server will say what is
/// wrong with it).
pub fn foreign_maria(list: &str, own: u32) -> String {
    list.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .filter(|g| maria(g).map_or(true, |(_, server, _)| server != own))
        .collect::<Vec<_>>()
        .join(",")
}

/// A MySQL GTID set: per source (`uuid`, or `uuid:tag` for tagged transactions, uuid
/// in lower case) its inclusive intervals of transaction numbers, as listed.
pub type MysqlSet = BTreeMap<String, Vec<(u64, u64)>>;

/// Parses `@@gtid_executed`, `Retrieved_Gtid_Set` and the like.
pub fn mysql_set(set: &str) -> Result<MysqlSet, String> {
    let mut out = MysqlSet::new();
    for member in set.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let bad = || format!("{member:?} is not a MySQL GTID set member (uuid[:tag]:a-b)");
        let mut parts = member.split(':').map(str::trim);
        let uuid = parts.next().unwrap_or_default().to_ascii_lowercase();
        if uuid.len() != 36 || !uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(bad());
        }
        let mut source = uuid.clone();
        let mut intervals = 0;
        for p in parts {
            if p.starts_with(|c: char| c.is_ascii_digit()) {
                let (a, b) = match p.split_once('-') {
                    Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
                    None => {
                        let n = p.parse().map_err(|_| bad())?;
                        (n, n)
                    }
                };
                if a > b || a == 0 {
                    return Err(bad());
                }
                out.entry(source.clone()).or_default().push((a, b));
                intervals += 1;
            } else if is_tag(p) {
                source = format!("{uuid}:{}", p.to_ascii_lowercase());
            } else {
                return Err(bad());
            }
        }
        if intervals == 0 {
            return Err(bad());
        }
    }
    Ok(out)
}

/// A GTID tag: a letter or underscore, then letters, digits or underscores, 32 at most.
fn is_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 32
        && t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The server uuid of a [`MysqlSet`] key (`uuid` or `uuid:tag`).
pub fn source_uuid(key: &str) -> &str {
    key.split(':').next().unwrap_or(key)
}

/// `a` minus `b`, both lists of inclusive intervals.
pub fn subtract(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(lo, hi) in a {
        let mut pieces = vec![(lo, hi)];
        for &(x, y) in b {
            pieces = pieces
                .into_iter()
                .flat_map(|(p, q)| {
                    let mut keep = Vec::new();
                    if y < p || x > q {
                        keep.push((p, q));
                    } else {
                        if x > p {
                            keep.push((p, x - 1));
                        }
                        if y < q {
                            keep.push((y + 1, q));
                        }
                    }
                    keep
                })
                .collect();
        }
        out.extend(pieces);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn mariadb_gtids_and_lists() {
        assert_eq!(maria("0-1-5"), Ok((0, 1, 5)));
        assert!(maria("0-1").is_err() && maria("0-1-5-6").is_err() && maria("a-1-5").is_err());
        assert_eq!(maria_list(" 1-1-3, ,2-2-9"), Ok(vec![(1, 1, 3), (2, 2, 9)]));
        assert_eq!(foreign_maria(" 0-1-5 , 0-3-9,", 3), "0-1-5");
        assert_eq!(foreign_maria("1-1-57,2-2-12", 2), "1-1-57");
    }

    #[test]
    fn mysql_sets_across_lines_and_upper_case() {
        let s = mysql_set(&format!("{}:1-5:7,\n {B}:3", A.to_uppercase())).unwrap();
        assert_eq!(s[A], vec![(1, 5), (7, 7)]);
        assert_eq!(s[B], vec![(3, 3)]);
        assert_eq!(mysql_set(""), Ok(MysqlSet::new()));
    }

    /// MySQL 8.3+: `uuid:1-5:tag:1-3:other:4` (a tag names the intervals after it).
    #[test]
    fn tagged_transactions_are_their_own_sources() {
        let s = mysql_set(&format!("{A}:1-5:Batch_1:1-3:10:other:4")).unwrap();
        assert_eq!(s[A], vec![(1, 5)]);
        assert_eq!(s[&format!("{A}:batch_1")], vec![(1, 3), (10, 10)]);
        assert_eq!(s[&format!("{A}:other")], vec![(4, 4)]);
        assert_eq!(source_uuid(&format!("{A}:other")), A);
        // A tag alone names no transactions.
        assert!(mysql_set(&format!("{A}:tag")).is_err());
    }

    #[test]
    fn malformed_sets_name_the_member() {
        for bad in [
            "xyz:1-5",
            &format!("{A}:5-1"),
            &format!("{A}:0"),
            &format!("{A}:1-x"),
            &format!("{A}:9tag:1"),
        ] {
            let e = mysql_set(bad).unwrap_err();
            assert!(e.contains("uuid[:tag]:a-b"), "{bad}: {e}");
        }
    }

    #[test]
    fn subtraction_of_intervals() {
        assert_eq!(
            subtract(&[(1, 10)], &[(3, 4), (8, 20)]),
            vec![(1, 2), (5, 7)]
        );
        assert_eq!(subtract(&[(1, 3)], &[(1, 3)]), vec![]);
        assert_eq!(subtract(&[(5, 5)], &[]), vec![(5, 5)]);
    }
}
