//! Security events: what the core did that an operator's audit log should say (a token issued or
//! refused, a revocation, a transfer code made, redeemed, refused or throttled, an account linked,
//! a purge, a key set loaded or rotated, encryption turned on, rotated or off, a migration, a copy,
//! a database refused). Each is one JSON object with a `type` and its fields, handed to the
//! process's sink (the binding's, which passes it to every JavaScript thread with a listener).
//!
//! No field holds a secret. A user id is the browser's bearer secret, so events carry `userHash`:
//! the first 16 hex digits of an HMAC-SHA256 of the id under the process's event key
//! (`$HOOT_EVENT_KEY`, else random per process), enough to follow one user through a log and
//! useless for finding the id. Account ids (an e-mail, a provider's subject) are hashed the same
//! way. Tokens, codes, keys, passwords and database URLs never appear; a key's `kid` (public, in
//! the JWKS) and an encryption key's id (an id, not the key) may.
//!
//! With no sink set, `emit` is one atomic load: the fields are built only when someone listens.

#![warn(missing_docs)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use aws_lc_rs::hmac;
use serde_json::{Map, Value};

use crate::env::Environment;

/// The variable whose value keys `userHash`: set it (the same on every server) for hashes that
/// stay the same across restarts and replicas.
pub const HOOT_EVENT_KEY: &str = "HOOT_EVENT_KEY";

/// Every event type, in docs/api.md's order (a test checks the two agree).
pub const EVENT_TYPES: [&str; 21] = [
    "token_issued",
    "token_refused",
    "tokens_revoked",
    "transfer_code_created",
    "transfer_code_redeemed",
    "transfer_code_refused",
    "transfer_code_throttled",
    "account_linked",
    "account_unlinked",
    "user_deleted",
    "user_moved",
    "users_purged",
    "keys_loaded",
    "keys_rotated",
    "encryption_on",
    "encryption_rotated",
    "encryption_off",
    "database_migrated",
    "database_copied",
    "database_refused",
    "events_dropped",
];

/// Where events go: called on whichever thread the event happened on, so it must not block.
pub type Sink = Arc<dyn Fn(String) + Send + Sync>;

static LISTENING: AtomicBool = AtomicBool::new(false);
static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static KEY: OnceLock<hmac::Key> = OnceLock::new();

/// Sets (or with `None`, removes) the process's sink.
pub fn set_sink(sink: Option<Sink>) {
    let mut slot = SINK.write().unwrap_or_else(|p| p.into_inner());
    LISTENING.store(sink.is_some(), Ordering::Release);
    *slot = sink;
}

/// Whether anyone listens: callers with costly fields may check first.
pub fn listening() -> bool {
    LISTENING.load(Ordering::Acquire)
}

/// Reports an event of `kind` (one of `EVENT_TYPES`) with the fields `fields` makes, if anyone
/// listens. `at` (milliseconds since the epoch) is added.
pub fn emit(kind: &'static str, fields: impl FnOnce(&mut Fields)) {
    if !listening() {
        return;
    }
    let sink = SINK.read().unwrap_or_else(|p| p.into_inner()).clone();
    let Some(sink) = sink else { return };
    let mut event = Fields(Map::new());
    event.0.insert("type".into(), Value::from(kind));
    event.0.insert("at".into(), Value::from(crate::clock::unix_now_ms()));
    fields(&mut event);
    sink(Value::Object(event.0).to_string());
}

/// An event's fields, as they are added.
pub struct Fields(Map<String, Value>);

impl Fields {
    /// Adds `name: value`.
    pub fn set(&mut self, name: &'static str, value: impl Into<Value>) -> &mut Self {
        self.0.insert(name.into(), value.into());
        self
    }

    /// Adds `name` as `hash(id)`: a user or account id, never in clear.
    pub fn hashed(&mut self, name: &'static str, id: &str) -> &mut Self {
        self.set(name, hash(id))
    }
}

/// The first 16 hex digits of HMAC-SHA256(event key, `id`).
pub fn hash(id: &str) -> String {
    let key = KEY.get_or_init(|| key_from(&Environment::process()));
    let tag = hmac::sign(key, id.as_bytes());
    tag.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// `$HOOT_EVENT_KEY`'s bytes as the key, else 32 random bytes (then hashes hold for this process only).
fn key_from(env: &Environment) -> hmac::Key {
    match env.var(HOOT_EVENT_KEY) {
        Some(value) => hmac::Key::new(hmac::HMAC_SHA256, value.as_bytes()),
        None => {
            let mut bytes = [0u8; 32];
            // A failure leaves zeros: the hashes then still hide the ids' text, only not from
            // someone who can guess them. aws-lc's RNG does not fail on a working system.
            let _ = aws_lc_rs::rand::fill(&mut bytes);
            hmac::Key::new(hmac::HMAC_SHA256, &bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_keyed_short_and_hides_the_id() {
        let env = Environment::fixed("/").with_var(HOOT_EVENT_KEY, "one key");
        let id = "0b6a2f1e-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
        let a = hmac::sign(&key_from(&env), id.as_bytes());
        let b = hmac::sign(&key_from(&Environment::fixed("/").with_var(HOOT_EVENT_KEY, "another")), id.as_bytes());
        assert_ne!(a.as_ref(), b.as_ref(), "another key, another hash");
        let hashed = hash(id);
        assert_eq!(hashed.len(), 16);
        assert!(!hashed.contains("0b6a2f1e"));
        assert_eq!(hashed, hash(id), "the same id, the same hash, in one process");
    }
}
