//! VRRP protocol pieces that need no I/O.
pub mod packet;
