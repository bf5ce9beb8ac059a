//! `cargo xtask fuzz [--seconds N] [TARGET...]`: runs the cargo-fuzz targets in fuzz/,
//! each from its committed seeds (fuzz/seeds/TARGET) plus the corpus grown so far
//! (target/fuzz-corpus/TARGET, not committed). A crash fails the command and leaves its
//! input in fuzz/artifacts/TARGET/ — turn it into a regression test, then delete it.
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::root;

pub const TARGETS: &[&str] = &[
    "vrrp_codec",
    "config_toml",
    "keepalived_import",
    "datapath_event",
    "control_request",
];
const CARGO_FUZZ_VERSION: &str = "0.13.2";

#[derive(clap::Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Targets to run (all when none).
    targets: Vec<String>,
}

pub fn run(args: FuzzArgs) -> Result<()> {
    crate::setup::run()?;
    crate::setup::install_cargo_tool("cargo-fuzz", "fuzz", CARGO_FUZZ_VERSION)?;
    // The agent library embeds the XDP object.
    crate::ebpf::build()?;
    let root = root();
    let targets: Vec<&str> = if args.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        for t in &args.targets {
            if !TARGETS.contains(&t.as_str()) {
                bail!("unknown fuzz target {t:?}: one of {TARGETS:?}");
            }
        }
        args.targets.iter().map(String::as_str).collect()
    };
    let mut failed = Vec::new();
    for t in targets {
        let corpus = root.join("target/fuzz-corpus").join(t);
        std::fs::create_dir_all(&corpus)?;
        eprintln!("xtask: fuzzing {t} for {} s", args.seconds);
        let status = Command::new("rustup")
            .current_dir(root.join("fuzz"))
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .args(["run", "nightly", "cargo", "fuzz", "run", t])
            .arg(&corpus)
            .arg(root.join("fuzz/seeds").join(t))
            .args([
                "--",
                &format!("-max_total_time={}", args.seconds),
                "-max_len=4096",
            ])
            .status()
            .context("cargo fuzz (nightly)")?;
        if !status.success() {
            failed.push(t);
        }
    }
    if !failed.is_empty() {
        bail!("fuzz targets found crashes: {failed:?} (inputs in fuzz/artifacts/)");
    }
    eprintln!("xtask: fuzzing found nothing");
    Ok(())
}
