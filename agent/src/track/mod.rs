//! Health trackers: the pure arithmetic ([`health`]) and the tasks that run the checks
//! ([`exec`], file). Each task reports changes on a channel; the main loop turns them into
//! engine inputs (priority changes or Fault).
pub mod mysql;
pub mod runner;

pub use xvrrpd_core::track::{effective, health, Contribution, Effective, Health};
