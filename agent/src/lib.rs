//! xvrrpd: an eBPF/XDP-accelerated VRRP failover agent.
//!
//! - [`datapath`]: loads the embedded XDP program, attaches it, reads its maps and events.
//! - [`conntrack`]: clients' connections to the VIPs, copied to the peer, tickled at takeover.
//! - [`vrrp`]: the pure VRRP packet codec (no sockets).
//! - [`observe`]: the `xvrrpd observe` command.
pub mod config;
pub mod conntrack;
pub mod control;
pub mod datapath;
pub mod import;
pub mod metrics;
pub mod mysql;
pub mod net;
pub mod notify;
pub mod observe;
pub mod run;
pub mod track;
pub mod witness;

// The decisions live in xvrrpd-core; the agent reaches them under their old paths.
pub use xvrrpd_core::{engine, role, vrrp};
