//! The core holds decisions and nothing else: its dependency tree (as `cargo tree`
//! resolves it for this crate alone, features included) has no runtime, database
//! client, netlink, eBPF loader or HTTP stack. A module that needs one belongs to the
//! agent, which carries out what the core decides.
use std::process::Command;

const IO_CRATES: [&str; 9] = [
    "tokio",
    "mysql_async",
    "aya",
    "rtnetlink",
    "hyper",
    "socket2",
    "libc",
    "rustls",
    "etcd-client",
];

#[test]
fn the_core_depends_on_no_io_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "xvrrpd-core",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("xvrrpd-core"), "{tree}");
    let found: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| IO_CRATES.contains(name))
        .collect();
    assert!(
        found.is_empty(),
        "xvrrpd-core depends on {found:?}: move the code that needs them to the agent\n{tree}"
    );
}
