//! The control socket's requests, answered from the running instances: status,
//! maintenance, switchover, reload.
use super::*;

impl Router {
    pub(super) async fn control(&mut self, req: Request, reply: oneshot::Sender<Response>) {
        let resp = match req {
            Request::Status => Response::Status(self.status()),
            Request::StallEngine { .. } if !cfg!(feature = "fault-injection") => Response::Error {
                message: "stall-engine is fault injection for the labs: this agent was built without it (cargo build --features xvrrpd/fault-injection); packages never have it".into(),
            },
            Request::StallEngine { ms } if ms > 60_000 => Response::Error {
                message: format!("{ms} ms: stall-engine takes at most 60s"),
            },
            Request::StallEngine { ms } => {
                warn!(ms, "stall-engine: blocking the main loop (fault injection)");
                // Blocking on purpose: nothing of this loop runs meanwhile, as when the
                // process is starved.
                std::thread::sleep(Duration::from_millis(ms));
                Response::Ok {
                    message: format!("main loop blocked for {ms} ms"),
                }
            }
            Request::Switchover { instance } => {
                match self.instances.iter().position(|r| r.cfg.name == instance) {
                    None => Response::Error {
                        message: format!("no instance {instance:?} (see xvrrpd status)"),
                    },
                    Some(i) => {
                        let Router {
                            instances, nl, dp, ..
                        } = self;
                        let r = &mut instances[i];
                        match r.core.switchover(Instant(monotonic_ns())) {
                            Ok(actions) => {
                                info!(instance = %r.cfg.name, "switchover requested");
                                r.emit(&xvrrpd_core::events::Record::Switchover {
                                    ts_ns: monotonic_ns(),
                                    instance: r.cfg.name.clone(),
                                });
                                apply(r, actions, nl, dp).await;
                                Response::Ok {
                                    message: format!(
                                        "{instance}: asking the peer whether it holds this server's transactions, then handing over"
                                    ),
                                }
                            }
                            Err(e) => Response::Error {
                                message: format!("{}: {e}", r.cfg.name),
                            },
                        }
                    }
                }
            }
            Request::Maintenance { on } => match self.set_maintenance(on).await {
                Ok(()) => Response::Ok {
                    message: if on {
                        "maintenance on: every instance is in FAULT, VIPs released".into()
                    } else {
                        "maintenance off: instances rejoin the election".into()
                    },
                },
                Err(e) => Response::Error {
                    message: format!("{e:#}"),
                },
            },
            Request::Reload => match self.reload().await {
                Ok(summary) => Response::Ok { message: summary },
                Err(e) => Response::Error {
                    message: format!("reload refused, the running configuration stays: {e:#}"),
                },
            },
            // Streamed by the socket task itself.
            Request::Events => Response::Error {
                message: "events is streamed, not called".into(),
            },
        };
        let _ = reply.send(resp);
    }

    pub(super) async fn set_maintenance(&mut self, on: bool) -> anyhow::Result<()> {
        let marker = maintenance_marker(&self.control_socket);
        if on {
            std::fs::write(&marker, "maintenance\n")
                .with_context(|| format!("writing {}", marker.display()))?;
        } else if marker.exists() {
            std::fs::remove_file(&marker)
                .with_context(|| format!("removing {}", marker.display()))?;
        }
        if self.maintenance == on {
            return Ok(());
        }
        self.maintenance = on;
        self.metrics.maintenance.set(on as i64);
        info!(on, "maintenance");
        // To the FIFO and the journal too, as every record.
        self.sink().emit(&xvrrpd_core::events::Record::Maintenance {
            ts_ns: monotonic_ns(),
            on,
        });
        let now = Instant(monotonic_ns());
        for i in 0..self.instances.len() {
            self.retrack(i, now).await;
        }
        Ok(())
    }

    /// The `STATUS=` line for systemd.
    pub(super) fn status_line(&self) -> String {
        let instances: Vec<_> = self
            .instances
            .iter()
            .map(|r| r.status(Vec::new()))
            .collect();
        crate::control::status::summary(&instances)
    }

    pub(super) fn status(&self) -> Status {
        let tracker_status = |t: &TrackerRt| TrackerStatus {
            name: t.cfg.name.clone(),
            kind: kind_name(t.cfg.kind).to_string(),
            healthy: t.contribution.healthy,
        };
        Status {
            router_id: self.node_name(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            config: self.path.display().to_string(),
            maintenance: self.maintenance,
            instances: self
                .instances
                .iter()
                .map(|r| {
                    r.status(
                        self.trackers
                            .iter()
                            .filter(|t| r.cfg.track.contains(&t.cfg.name))
                            .map(tracker_status)
                            .collect(),
                    )
                })
                .collect(),
            trackers: self.trackers.iter().map(tracker_status).collect(),
        }
    }
}
