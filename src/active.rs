//! The process's key set, replaced at once by `loadKeys`. Before any `loadKeys`, the first token
//! call loads the defaults. (Successful verifications are cached on the JavaScript side, in
//! `lib/verify.js`, whose `loadKeys` clears that cache.)

#![warn(missing_docs)]

use std::sync::{Arc, Mutex, RwLock};

use crate::env::Environment;
use crate::error::HootError;
use crate::keys::{load_keys, KeyOptions, KeySet};

static ACTIVE: RwLock<Option<Arc<KeySet>>> = RwLock::new(None);
/// Serialises loading so two first calls (say, the event loop and an async signing task) do not
/// both generate a key.
static LOADING: Mutex<()> = Mutex::new(());

fn install(keys: KeySet) -> Arc<KeySet> {
    let keys = Arc::new(keys);
    *ACTIVE.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&keys));
    keys
}

/// Loads a key set and makes it the process's, replacing the old one at once. A set that fails
/// to load leaves the old one in place.
pub fn load(opts: &KeyOptions, env: &Environment) -> Result<Arc<KeySet>, HootError> {
    let _loading = LOADING.lock().unwrap_or_else(|p| p.into_inner());
    Ok(install(load_keys(opts, env)?))
}

/// The current key set, loading the defaults the first time.
pub fn current() -> Result<Arc<KeySet>, HootError> {
    let loaded = || ACTIVE.read().unwrap_or_else(|p| p.into_inner()).as_ref().map(Arc::clone);
    if let Some(keys) = loaded() {
        return Ok(keys);
    }
    let _loading = LOADING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(keys) = loaded() {
        return Ok(keys);
    }
    Ok(install(load_keys(&KeyOptions::default(), &Environment::process())?))
}
