//! The JavaScript face of hoot-core. It only converts: JS values in (with Node-style `TypeError`s
//! naming the argument), a core call, JS values or a coded error out. No panic crosses it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use napi::bindgen_prelude::{AsyncTask, Object};
use napi::{Env, JsError, Status, JsRangeError, JsTypeError, JsValue, Task, Unknown, ValueType};
use napi_derive::napi;
use serde_json::Value;

use crate::active;
use crate::clock;
use crate::error::{ErrorKind, HootError};
use crate::keys::{self, KeyEnv};
use crate::token::{self, IssueConfig};

pub mod store;

// ---------------------------------------------------------------------------------------------
// Errors and panics

/// The JS error for a core error: the class its kind asks for, with `.code` set.
fn to_js(env: &Env, e: &HootError) -> napi::Error {
    let inner = napi::Error::new(e.code().to_string(), e.to_string());
    let value = match e.kind() {
        ErrorKind::TypeError => JsTypeError::from(inner).into_unknown(*env),
        ErrorKind::RangeError => JsRangeError::from(inner).into_unknown(*env),
        ErrorKind::Error => JsError::from(inner).into_unknown(*env),
    };
    napi::Error::from(value)
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> HootError {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    HootError::Internal(format!("panic: {text}"))
}

/// A JS exception raised while reading an argument (a throwing getter, a Proxy trap) is already
/// pending; it is the caller's own error and must reach them unchanged.
fn exception_pending(env: &Env) -> bool {
    let mut pending = false;
    let status = unsafe { napi::sys::napi_is_exception_pending(env.raw(), &mut pending) };
    status == napi::sys::Status::napi_ok && pending
}

/// Runs `f`, turning its error or any panic into a thrown JS error.
fn guarded<T>(env: &Env, f: impl FnOnce() -> Result<T, HootError>) -> napi::Result<T> {
    let error = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => return Ok(value),
        Ok(Err(e)) => e,
        Err(panic) => panic_message(panic),
    };
    if exception_pending(env) {
        return Err(napi::Error::new(Status::PendingException, error.to_string()));
    }
    Err(to_js(env, &error))
}

fn napi_failure(e: napi::Error) -> HootError {
    HootError::Internal(format!("N-API call failed: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Reading arguments

fn type_of(value: &Unknown) -> Result<ValueType, HootError> {
    value.get_type().map_err(napi_failure)
}

/// Node's way of naming what was received: `type number (42)`, `undefined`, `an instance of Array`.
fn describe(value: &Unknown) -> String {
    match value.get_type() {
        Ok(ValueType::Undefined) => "undefined".into(),
        Ok(ValueType::Null) => "null".into(),
        Ok(ValueType::Number) => match unsafe { value.cast::<f64>() } {
            Ok(n) => format!("type number ({n})"),
            Err(_) => "type number".into(),
        },
        Ok(ValueType::Boolean) => match unsafe { value.cast::<bool>() } {
            Ok(b) => format!("type boolean ({b})"),
            Err(_) => "type boolean".into(),
        },
        Ok(ValueType::String) => match unsafe { value.cast::<String>() } {
            Ok(s) if s.chars().count() > 25 => format!("type string ('{}...')", s.chars().take(25).collect::<String>()),
            Ok(s) => format!("type string ('{s}')"),
            Err(_) => "type string".into(),
        },
        Ok(ValueType::Object) if value.is_array().unwrap_or(false) => "an instance of Array".into(),
        Ok(ValueType::Object) => "an instance of Object".into(),
        Ok(ValueType::Function) => "function".into(),
        Ok(ValueType::BigInt) => "type bigint".into(),
        Ok(ValueType::Symbol) => "type symbol".into(),
        _ => "an unknown value".into(),
    }
}

fn string_value(value: &Unknown, name: &str) -> Result<String, HootError> {
    match type_of(value)? {
        ValueType::String => short_string(value).map_or_else(|| unsafe { value.cast::<String>() }.map_err(napi_failure), Ok),
        _ => Err(HootError::arg_type(name, "of type string", describe(value))),
    }
}

/// Copies a JS string into `buffer` as UTF-8 in one N-API call, with no allocation, and returns
/// the bytes copied. V8 stops short of a character that does not fit, so a copy is known to be the
/// whole string only when it ends at least 4 bytes before the buffer's last byte (its NUL).
fn copy_utf8<'b>(value: &Unknown, buffer: &'b mut [u8]) -> Result<&'b [u8], HootError> {
    let mut copied = 0usize;
    let status = unsafe {
        napi::sys::napi_get_value_string_utf8(value.value().env, value.raw(), buffer.as_mut_ptr().cast(), buffer.len(), &mut copied)
    };
    if status != napi::sys::Status::napi_ok {
        return Err(HootError::Internal(format!("N-API could not read a string (status {status})")));
    }
    Ok(&buffer[..copied])
}

/// A JS string of up to 250 UTF-8 bytes (ids, paths) in one N-API call instead of two (length,
/// then copy); `None` when it may be longer.
fn short_string(value: &Unknown) -> Option<String> {
    let mut buffer = [0u8; 256];
    let bytes = copy_utf8(value, &mut buffer).ok()?;
    (bytes.len() + 5 < 256).then(|| String::from_utf8(bytes.to_vec()).ok()).flatten()
}

/// An options argument: `undefined` or `null` means none given; anything but a plain object is a
/// `TypeError`.
fn options_object<'a>(value: Option<Unknown<'a>>, name: &str) -> Result<Option<Object<'a>>, HootError> {
    let Some(value) = value else { return Ok(None) };
    match type_of(&value)? {
        ValueType::Undefined | ValueType::Null => Ok(None),
        ValueType::Object if !value.is_array().map_err(napi_failure)? => {
            unsafe { value.cast::<Object>() }.map(Some).map_err(napi_failure)
        }
        _ => Err(HootError::arg_type(name, "of type object", describe(&value))),
    }
}

/// Reads the properties of one options object; `undefined` properties are absent.
struct Props<'a> {
    object: Option<Object<'a>>,
    name: &'static str,
}

impl<'a> Props<'a> {
    fn new(value: Option<Unknown<'a>>, name: &'static str) -> Result<Self, HootError> {
        Ok(Props { object: options_object(value, name)?, name })
    }

    fn get(&self, key: &str) -> Result<Option<(Unknown<'a>, String)>, HootError> {
        let Some(object) = &self.object else { return Ok(None) };
        let value: Option<Unknown> = object.get(key).map_err(napi_failure)?;
        match value {
            Some(v) if type_of(&v)? != ValueType::Undefined => Ok(Some((v, format!("{}.{key}", self.name)))),
            _ => Ok(None),
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>, HootError> {
        self.get(key)?.map(|(v, name)| string_value(&v, &name)).transpose()
    }

    fn path(&self, key: &str) -> Result<Option<PathBuf>, HootError> {
        Ok(self.string(key)?.map(PathBuf::from))
    }

    fn number(&self, key: &str) -> Result<Option<f64>, HootError> {
        self.get(key)?
            .map(|(v, name)| match type_of(&v)? {
                ValueType::Number => unsafe { v.cast::<f64>() }.map_err(napi_failure),
                _ => Err(HootError::arg_type(name, "of type number", describe(&v))),
            })
            .transpose()
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, HootError> {
        self.get(key)?
            .map(|(v, name)| match type_of(&v)? {
                ValueType::Boolean => unsafe { v.cast::<bool>() }.map_err(napi_failure),
                _ => Err(HootError::arg_type(name, "of type boolean", describe(&v))),
            })
            .transpose()
    }

    fn json(&self, key: &str, v: &Unknown, name: &str) -> Result<Value, HootError> {
        unsafe { v.cast::<Value>() }.map_err(|e| {
            HootError::arg_value(name, format!("must hold only JSON values ({}): {}", key, e.reason))
        })
    }

    /// A JSON object, or (when `or_string`) a string of JSON text, which the core parses.
    fn json_object(&self, key: &str, or_string: bool) -> Result<Option<Value>, HootError> {
        let Some((v, name)) = self.get(key)? else { return Ok(None) };
        match type_of(&v)? {
            ValueType::String if or_string => Ok(Some(Value::String(string_value(&v, &name)?))),
            ValueType::Object if !v.is_array().map_err(napi_failure)? => Ok(Some(self.json(key, &v, &name)?)),
            _ => Err(HootError::arg_type(
                name,
                if or_string { "of type object or string" } else { "of type object" },
                describe(&v),
            )),
        }
    }

    fn string_array(&self, key: &str) -> Result<Option<Vec<String>>, HootError> {
        let Some((v, name)) = self.get(key)? else { return Ok(None) };
        let expected = "an array of strings";
        if type_of(&v)? != ValueType::Object || !v.is_array().map_err(napi_failure)? {
            return Err(HootError::arg_type(name, expected, describe(&v)));
        }
        match self.json(key, &v, &name)? {
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    other => Err(HootError::arg_type(name.clone(), expected, format!("an array holding {other}"))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            _ => Err(HootError::arg_type(name, expected, describe(&v))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

/// Where the signing key and the public keys come from. Every member is optional.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct KeyOptions {
    /// A private RSA JWK as JSON (Hoot's `private-key.json`). Defaults to `$JWT_PRIVATE_KEY_PATH`,
    /// else `<cwd>/private-key.json` when it exists.
    pub private_key_path: Option<String>,
    /// A JWKS `{ keys: [...] }` (Hoot's `jwks.json`). Defaults to `$JWT_JWKS_PATH`, else
    /// `<cwd>/jwks.json` when it exists, else the private key's own public half (it needs a `kid`).
    pub jwks_path: Option<String>,
    /// The private JWK itself, as an object or JSON text, instead of `privateKeyPath`. Defaults to none.
    #[napi(ts_type = "object | string")]
    pub private_key_jwk: Option<Value>,
    /// The JWKS itself, as an object or JSON text, instead of `jwksPath`. Defaults to none.
    #[napi(ts_type = "object | string")]
    pub jwks: Option<Value>,
    /// Where the zero-config key lives when no key files are configured. Defaults to `~/.hoot/keys`.
    pub key_dir: Option<String>,
    /// Generate and keep an RSA-2048 key in `keyDir` (directory 0700, files 0600) when none is
    /// there yet. Defaults to `true`.
    pub generate_if_missing: Option<bool>,
}

impl KeyOptions {
    fn read(value: Option<Unknown>) -> Result<keys::KeyOptions, HootError> {
        let p = Props::new(value, "opts")?;
        Ok(keys::KeyOptions {
            private_key_path: p.path("privateKeyPath")?,
            jwks_path: p.path("jwksPath")?,
            private_key_jwk: p.json_object("privateKeyJwk", true)?,
            jwks: p.json_object("jwks", true)?,
            key_dir: p.path("keyDir")?,
            generate_if_missing: p.boolean("generateIfMissing")?,
        })
    }
}

/// The key set now in use. Never holds private members.
#[napi(object, object_from_js = false)]
pub struct KeysInfo {
    /// The kid tokens are signed with.
    pub kid: String,
    #[napi(ts_type = "'RS256'")]
    pub alg: String,
    /// How many public keys verify tokens (several during a key rotation).
    pub public_keys: u32,
    #[napi(ts_type = "'files' | 'inline' | 'generated'")]
    pub source: String,
    pub private_key_path: Option<String>,
    pub jwks_path: Option<String>,
}

fn display(path: Option<&std::path::Path>) -> Option<String> {
    path.map(|p| p.display().to_string())
}

/// Loads the key set and makes it the process's, replacing the previous one at once and
/// clearing the verification cache. Without options it reads Hoot's files
/// (`$JWT_PRIVATE_KEY_PATH` / `$JWT_JWKS_PATH`, else `private-key.json` / `jwks.json` in the
/// working directory) and, when there are none, uses the key kept in `~/.hoot/keys`, generating
/// it on first start. Throws `ERR_HOOT_KEYS`, naming the file and the fix, when keys cannot be loaded.
#[napi(ts_args_type = "opts?: KeyOptions")]
pub fn load_keys(env: Env, opts: Option<Unknown>) -> napi::Result<KeysInfo> {
    guarded(&env, || {
        let opts = KeyOptions::read(opts)?;
        let active = active::load(&opts, &KeyEnv::from_process())?;
        let keys = &active.keys;
        Ok(KeysInfo {
            kid: keys.kid().to_string(),
            alg: "RS256".to_string(),
            public_keys: u32::try_from(keys.public_keys()).unwrap_or(u32::MAX),
            source: keys.source().as_str().to_string(),
            private_key_path: display(keys.private_key_path()),
            jwks_path: display(keys.jwks_path()),
        })
    })
}

#[napi(object, object_from_js = false, object_to_js = false)]
pub struct GenerateKeyOptions {
    /// The key id. Defaults to a random UUID, as Hoot's key-generation recipe does.
    pub kid: Option<String>,
    /// RSA modulus size. Defaults to 2048.
    #[napi(ts_type = "2048 | 3072 | 4096")]
    pub bits: Option<u32>,
}

#[napi(object, object_from_js = false)]
pub struct GeneratedKeys {
    pub kid: String,
    pub private_key_path: String,
    pub jwks_path: String,
}

/// Generates an RS256 key pair into `dir` as Hoot's `private-key.json` and `jwks.json`
/// (directory created 0700, files 0600). Never overwrites: throws `ERR_HOOT_KEYS` if either file
/// exists. Does not change the key set in use; call `loadKeys` for that.
#[napi(ts_args_type = "dir: string, opts?: GenerateKeyOptions")]
pub fn generate_keys(env: Env, dir: Unknown, opts: Option<Unknown>) -> napi::Result<GeneratedKeys> {
    guarded(&env, || {
        let dir = string_value(&dir, "dir")?;
        if dir.is_empty() {
            return Err(HootError::arg_value("dir", "must not be empty"));
        }
        let p = Props::new(opts, "opts")?;
        let kid = p.string("kid")?;
        if kid.as_deref() == Some("") {
            return Err(HootError::arg_value("opts.kid", "must not be empty"));
        }
        let size = match p.number("bits")? {
            None => keys::key_size(2048),
            Some(bits) if bits.fract() == 0.0 && bits > 0.0 && bits < 65536.0 => keys::key_size(bits as u32),
            Some(_) => None,
        }
        .ok_or_else(|| HootError::out_of_range("opts.bits", "must be 2048, 3072 or 4096"))?;
        let written = keys::generate_keys(&std::env::current_dir().unwrap_or_default().join(dir), kid.as_deref(), size)?;
        Ok(GeneratedKeys {
            kid: written.kid,
            private_key_path: written.private_key_path.display().to_string(),
            jwks_path: written.jwks_path.display().to_string(),
        })
    })
}

/// The public keys, `{ keys: [{ kty, use, alg, kid, n, e }, ...] }`, for `GET /.well-known/jwks.json`.
/// Only public members are ever returned, whatever the JWKS file holds.
#[napi(ts_return_type = "{ keys: object[] }")]
pub fn public_jwks(env: Env) -> napi::Result<Value> {
    guarded(&env, || Ok(active::current()?.keys.public_jwks()))
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// Claims and lifetime of an issued token.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct IssueOptions {
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

impl IssueOptions {
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
        IssueConfig::resolve(opts, |name| std::env::var(name).ok())
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
        let config = IssueOptions::read(opts)?;
        active::current()?.issue(&user_id, &config, clock::unix_now())
    })
}

pub struct IssueTask {
    request: Result<(String, IssueConfig), Failure>,
    failure: Option<Failure>,
}

/// Why an async call failed: a core error, or the caller's own exception (a throwing getter)
/// caught while reading the arguments, to be rejected with as it is.
enum Failure {
    Core(HootError),
    Js(napi::Error),
}

impl Task for IssueTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> napi::Result<String> {
        let request = std::mem::replace(&mut self.request, Err(Failure::Core(HootError::Internal("task ran twice".into()))));
        let outcome = match request {
            Ok((user_id, config)) => catch_unwind(AssertUnwindSafe(|| {
                active::current()?.issue(&user_id, &config, clock::unix_now())
            }))
            .unwrap_or_else(|panic| Err(panic_message(panic)))
            .map_err(Failure::Core),
            Err(failure) => Err(failure),
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
            Some(Failure::Core(e)) => Err(to_js(&env, &e)),
            Some(Failure::Js(e)) => Err(e),
            None => Err(err),
        }
    }
}

/// `issueToken` with the RSA signing done on the libuv thread pool. Every error, a bad argument
/// included, rejects the promise; nothing throws synchronously.
#[napi(ts_args_type = "userId: string, opts?: IssueOptions", ts_return_type = "Promise<string>")]
pub fn issue_token_async(env: Env, user_id: Unknown, opts: Option<Unknown>) -> AsyncTask<IssueTask> {
    let request = catch_unwind(AssertUnwindSafe(|| {
        let user_id = string_value(&user_id, "userId")?;
        Ok((user_id, IssueOptions::read(opts)?))
    }))
    .unwrap_or_else(|panic| Err(panic_message(panic)))
    .map_err(|e| match take_pending_exception(&env) {
        Some(js) => Failure::Js(js),
        None => Failure::Core(e),
    });
    AsyncTask::new(IssueTask { request, failure: None })
}

/// Clears a pending JS exception and keeps it as an error value, so it can reject a promise
/// instead of being thrown synchronously.
fn take_pending_exception(env: &Env) -> Option<napi::Error> {
    if !exception_pending(env) {
        return None;
    }
    let mut value = std::ptr::null_mut();
    let status = unsafe { napi::sys::napi_get_and_clear_last_exception(env.raw(), &mut value) };
    if status != napi::sys::Status::napi_ok || value.is_null() {
        return None;
    }
    Some(napi::Error::from(unsafe { Unknown::from_raw_unchecked(env.raw(), value) }))
}

#[napi(object, object_from_js = false, object_to_js = false)]
pub struct VerifyOptions {
    /// Clock skew allowed on `exp` and `nbf`, in whole seconds (at most 86400). Defaults to 0.
    pub leeway_seconds: Option<f64>,
}

impl VerifyOptions {
    fn read(value: Option<Unknown>) -> Result<u64, HootError> {
        match Props::new(value, "opts")?.number("leewaySeconds")? {
            None => Ok(0),
            Some(l) if l.fract() == 0.0 && (0.0..=86_400.0).contains(&l) => Ok(l as u64),
            Some(l) => Err(HootError::out_of_range(
                "opts.leewaySeconds",
                format!("must be a whole number of seconds from 0 to 86400. Received {l}"),
            )),
        }
    }
}

/// A token of at most `MAX_TOKEN_LENGTH` UTF-8 bytes, copied once into `buffer`; `None` when it is
/// longer. The buffer has 4 bytes to spare past the limit, so a longer string always fills it past
/// the limit, even when the copy stops short of a multi-byte character: a long string is never
/// mistaken for its (valid) first 8192 bytes.
fn read_token<'b>(value: &Unknown, buffer: &'b mut [u8; token::MAX_TOKEN_LENGTH + 5]) -> Result<Option<&'b str>, HootError> {
    let bytes = copy_utf8(value, buffer)?;
    if bytes.len() > token::MAX_TOKEN_LENGTH {
        return Ok(None);
    }
    // V8 writes UTF-8 (a lone surrogate becomes U+FFFD), so this always succeeds.
    std::str::from_utf8(bytes).map(Some).map_err(|e| HootError::Internal(format!("token is not UTF-8: {e}")))
}

/// The core of `verifyToken` (see `verify.js`, which builds its result and caches it). Returns one
/// string, the cheapest value to hand over: the claims set as JSON text (it starts with `{`) when
/// the token verifies, else `"<code> <message>"` (codes start with `ERR_`). Not part of the typed API.
#[napi(js_name = "verifyTokenRaw", skip_typescript)]
pub fn verify_token_raw(env: Env, token: Unknown, opts: Option<Unknown>) -> napi::Result<String> {
    let outcome = guarded(&env, || {
        if type_of(&token)? != ValueType::String {
            return Err(HootError::arg_type("token", "of type string", describe(&token)));
        }
        let leeway = VerifyOptions::read(opts)?;
        let active = active::current()?;
        let mut buffer = [0u8; token::MAX_TOKEN_LENGTH + 5];
        Ok(match read_token(&token, &mut buffer)? {
            Some(token) => active.verify(token, clock::unix_now(), leeway),
            None => Err(token::VerifyFailure::oversized()),
        })
    })?;
    Ok(match outcome {
        Ok(verified) => verified.payload_json,
        Err(failure) => format!("{} {}", failure.code.as_str(), failure.message),
    })
}

/// `true` when `id` is a UUID v4 (any case), the only user id Hoot puts in a token.
#[napi(ts_args_type = "id: string")]
pub fn is_valid_user_id(env: Env, id: Unknown) -> napi::Result<bool> {
    guarded(&env, || Ok(token::is_valid_user_id(&string_value(&id, "id")?)))
}
