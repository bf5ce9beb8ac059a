//! The write lease, sans I/O: who may make the server writable, decided through one key
//! in a witness both nodes reach (etcd), timed on each node's own monotonic clock.
//!
//! # The argument
//! The key holds the holder's name and a fencing term; etcd gives every change a new
//! revision and applies a compare-and-swap on that revision atomically. The holder
//! renews by rewriting the key if its revision is still the one it wrote last (a new
//! revision each time), every `renew_every`.
//!
//! - **The holder** may write only until `sent + lease − margin`, where `sent` is when it
//!   *sent* the last renewal that succeeded (its own clock). Past that, it fences itself
//!   at once. Timing from the sending, not the answer: whatever etcd did with the
//!   request, it did after it was sent.
//! - **A successor** may take the key only by a compare-and-swap on the revision it last
//!   read, and only `lease + margin` after it first *received* that revision (its own
//!   clock). The reading happened after the write it shows, which happened after the
//!   holder sent it: `sent < received`, so the holder's deadline
//!   (`sent + lease − margin`) comes at least `2 × margin` before the successor may take
//!   the key (`received + lease + margin`). A renewal the successor has not seen
//!   changed the revision, and its compare-and-swap fails: it reads again and starts
//!   waiting from that answer.
//! - **Clock rates** differ by parts per million: over a lease of a second, microseconds.
//!   The margin covers the holder's fence (the write guard's, bounded: a hung server is
//!   killed after 500 ms, so `2 × margin` must be at least that) and etcd's latency
//!   between a renewal's sending and its commit does not matter (see above).
//! - **Leaving** (a handover where the holder knows it leaves: fenced first) marks the
//!   key free by compare-and-swap (holder empty, term kept, so terms only ever grow): a
//!   successor that reads it free takes it at once.
//! - etcd's own leases are not used: etcd restarts them at full length on a leader
//!   change, so a key bound to one could outlive the holder's belief by a whole TTL.
//!
//! Nothing here reads a clock or talks to etcd: the shell sends the [`Request`]s, feeds
//! back the [`Answer`]s and ticks it with the time.
use std::time::Duration;

use crate::engine::Instant;

/// The lease's timing, validated by the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub lease: Duration,
    pub margin: Duration,
    pub renew_every: Duration,
}

impl Timing {
    /// 600 ms: with the margin's 250 ms, a successor waits 850 ms for a silent holder (a
    /// host crash's writes are back within about a second), and the holder survives
    /// 350 ms without a renewal: an etcd leader election (100–200 ms with the settings in
    /// docs/witness.md) with two renewal intervals to spare.
    pub const DEFAULT: Self = Self::new(Duration::from_millis(600), Duration::from_millis(250));

    /// The lease's timing: renewals five times per `lease − margin`.
    pub const fn new(lease: Duration, margin: Duration) -> Self {
        Self {
            lease,
            margin,
            renew_every: Duration::from_nanos(lease.saturating_sub(margin).as_nanos() as u64 / 5),
        }
    }

    /// How long after sending a renewal that succeeded the holder may still write.
    pub fn holder_valid(&self) -> Duration {
        self.lease.saturating_sub(self.margin)
    }
    /// How long after first receiving a revision a successor must wait to take the key.
    pub fn successor_wait(&self) -> Duration {
        self.lease + self.margin
    }
}

/// What the write key holds, as etcd returned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// The holding node; empty when the key is free (its last holder left).
    pub holder: String,
    /// The fencing term: one more with every new holder.
    pub term: u64,
    /// etcd's modification revision of the key.
    pub revision: i64,
}

/// A request for the shell to send to etcd (one at a time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Read the key, linearizably (etcd's leader confirms it): what the holder asks.
    Read,
    /// Read the key as any member has it, possibly behind (etcd's serializable read,
    /// answered without the leader): what a node not holding the key asks. A stale
    /// answer can only make it wait longer (it counts from when it *receives* a
    /// revision, and takes the key only by a compare-and-swap that a newer revision
    /// defeats), and it keeps answering while etcd elects a new leader, which is when it
    /// matters: the master's host crashing takes the leader with it as often as not, and
    /// a linearizable read would see the master's last renewal only after the election.
    Look,
    /// Write `{holder: me, term}` if the key's revision is still `expect` (None: if it
    /// does not exist).
    Write { expect: Option<i64>, term: u64 },
    /// Write `{holder: "", term}` (free) if the key's revision is still `expect`.
    Free { expect: i64, term: u64 },
}

/// What etcd answered to the request in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The key as read (None: it does not exist).
    Read(Option<Key>),
    /// The compare-and-swap took: the key's new revision.
    Done { revision: i64 },
    /// The compare-and-swap did not take: what the key holds now.
    Conflict(Option<Key>),
    /// No answer: etcd unreachable, timed out, or no quorum.
    Failed,
}

/// What the shell must do, or what the write role must know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Send(Request),
    /// This node holds the key as `term`: it may write (until told otherwise).
    Acquired {
        term: u64,
    },
    /// This node's right to write ended (expired unrenewed, or another node holds the
    /// key): fence at once.
    Lost {
        term: u64,
        why: Loss,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// No renewal succeeded for `lease − margin`.
    Expired,
    /// The key names another holder.
    Taken,
    /// It was asked to leave and the key is free (or was found not ours any more).
    Released,
}

/// What the write role asks of the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Take the key and keep renewing it (becoming or being master).
    Hold,
    /// Stop renewing but keep the key (leaving master, the fence not yet confirmed): it
    /// expires by itself if the fence never completes, so a hung fence cannot hold the
    /// successor off forever.
    Drain,
    /// Free the key (the server is read-only): a successor takes it at once.
    Free,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    term: u64,
    revision: i64,
    /// When the last renewal that succeeded was sent.
    renewed_sent: Instant,
    /// When the first renewal expecting `revision` was sent. Every write that can move
    /// the key from `revision` to a new one naming this node was sent then or later, so
    /// a renewal whose answer was lost (abandoned, or beaten by a second try) and that
    /// took after all counts from here.
    first_try: Option<Instant>,
    /// A `Free` was sent and no renewal has succeeded since: the key may be free (its
    /// answer lost) and a successor may hold it already, so this node may not write
    /// under it again until a renewal's compare-and-swap proves it still holds it.
    leaving: bool,
}

/// One node's side of the lease.
#[derive(Clone, Debug)]
pub struct Lease {
    me: String,
    timing: Timing,
    want: Want,
    held: Option<Held>,
    /// The key as last read, and when this node first received that revision (None:
    /// never read since it started).
    seen: Option<(Option<Key>, Instant)>,
    /// The request in flight and when it was sent.
    inflight: Option<(Request, Instant)>,
    /// When the next read or renewal is due.
    next: Instant,
    /// The highest term seen: a key taken from nothing gets one more.
    last_term: u64,
}

impl Lease {
    /// A lease for the agent `me` (unique to this process: the key names it); its first
    /// read is due at once.
    pub fn new(me: &str, timing: Timing) -> Self {
        Self {
            me: me.to_string(),
            timing,
            want: Want::Free,
            held: None,
            seen: None,
            inflight: None,
            next: Instant(0),
            last_term: 0,
        }
    }

    /// May this node's server be writable now?
    pub fn may_write(&self, now: Instant) -> bool {
        self.held
            .is_some_and(|h| !h.leaving && now < h.renewed_sent.after(self.timing.holder_valid()))
    }

    /// The fencing term held, if any.
    pub fn term(&self) -> Option<u64> {
        self.held.map(|h| h.term)
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Does this node hold the key (whether or not it may still write)?
    pub fn held(&self) -> bool {
        self.held.is_some()
    }

    /// The next time [`Self::tick`] has something to do: a request due, or the holder's
    /// deadline.
    pub fn next_deadline(&self) -> Instant {
        let request = if self.inflight.is_none() {
            self.next
        } else {
            Instant::FOREVER
        };
        let expiry = self.held.map_or(Instant::FOREVER, |h| {
            h.renewed_sent.after(self.timing.holder_valid())
        });
        request.min(expiry)
    }

    /// What the write role asks (see [`Want`]).
    pub fn want(&mut self, want: Want, now: Instant) -> Vec<Action> {
        if want != self.want {
            self.want = want;
            self.next = now;
        }
        self.tick(now)
    }

    /// Time passes: the holder's deadline, the next read or renewal.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(h) = self.held {
            if now >= h.renewed_sent.after(self.timing.holder_valid()) {
                self.held = None;
                out.push(Action::Lost {
                    term: h.term,
                    why: Loss::Expired,
                });
            }
        }
        if self.inflight.is_none() && now >= self.next {
            if let Some(r) = self.request(now) {
                match (&r, &mut self.held) {
                    (Request::Free { .. }, Some(h)) => h.leaving = true,
                    (Request::Write { expect, .. }, Some(h)) if *expect == Some(h.revision) => {
                        h.first_try.get_or_insert(now);
                    }
                    _ => {}
                }
                self.inflight = Some((r.clone(), now));
                out.push(Action::Send(r));
            }
        }
        out
    }

    /// What to ask etcd next.
    fn request(&mut self, now: Instant) -> Option<Request> {
        match (self.want, self.held) {
            (Want::Hold, Some(h)) => Some(Request::Write {
                expect: Some(h.revision),
                term: h.term,
            }),
            (Want::Drain, Some(_)) => Some(Request::Read),
            (Want::Free, Some(h)) => Some(Request::Free {
                expect: h.revision,
                term: h.term,
            }),
            (Want::Hold, None) => match (&self.seen, self.acquire_at()) {
                (Some((k, _)), Some(at)) if now >= at => Some(Request::Write {
                    expect: k.as_ref().map(|k| k.revision),
                    term: self.last_term + 1,
                }),
                _ => Some(Request::Look),
            },
            // Not wanting and not holding: keep the view fresh, so that wanting later
            // does not start from nothing.
            (Want::Drain | Want::Free, None) => Some(Request::Look),
        }
    }

    /// etcd answered the request in flight, received at `now`.
    pub fn answer(&mut self, a: Answer, now: Instant) -> Vec<Action> {
        let Some((req, sent)) = self.inflight.take() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        // When to ask next, if sooner than the usual look (set below).
        let mut soon: Option<Instant> = None;
        match (req, a) {
            (_, Answer::Failed) => {
                // The holder's deadline runs on. A failed request has already used up to
                // half of the holder's time (the shell's bound), so waiting a whole renew
                // interval more before the retry would leave one try for an etcd leader
                // election: retry at the fast poll instead. A node not holding retries at
                // its usual pace.
                if self.held.is_some() {
                    soon = Some(now.after(self.fast_poll()));
                }
            }
            (Request::Read | Request::Look, Answer::Read(k)) | (_, Answer::Conflict(k)) => {
                self.observe(k.clone(), now);
                if let Some(h) = &mut self.held {
                    let ours = k
                        .as_ref()
                        .filter(|k| k.holder == self.me && k.term == h.term);
                    if let Some(k) = ours.filter(|k| k.revision > h.revision) {
                        // A renewal whose answer was lost took after all: it was sent no
                        // earlier than the first try at the revision it replaced. Renew
                        // from its revision at once, so the deadline moves with a time
                        // known exactly.
                        if let Some(t) = h.first_try.take() {
                            h.renewed_sent = h.renewed_sent.max(t);
                        }
                        h.revision = k.revision;
                        if self.want == Want::Hold {
                            soon = Some(now);
                        }
                    } else if ours.is_none() {
                        let h = *h;
                        self.held = None;
                        let taken = k.as_ref().is_some_and(|k| !k.holder.is_empty());
                        out.push(Action::Lost {
                            term: h.term,
                            why: if taken { Loss::Taken } else { Loss::Released },
                        });
                    }
                }
                // Wanting it: ask again when the wait ends, if that comes before the next
                // look (at once for a free key).
                if let (Want::Hold, None) = (self.want, self.held) {
                    soon = self.acquire_at();
                }
            }
            (Request::Write { term, .. }, Answer::Done { revision }) => {
                // A renewal after a `Free` whose outcome was unknown gives the right to
                // write back: the role hears it as a new acquisition.
                let first = self.held.is_none_or(|h| h.term != term || h.leaving);
                self.held = Some(Held {
                    term,
                    revision,
                    renewed_sent: sent,
                    first_try: None,
                    leaving: false,
                });
                self.last_term = self.last_term.max(term);
                self.observe(
                    Some(Key {
                        holder: self.me.clone(),
                        term,
                        revision,
                    }),
                    now,
                );
                if first {
                    out.push(Action::Acquired { term });
                }
                if self.want == Want::Free {
                    // Wanted no more while the write was in flight: free it at once.
                    soon = Some(now);
                }
            }
            (Request::Free { term, .. }, Answer::Done { revision }) => {
                if let Some(h) = self.held.take() {
                    out.push(Action::Lost {
                        term: h.term,
                        why: Loss::Released,
                    });
                }
                self.observe(
                    Some(Key {
                        holder: String::new(),
                        term,
                        revision,
                    }),
                    now,
                );
            }
            // An answer that does not fit the request: read again.
            _ => soon = Some(now),
        }
        self.next = now.after(self.poll());
        if let Some(t) = soon {
            self.next = self.next.min(t);
        }
        out.extend(self.tick(now));
        out
    }

    /// When this node may take the key as last read: at once when free, or when it names
    /// this agent (a write of its own whose answer was lost: no other node writes under
    /// it, and this node's server stays fenced while it does not hold the key; `me` names
    /// the agent process, so a host name two nodes share cannot match), `lease + margin`
    /// after it first received another holder's revision; None before any read.
    fn acquire_at(&self) -> Option<Instant> {
        match &self.seen {
            None => None,
            Some((None, since)) => Some(*since),
            Some((Some(k), since)) if k.holder.is_empty() || k.holder == self.me => Some(*since),
            Some((Some(_), since)) => Some(since.after(self.timing.successor_wait())),
        }
    }

    /// Records the key as received at `now`: a new revision starts its wait now.
    fn observe(&mut self, k: Option<Key>, now: Instant) {
        let same = match (&self.seen, &k) {
            (Some((Some(a), _)), Some(b)) => a.revision == b.revision,
            (Some((None, _)), None) => true,
            _ => false,
        };
        // Revisions only grow and the key is never deleted: an older answer (a member
        // behind its leader) is a view already had, not a change to wait from again.
        let older = match (&self.seen, &k) {
            (Some((Some(a), _)), Some(b)) => b.revision < a.revision,
            (Some((Some(_), _)), None) => true,
            _ => false,
        };
        if older {
            return;
        }
        if let Some(k) = &k {
            self.last_term = self.last_term.max(k.term);
        }
        if !same {
            self.seen = Some((k, now));
        }
    }

    /// Between two reads, or two renewals. Ten times as often while waiting for the key:
    /// a holder that leaves frees it, and the successor should see that at once. Twice
    /// as often as the holder renews while merely watching: a successor's wait runs from
    /// when it first saw the holder's last renewal, so seeing each one late makes a host
    /// crash's outage longer by as much.
    fn poll(&self) -> Duration {
        match (self.want, self.held) {
            (Want::Hold, None) => self.fast_poll(),
            (_, None) => self.timing.renew_every / 2,
            _ => self.timing.renew_every,
        }
    }

    fn fast_poll(&self) -> Duration {
        (self.timing.renew_every / 10).max(Duration::from_millis(5))
    }
}
