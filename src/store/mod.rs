//! The store's model and rules, whatever the backend: what may be stored (ids, JSON objects,
//! sizes), which tables hold a user's data, which credentials a scope names, and (in `user`) one
//! user's store over any `Backend`. The SQLite and PostgreSQL backends (`crate::sqlite`,
//! `crate::pg`) hold only their SQL.

#![warn(missing_docs)]

pub mod backend;
pub mod identity;
pub mod ops;
pub mod status;
pub mod user;
pub mod users;

use crate::error::HootError;
pub use crate::ids::{is_store_user_id, USER_ID_FORMS};
pub use backend::Backend;
pub use status::DatabaseStatus;
pub use user::{Expected, UserStore};

/// The names of the tables the backends share (Hoot's own, and hoot-core's `hoot_` ones).
pub mod tables {
    /// The ids of the keys an encrypted database's values are sealed with; empty when it is not.
    pub const ENCRYPTION_TABLE: &str = "hoot_encryption";
    /// Before when each revoked user's tokens are refused (seconds). Not user data: forgetting, moving
    /// or purging a user leaves it, so a revocation outlives them.
    pub const REVOCATIONS_TABLE: &str = "hoot_revocations";
    /// One-time codes that move a user to another device: a MAC of the code under the store secret,
    /// never the code, and a MAC binding the row to its user (schema 2).
    pub const TRANSFER_CODES_TABLE: &str = "hoot_transfer_codes";
    /// Accounts (of any identity provider) linked to a user: one user per account, each row with a
    /// MAC of (account, user) under the store secret (schema 2).
    pub const ACCOUNTS_TABLE: &str = "hoot_accounts";
    /// Failed redemptions per window and source (a MAC of what the server passed, never the source).
    pub const SOURCE_FAILURES_TABLE: &str = "hoot_transfer_source_failures";
    /// When each user was first and last active (`store.touch()`), in seconds: one row per user.
    pub const USERS_TABLE: &str = "hoot_users";
    /// The MCP SDK's OAuth discovery state (JSON), per user and server.
    pub const DISCOVERY_TABLE: &str = "hoot_oauth_discovery";
    /// The OAuth `state` parameter of the authorization in progress, per user and server.
    pub const AUTHORIZATION_STATES_TABLE: &str = "hoot_oauth_states";
    /// Where a migration keeps the legacy rows that collide on a key, whole, for their owner to look
    /// at: a table no Hoot query reads.
    pub const CONFLICTS_TABLE: &str = "hoot_migration_conflicts";
    /// Who runs the OAuth refresh grant of a user's credential for a server, and until when (ms):
    /// one row per user and server while a holder refreshes (schema 3).
    pub const REFRESH_CLAIMS_TABLE: &str = "hoot_refresh_claims";
}

/// Largest JSON value (or verifier) stored, in bytes of JSON text.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Largest server id or URL, in bytes.
pub const MAX_ID_BYTES: usize = 4096;
/// PKCE verifiers older than this are never returned (Hoot's 10 minutes).
pub const VERIFIER_TTL_SECONDS: i64 = 600;
/// The longest a refresh claim may last (`claim_refresh`'s lease), in ms.
pub const MAX_REFRESH_LEASE_MS: i64 = 10 * 60 * 1000;
/// Favicon lookups are kept for a day, shared by every user.
pub const FAVICON_TTL_SECONDS: i64 = 24 * 60 * 60;

/// The servers a user has any per-user state for, in SQL: the union over `SERVER_TABLES`, with
/// `user` the statement's parameter for the user (`?1` on SQLite, `$1` on PostgreSQL).
pub fn servers_of_sql(user: &str) -> String {
    SERVER_TABLES
        .iter()
        .map(|t| format!("SELECT server_id FROM {t} WHERE user_id = {user}"))
        .collect::<Vec<_>>()
        .join(" UNION ")
}

/// A non-empty id of at most `MAX_ID_BYTES`, checked before anything is written or deleted.
pub fn check_id(name: &str, id: &str) -> Result<(), HootError> {
    if id.is_empty() {
        return Err(HootError::arg_value(name, "must not be empty"));
    }
    if id.contains('\0') {
        // PostgreSQL's text cannot hold it: refused on both backends, so none gets into a file a
        // copy then cannot carry.
        return Err(HootError::arg_value(name, "must not contain a NUL character (U+0000)"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(HootError::out_of_range(
            name,
            format!("must be at most {MAX_ID_BYTES} bytes. Received {} bytes", id.len()),
        ));
    }
    Ok(())
}

/// `cleanupExpiredVerifiers`'s `maxAgeSeconds`: whole seconds, `VERIFIER_TTL_SECONDS` when absent.
pub fn verifier_max_age(max_age_seconds: Option<f64>) -> Result<i64, HootError> {
    match max_age_seconds {
        None => Ok(VERIFIER_TTL_SECONDS),
        Some(age) if age.fract() == 0.0 && (0.0..=1e12).contains(&age) => Ok(age as i64),
        Some(age) => Err(HootError::out_of_range(
            "opts.maxAgeSeconds",
            format!("must be a whole number of seconds. Received {age}"),
        )),
    }
}

/// What kind of JavaScript value was given where the store keeps a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A plain object: serialised and stored.
    Object,
    /// A JSON value that is not an object (`null`, a boolean, a number, a string, an array).
    OtherJson,
    /// Not a JSON value at all (`undefined`, a function, a symbol, a BigInt).
    NotJson,
}

/// JSON text known to hold one object and to be at most `MAX_VALUE_BYTES` long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonObject(String);

impl JsonObject {
    /// Checks `text` (named `name` in messages) as a storable object: at most `MAX_VALUE_BYTES`, one JSON object.
    pub fn new(text: String, name: &str) -> Result<Self, HootError> {
        if text.len() > MAX_VALUE_BYTES {
            return Err(HootError::out_of_range(
                name,
                format!("must be at most {MAX_VALUE_BYTES} bytes as JSON. Received {} bytes", text.len()),
            ));
        }
        let is_object =
            text.trim_start().starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok();
        if !is_object {
            return Err(HootError::arg_value(name, "must be a JSON object"));
        }
        Ok(JsonObject(text))
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The rule for what may be stored, applied before the value is serialised: an object, and
    /// nothing else; `received` describes the value for the message.
    pub fn check_kind(kind: ValueKind, name: &str, received: &str) -> Result<(), HootError> {
        match kind {
            ValueKind::Object => Ok(()),
            ValueKind::NotJson => Err(HootError::arg_type(name, "a JSON object", received)),
            ValueKind::OtherJson => {
                Err(HootError::arg_value(name, format!("must be a JSON object. Received {received}")))
            }
        }
    }

    /// The error for an object `JSON.stringify` refused (a cycle, a BigInt inside, a throwing `toJSON`).
    pub fn unserialisable(name: &str, reason: &str) -> HootError {
        HootError::arg_value(name, format!("must be serialisable as JSON: {reason}"))
    }
}

/// Which credentials `invalidateCredentials` removes; a server's config is not a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialScope {
    /// Client information, tokens, verifier (and state) and discovery state.
    All,
    /// The client registration.
    Client,
    /// The OAuth tokens.
    Tokens,
    /// The PKCE code verifier, and the OAuth `state` handed out with it.
    Verifier,
    /// The SDK's discovery state (the servers' metadata it found).
    Discovery,
}

impl CredentialScope {
    /// The scope the SDK names (`'all'`, `'client'`, `'tokens'`, `'verifier'`, `'discovery'`).
    pub fn parse(scope: &str) -> Result<Self, HootError> {
        match scope {
            "all" => Ok(CredentialScope::All),
            "client" => Ok(CredentialScope::Client),
            "tokens" => Ok(CredentialScope::Tokens),
            "verifier" => Ok(CredentialScope::Verifier),
            "discovery" => Ok(CredentialScope::Discovery),
            other => Err(HootError::arg_value(
                "scope",
                format!(
                    "must be one of 'all', 'client', 'tokens', 'verifier', 'discovery'. Received {:?}",
                    other.chars().take(40).collect::<String>()
                ),
            )),
        }
    }

    pub(crate) fn tables(self) -> &'static [&'static str] {
        match self {
            CredentialScope::All => &[
                "oauth_client_info",
                "oauth_tokens",
                "oauth_verifiers",
                tables::AUTHORIZATION_STATES_TABLE,
                tables::DISCOVERY_TABLE,
            ],
            CredentialScope::Client => &["oauth_client_info"],
            CredentialScope::Tokens => &["oauth_tokens"],
            CredentialScope::Verifier => &["oauth_verifiers", tables::AUTHORIZATION_STATES_TABLE],
            CredentialScope::Discovery => &[tables::DISCOVERY_TABLE],
        }
    }
}

/// Every table that holds per-user rows (the activity table is not one: it says when, not what).
pub(crate) const USER_TABLES: [&str; 9] = [
    "oauth_tokens",
    "oauth_client_info",
    "oauth_verifiers",
    "server_configs",
    tables::DISCOVERY_TABLE,
    tables::AUTHORIZATION_STATES_TABLE,
    tables::TRANSFER_CODES_TABLE,
    tables::ACCOUNTS_TABLE,
    tables::REFRESH_CLAIMS_TABLE,
];

/// The per-user tables keyed by server: what two users can both have, and so collide on.
pub(crate) const SERVER_TABLES: [&str; 6] = [
    "oauth_tokens",
    "oauth_client_info",
    "oauth_verifiers",
    "server_configs",
    tables::DISCOVERY_TABLE,
    tables::AUTHORIZATION_STATES_TABLE,
];

#[cfg(test)]
pub(crate) mod tests;
