//! The agents' configuration files: xvrrpd's and keepalived's.
use super::*;

pub(super) fn xvrrpd_conf(
    opts: &LabOptions,
    dir: &std::path::Path,
    socket: &std::path::Path,
    (prio_w, prio_r): (u8, u8),
    events: &std::path::Path,
    witness: &str,
) -> Result<String> {
    // The same key on both nodes: each master's client connections are copied to the
    // peer, which resets them when it takes over.
    let key = dir.join("sync.key");
    std::fs::write(&key, b"lab connection-sync key (32 B)!!")?;
    let creds = dir.join("xvrrpd-mysql.cnf");
    // The same account on both servers, reachable over TCP: promotion looks at the peer.
    std::fs::write(&creds, "user = xvrrpd\npassword = xvrrpd\n")?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600))?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    let iv = opts.interval_ms;
    Ok(format!(
        r#"[global]
events_fifo = "{events}"
conn_sync_key = "{key}"

[[instance]]
name = "write"
interface = "eth0"
vrid = 41
priority = {prio_w}
advert_interval = "{iv}ms"
virtual_addresses = ["{WRITE_VIP}/24"]
track = ["mysql"]
anti_flap = "{af}ms"
reset_clients = {reset}

[instance.mysql]
server = "mysql"
catchup_timeout = "{ct}ms"
on_catchup_timeout = "{policy}"
# A returning old master's errant transactions (its own, never received by the
# peer that served writes after it): {errant_note}
on_errant = "{on_errant}"
errant_archive = "{archive}"

[[instance]]
name = "read"
interface = "eth0"
vrid = 51
priority = {prio_r}
advert_interval = "{iv}ms"
virtual_addresses = ["{READ_VIP}/24"]
track = ["mysql"]

[[tracker]]
name = "mysql"
kind = "mysql"
socket = "{socket}"
credentials_file = "{creds}"
interval = "1s"
timeout = "500ms"
fall = 1
rise = 3
weight = -100
{witness}"#,
        events = events.display(),
        key = key.display(),
        socket = socket.display(),
        creds = creds.display(),
        af = opts.anti_flap.as_millis(),
        reset = opts.reset_clients,
        ct = opts.catchup_timeout.as_millis(),
        policy = opts.policy,
        archive = dir.join("errant").display(),
        on_errant = opts.flavor.on_errant().0,
        errant_note = opts.flavor.on_errant().1,
    ))
}

pub(super) fn keepalived_conf(
    opts: &LabOptions,
    router_id: &str,
    addr: &str,
    prio_w: u8,
    prio_r: u8,
) -> String {
    let inst = |vrid: u8, priority: u8, vip: &str| crate::KaInstance {
        name: format!("VI_{vrid}"),
        state_master: false,
        interface: "eth0".into(),
        vrid,
        priority,
        advert_int: opts.interval_ms as f64 / 1000.0,
        unicast_peers: Vec::new(),
        old_unicast_checksum: false,
        track_scripts: vec!["chk_mysql".into()],
        vips: vec![format!("{vip}/24")],
    };
    crate::KaFile {
        router_id: router_id.into(),
        version: 3,
        // The classic port check: TCP connect to the local server every second.
        scripts: vec![(
            "chk_mysql".into(),
            crate::VrrpScript {
                command: format!("/bin/bash -c '</dev/tcp/{addr}/3306'"),
                interval_s: 1,
                fall: 2,
                rise: 3,
                weight: -60,
            },
        )],
        instances: vec![inst(41, prio_w, WRITE_VIP), inst(51, prio_r, READ_VIP)],
    }
    .render()
}
