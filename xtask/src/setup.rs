//! `cargo xtask setup`: install what a fresh machine lacks, quietly when nothing is missing.
use std::{ffi::OsString, process::Command};

use anyhow::{Context, Result};

use crate::run_cmd;

/// Debian packages: LLVM 22 for bpf-linker, and the real peers the tests run.
const PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "keepalived",
    "mariadb-server",
    "iproute2",
    "tcpdump",
    "iputils-ping",
    // Metrics scrapes in the tests; `systemd-analyze verify` of the unit.
    "curl",
    "systemd",
    // Packet loss in the fault suite (the kernel here has no netem).
    "nftables",
    // Host load for `cargo xtask bench load`.
    "stress-ng",
    // A real client with default settings in the lab (`--client pymysql`) and the tests.
    "python3-pymysql",
    // The witness: a real etcd cluster in the lab (`--witness`) and the tests, with TLS
    // certificates from a lab CA made by openssl.
    "etcd-server",
    "openssl",
    // A real Prometheus scraping the agents, and promtool linting the endpoint and the
    // documented alert rules.
    "prometheus",
    // The lab's timeline picture as a PNG beside its SVG.
    "librsvg2-bin",
    // Debian's checks on the package `cargo xtask deb` builds.
    "lintian",
    // `cargo xtask deploy-lab`: a Debian root filesystem, booted with systemd-nspawn.
    "debootstrap",
    "systemd-container",
];
const BPF_LINKER_VERSION: &str = "0.13.0";
const CARGO_DEB_VERSION: &str = "3.8.0";

/// PATH with LLVM 22 and cargo's bin directory first.
pub fn path_with_tools() -> OsString {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))
        .map(|p| p.join("bin"))
        .unwrap_or_default();
    let mut parts = vec![cargo_bin, "/usr/lib/llvm-22/bin".into()];
    if let Some(p) = std::env::var_os("PATH") {
        parts.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(parts).expect("valid PATH")
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

pub fn run() -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if !missing.is_empty() {
        eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
        run_cmd(Command::new("apt-get").args(["update", "-qq"]))?;
        run_cmd(
            Command::new("apt-get")
                // With recommends: the set the build and tests were verified with.
                .args(["install", "-y", "-qq"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
        .context("apt-get install (are you root?)")?;
    }

    let have_linker = Command::new("bpf-linker")
        .arg("--version")
        .env("PATH", path_with_tools())
        .output()
        .map(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION)
        })
        .unwrap_or(false);
    if !have_linker {
        eprintln!(
            "xtask: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (a few minutes)"
        );
        run_cmd(
            Command::new("cargo")
                .args([
                    "install",
                    "--quiet",
                    "bpf-linker",
                    "--version",
                    BPF_LINKER_VERSION,
                ])
                .args(["--no-default-features", "--features", "llvm-22"])
                .env("PATH", path_with_tools())
                .env_remove("RUSTUP_TOOLCHAIN"),
        )?;
    }

    install_cargo_tool("cargo-deb", "deb", CARGO_DEB_VERSION)?;

    let components = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .context("rustup")?;
    if !String::from_utf8_lossy(&components.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        eprintln!("xtask: adding rust-src to the nightly toolchain");
        run_cmd(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    // Oracle MySQL 9.7 for the labs and tests (Debian unstable's, in its own root).
    xvrrpd_tests::db::mysql_root()?;
    Ok(())
}

/// Installs `cargo-<sub>` at `version` (from crates.io, `--locked`) unless that version
/// already answers `cargo <sub> --version`.
pub fn install_cargo_tool(krate: &str, sub: &str, version: &str) -> Result<()> {
    let have = Command::new("cargo")
        .args([sub, "--version"])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(version))
        .unwrap_or(false);
    if have {
        return Ok(());
    }
    eprintln!("xtask: installing {krate} {version}");
    run_cmd(
        Command::new("cargo")
            .args([
                "install",
                "--quiet",
                "--locked",
                krate,
                "--version",
                version,
            ])
            .env_remove("RUSTUP_TOOLCHAIN"),
    )
}
