//! What the datapath reports to the main loop: adverts and timer expiries for the
//! engine, a host that stood still, another host claiming a VIP.
use super::*;

impl Router {
    pub(super) async fn datapath_event(&mut self, ev: DatapathEvent) {
        if let EventKind::VipClaimed { instance, mac } = ev.kind {
            self.vip_claimed(instance, ev.ifindex, ev.src, mac);
            return;
        }
        let Some(&i) = self
            .by_key
            .get(&VridKey::new(ev.ifindex, ev.family.raw(), ev.vrid))
        else {
            return;
        };
        let input = match ev.kind {
            // Every valid advert arrives as `advert`; the change events describe the same
            // packets, so only adverts and timer expiries drive the engine.
            EventKind::Advert => {
                let r = &mut self.instances[i];
                r.master_src = Some(ev.src);
                if let Some(last) = r.last_advert_ns.replace(ev.ts_ns) {
                    r.series
                        .advert_gap
                        .observe(ev.ts_ns.saturating_sub(last) as f64 / 1e9);
                }
                VrrpInput::Advert {
                    now: Instant(ev.ts_ns),
                    src: ev.src,
                    priority: ev.priority,
                    interval: Duration::from_millis(ev.interval_cs as u64 * 10),
                }
            }
            EventKind::MasterDown { .. } => VrrpInput::MasterDown {
                now: Instant(ev.ts_ns),
            },
            EventKind::Stalled { late_us } => {
                // The kernel puts the verdict off; say why a takeover may come late.
                info!(
                    instance = %self.instances[i].cfg.name,
                    late_ms = late_us as f64 / 1e3,
                    silent_ms = ev.since_last_ns as f64 / 1e6,
                    "this host stalled past the master's deadline: watching once more before calling it down"
                );
                return;
            }
            _ => return,
        };
        self.feed(i, Input::Vrrp(input)).await;
    }

    /// Another host claimed a VIP instance `id` holds (see the datapath's `claim`): every
    /// client that heard it now sends here no more, so announce the VIP again at once.
    /// The datapath reports a VIP at most every 20 ms, and only while it is held.
    pub(super) fn vip_claimed(
        &mut self,
        id: u32,
        ifindex: u32,
        vip: std::net::IpAddr,
        mac: [u8; 6],
    ) {
        let Some(r) = self.instances.iter_mut().find(|r| r.id as u32 == id) else {
            return;
        };
        if !r.vips.iter().any(|v| v.ifindex == ifindex && v.addr == vip) {
            return;
        }
        r.metrics.vip_claims.get_or_create(&r.labels).inc();
        let answered = r.core.answers_claims(Instant(monotonic_ns()));
        if answered {
            tell::reannounce(r, vip);
        } else {
            debug!(instance = %r.cfg.name, vip = %vip, "VIP claimed while another master's write term is compared: not answered");
        }
        // One record per claimer and VIP a second at most: a host that keeps claiming
        // would otherwise write fifty.
        let now = std::time::Instant::now();
        let quiet = r
            .last_claim_log
            .is_some_and(|(at, m, v)| m == mac && v == vip && now.duration_since(at).as_secs() < 1);
        if !quiet {
            r.last_claim_log = Some((now, mac, vip));
            r.emit(&xvrrpd_core::events::Record::VipClaimed {
                ts_ns: monotonic_ns(),
                instance: r.cfg.name.clone(),
                vip: vip.to_string(),
                mac: crate::datapath::event::mac_text(&mac),
                answered,
            });
        }
        if answered && !quiet {
            warn!(
                instance = %r.cfg.name,
                vip = %vip,
                mac = %crate::datapath::event::mac_text(&mac),
                "another host claims this VIP (came back with it, or configured with it): announced it again"
            );
        }
    }

    /// A write instance's host stood still while master (found by its heartbeat): the
    /// datapath already refuses its clients; its core decides when that ends.
    pub(super) async fn stalled(&mut self, id: u64, gap: u64) {
        let Some(i) = self.instances.iter().position(|r| r.id == id) else {
            return;
        };
        let stood_ms = gap as f64 / 1e6;
        warn!(instance = %self.instances[i].cfg.name, stood_ms, "this host stood still while master (its adverts stopped for longer than the peer waits): clients refused at the VIPs until the peer is heard out");
        let now = Instant(monotonic_ns());
        self.feed(i, Input::Stalled { now }).await;
    }

    /// A stall the datapath marked on its own (a client segment found the beats late)
    /// while the pacer saw none: the write role hears it too, so the refusal cannot
    /// outlast one look of this (every second) and one Master_Down_Interval.
    pub(super) async fn stall_housekeeping(&mut self) {
        let now = monotonic_ns();
        let marked: Vec<(usize, u64)> = self
            .instances
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.core.stalled())
            .filter_map(|(i, r)| {
                r.beat
                    .as_ref()
                    .filter(|b| b.stalled())
                    .map(|b| (i, b.last()))
            })
            .collect();
        for (i, last) in marked {
            warn!(instance = %self.instances[i].cfg.name, beat_age_ms = now.saturating_sub(last) as f64 / 1e6, "the datapath found this master's adverts late and refuses its clients: hearing the peer out");
            self.feed(i, Input::Stalled { now: Instant(now) }).await;
        }
    }
}
