//! A stand-in for etcd in tests: one linearizable key with revisions and
//! compare-and-swap, as the lease uses it.
use super::lease::{Answer, Key, Request};

#[derive(Clone, Debug, Default)]
pub struct Store {
    pub key: Option<Key>,
    revision: i64,
}

impl Store {
    /// Applies node `who`'s request at once, as etcd would.
    pub fn apply(&mut self, who: &str, r: &Request) -> Answer {
        let current = self.key.as_ref().map(|k| k.revision);
        let (expect, holder, term) = match r {
            Request::Read => return Answer::Read(self.key.clone()),
            Request::Write { expect, term } => (*expect, who, *term),
            Request::Free { expect, term } => (Some(*expect), "", *term),
        };
        if expect != current {
            return Answer::Conflict(self.key.clone());
        }
        self.revision += 1;
        self.key = Some(Key {
            holder: holder.to_string(),
            term,
            revision: self.revision,
        });
        Answer::Done {
            revision: self.revision,
        }
    }
}
