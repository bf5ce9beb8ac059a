//! The account workload: what real databases do (update rows), where a lost write is
//! silent. 1 000 accounts with a UNIQUE email; each statement is one of
//! - 50 % `UPDATE acct SET balance = balance + 1 WHERE email = ?`,
//! - 30 % an insert of a new account with balance 1,
//! - 20 % `INSERT ... ON DUPLICATE KEY UPDATE balance = balance + 1` on an existing one.
//!
//! The client keeps a ledger: every acknowledged increment per email, and every statement
//! whose outcome it could not know (an error after it was sent). After the run each
//! server's balances are compared with the ledger: an account below its acknowledged
//! increments lost acknowledged writes; one above them holds in-doubt writes that did
//! commit.
use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::Result;
use mysql_async::{prelude::Queryable, Conn};

use crate::Db;

/// Accounts created before the run.
pub const ACCOUNTS: u64 = 1000;

/// The schema and the seeded accounts (run on one server; replication copies them).
/// The accounts table with 1 000 accounts (numbered from three digit tables: the same
/// statement on MariaDB and MySQL, which has no sequence engine).
pub const SCHEMA: &str = "CREATE TABLE lab.acct (id BIGINT AUTO_INCREMENT PRIMARY KEY,
   email VARCHAR(64) NOT NULL UNIQUE, balance BIGINT NOT NULL) ENGINE=InnoDB;
 INSERT INTO lab.acct (email, balance)
   SELECT CONCAT('a', a.d * 100 + b.d * 10 + c.d + 1, '@lab'), 0
   FROM (SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL
         SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL
         SELECT 8 UNION ALL SELECT 9) a,
        (SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL
         SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL
         SELECT 8 UNION ALL SELECT 9) b,
        (SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL
         SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL
         SELECT 8 UNION ALL SELECT 9) c;";

/// One statement as the client saw it.
#[derive(Clone, Debug)]
pub struct Op {
    pub email: String,
    pub done_ns: u64,
    /// The server that acknowledged it and the increments it added (0 for an UPDATE that
    /// matched nothing); None when it failed or its fate is unknown.
    pub acked: Option<(u32, i64)>,
}

/// Balances per email, as one server holds them.
pub type Balances = BTreeMap<String, i64>;

pub fn balances(db: &Db) -> Result<Balances> {
    Ok(db
        .sql("SELECT email, balance FROM lab.acct")?
        .lines()
        .filter_map(|l| {
            let (e, b) = l.split_once('\t')?;
            Some((e.to_string(), b.trim().parse().ok()?))
        })
        .collect())
}

/// What the ledger says of one server's balances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Acknowledged increments the server does not hold (lost).
    pub missing: i64,
    /// Increments it holds beyond the acknowledged ones (in-doubt writes that committed).
    pub extra: i64,
}

/// Audits `held` against the increments acknowledged up to `until_ns`.
pub fn audit(ops: &[Op], held: &Balances, until_ns: u64) -> Audit {
    let mut acked: HashMap<&str, i64> = HashMap::new();
    for op in ops.iter().filter(|o| o.done_ns <= until_ns) {
        if let Some((_, n)) = op.acked {
            *acked.entry(op.email.as_str()).or_default() += n;
        }
    }
    let mut a = Audit::default();
    for (email, want) in &acked {
        let have = held.get(*email).copied().unwrap_or(0);
        a.missing += (want - have).max(0);
    }
    for (email, have) in held {
        let want = acked.get(email.as_str()).copied().unwrap_or(0);
        a.extra += (have - want).max(0);
    }
    a
}

/// Accounts whose balance differs between two servers (or exists on one only).
pub fn rows_differing(a: &Balances, b: &Balances) -> usize {
    let mut n = a.iter().filter(|(e, v)| b.get(*e) != Some(v)).count();
    n += b.keys().filter(|e| !a.contains_key(*e)).count();
    n
}

/// A small deterministic generator (no dependency, same run twice).
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One statement of the mix on `c`; the email it touched and the increments it added.
async fn one(
    c: &mut Conn,
    rng: &mut Rng,
    created: &mut u64,
) -> (String, Result<i64, mysql_async::Error>) {
    let existing = |rng: &mut Rng| format!("a{}@lab", rng.next(ACCOUNTS) + 1);
    match rng.next(100) {
        0..50 => {
            let email = existing(rng);
            let r = c
                .exec_drop(
                    "UPDATE acct SET balance = balance + 1 WHERE email = ?",
                    (email.as_str(),),
                )
                .await
                .map(|()| (c.affected_rows() > 0) as i64);
            (email, r)
        }
        50..80 => {
            *created += 1;
            let email = format!("n{}-{}@lab", std::process::id(), created);
            let r = c
                .exec_drop(
                    "INSERT INTO acct (email, balance) VALUES (?, 1)",
                    (email.as_str(),),
                )
                .await
                .map(|()| 1);
            (email, r)
        }
        _ => {
            let email = existing(rng);
            let r = c
                .exec_drop(
                    "INSERT INTO acct (email, balance) VALUES (?, 1) \
                     ON DUPLICATE KEY UPDATE balance = balance + 1",
                    (email.as_str(),),
                )
                .await
                .map(|()| 1);
            (email, r)
        }
    }
}

/// The client: one connection through `vip`, reconnecting on error, until `done`.
/// Every statement goes to `ops`; `on_result` hears (server, ok, error) for the timeline.
pub async fn client(
    vip: &str,
    done: Arc<AtomicBool>,
    ops: Arc<Mutex<Vec<Op>>>,
    mut on_result: impl FnMut(u64, Option<u32>, Option<String>),
) {
    let mut conn: Option<(Conn, u32)> = None;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut created = 0;
    while !done.load(Ordering::SeqCst) {
        if conn.is_none() {
            match crate::dblab::bounded(async {
                let mut c = crate::dblab::connect(vip).await?;
                let id: Option<u32> = c.query_first("SELECT @@server_id").await?;
                Ok((c, id.unwrap_or(0)))
            })
            .await
            {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
            }
        }
        let (c, server) = conn.as_mut().expect("connected");
        let server = *server;
        let (email, r) =
            match tokio::time::timeout(Duration::from_millis(250), one(c, &mut rng, &mut created))
                .await
            {
                Ok((email, r)) => (email, r.map_err(|e| e.to_string())),
                Err(_) => (String::new(), Err("no answer within 250 ms".into())),
            };
        let done_ns = crate::dblab::mono_ns();
        let acked = r.as_ref().ok().map(|n| (server, *n));
        ops.lock().expect("ops").push(Op {
            email,
            done_ns,
            acked,
        });
        match r {
            Ok(_) => on_result(done_ns, Some(server), None),
            Err(e) => {
                on_result(done_ns, None, Some(e));
                conn = None;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(email: &str, ns: u64, acked: Option<i64>) -> Op {
        Op {
            email: email.into(),
            done_ns: ns,
            acked: acked.map(|n| (1, n)),
        }
    }

    #[test]
    fn the_audit_finds_lost_and_in_doubt_increments() {
        let ops = [
            op("a1@lab", 1, Some(1)),
            op("a1@lab", 2, Some(1)),
            op("a2@lab", 3, Some(1)),
            op("a2@lab", 4, None), // in doubt
            op("a3@lab", 9, Some(1)),
        ];
        let held: Balances = [("a1@lab", 1), ("a2@lab", 2), ("a3@lab", 0)]
            .iter()
            .map(|(e, b)| (e.to_string(), *b))
            .collect();
        // Up to 5: a1 lost one increment, a2 holds its in-doubt one.
        assert_eq!(
            audit(&ops, &held, 5),
            Audit {
                missing: 1,
                extra: 1
            }
        );
        // a3's increment came later.
        assert_eq!(audit(&ops, &held, 10).missing, 2);
        let mut other = held.clone();
        other.insert("a1@lab".into(), 2);
        other.insert("n1@lab".into(), 1);
        assert_eq!(rows_differing(&held, &other), 2);
    }
}
