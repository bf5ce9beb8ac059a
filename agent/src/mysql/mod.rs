//! MySQL / MariaDB: what differs between them ([`dialect`], [`gtid`]), connections ([`conn`]), the replica status ([`replica`]), the pure
//! catch-up rules ([`catchup`]), the write term ([`term`]), errant transactions
//! ([`divergence`]) and their undo ([`flashback`]), the write guard that makes a node
//! writable or read-only around VIP moves ([`guard`]), and its last resort against a hung
//! server ([`hung`]).
pub mod catchup;
pub mod clone;
pub mod conn;
pub mod flashback;
pub mod guard;
pub mod hung;
pub mod preflight;
pub mod privileges;
pub mod replica;
pub mod term;

pub use xvrrpd_core::mysql::{dialect, divergence, gtid};
