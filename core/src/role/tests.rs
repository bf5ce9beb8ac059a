//! The write role's rules, one by one, with a fake clock.
use std::net::IpAddr;

use super::*;

const MS: u64 = 1_000_000;

pub(super) fn at(ms: u64) -> Instant {
    Instant(ms * MS)
}

pub(super) fn settings(priority: u8, primary: &str) -> Settings {
    Settings {
        version: 3,
        priority,
        advert_interval: Duration::from_millis(10),
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_address: primary.parse().unwrap(),
        min_learned_interval: Duration::from_millis(10),
        anti_flap: Duration::from_secs(60),
    }
}

fn write_core(priority: u8) -> Core {
    let mut c = Core::new(
        settings(priority, "192.0.2.11"),
        Some(CatchupPolicy::StayBackup),
    );
    assert_eq!(
        c.guard_started(),
        vec![Action::Guard(Command::Demote { term: 1 })],
        "a write instance starts by fencing its server"
    );
    c.handle(Input::Vrrp(VrrpInput::Startup { now: at(0) }));
    c
}

fn master_down(c: &mut Core, ms: u64) -> Vec<Action> {
    c.handle(Input::Vrrp(VrrpInput::MasterDown { now: at(ms) }))
}

fn writable(term: u64) -> Outcome {
    Outcome::Writable {
        term,
        catchup: Duration::from_millis(3),
        target: "0-1-5".into(),
        forced: false,
        write_term: Some(40 + term),
    }
}

fn guard(c: &mut Core, ms: u64, outcome: Outcome) -> Vec<Action> {
    c.handle(Input::Guard {
        now: at(ms),
        outcome,
    })
}

fn promoted(priority: u8) -> Core {
    let mut c = write_core(priority);
    let a = master_down(&mut c, 40);
    guard(&mut c, 45, writable(promotion(&a)));
    c
}

/// The term of the promotion these actions ask for.
fn promotion(a: &[Action]) -> u64 {
    match a
        .iter()
        .find(|a| matches!(a, Action::Guard(Command::Promote { .. })))
    {
        Some(Action::Guard(Command::Promote { term, .. })) => *term,
        _ => panic!("no promotion in {a:?}"),
    }
}

fn position(actions: &[Action], f: impl Fn(&Action) -> bool) -> usize {
    actions
        .iter()
        .position(f)
        .unwrap_or_else(|| panic!("not found in {actions:?}"))
}

#[test]
fn vips_hooks_and_announcements_wait_until_the_server_is_writable() {
    let mut c = write_core(100);
    let a = master_down(&mut c, 40);
    assert!(a.contains(&Action::Guard(Command::Promote { term: 2, key: None })));
    assert!(!a.contains(&Action::AddVips), "{a:?}");
    assert!(!a.contains(&Action::Announce), "{a:?}");
    assert!(!a.iter().any(|a| matches!(a, Action::Notify(_))), "{a:?}");
    assert_eq!(c.writable(), Some(false));

    let a = guard(&mut c, 45, writable(2));
    assert_eq!(c.writable(), Some(true));
    let vips = position(&a, |a| *a == Action::AddVips);
    let announce = position(&a, |a| *a == Action::Announce);
    let hook = position(
        &a,
        |a| matches!(a, Action::Notify(t) if t.to == State::Master),
    );
    assert!(vips < announce && announce < hook, "{a:?}");
}

#[test]
fn leaving_mastership_fences_before_the_last_advert() {
    let mut c = promoted(100);
    let a = c.handle(Input::Track {
        now: at(100),
        tracking: Tracking {
            link_ok: false,
            ..Tracking::default()
        },
    });
    assert_eq!(c.state(), State::Fault);
    let remove = position(&a, |a| *a == Action::RemoveVips);
    let fence = position(&a, |a| matches!(a, Action::Guard(Command::Demote { .. })));
    let advert = position(&a, |a| *a == Action::SendAdvert { priority: 0 });
    assert!(remove < fence && fence < advert, "{a:?}");
    assert_eq!(c.writable(), Some(false));
}

#[test]
fn an_outcome_of_a_superseded_term_is_ignored() {
    let mut c = write_core(100);
    master_down(&mut c, 40); // Promote term 2
                             // A better master arrives before the server is writable: fence (term 3).
    let a = c.handle(Input::Vrrp(VrrpInput::Advert {
        now: at(41),
        src: "192.0.2.12".parse::<IpAddr>().unwrap(),
        priority: 200,
        interval: Duration::from_millis(10),
    }));
    assert!(
        a.contains(&Action::Guard(Command::Demote { term: 3 })),
        "{a:?}"
    );
    // The promotion's late outcome must not bring the VIPs up.
    let a = guard(&mut c, 50, writable(2));
    assert!(a.is_empty(), "{a:?}");
    assert_eq!(c.writable(), Some(false));
}

#[test]
fn stay_backup_holds_the_instance_in_fault_until_the_relay_log_is_applied() {
    let mut c = write_core(100);
    master_down(&mut c, 40);
    let a = guard(
        &mut c,
        1040,
        Outcome::CatchupTimeout {
            term: 2,
            target: "0-2-9".into(),
        },
    );
    assert_eq!(c.state(), State::Fault);
    assert!(c.blocked());
    assert!(
        a.contains(&Action::Guard(Command::Demote { term: 3 })),
        "{a:?}"
    );
    // Once fenced, the guard watches the catch-up.
    let a = guard(
        &mut c,
        1045,
        Outcome::ReadOnly {
            term: 3,
            killed: 0,
            in_doubt: 0,
            took: Duration::from_millis(1),
        },
    );
    assert!(
        a.contains(&Action::Guard(Command::WatchCatchup { term: 4 })),
        "{a:?}"
    );
    let a = guard(&mut c, 3000, Outcome::CaughtUp { term: 4 });
    assert!(!c.blocked());
    assert_eq!(c.state(), State::Backup);
    assert!(a.contains(&Action::Event(Event::CaughtUp)));
    // It never served writes: no anti-flap hold.
    assert!(c.engine().preempt_hold_until() <= at(3000));
}

#[test]
fn switchover_fences_then_hands_over() {
    let mut c = promoted(100);
    // The peer is asked first; the master keeps serving meanwhile.
    let a = c.switchover(at(200)).unwrap();
    assert_eq!(a, vec![Action::Guard(Command::ReadyPeer { term: 3 })]);
    assert_eq!(c.switchover(at(201)), Err(SwitchoverRefused::Busy));
    let a = guard(
        &mut c,
        205,
        Outcome::PeerReady {
            term: 3,
            refused: None,
        },
    );
    assert_eq!(
        a,
        vec![
            Action::RemoveVips,
            Action::Guard(Command::Demote { term: 4 }),
            // No longer serving: an agent restart now must not fail back at once.
            Action::Remember(Memory {
                master: false,
                hold_until_ns: 0,
                unverified: false,
            }),
        ]
    );
    assert_eq!(
        c.state(),
        State::Master,
        "no handover before the fence lands"
    );
    assert_eq!(c.switchover(at(206)), Err(SwitchoverRefused::Busy));
    let a = guard(
        &mut c,
        210,
        Outcome::ReadOnly {
            term: 4,
            killed: 2,
            in_doubt: 0,
            took: Duration::from_millis(4),
        },
    );
    assert!(a.contains(&Action::SendAdvert { priority: 0 }), "{a:?}");
    assert!(a.contains(&Action::Event(Event::SwitchoverFenced)));
    // It served writes and left: out of the election until its first comparison with
    // the new master (which the rejoin makes at once).
    assert_eq!(c.state(), State::Fault);
    let look = rejoin(&a, None);
    guard(
        &mut c,
        215,
        Outcome::Standing {
            term: look,
            standing: Standing::Uncompared,
        },
    );
    assert_eq!(c.state(), State::Fault, "back without comparing");
    guard(
        &mut c,
        220,
        Outcome::Standing {
            term: look,
            standing: Standing::Ready,
        },
    );
    assert_eq!(c.state(), State::Backup);
}

/// A peer that lacks what this master acknowledged (behind, or not replicating) is
/// never handed the role: the switchover is refused before anything is fenced, saying
/// why, and the master keeps serving.
#[test]
fn a_switchover_to_a_peer_that_is_behind_is_refused_before_any_fence() {
    let mut c = promoted(100);
    let a = c.switchover(at(200)).unwrap();
    assert_eq!(a, vec![Action::Guard(Command::ReadyPeer { term: 3 })]);
    let why = "BEHIND: the peer still lacks 16152 of this server's transactions";
    let a = guard(
        &mut c,
        2200,
        Outcome::PeerReady {
            term: 3,
            refused: Some(why.into()),
        },
    );
    assert_eq!(
        a,
        vec![Action::Event(Event::SwitchoverRefused {
            reason: why.into()
        })]
    );
    assert_eq!(c.state(), State::Master);
    assert_eq!(c.writable(), Some(true));
    assert_eq!(c.switchover_refused(), Some(why));
    // Asked again: the reason is cleared, the peer asked anew.
    let a = c.switchover(at(3000)).unwrap();
    assert_eq!(a, vec![Action::Guard(Command::ReadyPeer { term: 4 })]);
    assert_eq!(c.switchover_refused(), None);
    // A newer command (a fault) supersedes the check: its late answer fences nothing.
    c.handle(Input::Track {
        now: at(3010),
        tracking: Tracking {
            link_ok: false,
            ..Tracking::default()
        },
    });
    let a = guard(
        &mut c,
        3020,
        Outcome::PeerReady {
            term: 4,
            refused: None,
        },
    );
    assert!(
        !a.iter()
            .any(|a| matches!(a, Action::Guard(Command::Demote { .. }))),
        "{a:?}"
    );
}

#[test]
fn an_agent_restart_keeps_the_anti_flap_hold() {
    let mut c = promoted(100);
    // Writable: the core asks to remember it serves as master.
    let mut c2 = write_core(100);
    let a = master_down(&mut c2, 40);
    assert!(!a
        .iter()
        .any(|a| matches!(a, Action::Remember(m) if m.master)));
    let a = guard(&mut c2, 45, writable(2));
    assert!(a.contains(&Action::Remember(Memory {
        master: true,
        hold_until_ns: 0,
        unverified: false,
    })));
    // The agent dies as master and comes back at 500 ms: no preemption for anti_flap.
    let mut back = Core::new(settings(100, "192.0.2.11"), Some(CatchupPolicy::StayBackup));
    back.restore(
        Memory {
            master: true,
            hold_until_ns: 0,
            unverified: false,
        },
        at(500),
    );
    back.handle(Input::Vrrp(VrrpInput::Startup { now: at(500) }));
    assert_eq!(back.engine().preempt_hold_until(), at(60_500));
    // A clean loss of mastership remembers when the hold ends.
    let a = c.handle(Input::Track {
        now: at(1000),
        tracking: Tracking {
            link_ok: false,
            ..Tracking::default()
        },
    });
    assert!(
        a.contains(&Action::Remember(Memory {
            master: false,
            hold_until_ns: 0,
            unverified: false,
        })),
        "{a:?}"
    );
    // Back from that FAULT: the hold runs from here, and is remembered.
    let a = c.handle(Input::Track {
        now: at(2000),
        tracking: Tracking::default(),
    });
    assert!(
        a.contains(&Action::Remember(Memory {
            master: false,
            hold_until_ns: at(62_000).0,
            unverified: false,
        })),
        "{a:?}"
    );
}

#[test]
fn switchover_is_refused_on_a_backup() {
    let mut c = write_core(100);
    assert_eq!(
        c.switchover(at(5)),
        Err(SwitchoverRefused::NotMaster("BACKUP"))
    );
}

#[test]
fn a_plain_instance_adds_its_vips_at_once() {
    let mut c = Core::new(settings(100, "192.0.2.11"), None);
    assert!(c.guard_started().is_empty());
    c.handle(Input::Vrrp(VrrpInput::Startup { now: at(0) }));
    let a = master_down(&mut c, 40);
    let vips = position(&a, |a| *a == Action::AddVips);
    let hook = position(&a, |a| matches!(a, Action::Notify(_)));
    assert!(vips < hook);
    assert!(a.contains(&Action::Announce));
}

#[test]
fn reconfigure_moves_the_priority_without_a_restart() {
    let mut c = promoted(100);
    let a = c.handle(Input::Reconfigure {
        now: at(300),
        settings: settings(120, "192.0.2.11"),
        policy: Some(CatchupPolicy::PromoteAnyway),
    });
    assert_eq!(c.state(), State::Master);
    assert_eq!(c.engine().priority(), 120);
    assert!(a.contains(&Action::SendAdvert { priority: 120 }), "{a:?}");
    assert!(!a.iter().any(|a| matches!(a, Action::Transition(_))));
}

#[test]
fn maintenance_is_a_fault_that_fences() {
    let mut c = promoted(100);
    let a = c.handle(Input::Track {
        now: at(300),
        tracking: Tracking {
            maintenance: true,
            ..Tracking::default()
        },
    });
    assert_eq!(c.state(), State::Fault);
    assert_eq!(a[0], Action::RemoveVips);
    assert!(matches!(a[1], Action::Guard(Command::Demote { .. })));
}

#[test]
fn the_write_term_of_the_latest_promotion_is_kept_and_streamed() {
    let mut c = write_core(100);
    assert_eq!(c.write_term(), None);
    let term = promotion(&master_down(&mut c, 40));
    let a = guard(&mut c, 45, writable(term));
    assert_eq!(c.write_term(), Some(40 + term));
    assert!(
        a.iter().any(|a| matches!(
            a,
            Action::Event(Event::Writable { write_term: Some(t), .. }) if *t == 40 + term
        )),
        "{a:?}"
    );
    // Leaving mastership keeps it: the data still holds that term.
    c.handle(Input::Vrrp(VrrpInput::Fault { now: at(60) }));
    assert_eq!(c.state(), State::Fault);
    assert_eq!(c.write_term(), Some(40 + term));
}

fn advert_from(c: &mut Core, ms: u64, src: &str, priority: u8) -> Vec<Action> {
    c.handle(Input::Vrrp(VrrpInput::Advert {
        now: at(ms),
        src: src.parse::<IpAddr>().unwrap(),
        priority,
        interval: Duration::from_millis(10),
    }))
}

fn arbitration(a: &[Action]) -> Option<(u64, u64)> {
    a.iter().find_map(|a| match a {
        Action::Guard(Command::Arbitrate { term, own }) => Some((*term, *own)),
        _ => None,
    })
}

fn decide(c: &mut Core, ms: u64, term: u64, verdict: Verdict) -> Vec<Action> {
    guard(c, ms, Outcome::Arbitrated { term, verdict })
}

/// A promoted master at `priority` hears another master at 100 ms: (core, its own write
/// term, the arbitration's guard term, the actions).
fn meet(priority: u8, src: &str, theirs: u8) -> (Core, u64, u64, Vec<Action>) {
    let mut c = promoted(priority);
    let own = c.write_term().unwrap();
    let a = advert_from(&mut c, 100, src, theirs);
    let (term, asked) = arbitration(&a).expect("no arbitration");
    assert_eq!(
        asked, own,
        "arbitrated with another term than its promotion's"
    );
    (c, own, term, a)
}

#[test]
fn the_master_promoted_last_keeps_the_role_against_a_higher_priority() {
    // db2 (90) took over during a partition; db1 (100, promoted earlier) is heard again.
    let (mut c, own, term, a) = meet(90, "192.0.2.10", 100);
    assert_eq!(
        c.state(),
        State::Master,
        "yielded before the verdict: {a:?}"
    );
    let a = decide(&mut c, 103, term, Verdict::Keep { peer: own - 1 });
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::Event(Event::Arbitration { .. }))));
    // Its higher priority is ignored while the verdict stands, without asking again.
    let a = advert_from(&mut c, 110, "192.0.2.10", 100);
    assert!(a.is_empty(), "{a:?}");
    assert_eq!(c.state(), State::Master);
    // Then the terms are compared anew (a later, legitimate preemption must win).
    let a = advert_from(&mut c, 1_200, "192.0.2.10", 100);
    assert!(arbitration(&a).is_some(), "{a:?}");
    assert_eq!(c.state(), State::Master);
}

#[test]
fn a_master_promoted_earlier_yields_whatever_the_priorities_and_waits_for_the_winners_term() {
    // db1 (100) resumes after a freeze and hears db2 (90), promoted since.
    let (mut c, own, term, a) = meet(100, "192.0.2.12", 90);
    // The lower priority's advert is held too: no re-announcement pulling clients here.
    assert!(!a.contains(&Action::Announce), "{a:?}");
    let a = decide(&mut c, 103, term, Verdict::Yield { peer: own + 1 });
    assert_eq!(c.state(), State::Fault);
    let remove = position(&a, |a| *a == Action::RemoveVips);
    let fence = position(&a, |a| matches!(a, Action::Guard(Command::Demote { .. })));
    let advert = position(&a, |a| *a == Action::SendAdvert { priority: 0 });
    assert!(remove < fence && fence < advert, "{a:?}");
    // Fenced: it waits until its data holds the winner's term, out of the election.
    let a = fence_lands(&mut c, &a, 110);
    let term = rejoin(&a, Some(own + 1));
    assert!(c.blocked());
    advert_from(&mut c, 120, "192.0.2.12", 90);
    assert_eq!(c.state(), State::Fault, "rejoined before holding the term");
    let standing = |standing| Outcome::Standing { term, standing };
    guard(&mut c, 1_000, standing(Standing::Waiting));
    assert_eq!(c.state(), State::Fault, "rejoined before holding the term");
    guard(&mut c, 2_000, standing(Standing::Ready));
    assert_eq!(c.state(), State::Backup);
    assert!(!c.blocked());
    // It served writes: the anti-flap hold keeps it from preempting back at once.
    assert!(c.engine().preempt_hold_until() > at(2_000));
}

#[test]
fn a_master_comparing_terms_with_another_does_not_fight_for_its_vip() {
    // A frozen db1 resumes with its VIP: it must not pull clients back by answering
    // db2's announcements while the terms are compared, nor after losing.
    let (mut c, own, term, _) = meet(100, "192.0.2.12", 90);
    assert!(!c.answers_claims(at(101)));
    decide(&mut c, 103, term, Verdict::Yield { peer: own + 1 });
    assert!(!c.answers_claims(at(104)));
    // The master that served writes last says so at once, then answers claims again.
    let (mut c, own, term, _) = meet(90, "192.0.2.10", 100);
    assert!(!c.answers_claims(at(101)));
    let a = decide(&mut c, 103, term, Verdict::Keep { peer: own - 1 });
    assert!(a.contains(&Action::Announce), "{a:?}");
    assert!(c.answers_claims(at(104)));
    // A plain instance always answers.
    let mut plain = Core::new(settings(100, "192.0.2.11"), None);
    plain.handle(Input::Vrrp(VrrpInput::Startup { now: at(0) }));
    assert!(plain.answers_claims(at(1)));
}

/// The fence `a` asked for lands at `ms` (a commit in flight killed).
fn fence_lands(c: &mut Core, a: &[Action], ms: u64) -> Vec<Action> {
    let Some(Action::Guard(Command::Demote { term })) = a
        .iter()
        .find(|a| matches!(a, Action::Guard(Command::Demote { .. })))
        .cloned()
    else {
        panic!("no fence in {a:?}")
    };
    guard(
        c,
        ms,
        Outcome::ReadOnly {
            term,
            killed: 1,
            in_doubt: 1,
            took: Duration::from_millis(3),
        },
    )
}

/// The `Rejoin` command in `a` (it must be there), checked for its awaited term.
fn rejoin(a: &[Action], await_term: Option<u64>) -> u64 {
    let Some(Action::Guard(Command::Rejoin {
        term,
        await_term: w,
    })) = a
        .iter()
        .find(|a| matches!(a, Action::Guard(Command::Rejoin { .. })))
        .cloned()
    else {
        panic!("no rejoin in {a:?}");
    };
    assert_eq!(w, await_term);
    term
}

#[test]
fn a_divergent_server_stays_out_of_the_election_until_its_errant_transactions_are_gone() {
    // db1 (100) yields to db2, promoted since; its fence killed a commit in flight.
    let (mut c, own, term, _) = meet(100, "192.0.2.12", 90);
    let a = decide(&mut c, 103, term, Verdict::Yield { peer: own + 1 });
    let a = fence_lands(&mut c, &a, 110);
    let term = rejoin(&a, Some(own + 1));
    let errant = vec!["1-1-570".to_string()];
    let a = guard(
        &mut c,
        120,
        Outcome::Standing {
            term,
            standing: Standing::Divergent {
                errant: errant.clone(),
            },
        },
    );
    assert!(a.contains(&Action::Event(Event::Divergent {
        errant: errant.clone()
    })));
    assert_eq!(c.errant(), errant.as_slice());
    // No priority, no preemption, no master-down brings it back: it is in FAULT.
    for (ms, input) in [
        (
            130,
            Input::Vrrp(VrrpInput::Advert {
                now: at(130),
                src: "192.0.2.12".parse().unwrap(),
                priority: 1,
                interval: Duration::from_millis(10),
            }),
        ),
        (200, Input::Vrrp(VrrpInput::MasterDown { now: at(200) })),
        (
            300,
            Input::Track {
                now: at(300),
                tracking: Tracking::default(),
            },
        ),
    ] {
        let a = c.handle(input);
        assert_eq!(c.state(), State::Fault, "at {ms} ms: {a:?}");
        assert!(!a
            .iter()
            .any(|a| matches!(a, Action::Guard(Command::Promote { .. }))));
    }
    // Rebuilt: the next look finds nothing errant and the winner's term in the data.
    guard(
        &mut c,
        60_000,
        Outcome::Standing {
            term,
            standing: Standing::Ready,
        },
    );
    assert_eq!(c.state(), State::Backup);
    assert!(c.errant().is_empty() && !c.blocked());
}

fn refused(step: &str) -> Blocked {
    Blocked {
        step: step.into(),
        error: "ERROR 1227 (42000): Access denied; you need (at least one of) the SUPER, REPLICATION SLAVE ADMIN privilege(s) for this operation".into(),
    }
}

#[test]
fn a_promotion_whose_safety_step_fails_never_adds_the_vips_and_leaves_the_election() {
    let mut c = write_core(100);
    let a = master_down(&mut c, 40);
    let term = promotion(&a);
    let blocked = refused("stop replicating from the peer before writes");
    let a = guard(
        &mut c,
        45,
        Outcome::Blocked {
            term,
            blocked: blocked.clone(),
        },
    );
    assert!(
        a.contains(&Action::Event(Event::GuardBlocked(blocked.clone()))),
        "{a:?}"
    );
    assert!(!a.contains(&Action::AddVips), "{a:?}");
    assert_eq!(c.state(), State::Fault);
    assert_eq!(c.writable(), Some(false));
    assert_eq!(c.guard_blocked(), Some(&blocked));
    // Fenced (whatever the server is now), then looked at again by the rejoin.
    let a = fence_lands(&mut c, &a, 50);
    let look = rejoin(&a, None);
    // Still refused: it stays out, whatever the adverts say.
    let a = guard(
        &mut c,
        2_000,
        Outcome::Standing {
            term: look,
            standing: Standing::Blocked(blocked.clone()),
        },
    );
    assert!(
        !a.iter()
            .any(|a| matches!(a, Action::Event(Event::GuardBlocked(_)))),
        "the same block is said once: {a:?}"
    );
    let a = master_down(&mut c, 2_100);
    assert_eq!(c.state(), State::Fault, "{a:?}");
    assert!(!a
        .iter()
        .any(|a| matches!(a, Action::Guard(Command::Promote { .. }))));
    // Granted: the next look finds it works, and the node rejoins the election.
    guard(
        &mut c,
        4_000,
        Outcome::Standing {
            term: look,
            standing: Standing::Ready,
        },
    );
    assert_eq!(c.state(), State::Backup);
    assert_eq!(c.guard_blocked(), None);
}

#[test]
fn a_backup_whose_replication_cannot_run_leaves_the_election() {
    let mut c = Core::new(settings(100, "192.0.2.11"), Some(CatchupPolicy::StayBackup));
    let a = c.guard_started();
    c.handle(Input::Vrrp(VrrpInput::Startup { now: at(0) }));
    let a = fence_lands(&mut c, &a, 5);
    let look = rejoin(&a, None);
    assert_eq!(c.state(), State::Backup);
    let blocked = refused("replicate from the peer");
    let a = guard(
        &mut c,
        10,
        Outcome::Standing {
            term: look,
            standing: Standing::Blocked(blocked.clone()),
        },
    );
    assert!(a.contains(&Action::Event(Event::GuardBlocked(blocked))));
    assert_eq!(c.state(), State::Fault);
    // A master-down cannot promote a node that does not replicate.
    let a = master_down(&mut c, 100);
    assert!(!a
        .iter()
        .any(|a| matches!(a, Action::Guard(Command::Promote { .. }))));
}

#[test]
fn every_fence_of_a_node_that_is_not_master_leads_to_a_comparison() {
    // At start-up the guard fences; the read-only server is then compared with the peer.
    let mut c = Core::new(settings(100, "192.0.2.11"), Some(CatchupPolicy::StayBackup));
    let a = c.guard_started();
    let Some(Action::Guard(Command::Demote { term })) = a.first().cloned() else {
        panic!("{a:?}")
    };
    c.handle(Input::Vrrp(VrrpInput::Startup { now: at(0) }));
    let a = guard(
        &mut c,
        5,
        Outcome::ReadOnly {
            term,
            killed: 0,
            in_doubt: 0,
            took: Duration::from_millis(1),
        },
    );
    rejoin(&a, None);
}

#[test]
fn equal_terms_leave_it_to_vrrp() {
    let (mut c, _, term, _) = meet(90, "192.0.2.10", 100);
    decide(&mut c, 103, term, Verdict::Vrrp);
    let a = advert_from(&mut c, 110, "192.0.2.10", 100);
    assert_eq!(c.state(), State::Backup, "{a:?}");
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::Guard(Command::Demote { .. }))));
}

#[test]
fn an_unreadable_peer_is_asked_again_then_left_to_vrrp() {
    // db2 (90) cannot read db1 (100) yet: it neither yields nor re-announces.
    let (mut c, _, mut term, _) = meet(90, "192.0.2.10", 100);
    let mut ms = 103;
    for _ in 1..UNKNOWN_TRIES {
        decide(&mut c, ms, term, Verdict::Unknown);
        let a = advert_from(&mut c, ms + 10, "192.0.2.10", 100);
        assert!(a.is_empty(), "{a:?}");
        assert_eq!(c.state(), State::Master);
        // Asked again once the short verdict lapses.
        let a = advert_from(&mut c, ms + 110, "192.0.2.10", 100);
        term = arbitration(&a).expect("not asked again").0;
        ms += 120;
    }
    // Still unreadable after ~1 s: VRRP's rules, the better priority wins.
    decide(&mut c, ms, term, Verdict::Unknown);
    advert_from(&mut c, ms + 10, "192.0.2.10", 100);
    assert_eq!(c.state(), State::Backup);
}

mod witness {
    use super::*;
    use crate::witness::lease::{Answer, Key, Loss, Request, Timing};

    fn timing() -> Timing {
        Timing {
            lease: Duration::from_millis(750),
            margin: Duration::from_millis(250),
            renew_every: Duration::from_millis(100),
        }
    }

    fn requests(a: &[Action]) -> Vec<Request> {
        a.iter()
            .filter_map(|a| match a {
                Action::Witness(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn witness(c: &mut Core, ms: u64, answer: Answer) -> Vec<Action> {
        c.handle(Input::Witness {
            now: at(ms),
            answer,
        })
    }

    /// A write instance with a witness, started; its first read answered (nothing held).
    fn witnessed() -> Core {
        let mut c = Core::new(settings(150, "192.0.2.11"), Some(CatchupPolicy::StayBackup));
        c.set_witness("db1", timing());
        c.guard_started();
        let a = c.handle(Input::Vrrp(VrrpInput::Startup { now: at(0) }));
        assert_eq!(requests(&a), [Request::Look], "it looks at the key at once");
        witness(&mut c, 2, Answer::Read(None));
        c
    }

    /// Promoted under a witness: key taken (sent at 40 ms), server writable.
    fn serving() -> Core {
        let mut c = witnessed();
        let a = master_down(&mut c, 40);
        assert!(
            !a.iter()
                .any(|a| matches!(a, Action::Guard(Command::Promote { .. }))),
            "no promotion before the key: {a:?}"
        );
        assert_eq!(
            requests(&a),
            [Request::Write {
                expect: None,
                term: 1
            }]
        );
        assert!(c.awaiting_lease());
        let a = witness(&mut c, 42, Answer::Done { revision: 7 });
        assert!(a.contains(&Action::Event(Event::LeaseAcquired { term: 1 })));
        let t = promotion(&a);
        let a = guard(&mut c, 45, writable(t));
        assert!(a.contains(&Action::AddVips), "{a:?}");
        assert_eq!(c.lease_term(), Some(1));
        c
    }

    #[test]
    fn promotion_waits_for_the_write_key_then_catches_up_then_adds_the_vips() {
        serving();
    }

    #[test]
    fn a_silent_holders_key_is_taken_only_after_lease_plus_margin() {
        let mut c = Core::new(settings(150, "192.0.2.11"), Some(CatchupPolicy::StayBackup));
        c.set_witness("db2", timing());
        c.guard_started();
        c.handle(Input::Vrrp(VrrpInput::Startup { now: at(0) }));
        let peer = Key {
            holder: "db1".into(),
            term: 4,
            revision: 30,
        };
        witness(&mut c, 10, Answer::Read(Some(peer.clone())));
        // Master from 40 ms; the key's revision never changes (its holder is silent).
        let mut a = master_down(&mut c, 40);
        let mut first_write = None;
        for t in 41..1200 {
            if let Some(r) = requests(&a).first() {
                if let Request::Write { expect, term } = r {
                    assert_eq!((*expect, *term), (Some(30), 5));
                    first_write = Some(t - 1);
                    break;
                }
                a = witness(&mut c, t, Answer::Read(Some(peer.clone())));
            } else {
                a = c.handle(Input::Vrrp(VrrpInput::Tick { now: at(t) }));
            }
        }
        // First received at 10 ms: not before 10 + 750 + 250, and at most a look later.
        let w = first_write.expect("it takes the key in the end");
        assert!((1010..=1111).contains(&w), "took it at {w} ms");
        assert!(!c
            .handle(Input::Vrrp(VrrpInput::Tick { now: at(1200) }))
            .contains(&Action::AddVips));
    }

    #[test]
    fn a_master_that_cannot_renew_fences_itself_on_its_own_clock() {
        let mut c = serving();
        // Every renewal goes unanswered from here on.
        let mut t = 142;
        loop {
            let a = c.handle(Input::Vrrp(VrrpInput::Tick { now: at(t) }));
            if a.iter()
                .any(|a| matches!(a, Action::Event(Event::LeaseLost { .. })))
            {
                // The renewal sent at 40 ms was the last that succeeded: 40 + 500.
                assert_eq!(t, 540);
                assert!(
                    a.contains(&Action::Event(Event::LeaseLost {
                        term: 1,
                        why: Loss::Expired
                    })),
                    "{a:?}"
                );
                let remove = position(&a, |a| *a == Action::RemoveVips);
                let fence = position(&a, |a| matches!(a, Action::Guard(Command::Demote { .. })));
                assert!(remove < fence, "{a:?}");
                assert_eq!(c.state(), State::Fault);
                break;
            }
            assert!(t < 540, "not fenced at {t} ms");
            if !requests(&a).is_empty() {
                witness(&mut c, t + 1, Answer::Failed);
            }
            t += 1;
        }
        assert_eq!(c.writable(), Some(false));
    }

    #[test]
    fn leaving_master_stops_renewing_and_frees_the_key_once_fenced() {
        let mut c = serving();
        // Maintenance: FAULT, VIPs off, the server fenced.
        let a = c.handle(Input::Track {
            now: at(60),
            tracking: Tracking {
                maintenance: true,
                ..Tracking::default()
            },
        });
        let demote = demotion(&a);
        // Not freed before the fence lands: no renewal started after the fault, no Free.
        let key = |revision| {
            Some(Key {
                holder: "db1".into(),
                term: 1,
                revision,
            })
        };
        let mut pending = requests(&a);
        for t in 61..200 {
            for r in std::mem::take(&mut pending) {
                assert!(
                    !matches!(r, Request::Free { .. }),
                    "freed before the fence: {r:?}"
                );
                let answer = match r {
                    // A renewal sent before the fault lands.
                    Request::Write { .. } => Answer::Done { revision: 8 },
                    _ => Answer::Read(key(8)),
                };
                let out = witness(&mut c, t, answer);
                pending.extend(requests(&out));
                assert!(
                    !pending.iter().any(|r| matches!(r, Request::Write { .. })),
                    "renewed after leaving: {out:?}"
                );
            }
            pending.extend(requests(
                &c.handle(Input::Vrrp(VrrpInput::Tick { now: at(t) })),
            ));
        }
        if !pending.is_empty() {
            witness(&mut c, 201, Answer::Read(key(8)));
        }
        let a = guard(
            &mut c,
            202,
            Outcome::ReadOnly {
                term: demote,
                killed: 0,
                in_doubt: 0,
                took: Duration::from_millis(1),
            },
        );
        assert!(
            requests(&a).contains(&Request::Free { expect: 8, term: 1 }),
            "{a:?}"
        );
    }

    /// The term of the fence these actions ask for.
    fn demotion(a: &[Action]) -> u64 {
        a.iter()
            .find_map(|a| match a {
                Action::Guard(Command::Demote { term }) => Some(*term),
                _ => None,
            })
            .expect("fenced")
    }

    /// Drives `c` with unanswered renewals until its key expires; the time it did.
    fn expire(c: &mut Core, from: u64) -> u64 {
        for t in from..2000 {
            let a = c.handle(Input::Vrrp(VrrpInput::Tick { now: at(t) }));
            if a.iter()
                .any(|a| matches!(a, Action::Event(Event::LeaseLost { .. })))
            {
                return t;
            }
            if !requests(&a).is_empty() {
                witness(c, t + 1, Answer::Failed);
            }
        }
        panic!("never expired");
    }

    #[test]
    fn a_fence_that_does_not_land_after_a_lost_key_is_overdue_until_it_does() {
        let mut c = serving();
        let lost = expire(&mut c, 142);
        let demote = c.write.as_ref().unwrap().term;
        // The successor may write 2 × margin after the loss at the earliest.
        assert!(!c.fence_overdue(at(lost + 500)));
        assert!(c.fence_overdue(at(lost + 501)));
        guard(
            &mut c,
            lost + 600,
            Outcome::ReadOnly {
                term: demote,
                killed: 0,
                in_doubt: 0,
                took: Duration::from_millis(1),
            },
        );
        assert!(!c.fence_overdue(at(lost + 700)));
        // Fenced, it comes back once compared with the peer (it served writes).
        let look = c.write.as_ref().unwrap().term;
        guard(
            &mut c,
            lost + 800,
            Outcome::Standing {
                term: look,
                standing: Standing::Ready,
            },
        );
        assert_eq!(c.state(), State::Backup, "back in the election once fenced");
    }

    #[test]
    fn a_server_that_is_not_running_frees_the_key_at_once() {
        let mut c = serving();
        let a = c.handle(Input::Track {
            now: at(60),
            tracking: Tracking {
                server_up: false,
                ..Tracking::default()
            },
        });
        let demote = demotion(&a);
        if !requests(&a).is_empty() {
            witness(
                &mut c,
                61,
                Answer::Read(Some(Key {
                    holder: "db1".into(),
                    term: 1,
                    revision: 7,
                })),
            );
        }
        let a = guard(&mut c, 62, Outcome::ServerDown { term: demote });
        assert!(
            requests(&a).contains(&Request::Free { expect: 7, term: 1 }),
            "{a:?}"
        );
    }
}

fn stalled(c: &mut Core, ms: u64) -> Vec<Action> {
    c.handle(Input::Stalled { now: at(ms) })
}

fn tick(c: &mut Core, ms: u64) -> Vec<Action> {
    c.handle(Input::Vrrp(VrrpInput::Tick { now: at(ms) }))
}

/// A master whose host stood still hears nobody for a Master_Down_Interval: the peer
/// did not take over, and its clients may reach the VIPs again.
#[test]
fn a_stalled_master_that_hears_no_other_master_lets_its_clients_back() {
    let mut c = promoted(100);
    let a = stalled(&mut c, 1_000);
    assert!(a.contains(&Action::Event(Event::Stalled)), "{a:?}");
    assert!(c.stalled());
    let listen = c.engine().master_down_interval().as_millis() as u64;
    // Its deadline is the end of the listening.
    assert!(c.next_deadline().is_some_and(|d| d <= at(1_000 + listen)));
    let a = tick(&mut c, 1_000 + listen - 1);
    assert!(
        !a.contains(&Action::ClearStall),
        "cleared before listening: {a:?}"
    );
    let a = tick(&mut c, 1_000 + listen + 1);
    assert!(a.contains(&Action::ClearStall), "{a:?}");
    assert!(!c.stalled());
    assert_eq!(c.state(), State::Master);
}

/// The frozen master resumes and hears the master promoted meanwhile: its clients stay
/// refused while the terms are compared, whatever the time, and it yields without ever
/// letting them through.
#[test]
fn a_stalled_master_never_lets_clients_back_before_the_terms_say_keep() {
    let mut c = promoted(100);
    let own = c.write_term().unwrap();
    stalled(&mut c, 1_000);
    let a = advert_from(&mut c, 1_005, "192.0.2.12", 90);
    let (term, _) = arbitration(&a).expect("no arbitration");
    // The comparison takes long: no clearing meanwhile.
    for ms in [1_050, 1_200, 3_000] {
        let a = tick(&mut c, ms);
        assert!(
            !a.contains(&Action::ClearStall),
            "cleared at {ms} while comparing: {a:?}"
        );
    }
    let a = decide(&mut c, 3_010, term, Verdict::Yield { peer: own + 1 });
    assert!(!a.contains(&Action::ClearStall), "{a:?}");
    assert!(a.contains(&Action::RemoveVips), "{a:?}");
    assert!(!c.stalled(), "the stall ends with the mastership");

    // Could not tell: still refused until a comparison says keep.
    let mut c = promoted(100);
    stalled(&mut c, 1_000);
    let a = advert_from(&mut c, 1_005, "192.0.2.12", 90);
    let (term, _) = arbitration(&a).expect("no arbitration");
    let a = decide(&mut c, 1_010, term, Verdict::Unknown);
    assert!(!a.contains(&Action::ClearStall), "{a:?}");
    assert!(!tick(&mut c, 1_060).contains(&Action::ClearStall));
    let a = advert_from(&mut c, 1_200, "192.0.2.12", 90);
    let (term, _) = arbitration(&a).expect("asked again");
    let a = decide(&mut c, 1_205, term, Verdict::Keep { peer: own - 1 });
    assert!(a.contains(&Action::ClearStall), "{a:?}");
}

/// A verdict from before the stall does not stand for what happened during it.
#[test]
fn a_stall_forgets_the_verdict_from_before_it() {
    let (mut c, own, term, _) = meet(100, "192.0.2.12", 90);
    decide(&mut c, 103, term, Verdict::Keep { peer: own - 1 });
    stalled(&mut c, 200);
    let a = advert_from(&mut c, 205, "192.0.2.12", 90);
    assert!(
        arbitration(&a).is_some(),
        "the old verdict let the other master's advert through: {a:?}"
    );
}

proptest::proptest! {
    /// Whatever arrives after a stall, in any order: the clients are let back only while
    /// master and writable, after one Master_Down_Interval, with no comparison of terms
    /// in flight and none standing that says yield or could not tell.
    #[test]
    fn a_stall_is_cleared_only_when_it_is_safe(
        steps in proptest::collection::vec((0u64..80, 0u8..5), 1..40),
    ) {
        let mut c = promoted(100);
        let own = c.write_term().unwrap();
        stalled(&mut c, 1_000);
        let listen = c.engine().master_down_interval().as_millis() as u64;
        let mut ms = 1_000;
        let mut asked: Option<u64> = None;
        let mut bad_verdict_until = 0u64;
        for (dt, what) in steps {
            ms += dt;
            let a = match what {
                0 => tick(&mut c, ms),
                1 => advert_from(&mut c, ms, "192.0.2.12", 90),
                2 => match asked.take() {
                    Some(t) => {
                        bad_verdict_until = ms + 100;
                        decide(&mut c, ms, t, Verdict::Unknown)
                    }
                    None => tick(&mut c, ms),
                },
                3 => match asked.take() {
                    Some(t) => decide(&mut c, ms, t, Verdict::Keep { peer: own - 1 }),
                    None => tick(&mut c, ms),
                },
                _ => match asked.take() {
                    Some(t) => decide(&mut c, ms, t, Verdict::Yield { peer: own + 1 }),
                    None => tick(&mut c, ms),
                },
            };
            if let Some((t, _)) = arbitration(&a) {
                asked = Some(t);
            }
            if a.contains(&Action::ClearStall) {
                proptest::prop_assert!(ms >= 1_000 + listen, "cleared at {ms}");
                proptest::prop_assert!(asked.is_none(), "cleared while comparing");
                proptest::prop_assert!(ms >= bad_verdict_until, "cleared on an unknown verdict");
                proptest::prop_assert_eq!(c.state(), State::Master);
                proptest::prop_assert_eq!(c.writable(), Some(true));
            }
            if c.state() != State::Master {
                proptest::prop_assert!(!c.stalled());
            }
        }
    }
}

/// A backup that outranks the master but whose applier does not keep up (its guard's
/// looks find it still lacking the peer's transactions of the look before) does not
/// preempt: the master keeps serving. Once a look finds it current, it preempts at
/// once. A master that fails is still taken over from (its promotion catches up first).
#[test]
fn a_backup_behind_the_master_does_not_preempt_until_it_holds_its_writes() {
    let mut c = write_core(200);
    let a = fence_lands(&mut c, &[Action::Guard(Command::Demote { term: 1 })], 1);
    let term = rejoin(&a, None);
    // The master, at a lower priority, is heard from 10 ms on.
    advert_from(&mut c, 10, "192.0.2.12", 100);
    let behind = Standing::Behind {
        missing: 12,
        names: "u:1-12".into(),
    };
    let a = guard(
        &mut c,
        20,
        Outcome::Standing {
            term,
            standing: behind.clone(),
        },
    );
    assert!(
        a.contains(&Action::Event(Event::Behind {
            missing: 12,
            names: "u:1-12".into()
        })),
        "{a:?}"
    );
    assert_eq!(c.behind(), Some((12, "u:1-12")));
    // Adverts go on; long past the preemption time, still backup.
    for ms in (20..2_000).step_by(10) {
        let a = advert_from(&mut c, ms, "192.0.2.12", 100);
        assert!(
            !a.iter()
                .any(|a| matches!(a, Action::Guard(Command::Promote { .. }))),
            "preempted while behind at {ms} ms: {a:?}"
        );
        c.handle(Input::Vrrp(VrrpInput::Tick { now: at(ms + 5) }));
        assert_eq!(c.engine().state(), State::Backup);
    }
    // Said again with another count: no new event.
    let a = guard(
        &mut c,
        2_001,
        Outcome::Standing {
            term,
            standing: Standing::Behind {
                missing: 3,
                names: "u:10-12".into(),
            },
        },
    );
    assert!(
        !a.iter()
            .any(|a| matches!(a, Action::Event(Event::Behind { .. }))),
        "{a:?}"
    );
    // Current: it preempts at once (its Master_Down_Timer ran out long ago).
    let a = guard(
        &mut c,
        2_002,
        Outcome::Standing {
            term,
            standing: Standing::Ready,
        },
    );
    assert!(a.contains(&Action::Event(Event::Current)), "{a:?}");
    assert_eq!(c.behind(), None);
    let a = c.handle(Input::Vrrp(VrrpInput::Tick { now: at(2_003) }));
    promotion(&a);

    // Behind again as a fresh backup, and the master fails: it takes over.
    let mut c = write_core(200);
    let a = fence_lands(&mut c, &[Action::Guard(Command::Demote { term: 1 })], 1);
    let term = rejoin(&a, None);
    advert_from(&mut c, 10, "192.0.2.12", 100);
    guard(
        &mut c,
        20,
        Outcome::Standing {
            term,
            standing: behind,
        },
    );
    promotion(&master_down(&mut c, 100));
}
