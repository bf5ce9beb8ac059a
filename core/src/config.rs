//! The settings the decisions depend on.
use serde::{Deserialize, Serialize};

/// What a write instance does when catch-up times out.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CatchupPolicy {
    /// Stay read-only without the VIP (FAULT) until the relay log is applied, then rejoin
    /// the election: no write is accepted on top of missing data.
    #[default]
    StayBackup,
    /// Become writable anyway: availability over consistency (logged as a warning).
    PromoteAnyway,
}
