//! The write lease through a witness, sans I/O ([`lease`]: the argument is there).
pub mod lease;

#[cfg(test)]
pub(crate) mod sim;
#[cfg(test)]
mod tests;
