//! Internet checksum (RFC 1071) over packet memory.
//!
//! Words are summed in host order as they sit in memory; the ones' complement sum is
//! byte-order independent, so a correct message folds to 0xffff either way.

use aya_ebpf::{
    btf_maps::PerCpuArray,
    helpers::generated::{bpf_csum_diff, bpf_xdp_load_bytes},
};
use xvrrpd_common::MAX_VRRP_LEN;

use crate::parse::Pkt;

/// The most `bpf_csum_diff` sums in one call.
const CHUNK: usize = 512;
/// Room for the longest message, a whole number of chunks.
const SCRATCH_LEN: usize = (MAX_VRRP_LEN as usize).div_ceil(CHUNK) * CHUNK;
const MAX_CHUNKS: usize = SCRATCH_LEN / CHUNK;

/// Where a message is copied to be summed (one per CPU: XDP runs to completion there);
/// a chunk longer than it needs, for the verifier (see the mask below).
#[aya_ebpf::macros::btf_map]
static CSUM_SCRATCH: PerCpuArray<[u8; SCRATCH_LEN + CHUNK], 1> = PerCpuArray::new();

/// Sums `words` 32-bit words starting at `off`; None if they run past the frame.
///
/// The message is copied out of the frame and the kernel's `bpf_csum_diff` sums it, 512
/// bytes a call: at most 8 calls for the verifier to check. A loop over the words had it
/// walk up to 1 022 iterations, three quarters of the agent's start-up (650 ms to load
/// the program against 190 ms without it).
#[inline(never)]
pub fn sum_words(p: Pkt, off: usize, words: usize) -> Option<u64> {
    let len = words * 4;
    if len == 0 || len > SCRATCH_LEN {
        return None;
    }
    let buf = CSUM_SCRATCH.get_ptr_mut(0)? as *mut u8;
    // SAFETY: the helper bounds-checks the frame itself; `buf` holds SCRATCH_LEN bytes.
    if unsafe { bpf_xdp_load_bytes(p.md(), off as u32, buf.cast(), len as u32) } != 0 {
        return None;
    }
    let mut sum = 0u64;
    let mut i = 0;
    while i < MAX_CHUNKS {
        let done = i * CHUNK;
        if done >= len {
            break;
        }
        let n = if len - done > CHUNK {
            CHUNK
        } else {
            len - done
        };
        // The verifier cannot follow the min above (the compiler tests `words`, not
        // `len`): read back through memory, the mask survives optimisation and bounds
        // the size for it. It changes nothing (n <= 512, a multiple of 4).
        // SAFETY: a read of a local.
        let n = unsafe { core::ptr::read_volatile(&n) } & (2 * CHUNK - 4);
        // SAFETY: `done + n <= SCRATCH_LEN`, inside the scratch value.
        let r =
            unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, buf.add(done).cast(), n as u32, 0) };
        if r < 0 {
            return None;
        }
        sum += r as u32 as u64;
        i += 1;
    }
    Some(sum)
}

/// Sums a 16-byte address held on the stack, as four host-order 32-bit words.
#[inline(always)]
pub fn sum16(a: &[u8; 16]) -> u64 {
    let mut s = 0u64;
    let mut i = 0;
    while i < 4 {
        s += u32::from_ne_bytes([a[i * 4], a[i * 4 + 1], a[i * 4 + 2], a[i * 4 + 3]]) as u64;
        i += 1;
    }
    s
}

/// Folds a wide sum to 16 bits with end-around carry.
#[inline(always)]
pub fn fold(mut s: u64) -> u16 {
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}
