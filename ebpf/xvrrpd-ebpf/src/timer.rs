//! Thin wrappers over the `bpf_timer_*` helpers.
//!
//! The verifier needs the callback to be a static subprogram: a private, non-`no_mangle`
//! `extern "C"` function whose address is taken here. Its arguments are fixed by the
//! kernel: the map, the key and the value that holds the timer.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::bpf_timer,
    helpers::generated::{bpf_timer_init, bpf_timer_set_callback, bpf_timer_start},
};
use xvrrpd_common::VridKey;

use crate::Entry;

const CLOCK_MONOTONIC: u64 = 1;
/// `BPF_F_TIMER_ABS`: the expiry is an absolute CLOCK_MONOTONIC time (kernel ≥ 6.7), so
/// re-arming never accumulates drift.
const BPF_F_TIMER_ABS: u64 = 1;

/// Initialises a freshly inserted entry's timer and binds the callback. `true` on success.
#[inline(always)]
pub fn init(timer: &mut bpf_timer, map: *mut c_void) -> bool {
    unsafe {
        // -EBUSY means another CPU initialised it first; that is fine.
        let r = bpf_timer_init(timer, map, CLOCK_MONOTONIC);
        if r != 0 && r != -16 {
            return false;
        }
        bpf_timer_set_callback(timer, on_fire as *mut c_void) == 0
    }
}

/// (Re-)arms the timer to fire at the absolute monotonic time `at_ns`.
#[inline(always)]
pub fn start_abs(timer: &mut bpf_timer, at_ns: u64) -> bool {
    unsafe { bpf_timer_start(timer, at_ns, BPF_F_TIMER_ABS) == 0 }
}

extern "C" fn on_fire(_map: *mut c_void, key: *mut VridKey, entry: *mut Entry) -> i32 {
    // SAFETY: the kernel passes the key and value of the element that owns this timer.
    let key = unsafe { &*key };
    crate::on_timer(key, entry);
    0
}
