//! I/O shells around the engine: interface facts, advert transmission (paced by a
//! real-time thread: [`pacer`]), VIP ownership
//! (rtnetlink), gratuitous ARP / unsolicited NA. Thin on purpose: decisions live in
//! [`crate::engine`].
pub mod announce;
pub mod iface;
pub mod link;
pub mod pacer;
pub mod tx;
pub mod vip;

/// CLOCK_MONOTONIC in nanoseconds: the clock `bpf_ktime_get_ns` uses, so kernel event
/// timestamps and engine deadlines compare directly.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
