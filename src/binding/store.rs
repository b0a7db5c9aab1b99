//! The store's JavaScript face: `OAuthStore`, `migrateDatabase`, the favicon cache and
//! `closeDatabase`. Values cross as JSON text made and read by V8's own `JSON.stringify` and
//! `JSON.parse`, so what is stored is byte for byte what Hoot's `JSON.stringify(tokens)` stored.

use napi::bindgen_prelude::{Either, Function, Object};
use napi::bindgen_prelude::JsObjectValue;
use napi::{Env, JsValue, Unknown, ValueType};
use napi_derive::napi;

use super::{describe, guarded, napi_failure, string_value, take_pending_exception, type_of, Props};
use crate::clock;
use crate::error::HootError;
use crate::store::{self, db, CredentialScope, DbLocation, JsonObject};

/// Where the database is.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct StoreOptions {
    /// The SQLite file, or `':memory:'` for one in-memory database shared by the process.
    /// Defaults to `$HOOT_DB_PATH`, else `~/.hoot/hoot-mcp.db`.
    pub db_path: Option<String>,
}

fn db_path_value(value: &Unknown, name: &str) -> Result<String, HootError> {
    let path = string_value(value, name)?;
    if path.is_empty() {
        return Err(HootError::arg_value(name, "must not be empty"));
    }
    Ok(path)
}

fn location(props: &Props) -> Result<DbLocation, HootError> {
    let path = props.get("dbPath")?.map(|(v, name)| db_path_value(&v, &name)).transpose()?;
    db::location_from_process(path.as_deref())
}

/// A string argument that may be left out (`undefined` or `null`).
fn optional_string(value: Option<Unknown>, name: &str) -> Result<Option<String>, HootError> {
    match value {
        None => Ok(None),
        Some(v) => match type_of(&v)? {
            ValueType::Undefined | ValueType::Null => Ok(None),
            _ => string_value(&v, name).map(Some),
        },
    }
}

fn json_function<'e>(env: &'e Env, name: &str) -> Result<Function<'e, Unknown<'e>, Unknown<'e>>, HootError> {
    let global = env.get_global().map_err(napi_failure)?;
    let json: Object = global.get_named_property("JSON").map_err(napi_failure)?;
    json.get_named_property(name).map_err(napi_failure)
}

/// `JSON.stringify(value)` for a plain object argument, checked as a storable JSON object.
fn json_object_arg(env: &Env, value: Unknown, name: &str) -> Result<JsonObject, HootError> {
    match type_of(&value)? {
        ValueType::Object if !value.is_array().map_err(napi_failure)? => {}
        ValueType::Undefined | ValueType::Function | ValueType::Symbol | ValueType::BigInt => {
            return Err(HootError::arg_type(name, "a JSON object", describe(&value)))
        }
        _ => return Err(HootError::arg_value(name, format!("must be a JSON object. Received {}", describe(&value)))),
    }
    let text = match json_function(env, "stringify")?.call(value) {
        Ok(text) => text,
        Err(e) => {
            // napi usually hands the thrown error back in `e`; if it is still pending, take it.
            let reason = take_pending_exception(env).map_or(e.reason, |pending| pending.reason);
            return Err(HootError::arg_value(name, format!("must be serialisable as JSON: {reason}")));
        }
    };
    if type_of(&text)? != ValueType::String {
        return Err(HootError::arg_value(name, "must be a JSON object"));
    }
    JsonObject::new(unsafe { text.cast::<String>() }.map_err(napi_failure)?, name)
}

/// Stored JSON text as a JS string (Latin-1 when it is ASCII, which V8 copies without decoding),
/// or `undefined`. `store.js` parses it with `JSON.parse` in JavaScript: a call from native code
/// would first have to look `JSON.parse` up, which costs more than the parse.
fn text_value<'e>(env: &'e Env, text: Option<String>) -> Result<Unknown<'e>, HootError> {
    let mut value = std::ptr::null_mut();
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
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
}

/// One user's OAuth state for remote MCP servers, in Hoot's SQLite database. Make one per request
/// with the user id from the verified token; every statement it runs is scoped to that user.
/// Methods are synchronous, like better-sqlite3, and return `undefined` when nothing is stored.
#[napi]
pub struct OAuthStore {
    inner: store::OAuthStore,
}

#[napi]
impl OAuthStore {
    /// Throws `ERR_INVALID_USER_ID` unless `userId` is a UUID v4, `'default-user'` or
    /// `'legacy-user-<digits>'`. Opening a database in Hoot's old single-user schema migrates it
    /// first (see `migrateDatabase`).
    #[napi(constructor, ts_args_type = "userId: string, opts?: StoreOptions")]
    pub fn new(env: Env, user_id: Unknown, opts: Option<Unknown>) -> napi::Result<Self> {
        guarded(&env, || {
            let user_id = string_value(&user_id, "userId")?;
            let location = location(&Props::new(opts, "opts")?)?;
            Ok(OAuthStore { inner: store::OAuthStore::open(&user_id, location, clock::unix_now_ms())? })
        })
    }

    /// The user every call is scoped to.
    #[napi(getter)]
    pub fn user_id(&self) -> String {
        self.inner.user_id().to_string()
    }

    #[napi(ts_args_type = "serverId: string, info: object")]
    pub fn save_client_information(&self, env: Env, server_id: Unknown, info: Unknown) -> napi::Result<()> {
        guarded(&env, || {
            let server_id = string_value(&server_id, "serverId")?;
            self.inner.save_client_information(&server_id, &json_object_arg(&env, info, "info")?)
        })
    }

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
            let verifier = self.inner.code_verifier(&string_value(&server_id, "serverId")?, clock::unix_now() as i64)?;
            Ok(verifier.map_or(Either::B(()), Either::A))
        })
    }

    #[napi(ts_args_type = "serverId: string, verifier: string")]
    pub fn save_code_verifier(&self, env: Env, server_id: Unknown, verifier: Unknown) -> napi::Result<()> {
        guarded(&env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let verifier = string_value(&verifier, "verifier")?;
            self.inner.save_code_verifier(&server_id, &verifier, clock::unix_now() as i64)
        })
    }

    /// Removes credentials for `serverId`: `'all'` (client info, tokens and verifier, not the
    /// server config), `'client'`, `'tokens'` or `'verifier'`.
    #[napi(ts_args_type = "serverId: string, scope: 'all' | 'client' | 'tokens' | 'verifier'")]
    pub fn invalidate_credentials(&self, env: Env, server_id: Unknown, scope: Unknown) -> napi::Result<()> {
        guarded(&env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let scope = CredentialScope::parse(&string_value(&scope, "scope")?)?;
            self.inner.invalidate_credentials(&server_id, scope).map(|_| ())
        })
    }

    #[napi(ts_args_type = "serverId: string, config: object")]
    pub fn save_server_config(&self, env: Env, server_id: Unknown, config: Unknown) -> napi::Result<()> {
        guarded(&env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let config = json_object_arg(&env, config, "config")?;
            self.inner.save_server_config(&server_id, &config, clock::unix_now() as i64)
        })
    }

    #[napi(ts_args_type = "serverId: string")]
    pub fn delete_server_config(&self, env: Env, server_id: Unknown) -> napi::Result<()> {
        guarded(&env, || self.inner.delete_server_config(&string_value(&server_id, "serverId")?).map(|_| ()))
    }

    /// Server ids with any stored state for this user, sorted.
    #[napi]
    pub fn servers(&self, env: Env) -> napi::Result<Vec<String>> {
        guarded(&env, || self.inner.servers())
    }

    /// Forgets this user: removes their rows from every table (server configs included) in one
    /// transaction and returns how many were removed.
    #[napi]
    pub fn delete_all(&self, env: Env) -> napi::Result<u32> {
        guarded(&env, || self.inner.delete_all().map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
    }
}

// The readers behind `clientInformation`, `tokens` and `serverConfig` (lib/store.js). Functions
// rather than methods, so that nothing but the typed API is visible on a store; not exported by
// the package entry.

/// The stored client information's JSON text, or `undefined`.
#[napi(js_name = "storeClientInformationText", skip_typescript)]
pub fn store_client_information_text<'e>(env: &'e Env, store: &OAuthStore, server_id: Unknown) -> napi::Result<Unknown<'e>> {
    guarded(env, || text_value(env, store.inner.client_information(&string_value(&server_id, "serverId")?)?))
}

/// The stored tokens' JSON text, or `undefined`.
#[napi(js_name = "storeTokensText", skip_typescript)]
pub fn store_tokens_text<'e>(env: &'e Env, store: &OAuthStore, server_id: Unknown) -> napi::Result<Unknown<'e>> {
    guarded(env, || text_value(env, store.inner.tokens(&string_value(&server_id, "serverId")?)?))
}

/// The stored server config's JSON text, or `undefined`.
#[napi(js_name = "storeServerConfigText", skip_typescript)]
pub fn store_server_config_text<'e>(env: &'e Env, store: &OAuthStore, server_id: Unknown) -> napi::Result<Unknown<'e>> {
    guarded(env, || text_value(env, store.inner.server_config(&string_value(&server_id, "serverId")?)?))
}

/// What `migrateDatabase` did.
#[napi(object, object_from_js = false)]
pub struct MigrationReport {
    /// True when legacy single-user tables were converted (empty ones included).
    pub migrated: bool,
    /// The user the legacy rows now belong to.
    pub legacy_user_id: Option<String>,
    /// Rows moved, per table (0 when nothing was migrated).
    pub tokens: u32,
    pub client_info: u32,
    pub verifiers: u32,
    /// `PRAGMA user_version` after the call.
    pub schema_version: u32,
    /// The copy of the database taken before migrating.
    pub backup_path: Option<String>,
}

fn count(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Brings a database to hoot-core's schema: creates missing tables and converts Hoot's old
/// single-user tables, moving every row to one `legacy-user-<unix ms>` id (or one already there).
/// All in one transaction, after a backup next to the file. Idempotent. Throws `ERR_HOOT_DB` for a
/// file that is not a SQLite database, leaving it untouched.
#[napi(ts_args_type = "dbPath?: string")]
pub fn migrate_database(env: Env, db_path: Option<Unknown>) -> napi::Result<MigrationReport> {
    guarded(&env, || {
        let path = optional_string(db_path, "dbPath")?;
        if path.as_deref() == Some("") {
            return Err(HootError::arg_value("dbPath", "must not be empty"));
        }
        let report = store::migrate_database(db::location_from_process(path.as_deref())?, clock::unix_now_ms())?;
        Ok(MigrationReport {
            migrated: report.migrated,
            legacy_user_id: report.legacy_user_id,
            tokens: count(report.tokens),
            client_info: count(report.client_info),
            verifiers: count(report.verifiers),
            schema_version: u32::try_from(report.schema_version).unwrap_or(0),
            backup_path: report.backup_path.map(|p| p.display().to_string()),
        })
    })
}

/// Deletes every user's PKCE verifiers older than `maxAgeSeconds` (default 600) and returns
/// how many were removed.
#[napi(ts_args_type = "opts?: StoreOptions & { maxAgeSeconds?: number }")]
pub fn cleanup_expired_verifiers(env: Env, opts: Option<Unknown>) -> napi::Result<u32> {
    guarded(&env, || {
        let props = Props::new(opts, "opts")?;
        let max_age = match props.number("maxAgeSeconds")? {
            None => store::VERIFIER_TTL_SECONDS,
            Some(age) if age.fract() == 0.0 && (0.0..=1e12).contains(&age) => age as i64,
            Some(age) => {
                return Err(HootError::out_of_range("opts.maxAgeSeconds", format!("must be a whole number of seconds. Received {age}")))
            }
        };
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
            _ => Some(string_value(&favicon_url, "faviconUrl").map_err(|_| {
                HootError::arg_type("faviconUrl", "of type string or null", describe(&favicon_url))
            })?),
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
                db::close(db::location_from_process(Some(&path))?)?;
            }
        }
        Ok(())
    })
}

/// The schema state of a database, as `inspectDatabase` reports it.
#[napi(object, object_from_js = false)]
pub struct DatabaseStatus {
    /// The file looked at (or `':memory:'`).
    pub path: String,
    pub exists: bool,
    /// `PRAGMA user_version`: 1 once hoot-core has completed the schema, 0 for Hoot's own files.
    pub schema_version: u32,
    /// Tables still in Hoot's old single-user form, which `migrateDatabase` converts.
    pub legacy_tables: Vec<String>,
    /// Tables `migrateDatabase` would create.
    pub missing_tables: Vec<String>,
    /// True when `migrateDatabase` would change nothing.
    pub up_to_date: bool,
}

/// Reads a database's schema state through a read-only connection: nothing is created, migrated
/// or written. Throws `ERR_HOOT_DB` for a file that is not a SQLite database.
#[napi(ts_args_type = "dbPath?: string")]
pub fn inspect_database(env: Env, db_path: Option<Unknown>) -> napi::Result<DatabaseStatus> {
    guarded(&env, || {
        let path = optional_string(db_path, "dbPath")?;
        let location = db::location_from_process(path.as_deref())?;
        let status = store::inspect_database(location.clone())?;
        Ok(DatabaseStatus {
            path: location.display(),
            exists: status.exists,
            schema_version: u32::try_from(status.schema_version).unwrap_or(0),
            up_to_date: status.up_to_date(),
            legacy_tables: status.legacy_tables,
            missing_tables: status.missing_tables,
        })
    })
}
