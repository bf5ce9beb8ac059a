//! Diagnostics for a field engineer, through aya-log: a TCP segment refused or a tickle's
//! answer reset (and to whom), a connection left untracked because a table was full, an
//! advert refused by the spoofing filter. Debug level: off unless the agent's log filter
//! enables it (the level is fixed at load, so a disabled one costs one global load), and
//! at most one line per kind per second, so a flood cannot turn into a log flood.
//!
//! Where something happens the program only [`note`]s it (a per-CPU slot: a frame is
//! handled start to end on one CPU); the line is written by [`flush`], called by the
//! entry point itself, so the formatting's stack never adds to a deep call chain's
//! against BPF's 512 bytes.
use aya_ebpf::{
    btf_maps::{Array, PerCpuArray},
    helpers::bpf_ktime_get_ns,
    macros::btf_map,
    programs::XdpContext,
};
use aya_log_ebpf::{
    debug,
    macro_support::{level_enabled, Level},
};
use xvrrpd_common::{ConnKey, FAMILY_V4};

/// What a line is about; each kind has its own rate limit.
pub mod kind {
    pub const NONE: u32 = 0;
    pub const REFUSED: u32 = 1;
    pub const TICKLE_RESET: u32 = 2;
    pub const CONNS_FULL: u32 = 3;
    pub const FILTERED: u32 = 4;
    pub const SELF_FENCED: u32 = 5;
    pub const COUNT: u32 = 6;
}

/// What the frame being handled left to log.
#[repr(C)]
pub struct Note {
    kind: u32,
    vrid: u32,
    reason: u32,
    key: ConnKey,
}

#[btf_map]
static NOTE: PerCpuArray<Note, 1> = PerCpuArray::new();

/// Last time (ns) a line of each kind was written.
#[btf_map]
static DIAG_RL: Array<u64, { kind::COUNT as usize }> = Array::new();

const GAP_NS: u64 = 1_000_000_000;

/// May a line of `kind` be written now? Takes the slot when it may.
#[inline(always)]
fn allowed(kind: u32) -> bool {
    if !level_enabled(Level::Debug) {
        return false;
    }
    let Some(last) = DIAG_RL.get_ptr_mut(kind) else {
        return false;
    };
    // SAFETY: a helper without arguments; `last` points into the map's value.
    unsafe {
        let now = bpf_ktime_get_ns();
        if *last != 0 && now.wrapping_sub(*last) < GAP_NS {
            return false;
        }
        *last = now;
    }
    true
}

/// Leaves a line of `kind` about a connection (refused, tickle reset, table full) for
/// [`flush`].
#[inline(always)]
pub fn conn(kind: u32, key: &ConnKey) {
    if !allowed(kind) {
        return;
    }
    if let Some(n) = NOTE.get_ptr_mut(0) {
        // SAFETY: this CPU's slot, valid for this program run.
        unsafe {
            (*n).kind = kind;
            (*n).key = *key;
        }
    }
}

/// Leaves a line about an advert the spoofing filter dropped for [`flush`].
#[inline(always)]
pub fn filtered(vrid: u8, reason: u8) {
    if !allowed(kind::FILTERED) {
        return;
    }
    if let Some(n) = NOTE.get_ptr_mut(0) {
        // SAFETY: as in `conn`.
        unsafe {
            (*n).kind = kind::FILTERED;
            (*n).vrid = vrid as u32;
            (*n).reason = reason as u32;
        }
    }
}

/// Writes the line the frame left, if any. Called by the entry point only.
#[inline(never)]
pub fn flush(ctx: &XdpContext) {
    if !level_enabled(Level::Debug) {
        return;
    }
    let Some(n) = NOTE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot, valid for this program run.
    let n = unsafe { &mut *n };
    let kind = n.kind;
    if kind == kind::NONE {
        return;
    }
    n.kind = kind::NONE;
    if kind == kind::FILTERED {
        debug!(
            ctx,
            "advert for VRID {} dropped by the spoofing filter: reason {}", n.vrid, n.reason
        );
        return;
    }
    let what = match kind {
        kind::REFUSED => "TCP to a released VIP refused with a RST",
        kind::TICKLE_RESET => "a tickle's answer reset with a RST",
        kind::SELF_FENCED => "TCP to a write VIP refused: its master's host stood still",
        _ => "connection not tracked: the table is full (raise conn_table_size)",
    };
    let key = &n.key;
    if key.family == FAMILY_V4 {
        let c = u32::from_be_bytes([key.client[0], key.client[1], key.client[2], key.client[3]]);
        let v = u32::from_be_bytes([key.vip[0], key.vip[1], key.vip[2], key.vip[3]]);
        debug!(
            ctx,
            "{}: {:i}:{} -> {:i}:{}", what, c, key.client_port, v, key.vip_port
        );
    } else {
        debug!(
            ctx,
            "{}: [{:i}]:{} -> [{:i}]:{}", what, key.client, key.client_port, key.vip, key.vip_port
        );
    }
}
