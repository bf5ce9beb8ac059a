//! What the conformance harnesses share: the scenario files of a folder, read as JSON
//! lines, all run, every failure reported at once.
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The `.jsonl` files under `dir` (relative to this crate), in name order.
fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    files
}

/// Runs every scenario of `dir` (at least `at_least` of them: a folder emptied by mistake
/// must not pass) and fails naming each file that did not hold.
pub fn run_all(dir: &str, at_least: usize, run: impl Fn(&Path) -> Result<(), String>) {
    let files = files(dir);
    assert!(files.len() >= at_least, "scenarios missing from {dir}");
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| run(f).err().map(|e| format!("{}: {e}", f.display())))
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// A scenario's objects with their line numbers, blank lines and comments left out.
pub fn lines(path: &Path) -> Result<Vec<(usize, Value)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if v.get("comment").is_none() {
            out.push((n + 1, v));
        }
    }
    Ok(out)
}
