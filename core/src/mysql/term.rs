//! Two masters that meet: which one keeps the write role, from each one's write term
//! (`xvrrpd.promotion`, read by the agent) and what each holds of its own that the
//! other lacks.
/// What an arbitration between two masters found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The peer's data holds an older term: it is the stale side (a partition healing,
    /// a frozen host resuming). This node keeps the role whatever the priorities.
    Keep { peer: u64 },
    /// The peer was promoted after this node: it served writes last. This node steps
    /// down whatever the priorities.
    Yield { peer: u64 },
    /// The same term (a preemption by a node that replicated this master's promotion),
    /// or no term there: VRRP's rules decide.
    Vrrp,
    /// The peer could not be read (a host resuming, its network not back yet): asked
    /// again shortly, holding its adverts meanwhile (neither yielding to it nor
    /// re-announcing toward it); after [`crate::role::UNKNOWN_TRIES`] in a row, VRRP's rules.
    Unknown,
}

/// What the other master's server says when two masters meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerTerm {
    /// The term of its own latest promotion (0: never promoted).
    pub own: u64,
    /// Its `read_only` is OFF.
    pub writable: bool,
}

/// What each of two masters holds of its own that the other lacks, when both servers'
/// executed transactions could be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lacks {
    /// The peer holds transactions of its own this server lacks.
    pub we_lack: bool,
    /// This server holds transactions of its own the peer lacks.
    pub they_lack: bool,
}

/// Two masters met. This node was promoted with term `own`; `peer` is what the other
/// master's server says, `lacks` what the data says (None: not readable).
/// - a peer that does not take writes is a backup preempting (its own promotion waits
///   for our fence and for our transactions): VRRP's rules;
/// - the data first: the one lacking what the other holds loses, whatever the terms and
///   the priorities (a term row can be missing, a data set cannot lie);
/// - otherwise (both hold something the other lacks, or the data is the same or not
///   readable) the node promoted last served writes last: a writable peer promoted after
///   us, we yield; before us, it is the stale side (a partition healing, a frozen host
///   resuming), we keep the role; the same term (both promoted from the same state),
///   VRRP's rules if their data is the same or unknown.
pub fn verdict(own: u64, peer: PeerTerm, lacks: Option<Lacks>) -> Verdict {
    if !peer.writable {
        return Verdict::Vrrp;
    }
    match lacks {
        Some(Lacks {
            we_lack: true,
            they_lack: false,
        }) => return Verdict::Yield { peer: peer.own },
        Some(Lacks {
            we_lack: false,
            they_lack: true,
        }) => return Verdict::Keep { peer: peer.own },
        _ => {}
    }
    if peer.own == own {
        Verdict::Vrrp
    } else if peer.own > own {
        Verdict::Yield { peer: peer.own }
    } else {
        Verdict::Keep { peer: peer.own }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(own: u64, writable: bool) -> PeerTerm {
        PeerTerm { own, writable }
    }

    #[test]
    fn the_writable_master_promoted_last_keeps_the_role() {
        let v = |own, p| verdict(own, p, None);
        // db2 promoted with term 2 while db1 (term 1) was cut off; both still writable.
        assert_eq!(v(1, peer(2, true)), Verdict::Yield { peer: 2 });
        assert_eq!(v(2, peer(1, true)), Verdict::Keep { peer: 1 });
        // A backup preempting after replicating our promotion: read-only, VRRP decides.
        assert_eq!(v(2, peer(1, false)), Verdict::Vrrp);
        // Both promoted from the same state: a tie VRRP's priorities break.
        assert_eq!(v(3, peer(3, true)), Verdict::Vrrp);
        // Writable without ever being promoted (set by hand): we keep the role.
        assert_eq!(v(3, peer(0, true)), Verdict::Keep { peer: 0 });
    }

    #[test]
    fn the_master_lacking_the_others_transactions_loses_whatever_the_terms() {
        let lacks = |we_lack, they_lack| Some(Lacks { we_lack, they_lack });
        // No term row on the peer (peer=None once fell back to priority): the data says.
        assert_eq!(
            verdict(2, peer(0, true), lacks(true, false)),
            Verdict::Yield { peer: 0 }
        );
        assert_eq!(
            verdict(1, peer(2, true), lacks(false, true)),
            Verdict::Keep { peer: 2 }
        );
        // The same term: the one holding more keeps it.
        assert_eq!(
            verdict(3, peer(3, true), lacks(false, true)),
            Verdict::Keep { peer: 3 }
        );
        // Both hold writes of their own (a split brain): the later promotion wins.
        assert_eq!(
            verdict(1, peer(2, true), lacks(true, true)),
            Verdict::Yield { peer: 2 }
        );
        // The same data: the terms, then VRRP.
        assert_eq!(
            verdict(3, peer(3, true), lacks(false, false)),
            Verdict::Vrrp
        );
        // A read-only peer is a backup preempting: VRRP (its promotion checks the data).
        assert_eq!(
            verdict(3, peer(1, false), lacks(true, false)),
            Verdict::Vrrp
        );
    }
}
