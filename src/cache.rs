//! A bounded cache of successful verifications, keyed by the whole token string. Two generations
//! (a hit in the older one moves it forward) keep recently used tokens and cap memory at
//! `2 * generation_size` entries without any per-entry bookkeeping. An entry is never served at or
//! after its `exp`, nor before its `nbf`; a fresh key set starts with a fresh cache.

use std::collections::HashMap;
use std::sync::Arc;

use crate::token::Verified;

pub const DEFAULT_GENERATION_SIZE: usize = 4096;

#[derive(Debug)]
pub struct VerifyCache {
    current: HashMap<String, Arc<Verified>>,
    previous: HashMap<String, Arc<Verified>>,
    generation_size: usize,
}

impl Default for VerifyCache {
    fn default() -> Self {
        Self::new(DEFAULT_GENERATION_SIZE)
    }
}

fn usable(entry: &Verified, now: u64, leeway: u64) -> bool {
    (now as f64) < entry.expires_at && entry.not_before.is_none_or(|nbf| nbf <= (now + leeway) as f64)
}

impl VerifyCache {
    pub fn new(generation_size: usize) -> Self {
        VerifyCache { current: HashMap::new(), previous: HashMap::new(), generation_size: generation_size.max(1) }
    }

    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cached verification of `token`, if it is still good at `now`.
    pub fn get(&mut self, token: &str, now: u64, leeway: u64) -> Option<Arc<Verified>> {
        let entry = match self.current.get(token) {
            Some(entry) => Arc::clone(entry),
            None => {
                let entry = self.previous.remove(token)?;
                self.insert(token.to_string(), Arc::clone(&entry));
                entry
            }
        };
        if usable(&entry, now, leeway) {
            Some(entry)
        } else {
            if now as f64 >= entry.expires_at {
                self.current.remove(token);
            }
            None
        }
    }

    pub fn insert(&mut self, token: String, entry: Arc<Verified>) {
        if self.current.len() >= self.generation_size && !self.current.contains_key(&token) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(token, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::PortkeyContext;
    use serde_json::Map;

    fn verified(exp: f64, nbf: Option<f64>) -> Arc<Verified> {
        Arc::new(Verified {
            user_id: "3b241101-e2bb-4255-8caf-4136c566a962".into(),
            payload: Map::new(),
            expires_at: exp,
            not_before: nbf,
            portkey: PortkeyContext::default(),
        })
    }

    #[test]
    fn never_serves_at_or_after_exp() {
        let mut cache = VerifyCache::new(8);
        cache.insert("t".into(), verified(100.0, None));
        assert!(cache.get("t", 99, 0).is_some());
        assert!(cache.get("t", 100, 0).is_none(), "exp itself is already expired");
        assert!(cache.get("t", 99, 0).is_none(), "an expired entry is dropped");
        cache.insert("t".into(), verified(100.0, None));
        assert!(cache.get("t", 100, 60).is_none(), "leeway goes through full verification, not the cache");
    }

    #[test]
    fn respects_nbf_with_the_callers_leeway() {
        let mut cache = VerifyCache::new(8);
        cache.insert("t".into(), verified(1000.0, Some(50.0)));
        assert!(cache.get("t", 40, 0).is_none());
        assert!(cache.get("t", 40, 10).is_some());
        assert!(cache.get("t", 50, 0).is_some());
    }

    #[test]
    fn stays_bounded_and_keeps_recently_used_tokens() {
        let mut cache = VerifyCache::new(4);
        cache.insert("hot".into(), verified(1e9, None));
        for i in 0..100 {
            cache.insert(format!("cold-{i}"), verified(1e9, None));
            assert!(cache.get("hot", 1, 0).is_some(), "a token in use survives churn (round {i})");
            assert!(cache.len() <= 8);
        }
        assert!(cache.get("cold-0", 1, 0).is_none(), "old entries are evicted");
    }
}
