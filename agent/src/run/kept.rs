//! What an instance keeps for the next agent on this node: the core's [`Memory`] (was it
//! master, its anti-flap hold, did it leave mastership without comparing its data), in
//! the state directory (`/var/lib/xvrrpd`), one file per node and instance.
//!
//! It must survive a reboot, not only an agent restart: an old master that reboots
//! comes back read-only, compares with the peer and stays a backup inside anti-flap,
//! exactly as after an agent restart. The core counts time on the monotonic clock,
//! which a reboot restarts; so the file also names the boot it was written in and the
//! hold's end on the wall clock. Within the same boot the monotonic values stand; after
//! a reboot the hold is carried over by the wall clock, never longer than `anti_flap`
//! (a clock stepped meanwhile cannot stretch it).
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::role::Memory;

/// The file as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Kept {
    /// Counts the writes: of the two slots, the higher one is the newer (absent in files
    /// written before the slots: 0).
    #[serde(default)]
    generation: u64,
    /// `/proc/sys/kernel/random/boot_id` when written (None: unreadable).
    boot_id: Option<String>,
    /// The anti-flap hold's end on the wall clock (ms since the epoch; 0: none).
    hold_until_unix_ms: u64,
    #[serde(flatten)]
    memory: Memory,
}

/// Where `instance` of `node` keeps its state under `dir`. Keyed by both: two agents
/// sharing a directory (two lab nodes on one host) never read each other's state.
pub fn path(dir: &Path, node: &str, instance: &str) -> PathBuf {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    dir.join(format!("{}-{}.state", clean(node), clean(instance)))
}

/// The two slots of `path`, written in turn: each write overwrites the older one in
/// place, so a write torn by a crash leaves the newer intact. (A temporary file renamed
/// over the old one cost a new inode per write: with 1 000 instances changing state at
/// once, ext4's search for a free inode past the recently deleted ones made each write
/// slower than the last, most of an agent's stop.)
fn slots(path: &Path) -> [PathBuf; 2] {
    let mut alt = path.as_os_str().to_owned();
    alt.push(".alt");
    [path.to_path_buf(), PathBuf::from(alt)]
}

/// The slot's content, if it parses (`None`: absent; an unreadable one is warned about).
fn read_slot(path: &Path) -> Option<Kept> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str::<Kept>(&text) {
        Ok(k) => Some(k),
        Err(e) => {
            warn!(file = %path.display(), error = %e, "ignoring an unreadable state file");
            None
        }
    }
}

/// The newer readable slot, and its index.
fn newest(path: &Path) -> Option<(usize, Kept)> {
    slots(path)
        .iter()
        .enumerate()
        .filter_map(|(i, p)| read_slot(p).map(|k| (i, k)))
        .max_by_key(|(_, k)| k.generation)
}

/// The [`Memory`] a previous agent left, in this boot's monotonic terms (unreadable
/// counts as none, with a warning).
pub fn recall(path: &Path, anti_flap: Duration) -> Option<Memory> {
    let (_, k) = newest(path)?;
    Some(translate(
        k,
        boot_id().as_deref(),
        crate::net::monotonic_ns(),
        unix_ms(),
        anti_flap,
    ))
}

/// Writes `m` whole, over the older slot.
pub fn remember(path: &Path, m: Memory) -> std::io::Result<()> {
    let now = crate::net::monotonic_ns();
    let left = m.hold_until_ns.saturating_sub(now);
    let (slot, generation) = match newest(path) {
        Some((i, k)) => (1 - i, k.generation + 1),
        None => (0, 1),
    };
    let kept = Kept {
        generation,
        boot_id: boot_id(),
        hold_until_unix_ms: if left > 0 {
            unix_ms() + left / 1_000_000
        } else {
            0
        },
        memory: m,
    };
    std::fs::write(&slots(path)[slot], serde_json::to_string(&kept)?)
}

/// The kept memory in this boot's terms. Another boot (or an unknown one): the
/// monotonic hold means nothing here; what was left of it on the wall clock is carried
/// over, at most `anti_flap`.
fn translate(
    k: Kept,
    boot: Option<&str>,
    now_ns: u64,
    now_unix_ms: u64,
    anti_flap: Duration,
) -> Memory {
    let same_boot = boot.is_some() && k.boot_id.as_deref() == boot;
    if same_boot {
        return k.memory;
    }
    let left_ms = k
        .hold_until_unix_ms
        .saturating_sub(now_unix_ms)
        .min(anti_flap.as_millis() as u64);
    Memory {
        hold_until_ns: if left_ms > 0 {
            now_ns + left_ms * 1_000_000
        } else {
            0
        },
        ..k.memory
    }
}

/// This boot's id, read once.
fn boot_id() -> Option<String> {
    static ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
    .clone()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn kept(boot: &str, hold_unix_ms: u64, m: Memory) -> Kept {
        Kept {
            generation: 1,
            boot_id: Some(boot.into()),
            hold_until_unix_ms: hold_unix_ms,
            memory: m,
        }
    }

    #[test]
    fn within_one_boot_the_monotonic_memory_stands() {
        let m = Memory {
            master: false,
            hold_until_ns: 500 * S,
            unverified: true,
        };
        let got = translate(
            kept("a", 0, m),
            Some("a"),
            400 * S,
            0,
            Duration::from_secs(300),
        );
        assert_eq!(got, m);
    }

    #[test]
    fn after_a_reboot_the_hold_follows_the_wall_clock_and_what_must_be_compared_stays() {
        // Written with 200 s of hold left at 1 000 000 ms; the node is back 60 s later,
        // its monotonic clock at 30 s.
        let m = Memory {
            master: false,
            hold_until_ns: 9_999 * S,
            unverified: true,
        };
        let got = translate(
            kept("before", 1_200_000, m),
            Some("after"),
            30 * S,
            1_060_000,
            Duration::from_secs(300),
        );
        assert_eq!(
            got,
            Memory {
                master: false,
                hold_until_ns: 30 * S + 140 * S,
                unverified: true,
            }
        );
        // A master stays a master that must compare and hold (the core's restore).
        let master = Memory {
            master: true,
            hold_until_ns: 0,
            unverified: false,
        };
        let got = translate(
            kept("before", 0, master),
            Some("after"),
            30 * S,
            1,
            Duration::from_secs(300),
        );
        assert!(got.master);
        assert_eq!(got.hold_until_ns, 0);
    }

    #[test]
    fn a_clock_stepped_forward_cannot_stretch_the_hold_beyond_anti_flap() {
        let m = Memory {
            hold_until_ns: 1,
            ..Memory::default()
        };
        let got = translate(
            kept("x", u64::MAX / 2, m),
            Some("y"),
            10 * S,
            0,
            Duration::from_secs(300),
        );
        assert_eq!(got.hold_until_ns, 10 * S + 300 * S);
        // An unknown boot is another boot.
        let got = translate(kept("x", 0, m), None, 10 * S, 0, Duration::from_secs(300));
        assert_eq!(got.hold_until_ns, 0);
    }

    #[test]
    fn the_newest_write_is_recalled_and_a_torn_one_leaves_the_one_before() {
        let dir = std::env::temp_dir().join(format!("xvrrpd-kept-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = path(&dir, "db1", "write");
        let af = Duration::from_secs(300);
        assert_eq!(recall(&p, af), None);
        let m = |master| Memory {
            master,
            ..Memory::default()
        };
        for (i, master) in [true, false, true, false, true].into_iter().enumerate() {
            remember(&p, m(master)).unwrap();
            assert_eq!(recall(&p, af).map(|r| r.master), Some(master), "write {i}");
        }
        // Five writes, two slots: the newer (master) in slot 0, the one before in slot 1.
        let [a, b] = slots(&p);
        std::fs::write(&a, "{\"generation\": 9, \"boot_id\": nul").unwrap();
        assert_eq!(
            recall(&p, af).map(|r| r.master),
            Some(false),
            "torn: the one before"
        );
        remember(&p, m(true)).unwrap();
        assert_eq!(recall(&p, af).map(|r| r.master), Some(true));
        assert!(b.exists());
        // A file from before the slots (no generation) is still read.
        std::fs::remove_file(&b).unwrap();
        std::fs::write(
            &a,
            serde_json::to_string(&Kept {
                generation: 0,
                boot_id: None,
                hold_until_unix_ms: 0,
                memory: m(true),
            })
            .unwrap()
            .replace("\"generation\":0,", ""),
        )
        .unwrap();
        assert_eq!(recall(&p, af).map(|r| r.master), Some(true));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn two_nodes_sharing_a_directory_keep_separate_files() {
        let d = Path::new("/var/lib/xvrrpd");
        assert_ne!(path(d, "db1", "write"), path(d, "db2", "write"));
        assert_eq!(path(d, "db/1", "w r"), d.join("db_1-w_r.state"));
    }
}
