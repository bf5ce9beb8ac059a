//! `cargo xtask test`: everything CI runs.
use std::process::Command;

use anyhow::Result;

use crate::{require_root, root, run_cmd};

/// Builds the `xvrrpd` binary the lab and integration tests run.
pub fn build_agent() -> Result<()> {
    run_cmd(
        Command::new("cargo")
            .current_dir(root())
            .env_remove("RUSTUP_TOOLCHAIN")
            .args(["build", "--quiet", "--package", "xvrrpd", "--bin", "xvrrpd"]),
    )
}

pub fn run() -> Result<()> {
    require_root("cargo xtask test")?;
    crate::setup::run()?;
    crate::ebpf::build()?;
    let root = root();
    let cargo = || {
        let mut c = Command::new("cargo");
        c.current_dir(&root).env_remove("RUSTUP_TOOLCHAIN");
        c
    };
    eprintln!("xtask: fmt and clippy");
    run_cmd(cargo().args(["fmt", "--all", "--check"]))?;
    run_cmd(cargo().args([
        "fmt",
        "--check",
        "--manifest-path",
        "ebpf/xvrrpd-ebpf/Cargo.toml",
    ]))?;
    run_cmd(cargo().args([
        "clippy",
        "--quiet",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    eprintln!("xtask: building");
    run_cmd(cargo().args(["build", "--quiet", "--workspace", "--bins"]))?;
    eprintln!("xtask: running every test (privileged ones included)");
    run_cmd(
        cargo()
            .args(["test", "--workspace", "--", "--include-ignored"])
            .env("XVRRPD_BIN", root.join("target/debug/xvrrpd")),
    )?;
    leftovers()
}

/// Reports namespaces a test left behind (every fixture must clean up). A warning, not a
/// failure: another run on the same machine may own them.
fn leftovers() -> Result<()> {
    let out = Command::new("ip").args(["netns", "list"]).output()?;
    let left: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("xv"))
        .map(|l| l.split_whitespace().next().unwrap_or(l).to_string())
        .collect();
    if !left.is_empty() {
        eprintln!("xtask: warning: namespaces named xv* remain after the tests: {left:?}");
    }
    Ok(())
}
