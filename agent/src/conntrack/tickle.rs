//! Tickle ACKs: telling the previous master's clients that their connection is gone.
//!
//! A bare ACK from VIP:port to client:port with sequence numbers outside the window. The
//! client's stack answers it with an ACK carrying the real numbers (RFC 5961 challenge
//! ACK; RFC 793 for older stacks). That answer reaches the new master, whose kernel has
//! no such socket and resets it: the client's next read or write fails at once, and it
//! reconnects through the VIP. Linux answers at most one out-of-window segment per
//! socket every 500 ms (`tcp_invalid_ratelimit`), so the tickle is sent in rounds. A
//! connection the client already closed is answered with a RST by the client: harmless.
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::Conn;
use crate::vrrp::packet::inet_checksum;

/// Rounds of tickles, and the pause between two (longer than Linux's 500 ms limit on
/// answers to out-of-window segments, so every round can be answered).
pub const ROUNDS: usize = 3;
pub const ROUND_GAP: Duration = Duration::from_millis(600);

const IPPROTO_TCP: u8 = 6;
const TCP_ACK: u8 = 0x10;

/// The 20-byte TCP header of the tickle for `c`, checksum included. Sequence and
/// acknowledgement 0: outside any window the connection can have.
pub fn segment(c: &Conn) -> [u8; 20] {
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&c.vip.port().to_be_bytes());
    t[2..4].copy_from_slice(&c.client.port().to_be_bytes());
    // seq, ack: 0.
    t[12] = 5 << 4;
    t[13] = TCP_ACK;
    t[14..16].copy_from_slice(&1024u16.to_be_bytes());
    let sum = inet_checksum(&t, Some((c.vip.ip(), c.client.ip())), IPPROTO_TCP);
    t[16..18].copy_from_slice(&sum.to_be_bytes());
    t
}

/// Sends one round of tickles (a raw TCP socket per VIP, bound to it: the kernel writes
/// the IP header). Returns how many went out; the first error per VIP is logged.
pub fn round(conns: &[Conn]) -> usize {
    let mut by_vip: std::collections::BTreeMap<IpAddr, Vec<&Conn>> = Default::default();
    for c in conns {
        by_vip.entry(c.vip.ip()).or_default().push(c);
    }
    let mut sent = 0;
    for (vip, cs) in by_vip {
        match raw_socket(vip) {
            Ok(sock) => {
                for c in cs {
                    let to = SocketAddr::new(c.client.ip(), 0);
                    if sock.send_to(&segment(c), &to.into()).is_ok() {
                        sent += 1;
                    }
                }
            }
            Err(e) => tracing::warn!(vip = %vip, error = %e, "cannot send tickle ACKs"),
        }
    }
    sent
}

fn raw_socket(vip: IpAddr) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if vip.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let sock = Socket::new(domain, Type::RAW, Some(Protocol::TCP))?;
    // Never read: whatever TCP it would copy in is dropped.
    sock.set_recv_buffer_size(0)?;
    // The old master tickles from a VIP it just removed: sending from an address that is
    // no longer local needs a transparent socket.
    if vip.is_ipv4() {
        sock.set_ip_transparent_v4(true)?;
    } else {
        sock.set_ip_transparent_v6(true)?;
    }
    sock.bind(&SocketAddr::new(vip, 0).into())?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tickle_is_a_bare_out_of_window_ack_with_a_valid_checksum() {
        for (vip, client) in [
            ("192.0.2.100:3306", "192.0.2.50:40000"),
            ("[2001:db8::100]:3306", "[2001:db8::50]:40000"),
        ] {
            let c = Conn {
                vip: vip.parse().unwrap(),
                client: client.parse().unwrap(),
            };
            let t = segment(&c);
            assert_eq!(u16::from_be_bytes([t[0], t[1]]), 3306);
            assert_eq!(u16::from_be_bytes([t[2], t[3]]), 40000);
            assert_eq!(&t[4..12], &[0; 8], "seq and ack 0");
            assert_eq!(t[12] >> 4, 5, "no options");
            assert_eq!(t[13], TCP_ACK, "ACK only: no RST, SYN or data");
            // Summed with its own checksum, a valid segment sums to zero.
            assert_eq!(
                inet_checksum(&t, Some((c.vip.ip(), c.client.ip())), IPPROTO_TCP),
                0
            );
        }
    }
}
