//! The process's key set, replaced at once by `loadKeys`. Before any `loadKeys`, the first token
//! call loads the defaults. (Successful verifications are cached on the JavaScript side, in
//! `verify.js`, which `loadKeys` clears.)

use std::sync::{Arc, Mutex, RwLock};

use crate::error::HootError;
use crate::keys::{load_keys, KeyEnv, KeyOptions, KeySet};
use crate::token::{self, IssueConfig, Verified, VerifyFailure};

pub struct ActiveKeys {
    pub keys: KeySet,
}

static ACTIVE: RwLock<Option<Arc<ActiveKeys>>> = RwLock::new(None);
/// Serialises loading so two first calls (say, the event loop and an async signing task) do not
/// both generate a key.
static LOADING: Mutex<()> = Mutex::new(());

impl ActiveKeys {
    fn new(keys: KeySet) -> Self {
        ActiveKeys { keys }
    }

    pub fn verify(&self, token: &str, now: u64, leeway: u64) -> Result<Verified, VerifyFailure> {
        token::verify_token(&self.keys, token, now, leeway)
    }

    pub fn issue(&self, user_id: &str, config: &IssueConfig, now: u64) -> Result<String, HootError> {
        token::issue_token(&self.keys, user_id, config, now)
    }
}

/// Loads a key set and makes it the process's, replacing the old one and its cache at once.
pub fn load(opts: &KeyOptions, env: &KeyEnv) -> Result<Arc<ActiveKeys>, HootError> {
    let _loading = LOADING.lock().unwrap_or_else(|p| p.into_inner());
    let active = Arc::new(ActiveKeys::new(load_keys(opts, env)?));
    *ACTIVE.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&active));
    Ok(active)
}

/// The current key set, loading the defaults the first time.
pub fn current() -> Result<Arc<ActiveKeys>, HootError> {
    if let Some(active) = ACTIVE.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
        return Ok(Arc::clone(active));
    }
    let _loading = LOADING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(active) = ACTIVE.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
        return Ok(Arc::clone(active));
    }
    let active = Arc::new(ActiveKeys::new(load_keys(&KeyOptions::default(), &KeyEnv::from_process())?));
    *ACTIVE.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&active));
    Ok(active)
}
