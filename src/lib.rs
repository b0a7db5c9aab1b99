//! hoot-core: the security-critical core of the Hoot backend (session tokens and the multi-tenant
//! OAuth store) in Rust. The modules below are plain Rust, tested by `cargo test`;
//! `binding` is the only place that knows about Node.

pub mod active;
pub mod clock;
mod der;
pub mod error;
pub mod keys;
mod private_fs;
pub mod store;
pub mod token;

pub mod binding;
#[cfg(test)]
mod tests;
