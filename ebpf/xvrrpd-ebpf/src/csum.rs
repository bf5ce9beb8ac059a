//! Internet checksum (RFC 1071) over packet memory.
//!
//! Words are summed in host order as they sit in memory; the ones' complement sum is
//! byte-order independent, so a correct message folds to 0xffff either way.

use xvrrpd_common::MAX_VRRP_LEN;

use crate::parse::Pkt;

const MAX_WORDS: usize = MAX_VRRP_LEN as usize / 4;

/// Sums `words` 32-bit words starting at `off`; None if they run past the frame.
#[inline(always)]
pub fn sum_words(p: Pkt, off: usize, words: usize) -> Option<u64> {
    let mut sum = 0u64;
    let mut i = 0;
    // A bounded loop the verifier can walk: at most MAX_WORDS iterations.
    while i < MAX_WORDS {
        if i >= words {
            break;
        }
        sum += p.load::<u32>(off + i * 4)? as u64;
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
