//! The configuration reference: every table and key of `xvrrpd.toml`, its type, its
//! default and what it does. One text, rendered twice: `docs/configuration.md` and the
//! `xvrrpd.toml(5)` man page the package installs. The tests hold it to the parser: every
//! key the parser accepts is here and nothing else, and every default is the parser's.
use std::fmt::Write as _;

/// One key of a table.
pub struct Key {
    pub name: &'static str,
    /// What is written: `duration` is a string such as `"10ms"`, `"1s"`, `"5m"`.
    pub kind: &'static str,
    /// The default as TOML would write it; `""` when the key is required or absent means
    /// "none" (said in `doc`).
    pub default: &'static str,
    pub doc: &'static str,
}

/// One table of the file.
pub struct Table {
    /// As written in the file: `global`, `[instance]]`-style arrays as `instance`.
    pub name: &'static str,
    /// `[name]` or `[[name]]`.
    pub array: bool,
    pub doc: &'static str,
    pub keys: &'static [Key],
}

const fn key(
    name: &'static str,
    kind: &'static str,
    default: &'static str,
    doc: &'static str,
) -> Key {
    Key {
        name,
        kind,
        default,
        doc,
    }
}

pub const TABLES: &[Table] = &[
    Table {
        name: "global",
        array: false,
        doc: "Settings of the whole agent. Optional, as is each key.",
        keys: &[
            key("router_id", "string", "", "This node's name in logs, metrics, the witness's key and the state files. Default: the host name."),
            key("events_fifo", "path", "", "Write every record of the events stream (transitions, promotion steps, fences, blocks, lease, claims, resets; see events.md) as one JSON line here. A missing path is created as a FIFO (mode 600), an existing file is appended to; writes never block (no reader: the line is dropped). Default: none."),
            key("metrics_listen", "address:port", "\"127.0.0.1:9611\"", "The Prometheus endpoint (`/metrics`). `\"\"` turns it off."),
            key("realtime_priority", "integer 0-99", "50", "SCHED_FIFO priority of the thread that sends a master's periodic adverts; 0: ordinary scheduling. Read at start-up only."),
            key("realtime_budget", "duration", "\"10ms\"", "CPU time that thread may use without blocking before the kernel stops it (RLIMIT_RTTIME; keepalived's `vrrp_rlimit_rttime`)."),
            key("lock_memory", "boolean", "true", "Lock the whole process in memory at start-up (keepalived's `vrrp_no_swap`), so memory pressure cannot page out what sends the adverts."),
            key("conn_sync_key", "path", "", "Key file (at least 16 bytes, mode 600, the same on both nodes: `head -c 32 /dev/urandom`) signing the copy of the master's client connections to the peer, which resets them when it takes over. Default: none, and then nothing is copied."),
            key("conn_sync_port", "port", "5899", "UDP port of that copy, on every address of the node."),
            key("conn_table_size", "integer", "131072", "Most client connections tracked at once on this node, and most copied connections a takeover resets from the datapath. Read at start-up only."),
        ],
    },
    Table {
        name: "instance",
        array: true,
        doc: "One VRRP virtual router (keepalived's `vrrp_instance`). A write instance has an `[instance.mysql]` table.",
        keys: &[
            key("name", "string", "", "Required. The instance's name in logs, metrics, hooks, `xvrrpd status` and the control commands (`xvrrpd switchover NAME`)."),
            key("interface", "string", "", "Required. The interface the adverts are sent and received on, and the VIPs' default device."),
            key("vrid", "integer 1-255", "", "Required. The virtual router's ID, the same on both nodes; unique per interface."),
            key("priority", "integer 1-255", "", "Required. Higher wins; 255 only for the owner of the addresses."),
            key("version", "2 or 3", "3", "VRRP version. Version 2 carries whole-second intervals and PASS authentication (keepalived compatibility)."),
            key("advert_interval", "duration", "\"1s\"", "Between two adverts of the master. Version 3: multiples of 10 ms; version 2: whole seconds. Master_Down_Interval is three of them plus the skew."),
            key("preempt", "boolean", "true", "Take the role from a lower-priority master (keepalived's `nopreempt` is `false`)."),
            key("preempt_delay", "duration", "\"0s\"", "Healthy this long before preempting."),
            key("anti_flap", "duration", "\"0s\"", "After losing mastership, starting or leaving FAULT, no preemption for this long (a master that fails is still replaced at once). Kept across agent restarts and reboots in the state directory."),
            key("virtual_addresses", "list", "", "Required. The VIPs: `\"192.0.2.100/24\"`, or `{ address = \"...\", device = \"eth1\", label = \"eth1:db\" }`. One address family per instance."),
            key("unicast_source", "address", "", "Source of unicast adverts. Default: the interface's primary address."),
            key("unicast_peers", "list of addresses", "[]", "Send adverts to these addresses; empty: multicast (224.0.0.18, ff02::12)."),
            key("auth_pass", "string", "", "VRRPv2 PASS authentication, at most 8 bytes (keepalived compatibility). Default: none."),
            key("peers", "list of addresses", "[]", "The routers allowed to advertise this VRID (default: `unicast_peers`; both empty: anyone). Adverts from others, and v2 adverts with another password, are counted as invalid."),
            key("spoof_filter", "boolean", "false", "Drop in XDP the adverts for this VRID that fail a check (TTL, length, checksum, a source outside `peers`, another password), so a spoofed advert cannot move the VIP. Off, they are only counted."),
            key("v3_checksum", "string", "\"pseudo-header\"", "How a v3 IPv4 advert's checksum is computed when sending: `pseudo-header` (RFC 5798, keepalived 2.2.7), `no-pseudo-header` (RFC 3768 style), `pseudo-header-multicast` (keepalived's `old_unicast_checksum`)."),
            key("accept_mode", "boolean", "true", "Accept packets addressed to the VIPs when not their owner (a database VIP needs it)."),
            key("refuse_released", "boolean", "true", "Once the VIPs are given up, answer TCP that still reaches this node for them with a RST (in XDP): a client with a stale ARP entry fails at once and reconnects to the new master."),
            key("reset_clients", "boolean", "true", "On taking over, send each client connection the old master had (copied with `conn_sync_key`) a tickle, so it resets and reconnects at once; and reset this node's own clients when it gives the VIPs up alive."),
            key("tickle_answer", "string", "\"datapath\"", "Who resets a client's answer to a tickle: `datapath` (the XDP program, which a firewall dropping INVALID segments cannot stop) or `kernel` (this node's TCP stack)."),
            key("conn_ports", "list of ports", "[]", "Track and reset only connections to these local ports (at most 8, e.g. `[3306]`); empty: every port."),
            key("track", "list of strings", "[]", "The `[[tracker]]`s this instance follows."),
            key("mysql", "table", "", "Makes this the write instance of a server: see `[instance.mysql]`."),
            key("notify", "table", "", "Hooks run on transitions: see `[instance.notify]`."),
            key("announce", "table", "", "Gratuitous ARP / unsolicited NA: see `[instance.announce]`."),
        ],
    },
    Table {
        name: "instance.mysql",
        array: false,
        doc: "The write guard: the VIP moves only in an order that keeps the data whole (catch-up before writable, `read_only` fence before anything else on leaving, the write term, errant transactions). Its account: `xvrrpd grants`.",
        keys: &[
            key("server", "string", "", "Required. A `[[tracker]]` of kind `mysql`: the server guarded, reached with its connection settings and credentials."),
            key("catchup_timeout", "duration", "\"10s\"", "How long a promotion waits for what reached this node from the peer to be applied."),
            key("on_catchup_timeout", "string", "\"stay-backup\"", "`stay-backup`: read-only and out of the election until applied; `promote-anyway`: writable without it (trades acknowledged writes for availability)."),
            key("kill_writers", "boolean", "true", "On leaving mastership, kill the clients' connections after `read_only = ON`."),
            key("on_hung", "string", "\"kill\"", "A server that must be fenced and answers nothing for 500 ms: `kill` (SIGKILL before the peer counts it gone; its service manager restarts it read-only) or `wait`."),
            key("on_errant", "string", "\"quarantine\"", "Commits of this server's own the peer, which served writes after it, never received: `quarantine` (read-only, out of the election, until an operator acts), `flashback` (MariaDB: undo them and rejoin), `clone` (MySQL: rebuild from the peer and rejoin). Each archives what it removes."),
            key("errant_archive", "path", "\"/var/lib/xvrrpd/errant\"", "Where `flashback` and `clone` keep the transactions they removed, decoded."),
        ],
    },
    Table {
        name: "instance.notify",
        array: false,
        doc: "Programs (argv, no shell) run one at a time per instance, in transition order, with `XVRRPD_INSTANCE`, `XVRRPD_VRID`, `XVRRPD_OLD_STATE`, `XVRRPD_NEW_STATE`, `XVRRPD_PRIORITY` and `XVRRPD_REASON` in the environment. A failover never waits for them.",
        keys: &[
            key("master", "argv", "[]", "On becoming MASTER (after the VIPs are up)."),
            key("backup", "argv", "[]", "On becoming BACKUP."),
            key("fault", "argv", "[]", "On entering FAULT."),
            key("stop", "argv", "[]", "On shutdown; it finishes before the agent exits."),
            key("any", "argv", "[]", "On every transition, after the state's own hook, with keepalived's `INSTANCE <name> <STATE> <priority>` appended."),
            key("timeout", "duration", "\"10s\"", "A hook still running after this is killed; the next one still runs."),
        ],
    },
    Table {
        name: "instance.announce",
        array: false,
        doc: "Gratuitous ARP / unsolicited NA after becoming master.",
        keys: &[
            key("count", "integer", "5", "Packets per burst."),
            key("burst_delay", "duration", "\"10ms\"", "Between two packets of a burst."),
            key("repeat_after", "duration", "\"1s\"", "A second burst this long after the first (`\"0s\"`: none)."),
            key("refresh", "duration", "\"0s\"", "Announce again this often while master (`\"0s\"`: never)."),
        ],
    },
    Table {
        name: "tracker",
        array: true,
        doc: "A health check instances follow with `track` (keepalived's `vrrp_script`, `track_file`, `track_interface`). `weight` > 0 is added while healthy, < 0 while failed; 0 means FAULT. A write instance's own server failing its check means FAULT whatever the weight.",
        keys: &[
            key("name", "string", "", "Required. The name `track` and `server` refer to."),
            key("kind", "string", "", "Required. `exec` (a program, exit 0 = healthy), `file` (an integer, multiplied by `weight`: the drain knob), `mysql` (native check: reachable, `query` succeeds, optional read-only, replication and lag conditions; a parked connection fails it the moment mysqld dies), `interface` (link up with carrier, from netlink events)."),
            key("command", "argv", "[]", "exec: the program and its arguments (no shell); killed at `timeout`."),
            key("path", "path", "", "file: the file holding the integer."),
            key("interface", "string", "", "interface: the link followed."),
            key("interval", "duration", "\"1s\"", "Between two checks."),
            key("timeout", "duration", "\"2s\"", "A check that takes longer fails (a hung server)."),
            key("rise", "integer", "1", "Successes in a row before a failed check is healthy again."),
            key("fall", "integer", "1", "Failures in a row before a healthy check fails."),
            key("weight", "integer", "0", "Added to the priority (see above); the result is kept within 1-254."),
            key("reverse", "boolean", "false", "Healthy means failed and the other way round (file: the value's sign)."),
            key("socket", "path", "", "mysql: the server's Unix socket (else `host` and `port`)."),
            key("host", "string", "", "mysql: the server's address."),
            key("port", "port", "", "mysql: the server's port (3306 when `host` is given)."),
            key("credentials_file", "path", "", "mysql: a mode-600 file owned by the agent's user with `user = ...` and `password = ...` lines; else `XVRRPD_MYSQL_USER` / `XVRRPD_MYSQL_PASSWORD` from the environment."),
            key("query", "string", "", "mysql: the query that must succeed. Default: `SELECT 1`."),
            key("read_only", "boolean", "", "mysql: the `read_only` value the server must have. Default: either."),
            key("replication", "boolean", "false", "mysql: both replication threads must run."),
            key("max_lag", "duration", "", "mysql: the replica may be at most this far behind. Default: any lag."),
        ],
    },
    Table {
        name: "witness",
        array: false,
        doc: "A third vote on who may write (see witness.md): an etcd cluster both nodes reach holds each write instance's key, and a server may be writable only while its node holds it.",
        keys: &[
            key("etcd", "list of host:port", "", "Required. The members' client addresses (three members on three hosts)."),
            key("prefix", "string", "\"/xvrrpd\"", "The keys live at `PREFIX/INSTANCE/write`; both nodes of a pair use the same, another pair on the same etcd another."),
            key("lease", "duration", "\"600ms\"", "The holder writes until `lease - margin` after its last renewal was sent; a successor waits `lease + margin` after it last saw one."),
            key("margin", "duration", "\"250ms\"", "The clock-rate allowance between the two nodes (see `lease`)."),
            key("tls", "table", "", "TLS to the members: see `[witness.tls]`. Absent: plain HTTP, fit only for a network nobody else reaches."),
        ],
    },
    Table {
        name: "witness.tls",
        array: false,
        doc: "PEM files, as etcd's `--trusted-ca-file`, `--cert-file` and `--key-file` take them.",
        keys: &[
            key("ca", "path", "", "Required. The CA that signed the members' certificates."),
            key("cert", "path", "", "This node's client certificate, for members run with `--client-cert-auth`."),
            key("key", "path", "", "Its key (mode 600, owned by the agent's user, not a symbolic link)."),
            key("server_name", "string", "", "The name the members' certificates carry, when it is not the host in `etcd`."),
        ],
    },
];

const INTRO: &str = "The agent reads `/etc/xvrrpd/xvrrpd.toml` (`--config` names another file). \
Durations are strings such as `\"10ms\"`, `\"1s\"`, `\"5m\"`; unknown keys are errors. \
`xvrrpd check` validates a file and names every problem with its key and line; \
`xvrrpd import-keepalived` writes one from a keepalived.conf. \
The packaged examples, `/etc/xvrrpd/xvrrpd.toml.example` and `db2.toml.example`, are a \
commented classic pair.";

fn header(t: &Table) -> String {
    if t.array {
        format!("[[{}]]", t.name)
    } else {
        format!("[{}]", t.name)
    }
}

fn default_text(k: &Key) -> &'static str {
    if k.default.is_empty() {
        "none"
    } else {
        k.default
    }
}

/// `docs/configuration.md`.
pub fn markdown() -> String {
    let mut s = String::from(
        "<!-- Generated from agent/src/config/reference.rs: edit there, then\n     XVRRPD_BLESS=1 cargo test -p xvrrpd config::reference -->\n# xvrrpd.toml\n\n",
    );
    let _ = writeln!(s, "{INTRO}\n");
    for t in TABLES {
        let _ = writeln!(s, "## `{}`\n\n{}\n", header(t), t.doc);
        s.push_str("| key | type | default | meaning |\n|---|---|---|---|\n");
        for k in t.keys {
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} |",
                k.name,
                k.kind,
                if k.default.is_empty() {
                    "none".to_string()
                } else {
                    format!("`{}`", k.default)
                },
                k.doc.replace('|', "\\|")
            );
        }
        s.push('\n');
    }
    s.truncate(s.trim_end().len());
    s.push('\n');
    s
}

/// Text for roff: backslashes and leading dots or quotes escaped, `code` in bold.
fn roff_text(t: &str) -> String {
    let escaped = t.replace('\\', "\\e").replace('-', "\\-");
    let mut out = String::new();
    let mut bold = false;
    for c in escaped.chars() {
        if c == '`' {
            out.push_str(if bold { "\\fR" } else { "\\fB" });
            bold = !bold;
        } else {
            out.push(c);
        }
    }
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
}

/// The `xvrrpd.toml(5)` man page.
pub fn roff(version: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        ".TH XVRRPD.TOML 5 \"\" \"xvrrpd {version}\" \"File Formats\"\n.SH NAME\nxvrrpd.toml \\- configuration of the xvrrpd failover agent\n.SH DESCRIPTION\n{}",
        roff_text(INTRO)
    );
    for t in TABLES {
        let _ = writeln!(s, ".SH {}\n{}", roff_text(&header(t)), roff_text(t.doc));
        for k in t.keys {
            let _ = writeln!(
                s,
                ".TP\n\\fB{}\\fR (\\fI{}\\fR; default {})\n{}",
                roff_text(k.name),
                roff_text(k.kind),
                roff_text(default_text(k)),
                roff_text(k.doc)
            );
        }
    }
    let _ = writeln!(
        s,
        ".SH FILES\n/etc/xvrrpd/xvrrpd.toml\n.SH SEE ALSO\n\\fBxvrrpd\\fR(8), \\fBxvrrpd\\-check\\fR(8), \\fBxvrrpd\\-run\\fR(8), \\fBkeepalived.conf\\fR(5)"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration every table can be hung from.
    const BASE: &str = r#"
[global]
[[instance]]
name = "w"
interface = "eth0"
vrid = 1
priority = 100
virtual_addresses = ["192.0.2.100/24"]
[instance.mysql]
server = "m"
[instance.notify]
[instance.announce]
[[tracker]]
name = "m"
kind = "mysql"
[witness]
etcd = ["192.0.2.1:2379"]
[witness.tls]
ca = "/ca.pem"
"#;

    /// The keys the parser accepts in `table`, from its own error for an unknown one.
    fn accepted(table: &str) -> Vec<String> {
        let probe = "zz_not_a_key = 1\n";
        let text = match table {
            "" => format!("{probe}{BASE}"),
            t => {
                let head = if t == "instance" || t == "tracker" {
                    format!("[[{t}]]")
                } else {
                    format!("[{t}]")
                };
                BASE.replacen(&format!("{head}\n"), &format!("{head}\n{probe}"), 1)
            }
        };
        let err = toml::from_str::<super::super::Config>(&text)
            .expect_err(table)
            .to_string();
        let list = err
            .split("expected one of ")
            .nth(1)
            .or_else(|| err.split("expected ").nth(1))
            .unwrap_or_else(|| panic!("{table}: {err}"));
        let mut keys: Vec<String> = list
            .lines()
            .next()
            .unwrap_or("")
            .split(", ")
            .map(|k| k.trim().trim_matches('`').to_string())
            .filter(|k| !k.is_empty())
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn every_key_the_parser_accepts_is_documented_and_nothing_else() {
        let mut tops: Vec<String> = TABLES
            .iter()
            .filter(|t| !t.name.contains('.'))
            .map(|t| t.name.to_string())
            .collect();
        tops.sort();
        assert_eq!(accepted(""), tops, "the top-level tables");
        for t in TABLES {
            let mut documented: Vec<String> = t.keys.iter().map(|k| k.name.to_string()).collect();
            documented.sort();
            assert_eq!(accepted(t.name), documented, "[{}]", t.name);
        }
    }

    /// Each default as the parser fills it in, written back as TOML.
    #[test]
    fn every_default_is_the_parsers() {
        let cfg: super::super::Config = toml::from_str(BASE).unwrap();
        let written: toml::Table = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        let table = |path: &str| -> toml::Table {
            let mut v = toml::Value::Table(written.clone());
            for part in path.split('.') {
                v = match v {
                    toml::Value::Table(t) => t.get(part).cloned().unwrap(),
                    toml::Value::Array(a) => a[0].get(part).cloned().unwrap(),
                    other => panic!("{path}: {other:?}"),
                };
            }
            match v {
                toml::Value::Table(t) => t,
                toml::Value::Array(a) => a[0].as_table().unwrap().clone(),
                other => panic!("{path}: {other:?}"),
            }
        };
        // Keys BASE sets itself, and the sub-tables, are not defaults.
        let set = [
            "name",
            "interface",
            "vrid",
            "priority",
            "virtual_addresses",
            "server",
            "kind",
            "etcd",
            "ca",
            "mysql",
            "notify",
            "announce",
            "tls",
        ];
        for t in TABLES {
            let got = table(t.name);
            for k in t.keys.iter().filter(|k| !set.contains(&k.name)) {
                let parsed = got.get(k.name).map(|v| v.to_string());
                if k.default.is_empty() {
                    assert!(
                        parsed.is_none(),
                        "[{}] {}: documented without a default, the parser gives {parsed:?}",
                        t.name,
                        k.name
                    );
                } else {
                    assert_eq!(
                        parsed.as_deref(),
                        Some(k.default),
                        "[{}] {}",
                        t.name,
                        k.name
                    );
                }
            }
        }
    }

    /// docs/configuration.md is the rendering of this reference.
    #[test]
    fn the_docs_page_is_this_reference() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
        let want = markdown();
        if std::env::var_os("XVRRPD_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/configuration.md is stale: XVRRPD_BLESS=1 cargo test -p xvrrpd config::reference"
        );
    }

    #[test]
    fn the_man_page_names_every_key() {
        let page = roff("1.0");
        assert!(page.starts_with(".TH XVRRPD.TOML 5"));
        for t in TABLES {
            for k in t.keys {
                assert!(
                    page.contains(&format!("\\fB{}\\fR (", roff_text(k.name))),
                    "{}",
                    k.name
                );
            }
        }
        // No line may start with a roff control character by accident.
        assert!(page
            .lines()
            .filter(|l| l.starts_with('.'))
            .all(|l| [".TH", ".SH", ".TP"].iter().any(|m| l.starts_with(m))));
    }
}
