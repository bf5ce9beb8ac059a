//! Every transition with a fake clock.
use super::*;

const MS: u64 = 1_000_000;

fn at(ms: u64) -> Instant {
    Instant(ms * MS)
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn settings(priority: u8) -> Settings {
    Settings {
        version: 3,
        priority,
        advert_interval: Duration::from_millis(100),
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_address: addr("192.0.2.10"),
        min_learned_interval: Duration::from_millis(10),
        anti_flap: Duration::ZERO,
    }
}

fn started(s: Settings) -> Instance {
    let mut i = Instance::new(s);
    i.handle(Input::Startup { now: at(0) });
    i
}

fn advert(now: u64, src: &str, priority: u8) -> Input {
    Input::Advert {
        now: at(now),
        src: addr(src),
        priority,
        interval: Duration::from_millis(100),
    }
}

fn transitions(actions: &[Action]) -> Vec<(State, State, Reason)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Transition { from, to, reason } => Some((*from, *to, *reason)),
            _ => None,
        })
        .collect()
}

fn to_master(reason: Reason) -> Vec<Action> {
    vec![
        Action::SendAdvert { priority: 0 }, // placeholder, replaced below
        Action::AddVips,
        Action::Announce,
        Action::Transition {
            from: State::Backup,
            to: State::Master,
            reason,
        },
    ]
}

fn assert_became_master(actions: &[Action], priority: u8, reason: Reason) {
    let mut want = to_master(reason);
    want[0] = Action::SendAdvert { priority };
    assert_eq!(actions, want.as_slice());
}

#[test]
fn master_down_interval_follows_the_rfc() {
    let i = Instance::new(settings(100));
    // 3 × 100 ms + (156/256) × 100 ms.
    assert_eq!(i.master_down_interval(), Duration::from_nanos(360_937_500));
    assert_eq!(i.skew(), Duration::from_nanos(60_937_500));
}

#[test]
fn startup_as_backup_then_master_when_nobody_advertises() {
    let mut i = Instance::new(settings(100));
    let a = i.handle(Input::Startup { now: at(0) });
    assert_eq!(a[0], Action::SetLocalPriority { priority: 100 });
    assert_eq!(
        transitions(&a),
        vec![(State::Initialize, State::Backup, Reason::Startup)]
    );
    // No advert ever heard: the engine's own deadline decides (the kernel has nothing).
    assert!(!i.kernel_timing());
    assert_eq!(i.next_deadline(), Some(Instant(360_937_500)));
    assert!(i.handle(Input::Tick { now: at(360) }).is_empty());
    let a = i.handle(Input::Tick { now: at(361) });
    assert_became_master(&a, 100, Reason::MasterDown);
    assert_eq!(i.state(), State::Master);
}

#[test]
fn owner_is_master_at_once() {
    let mut i = Instance::new(settings(255));
    let a = i.handle(Input::Startup { now: at(0) });
    assert_eq!(
        transitions(&a),
        vec![(State::Initialize, State::Master, Reason::Owner)]
    );
    assert!(a.contains(&Action::AddVips));
    // An owner is never beaten, even by another 255 with a lower address.
    let a = i.handle(advert(50, "192.0.2.9", 255));
    assert_eq!(i.state(), State::Master);
    assert!(transitions(&a).is_empty());
}

#[test]
fn backup_follows_a_better_master_and_the_kernel_decides_master_down() {
    let mut i = started(settings(100));
    assert!(i.handle(advert(10, "192.0.2.11", 150)).is_empty());
    assert_eq!(i.master(), Some(addr("192.0.2.11")));
    assert!(i.kernel_timing());
    // The engine's deadline is a safety net one interval after the kernel's.
    assert_eq!(
        i.next_deadline(),
        Some(at(10).after(i.master_down_interval() + Duration::from_millis(100)))
    );
    let a = i.handle(Input::MasterDown { now: at(371) });
    assert_became_master(&a, 100, Reason::MasterDown);
    // A late duplicate of the same event does nothing.
    assert!(i.handle(Input::MasterDown { now: at(372) }).is_empty());
}

#[test]
fn nopreempt_after_the_higher_priority_node_reboots() {
    // db1 (150, nopreempt) reboots while db2 (100) is master: db1 must stay backup.
    let mut s = settings(150);
    s.preempt = false;
    let mut i = started(s);
    for t in (10..5000).step_by(100) {
        let a = i.handle(advert(t, "192.0.2.11", 100));
        assert!(a.is_empty(), "at {t}: {a:?}");
        assert!(i.handle(Input::Tick { now: at(t + 50) }).is_empty());
    }
    assert_eq!(i.state(), State::Backup);
    assert_eq!(i.master(), Some(addr("192.0.2.11")));
}

#[test]
fn preempt_takes_over_after_master_down_interval() {
    let mut i = started(settings(150));
    i.handle(advert(10, "192.0.2.11", 100));
    let mdi = i.master_down_interval();
    // The Master_Down_Timer started with Backup (at 0); the lower master's adverts are
    // discarded and do not reset it (RFC 5798 §6.4.2).
    assert_eq!(i.next_deadline(), Some(at(0).after(mdi)));
    i.handle(advert(110, "192.0.2.11", 100));
    i.handle(advert(210, "192.0.2.11", 100));
    assert!(i.handle(Input::Tick { now: at(300) }).is_empty());
    let a = i.handle(Input::Tick {
        now: at(0).after(mdi),
    });
    assert_became_master(&a, 150, Reason::Preempt);
}

#[test]
fn a_lower_master_heard_late_is_preempted_when_the_timer_from_the_last_better_advert_expires() {
    let mut i = started(settings(150));
    // A better master (200) advertised until 500, then fell to 100 (its check failed).
    for t in (0..=500).step_by(100) {
        i.handle(advert(t, "192.0.2.11", 200));
    }
    i.handle(advert(600, "192.0.2.11", 100));
    let mdi = i.master_down_interval();
    assert_eq!(i.next_deadline(), Some(at(500).after(mdi)));
    // Had the lowered adverts restarted the timer, the takeover would wait until 600 + MDI.
    assert_became_master(
        &i.handle(Input::Tick {
            now: at(500).after(mdi),
        }),
        150,
        Reason::Preempt,
    );
}

#[test]
fn preempt_delay_holds_the_takeover() {
    let mut s = settings(150);
    s.preempt_delay = Duration::from_secs(5);
    let mut i = started(s);
    i.handle(advert(10, "192.0.2.11", 100));
    for t in (110..5000).step_by(100) {
        i.handle(advert(t, "192.0.2.11", 100));
        assert!(
            i.handle(Input::Tick { now: at(t + 1) }).is_empty(),
            "preempted early at {t}"
        );
    }
    let a = i.handle(Input::Tick { now: at(5010) });
    assert_became_master(&a, 150, Reason::Preempt);
}

#[test]
fn a_better_advert_cancels_a_pending_preemption() {
    let mut i = started(settings(150));
    i.handle(advert(10, "192.0.2.11", 100));
    assert!(i.next_deadline().is_some());
    i.handle(advert(50, "192.0.2.12", 200));
    assert_eq!(i.master(), Some(addr("192.0.2.12")));
    assert!(i.handle(Input::Tick { now: at(400) }).is_empty());
}

#[test]
fn priority_zero_means_takeover_after_skew() {
    let mut i = started(settings(100));
    i.handle(advert(10, "192.0.2.11", 150));
    i.handle(advert(110, "192.0.2.11", 0));
    assert_eq!(i.next_deadline(), Some(at(110).after(i.skew())));
    let a = i.handle(Input::Tick {
        now: at(110).after(i.skew()),
    });
    assert_became_master(&a, 100, Reason::MasterDown);
}

#[test]
fn shutdown_sends_priority_zero_and_releases_vips() {
    let mut i = started(settings(100));
    i.handle(Input::Tick { now: at(400) });
    let a = i.handle(Input::Shutdown { now: at(500) });
    assert_eq!(
        a,
        vec![
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
            Action::Transition {
                from: State::Master,
                to: State::Initialize,
                reason: Reason::Shutdown
            }
        ]
    );
    assert_eq!(i.next_deadline(), None);
    // A backup shuts down silently.
    let mut b = started(settings(100));
    let a = b.handle(Input::Shutdown { now: at(10) });
    assert_eq!(
        transitions(&a),
        vec![(State::Backup, State::Initialize, Reason::Shutdown)]
    );
    assert!(!a.contains(&Action::RemoveVips));
}

#[test]
fn a_much_shorter_peer_interval_is_learned_with_a_floor() {
    let mut i = started(settings(100));
    i.handle(Input::Advert {
        now: at(10),
        src: addr("192.0.2.11"),
        priority: 150,
        interval: Duration::from_millis(20),
    });
    assert_eq!(i.master_adver_interval(), Duration::from_millis(20));
    // Below the floor (10 ms here): clamped, so jitter cannot cause false takeovers.
    let mut s = settings(100);
    s.min_learned_interval = Duration::from_millis(50);
    let mut j = started(s);
    j.handle(Input::Advert {
        now: at(10),
        src: addr("192.0.2.11"),
        priority: 150,
        interval: Duration::from_millis(10),
    });
    assert_eq!(j.master_adver_interval(), Duration::from_millis(50));
    // VRRPv2 times the master with the interval it advertises, as the kernel timer does
    // (RFC 3768 would discard the advert; the two sides must agree either way).
    let mut s = settings(100);
    s.version = 2;
    s.advert_interval = Duration::from_secs(1);
    let mut k = started(s);
    k.handle(Input::Advert {
        now: at(10),
        src: addr("192.0.2.11"),
        priority: 150,
        interval: Duration::from_secs(3),
    });
    assert_eq!(k.master_adver_interval(), Duration::from_secs(3));
}

#[test]
fn fault_from_master_resigns_and_recovery_returns_to_backup() {
    let mut i = started(settings(100));
    i.handle(Input::Tick { now: at(400) });
    let a = i.handle(Input::Fault { now: at(450) });
    assert_eq!(
        a,
        vec![
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
            Action::Transition {
                from: State::Master,
                to: State::Fault,
                reason: Reason::Fault
            }
        ]
    );
    // Silent in Fault: no adverts, no deadlines, adverts ignored.
    assert_eq!(i.next_deadline(), None);
    assert!(i.handle(advert(500, "192.0.2.11", 50)).is_empty());
    let a = i.handle(Input::FaultCleared { now: at(600) });
    assert_eq!(
        transitions(&a),
        vec![(State::Fault, State::Backup, Reason::FaultCleared)]
    );
    assert_eq!(
        i.next_deadline(),
        Some(at(600).after(i.master_down_interval()))
    );
}

#[test]
fn tracker_priority_changes_are_advertised_and_can_trigger_preemption() {
    let mut i = started(settings(100));
    i.handle(Input::Tick { now: at(400) });
    let a = i.handle(Input::Priority {
        now: at(450),
        priority: 80,
    });
    assert_eq!(
        a,
        vec![
            Action::SetLocalPriority { priority: 80 },
            Action::SendAdvert { priority: 80 }
        ]
    );
    // Backup whose priority rises above the master's preempts after Master_Down_Interval.
    let mut b = started(settings(100));
    b.handle(advert(10, "192.0.2.11", 120));
    let a = b.handle(Input::Priority {
        now: at(20),
        priority: 130,
    });
    assert_eq!(a, vec![Action::SetLocalPriority { priority: 130 }]);
    // The timer runs from the last advert accepted (at 10, when 120 outranked us).
    let when = at(10).after(b.master_down_interval());
    assert_eq!(b.next_deadline(), Some(when));
    assert_became_master(&b.handle(Input::Tick { now: when }), 130, Reason::Preempt);
}

#[test]
fn adverts_are_sent_on_schedule_without_drift() {
    let mut i = started(settings(100));
    i.handle(Input::Tick { now: at(361) });
    assert_eq!(i.next_deadline(), Some(at(461)));
    // A late tick sends one advert and keeps the original phase.
    assert_eq!(
        i.handle(Input::Tick { now: at(465) }),
        vec![Action::SendAdvert { priority: 100 }]
    );
    assert_eq!(i.next_deadline(), Some(at(561)));
    // A tick that skipped several intervals still sends one advert, next on phase.
    assert_eq!(i.handle(Input::Tick { now: at(800) }).len(), 1);
    assert_eq!(i.next_deadline(), Some(at(861)));
}

#[test]
fn a_paced_masters_feed_waits_for_its_grid_instant_and_nothing_else_does() {
    let mut i = started(settings(100));
    // Backup: the master-down deadline is exact.
    assert_eq!(i.next_wake(), i.next_deadline());
    i.handle(Input::Tick { now: at(361) });
    // Master since 361: the periodic advert is due at 461, fed at the grid's 500.
    assert_eq!(i.next_deadline(), Some(at(461)));
    assert_eq!(i.next_wake(), Some(at(500)));
    assert_eq!(
        i.handle(Input::Tick { now: at(500) }),
        vec![Action::SendAdvert { priority: 100 }]
    );
    assert_eq!(i.next_wake(), Some(at(600)));
    // Never later than one interval, whatever the phase.
    for t in [0u64, 1, 99, 100, 101, 12_345] {
        let g = grid_at_or_after(t * MS, 100 * MS);
        assert!(
            g >= t * MS && g - t * MS < 100 * MS && g.is_multiple_of(100 * MS),
            "{t}"
        );
    }
}

#[test]
fn anti_flap_holds_fail_back_but_not_takeover_from_a_dead_master() {
    let mut s = settings(150);
    s.anti_flap = Duration::from_secs(30);
    // db1 is master, its MySQL check drops it below db2, db2 takes over.
    let mut i = started(s);
    i.handle(Input::MasterDown { now: at(400) });
    assert_eq!(i.state(), State::Master);
    i.handle(Input::Priority {
        now: at(1000),
        priority: 90,
    });
    let a = i.handle(advert(1005, "192.0.2.11", 100));
    assert_eq!(
        transitions(&a),
        vec![(State::Master, State::Backup, Reason::HigherPriority)]
    );
    // The check recovers at 5 s: db1 outranks db2 again but stays backup for 30 s after
    // it lost mastership, however long db2 keeps advertising.
    i.handle(Input::Priority {
        now: at(5000),
        priority: 150,
    });
    for t in (5100..31_000).step_by(100) {
        i.handle(advert(t, "192.0.2.11", 100));
        assert!(
            transitions(&i.handle(Input::Tick { now: at(t + 1) })).is_empty(),
            "failed back inside the anti-flap window at {t} ms"
        );
    }
    assert_eq!(i.preempt_hold_until(), at(31_005));
    let a = i.handle(Input::Tick { now: at(31_005) });
    assert_became_master(&a, 150, Reason::Preempt);

    // Inside the hold, a master that goes silent is still replaced at once.
    i.handle(Input::Priority {
        now: at(32_000),
        priority: 90,
    });
    i.handle(advert(32_005, "192.0.2.11", 100));
    assert_eq!(i.state(), State::Backup);
    i.handle(Input::Priority {
        now: at(33_000),
        priority: 150,
    });
    i.handle(advert(33_010, "192.0.2.11", 100));
    assert!(transitions(&i.handle(Input::Tick { now: at(33_100) })).is_empty());
    let a = i.handle(Input::MasterDown { now: at(33_371) });
    assert_became_master(&a, 150, Reason::MasterDown);

    // A node that starts (or never was master) has no hold: it preempts as usual.
    let mut s = settings(150);
    s.anti_flap = Duration::from_secs(30);
    let mut i = started(s);
    i.handle(advert(10, "192.0.2.11", 100));
    let a = i.handle(Input::Tick {
        now: at(10).after(i.master_down_interval()),
    });
    assert_became_master(&a, 150, Reason::Preempt);
}

#[test]
fn anti_flap_does_not_protect_a_master_whose_checks_fail() {
    let mut s = settings(100);
    s.anti_flap = Duration::from_secs(60);
    // db2 just started; db1 (150) is master and healthy: nothing to do.
    let mut i = started(s);
    i.handle(advert(10, "192.0.2.11", 150));
    // db1's MySQL check fails: it advertises 50. db2 preempts after Master_Down_Interval
    // although it is inside its start-up hold.
    i.handle(advert(20, "192.0.2.11", 50));
    let mdi = i.master_down_interval();
    i.handle(advert(30, "192.0.2.11", 50));
    assert!(transitions(&i.handle(Input::Tick { now: at(25) })).is_empty());
    let a = i.handle(Input::Tick {
        now: at(20).after(mdi),
    });
    assert_became_master(&a, 100, Reason::Preempt);
}

#[test]
fn switchover_hands_over_and_does_not_preempt_back_until_the_new_master_fails() {
    // db1 (150, preempt) is master; the operator switches over to db2 (100).
    let mut i = started(settings(150));
    i.handle(Input::MasterDown { now: at(400) });
    assert_eq!(i.state(), State::Master);
    let a = i.handle(Input::Switchover { now: at(1000) });
    assert_eq!(
        a,
        vec![
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
            Action::Transition {
                from: State::Master,
                to: State::Backup,
                reason: Reason::Switchover,
            },
        ]
    );
    // db2 advertises 100 for a long time: db1 outranks it but stays backup.
    for t in (1100..600_000).step_by(100) {
        i.handle(advert(t, "192.0.2.11", 100));
        assert!(
            transitions(&i.handle(Input::Tick { now: at(t + 1) })).is_empty(),
            "preempted back after the switchover at {t} ms"
        );
    }
    assert_eq!(i.master(), Some(addr("192.0.2.11")));
    // db2's checks fail (it lowers its priority): db1 takes the role back.
    i.handle(advert(600_000, "192.0.2.11", 50));
    let a = i.handle(Input::Tick {
        now: at(600_000).after(i.master_down_interval()),
    });
    assert_became_master(&a, 150, Reason::Preempt);
    // Switchover on a backup does nothing.
    let mut b = started(settings(100));
    assert!(b.handle(Input::Switchover { now: at(5) }).is_empty());
    assert_eq!(b.state(), State::Backup);
}

#[test]
fn switchover_hold_ends_when_the_new_master_dies() {
    let mut i = started(settings(150));
    i.handle(Input::MasterDown { now: at(400) });
    i.handle(Input::Switchover { now: at(1000) });
    i.handle(advert(1100, "192.0.2.11", 100));
    let a = i.handle(Input::MasterDown { now: at(1500) });
    assert_became_master(&a, 150, Reason::MasterDown);
}
