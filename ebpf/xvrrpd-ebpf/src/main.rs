//! The xvrrpd XDP program: watches VRRP adverts, and refuses TCP for VIPs it gave up.
//!
//! For every frame: parse Ethernet (0–2 VLAN tags), IPv4 (with options) or IPv6, and if
//! the protocol is VRRP (112) validate it, count it, update the per-VRID state and re-arm
//! that VRID's kernel timer. The timer callback counts missed intervals and reports
//! Master_Down_Interval expiry. Every frame gets `XDP_PASS`, except VRRP packets for a
//! VRID whose spoofing filter userspace turned on (`VridParams::filter`) that fail a check
//! (TTL, checksum, length, source peer, v2 authentication): those get `XDP_DROP`, and are
//! counted either way; and TCP segments for a VIP this node gave up (userspace lists it in
//! `RELEASED`), or answering a tickle ACK it sent after a takeover (`TICKLED`), which are
//! turned into a RST and sent back (`XDP_TX`, see `refuse`).
//! Clients' TCP connections to the VIPs this node holds are tracked (see `conntrack`), and
//! another host claiming one of them in ARP or neighbour discovery is reported (see
//! `claim`). See `ebpf/README.md`.
#![no_std]
#![no_main]

mod claim;
mod conntrack;
mod csum;
mod diag;
mod parse;
mod refuse;
mod timer;

use aya_ebpf::{
    bindings::{bpf_timer, xdp_action, BPF_NOEXIST},
    btf_maps::{Array, HashMap, PerCpuArray, RingBuf},
    helpers::bpf_ktime_get_ns,
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use xvrrpd_common::{
    event_kind, gstat, interval_ns, master_down_ns, miss_grace_ns, reason, skew_ns,
    stall_recheck_ns, DatapathConfig, Event, VridKey, VridParams, VridState,
    DEFAULT_LOCAL_PRIORITY, EVENT_RING_BYTES, INVALID_REASONS, MAX_VRIDS,
};

use parse::{Advert, Outcome};

/// A state map value: the shared state plus the VRID's timer. The timer must live in a
/// BTF-described map value, so this map is a BTF map.
#[repr(C)]
pub struct Entry {
    pub state: VridState,
    pub timer: bpf_timer,
}

#[btf_map]
static STATE: HashMap<VridKey, Entry, { MAX_VRIDS as usize }> = HashMap::new();

#[btf_map]
static PARAMS: HashMap<VridKey, VridParams, { MAX_VRIDS as usize }> = HashMap::new();

#[btf_map]
static CONFIG: Array<DatapathConfig, 1> = Array::new();

#[btf_map]
static STATS: PerCpuArray<u64, { gstat::COUNT as usize }> = PerCpuArray::new();

/// Last time (ns) an `invalid` event was sent, per reason: the rate limiter.
#[btf_map]
static INVALID_RL: Array<u64, INVALID_REASONS> = Array::new();

#[btf_map]
static EVENTS: RingBuf<Event, { EVENT_RING_BYTES as usize }> = RingBuf::new();

/// At most one `invalid` event per reason per this many nanoseconds.
const INVALID_EVENT_GAP_NS: u64 = 1_000_000_000;

#[xdp]
pub fn xvrrpd_xdp(ctx: XdpContext) -> u32 {
    // Refused first: a tickle's answer reset here is not a connection of this node's.
    // Whether its VIP is self-fenced is looked up apart (its own frame: the refusal's
    // and this lookup's stacks would not fit BPF's 512 bytes together).
    let fenced = refuse::self_fenced(&ctx, ifindex(&ctx));
    if let Some(verdict) = refuse::check(&ctx, ifindex(&ctx), fenced) {
        diag::flush(&ctx);
        return verdict;
    }
    conntrack::track(&ctx, ifindex(&ctx));
    claim::check(&ctx, ifindex(&ctx));
    let verdict = watch(&ctx);
    diag::flush(&ctx);
    verdict
}

/// The VRRP side of the program. Not inlined, like `refuse::check`: each path has its own
/// stack frame and only the deeper one counts against BPF's 512 bytes.
#[inline(never)]
fn watch(ctx: &XdpContext) -> u32 {
    let pass = match parse::classify(ctx) {
        Outcome::NotVrrp => true,
        Outcome::Fragment => {
            bump(gstat::FRAGMENT);
            true
        }
        Outcome::Invalid(inv) => on_invalid(ctx, inv),
        Outcome::Valid(adv) => on_valid(ctx, &adv),
    };
    if pass {
        // Observing: the frame continues up the stack unchanged.
        xdp_action::XDP_PASS
    } else {
        bump(gstat::FILTERED);
        xdp_action::XDP_DROP
    }
}

/// Does the VRID's spoofing filter drop what fails its checks?
#[inline(always)]
fn filtering(key: VridKey) -> bool {
    match PARAMS.get_ptr(key) {
        Some(p) => unsafe { (*p).filter != 0 },
        None => false,
    }
}

#[inline(always)]
fn bump(slot: u32) {
    if let Some(p) = STATS.get_ptr_mut(slot) {
        unsafe { *p += 1 };
    }
}

#[inline(always)]
fn ifindex(ctx: &XdpContext) -> u32 {
    unsafe { (*ctx.ctx).ingress_ifindex }
}

/// `bpf_ringbuf_output` flags: wake the reader now, or leave the record for its next read.
const RB_NO_WAKEUP: u64 = 1;
const RB_FORCE_WAKEUP: u64 = 2;

/// An event the agent must hear at once: it is woken for it, whatever is queued before.
/// (The ring's default wakes the reader only when it had read everything, and routine
/// adverts queued without a wakeup would silence a master_down behind them.)
#[inline(always)]
fn emit(ev: &Event) {
    output(ev, RB_FORCE_WAKEUP);
}

/// A routine advert (same master, same content): queued without waking the agent, which
/// reads it at its next wake-up and at least every [`xvrrpd_common::ROUTINE_READ_MS`]. A
/// wake-up per advert cost an interrupt and a context switch per packet: 3 500 a second
/// per node at 250 instances.
#[inline(always)]
fn emit_routine(ev: &Event) {
    output(ev, RB_NO_WAKEUP);
}

#[inline(always)]
fn output(ev: &Event, flags: u64) {
    if EVENTS.output(ev, flags).is_err() {
        bump(gstat::RINGBUF_FULL);
    }
}

/// Counts an invalid advert (and reports it, rate-limited); false when it is dropped.
fn on_invalid(ctx: &XdpContext, inv: parse::Invalid) -> bool {
    let ifindex = ifindex(ctx);
    count_invalid(ifindex, inv.family, inv.vrid, inv.reason, inv.src);
    match inv.vrid {
        Some(vrid) => {
            let drop = filtering(VridKey::new(ifindex, inv.family, vrid));
            if drop {
                diag::filtered(vrid, inv.reason);
            }
            !drop
        }
        None => true,
    }
}

/// Counts one failed check globally and, when the VRID is tracked, on the VRID; sends an
/// `invalid` event at most once a second per reason. Inlined: BPF calls take at most five
/// arguments.
#[inline(always)]
fn count_invalid(ifindex: u32, family: u8, vrid: Option<u8>, reason: u8, src: [u8; 16]) {
    let reason = reason as usize;
    if reason >= INVALID_REASONS {
        return;
    }
    bump(reason as u32);
    if let Some(vrid) = vrid {
        let key = VridKey::new(ifindex, family, vrid);
        // A VRID userspace configured is counted even before its first valid advert (a
        // master that only ever hears spoofed ones); others only once tracked, so a
        // sweep over VRIDs cannot fill the map.
        let entry = match STATE.get_ptr_mut(key) {
            Some(e) => Some(e),
            None if PARAMS.get_ptr(key).is_some() => create_entry(&key),
            None => None,
        };
        if let Some(e) = entry {
            unsafe { (*e).state.invalid[reason] += 1 };
        }
    }
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(last) = INVALID_RL.get_ptr_mut(reason as u32) {
        unsafe {
            if *last != 0 && now.wrapping_sub(*last) < INVALID_EVENT_GAP_NS {
                return;
            }
            *last = now;
        }
    }
    emit(&Event {
        ts_ns: now,
        kind: event_kind::INVALID,
        ifindex,
        family,
        vrid: vrid.unwrap_or(0),
        aux: reason as u32,
        src,
        ..Event::default()
    });
}

/// Tracks a valid advert; false when the VRID's spoofing filter drops it.
fn on_valid(ctx: &XdpContext, adv: &Advert) -> bool {
    let ifindex = ifindex(ctx);
    let key = VridKey::new(ifindex, adv.family, adv.vrid);
    let cfg = CONFIG.get(0).copied().unwrap_or_default();
    // A failed spoofing check, counted below once the VRID's entry exists.
    let mut failed = None;
    let local_priority = match PARAMS.get_ptr(key) {
        Some(p) => {
            // Spoofing checks: counted always, dropped when the filter is on.
            let p = unsafe { &*p };
            failed = if !p.peer_allowed(&adv.src) {
                Some(reason::PEER)
            } else if p.auth_type == 1
                && adv.version == 2
                && (adv.auth_type != 1 || adv.auth != p.auth)
            {
                Some(reason::AUTH)
            } else {
                None
            };
            if let (Some(r), true) = (failed, p.filter != 0) {
                count_invalid(ifindex, adv.family, Some(adv.vrid), r, adv.src);
                diag::filtered(adv.vrid, r);
                return false;
            }
            p.priority
        }
        None if cfg.only_listed != 0 => {
            bump(gstat::VALID);
            bump(gstat::UNLISTED);
            return true;
        }
        None if cfg.default_priority != 0 => cfg.default_priority,
        None => DEFAULT_LOCAL_PRIORITY,
    };
    bump(gstat::VALID);

    let now = unsafe { bpf_ktime_get_ns() };
    let (entry, first) = match STATE.get_ptr_mut(key) {
        Some(e) => (e, false),
        None => match create_entry(&key) {
            Some(e) => (e, true),
            None => {
                bump(gstat::MAP_FULL);
                return true;
            }
        },
    };
    // An entry may exist before its first valid advert (created to count invalid ones).
    let first = first || unsafe { (*entry).state.adverts } == 0;
    if let Some(r) = failed {
        // Passed (the filter is off), but counted.
        count_invalid(ifindex, adv.family, Some(adv.vrid), r, adv.src);
    }
    let st = unsafe { &mut (*entry).state };

    let mut ev = Event {
        ts_ns: now,
        ifindex,
        family: adv.family,
        vrid: adv.vrid,
        priority: adv.priority,
        version: adv.version,
        csum_style: adv.csum_style,
        interval: adv.interval,
        src: adv.src,
        ..Event::default()
    };
    let gap = if first {
        0
    } else {
        now.wrapping_sub(st.last_ns)
    };

    // A master is "new" when first seen, when the source changes, and when it speaks
    // again after its Master_Down_Interval expired (it came back).
    let mut changed = true;
    if first || st.src != adv.src || st.down_reported != 0 {
        ev.kind = event_kind::NEW_MASTER;
        ev.aux = st.priority as u32;
        emit(&ev);
    } else {
        changed = false;
        if st.priority != adv.priority {
            changed = true;
            ev.kind = event_kind::PRIORITY_CHANGE;
            ev.aux = st.priority as u32;
            emit(&ev);
        }
        if st.interval != adv.interval || st.version != adv.version {
            changed = true;
            ev.kind = event_kind::INTERVAL_CHANGE;
            ev.aux = st.interval as u32;
            emit(&ev);
        }
    }
    if adv.priority == 0 {
        changed = true;
        st.priority_zero += 1;
        ev.kind = event_kind::PRIORITY_ZERO;
        emit(&ev);
    }

    let iv = interval_ns(adv.version, adv.interval);
    // A priority-0 advert means the master is leaving: a backup takes over after Skew_Time
    // instead of the full Master_Down_Interval (RFC 5798 §6.4.2).
    let (down, grace) = if adv.priority == 0 {
        (skew_ns(iv, local_priority), 0)
    } else {
        (
            master_down_ns(iv, local_priority),
            miss_grace_ns(iv, local_priority),
        )
    };

    if first {
        st.first_ns = now;
    } else {
        if st.gap_min_ns == 0 || gap < st.gap_min_ns {
            st.gap_min_ns = gap;
        }
        if gap > st.gap_max_ns {
            st.gap_max_ns = gap;
        }
    }
    st.adverts += 1;
    st.last_ns = now;
    st.src = adv.src;
    st.priority = adv.priority;
    st.version = adv.version;
    st.interval = adv.interval;
    st.csum_style = adv.csum_style;
    st.addr_count = adv.addr_count;
    st.interval_ns = iv;
    st.master_down_ns = down;
    st.miss_grace_ns = grace;
    st.missed_now = 0;
    st.down_reported = 0;
    st.recheck_ns = 0;

    let first_fire = if down < iv + grace { down } else { iv + grace };
    arm(st, unsafe { &mut (*entry).timer }, now + first_fire);

    if cfg.emit_adverts != 0 {
        ev.kind = event_kind::ADVERT;
        ev.since_last_ns = gap;
        if changed {
            emit(&ev);
        } else {
            emit_routine(&ev);
        }
    }
    true
}

/// Inserts a zeroed entry for `key` and initialises its timer. None when the map is full.
fn create_entry(key: &VridKey) -> Option<*mut Entry> {
    // SAFETY: Entry is plain integers; all-zero is a valid (unarmed) value.
    let zero: Entry = unsafe { core::mem::zeroed() };
    // BPF_NOEXIST: if another CPU created it first, keep theirs.
    let _ = STATE.insert(key, &zero, BPF_NOEXIST as u64);
    let e = STATE.get_ptr_mut(key)?;
    if !timer::init(unsafe { &mut (*e).timer }, &STATE as *const _ as *mut _) {
        bump(gstat::TIMER_ERROR);
    }
    Some(e)
}

/// Runs when a VRID's timer fires (softirq context, never concurrently with itself).
fn on_timer(key: &VridKey, entry: *mut Entry) {
    let st = unsafe { &mut (*entry).state };
    let now = unsafe { bpf_ktime_get_ns() };
    let (last, iv, down, grace) = (
        st.last_ns,
        st.interval_ns,
        st.master_down_ns,
        st.miss_grace_ns,
    );
    // now < last: an advert arrived while we ran; it has re-armed the timer already.
    if iv == 0 || st.down_reported != 0 || now < last {
        return;
    }
    let elapsed = now - last;
    let mut ev = Event {
        ts_ns: now,
        since_last_ns: elapsed,
        ifindex: key.ifindex,
        family: key.family,
        vrid: key.vrid,
        priority: st.priority,
        version: st.version,
        csum_style: st.csum_style,
        interval: st.interval,
        src: st.src,
        ..Event::default()
    };
    if elapsed >= down {
        // Fired late: this host stood still and did not watch the silence it measured.
        // Watch a little longer, once per silence, before calling the master down.
        let recheck = stall_recheck_ns(now.saturating_sub(st.armed_ns), iv);
        // Not after a priority-0 advert: that master said it is leaving, nothing will come.
        if recheck > 0 && st.recheck_ns == 0 && st.priority != 0 {
            st.recheck_ns = now + recheck;
            st.stalls += 1;
            ev.kind = event_kind::STALLED;
            ev.aux = (now.saturating_sub(st.armed_ns) / 1000) as u32;
            emit(&ev);
            arm(st, unsafe { &mut (*entry).timer }, now + recheck);
            return;
        }
        st.down_reported = 1;
        st.master_down += 1;
        ev.kind = event_kind::MASTER_DOWN;
        ev.aux = st.missed_now as u32;
        emit(&ev);
        return;
    }
    // Counted from the timestamp rather than from timer firings, so a late or raced
    // firing still reports the right number.
    let n = if elapsed < grace {
        0
    } else {
        (elapsed - grace) / iv
    };
    if n > st.missed_now as u64 {
        st.missed += n - st.missed_now as u64;
        st.missed_now = n as u8;
        ev.kind = event_kind::MISSED;
        ev.aux = n as u32;
        emit(&ev);
    }
    let next_tick = last + (n + 1) * iv + grace;
    let deadline = last + down;
    let next = if next_tick < deadline {
        next_tick
    } else {
        deadline
    };
    arm(st, unsafe { &mut (*entry).timer }, next);
}

/// (Re-)arms a VRID's timer for the absolute time `at`, remembering when it is due.
#[inline(always)]
fn arm(st: &mut VridState, timer: &mut bpf_timer, at: u64) {
    st.armed_ns = at;
    if !timer::start_abs(timer, at) {
        bump(gstat::TIMER_ERROR);
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier proves there is no path here; this only satisfies no_std.
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
