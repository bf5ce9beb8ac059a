//! The optional witness: a third vote (etcd) that decides which node may write, so a
//! partition between the two database hosts cannot make both writable. See
//! [`lease`] for the argument.
pub mod etcd;
pub mod tls;

pub use xvrrpd_core::witness::lease;
