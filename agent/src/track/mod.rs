//! Health trackers: the pure arithmetic ([`health`]) and the tasks that run the checks
//! ([`exec`], file). Each task reports changes on a channel; the main loop turns them into
//! engine inputs (priority changes or Fault).
pub mod health;
pub mod mysql;
pub mod runner;

pub use health::{effective, Contribution, Effective, Health};
