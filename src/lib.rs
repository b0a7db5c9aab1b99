//! hoot-core: the security-critical core of the Hoot backend (session tokens and the multi-tenant
//! OAuth store) in Rust. The modules below are plain Rust, tested by `cargo test`;
//! `binding` is the only place that knows about Node.
//!
//! Every core module warns on a public item without a doc comment (`#![warn(missing_docs)]` at
//! its top), and every `unsafe` block says why it is sound; CI runs clippy with `-D warnings`.

#![warn(clippy::undocumented_unsafe_blocks)]

// The base: errors, the clock, the environment, text, private files, the user-id rules, and the
// security events and metrics every layer above reports to.
pub mod clock;
pub mod env;
pub mod error;
pub mod events;
pub mod ids;
pub mod metrics;
mod private_fs;
pub mod text;
// Keys, sealing and tokens (revocation is passed in, not imported).
pub mod keys;
pub mod sealing;
pub mod secret;
pub mod token;
// The process-wide state: the key slot and the verify-cache generation, revocations, touch memory.
pub mod active;
pub mod revocation;
pub mod touch;
// The store's model and rules, over a backend trait; then the backends, leaves that never import
// each other; then the one module that sees both (the SQLite to PostgreSQL copy).
pub mod copy;
pub mod pg;
pub mod sqlite;
pub mod store;

pub mod binding;

/// The user id and server id that panic in builds with the `test-panic` feature (never otherwise).
pub const TEST_PANIC_ID: &str = "00000000-0000-4000-8000-00000000dead";

/// Panics on `TEST_PANIC_ID` under the `test-panic` feature; does nothing in every other build.
#[inline(always)]
pub(crate) fn test_panic(id: &str) {
    #[cfg(feature = "test-panic")]
    if id == TEST_PANIC_ID {
        panic!("forced by the test-panic feature");
    }
    let _ = id;
}
#[cfg(test)]
mod tests;
