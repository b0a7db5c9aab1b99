//! `loadKeys`, `generateKeys` and `publicJwks`.

use napi::{Env, Unknown};
use napi_derive::napi;
use serde_json::Value;

use super::args::{string_value, Props};
use super::guarded;
use crate::active;
use crate::env::Environment;
use crate::error::HootError;
use crate::keys;

/// Where the signing key and the public keys come from. Every member is optional.
#[napi(object, js_name = "KeyOptions", object_from_js = false, object_to_js = false)]
pub struct JsKeyOptions {
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

impl JsKeyOptions {
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
    /// The signing algorithm, always RS256.
    #[napi(ts_type = "'RS256'")]
    pub alg: String,
    /// How many public keys verify tokens (several during a key rotation).
    pub public_keys: u32,
    /// Where the signing key came from: key files, inline JSON, or the key hoot-core generated.
    #[napi(ts_type = "'files' | 'inline' | 'generated' | 'database'")]
    pub source: String,
    /// The private key file, when the key came from (or was generated into) a file.
    pub private_key_path: Option<String>,
    /// The JWKS file, when the public keys came from one.
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
        let opts = JsKeyOptions::read(opts)?;
        // The revocations first, at start-up rather than on the first request.
        super::tokens::follow_default_revocations();
        let keys = active::load(&opts, &Environment::process())?;
        // From now on the key set is these files', not a database's that the poller would reload.
        crate::pg::watch::stop_following_keys();
        Ok(info(&keys))
    })
}

/// What `loadKeys` reports of a key set.
pub(super) fn info(keys: &keys::KeySet) -> KeysInfo {
    KeysInfo {
        kid: keys.kid().to_string(),
        alg: "RS256".to_string(),
        public_keys: u32::try_from(keys.public_keys()).unwrap_or(u32::MAX),
        source: keys.source().as_str().to_string(),
        private_key_path: display(keys.private_key_path()),
        jwks_path: display(keys.jwks_path()),
    }
}

/// Options of `generateKeys`.
#[napi(object, js_name = "GenerateKeyOptions", object_from_js = false, object_to_js = false)]
pub struct JsGenerateKeyOptions {
    /// The key id. Defaults to a random UUID, as Hoot's key-generation recipe does.
    pub kid: Option<String>,
    /// RSA modulus size. Defaults to 2048.
    #[napi(ts_type = "2048 | 3072 | 4096")]
    pub bits: Option<u32>,
}

/// What `generateKeys` wrote.
#[napi(object, js_name = "GeneratedKeys", object_from_js = false)]
pub struct JsGeneratedKeys {
    /// The new key's id.
    pub kid: String,
    /// The private JWK (secret: never commit or share it).
    pub private_key_path: String,
    /// The JWKS with its public half.
    pub jwks_path: String,
}

/// Generates an RS256 key pair into `dir` as Hoot's `private-key.json` and `jwks.json`
/// (directory created 0700, files 0600). Never overwrites: throws `ERR_HOOT_KEYS` if either file
/// exists. Does not change the key set in use; call `loadKeys` for that.
#[napi(ts_args_type = "dir: string, opts?: GenerateKeyOptions")]
pub fn generate_keys(env: Env, dir: Unknown, opts: Option<Unknown>) -> napi::Result<JsGeneratedKeys> {
    guarded(&env, || {
        let dir = string_value(&dir, "dir")?;
        let p = Props::new(opts, "opts")?;
        let opts = keys::GenerateKeyOptions { kid: p.string("kid")?, bits: p.number("bits")? };
        let written = keys::generate_key_files(&dir, &opts, &Environment::process())?;
        Ok(JsGeneratedKeys {
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
    guarded(&env, || Ok(super::tokens::keys()?.public_jwks()))
}

/// The process-wide key generation (`active::GENERATION`) as a 4-byte ArrayBuffer over its own
/// memory, so each isolate's `lib/verify.js` reads it without a native call. Not part of the
/// typed API.
#[napi(js_name = "keyGeneration", skip_typescript)]
pub fn key_generation<'e>(env: &'e Env) -> napi::Result<Unknown<'e>> {
    guarded(env, || {
        let data = active::GENERATION.as_ptr().cast::<std::ffi::c_void>();
        let mut value = std::ptr::null_mut();
        // SAFETY: `data` points at a static, so it outlives every ArrayBuffer made over it (no
        // finalizer is needed); its 4 bytes are an AtomicU32, which JavaScript only reads (a
        // stray write could only make a cache drop early). `env` is the live environment.
        let status = unsafe {
            napi::sys::napi_create_external_arraybuffer(env.raw(), data, 4, None, std::ptr::null_mut(), &mut value)
        };
        if status != napi::sys::Status::napi_ok {
            return Err(HootError::Internal(format!("N-API could not share the key generation (status {status})")));
        }
        // SAFETY: N-API just created `value`, a valid handle in the current scope of `env`.
        Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
    })
}
