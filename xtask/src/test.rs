//! `cargo xtask test`: everything CI runs.
use std::process::Command;

use anyhow::Result;

use crate::{require_root, root, run_cmd};

/// The labs' agent answers the test-only control requests (`stall-engine`); every cargo
/// command of the test run that builds the agent builds it so, lest one rebuild the
/// binary without (the lab crate does not depend on the agent: it runs the binary).
const FAULT_INJECTION: &str = "xvrrpd/fault-injection";

/// Builds the `xvrrpd` binary the lab and integration tests run.
pub fn build_agent() -> Result<()> {
    run_cmd(
        Command::new("cargo")
            .current_dir(root())
            .env_remove("RUSTUP_TOOLCHAIN")
            .args(["build", "--quiet", "--package", "xvrrpd", "--bin", "xvrrpd"])
            .args(["--features", FAULT_INJECTION]),
    )
}

#[derive(clap::Args, Default)]
pub struct TestArgs {
    /// Run only the tests whose name contains this (cargo test's filter, e.g.
    /// `chaos::master_link_flapping`); skips lints and the package build.
    pub filter: Option<String>,
    /// Do not install prerequisites (`cargo xtask setup`) first.
    #[arg(long)]
    pub no_setup: bool,
}

/// The crate whose tests start namespace labs (MariaDB pairs, agents, keepalived): run one
/// test at a time, so two labs never starve each other on a small machine.
const LAB_CRATE: &str = "xvrrpd-tests";

pub fn run(args: TestArgs) -> Result<()> {
    require_root("cargo xtask test")?;
    if !args.no_setup {
        crate::setup::run()?;
    }
    crate::ebpf::build()?;
    let root = root();
    let cargo = || {
        let mut c = Command::new("cargo");
        c.current_dir(&root).env_remove("RUSTUP_TOOLCHAIN");
        c
    };
    if let Some(filter) = &args.filter {
        build_agent()?;
        let (passed, failed) = tests(&root, Some(filter))?;
        return verdict(passed, failed);
    }
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
    crate::ebpf::clippy()?;
    eprintln!("xtask: building");
    run_cmd(cargo().args([
        "build",
        "--quiet",
        "--workspace",
        "--bins",
        "--features",
        FAULT_INJECTION,
    ]))?;
    eprintln!("xtask: running every test (privileged ones included)");
    let (passed, failed) = tests(&root, None)?;
    verdict(passed, failed)?;
    leftovers()?;
    eprintln!("xtask: the Debian package builds and holds what it should");
    crate::deb::build()?;
    Ok(())
}

/// Every test but the labs (in parallel), then the labs one at a time; `filter` narrows
/// both. Returns (passed, failed) over every test binary.
fn tests(root: &std::path::Path, filter: Option<&str>) -> Result<(u64, u64)> {
    let cargo_test = |extra: &[&str], harness: &[&str]| {
        let mut c = Command::new("cargo");
        c.current_dir(root)
            .env_remove("RUSTUP_TOOLCHAIN")
            .env("XVRRPD_BIN", root.join("target/debug/xvrrpd"))
            .args(["test", "--no-fail-fast"])
            .args(extra)
            .arg("--")
            .arg("--include-ignored")
            .args(harness)
            .args(filter);
        c
    };
    let (p1, f1) = run_counting(&mut cargo_test(
        // The agent's package is among these: its binary keeps the labs' feature.
        &[
            "--workspace",
            "--exclude",
            LAB_CRATE,
            "--features",
            FAULT_INJECTION,
        ],
        &[],
    ))?;
    let (p2, f2) = run_counting(&mut cargo_test(
        &["--package", LAB_CRATE],
        &["--test-threads=1"],
    ))?;
    Ok((p1 + p2, f1 + f2))
}

/// One closing line over every test binary (cargo's last line is often a doc-test binary
/// with nothing in it), and failure when anything failed or nothing ran.
fn verdict(passed: u64, failed: u64) -> Result<()> {
    println!("tests: {passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        anyhow::bail!("{failed} test(s) failed, {passed} passed");
    }
    Ok(())
}

/// Runs `cargo test`, echoing its output, and adds up its `test result:` lines.
fn run_counting(cmd: &mut Command) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader};
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn()?;
    let (mut passed, mut failed) = (0, 0);
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            passed += count(rest, " passed");
            failed += count(rest, " failed");
        }
    }
    let status = child.wait()?;
    if !status.success() && failed == 0 {
        anyhow::bail!("cargo test failed with {status}");
    }
    Ok((passed, failed))
}

/// The number before `label` in a `test result:` line (`ok. 12 passed; 0 failed; ...`).
fn count(line: &str, label: &str) -> u64 {
    line.split(';')
        .find_map(|part| {
            part.trim()
                .trim_start_matches("ok.")
                .trim_start_matches("FAILED.")
                .trim()
                .strip_suffix(label.trim())
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
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

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_cargo_result_lines() {
        let l = "ok. 12 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(count(l, " passed"), 12);
        assert_eq!(count(l, " failed"), 0);
        assert_eq!(count("FAILED. 8 passed; 2 failed; 0 ignored", " failed"), 2);
    }
}
