//! The advert pacer: one thread per process sends the periodic adverts of every master
//! instance on time, whatever the rest of the host (or of this process) is doing.
//!
//! The engine still decides everything: it sends the first advert of a mastership and
//! every advert whose content changes itself, at once, from the main loop, and it keeps
//! emitting its periodic adverts as before. Here those periodic ones only *feed* the
//! slot (a heartbeat); the pacer thread sends the slot's pre-built frames on an absolute
//! schedule (deadline += interval, no drift), at `SCHED_FIFO` when allowed, from memory
//! locked by `mlockall`. A tokio task can be starved for hundreds of milliseconds by
//! real-time load or paged out under memory pressure: that starvation is what made a
//! backup take over from a healthy master (issue 16's bench: 241 false takeovers in 120 s
//! under SCHED_FIFO bursts).
//!
//! Only what the engine sends counts: a slot the engine has not fed for
//! [`liveness_bound`] (far longer than any scheduling hiccup, far shorter than forever)
//! stops, so a wedged main loop cannot keep advertising a mastership its engine no longer
//! runs; the backup takes over one Master_Down_Interval later. Leaving mastership stops
//! the slot before anything else is sent (the slot's version is an atomic the thread
//! checks right before each send, so no stale advert follows a priority-0 one).
//!
//! [`Schedule`] is the pure part (times in, sends out); [`Pacer`] is the thread.
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc, Arc,
    },
    time::Duration,
};

use prometheus_client::metrics::counter::Counter;
use socket2::{SockAddr, Socket};

use super::tx::Frames;
use crate::datapath::beat::Beat;
use tracing::{info, warn};

/// A slot unfed for this long stops sending: the longer of 1 s (real-time bursts starve
/// the main loop for 200 ms) and three advert intervals (at 1 s adverts a starved loop
/// still gets its turn within the backup's Master_Down_Interval).
pub fn liveness_bound(interval: Duration) -> Duration {
    (interval * 3).max(Duration::from_secs(1))
}

/// The first deadline after `t` on the grid of `interval` (multiples of it on the
/// monotonic clock). Every slot with the same interval is due at the same instants, and
/// a shorter interval's grid contains a longer one's when it divides it (10 ms and
/// 100 ms): the thread wakes once per grid instant for every slot due then, not once per
/// slot (250 instances started at random moments: ~5 000 wake-ups a second before, ~100
/// now). The first paced advert comes sooner than one interval after the engine's own,
/// never later.
fn grid_after(t: u64, interval: u64) -> u64 {
    crate::engine::grid_at_or_after(t + 1, interval)
}

/// One slot's schedule, in monotonic nanoseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Timing {
    version: u64,
    interval: u64,
    next: u64,
}

/// The pure schedule: which slots are due when.
#[derive(Debug, Default)]
pub struct Schedule {
    slots: HashMap<u64, Timing>,
}

impl Schedule {
    /// New frames for `slot` (version `version`), just sent by the main loop at `now`:
    /// the next one is due at the interval's next grid instant (within one interval).
    pub fn start(&mut self, slot: u64, version: u64, interval: Duration, now: u64) {
        let interval = interval.as_nanos().max(1) as u64;
        self.slots.insert(
            slot,
            Timing {
                version,
                interval,
                next: grid_after(now, interval),
            },
        );
    }

    pub fn stop(&mut self, slot: u64) {
        self.slots.remove(&slot);
    }

    /// The slots due at `now` whose engine fed them recently enough (`fed` gives a slot's
    /// last feed and current version; a slot whose version moved on is skipped until its
    /// new frames arrive). Each due slot's next deadline moves one interval on, or to the
    /// grid's next instant if the thread itself was late by more than an interval (no
    /// burst of catch-up adverts).
    pub fn due(&mut self, now: u64, fed: impl Fn(u64) -> (u64, u64)) -> Vec<u64> {
        let mut out = Vec::new();
        for (&slot, t) in self.slots.iter_mut() {
            if t.next > now {
                continue;
            }
            t.next = if now - t.next >= t.interval {
                grid_after(now, t.interval)
            } else {
                t.next + t.interval
            };
            let (last_fed, version) = fed(slot);
            let bound = liveness_bound(Duration::from_nanos(t.interval)).as_nanos() as u64;
            if version == t.version && now.saturating_sub(last_fed) <= bound {
                out.push(slot);
            }
        }
        out.sort_unstable();
        out
    }

    /// When the thread must wake next (None: nothing scheduled).
    pub fn next_wake(&self) -> Option<u64> {
        self.slots.values().map(|t| t.next).min()
    }
}

/// What the main loop shares with the thread for one slot, without a lock.
#[derive(Debug, Default)]
pub struct Shared {
    /// The frames' version the main loop stands by; 0: stopped.
    version: AtomicU64,
    /// Monotonic ns of the engine's last advert for this slot.
    fed: AtomicU64,
    /// The instance's adverts-sent counter (an atomic): the thread counts what it sends.
    sent: Counter,
}

enum Msg {
    Start {
        slot: u64,
        version: u64,
        interval: Duration,
        frames: Frames,
        socket: Arc<Socket>,
        shared: Arc<Shared>,
        beat: Option<Arc<Beat>>,
        now: u64,
    },
    Stop {
        slot: u64,
    },
    /// The slot's self-fence heartbeat (None: none from now on).
    Beat {
        slot: u64,
        beat: Option<Arc<Beat>>,
    },
}

/// The pacer thread's handle; cloned into every instance.
#[derive(Clone)]
pub struct Pacer {
    tx: mpsc::Sender<Msg>,
    next_slot: Arc<AtomicU64>,
}

/// How the pacer thread runs.
#[derive(Clone, Copy, Debug)]
pub struct Realtime {
    /// SCHED_FIFO priority (1..=99); 0: ordinary scheduling.
    pub priority: u8,
    /// RLIMIT_RTTIME: the CPU time a real-time thread may use without blocking before the
    /// kernel sends SIGXCPU (twice that: SIGKILL), so a bug cannot wedge a core.
    pub budget: Duration,
}

impl Pacer {
    /// Starts the thread.
    pub fn spawn(rt: Realtime) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("xvrrpd-pacer".into())
            .spawn(move || run(rx, rt))?;
        Ok(Self {
            tx,
            next_slot: Arc::new(AtomicU64::new(1)),
        })
    }

    /// A slot for one instance, counting its sends in `sent`; dropping it stops the slot.
    pub fn slot(&self, sent: Counter) -> Slot {
        Slot {
            id: self.next_slot.fetch_add(1, Ordering::Relaxed),
            shared: Arc::new(Shared {
                sent,
                ..Shared::default()
            }),
            version: 0,
            frames: Vec::new(),
            beat: None,
            tx: self.tx.clone(),
        }
    }
}

/// One instance's end of the pacer.
pub struct Slot {
    id: u64,
    shared: Arc<Shared>,
    version: u64,
    /// The frames the thread has (to tell a periodic advert from a changed one).
    frames: Frames,
    /// A write instance's self-fence heartbeat, beaten with each paced advert.
    beat: Option<Arc<Beat>>,
    tx: mpsc::Sender<Msg>,
}

impl Slot {
    /// The engine sends an advert of a mastership that goes on. `frames` is what goes on
    /// the wire. True: the caller sends it now (first advert or new content; the thread
    /// takes over from one interval later). False: a periodic advert, already paced: it
    /// only feeds the slot.
    pub fn advert(
        &mut self,
        frames: &[(SockAddr, Vec<u8>)],
        interval: Duration,
        socket: &Arc<Socket>,
        now: u64,
    ) -> bool {
        self.shared.fed.store(now, Ordering::Release);
        let same = self.version != 0 && self.frames == frames;
        if same {
            return false;
        }
        self.version += 1;
        self.frames = frames.to_vec();
        let frames = frames.to_vec();
        // The frames first, then the version the thread may send them under.
        let _ = self.tx.send(Msg::Start {
            slot: self.id,
            version: self.version,
            interval,
            frames,
            socket: socket.clone(),
            shared: self.shared.clone(),
            beat: self.beat.clone(),
            now,
        });
        self.shared.version.store(self.version, Ordering::Release);
        true
    }

    /// The self-fence heartbeat the thread beats with each advert it sends for this
    /// slot from now on (None: no more beats).
    pub fn set_beat(&mut self, beat: Option<Arc<Beat>>) {
        self.beat = beat.clone();
        let _ = self.tx.send(Msg::Beat {
            slot: self.id,
            beat,
        });
    }

    /// Mastership ends (or a priority-0 advert follows): no paced advert goes out after
    /// this returns.
    pub fn stop(&mut self) {
        if self.shared.version.swap(0, Ordering::AcqRel) != 0 {
            let _ = self.tx.send(Msg::Stop { slot: self.id });
        }
        // A later start is always new content.
        self.frames.clear();
        self.version += 1;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One frame due now: its slot, destination and bytes.
type Due<'a> = (u64, &'a SockAddr, &'a [u8]);

struct Live {
    frames: Frames,
    socket: Arc<Socket>,
    shared: Arc<Shared>,
    beat: Option<Arc<Beat>>,
}

fn run(rx: mpsc::Receiver<Msg>, rt: Realtime) {
    become_realtime(rt);
    let mut schedule = Schedule::default();
    let mut live: HashMap<u64, Live> = HashMap::new();
    loop {
        // Wait for the next deadline, or for a message (a new slot must not wait for an
        // older slot's deadline). Deadlines are absolute: lateness never accumulates.
        let msg = match schedule.next_wake() {
            None => match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => return,
            },
            Some(at) => {
                let now = super::monotonic_ns();
                if at <= now {
                    rx.try_recv().ok()
                } else {
                    match rx.recv_timeout(Duration::from_nanos(at - now)) {
                        Ok(m) => Some(m),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            }
        };
        if let Some(m) = msg {
            handle(m, &mut schedule, &mut live);
            // Drain what else is queued before sending anything.
            while let Ok(m) = rx.try_recv() {
                handle(m, &mut schedule, &mut live);
            }
        }
        let now = super::monotonic_ns();
        let due = schedule.due(now, |slot| {
            live.get(&slot).map_or((0, 0), |l| {
                (
                    l.shared.fed.load(Ordering::Acquire),
                    l.shared.version.load(Ordering::Acquire),
                )
            })
        });
        // Every frame due now, one `sendmmsg` per socket (the link socket carries every
        // multicast advert of the process).
        let mut batches: Vec<(&Socket, Vec<Due>)> = Vec::new();
        for slot in due {
            let Some(l) = live.get(&slot) else { continue };
            // The check right before the batch goes: a slot stopped meanwhile sends nothing.
            if l.shared.version.load(Ordering::Acquire) == 0 {
                continue;
            }
            let at = match batches
                .iter()
                .position(|(s, _)| std::ptr::eq(*s, &*l.socket))
            {
                Some(i) => i,
                None => {
                    batches.push((&l.socket, Vec::new()));
                    batches.len() - 1
                }
            };
            for (to, bytes) in &l.frames {
                batches[at].1.push((slot, to, bytes));
            }
        }
        for (socket, frames) in &batches {
            let msgs: Vec<(&SockAddr, &[u8])> = frames.iter().map(|f| (f.1, f.2)).collect();
            // A slot's frames are consecutive in its batch: it is beaten once, at its
            // first frame sent.
            let mut beaten = None;
            for (ok, (slot, ..)) in send_all(socket, &msgs).into_iter().zip(frames) {
                let Some(l) = live.get(slot).filter(|_| ok) else {
                    continue;
                };
                l.shared.sent.inc();
                if beaten != Some(*slot) {
                    beaten = Some(*slot);
                    if let Some(beat) = &l.beat {
                        beat.beat(now);
                    }
                }
            }
        }
    }
}

/// Sends `msgs` on `socket` with as few `sendmmsg` calls as it takes (one, unless a
/// message fails: it is skipped and the rest go on). Whether each one was sent.
fn send_all(socket: &Socket, msgs: &[(&SockAddr, &[u8])]) -> Vec<bool> {
    use std::os::fd::AsRawFd;
    let mut iov: Vec<libc::iovec> = msgs
        .iter()
        .map(|(_, b)| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    let iov_at = iov.as_mut_ptr();
    let mut hdrs: Vec<libc::mmsghdr> = msgs
        .iter()
        .enumerate()
        .map(|(i, (to, _))| {
            // SAFETY: an all-zero mmsghdr is valid; the pointers set below outlive the call.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = to.as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = to.len();
            // SAFETY: `i` is within `iov`.
            h.msg_hdr.msg_iov = unsafe { iov_at.add(i) };
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    let mut ok = vec![false; msgs.len()];
    let mut at = 0;
    while at < msgs.len() {
        // SAFETY: `hdrs[at..]` are initialised headers whose buffers live in `msgs`/`iov`.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                hdrs[at..].as_mut_ptr(),
                (msgs.len() - at) as u32,
                0,
            )
        };
        if n > 0 {
            ok[at..at + n as usize].fill(true);
            at += n as usize;
        } else {
            at += 1;
        }
    }
    ok
}

fn handle(m: Msg, schedule: &mut Schedule, live: &mut HashMap<u64, Live>) {
    match m {
        Msg::Start {
            slot,
            version,
            interval,
            frames,
            socket,
            shared,
            beat,
            now,
        } => {
            schedule.start(slot, version, interval, now);
            live.insert(
                slot,
                Live {
                    frames,
                    socket,
                    shared,
                    beat,
                },
            );
        }
        Msg::Stop { slot } => {
            schedule.stop(slot);
            live.remove(&slot);
        }
        Msg::Beat { slot, beat } => {
            if let Some(l) = live.get_mut(&slot) {
                l.beat = beat;
            }
        }
    }
}

/// SCHED_FIFO for this thread and the RT budget for the process; each refusal is a
/// warning (the pacer still runs, at ordinary priority).
fn become_realtime(rt: Realtime) {
    if rt.priority == 0 {
        info!("advert pacer at ordinary priority (realtime_priority = 0)");
        return;
    }
    let budget = rt.budget.as_micros() as libc::rlim_t;
    let limit = libc::rlimit {
        rlim_cur: budget,
        rlim_max: budget.saturating_mul(2),
    };
    // SAFETY: a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_RTTIME, &limit) } != 0 {
        warn!(error = %std::io::Error::last_os_error(), "RLIMIT_RTTIME not set: no real-time budget for the advert pacer");
    }
    let param = libc::sched_param {
        sched_priority: rt.priority as i32,
    };
    // SAFETY: this thread, a valid sched_param.
    let r = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if r != 0 {
        warn!(error = %std::io::Error::from_raw_os_error(r), priority = rt.priority, "advert pacer NOT real-time (grant CAP_SYS_NICE or LimitRTPRIO): adverts can be starved by real-time load");
    } else {
        info!(priority = rt.priority, "advert pacer at SCHED_FIFO");
    }
}

/// `mlockall(MCL_CURRENT | MCL_FUTURE)`, only where the memory lock limit cannot make
/// later allocations fail (CAP_IPC_LOCK, or an unlimited RLIMIT_MEMLOCK: the unit sets
/// `LimitMEMLOCK=infinity`): under memory pressure a paged-out agent misses its adverts.
pub fn lock_memory() -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    if lim.rlim_cur != libc::RLIM_INFINITY && !has_ipc_lock() {
        return Err(format!(
            "RLIMIT_MEMLOCK is {} bytes without CAP_IPC_LOCK: set LimitMEMLOCK=infinity",
            lim.rlim_cur
        ));
    }
    // SAFETY: plain flags.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    Ok(())
}

/// CAP_IPC_LOCK (bit 14) in this process's effective capabilities.
fn has_ipc_lock() -> bool {
    has_capability(14)
}

/// Capability `bit` in this process's effective set.
fn has_capability(bit: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << bit) != 0)
}

/// What this process may have of real-time scheduling and memory locking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostLimits {
    /// RLIMIT_RTPRIO: the highest SCHED_FIFO priority allowed without CAP_SYS_NICE.
    pub rtprio: u64,
    pub sys_nice: bool,
    /// RLIMIT_MEMLOCK in bytes; None: unlimited.
    pub memlock: Option<u64>,
    pub ipc_lock: bool,
}

impl HostLimits {
    /// This process's limits and capabilities.
    pub fn of_this_process() -> Self {
        let get = |res| {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: a valid out-pointer.
            unsafe { libc::getrlimit(res, &mut lim) };
            lim.rlim_cur
        };
        let memlock = get(libc::RLIMIT_MEMLOCK);
        Self {
            rtprio: get(libc::RLIMIT_RTPRIO),
            sys_nice: has_capability(23),
            memlock: (memlock != libc::RLIM_INFINITY).then_some(memlock),
            ipc_lock: has_ipc_lock(),
        }
    }
}

/// Warnings for `xvrrpd check`: what the configured real-time priority and memory lock
/// would not get with these limits, and what it costs (empty: both available or off).
pub fn host_warnings(priority: u8, lock: bool, l: &HostLimits) -> Vec<String> {
    let mut out = Vec::new();
    if priority > 0 && !l.sys_nice && l.rtprio < priority as u64 {
        out.push(format!(
            "realtime_priority = {priority} unavailable (no CAP_SYS_NICE, RLIMIT_RTPRIO {}): the advert pacer would run at ordinary priority and real-time load could starve the master's adverts into false takeovers; run under the shipped unit (LimitRTPRIO=99) or grant CAP_SYS_NICE",
            l.rtprio
        ));
    }
    if lock && l.memlock.is_some() && !l.ipc_lock {
        out.push(format!(
            "lock_memory = true unavailable (RLIMIT_MEMLOCK {} bytes, no CAP_IPC_LOCK): memory pressure could page the agent out and delay its adverts; run under the shipped unit (LimitMEMLOCK=infinity) or grant CAP_IPC_LOCK",
            l.memlock.unwrap_or(0)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn check_warns_only_about_what_the_limits_withhold() {
        let full = HostLimits {
            rtprio: 0,
            sys_nice: true,
            memlock: None,
            ipc_lock: false,
        };
        assert!(host_warnings(50, true, &full).is_empty());
        // An RLIMIT_RTPRIO high enough does without CAP_SYS_NICE; one too low does not.
        let rlimit = HostLimits {
            rtprio: 99,
            sys_nice: false,
            ..full
        };
        assert!(host_warnings(50, true, &rlimit).is_empty());
        let low = HostLimits {
            rtprio: 10,
            sys_nice: false,
            ..full
        };
        let w = host_warnings(50, true, &low);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("realtime_priority = 50") && w[0].contains("LimitRTPRIO"));
        // Real-time off: nothing to say about it.
        assert!(host_warnings(0, true, &low).is_empty());
        // A memlock limit matters only without CAP_IPC_LOCK, and only when asked for.
        let capped = HostLimits {
            memlock: Some(8 << 20),
            ..full
        };
        let w = host_warnings(50, true, &capped);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("lock_memory") && w[0].contains("8388608"));
        assert!(host_warnings(50, false, &capped).is_empty());
        let cap = HostLimits {
            ipc_lock: true,
            ..capped
        };
        assert!(host_warnings(50, true, &cap).is_empty());
    }

    #[test]
    fn a_fed_slot_is_due_every_interval_without_drift() {
        let mut s = Schedule::default();
        s.start(1, 1, Duration::from_millis(10), 0);
        assert_eq!(s.next_wake(), Some(10 * MS));
        let fed = |_| (0, 1);
        assert!(s.due(9 * MS, fed).is_empty());
        // Woken 2 ms late: sent, and the next deadline keeps the phase.
        assert_eq!(s.due(12 * MS, fed), vec![1]);
        assert_eq!(s.next_wake(), Some(20 * MS));
        // Woken more than an interval late: one advert, not a burst, back on the grid.
        assert_eq!(s.due(45 * MS, |_| (40 * MS, 1)), vec![1]);
        assert_eq!(s.next_wake(), Some(50 * MS));
        assert!(s.due(49 * MS, |_| (40 * MS, 1)).is_empty());
    }

    /// Slots started at scattered moments share the grid: one wake-up serves every slot
    /// due then, and no slot ever waits longer than its interval between two adverts
    /// (the engine's own first one included).
    #[test]
    fn slots_share_wake_ups_on_the_grid_and_never_wait_longer_than_their_interval() {
        let mut s = Schedule::default();
        let mut last = HashMap::new();
        for slot in 0..250u64 {
            let (iv, start) = if slot < 200 {
                (100, 3 + slot * 7 % 97)
            } else {
                (10, 1 + slot % 9)
            };
            s.start(slot, 1, Duration::from_millis(iv), start * MS);
            last.insert(slot, (iv * MS, start * MS));
        }
        let mut wakes = 0;
        while let Some(at) = s.next_wake() {
            if at > 2_000 * MS {
                break;
            }
            wakes += 1;
            for slot in s.due(at, |_| (at, 1)) {
                let (iv, prev) = last[&slot];
                assert!(at - prev <= iv, "slot {slot}: {} ms gap", (at - prev) / MS);
                last.insert(slot, (iv, at));
            }
        }
        // 2 s of 10 ms and 100 ms slots: the 10 ms grid, 200 wake-ups.
        assert_eq!(wakes, 200);
    }

    #[test]
    fn a_slot_the_engine_stopped_feeding_stops_within_its_bound() {
        let mut s = Schedule::default();
        s.start(1, 1, Duration::from_millis(10), 0);
        // The engine last fed it at 0 (then its loop wedged).
        let mut sent_until = 0;
        for t in (10..3_000).step_by(10) {
            if !s.due(t * MS, |_| (0, 1)).is_empty() {
                sent_until = t;
            }
        }
        assert_eq!(sent_until, 1_000, "bound: 1 s at 10 ms adverts");
        // At 1 s adverts the bound is three intervals.
        assert_eq!(
            liveness_bound(Duration::from_secs(1)),
            Duration::from_secs(3)
        );
        // A starved loop that feeds it again resumes the adverts.
        assert_eq!(s.due(3_010 * MS, |_| (3_005 * MS, 1)), vec![1]);
    }

    #[test]
    fn a_slot_whose_version_moved_on_waits_for_its_new_frames() {
        let mut s = Schedule::default();
        s.start(1, 1, Duration::from_millis(10), 0);
        s.start(2, 1, Duration::from_millis(10), 0);
        // Slot 1 stopped (version 0) or restarted with frames not yet here (version 2).
        assert_eq!(
            s.due(10 * MS, |slot| (5 * MS, if slot == 1 { 0 } else { 1 })),
            vec![2]
        );
        // Slot 1's frames came back (version 1 again); slot 2 moved on to version 2.
        assert_eq!(s.due(20 * MS, |slot| (15 * MS, slot)), vec![1]);
        s.stop(1);
        s.stop(2);
        assert_eq!(s.next_wake(), None);
    }
}
