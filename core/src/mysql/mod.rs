//! The pure rules about MySQL / MariaDB: what differs between the flavors ([`dialect`]),
//! GTID sets ([`gtid`]), the replica status ([`replica`]), which transactions each
//! server holds that the other lacks ([`divergence`]), and which of two masters keeps
//! the write role ([`term`]).
pub mod dialect;
pub mod divergence;
pub mod gtid;
pub mod replica;
pub mod term;
