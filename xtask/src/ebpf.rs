//! `cargo xtask build-ebpf`: the one way the XDP object is built.
use std::process::Command;

use anyhow::Result;

use crate::{root, run_cmd};

/// Where the object lands; `agent/build.rs` embeds it from here.
pub const OBJECT: &str = "target/ebpf/bpfel-unknown-none/release/xvrrpd";

pub fn build() -> Result<()> {
    run_cmd(&mut nightly_cargo("build"))?;
    eprintln!("xtask: built {}", root().join(OBJECT).display());
    Ok(())
}

/// Lints the XDP program as it is built (nightly, BPF target), warnings denied.
pub fn clippy() -> Result<()> {
    run_cmd(nightly_cargo("clippy").args(["--", "-D", "warnings"]))
}

/// `cargo <sub>` for the XDP crate: nightly, bpfel-unknown-none, build-std, BTF.
fn nightly_cargo(sub: &str) -> Command {
    let root = root();
    let mut cmd = Command::new("rustup");
    cmd.current_dir(root.join("ebpf/xvrrpd-ebpf"))
        .args([
            "run",
            "nightly",
            "cargo",
            sub,
            "--locked",
            "--release",
            "--quiet",
        ])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(root.join("target/ebpf"))
        // BTF is required: the timer lives in a BTF-described map value.
        .env("RUSTFLAGS", "-Cdebuginfo=2 -Clink-arg=--btf")
        .env("PATH", crate::setup::path_with_tools());
    // The outer `cargo xtask` exports its own toolchain and flags; the nested nightly
    // build must not inherit them.
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTDOC",
        "CARGO",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_MAKEFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    cmd
}
