//! A stand-in for etcd in tests: one key with revisions and compare-and-swap, as the
//! lease uses it; linearizable, except that a [`Request::Look`] answers a value up to
//! `lag` changes old (a member behind its leader).
use super::lease::{Answer, Key, Request};

#[derive(Clone, Debug, Default)]
pub struct Store {
    pub key: Option<Key>,
    revision: i64,
    /// Every value the key had before the current one, oldest first.
    history: Vec<Option<Key>>,
    /// How many changes behind the next `Look` answers.
    pub lag: usize,
}

impl Store {
    /// Applies node `who`'s request at once, as etcd would.
    pub fn apply(&mut self, who: &str, r: &Request) -> Answer {
        let current = self.key.as_ref().map(|k| k.revision);
        let (expect, holder, term) = match r {
            Request::Read => return Answer::Read(self.key.clone()),
            Request::Look => {
                let behind = self.history.len().saturating_sub(self.lag);
                return Answer::Read(match self.lag {
                    0 => self.key.clone(),
                    _ => self.history.get(behind).cloned().flatten(),
                });
            }
            Request::Write { expect, term } => (*expect, who, *term),
            Request::Free { expect, term } => (Some(*expect), "", *term),
        };
        if expect != current {
            return Answer::Conflict(self.key.clone());
        }
        self.revision += 1;
        self.history.push(self.key.clone());
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
