//! A failover as a picture: every client write as a point (time from the fault; the time
//! since the client's previous write ended, which is the write's latency plus the
//! client's 2 ms pause, on a log scale; which server acknowledged it), failed writes as
//! red crosses, the fault and each step of the write instance (transitions, fences, the
//! write key, writable) as vertical lines, the longest write outage shaded. Several
//! panels (keepalived above xvrrpd) share one time axis.
//!
//! Plain SVG written here: the viewer renders the text, so no font or plotting library
//! is needed; a PNG beside it through `rsvg-convert` (librsvg2-bin) when installed.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use xvrrpd_core::events::Direction;

use crate::dblab::LabReport;

const WIDTH: f64 = 1200.0;
/// The chart's height in a panel; the list of marks goes below it.
const CHART: f64 = 340.0;
/// One line of the list of marks (two columns).
const LINE: f64 = 14.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 46.0;
const BOTTOM: f64 = 44.0;
/// Latency axis, ms (log scale); values outside are drawn at the edge.
const Y_MIN: f64 = 0.5;
const Y_MAX: f64 = 20_000.0;

/// One step of the write instance, a dashed line coloured by where it takes the role.
pub struct Mark {
    /// From the fault.
    pub ms: f64,
    pub what: String,
    pub direction: Direction,
}

/// One panel: a lab run seen from its client and its agents.
pub struct Panel {
    pub title: String,
    /// (ms from the fault, ms since the previous write ended, server that acknowledged).
    pub writes: Vec<(f64, f64, Option<u32>)>,
    /// The write instance's steps.
    pub marks: Vec<Mark>,
    /// The longest stretch without an acknowledged write after the fault (ms from it).
    pub outage: Option<(f64, f64)>,
}

impl Panel {
    pub fn from_report(title: &str, r: &LabReport) -> Self {
        let ms = |ns: u64| (ns as f64 - r.fault_ns as f64) / 1e6;
        let mut writes = Vec::with_capacity(r.writes.len());
        let mut prev: Option<u64> = None;
        for &(done, server) in &r.writes {
            if let Some(p) = prev {
                writes.push((ms(done), (done.saturating_sub(p)) as f64 / 1e6, server));
            }
            prev = Some(done);
        }
        // The report's outage (the longest gap between two acknowledged writes ending
        // after the fault), located among the writes.
        let mut acked: Vec<f64> = writes
            .iter()
            .filter(|w| w.2.is_some())
            .map(|w| w.0)
            .collect();
        acked.sort_by(f64::total_cmp);
        let outage = acked
            .windows(2)
            .map(|p| (p[0], p[1]))
            .find(|(a, b)| *b > 0.0 && b - a >= r.outage_ms - 0.5);
        let first = writes.first().map_or(f64::MIN, |w| w.0);
        // The write instance's steps, as its agents' streams recorded them.
        let marks = r
            .events
            .iter()
            .filter(|s| s.record.instance() == Some("write"))
            .filter_map(|s| Some((ms(s.record.ts_ns()?), s)))
            .filter(|(t, _)| *t >= first)
            .map(|(t, s)| Mark {
                ms: t,
                what: s.told.replacen(" xvrrpd write", "", 1),
                direction: s.record.direction(),
            })
            .collect();
        Self {
            title: title.to_string(),
            writes,
            marks,
            outage,
        }
    }
}

/// The panels stacked on one time axis, as an SVG document.
pub fn svg(panels: &[Panel]) -> String {
    let (mut x0, mut x1) = (f64::MAX, f64::MIN);
    for p in panels {
        for w in &p.writes {
            x0 = x0.min(w.0);
            x1 = x1.max(w.0);
        }
    }
    if x0 >= x1 {
        (x0, x1) = (-1000.0, 1000.0);
    }
    let heights: Vec<f64> = panels.iter().map(panel_height).collect();
    let height: f64 = heights.iter().sum();
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    s.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    let mut top = 0.0;
    for (p, h) in panels.iter().zip(&heights) {
        panel(&mut s, p, top, (x0, x1));
        top += h;
    }
    s.push_str("</svg>\n");
    s
}

fn panel_height(p: &Panel) -> f64 {
    CHART + (p.marks.len().div_ceil(2) as f64) * LINE + 10.0
}

fn panel(s: &mut String, p: &Panel, top: f64, (x0, x1): (f64, f64)) {
    let (l, r) = (LEFT, WIDTH - RIGHT);
    let (t, b) = (top + TOP, top + CHART - BOTTOM);
    let x = |ms: f64| l + (ms - x0) / (x1 - x0) * (r - l);
    let y = |lat: f64| {
        let v = lat.clamp(Y_MIN, Y_MAX).log10();
        b - (v - Y_MIN.log10()) / (Y_MAX.log10() - Y_MIN.log10()) * (b - t)
    };
    let _ = write!(
        s,
        r#"<text x="{l}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
        top + 20.0,
        esc(&p.title)
    );
    if let Some((a, z)) = p.outage {
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{t}" width="{:.1}" height="{}" fill="#d62728" fill-opacity="0.12"/><text x="{:.1}" y="{}" fill="#d62728">no acknowledged write for {:.0} ms</text>"##,
            x(a),
            (x(z) - x(a)).max(1.0),
            b - t,
            x(a) + 3.0,
            t + 12.0,
            z - a
        );
    }
    // Axes and grid: decades of latency, seconds of time.
    let _ = write!(
        s,
        r##"<rect x="{l}" y="{t}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
        r - l,
        b - t
    );
    let mut dec = Y_MIN;
    while dec <= Y_MAX {
        for m in [1.0, 2.0, 5.0] {
            let v = dec * m;
            if !(Y_MIN..=Y_MAX).contains(&v) {
                continue;
            }
            let _ = write!(
                s,
                r##"<line x1="{l}" x2="{r}" y1="{0:.1}" y2="{0:.1}" stroke="#ddd"/><text x="{1}" y="{2:.1}" text-anchor="end">{3}</text>"##,
                y(v),
                l - 4.0,
                y(v) + 4.0,
                fmt_ms(v)
            );
        }
        dec *= 10.0;
    }
    let step = tick_step(x1 - x0);
    let mut tick = (x0 / step).ceil() * step;
    while tick <= x1 {
        let _ = write!(
            s,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{t}" y2="{b}" stroke="#eee"/><text x="{0:.1}" y="{1}" text-anchor="middle">{2}</text>"##,
            x(tick),
            b + 14.0,
            tick / 1000.0
        );
        tick += step;
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds from the fault</text><text transform="translate(16 {}) rotate(-90)" text-anchor="middle">ms since the previous write</text>"#,
        (l + r) / 2.0,
        b + 32.0,
        (t + b) / 2.0
    );
    // The fault and the write instance's steps.
    let _ = write!(
        s,
        r##"<line x1="{0:.1}" x2="{0:.1}" y1="{t}" y2="{b}" stroke="#d62728" stroke-width="2"/><text x="{1:.1}" y="{2}" fill="#d62728" font-weight="bold">fault</text>"##,
        x(0.0),
        x(0.0) + 3.0,
        b - 4.0
    );
    // Each step a numbered dashed line, the numbers explained below the chart.
    for (
        k,
        Mark {
            ms,
            what,
            direction,
        },
    ) in p.marks.iter().enumerate()
    {
        let colour = match direction {
            Direction::Loses => "#9467bd",
            Direction::Gains => "#2ca02c",
            Direction::Neither => "#7f7f7f",
        };
        let n = k + 1;
        let _ = write!(
            s,
            r#"<line x1="{0:.1}" x2="{0:.1}" y1="{t}" y2="{b}" stroke="{colour}" stroke-dasharray="4 3"/><text x="{0:.1}" y="{1:.1}" text-anchor="middle" fill="{colour}" font-size="10" font-weight="bold">{n}</text>"#,
            x(*ms),
            t - 3.0 - (k % 2) as f64 * 10.0,
        );
        let (col, row) = (k % 2, k / 2);
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{colour}" font-size="10">{n}. {:.1} ms: {}</text>"#,
            l + col as f64 * (r - l) / 2.0,
            top + CHART + row as f64 * LINE,
            ms,
            esc(what)
        );
    }
    // The writes: acknowledged by db1 (blue), db2 (orange); failed (red cross).
    for &(ms, lat, server) in &p.writes {
        let (cx, cy) = (x(ms), y(lat));
        match server {
            Some(1) => circle(s, cx, cy, "#1f77b4"),
            Some(_) => circle(s, cx, cy, "#ff7f0e"),
            None => {
                let _ = write!(
                    s,
                    r##"<path d="M{:.1} {:.1}l6 6m0 -6l-6 6" stroke="#d62728" stroke-width="1.5"/>"##,
                    cx - 3.0,
                    cy - 3.0
                );
            }
        }
    }
    // Legend.
    let lx = r - 330.0;
    circle(s, lx, top + 16.0, "#1f77b4");
    circle(s, lx + 110.0, top + 16.0, "#ff7f0e");
    let _ = write!(
        s,
        r##"<text x="{}" y="{}">acked by db1</text><text x="{}" y="{}">acked by db2</text><path d="M{:.1} {:.1}l6 6m0 -6l-6 6" stroke="#d62728" stroke-width="1.5"/><text x="{}" y="{}">failed</text>"##,
        lx + 6.0,
        top + 20.0,
        lx + 116.0,
        top + 20.0,
        lx + 217.0,
        top + 13.0,
        lx + 228.0,
        top + 20.0
    );
}

fn circle(s: &mut String, cx: f64, cy: f64, fill: &str) {
    let _ = write!(
        s,
        r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="2.2" fill="{fill}" fill-opacity="0.8"/>"#
    );
}

fn fmt_ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{} s", v / 1000.0)
    } else {
        format!("{v}")
    }
}

/// A round step for about ten time ticks (ms).
fn tick_step(span: f64) -> f64 {
    let raw = span / 10.0;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes `NAME.svg` (and `NAME.png` when rsvg-convert is there) under `dir`; the SVG's
/// path.
pub fn save(dir: &Path, name: &str, panels: &[Panel]) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let path = dir.join(format!("{name}.svg"));
    std::fs::write(&path, svg(panels)).with_context(|| path.display().to_string())?;
    let png = dir.join(format!("{name}.png"));
    let _ = std::process::Command::new("rsvg-convert")
        .arg("-o")
        .arg(&png)
        .arg(&path)
        .status();
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panel_draws_its_writes_marks_and_outage() {
        let p = Panel {
            title: "host-crash <xvrrpd>".into(),
            writes: vec![
                (-100.0, 3.0, Some(1)),
                (-50.0, 3.0, Some(1)),
                (240.0, 250.0, None),
                (300.0, 350.0, Some(2)),
                (310.0, 3.0, Some(2)),
            ],
            marks: vec![
                Mark {
                    ms: 40.0,
                    what: "db2 BACKUP -> MASTER (master_down)".into(),
                    direction: Direction::Gains,
                },
                Mark {
                    ms: 45.0,
                    what: "db1 read_only = ON".into(),
                    direction: Direction::Loses,
                },
            ],
            outage: Some((0.0, 300.0)),
        };
        let s = svg(&[p]);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert_eq!(
            s.matches("<circle").count(),
            4 + 2,
            "4 acked + 2 in the legend"
        );
        assert_eq!(
            s.matches("l6 6m0 -6l-6 6").count(),
            1 + 1,
            "1 failed + legend"
        );
        assert!(s.contains("no acknowledged write for 300 ms"));
        assert!(s.contains("host-crash &lt;xvrrpd&gt;"));
        assert!(s.contains("BACKUP -&gt; MASTER"));
        // Coloured by where the step takes the role, not by its wording.
        assert!(
            s.contains(r##"fill="#2ca02c" font-size="10">1. 40.0 ms"##),
            "{s}"
        );
        assert!(
            s.contains(r##"fill="#9467bd" font-size="10">2. 45.0 ms"##),
            "{s}"
        );
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(8000.0), 1000.0);
        assert_eq!(tick_step(1500.0), 200.0);
    }
}
