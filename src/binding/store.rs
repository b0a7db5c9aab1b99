//! The store's JavaScript face: `OAuthStore`, `migrateDatabase`, the favicon cache,
//! `closeDatabase` and `inspectDatabase`. Values cross as JSON text made and read by V8's own
//! `JSON.stringify` and `JSON.parse`, so what is stored is byte for byte what Hoot's
//! `JSON.stringify(tokens)` stored.

use napi::bindgen_prelude::Either;
use napi::{Env, Unknown, ValueType};
use napi_derive::napi;

use super::args::{describe, json_object_arg, optional_string, string_value, type_of, Props};
use super::guarded;
use crate::clock;
use crate::env::Environment;
use crate::error::HootError;
use crate::sqlite::{self as store, db, encryption, identity, revocations, users, DbLocation};
use crate::store::{CredentialScope, Expected};

/// Where the database is.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct StoreOptions {
    /// The SQLite file, or `':memory:'` for one in-memory database shared by the process.
    /// Defaults to `$HOOT_DB_PATH`, else `~/.hoot/hoot-mcp.db`.
    pub db_path: Option<String>,
}

/// The database `opts.dbPath` names (or the default one).
fn location(props: &Props) -> Result<DbLocation, HootError> {
    db::location(props.string("dbPath")?.as_deref(), "opts.dbPath", &Environment::process())
}

/// The database a `dbPath` argument names (or the default one).
fn location_arg(db_path: Option<Unknown>) -> Result<DbLocation, HootError> {
    db::location(optional_string(db_path, "dbPath")?.as_deref(), "dbPath", &Environment::process())
}

/// Stored JSON text as a JS string (Latin-1 when it is ASCII, which V8 copies without decoding),
/// or `undefined`. `store.js` parses it with `JSON.parse` in JavaScript: a call from native code
/// would first have to look `JSON.parse` up, which costs more than the parse.
fn text_value<'e>(env: &'e Env, text: Option<String>) -> Result<Unknown<'e>, HootError> {
    let mut value = std::ptr::null_mut();
    // SAFETY: `env` is the live environment of the current call; the text outlives the call that
    // copies it, and `value` receives the new handle.
    let status = unsafe {
        let Some(text) = text else {
            napi::sys::napi_get_undefined(env.raw(), &mut value);
            return Ok(Unknown::from_raw_unchecked(env.raw(), value));
        };
        if text.is_ascii() {
            napi::sys::napi_create_string_latin1(env.raw(), text.as_ptr().cast(), text.len() as isize, &mut value)
        } else {
            napi::sys::napi_create_string_utf8(env.raw(), text.as_ptr().cast(), text.len() as isize, &mut value)
        }
    };
    if status != napi::sys::Status::napi_ok {
        return Err(HootError::Internal(format!("N-API could not create a string (status {status})")));
    }
    // SAFETY: N-API just created `value`, a valid handle in the current scope of `env`.
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
}

/// One user's OAuth state for remote MCP servers, in Hoot's SQLite database. Make one per request
/// with the user id from the verified token; every statement it runs is scoped to that user.
/// Methods are synchronous, like better-sqlite3, and return `undefined` when nothing is stored.
// The one shell that keeps its core type's name (the core's is `store::OAuthStore`): for a class
// whose Rust and JS names differ, napi build adds an `export type <RustName>` alias to index.d.ts
// and an export of it to the loader, which would put a Rust name into the package's types.
#[napi]
pub struct OAuthStore {
    inner: store::OAuthStore,
}

#[napi]
impl OAuthStore {
    /// Throws `ERR_INVALID_USER_ID` unless `userId` is a UUID v4, `'default-user'` or
    /// `'legacy-user-<digits>'`. Opening a database in Hoot's old single-user schema migrates it
    /// first (see `migrateDatabase`). `encryption: 'on'` (or `HOOT_ENCRYPT_AT_REST=1`) turns
    /// encryption at rest on for the database: from then on values are written sealed, and every
    /// process needs a key to open it (`ERR_HOOT_KEYS` otherwise).
    #[napi(constructor, ts_args_type = "userId: string, opts?: StoreOptions & { encryption?: 'on' | 'off' }")]
    pub fn new(env: Env, user_id: Unknown, opts: Option<Unknown>) -> napi::Result<Self> {
        guarded(&env, || {
            let user_id = string_value(&user_id, "userId")?;
            let props = Props::new(opts, "opts")?;
            let encrypt = match props.string("encryption")?.as_deref() {
                None | Some("off") => false,
                Some("on") => true,
                Some(_) => return Err(HootError::arg_value("opts.encryption", "must be 'on' or 'off'")),
            };
            let location = location(&props)?;
            let inner = store::OAuthStore::open(&user_id, location, clock::unix_now_ms())?;
            if encrypt {
                encryption::enable(inner.location().clone(), &Environment::process(), clock::unix_now() as i64)?;
            }
            Ok(OAuthStore { inner })
        })
    }

    /// The user every call is scoped to.
    #[napi(getter)]
    pub fn user_id(&self) -> String {
        self.inner.user_id().to_string()
    }

    /// Saves the OAuth client registration for `serverId` (from dynamic client registration), replacing any.
    #[napi(ts_args_type = "serverId: string, info: object")]
    pub fn save_client_information(&self, env: Env, server_id: Unknown, info: Unknown) -> napi::Result<()> {
        guarded(&env, || {
            let server_id = string_value(&server_id, "serverId")?;
            self.inner.save_client_information(&server_id, &json_object_arg(&env, info, "info")?)
        })
    }

    /// Saves the OAuth tokens for `serverId`, replacing any. Durable when it returns.
    #[napi(ts_args_type = "serverId: string, tokens: object")]
    pub fn save_tokens(&self, env: Env, server_id: Unknown, tokens: Unknown) -> napi::Result<()> {
        guarded(&env, || {
            let server_id = string_value(&server_id, "serverId")?;
            self.inner.save_tokens(&server_id, &json_object_arg(&env, tokens, "tokens")?)
        })
    }

    /// The PKCE code verifier saved for `serverId`; one older than 10 minutes is never returned.
    #[napi(ts_args_type = "serverId: string", ts_return_type = "string | undefined")]
    pub fn code_verifier(&self, env: Env, server_id: Unknown) -> napi::Result<Either<String, ()>> {
        guarded(&env, || {
            let verifier =
                self.inner.code_verifier(&string_value(&server_id, "serverId")?, clock::unix_now() as i64)?;
            Ok(verifier.map_or(Either::B(()), Either::A))
        })
    }

    /// Saves the PKCE code verifier for `serverId`, replacing any; it is readable for 10 minutes.
    #[napi(ts_args_type = "serverId: string, verifier: string")]
    pub fn save_code_verifier(&self, env: Env, server_id: Unknown, verifier: Unknown) -> napi::Result<()> {
        guarded(&env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let verifier = string_value(&verifier, "verifier")?;
            self.inner.save_code_verifier(&server_id, &verifier, clock::unix_now() as i64)
        })
    }

    /// Saves the MCP SDK's OAuth discovery state for `serverId`, replacing any; it lasts until
    /// `invalidateCredentials(serverId, 'discovery' | 'all')`.
    #[napi(ts_args_type = "serverId: string, state: object")]
    pub fn save_discovery_state(&self, env: Env, server_id: Unknown, state: Unknown) -> napi::Result<()> {
        guarded(&env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let state = json_object_arg(&env, state, "state")?;
            self.inner.save_discovery_state(&server_id, &state, clock::unix_now() as i64)
        })
    }

    /// Saves the OAuth `state` parameter of the authorization starting for `serverId`, replacing
    /// any; `consumeAuthorizationState` accepts it once, within 10 minutes.
    #[napi(ts_args_type = "serverId: string, state: string")]
    pub fn save_authorization_state(&self, env: Env, server_id: Unknown, state: Unknown) -> napi::Result<()> {
        guarded(&env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let state = string_value(&state, "state")?;
            self.inner.save_authorization_state(&server_id, &state, clock::unix_now() as i64)
        })
    }

    /// True when `state` is the one saved for `serverId` less than 10 minutes ago. The check uses
    /// the saved state up, whatever its outcome, so a replayed or forged callback is refused.
    #[napi(ts_args_type = "serverId: string, state: string")]
    pub fn consume_authorization_state(&self, env: Env, server_id: Unknown, state: Unknown) -> napi::Result<bool> {
        guarded(&env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let state = string_value(&state, "state")?;
            self.inner.consume_authorization_state(&server_id, &state, clock::unix_now() as i64)
        })
    }

    /// Removes credentials for `serverId`: `'all'` (client info, tokens, verifier and state, and
    /// discovery state; not the server config), `'client'`, `'tokens'`, `'verifier'` (with the
    /// authorization state) or `'discovery'`.
    /// With `expected`, the tokens and the client registration go only while they are still the
    /// versions named (`tokensVersioned`'s and `clientInformationVersioned`'s): credentials another
    /// holder saved since survive.
    #[napi(
        ts_args_type = "serverId: string, scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery', expected?: { tokens?: number; clientInformation?: number }"
    )]
    pub fn invalidate_credentials(
        &self,
        env: Env,
        server_id: Unknown,
        scope: Unknown,
        expected: Option<Unknown>,
    ) -> napi::Result<()> {
        guarded(&env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let scope = CredentialScope::parse(&string_value(&scope, "scope")?)?;
            let expected = expected_versions(expected)?;
            self.inner.invalidate_credentials_if(&server_id, scope, expected).map(|_| ())
        })
    }

    /// Claims the OAuth refresh of this user's credential for `serverId` for `holder` (an id unique
    /// to this attempt) for `opts.leaseMs` (1 to 600000), unless another holder's claim is live.
    /// Returns whether `holder` has it. The provider's `fetch` uses it; see README's "Refreshing".
    #[napi(ts_args_type = "serverId: string, holder: string, opts: { leaseMs: number }")]
    pub fn claim_refresh(
        &self,
        env: Env,
        server_id: Unknown,
        holder: Unknown,
        opts: Option<Unknown>,
    ) -> napi::Result<bool> {
        guarded(&env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let holder = string_value(&holder, "holder")?;
            let lease_ms = lease_ms(opts)?;
            self.inner.claim_refresh(&server_id, &holder, clock::unix_now_ms(), lease_ms)
        })
    }

    /// Ends `holder`'s claim on the refresh for `serverId` (nothing when it has none).
    #[napi(ts_args_type = "serverId: string, holder: string")]
    pub fn release_refresh(&self, env: Env, server_id: Unknown, holder: Unknown) -> napi::Result<()> {
        guarded(&env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let holder = string_value(&holder, "holder")?;
            self.inner.release_refresh(&server_id, &holder)
        })
    }

    /// Saves the config of `serverId` (for reconnecting), replacing any.
    #[napi(ts_args_type = "serverId: string, config: object")]
    pub fn save_server_config(&self, env: Env, server_id: Unknown, config: Unknown) -> napi::Result<()> {
        guarded(&env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let config = json_object_arg(&env, config, "config")?;
            self.inner.save_server_config(&server_id, &config, clock::unix_now() as i64)
        })
    }

    /// Removes the config of `serverId`.
    #[napi(ts_args_type = "serverId: string")]
    pub fn delete_server_config(&self, env: Env, server_id: Unknown) -> napi::Result<()> {
        guarded(&env, || self.inner.delete_server_config(&string_value(&server_id, "serverId")?).map(|_| ()))
    }

    /// Records that this user is active now, for `activitySummary` and `purgeInactiveUsers`. Cheap
    /// enough for every request: at most one write per user per hour in a process. Returns whether
    /// this call wrote.
    #[napi]
    pub fn touch(&self, env: Env) -> napi::Result<bool> {
        guarded(&env, || self.inner.touch(clock::unix_now() as i64, users::TOUCH_INTERVAL_SECONDS))
    }

    /// A one-time code that moves this user to another device (`redeemTransferCode` there), valid
    /// `opts.ttlSeconds` (default 600, 30 to 3,600). It replaces any code this user had; only a
    /// MAC of it under the store secret is stored. `opts.tokenIssuedAt` is the `iat` of the token
    /// the request was verified with (defaults to now): revoking that user's tokens ends the code.
    /// `expiresAt` is in seconds, like a token's `exp`.
    #[napi(ts_args_type = "opts?: { ttlSeconds?: number; tokenIssuedAt?: number }", ts_return_type = "TransferCode")]
    pub fn create_transfer_code(&self, env: Env, opts: Option<Unknown>) -> napi::Result<JsTransferCode> {
        guarded(&env, || {
            let props = Props::new(opts, "opts")?;
            let ttl = identity::code_ttl(props.number("ttlSeconds")?)?;
            let now = clock::unix_now() as i64;
            let derived_from = identity::derived_from(props.number("tokenIssuedAt")?, now)?;
            let (code, expires_at) = self.inner.create_transfer_code(ttl, derived_from, now)?;
            Ok(JsTransferCode { code, expires_at: expires_at as f64 })
        })
    }

    /// Links an account id (any identity provider's, opaque; validated like a server id) to this
    /// user, so `userIdForAccount` finds them from another device. An account linked to another
    /// user is refused.
    #[napi(ts_args_type = "accountId: string")]
    pub fn link_account(&self, env: Env, account_id: Unknown) -> napi::Result<()> {
        guarded(&env, || self.inner.link_account(&string_value(&account_id, "accountId")?, clock::unix_now() as i64))
    }

    /// Unlinks an account from this user; true if it was linked to them.
    #[napi(ts_args_type = "accountId: string")]
    pub fn unlink_account(&self, env: Env, account_id: Unknown) -> napi::Result<bool> {
        guarded(&env, || self.inner.unlink_account(&string_value(&account_id, "accountId")?))
    }

    /// Server ids with any stored state for this user, sorted.
    #[napi]
    pub fn servers(&self, env: Env) -> napi::Result<Vec<String>> {
        guarded(&env, || self.inner.servers())
    }

    /// Forgets this user: removes their rows from every table (server configs, activity and
    /// account links included) in one transaction and returns how many were removed. With
    /// `opts.revokeTokens`, their tokens are revoked too ("forget me"), as `revokeUserTokens`.
    #[napi(ts_args_type = "opts?: { revokeTokens?: boolean }")]
    pub fn delete_all(&self, env: Env, opts: Option<Unknown>) -> napi::Result<u32> {
        guarded(&env, || {
            let revoke = Props::new(opts, "opts")?.boolean("revokeTokens")?.unwrap_or(false);
            Ok(count(self.inner.delete_all(revoke.then(|| clock::unix_now() as i64))?))
        })
    }
}

// The readers behind `clientInformation`, `tokens` and `serverConfig` (lib/store.js). Functions
// rather than methods, so that nothing but the typed API is visible on a store; not exported by
// the package entry.

/// The stored client information's JSON text, or `undefined`.
#[napi(js_name = "storeClientInformationText", skip_typescript)]
pub fn store_client_information_text<'e>(
    env: &'e Env,
    store: &OAuthStore,
    server_id: Unknown,
) -> napi::Result<Unknown<'e>> {
    guarded(env, || text_value(env, store.inner.client_information(&string_value(&server_id, "serverId")?)?))
}

/// The stored tokens' JSON text, or `undefined`.
#[napi(js_name = "storeTokensText", skip_typescript)]
pub fn store_tokens_text<'e>(env: &'e Env, store: &OAuthStore, server_id: Unknown) -> napi::Result<Unknown<'e>> {
    guarded(env, || text_value(env, store.inner.tokens(&string_value(&server_id, "serverId")?)?))
}

/// A versioned value as one text, `<version>:<JSON>`, which `database.js` splits: one string
/// crosses, as for the unversioned reads (both backends).
pub(super) fn versioned_text(value: Option<(String, i64)>) -> Option<String> {
    value.map(|(text, version)| format!("{version}:{text}"))
}

/// The stored tokens as `<version>:<JSON text>`, or `undefined`.
#[napi(js_name = "storeTokensVersioned", skip_typescript)]
pub fn store_tokens_versioned<'e>(env: &'e Env, store: &OAuthStore, server_id: Unknown) -> napi::Result<Unknown<'e>> {
    guarded(env, || {
        text_value(env, versioned_text(store.inner.tokens_versioned(&string_value(&server_id, "serverId")?)?))
    })
}

/// The stored client registration as `<version>:<JSON text>`, or `undefined`.
#[napi(js_name = "storeClientInformationVersioned", skip_typescript)]
pub fn store_client_information_versioned<'e>(
    env: &'e Env,
    store: &OAuthStore,
    server_id: Unknown,
) -> napi::Result<Unknown<'e>> {
    guarded(env, || {
        let server_id = string_value(&server_id, "serverId")?;
        text_value(env, versioned_text(store.inner.client_information_versioned(&server_id)?))
    })
}

/// `expected` of `invalidateCredentials`: `{ tokens?, clientInformation? }`, each a version read
/// before (a whole number from 0 to 2^53 - 1).
pub(super) fn expected_versions(value: Option<Unknown>) -> Result<Expected, HootError> {
    let props = Props::new(value, "expected")?;
    let version = |key: &str| -> Result<Option<i64>, HootError> {
        match props.number(key)? {
            None => Ok(None),
            Some(n) if n.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(&n) => Ok(Some(n as i64)),
            Some(n) => Err(HootError::out_of_range(
                format!("expected.{key}"),
                format!("must be a version read from the store (a whole number from 0 to 2^53 - 1). Received {n}"),
            )),
        }
    };
    Ok(Expected { tokens: version("tokens")?, client_information: version("clientInformation")? })
}

/// `opts.leaseMs` of `claimRefresh` (required; the store checks its range).
pub(super) fn lease_ms(opts: Option<Unknown>) -> Result<i64, HootError> {
    match Props::new(opts, "opts")?.number("leaseMs")? {
        Some(n) if n.fract() == 0.0 && n.is_finite() => Ok(n as i64),
        Some(n) => Err(HootError::out_of_range("opts.leaseMs", format!("must be a whole number of ms. Received {n}"))),
        None => Err(HootError::arg_type("opts.leaseMs", "of type number", "undefined".to_string())),
    }
}

/// The stored discovery state's JSON text, or `undefined`.
#[napi(js_name = "storeDiscoveryStateText", skip_typescript)]
pub fn store_discovery_state_text<'e>(
    env: &'e Env,
    store: &OAuthStore,
    server_id: Unknown,
) -> napi::Result<Unknown<'e>> {
    guarded(env, || text_value(env, store.inner.discovery_state(&string_value(&server_id, "serverId")?)?))
}

/// The stored server config's JSON text, or `undefined`.
#[napi(js_name = "storeServerConfigText", skip_typescript)]
pub fn store_server_config_text<'e>(env: &'e Env, store: &OAuthStore, server_id: Unknown) -> napi::Result<Unknown<'e>> {
    guarded(env, || text_value(env, store.inner.server_config(&string_value(&server_id, "serverId")?)?))
}

/// What `migrateDatabase` did.
#[napi(object, js_name = "MigrationReport", object_from_js = false)]
pub struct JsMigrationReport {
    /// True when legacy single-user tables were converted (empty ones included).
    pub migrated: bool,
    /// The user the legacy rows now belong to.
    pub legacy_user_id: Option<String>,
    /// Rows moved into `oauth_tokens` (0 when nothing was migrated).
    pub tokens: u32,
    /// Rows moved into `oauth_client_info`.
    pub client_info: u32,
    /// Rows moved into `oauth_verifiers`.
    pub verifiers: u32,
    /// `PRAGMA user_version` after the call.
    pub schema_version: u32,
    /// The copy of the database taken before migrating.
    pub backup_path: Option<String>,
    /// Legacy rows that collided on a key (two NULL server ids, or a NULL and an empty one) and
    /// were kept aside, whole, in `conflictsTable` instead: present only when there were any.
    pub conflicts: Option<u32>,
    /// The table holding them, `hoot_migration_conflicts` (Hoot's queries never read it).
    pub conflicts_table: Option<String>,
    /// Rows whose UUID user id was in upper case and is now lower case (one browser secret, one
    /// user): present only when there were any.
    pub user_ids_lowered: Option<u32>,
}

fn count(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Brings a database to hoot-core's schema: creates missing tables and converts Hoot's old
/// single-user tables, moving every row to one `legacy-user-<unix ms>` id (or one already there).
/// All in one transaction, after a backup next to the file. Idempotent. Throws `ERR_HOOT_DB` for a
/// file that is not a SQLite database, leaving it untouched.
#[napi(ts_args_type = "dbPath?: string")]
pub fn migrate_database(env: Env, db_path: Option<Unknown>) -> napi::Result<JsMigrationReport> {
    guarded(&env, || {
        let report = store::migrate_database(location_arg(db_path)?, clock::unix_now_ms())?;
        Ok(JsMigrationReport {
            migrated: report.migrated,
            legacy_user_id: report.legacy_user_id,
            tokens: count(report.tokens),
            client_info: count(report.client_info),
            verifiers: count(report.verifiers),
            schema_version: u32::try_from(report.schema_version).unwrap_or(0),
            backup_path: report.backup_path.map(|p| p.display().to_string()),
            conflicts: (report.conflicts > 0).then(|| count(report.conflicts)),
            conflicts_table: (report.conflicts > 0).then(|| store::schema::CONFLICTS_TABLE.to_string()),
            user_ids_lowered: (report.user_ids_lowered > 0).then(|| count(report.user_ids_lowered)),
        })
    })
}

/// Deletes every user's PKCE verifiers older than `maxAgeSeconds` (default 600) and returns
/// how many were removed.
#[napi(ts_args_type = "opts?: StoreOptions & { maxAgeSeconds?: number }")]
pub fn cleanup_expired_verifiers(env: Env, opts: Option<Unknown>) -> napi::Result<u32> {
    guarded(&env, || {
        let props = Props::new(opts, "opts")?;
        let max_age = store::verifier_max_age(props.number("maxAgeSeconds")?)?;
        store::cleanup_expired_verifiers(location(&props)?, max_age, clock::unix_now() as i64).map(count)
    })
}

/// The favicon cached for `serverUrl` in the last 24 hours (shared by all users): a URL, `null`
/// when the lookup found none, or `undefined` when nothing is cached. Hoot's rule for
/// `oauthLogoUri`: a row cached without one always matches.
#[napi(
    ts_args_type = "serverUrl: string, oauthLogoUri?: string, opts?: StoreOptions",
    ts_return_type = "string | null | undefined"
)]
pub fn get_cached_favicon(
    env: Env,
    server_url: Unknown,
    oauth_logo_uri: Option<Unknown>,
    opts: Option<Unknown>,
) -> napi::Result<Either<Option<String>, ()>> {
    guarded(&env, || {
        let server_url = string_value(&server_url, "serverUrl")?;
        let logo = optional_string(oauth_logo_uri, "oauthLogoUri")?;
        let location = location(&Props::new(opts, "opts")?)?;
        let cached = store::cached_favicon(location, &server_url, logo.as_deref(), clock::unix_now() as i64)?;
        Ok(match cached {
            Some(url) => Either::A(url),
            None => Either::B(()),
        })
    })
}

/// Caches a favicon lookup for 24 hours; `faviconUrl: null` records that there is none.
#[napi(ts_args_type = "serverUrl: string, faviconUrl: string | null, oauthLogoUri?: string, opts?: StoreOptions")]
pub fn cache_favicon(
    env: Env,
    server_url: Unknown,
    favicon_url: Unknown,
    oauth_logo_uri: Option<Unknown>,
    opts: Option<Unknown>,
) -> napi::Result<()> {
    guarded(&env, || {
        let server_url = string_value(&server_url, "serverUrl")?;
        let favicon = match type_of(&favicon_url)? {
            ValueType::Null => None,
            _ => Some(
                string_value(&favicon_url, "faviconUrl")
                    .map_err(|_| HootError::arg_type("faviconUrl", "of type string or null", describe(&favicon_url)))?,
            ),
        };
        let logo = optional_string(oauth_logo_uri, "oauthLogoUri")?;
        let location = location(&Props::new(opts, "opts")?)?;
        store::cache_favicon(location, &server_url, favicon.as_deref(), logo.as_deref(), clock::unix_now() as i64)
    })
}

/// Closes the database at `dbPath` (for shutdown); without an argument, every database this
/// process opened. A store used afterwards opens its database again.
#[napi(ts_args_type = "dbPath?: string")]
pub fn close_database(env: Env, db_path: Option<Unknown>) -> napi::Result<()> {
    guarded(&env, || {
        match optional_string(db_path, "dbPath")? {
            None => db::close_all(),
            Some(path) => {
                db::close(db::location(Some(&path), "dbPath", &Environment::process())?)?;
            }
        }
        Ok(())
    })
}

/// Revokes every token of `userId` issued before now: this process refuses them at once, every
/// other process sharing the database within 2 seconds. Tokens issued from the next second on
/// verify again. Cached verifications are dropped, so none answers for a revoked token.
#[napi(ts_args_type = "userId: string, opts?: StoreOptions")]
pub fn revoke_user_tokens(env: Env, user_id: Unknown, opts: Option<Unknown>) -> napi::Result<()> {
    guarded(&env, || {
        let user_id = string_value(&user_id, "userId")?;
        revocations::revoke_user_tokens(location(&Props::new(opts, "opts")?)?, &user_id, clock::unix_now() as i64)
            .map(|_| ())
    })
}

/// A transfer code and when it expires (seconds).
#[napi(object, js_name = "TransferCode", object_from_js = false)]
pub struct JsTransferCode {
    /// Three groups of four symbols (`7KQ4-M9XR-2HBT`); case, spaces and dashes do not matter.
    pub code: String,
    /// When it stops working, in seconds since the epoch.
    pub expires_at: f64,
}

/// What `moveUserData` did (and what a legacy code's redemption moved).
#[napi(object, js_name = "MoveReport", object_from_js = false)]
pub struct JsMoveReport {
    /// Rows that now belong to the target user.
    pub moved: u32,
    /// Target rows replaced by the source's (`'take-source'`).
    pub replaced: u32,
    /// Source rows dropped for the target's (`'keep-target'`).
    pub dropped: u32,
    /// Rows (table and server) both users had.
    pub conflicts: u32,
}

pub(super) fn move_js(m: identity::MoveReport) -> JsMoveReport {
    JsMoveReport {
        moved: count(m.moved),
        replaced: count(m.replaced),
        dropped: count(m.dropped),
        conflicts: count(m.conflicts),
    }
}

/// What `redeemTransferCode` gave.
#[napi(object, js_name = "RedeemedTransfer", object_from_js = false)]
pub struct JsRedeemed {
    /// The user this device now is: issue it a token.
    pub user_id: String,
    /// For a legacy code: what moved into `opts.intoUserId`.
    pub moved: Option<JsMoveReport>,
}

/// Redeems a transfer code made by `store.createTransferCode` (in any process on the database):
/// once, before it expires. An unknown, expired or used code, or one ended by `revokeUserTokens`,
/// throws `ERR_HOOT_TRANSFER_CODE`. `opts.source` names the client (its address): after 10
/// failures from one source in 10 minutes its redemptions throw `ERR_HOOT_TRANSFER_THROTTLED`, and
/// after 100 in all (each source counting at most 10) every redemption does, until the window
/// ends. A legacy user's code (`legacyTransferCode`) needs `opts.intoUserId`, the redeeming
/// browser's user, into which the legacy data moves.
#[napi(ts_args_type = "code: string, opts?: { intoUserId?: string; source?: string; dbPath?: string }")]
pub fn redeem_transfer_code(env: Env, code: Unknown, opts: Option<Unknown>) -> napi::Result<JsRedeemed> {
    guarded(&env, || {
        let code = string_value(&code, "code")?;
        let props = Props::new(opts, "opts")?;
        let into = props.string("intoUserId")?;
        let source = props.string("source")?;
        let redeemed = store::redeem_transfer_code(
            location(&props)?,
            &code,
            into.as_deref(),
            source.as_deref(),
            clock::unix_now() as i64,
        )?;
        Ok(JsRedeemed { user_id: redeemed.user_id, moved: redeemed.moved.map(move_js) })
    })
}

/// Moves every row of `fromUserId` to `toUserId` in one transaction and empties `fromUserId`.
/// `opts.onConflict` says what happens where both have state for a server: `'fail'` (the default:
/// nothing moves), `'keep-target'` or `'take-source'`.
#[napi(
    ts_args_type = "fromUserId: string, toUserId: string, opts?: { onConflict?: 'fail' | 'keep-target' | 'take-source'; dbPath?: string }"
)]
pub fn move_user_data(env: Env, from: Unknown, to: Unknown, opts: Option<Unknown>) -> napi::Result<JsMoveReport> {
    guarded(&env, || {
        let from = string_value(&from, "fromUserId")?;
        let to = string_value(&to, "toUserId")?;
        let props = Props::new(opts, "opts")?;
        let on_conflict = match props.string("onConflict")? {
            Some(value) => identity::OnConflict::parse(&value)?,
            None => identity::OnConflict::Fail,
        };
        store::move_user_data(location(&props)?, &from, &to, on_conflict, clock::unix_now() as i64).map(move_js)
    })
}

/// The user an account is linked to, or `undefined`.
#[napi(ts_args_type = "accountId: string, opts?: StoreOptions", ts_return_type = "string | undefined")]
pub fn user_id_for_account(env: Env, account_id: Unknown, opts: Option<Unknown>) -> napi::Result<Either<String, ()>> {
    guarded(&env, || {
        let account_id = string_value(&account_id, "accountId")?;
        let found =
            store::user_id_for_account(location(&Props::new(opts, "opts")?)?, &account_id, clock::unix_now() as i64)?;
        Ok(found.map_or(Either::B(()), Either::A))
    })
}

/// A legacy transfer code and the legacy user it moves.
#[napi(object, js_name = "LegacyTransferCode", object_from_js = false)]
pub struct JsLegacyTransferCode {
    /// The code to redeem (with `intoUserId`) from the browser that should get the data.
    pub code: String,
    /// When it stops working, in seconds since the epoch.
    pub expires_at: f64,
    /// The `legacy-user-<ms>` the migration gave the single-user install's data.
    pub legacy_user_id: String,
}

/// A transfer code for the legacy user a migration made (`legacy-user-<ms>`), so that its OAuth
/// state, which no browser token can reach, moves to the browser that redeems it; `null` when the
/// database holds no legacy data. `npx hoot-core adopt-legacy` prints it.
#[napi(ts_args_type = "opts?: { ttlSeconds?: number; dbPath?: string }", ts_return_type = "LegacyTransferCode | null")]
pub fn legacy_transfer_code(env: Env, opts: Option<Unknown>) -> napi::Result<Option<JsLegacyTransferCode>> {
    guarded(&env, || {
        let props = Props::new(opts, "opts")?;
        let ttl = identity::code_ttl(props.number("ttlSeconds")?)?;
        let made = store::legacy_transfer_code(location(&props)?, ttl, clock::unix_now() as i64)?;
        Ok(made.map(|(legacy_user_id, code, expires_at)| JsLegacyTransferCode {
            code,
            expires_at: expires_at as f64,
            legacy_user_id,
        }))
    })
}

/// How many users a database knows and how many were active lately: counts only, never an id.
#[napi(object, js_name = "ActivitySummary", object_from_js = false)]
#[derive(Clone, Copy)]
pub struct JsActivitySummary {
    /// Users with recorded activity or any stored data.
    pub users: u32,
    /// Users active in the last day.
    #[napi(js_name = "active1d")]
    pub active1d: u32,
    /// Users active in the last 7 days.
    #[napi(js_name = "active7d")]
    pub active7d: u32,
    /// Users active in the last 30 days.
    #[napi(js_name = "active30d")]
    pub active30d: u32,
    /// Users with data but no recorded activity (from before `touch()` was called for them).
    pub untracked: u32,
}

/// Counts of the users in the database and of those active in the last 1, 7 and 30 days (by
/// `store.touch()`). Names no one.
#[napi(ts_args_type = "opts?: StoreOptions")]
pub fn activity_summary(env: Env, opts: Option<Unknown>) -> napi::Result<JsActivitySummary> {
    guarded(&env, || {
        let summary = users::activity_summary(location(&Props::new(opts, "opts")?)?, clock::unix_now() as i64)?;
        Ok(summary_js(summary))
    })
}

pub(super) fn summary_js(s: users::ActivitySummary) -> JsActivitySummary {
    JsActivitySummary {
        users: count(s.users),
        active1d: count(s.active_1d),
        active7d: count(s.active_7d),
        active30d: count(s.active_30d),
        untracked: count(s.untracked),
    }
}

/// What `purgeInactiveUsers` removed (or would remove, in a dry run).
#[napi(object, js_name = "PurgeReport", object_from_js = false)]
pub struct JsPurgeReport {
    /// Users whose data was removed.
    pub users: u32,
    /// Rows removed, in every table.
    pub rows: u32,
    /// Users with data but no recorded activity, counted as active from this run on.
    pub adopted: u32,
    /// True when nothing was changed.
    pub dry_run: bool,
}

/// Removes, in one transaction, every row of each user inactive for more than `inactiveDays`
/// days. A user with data but no recorded activity is recorded as active by the first run that
/// sees them, so data from before `touch()` is never purged on upgrade.
#[napi(ts_args_type = "opts: { inactiveDays: number; dryRun?: boolean; dbPath?: string }")]
pub fn purge_inactive_users(env: Env, opts: Option<Unknown>) -> napi::Result<JsPurgeReport> {
    guarded(&env, || {
        let props = Props::new(opts, "opts")?;
        let days = props
            .number("inactiveDays")?
            .ok_or_else(|| HootError::arg_type("opts.inactiveDays", "of type number", "undefined".to_string()))?;
        let days = users::inactive_days(days)?;
        let dry_run = props.boolean("dryRun")?.unwrap_or(false);
        let report = users::purge_inactive_users(location(&props)?, days, dry_run, clock::unix_now() as i64)?;
        Ok(JsPurgeReport {
            users: count(report.users),
            rows: count(report.rows),
            adopted: count(report.adopted),
            dry_run: report.dry_run,
        })
    })
}

/// The schema state of a database, as `inspectDatabase` reports it.
#[napi(object, js_name = "DatabaseStatus", object_from_js = false)]
pub struct JsDatabaseStatus {
    /// The file looked at (or `':memory:'`).
    pub path: String,
    /// Whether the file exists.
    pub exists: bool,
    /// `PRAGMA user_version`: 1 once hoot-core has completed the schema, 0 for Hoot's own files.
    pub schema_version: u32,
    /// Tables still in Hoot's old single-user form, which `migrateDatabase` converts.
    pub legacy_tables: Vec<String>,
    /// Tables `migrateDatabase` would create.
    pub missing_tables: Vec<String>,
    /// Tables holding UUID user ids in upper case, which `migrateDatabase` lowers.
    pub mixed_case_tables: Vec<String>,
    /// True when `migrateDatabase` would change nothing.
    pub up_to_date: bool,
    /// The users' activity (as `activitySummary`), when every table is there to count it.
    pub activity: Option<JsActivitySummary>,
    /// Encryption at rest, when every table is there to look at.
    #[napi(ts_type = "EncryptionStatus")]
    pub encryption: Option<JsEncryptionStatus>,
}

/// Encryption at rest of a database, as `inspectDatabase` (and `doctor`) report it.
#[napi(object, js_name = "EncryptionStatus", object_from_js = false)]
pub struct JsEncryptionStatus {
    /// True when the database records a key: every process then needs one of its keys.
    pub encrypted: bool,
    /// The ids of the keys it records (never the keys).
    pub key_ids: Vec<String>,
    /// Sealed values per key id.
    pub sealed: std::collections::HashMap<String, u32>,
    /// Values still in plaintext (an older writer's, or from before `encrypt`).
    pub plaintext: u32,
    /// Rows a migration kept aside (`hoot_migration_conflicts`): plaintext whatever the encryption.
    pub kept_aside: u32,
}

/// What `encryptDatabase` / `decryptDatabase` did.
#[napi(object, js_name = "EncryptionReport", object_from_js = false)]
pub struct JsEncryptionReport {
    /// Values sealed (or sealed again under the current key).
    pub sealed: u32,
    /// Values opened back into plaintext.
    pub opened: u32,
    /// The key ids the database records afterwards.
    pub key_ids: Vec<String>,
}

pub(super) fn transition_js(t: encryption::Transition) -> JsEncryptionReport {
    JsEncryptionReport { sealed: count(t.sealed), opened: count(t.opened), key_ids: t.key_ids }
}

/// Seals every plaintext value of the database in one transaction, with the key from
/// `HOOT_ENCRYPTION_KEY` or the key file (made on first use). With `rotate`, a new key goes
/// first in the key file (with `HOOT_ENCRYPTION_KEY`, put it first there) and every value is
/// sealed again under it. From then on every process needs a key to open the database.
#[napi(ts_args_type = "opts?: { dbPath?: string; rotate?: boolean }")]
pub fn encrypt_database(env: Env, opts: Option<Unknown>) -> napi::Result<JsEncryptionReport> {
    guarded(&env, || {
        let props = Props::new(opts, "opts")?;
        let rotate = props.boolean("rotate")?.unwrap_or(false);
        let location = location(&props)?;
        encryption::encrypt_database(location, &Environment::process(), rotate, clock::unix_now() as i64)
            .map(transition_js)
    })
}

/// Opens every sealed value back into plaintext in one transaction and marks the database plain
/// (for going back to Hoot's own code). Stop the other servers on the database first.
#[napi(ts_args_type = "opts?: StoreOptions")]
pub fn decrypt_database(env: Env, opts: Option<Unknown>) -> napi::Result<JsEncryptionReport> {
    guarded(&env, || {
        let location = location(&Props::new(opts, "opts")?)?;
        encryption::decrypt_database(location, &Environment::process(), clock::unix_now() as i64).map(transition_js)
    })
}

/// Reads a database's schema state through a read-only connection: nothing is created, migrated
/// or written. Throws `ERR_HOOT_DB` for a file that is not a SQLite database.
#[napi(ts_args_type = "dbPath?: string")]
pub fn inspect_database(env: Env, db_path: Option<Unknown>) -> napi::Result<JsDatabaseStatus> {
    guarded(&env, || {
        let location = location_arg(db_path)?;
        let status = store::inspect_database(location.clone(), clock::unix_now() as i64)?;
        let up_to_date = status.up_to_date();
        Ok(status_js(location.display(), status, up_to_date))
    })
}

/// A database's status as JavaScript sees it (`inspectDatabase`, and PostgreSQL's `inspect`).
pub(super) fn status_js(path: String, status: store::DatabaseStatus, up_to_date: bool) -> JsDatabaseStatus {
    JsDatabaseStatus {
        path,
        exists: status.exists,
        schema_version: u32::try_from(status.schema_version).unwrap_or(0),
        up_to_date,
        legacy_tables: status.legacy_tables,
        missing_tables: status.missing_tables,
        mixed_case_tables: status.mixed_case_tables,
        activity: status.activity.map(summary_js),
        encryption: status.encryption.map(|e| JsEncryptionStatus {
            encrypted: e.encrypted,
            key_ids: e.key_ids,
            sealed: e.sealed.into_iter().map(|(id, n)| (id, count(n))).collect(),
            plaintext: count(e.plaintext),
            kept_aside: count(e.kept_aside),
        }),
    }
}
