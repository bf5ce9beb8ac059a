//! Start-up and reload: the running set of instances and trackers is brought to a new
//! configuration by difference.
//!
//! - unchanged instance: untouched (state, VIPs, timers, anti-flap hold all kept);
//! - *soft* change (priority, preempt, delays, trackers, hooks, announcements, interval):
//!   updated in place, which may move the priority but never restarts the instance;
//! - *hard* change (interface, VRID, version, VIPs, peers, authentication, checksum,
//!   MySQL guard): shut down as on SIGTERM (priority 0, VIPs removed, server fenced), then
//!   started again;
//! - removed: shut down; added: started.
//!
//! A configuration that does not validate, or that cannot be prepared (a missing
//! interface, a credentials file others can read), is refused before anything changes.
use std::collections::HashMap;

use anyhow::Context;
use tracing::{info, warn};

use super::{
    instance::{self, apply, prepare, settings, Running},
    Router,
};
use crate::{
    config::{Config, InstanceConfig},
    engine::{Input as VrrpInput, Instant},
    mysql::conn::Server,
    net::monotonic_ns,
    role::Input,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Keep,
    Update,
    Replace,
    Add,
    Remove,
}

/// Is the difference between `old` and `new` limited to fields that can change in place?
fn soft_change(old: &InstanceConfig, new: &InstanceConfig) -> bool {
    let mut n = new.clone();
    n.priority = old.priority;
    n.preempt = old.preempt;
    n.preempt_delay = old.preempt_delay;
    n.anti_flap = old.anti_flap;
    n.track = old.track.clone();
    n.notify = old.notify.clone();
    n.announce = old.announce.clone();
    n.advert_interval = old.advert_interval;
    n.accept_mode = old.accept_mode;
    n.peers = old.peers.clone();
    n.spoof_filter = old.spoof_filter;
    n == *old
}

/// What happens to each instance, by name: the new configuration's order, then removals.
pub fn plan(old: &[InstanceConfig], new: &[InstanceConfig]) -> Vec<(String, Change)> {
    let mut out: Vec<(String, Change)> = new
        .iter()
        .map(|n| {
            let change = match old.iter().find(|o| o.name == n.name) {
                None => Change::Add,
                Some(o) if o == n => Change::Keep,
                Some(o) if soft_change(o, n) => Change::Update,
                Some(_) => Change::Replace,
            };
            (n.name.clone(), change)
        })
        .collect();
    out.extend(
        old.iter()
            .filter(|o| !new.iter().any(|n| n.name == o.name))
            .map(|o| (o.name.clone(), Change::Remove)),
    );
    out
}

impl Router {
    /// Re-reads the configuration file and applies it; the summary of what changed.
    pub(super) async fn reload(&mut self) -> anyhow::Result<String> {
        let _ = sd_notify::notify(&[
            sd_notify::NotifyState::Reloading,
            sd_notify::NotifyState::monotonic_usec_now()?,
        ]);
        let result = match super::load(&self.path) {
            Ok(cfg) => self.apply_config(cfg).await,
            Err(e) => Err(e),
        };
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        let outcome = if result.is_ok() { "ok" } else { "refused" };
        self.metrics
            .reloads
            .get_or_create(&vec![("result", outcome.to_string())])
            .inc();
        match &result {
            Ok(summary) => info!("{summary}"),
            Err(e) => warn!("reload refused: {e:#}"),
        }
        result
    }

    /// Brings the running set to `new` (start-up is this from nothing). Everything that
    /// can fail is done first, while nothing has changed: new and replaced instances are
    /// prepared (interface, addresses, sockets), write instances' credentials are read,
    /// new interfaces get the XDP program. A failure there refuses the whole change. What
    /// follows cannot fail as a whole: a step that goes wrong (a datapath map update) is
    /// logged and reported, and the running set still becomes exactly `new`.
    pub(super) async fn apply_config(&mut self, new: Config) -> anyhow::Result<String> {
        if new.global.metrics_listen != self.cfg.global.metrics_listen && !self.instances.is_empty()
        {
            warn!("metrics_listen changed: takes effect at the next restart");
        }
        if new.witness != self.cfg.witness && !self.instances.is_empty() {
            warn!("[witness] changed: write instances kept by this reload go on as they were; a restart applies it to all");
        }
        if new.global.conn_table_size != self.cfg.global.conn_table_size
            && !self.instances.is_empty()
        {
            warn!("conn_table_size changed: takes effect at the next restart");
        }
        if new.global.events_fifo != self.cfg.global.events_fifo {
            if let Some(path) = &new.global.events_fifo {
                crate::notify::ensure_fifo(path)
                    .with_context(|| format!("events_fifo {}", path.display()))?;
            }
        }
        let plan = plan(&self.cfg.instances, &new.instances);
        let change_of = |name: &str| {
            plan.iter()
                .find(|(n, _)| n == name)
                .map_or(Change::Remove, |(_, c)| *c)
        };

        // 1. Everything that can fail, before anything changes.
        let witness_tls = match new.witness.as_ref().and_then(|w| w.tls.as_ref()) {
            Some(t) => Some(crate::witness::tls::load(t)?),
            None => None,
        };
        let witness = new.witness.as_ref().map(|w| (w, &witness_tls));
        let mut started: HashMap<String, (Running, Option<Server>)> = HashMap::new();
        let ifaces = crate::net::iface::Ifaces::read().context("reading the interfaces")?;
        for ic in new
            .instances
            .iter()
            .filter(|i| matches!(change_of(&i.name), Change::Add | Change::Replace))
        {
            let server = match ic.mysql {
                Some(_) => Some(instance::guard_server(ic, &new.trackers)?),
                None => None,
            };
            let r = self
                .prepare_instance(ic, witness, &ifaces)
                .with_context(|| format!("instance {:?}", ic.name))?;
            started.insert(ic.name.clone(), (r, server));
        }
        for ic in &new.instances {
            if !self.attached.contains(&ic.interface) {
                let mode = self
                    .dp
                    .attach(&ic.interface)
                    .with_context(|| format!("instance {:?}: attaching XDP", ic.name))?;
                info!(interface = %ic.interface, %mode, "XDP program attached");
                self.attached.push(ic.interface.clone());
            }
        }

        // 2. The change itself.
        let mut problems = Vec::new();
        self.cfg.global = new.global.clone();
        // Trackers: identical ones keep running (and keep their state); the others start.
        let mut old_trackers = std::mem::take(&mut self.trackers);
        let (mut kept_t, mut started_t) = (0, 0);
        for tc in &new.trackers {
            if let Some(pos) = old_trackers.iter().position(|t| t.cfg == *tc) {
                self.trackers.push(old_trackers.remove(pos));
                kept_t += 1;
            } else {
                let t = self.start_tracker(tc.clone());
                self.trackers.push(t);
                started_t += 1;
            }
        }
        for t in &old_trackers {
            self.metrics
                .tracker_up
                .remove(&crate::metrics::tracker_labels(
                    &t.cfg.name,
                    super::kind_name(t.cfg.kind),
                ));
        }
        drop(old_trackers); // aborts their tasks
        for t in &self.trackers {
            let name = t.cfg.name.clone();
            self.set_tracker_gauge(&name);
        }

        // Removed and replaced instances shut down as on SIGTERM.
        let mut kept: HashMap<String, Running> = HashMap::new();
        for r in std::mem::take(&mut self.instances) {
            match change_of(&r.cfg.name) {
                Change::Keep | Change::Update => {
                    kept.insert(r.cfg.name.clone(), r);
                }
                Change::Remove | Change::Replace | Change::Add => self.retire(r).await,
            }
        }
        for ic in new
            .instances
            .iter()
            .filter(|i| change_of(&i.name) == Change::Update)
        {
            if let Some(r) = kept.get_mut(&ic.name) {
                if r.cfg.notify != ic.notify {
                    let (tx, task) =
                        crate::notify::spawn(ic.name.clone(), ic.vrid, ic.notify.clone());
                    r.notify = tx;
                    self.notify_tasks.push((task, ic.notify.timeout));
                }
                r.cfg = ic.clone();
                // Settings only: the new priority follows from the retrack below.
                let actions = r.core.handle(Input::Reconfigure {
                    now: Instant(monotonic_ns()),
                    settings: settings(ic, r.sender.source()),
                    policy: ic.mysql.as_ref().map(|g| g.on_catchup_timeout),
                });
                apply(r, actions, &self.nl, &mut self.dp).await;
                r.params = instance::datapath_params(ic, r.core.engine().priority());
                if let Err(e) = self.dp.set_params(r.key, r.params) {
                    problems.push(format!("instance {:?}: datapath parameters: {e}", ic.name));
                }
                info!(instance = %ic.name, "updated in place");
            }
        }
        for r in kept.values_mut() {
            r.events = self.sink();
        }

        // The new running set, in configuration order.
        self.cfg.instances = new.instances.clone();
        self.cfg.trackers = new.trackers.clone();
        self.cfg.witness = new.witness.clone();
        let mut fresh = Vec::new();
        for ic in &new.instances {
            if let Some(r) = kept.remove(&ic.name) {
                self.instances.push(r);
            } else if let Some((mut r, server)) = started.remove(&ic.name) {
                // The snapshot may show a VIP removed since (a replaced instance's):
                // removing an absent address is a no-op.
                instance::clear_leftovers(&r.cfg.name, &r.vips, &ifaces, &self.nl).await;
                if let Err(e) = self.dp.set_params(r.key, r.params) {
                    problems.push(format!("instance {:?}: datapath parameters: {e}", ic.name));
                }
                if let Some(server) = server {
                    let fence = instance::start_guard(&mut r, server, self.outcome_tx.clone());
                    apply(&mut r, fence, &self.nl, &mut self.dp).await;
                }
                fresh.push(r.id);
                self.instances.push(r);
            }
        }
        self.rebuild_index();
        let now = Instant(monotonic_ns());
        for i in 0..self.instances.len() {
            // Unchanged instances: no input changes, so no action.
            self.retrack(i, now).await;
            if fresh.contains(&self.instances[i].id) {
                self.feed(i, Input::Vrrp(VrrpInput::Startup { now })).await;
            }
        }
        for p in &problems {
            warn!("{p}");
        }
        let names = |c: Change| -> String {
            let v: Vec<&str> = plan
                .iter()
                .filter(|(_, x)| *x == c)
                .map(|(n, _)| n.as_str())
                .collect();
            if v.is_empty() {
                "0".into()
            } else {
                format!("{} ({})", v.len(), v.join(", "))
            }
        };
        let mut summary = format!(
            "configuration applied: instances kept {}, updated {}, replaced {}, added {}, removed {}; trackers kept {kept_t}, started {started_t}",
            names(Change::Keep),
            names(Change::Update),
            names(Change::Replace),
            names(Change::Add),
            names(Change::Remove),
        );
        if !problems.is_empty() {
            summary += &format!("; with problems: {}", problems.join("; "));
        }
        Ok(summary)
    }

    fn prepare_instance(
        &mut self,
        ic: &InstanceConfig,
        witness: Option<(
            &crate::config::WitnessConfig,
            &Option<crate::witness::tls::Tls>,
        )>,
        ifaces: &crate::net::iface::Ifaces,
    ) -> anyhow::Result<Running> {
        let id = self.next_id;
        self.next_id += 1;
        let (ntx, task) = crate::notify::spawn(ic.name.clone(), ic.vrid, ic.notify.clone());
        self.notify_tasks.push((task, ic.notify.timeout));
        let memory_file = super::kept::path(&self.state_dir, &self.node_name(), &ic.name);
        prepare(
            id,
            ic,
            memory_file,
            ntx,
            self.sink(),
            self.metrics.clone(),
            super::instance::Shared {
                pacer: &self.pacer,
                announcers: &mut self.announcers,
                link: &self.link,
                ifaces,
            },
        )
        .map(|mut r| {
            r.stalls = Some(self.stall_tx.clone());
            let n = self.dp.conn_table_size() as usize;
            r.conns = crate::conntrack::Table::new(n);
            r.peer_conns = crate::conntrack::Table::new(n);
            if let Some((w, tls)) = witness {
                let me = self.witness_identity();
                instance::start_witness(&mut r, w, tls.clone(), &me, self.witness_tx.clone());
            }
            r
        })
    }

    /// Shuts one instance down for good (priority 0, VIPs removed, server fenced).
    async fn retire(&mut self, mut r: Running) {
        info!(instance = %r.cfg.name, "stopping (removed or changed by the new configuration)");
        let now = Instant(monotonic_ns());
        let actions = r.core.handle(Input::Vrrp(VrrpInput::Shutdown { now }));
        apply(&mut r, actions, &self.nl, &mut self.dp).await;
        if let Some(g) = r.guard.take() {
            g.finish(std::time::Duration::from_secs(5)).await;
        }
        if let Err(e) = self.dp.remove_params(r.key) {
            warn!(instance = %r.cfg.name, error = %e, "removing datapath parameters");
        }
        // Its VIPs are no longer this instance's to refuse (one kept by the new
        // configuration is refused again when that instance next gives it up).
        for v in &r.vips {
            if let Err(e) = self.dp.reclaim_vip(v.ifindex, v.addr) {
                warn!(instance = %r.cfg.name, error = %e, "clearing the VIP's refusal");
            }
        }
        self.metrics.forget_instance(&r.labels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Vec<InstanceConfig> {
        crate::config::parse(text, false).unwrap().instances
    }

    const BASE: &str = r#"
[[instance]]
name = "write"
interface = "eth0"
vrid = 51
priority = 150
virtual_addresses = ["192.0.2.100/24"]

[[instance]]
name = "read"
interface = "eth0"
vrid = 52
priority = 100
virtual_addresses = ["192.0.2.101/24"]
"#;

    #[test]
    fn classifies_every_kind_of_change() {
        let old = cfg(BASE);
        assert_eq!(
            plan(&old, &old),
            vec![
                ("write".into(), Change::Keep),
                ("read".into(), Change::Keep)
            ]
        );
        let new = cfg(&(BASE
            .replace("priority = 150", "priority = 120\npreempt = false")
            .replace("192.0.2.101/24", "192.0.2.102/24")
            + "\n[[instance]]\nname = \"extra\"\ninterface = \"eth0\"\nvrid = 53\npriority = 100\nvirtual_addresses = [\"192.0.2.103/24\"]\n"));
        assert_eq!(
            plan(&old, &new),
            vec![
                ("write".into(), Change::Update),
                ("read".into(), Change::Replace),
                ("extra".into(), Change::Add),
            ]
        );
        let only_read = cfg(&BASE[BASE.find("[[instance]]\nname = \"read\"").unwrap()..]);
        assert_eq!(
            plan(&old, &only_read),
            vec![
                ("read".into(), Change::Keep),
                ("write".into(), Change::Remove)
            ]
        );
        // The VRID is identity on the wire: changing it is a restart.
        let vrid = cfg(&BASE.replace("vrid = 51", "vrid = 61"));
        assert_eq!(plan(&old, &vrid)[0].1, Change::Replace);
    }
}
