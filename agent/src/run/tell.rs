//! Telling the LAN a VIP moved: gratuitous ARP / unsolicited NA announcements, and
//! tickles that make the clients' connections to the VIPs reset.
use std::net::IpAddr;

use xvrrpd_core::events::{Record, ResetWhy};

use super::{instance::*, *};
use crate::net::monotonic_ns;

/// After the datapath's 20 ms between two reports of a claimed VIP.
const CLAIM_TRAILER: std::time::Duration = std::time::Duration::from_millis(30);

/// At takeover, the clients of the previous master (as it copied them here) are told
/// their connection is gone ([`crate::conntrack::tickle`]), in rounds, after the first
/// announcement. Only connections to this instance's own VIPs.
pub(super) fn spawn_tickles(r: &mut Running, dp: &mut Datapath) {
    r.conns.clear();
    let list: Vec<(u32, crate::conntrack::Conn)> = r
        .peer_conns
        .iter()
        .filter_map(|c| {
            let v = r.vips.iter().find(|v| v.addr == c.vip.ip())?;
            Some((v.ifindex, *c))
        })
        .collect();
    r.peer_conns.clear();
    r.metrics.peer_conns.get_or_create(&r.labels).set(0);
    if list.is_empty() || !r.cfg.reset_clients {
        return;
    }
    if r.cfg.tickle_answer == crate::config::TickleAnswer::Datapath {
        // Listed before the first tickle leaves, for as long as the rounds last and a
        // second more for the last answers to arrive.
        let until = monotonic_ns()
            + (crate::conntrack::tickle::ROUND_GAP * crate::conntrack::tickle::ROUNDS as u32
                + std::time::Duration::from_secs(1))
            .as_nanos() as u64;
        let keys: Vec<_> = list.iter().map(|(i, c)| c.key(*i)).collect();
        match dp.answer_tickles(&keys, until) {
            Ok(n) if n < keys.len() => {
                warn!(instance = %r.cfg.name, listed = n, connections = keys.len(), "the tickle table is full: the kernel answers the rest (raise [global] conn_table_size)")
            }
            Ok(_) => {}
            Err(e) => {
                warn!(instance = %r.cfg.name, error = %e, "answering tickles from the datapath: the kernel answers them")
            }
        }
    }
    let list: Vec<crate::conntrack::Conn> = list.into_iter().map(|(_, c)| c).collect();
    info!(instance = %r.cfg.name, connections = list.len(), "tickling the previous master's client connections");
    r.emit(&Record::ClientsReset {
        ts_ns: monotonic_ns(),
        instance: r.cfg.name.clone(),
        connections: list.len(),
        why: ResetWhy::Takeover,
    });
    // The announcement's first packets go out first: the clients' answers must come here.
    spawn_tickle_rounds(r, list, std::time::Duration::from_millis(3), || true);
}

/// On giving the VIPs up while alive, this node's own clients are told too: a client
/// blocked reading an answer (from a fenced or hung server) would otherwise wait for TCP
/// to give up. The tickle leaves from the released VIP, the client's answer comes back
/// here (or to the new master, which resets it as after a takeover), and this node's
/// datapath refuses it with a correctly sequenced RST (`refuse_released`): the kernel
/// would not, it still has the socket. Stops if this node takes the VIPs back.
pub(super) fn spawn_release_tickles(r: &Running, leaving: Vec<crate::conntrack::Conn>) {
    if leaving.is_empty() || !r.cfg.reset_clients || !r.cfg.refuse_released {
        return;
    }
    info!(instance = %r.cfg.name, connections = leaving.len(), "resetting the client connections of the VIPs given up");
    r.emit(&Record::ClientsReset {
        ts_ns: monotonic_ns(),
        instance: r.cfg.name.clone(),
        connections: leaving.len(),
        why: ResetWhy::Released,
    });
    let gen = r.announce_gen.clone();
    let mine = gen.load(std::sync::atomic::Ordering::SeqCst);
    let released = move || gen.load(std::sync::atomic::Ordering::SeqCst) == mine;
    spawn_tickle_rounds(r, leaving, std::time::Duration::ZERO, released);
}

/// [`crate::conntrack::tickle::ROUNDS`] rounds of tickles to `list`, the first after
/// `delay`, while `go_on` holds.
pub(super) fn spawn_tickle_rounds(
    r: &Running,
    list: Vec<crate::conntrack::Conn>,
    delay: std::time::Duration,
    go_on: impl Fn() -> bool + Send + 'static,
) {
    let metrics = r.metrics.clone();
    let labels = r.labels.clone();
    tokio::spawn(async move {
        use crate::conntrack::tickle;
        tokio::time::sleep(delay).await;
        for round in 0..tickle::ROUNDS {
            if round > 0 {
                tokio::time::sleep(tickle::ROUND_GAP).await;
            }
            if !go_on() {
                return;
            }
            let sent = tickle::round(&list);
            metrics.tickles.get_or_create(&labels).inc_by(sent as u64);
        }
    });
}

/// Announces a VIP another host claimed: at once, and once more after the datapath's
/// 20 ms between two reports of the same VIP, so that a claim it kept to itself (the
/// second inside those 20 ms) is answered too. Two masters that briefly both hold the VIP
/// (a frozen host resuming) answer each other until VRRP settles it; the loser stops at
/// once when it gives the VIP up, so the last word is the winner's.
pub(super) fn reannounce(r: &Running, vip: IpAddr) {
    use std::sync::atomic::Ordering;
    let send = {
        let announcer = r.announcer.clone();
        let sent = r.metrics.announcements.get_or_create_owned(&r.labels);
        let name = r.cfg.name.clone();
        move || match announcer.announce(vip) {
            Ok(()) => {
                sent.inc();
            }
            Err(e) => {
                warn!(instance = %name, vip = %vip, error = %e, "re-announcing a claimed VIP")
            }
        }
    };
    send();
    let gen = r.announce_gen.clone();
    let mine = gen.load(Ordering::SeqCst);
    tokio::spawn(async move {
        tokio::time::sleep(CLAIM_TRAILER).await;
        // Not if the VIPs were given up (or a new term started) meanwhile.
        if gen.load(Ordering::SeqCst) == mine {
            send();
        }
    });
}

/// Bursts of GARP / NA (count, burst_delay apart; the first two back to back), one repeat
/// burst after `repeat_after`, then one announcement every `refresh` while this master
/// term lasts. Off the main loop; stops as soon as the VIPs are removed or a new term
/// starts.
pub(super) fn spawn_announce(r: &Running) {
    use std::sync::atomic::Ordering;
    let announcer = r.announcer.clone();
    let addrs: Vec<IpAddr> = r.vips.iter().map(|v| v.addr).collect();
    let a = r.cfg.announce.clone();
    let name = r.cfg.name.clone();
    let gen = r.announce_gen.clone();
    let mine = gen.fetch_add(1, Ordering::SeqCst) + 1;
    let current = move || gen.load(Ordering::SeqCst) == mine;
    let sent = r.metrics.announcements.get_or_create_owned(&r.labels);
    tokio::spawn(async move {
        let send = |n: u32| {
            for ip in &addrs {
                match announcer.announce(*ip) {
                    Ok(()) => {
                        sent.inc();
                    }
                    Err(e) => {
                        warn!(instance = %name, vip = %ip, error = %e, burst = n, "gratuitous ARP/NA")
                    }
                }
            }
        };
        let bursts = if a.repeat_after.is_zero() { 1 } else { 2 };
        for b in 0..bursts {
            if b > 0 {
                tokio::time::sleep(a.repeat_after).await;
            }
            for n in 0..a.count {
                // The first two of the first burst go back to back: a client that
                // ignores the first gratuitous ARP (Linux neighbour `locktime`) takes
                // the second at once instead of one burst_delay later.
                if n > 1 || (n == 1 && b > 0) {
                    tokio::time::sleep(a.burst_delay).await;
                }
                if !current() {
                    return;
                }
                send(n);
            }
        }
        while !a.refresh.is_zero() {
            tokio::time::sleep(a.refresh).await;
            if !current() {
                return;
            }
            send(0);
        }
    });
}
