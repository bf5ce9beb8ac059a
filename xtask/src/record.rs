//! How every bench records what it measured: one summary table (printed, and appended to
//! BENCHMARKS.md under the date and the exact command), the raw reps as CSV under
//! `target/bench/`, and the worst rep beside the median ([`stats`]). The benches call
//! this; nothing here knows a bench.
use std::{io::Write as _, process::Command};

use anyhow::{bail, Result};

use crate::root;

/// (min, median, max) of the reps.
pub fn stats(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// A markdown table whose rows must have the header's cells.
pub struct Table {
    head: String,
    cells: usize,
    rows: Vec<String>,
}

/// The cells of a markdown row `| a | b |`.
fn cells(line: &str) -> usize {
    line.trim().trim_matches('|').split(" | ").count()
}

impl Table {
    /// `head` is the header row, `| fault | setup | outage ms |`.
    pub fn new(head: &str) -> Self {
        Self {
            head: head.trim().to_string(),
            cells: cells(head),
            rows: Vec::new(),
        }
    }

    /// One row, `| a | b |`; a row with another number of cells is a bench's bug.
    pub fn row(&mut self, line: String) -> Result<()> {
        if cells(&line) != self.cells {
            bail!(
                "table row with {} cells under a header of {}: {line}",
                cells(&line),
                self.cells
            );
        }
        self.rows.push(line.trim().to_string());
        Ok(())
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("{}\n|{}\n", self.head, "---|".repeat(self.cells));
        for r in &self.rows {
            s.push_str(r);
            s.push('\n');
        }
        s
    }
}

/// The raw reps: CSV rows with the header's fields.
pub struct Raw {
    head: String,
    rows: Vec<String>,
}

impl Raw {
    pub fn new(head: &str) -> Self {
        Self {
            head: head.trim().to_string(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, line: String) -> Result<()> {
        let (have, want) = (line.split(',').count(), self.head.split(',').count());
        if have != want {
            bail!("CSV row with {have} fields under a header of {want}: {line}");
        }
        self.rows.push(line);
        Ok(())
    }

    fn text(&self) -> String {
        let mut s = format!("{}\n", self.head);
        for r in &self.rows {
            s.push_str(r);
            s.push('\n');
        }
        s
    }
}

/// A table of an entry, with a heading above it and what it says below (both may be
/// empty).
pub struct Part<'a> {
    pub heading: &'a str,
    pub table: &'a Table,
    pub after: &'a str,
}

impl<'a> Part<'a> {
    pub fn table(table: &'a Table) -> Self {
        Self {
            heading: "",
            table,
            after: "",
        }
    }

    fn markdown(&self) -> String {
        let mut s = String::new();
        if !self.heading.is_empty() {
            s.push_str(&format!("### {}\n\n", self.heading));
        }
        s.push_str(&self.table.markdown());
        if !self.after.is_empty() {
            s.push_str(&format!("\n{}\n", self.after.trim()));
        }
        s
    }
}

/// One bench's section of BENCHMARKS.md.
pub struct Entry<'a> {
    /// After the date: `— {title}`.
    pub title: &'a str,
    /// Exactly what was run.
    pub command: &'a str,
    pub parts: &'a [Part<'a>],
    /// What the figures mean and how they were taken.
    pub notes: &'a str,
    /// `target/bench/{name}.csv`, when the reps are kept.
    pub raw: Option<(&'a str, &'a Raw)>,
}

/// Writes the CSV, prints the table and appends the section to BENCHMARKS.md.
pub fn record(e: Entry) -> Result<()> {
    let table = e
        .parts
        .iter()
        .map(Part::markdown)
        .collect::<Vec<_>>()
        .join("\n");
    let mut notes = e.notes.trim().to_string();
    if let Some((name, raw)) = e.raw {
        let dir = root().join("target/bench");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{name}.csv")), raw.text())?;
        notes.push_str(&format!(" Raw data: `target/bench/{name}.csv`."));
    }
    println!("{table}");
    append_benchmarks(&format!(
        "\n## {} — {}\n\nCommand: `{}`\n\n{table}\n{notes}\n",
        today()?,
        e.title,
        e.command
    ))
}

/// `YYYY-MM-DD HH:MM UTC` now.
fn today() -> Result<String> {
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()?;
    Ok(String::from_utf8_lossy(&date.stdout).trim().to_string())
}

fn append_benchmarks(entry: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root().join("BENCHMARKS.md"))?;
    f.write_all(entry.as_bytes())?;
    eprintln!("xtask: appended to BENCHMARKS.md");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_must_match_their_header() {
        let mut t = Table::new("| fault | outage ms |");
        t.row("| kill | 12 / 30 / 41 |".into()).unwrap();
        assert!(t.row("| kill | 12 | 3 |".into()).is_err());
        assert_eq!(
            t.markdown(),
            "| fault | outage ms |\n|---|---|\n| kill | 12 / 30 / 41 |\n"
        );
        let mut r = Raw::new("fault,rep,outage_ms");
        r.row("kill,0,12.5".into()).unwrap();
        assert!(r.row("kill,0".into()).is_err());
        assert_eq!(r.text(), "fault,rep,outage_ms\nkill,0,12.5\n");
        assert_eq!(stats(&mut [3.0, 1.0, 2.0]), (1.0, 2.0, 3.0));
    }
}
