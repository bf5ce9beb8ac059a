//! Tracker arithmetic: rise / fall, weights, the effective priority.
pub mod health;

pub use health::{effective, Contribution, Effective, Health};
