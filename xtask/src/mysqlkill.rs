//! `cargo xtask bench mysql-kill`: time from SIGKILL of the master's mysqld to the write
//! VIP on the peer — xvrrpd's native MySQL tracker against the classic keepalived setup
//! (port check every 1 s, fall 2, rise 3, weight -60), same run, same machine.
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xvrrpd_tests::{
    has_addr, router_toml, wait_until, Db, DbFlavor, Keepalived, KeepalivedConf, Router, Segment,
    VrrpScript,
};

use crate::record;

const VIP: &str = "192.0.2.100";

#[derive(clap::Args)]
pub struct MysqlKillArgs {
    /// Runs per agent and interval.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Advert intervals in milliseconds.
    #[arg(long, value_delimiter = ',', default_value = "10,1000")]
    pub intervals_ms: Vec<u64>,
}

fn one(classic: bool, interval_ms: u64) -> Result<f64> {
    let seg = Segment::new(2)?;
    let (n0, n1) = (&seg.nodes[0], &seg.nodes[1]);
    let bind = format!("--bind-address={}", n0.addr4);
    let db = Db::start_with(&n0.ns, DbFlavor::Mariadb, &["--skip-log-bin", &bind])?;
    let vip = format!("{VIP}/24");
    let (_a, _b, _ka, _kb);
    if classic {
        let conf = |prio: u8, master: bool, script: Option<VrrpScript>| KeepalivedConf {
            version: 3,
            vrid: 41,
            priority: prio,
            advert_int: interval_ms as f64 / 1000.0,
            vip: vip.clone(),
            state_master: master,
            unicast_peers: vec![],
            old_unicast_checksum: false,
            script,
        };
        let check = VrrpScript {
            command: format!("/bin/bash -c '</dev/tcp/{}/3306'", n0.addr4),
            interval_s: 1,
            fall: 2,
            rise: 3,
            weight: -60,
        };
        _ka = Keepalived::start(&n0.ns, "eth0", &conf(150, true, Some(check)))?;
        _kb = Keepalived::start(&n1.ns, "eth0", &conf(100, false, None))?;
    } else {
        std::env::set_var("XVRRPD_MYSQL_USER", "root");
        let tracker = format!(
            "track = [\"db\"]\n\n[[tracker]]\nname = \"db\"\nkind = \"mysql\"\nsocket = \"{}\"\n\
             interval = \"1s\"\ntimeout = \"500ms\"\nfall = 1\nrise = 3\nweight = -60\n",
            db.socket.display()
        );
        let iv = format!("{interval_ms}ms");
        _a = Router::start(
            &n0.ns,
            &format!("{}{tracker}", router_toml("w", 41, 150, 3, &iv, &vip)),
        )?;
        _b = Router::start(&n1.ns, &router_toml("w", 41, 100, 3, &iv, &vip))?;
    }
    let converge = Duration::from_millis(interval_ms * 5 + 8000);
    if !wait_until(converge, || has_addr(&n0.ns, VIP) && !has_addr(&n1.ns, VIP)) {
        bail!("pair did not converge on db1");
    }
    // Settle: let checks pass (and the watch connection park) before the kill.
    std::thread::sleep(Duration::from_millis(2500));
    let t = std::time::Instant::now();
    db.signal(libc::SIGKILL);
    if !wait_until(Duration::from_secs(20), || has_addr(&n1.ns, VIP)) {
        bail!("the VIP never moved");
    }
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

pub fn run(args: MysqlKillArgs) -> Result<()> {
    let command = format!(
        "cargo xtask bench mysql-kill --runs {} --intervals-ms {}",
        args.runs,
        args.intervals_ms
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut csv = record::Raw::new("setup,advert_ms,run,kill_to_vip_ms");
    let mut table = record::Table::new("| advert | classic keepalived + port check min/med/max | xvrrpd + mysql tracker min/med/max | ratio (median) |");
    for &iv in &args.intervals_ms {
        let mut meds = Vec::new();
        let mut cells = Vec::new();
        for classic in [true, false] {
            let name = if classic {
                "keepalived-portcheck"
            } else {
                "xvrrpd-mysql"
            };
            let mut v = Vec::new();
            for run in 0..args.runs {
                let ms = one(classic, iv).with_context(|| format!("{name} {iv} ms run {run}"))?;
                eprintln!("{name} {iv} ms run {run}: {ms:.0} ms");
                csv.row(format!("{name},{iv},{run},{ms:.1}"))?;
                v.push(ms);
            }
            let (lo, mid, hi) = record::stats(&mut v);
            meds.push(mid);
            cells.push(format!("{lo:.0} / {mid:.0} / {hi:.0} ms"));
        }
        table.row(format!(
            "| {iv} ms | {} | {} | {:.2} |",
            cells[0],
            cells[1],
            meds[1] / meds[0]
        ))?;
    }
    record::record(record::Entry {
        title: "mysqld SIGKILL to write VIP on the peer",
        command: &command,
        parts: &[record::Part::table(&table)],
        notes:
            "Classic: keepalived 2.2.7 pair, `vrrp_script` TCP connect to 3306 every 1 s, fall 2, \
         rise 3, weight -60. xvrrpd: `mysql` tracker (interval 1 s, timeout 500 ms, fall 1, \
         weight -60) whose parked connection fails at once when mysqld dies. Both: priorities \
         150/100, VRRPv3, the backup takes over after Master_Down_Interval once the master \
         advertises 90.",
        raw: Some(("mysql_kill", &csv)),
    })
}
