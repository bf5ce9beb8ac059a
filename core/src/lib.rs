//! xvrrpd's decisions, and nothing else: no clock reads, sockets, tasks or database
//! connections. The agent (`xvrrpd`) reads the world, feeds it in as inputs and answers,
//! and carries out the actions these modules return. A test keeps this crate's
//! dependencies free of I/O crates (`tests/pure.rs`).
pub mod config;
pub mod engine;
pub mod events;
pub mod mysql;
pub mod notify;
pub mod role;
#[cfg(test)]
mod scenarios;
pub mod track;
pub mod vrrp;
pub mod witness;
