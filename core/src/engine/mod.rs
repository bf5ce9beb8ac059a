//! The VRRP state machine of one instance, sans I/O (RFC 5798 / 9568, RFC 3768 for v2).
//!
//! [`Instance::handle`] takes an [`Input`] that carries `now` and returns the [`Action`]s
//! the I/O shells must carry out, in order. Nothing here reads a clock or touches a socket,
//! so every transition is a unit test with a fake clock.
//!
//! Who decides Master_Down: while a master is advertising, the kernel timer (datapath)
//! reports its silence as [`Input::MasterDown`], microseconds after the deadline. The
//! engine also keeps its own deadline, used (through [`Input::Tick`]) when the kernel
//! cannot know: at start-up or after Fault, when no advert has been heard yet. Once an
//! advert has been accepted that deadline sits one advert interval *after* the kernel's,
//! a safety net that never races it.
#[cfg(test)]
mod conformance;
#[cfg(test)]
mod tests;

use std::{net::IpAddr, time::Duration};

/// Monotonic time as the shells see it (nanoseconds since an arbitrary origin; the same
/// clock as `bpf_ktime_get_ns`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub u64);

impl Instant {
    /// A time that never comes (an indefinite hold).
    pub const FOREVER: Instant = Instant(u64::MAX);

    pub fn after(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d.as_nanos() as u64))
    }
    pub fn since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Initialize,
    Backup,
    Master,
    /// A tracked check failed with weight 0 (or the interface is down): no VIPs, silent.
    Fault,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            Self::Initialize => "INIT",
            Self::Backup => "BACKUP",
            Self::Master => "MASTER",
            Self::Fault => "FAULT",
        }
    }
}

/// Why a transition happened (logged, counted, passed to hooks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Start-up as backup.
    Startup,
    /// Start-up with priority 255: the address owner is master at once.
    Owner,
    /// Master_Down_Interval (or Skew after a priority-0 advert) passed in silence.
    MasterDown,
    /// A better master advertised (higher priority, or equal and higher address).
    HigherPriority,
    /// We outrank the current master and preemption is allowed (after preempt_delay).
    Preempt,
    Shutdown,
    Fault,
    FaultCleared,
    /// An operator handed mastership to the peer (`xvrrpd switchover`).
    Switchover,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Owner => "owner",
            Self::MasterDown => "master_down",
            Self::HigherPriority => "higher_priority",
            Self::Preempt => "preempt",
            Self::Shutdown => "shutdown",
            Self::Fault => "fault",
            Self::FaultCleared => "fault_cleared",
            Self::Switchover => "switchover",
        }
    }
}

/// Static settings of an instance (from the config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub version: u8,
    /// Configured priority 1–255 (255 = address owner).
    pub priority: u8,
    /// Configured advert interval.
    pub advert_interval: Duration,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// Our primary address on the interface: breaks ties between equal priorities.
    pub primary_address: IpAddr,
    /// Smallest Master_Adver_Interval a backup learns from a master's adverts.
    pub min_learned_interval: Duration,
    /// No preemption for this long after this node lost mastership (to a better master,
    /// or through a Fault entered as master, counted from leaving that Fault): a pair
    /// that failed over does not fail back at once. A master that fails is replaced as
    /// usual: Master_Down is not affected, and the hold ends when the master lowers its
    /// advertised priority (its own checks are failing).
    pub anti_flap: Duration,
}

/// The first instant at or after `t` on the grid of `interval` (its multiples on the
/// monotonic clock; 0 counts as 1 ns). Timers on one grid fire together: 250 masters
/// started at scattered moments wake their thread ~110 times a second, not ~3 500.
pub fn grid_at_or_after(t: u64, interval: u64) -> u64 {
    let interval = interval.max(1);
    t.div_ceil(interval).saturating_mul(interval)
}

/// What the engine is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Startup {
        now: Instant,
    },
    Shutdown {
        now: Instant,
    },
    /// A valid advert for this instance (validated by the datapath).
    Advert {
        now: Instant,
        src: IpAddr,
        priority: u8,
        interval: Duration,
    },
    /// The kernel timer saw Master_Down_Interval pass without a valid advert.
    MasterDown {
        now: Instant,
    },
    /// Time passed: process deadlines at or before `now`.
    Tick {
        now: Instant,
    },
    /// Tracked state changed the effective priority (already clamped by the trackers).
    Priority {
        now: Instant,
        priority: u8,
    },
    Fault {
        now: Instant,
    },
    FaultCleared {
        now: Instant,
    },
    /// Planned handover (master only): priority 0 so the peer takes over after its Skew,
    /// then no preemption until the new master fails or lowers its priority.
    Switchover {
        now: Instant,
    },
}

/// What the shells must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Transition {
        from: State,
        to: State,
        reason: Reason,
    },
    /// Send one advert with this priority (0 when leaving).
    SendAdvert {
        priority: u8,
    },
    AddVips,
    RemoveVips,
    /// Gratuitous ARP / unsolicited NA burst for the VIPs.
    Announce,
    /// Tell the datapath the local priority (it shapes the kernel's Skew_Time).
    SetLocalPriority {
        priority: u8,
    },
}

#[derive(Clone, Debug)]
pub struct Instance {
    pub settings: Settings,
    state: State,
    priority: u8,
    master_adver_interval: Duration,
    /// Master we accept in Backup.
    master: Option<(IpAddr, u8)>,
    /// Engine deadline for Master_Down (see module docs).
    master_down_at: Option<Instant>,
    /// An advert has been accepted since entering Backup: the kernel is timing it.
    kernel_timing: bool,
    /// Master: when the next advert is due.
    advert_at: Option<Instant>,
    /// `advert_at` on its interval's grid ([`Self::next_wake`]), computed when it is set.
    advert_wake: Option<Instant>,
    /// Backup: we outrank the master; take over at this time.
    preempt_at: Option<Instant>,
    /// Backup: no preemption before this time (anti-flap).
    hold_until: Instant,
    /// Backup: when the RFC's Master_Down_Timer was last reset (entering Backup, or an
    /// advert accepted); a lower priority's adverts are discarded and do not reset it.
    last_reset: Instant,
    /// In Fault: entered it as master (leaving it starts the anti-flap hold).
    fault_from_master: bool,
    /// Backup: no preemption while set ([`Self::hold_preemption`]).
    preempt_held: bool,
}

impl Instance {
    pub fn new(settings: Settings) -> Self {
        let priority = settings.priority;
        let iv = settings.advert_interval;
        Self {
            settings,
            state: State::Initialize,
            priority,
            master_adver_interval: iv,
            master: None,
            master_down_at: None,
            kernel_timing: false,
            advert_at: None,
            advert_wake: None,
            preempt_at: None,
            hold_until: Instant(0),
            last_reset: Instant(0),
            fault_from_master: false,
            preempt_held: false,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }
    /// Effective priority (configured, adjusted by trackers).
    pub fn priority(&self) -> u8 {
        self.priority
    }
    pub fn master(&self) -> Option<IpAddr> {
        self.master.map(|m| m.0)
    }
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// Skew_Time = ((256 − Priority) × Master_Adver_Interval) / 256: the kernel timer's
    /// arithmetic ([`xvrrpd_common::skew_ns`]), so both sides agree to the nanosecond.
    pub fn skew(&self) -> Duration {
        Duration::from_nanos(xvrrpd_common::skew_ns(self.interval_ns(), self.priority))
    }

    /// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        Duration::from_nanos(xvrrpd_common::master_down_ns(
            self.interval_ns(),
            self.priority,
        ))
    }

    fn interval_ns(&self) -> u64 {
        self.master_adver_interval.as_nanos() as u64
    }

    /// The earliest time at which [`Input::Tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.master_down_at, self.advert_at, self.preempt_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// [`Self::next_deadline`] for a shell whose periodic adverts are sent by a pacer on
    /// the grid of the interval ([`grid_at_or_after`]), where a master's periodic advert
    /// only feeds the pacer: that deadline moves to its grid instant (at most one
    /// interval later), so every master with the same interval ticks in one wake-up, not
    /// one each. Every other deadline is exact.
    pub fn next_wake(&self) -> Option<Instant> {
        [self.master_down_at, self.advert_wake, self.preempt_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Sets the periodic advert's deadline (and its grid instant).
    fn set_advert_at(&mut self, at: Option<Instant>) {
        self.advert_at = at;
        self.advert_wake = at.map(|t| {
            Instant(grid_at_or_after(
                t.0,
                self.settings.advert_interval.as_nanos() as u64,
            ))
        });
    }

    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Startup { now } => self.startup(now, &mut out),
            Input::Shutdown { .. } => self.shutdown(&mut out),
            Input::Advert {
                now,
                src,
                priority,
                interval,
            } => self.advert(now, src, priority, interval, &mut out),
            Input::MasterDown { now } => {
                if self.state == State::Backup {
                    self.become_master(now, Reason::MasterDown, &mut out);
                }
            }
            Input::Tick { now } => self.tick(now, &mut out),
            Input::Priority { now, priority } => self.set_priority(now, priority, &mut out),
            Input::Fault { .. } => self.fault(&mut out),
            Input::FaultCleared { now } => {
                if self.state == State::Fault {
                    self.become_backup(now, Reason::FaultCleared, &mut out);
                }
            }
            Input::Switchover { now } => {
                if self.state == State::Master {
                    out.push(Action::SendAdvert { priority: 0 });
                    self.become_backup(now, Reason::Switchover, &mut out);
                    self.hold_until = Instant::FOREVER;
                }
            }
        }
        out
    }

    fn transition(&mut self, to: State, reason: Reason, out: &mut Vec<Action>) {
        let from = self.state;
        self.state = to;
        out.push(Action::Transition { from, to, reason });
    }

    fn startup(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state != State::Initialize {
            return;
        }
        out.push(Action::SetLocalPriority {
            priority: self.priority,
        });
        if self.priority == 255 {
            self.become_master(now, Reason::Owner, out);
        } else {
            self.become_backup(now, Reason::Startup, out);
        }
    }

    fn shutdown(&mut self, out: &mut Vec<Action>) {
        if self.state == State::Master {
            // Priority 0 lets the backup take over after Skew instead of 3 intervals.
            out.push(Action::SendAdvert { priority: 0 });
            out.push(Action::RemoveVips);
        }
        if self.state != State::Initialize {
            self.clear_timers();
            self.transition(State::Initialize, Reason::Shutdown, out);
        }
    }

    fn fault(&mut self, out: &mut Vec<Action>) {
        // Already in FAULT: whether it came from master stays as it was (a second fault
        // reason must not cost the anti-flap hold of a master that failed).
        if self.state == State::Fault {
            return;
        }
        self.fault_from_master = self.state == State::Master;
        match self.state {
            State::Master => {
                out.push(Action::SendAdvert { priority: 0 });
                out.push(Action::RemoveVips);
            }
            State::Backup | State::Initialize => {}
            State::Fault => return,
        }
        self.clear_timers();
        self.transition(State::Fault, Reason::Fault, out);
    }

    fn clear_timers(&mut self) {
        self.master_down_at = None;
        self.set_advert_at(None);
        self.preempt_at = None;
        self.kernel_timing = false;
    }

    fn become_backup(&mut self, now: Instant, reason: Reason, out: &mut Vec<Action>) {
        if self.state == State::Master {
            out.push(Action::RemoveVips);
        }
        self.clear_timers();
        if self.state == State::Master || (self.state == State::Fault && self.fault_from_master) {
            self.hold_until = now.after(self.settings.anti_flap);
        }
        self.master_adver_interval = self.settings.advert_interval;
        self.master_down_at = Some(now.after(self.master_down_interval()));
        self.last_reset = now;
        self.transition(State::Backup, reason, out);
    }

    fn become_master(&mut self, now: Instant, reason: Reason, out: &mut Vec<Action>) {
        self.clear_timers();
        self.master = None;
        // Advert first: the old master (if alive) steps down as early as possible.
        out.push(Action::SendAdvert {
            priority: self.priority,
        });
        out.push(Action::AddVips);
        out.push(Action::Announce);
        self.set_advert_at(Some(now.after(self.settings.advert_interval)));
        self.transition(State::Master, reason, out);
    }

    /// Does an advert from (`src`, `prio`) beat us?
    /// Would an advert from `src` at `prio` make this master step down (RFC 5798: a
    /// higher priority, or the same one from a higher address)?
    pub fn beats_us(&self, src: IpAddr, prio: u8) -> bool {
        prio > self.priority || (prio == self.priority && src > self.settings.primary_address)
    }

    fn advert(
        &mut self,
        now: Instant,
        src: IpAddr,
        prio: u8,
        interval: Duration,
        out: &mut Vec<Action>,
    ) {
        match self.state {
            State::Initialize | State::Fault => {}
            State::Backup => {
                if prio == 0 {
                    // The master is leaving: take over after Skew (the kernel reports it).
                    self.master_down_at = Some(now.after(self.skew()));
                    self.kernel_timing = true;
                    self.preempt_at = None;
                    return;
                }
                // The master we follow lowered its priority (a failing check): it is
                // failing, so the anti-flap hold no longer protects it.
                if self.master.is_some_and(|(m, p)| m == src && prio < p) {
                    self.release_hold(now);
                }
                if !self.settings.preempt || prio >= self.priority {
                    self.accept_master(now, src, prio, interval);
                } else {
                    // We outrank this master: RFC 5798 discards its adverts, so it is
                    // replaced after Master_Down_Interval (or preempt_delay). Meanwhile the
                    // kernel times it: if it dies first, MasterDown arrives sooner.
                    if self.preempt_at.is_none() {
                        self.preempt_at = Some(self.preempt_time(now));
                    }
                    self.master = Some((src, prio));
                    self.arm_safety_net(now);
                }
            }
            State::Master => {
                if prio == 0 {
                    // Another master resigned: assert ourselves at once.
                    out.push(Action::SendAdvert {
                        priority: self.priority,
                    });
                    self.set_advert_at(Some(now.after(self.settings.advert_interval)));
                } else if self.beats_us(src, prio) {
                    // Split brain ending (or a better router arriving): one last advert
                    // at our priority tells the winner another master existed, so it
                    // re-announces the VIPs and caches that point here are corrected.
                    out.push(Action::SendAdvert {
                        priority: self.priority,
                    });
                    self.become_backup(now, Reason::HigherPriority, out);
                    self.accept_master(now, src, prio, interval);
                } else {
                    // Split brain healing: a lower-priority router thinks it is master.
                    // Re-announce now so it steps down and every ARP cache points here.
                    out.push(Action::SendAdvert {
                        priority: self.priority,
                    });
                    out.push(Action::Announce);
                    self.set_advert_at(Some(now.after(self.settings.advert_interval)));
                }
            }
        }
    }

    fn accept_master(&mut self, now: Instant, src: IpAddr, prio: u8, interval: Duration) {
        // v3 learns Master_Adver_Interval from the master (RFC 5798). v2 (RFC 3768) would
        // discard an advert whose interval differs from ours; the kernel timer accepts it
        // and times the master with the advertised interval, so the engine does the same:
        // both sides always compute the same Master_Down_Interval.
        self.master_adver_interval = interval.max(self.settings.min_learned_interval);
        self.master = Some((src, prio));
        self.preempt_at = None;
        self.last_reset = now;
        self.arm_safety_net(now);
    }

    /// A master's advert arrived at `now`: the kernel is timing its silence; our own
    /// deadline becomes a safety net one interval behind the kernel's.
    fn arm_safety_net(&mut self, now: Instant) {
        self.kernel_timing = true;
        self.master_down_at =
            Some(now.after(self.master_down_interval() + self.master_adver_interval));
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.state {
            State::Master => {
                if self.advert_at.is_some_and(|t| t <= now) {
                    out.push(Action::SendAdvert {
                        priority: self.priority,
                    });
                    // Next advert from the scheduled time, not from `now`: no drift.
                    let mut next = self.advert_at.unwrap_or(now);
                    while next <= now {
                        next = next.after(self.settings.advert_interval);
                    }
                    self.set_advert_at(Some(next));
                }
            }
            State::Backup => {
                if self.preempt_at.is_some_and(|t| t <= now) {
                    self.become_master(now, Reason::Preempt, out);
                } else if self.master_down_at.is_some_and(|t| t <= now) {
                    self.become_master(now, Reason::MasterDown, out);
                }
            }
            State::Initialize | State::Fault => {}
        }
    }

    fn set_priority(&mut self, now: Instant, prio: u8, out: &mut Vec<Action>) {
        if prio == self.priority || self.settings.priority == 255 {
            return;
        }
        self.priority = prio;
        out.push(Action::SetLocalPriority { priority: prio });
        match self.state {
            // Advertise the new priority at once so a better backup can preempt now.
            State::Master => {
                out.push(Action::SendAdvert { priority: prio });
                self.set_advert_at(Some(now.after(self.settings.advert_interval)));
            }
            State::Backup => match self.master {
                Some((_, mprio)) if self.settings.preempt && mprio < prio => {
                    if self.preempt_at.is_none() {
                        self.preempt_at = Some(self.preempt_time(now));
                    }
                }
                _ => self.preempt_at = None,
            },
            State::Initialize | State::Fault => {}
        }
    }

    /// When a backup that outranks the master (from `now` on) takes over: after
    /// preempt_delay when set (keepalived semantics), else when the Master_Down_Timer
    /// expires, and never inside the anti-flap hold. That timer runs from its last reset:
    /// RFC 5798 §6.4.2 discards a lower priority's adverts, they do not restart it. (From
    /// the first such advert instead, two nodes started together converged a whole
    /// Master_Down_Interval late when the lower one won the first race.)
    fn preempt_time(&self, now: Instant) -> Instant {
        let due = if self.settings.preempt_delay.is_zero() {
            self.last_reset.after(self.master_down_interval()).max(now)
        } else {
            now.after(self.settings.preempt_delay)
        };
        if self.preempt_held {
            return Instant::FOREVER;
        }
        due.max(self.hold_until)
    }

    fn preempt_wait_plain(&self) -> Duration {
        if self.settings.preempt_delay.is_zero() {
            self.master_down_interval()
        } else {
            self.settings.preempt_delay
        }
    }

    /// End of the anti-flap hold (meaningful in Backup).
    pub fn preempt_hold_until(&self) -> Instant {
        self.hold_until
    }

    /// No preemption before `until` (an anti-flap hold carried across an agent restart).
    pub fn hold_preemption_until(&mut self, until: Instant) {
        self.hold_until = self.hold_until.max(until);
    }

    /// Holds preemption while `held` (a write instance whose data is behind the
    /// master's), whatever the anti-flap hold says; a master that fails is still taken
    /// over from. Released, a preemption due goes ahead as if it had just become due.
    pub fn hold_preemption(&mut self, held: bool, now: Instant) {
        if held == self.preempt_held {
            return;
        }
        self.preempt_held = held;
        if self.preempt_at.is_some() {
            self.preempt_at = Some(self.preempt_time(now));
        }
    }

    /// Is preemption held (see [`Self::hold_preemption`])?
    pub fn preemption_held(&self) -> bool {
        self.preempt_held
    }

    /// Ends the anti-flap hold: for a node whose mastership never served (a write
    /// instance that could not catch up), there is no fail-back to damp.
    pub fn release_hold(&mut self, now: Instant) {
        self.hold_until = self.hold_until.min(now);
        if let Some(t) = self.preempt_at {
            self.preempt_at = Some(t.min(now.after(self.preempt_wait_plain())));
        }
    }

    /// True when the engine's own master-down deadline is only a safety net (the kernel
    /// timer is tracking a live master).
    pub fn kernel_timing(&self) -> bool {
        self.kernel_timing
    }
}
