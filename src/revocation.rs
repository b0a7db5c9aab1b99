//! Revoked tokens: for each user whose tokens were revoked (`revokeUserTokens`), the time before
//! which their tokens no longer verify. The process learns a revocation at once when it makes it,
//! and from other processes sharing a database by polling it (`store::revocations`). Each thing
//! learned bumps `active::GENERATION`, so every isolate's verification cache drops before its next
//! answer and the token goes back to `token::verify_token`, which asks `refuses`. A cached
//! verification thus costs nothing more than before: no database read, no lookup here.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use once_cell::sync::Lazy;

static REVOKED: Lazy<RwLock<HashMap<String, i64>>> = Lazy::new(|| RwLock::new(HashMap::new()));
/// Whether anything was ever revoked in this process: until then `refuses` is one atomic load.
static ANY: AtomicBool = AtomicBool::new(false);

/// Records that `user_id`'s tokens issued before `before` (seconds) are revoked. Returns whether
/// this changed anything (a later time for the user than known); if so the caches are dropped.
pub fn learn(user_id: &str, before: i64) -> bool {
    let mut revoked = REVOKED.write().unwrap_or_else(|p| p.into_inner());
    let known = revoked.get(user_id).copied();
    if known.is_some_and(|known| known >= before) {
        return false;
    }
    revoked.insert(user_id.to_ascii_lowercase(), before);
    ANY.store(true, Ordering::Release);
    drop(revoked);
    crate::active::GENERATION.fetch_add(1, Ordering::Release);
    true
}

/// The time before which `user_id`'s tokens are refused, when they were revoked.
pub fn revoked_before(user_id: &str) -> Option<i64> {
    if !ANY.load(Ordering::Acquire) {
        return None;
    }
    REVOKED.read().unwrap_or_else(|p| p.into_inner()).get(&user_id.to_ascii_lowercase()).copied()
}

/// Whether a token of `sub` issued at `iat` (seconds; a token without one counts as issued at 0)
/// is revoked.
pub fn refuses(sub: &str, iat: Option<f64>) -> bool {
    if !ANY.load(Ordering::Acquire) {
        return false;
    }
    let revoked = REVOKED.read().unwrap_or_else(|p| p.into_inner());
    let before = match revoked.get(sub) {
        Some(before) => *before,
        None => match revoked.get(&sub.to_ascii_lowercase()) {
            Some(before) => *before,
            None => return false,
        },
    };
    iat.unwrap_or(0.0) < before as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_refuses_earlier_tokens_of_that_user_only_and_drops_the_caches() {
        let user = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
        let generation = crate::active::GENERATION.load(Ordering::Acquire);
        assert!(learn(user, 1_000));
        assert!(crate::active::GENERATION.load(Ordering::Acquire) > generation);
        assert!(refuses(user, Some(999.0)));
        assert!(refuses(&user.to_uppercase(), Some(999.0)), "sub in another case");
        assert!(refuses(user, None), "a token without iat");
        assert!(!refuses(user, Some(1_000.0)), "issued at or after the revocation");
        assert!(!refuses("8c9e6679-7425-40de-944b-e07fc1f90ae7", Some(1.0)));
        assert!(!learn(user, 900), "an earlier time changes nothing");
        assert!(learn(user, 2_000));
        assert!(refuses(user, Some(1_500.0)));
    }
}
