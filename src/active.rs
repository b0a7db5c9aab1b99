//! The process's key set, replaced at once by `loadKeys`. Before any `loadKeys`, the first token
//! call loads the defaults.
//!
//! Successful verifications are cached on the JavaScript side (`lib/verify.js`), once per isolate:
//! every worker thread has its own cache, but they all share this one key set. So each new key set
//! also bumps `GENERATION`, a process-wide counter that every isolate reads through an ArrayBuffer
//! over its memory (no native call), and a cache verified under another generation is dropped
//! before it answers: a removed key stops verifying in every thread at once.

#![warn(missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::env::Environment;
use crate::error::HootError;
use crate::keys::{load_keys, KeyOptions, KeySet};

static ACTIVE: RwLock<Option<Arc<KeySet>>> = RwLock::new(None);
/// Serialises loading so two first calls (say, the event loop and an async signing task) do not
/// both generate a key.
static LOADING: Mutex<()> = Mutex::new(());

/// Bumped after each key set is installed. A reader that sees the old value may still verify
/// with the new set (never the other way round), so a cache filled under the old value is at
/// worst dropped one call late: never a success from a removed key.
pub static GENERATION: AtomicU32 = AtomicU32::new(0);

fn install(keys: KeySet) -> Arc<KeySet> {
    let keys = Arc::new(keys);
    *ACTIVE.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&keys));
    GENERATION.fetch_add(1, Ordering::Release);
    crate::events::emit("keys_loaded", |e| {
        e.set("kid", keys.kid()).set("source", keys.source().as_str()).set("publicKeys", keys.public_keys());
    });
    keys
}

/// Loads a key set and makes it the process's, replacing the old one at once. A set that fails
/// to load leaves the old one in place.
pub fn load(opts: &KeyOptions, env: &Environment) -> Result<Arc<KeySet>, HootError> {
    let _loading = LOADING.lock().unwrap_or_else(|p| p.into_inner());
    Ok(install(load_keys(opts, env)?))
}

/// Makes `keys` (loaded elsewhere: the shared database) the process's key set, at once.
pub fn replace(keys: KeySet) -> Arc<KeySet> {
    let _loading = LOADING.lock().unwrap_or_else(|p| p.into_inner());
    install(keys)
}

/// The key set in use, if one was installed.
pub fn installed() -> Option<Arc<KeySet>> {
    ACTIVE.read().unwrap_or_else(|p| p.into_inner()).as_ref().map(Arc::clone)
}

/// The current key set, loading the defaults (`env`'s files, else a generated key) the first
/// time. Whether the defaults may be loaded at all is the caller's to decide: this module knows
/// no database.
pub fn current(env: &Environment) -> Result<Arc<KeySet>, HootError> {
    if let Some(keys) = installed() {
        return Ok(keys);
    }
    let _loading = LOADING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(keys) = installed() {
        return Ok(keys);
    }
    Ok(install(load_keys(&KeyOptions::default(), env)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{env_in, read_json, TestResult, PAIR};

    #[test]
    fn every_key_set_installed_bumps_the_generation_and_a_failed_load_does_not() -> TestResult {
        let opts = KeyOptions {
            private_key_jwk: Some(read_json(&PAIR.private_key_path)),
            jwks: Some(read_json(&PAIR.jwks_path)),
            ..KeyOptions::default()
        };
        let env = env_in(&std::env::temp_dir(), None);
        let before = GENERATION.load(Ordering::Acquire);
        load(&opts, &env)?;
        let after = GENERATION.load(Ordering::Acquire);
        assert!(after > before, "a load bumps it");
        let broken = KeyOptions { private_key_jwk: Some(serde_json::json!({})), ..KeyOptions::default() };
        assert!(load(&broken, &env).is_err());
        // Other tests may load keys concurrently, so only this thread's own effect is certain: the
        // failed load did not install anything, and the set in use is the one loaded above.
        assert_eq!(installed().ok_or("no key set")?.kid(), "test-kid");
        Ok(())
    }
}
