//! `cargo xtask deb`: the Debian package, built with cargo-deb from the metadata in
//! agent/Cargo.toml, with a man page generated from the CLI definitions.
use std::{path::PathBuf, process::Command};

use anyhow::{bail, Context, Result};

use crate::{root, run_cmd};

/// What the package must contain (paths as `dpkg-deb -c` lists them).
const CONTENTS: &[&str] = &[
    "./usr/sbin/xvrrpd",
    "./usr/lib/systemd/system/xvrrpd.service",
    "./etc/xvrrpd/xvrrpd.toml.example",
    "./etc/xvrrpd/db2.toml.example",
    "./usr/share/man/man8/xvrrpd.8.gz",
    "./usr/share/man/man8/xvrrpd-run.8.gz",
    "./usr/share/man/man8/xvrrpd-check.8.gz",
    "./usr/share/man/man5/xvrrpd.toml.5.gz",
    "./usr/share/doc/xvrrpd/configuration.md",
    "./usr/share/doc/xvrrpd/events.md",
    "./usr/share/doc/xvrrpd/metrics.md",
    "./usr/share/doc/xvrrpd/witness.md",
    "./usr/share/doc/xvrrpd/failure-modes.md",
    "./usr/share/doc/xvrrpd/grafana-xvrrpd.json",
    "./usr/share/doc/xvrrpd/changelog.Debian.gz",
    "./usr/share/doc/xvrrpd/copyright",
];

/// The `NAME(8)` pages a roff page refers to (clap_mangen writes `\\fBxvrrpd\\-run\\fR(8)`).
fn referred_pages(roff: &str) -> Vec<String> {
    let plain = roff
        .replace("\\fB", "")
        .replace("\\fR", "")
        .replace("\\-", "-");
    plain
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter_map(|w| w.strip_suffix("(8)"))
        .filter(|w| w.starts_with("xvrrpd"))
        .map(String::from)
        .collect()
}

/// Builds the package; returns its path after checking its contents.
pub fn build() -> Result<PathBuf> {
    crate::ebpf::build()?;
    let root = root();
    let cargo = || {
        let mut c = Command::new("cargo");
        c.current_dir(&root).env_remove("RUSTUP_TOOLCHAIN");
        c
    };
    eprintln!("xtask: release build of xvrrpd");
    run_cmd(cargo().args([
        "build",
        "--quiet",
        "--release",
        "--package",
        "xvrrpd",
        "--bin",
        "xvrrpd",
    ]))?;
    // The man pages come from the binary's own clap definitions: xvrrpd.8 and one per
    // subcommand, each page it refers to shipped.
    let dir = root.join("target/man");
    let _ = std::fs::remove_dir_all(&dir);
    run_cmd(
        Command::new(root.join("target/release/xvrrpd"))
            .arg("man")
            .arg(&dir),
    )?;
    let mut pages: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    pages.sort();
    for page in &pages {
        let text = std::fs::read_to_string(dir.join(page))?;
        for referred in referred_pages(&text) {
            if !pages.contains(&format!("{referred}.8")) {
                bail!("{page} refers to {referred}(8), which is not generated");
            }
        }
    }
    for page in &pages {
        run_cmd(Command::new("gzip").args(["-9nf"]).arg(dir.join(page)))?;
    }
    eprintln!("xtask: cargo deb");
    let out = cargo()
        .args(["deb", "--package", "xvrrpd", "--no-build", "--strip"])
        .output()
        .context("cargo deb (cargo xtask setup installs it)")?;
    if !out.status.success() {
        bail!(
            "cargo deb failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let deb = PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or(""),
    );
    let list = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .context("dpkg-deb -c")?;
    let listing = String::from_utf8_lossy(&list.stdout);
    for want in CONTENTS {
        if !listing.lines().any(|l| l.ends_with(want)) {
            bail!("{} lacks {want}:\n{listing}", deb.display());
        }
    }
    let info = Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .output()
        .context("dpkg-deb -I")?;
    let info = String::from_utf8_lossy(&info.stdout);
    if !info.contains("Package: xvrrpd") || !info.contains("Depends:") {
        bail!("{}: unexpected control data:\n{info}", deb.display());
    }
    lintian(&deb)?;
    eprintln!(
        "xtask: {} ok ({} files checked, lintian: no errors)",
        deb.display(),
        CONTENTS.len()
    );
    Ok(deb)
}

/// Debian's own checks: any error fails the build (warnings are printed).
fn lintian(deb: &std::path::Path) -> Result<()> {
    let out = Command::new("lintian")
        .args(["--tag-display-limit", "0"])
        .arg(deb)
        .output()
        .context("lintian (cargo xtask setup installs it)")?;
    // 0: clean, 1: tags at error level; anything else: lintian itself failed.
    if !matches!(out.status.code(), Some(0 | 1)) {
        bail!(
            "lintian failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let said = String::from_utf8_lossy(&out.stdout);
    for line in said.lines().filter(|l| l.starts_with("W: ")) {
        eprintln!("xtask: lintian {line}");
    }
    let errors: Vec<&str> = said.lines().filter(|l| l.starts_with("E: ")).collect();
    if !errors.is_empty() {
        bail!(
            "lintian finds errors in {}:\n{}",
            deb.display(),
            errors.join("\n")
        );
    }
    Ok(())
}
