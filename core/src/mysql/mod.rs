//! The pure rules about MySQL / MariaDB data: GTID sets ([`gtid`]), which transactions
//! each server holds that the other lacks ([`divergence`]), and which of two masters keeps
//! the write role ([`term`]).
pub mod divergence;
pub mod gtid;
pub mod term;
