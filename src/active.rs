//! The process's key set and its verification cache, swapped together by `loadKeys` so a cached
//! verification never outlives the keys that made it. Before any `loadKeys`, the first token call
//! loads the defaults.

use std::sync::{Arc, Mutex, RwLock};

use crate::cache::VerifyCache;
use crate::error::HootError;
use crate::keys::{load_keys, KeyEnv, KeyOptions, KeySet};
use crate::token::{self, IssueConfig, Verified, VerifyFailure};

pub struct ActiveKeys {
    pub keys: KeySet,
    cache: Mutex<VerifyCache>,
}

static ACTIVE: RwLock<Option<Arc<ActiveKeys>>> = RwLock::new(None);
/// Serialises loading so two first calls (say, the event loop and an async signing task) do not
/// both generate a key.
static LOADING: Mutex<()> = Mutex::new(());

impl ActiveKeys {
    fn new(keys: KeySet) -> Self {
        ActiveKeys { keys, cache: Mutex::new(VerifyCache::default()) }
    }

    pub fn verify(&self, token: &str, now: u64, leeway: u64) -> Result<Arc<Verified>, VerifyFailure> {
        // Length first, so an oversized string is not even hashed.
        if token.len() <= token::MAX_TOKEN_LENGTH {
            if let Some(hit) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(token, now, leeway) {
                return Ok(hit);
            }
        }
        let verified = Arc::new(token::verify_token(&self.keys, token, now, leeway)?);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(token.to_string(), Arc::clone(&verified));
        Ok(verified)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyOptions;
    use crate::tests::{env_in, read_json, temp_dir, TestResult, PAIR};

    #[test]
    fn a_repeated_token_is_served_from_the_cache_until_exp() -> TestResult {
        let opts = KeyOptions {
            private_key_jwk: Some(read_json(&PAIR.private_key_path)),
            jwks: Some(read_json(&PAIR.jwks_path)),
            ..KeyOptions::default()
        };
        let active = ActiveKeys::new(load_keys(&opts, &env_in(&temp_dir("active"), None))?);
        let config = IssueConfig::resolve(token::IssueOptions::default(), |_| None)?;
        let now = 1_800_000_000;
        let token = active.issue("3b241101-e2bb-4255-8caf-4136c566a962", &config, now)?;
        let first = active.verify(&token, now, 0).map_err(|f| f.message)?;
        let second = active.verify(&token, now + 10, 0).map_err(|f| f.message)?;
        assert!(Arc::ptr_eq(&first, &second), "the second verification is the cached one");
        let expired = active.verify(&token, now + 3600, 0).err().ok_or("served past exp")?;
        assert!(expired.expired());
        Ok(())
    }
}
