//! `issueToken`, `issueTokenAsync`, the native half of `verifyToken` and `isValidUserId`.

use napi::bindgen_prelude::AsyncTask;
use napi::{Env, Task, Unknown, ValueType};
use napi_derive::napi;
use serde_json::Value;

use super::args::{copy_utf8, describe, string_value, type_of, Props};
use super::{catch_panic, guarded, to_js};
use crate::active;
use crate::clock;
use crate::env::Environment;
use crate::error::HootError;
use crate::revocation;
use crate::token::{self, IssueConfig};

static REVOCATIONS: std::sync::Once = std::sync::Once::new();

/// The process's key set, once the revocations of its default SQLite database (`$HOOT_DB_PATH`,
/// else `~/.hoot/hoot-mcp.db`) are known: a restarted process refuses a revoked token from its first
/// verification, before any store opens the file. (On PostgreSQL, `loadKeys` reads them before it
/// resolves.) After the first call this costs one atomic load.
pub(super) fn keys() -> Result<std::sync::Arc<crate::keys::KeySet>, HootError> {
    follow_default_revocations();
    if let Some(keys) = active::installed() {
        return Ok(keys);
    }
    let env = Environment::process();
    let from_database = env.var(crate::pg::HOOT_DATABASE_URL).is_some_and(|url| crate::pg::is_postgres_url(&url));
    if from_database || crate::pg::watch::keys_expected() {
        return Err(HootError::Keys(
            "The key set is in PostgreSQL (HOOT_DATABASE_URL): let `await openDatabase().loadKeys()` finish before \
             issuing or verifying tokens"
                .into(),
        ));
    }
    active::current(&env)
}

/// Reads (once) and follows the revocations of the default SQLite database, unless
/// `HOOT_DATABASE_URL` puts the store on PostgreSQL.
pub(super) fn follow_default_revocations() {
    REVOCATIONS.call_once(|| {
        let env = Environment::process();
        if env.var(crate::pg::HOOT_DATABASE_URL).is_some_and(|url| crate::pg::is_postgres_url(&url)) {
            return;
        }
        if let Ok(location) = crate::sqlite::db::location(None, "dbPath", &env) {
            crate::sqlite::revocations::follow(&location);
        }
    });
}

/// Claims and lifetime of an issued token.
#[napi(object, js_name = "IssueOptions", object_from_js = false, object_to_js = false)]
pub struct JsIssueOptions {
    /// Lifetime in whole seconds, from 1 to ten years. Defaults to 3600.
    pub ttl_seconds: Option<f64>,
    /// The `portkey_oid` claim. Defaults to `$PORTKEY_ORG_ID` (read at each call), else `'test-org-id'`.
    pub portkey_org_id: Option<String>,
    /// The `portkey_workspace` claim. Defaults to `$PORTKEY_WORKSPACE_SLUG`, else `'test-workspace'`.
    pub portkey_workspace: Option<String>,
    /// The `scope` claim. Defaults to `['completions.write', 'virtual_keys.list', 'logs.view']`.
    pub scope: Option<Vec<String>>,
    /// Extra claims, added after Hoot's; they may not set `sub`, `iat` or `exp`. Defaults to none.
    #[napi(ts_type = "Record<string, unknown>")]
    pub claims: Option<Value>,
}

impl JsIssueOptions {
    fn read(value: Option<Unknown>) -> Result<IssueConfig, HootError> {
        let p = Props::new(value, "opts")?;
        let claims = match p.json_object("claims", false)? {
            Some(Value::Object(map)) => Some(map),
            _ => None,
        };
        let opts = token::IssueOptions {
            ttl_seconds: p.number("ttlSeconds")?,
            portkey_org_id: p.string("portkeyOrgId")?,
            portkey_workspace: p.string("portkeyWorkspace")?,
            scope: p.string_array("scope")?,
            claims,
        };
        IssueConfig::resolve(opts, &Environment::process())
    }
}

/// Signs a session token for `userId` (a UUID v4): RS256, header `{ alg, kid, typ: 'JWT' }`,
/// claims `sub, portkey_oid, portkey_workspace, scope, iat, exp`, exactly as Hoot's backend issues
/// them. Throws `ERR_INVALID_USER_ID` for any other id. Signing takes about a millisecond on the
/// calling thread; `issueTokenAsync` moves it off the event loop.
#[napi(ts_args_type = "userId: string, opts?: IssueOptions")]
pub fn issue_token(env: Env, user_id: Unknown, opts: Option<Unknown>) -> napi::Result<String> {
    guarded(&env, || {
        let user_id = string_value(&user_id, "userId")?;
        let config = JsIssueOptions::read(opts)?;
        token::issue_token(&*keys()?, &user_id, &config, clock::unix_now(), revocation::revoked_before(&user_id))
    })
}

/// The signing work of one `issueTokenAsync` call, run on the libuv thread pool.
pub struct IssueTask {
    request: Option<(String, IssueConfig)>,
    failure: Option<HootError>,
}

impl Task for IssueTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> napi::Result<String> {
        let outcome = match self.request.take() {
            Some((user_id, config)) => catch_panic(|| {
                token::issue_token(
                    &*keys()?,
                    &user_id,
                    &config,
                    clock::unix_now(),
                    revocation::revoked_before(&user_id),
                )
            }),
            None => Err(HootError::Internal("task ran twice".into())),
        };
        outcome.map_err(|failure| {
            self.failure = Some(failure);
            napi::Error::from_reason("issueTokenAsync failed")
        })
    }

    fn resolve(&mut self, _env: Env, token: String) -> napi::Result<String> {
        Ok(token)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<String> {
        match self.failure.take() {
            Some(e) => Err(to_js(&env, &e)),
            None => Err(err),
        }
    }
}

/// `issueToken` with the RSA signing done on the libuv thread pool. Every error, a bad argument
/// included, rejects the promise; nothing throws synchronously.
// The arguments are read here, and a bad one throws as in `issueToken` (the caller's own exception
// unchanged); lib/issue.js, the exported function, turns every throw into a rejection.
#[napi(ts_args_type = "userId: string, opts?: IssueOptions", ts_return_type = "Promise<string>")]
pub fn issue_token_async(env: Env, user_id: Unknown, opts: Option<Unknown>) -> napi::Result<AsyncTask<IssueTask>> {
    let request = guarded(&env, || Ok((string_value(&user_id, "userId")?, JsIssueOptions::read(opts)?)))?;
    Ok(AsyncTask::new(IssueTask { request: Some(request), failure: None }))
}

/// Options of `verifyToken`.
#[napi(object, js_name = "VerifyOptions", object_from_js = false, object_to_js = false)]
pub struct JsVerifyOptions {
    /// Clock skew allowed on `exp` and `nbf`, in whole seconds (at most 86400). Defaults to 0.
    pub leeway_seconds: Option<f64>,
}

impl JsVerifyOptions {
    fn read(value: Option<Unknown>) -> Result<u64, HootError> {
        token::VerifyOptions { leeway_seconds: Props::new(value, "opts")?.number("leewaySeconds")? }.leeway()
    }
}

/// The token as UTF-8, copied once into `buffer`, which has 4 bytes to spare past
/// `MAX_TOKEN_LENGTH`: a longer string is copied only in part, but always past the limit (even
/// when the copy stops short of a multi-byte character), so the core refuses it on its length
/// and a long string is never mistaken for its (valid) first 8192 bytes.
fn read_token<'b>(value: &Unknown, buffer: &'b mut [u8; token::MAX_TOKEN_LENGTH + 5]) -> Result<&'b str, HootError> {
    let bytes = copy_utf8(value, buffer)?;
    // V8 writes whole UTF-8 characters (a lone surrogate becomes U+FFFD), so this always succeeds.
    std::str::from_utf8(bytes).map_err(|e| HootError::Internal(format!("token is not UTF-8: {e}")))
}

/// The core of `verifyToken` (see `lib/verify.js`, which builds its result and caches it). Returns
/// one string, the cheapest value to hand over: the claims set as JSON text (it starts with `{`)
/// when the token verifies, else `"<code> <message>"` (codes start with `ERR_`). Not part of the
/// typed API.
#[napi(js_name = "verifyTokenRaw", skip_typescript)]
pub fn verify_token_raw(env: Env, token: Unknown, opts: Option<Unknown>) -> napi::Result<String> {
    let outcome = guarded(&env, || {
        if type_of(&token)? != ValueType::String {
            return Err(HootError::arg_type("token", "of type string", describe(&token)));
        }
        let leeway = JsVerifyOptions::read(opts)?;
        let keys = keys()?;
        let mut buffer = [0u8; token::MAX_TOKEN_LENGTH + 5];
        Ok(token::verify_token(&keys, read_token(&token, &mut buffer)?, clock::unix_now(), leeway, revocation::refuses))
    })?;
    Ok(match outcome {
        Ok(claims_json) => claims_json,
        Err(failure) => format!("{} {}", failure.code.as_str(), failure.message),
    })
}

/// `true` when `id` is a UUID v4 (any case), the only user id Hoot puts in a token; `false` for
/// anything else, a value that is not a string included. A predicate: it never throws, so
/// `if (!isValidUserId(req.body.userId))` answers 400 whatever the client sent.
#[napi(ts_args_type = "id: unknown")]
pub fn is_valid_user_id(env: Env, id: Unknown) -> napi::Result<bool> {
    guarded(&env, || match type_of(&id)? {
        // A string that is not text (a lone surrogate) is not a UUID either.
        ValueType::String => Ok(string_value(&id, "id").is_ok_and(|id| token::is_valid_user_id(&id))),
        _ => Ok(false),
    })
}
