//! The key set: Hoot's `private-key.json` (a private RSA JWK) and `jwks.json` (the public keys
//! that verify), loaded from files, inline JSON, or a key generated once into `~/.hoot/keys`.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeyPairComponents, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pkcs1::RsaPrivateKeyRef;
use pkcs8::PrivateKeyInfoRef;
use serde_json::{json, Map, Value};

use crate::env::{self, Environment};
use crate::error::HootError;
use crate::private_fs::{create_private_dir, is_present, new_private_file, open_regular, untrusted};

/// Hoot's private key file name.
pub const PRIVATE_KEY_FILE: &str = "private-key.json";
/// Hoot's public key set file name.
pub const JWKS_FILE: &str = "jwks.json";
const PRIVATE_MEMBERS: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Where the key set in use came from (`KeysInfo.source`).
pub enum KeySource {
    /// `privateKeyPath` / `jwksPath`, their variables, or Hoot's files in the working directory.
    Files,
    /// `privateKeyJwk` / `jwks` given as JSON.
    Inline,
    /// The zero-config key this package keeps in `~/.hoot/keys`.
    Generated,
    /// The key set every replica shares, in the PostgreSQL database (`loadKeys({ database })`).
    Database,
}

impl KeySource {
    /// The name JavaScript sees: `'files'`, `'inline'` or `'generated'`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Files => "files",
            KeySource::Inline => "inline",
            KeySource::Generated => "generated",
            KeySource::Database => "database",
        }
    }
}

/// How the caller asked for keys (`loadKeys(opts)`); `None` means "use the default".
#[derive(Debug, Clone, Default)]
pub struct KeyOptions {
    /// The private JWK file (`privateKeyPath`).
    pub private_key_path: Option<PathBuf>,
    /// The JWKS file (`jwksPath`).
    pub jwks_path: Option<PathBuf>,
    /// A JWK object, or a JSON string holding one.
    pub private_key_jwk: Option<Value>,
    /// A JWKS object, or a JSON string holding one.
    pub jwks: Option<Value>,
    /// Where the zero-config key is kept (`keyDir`).
    pub key_dir: Option<PathBuf>,
    /// Whether a missing zero-config key is generated (`generateIfMissing`).
    pub generate_if_missing: Option<bool>,
}

/// Where a JSON document comes from; `File` paths are absolute.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonSource {
    /// JSON given by the caller (an object, or text to parse).
    Inline(Value),
    /// A file to read.
    File(PathBuf),
}

/// The outcome of resolving options, environment and the files that exist.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyPlan {
    /// Load this private key and this JWKS (`None`: publish the private key's own public half).
    Load {
        /// The private JWK.
        private: JsonSource,
        /// The JWKS; `None`: the private key's own public half.
        jwks: Option<JsonSource>,
        /// What `KeysInfo.source` reports.
        source: KeySource,
    },
    /// The zero-config key in `dir`, made there first if `generate`.
    KeyDir {
        /// The key directory.
        dir: PathBuf,
        /// Whether a missing key is generated there.
        generate: bool,
    },
}

/// Applies the precedence rules: inline JSON, then explicit paths (option, then environment), then
/// Hoot's files in the working directory, then the generated key in the key directory. A half
/// configured key set (a JWKS without its private key) is an error, never a reason to generate.
pub fn resolve_plan(opts: &KeyOptions, env: &Environment) -> Result<KeyPlan, HootError> {
    let cwd = env.cwd();
    let abs = |p: &PathBuf| cwd.join(p);
    let env_jwks = env.path(env::JWT_JWKS_PATH);
    let explicit_jwks = match (&opts.jwks, opts.jwks_path.as_ref().or(env_jwks.as_ref())) {
        (Some(inline), _) => Some(JsonSource::Inline(inline.clone())),
        (None, Some(path)) => Some(JsonSource::File(abs(path))),
        (None, None) => None,
    };
    let cwd_jwks = cwd.join(JWKS_FILE);
    let jwks_or_cwd =
        || explicit_jwks.clone().or_else(|| is_present(&cwd_jwks).then(|| JsonSource::File(cwd_jwks.clone())));

    if let Some(inline) = &opts.private_key_jwk {
        return Ok(KeyPlan::Load {
            private: JsonSource::Inline(inline.clone()),
            jwks: jwks_or_cwd(),
            source: KeySource::Inline,
        });
    }
    if let Some(path) = opts.private_key_path.clone().or_else(|| env.path(env::JWT_PRIVATE_KEY_PATH)) {
        return Ok(KeyPlan::Load {
            private: JsonSource::File(abs(&path)),
            jwks: jwks_or_cwd(),
            source: KeySource::Files,
        });
    }
    let cwd_private = cwd.join(PRIVATE_KEY_FILE);
    if is_present(&cwd_private) {
        return Ok(KeyPlan::Load {
            private: JsonSource::File(cwd_private),
            jwks: jwks_or_cwd(),
            source: KeySource::Files,
        });
    }
    if let Some(jwks) = jwks_or_cwd() {
        let found = match jwks {
            JsonSource::File(path) => path.display().to_string(),
            JsonSource::Inline(_) => "the inline jwks option".to_string(),
        };
        return Err(HootError::Keys(format!(
            "Found a JWKS ({found}) but no private key to sign with: put Hoot's {PRIVATE_KEY_FILE} in {}, \
             or set JWT_PRIVATE_KEY_PATH (or loadKeys({{ privateKeyPath }})) to it",
            cwd.display()
        )));
    }
    let dir = match (&opts.key_dir, env.hoot_dir()) {
        (Some(dir), _) => abs(dir),
        (None, Some(hoot)) => hoot.join("keys"),
        (None, None) => {
            return Err(HootError::Keys(
                "No key files and no home directory to keep a generated key in: set HOME, \
                 pass loadKeys({ keyDir }), or set JWT_PRIVATE_KEY_PATH and JWT_JWKS_PATH"
                    .to_string(),
            ))
        }
    };
    Ok(KeyPlan::KeyDir { dir, generate: opts.generate_if_missing.unwrap_or(true) })
}

/// A loaded key set: one private key to sign with and every public key that verifies. Both are
/// parsed and validated once, here, so signing and verifying never re-read key material.
pub struct KeySet {
    kid: String,
    signing_key: KeyPair,
    verifying_keys: HashMap<String, ParsedPublicKey>,
    public_jwks: Vec<Value>,
    source: KeySource,
    private_key_path: Option<PathBuf>,
    jwks_path: Option<PathBuf>,
}

// Private members must never reach a log, so Debug shows only what `KeysInfo` shows.
impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("kid", &self.kid)
            .field("public_keys", &self.public_jwks.len())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl KeySet {
    /// The kid tokens are signed with.
    pub fn kid(&self) -> &str {
        &self.kid
    }
    /// The RS256 (RSASSA-PKCS1-v1_5, SHA-256) signature of `message` with the signing key.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, HootError> {
        let mut signature = vec![0; self.signing_key.public_modulus_len()];
        self.signing_key
            .sign(&RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), message, &mut signature)
            .map_err(|_| HootError::Keys(format!("Signing with key {:?} failed", self.kid)))?;
        Ok(signature)
    }
    /// The public key named `kid`, ready to check RS256 signatures.
    pub fn verifying_key(&self, kid: &str) -> Option<&ParsedPublicKey> {
        self.verifying_keys.get(kid)
    }
    /// How many public keys verify tokens.
    pub fn public_keys(&self) -> usize {
        self.public_jwks.len()
    }
    /// Where the key set came from.
    pub fn source(&self) -> KeySource {
        self.source
    }
    /// The private key file, when there is one.
    pub fn private_key_path(&self) -> Option<&Path> {
        self.private_key_path.as_deref()
    }
    /// The JWKS file, when there is one.
    pub fn jwks_path(&self) -> Option<&Path> {
        self.jwks_path.as_deref()
    }
    /// `{ keys: [...] }` with public members only (`kty, use, alg, kid, n, e`), whatever the
    /// JWKS file held, so a private member pasted into it by mistake is never published.
    pub fn public_jwks(&self) -> Value {
        json!({ "keys": self.public_jwks })
    }
}

/// Loads the key set the options and environment describe.
pub fn load_keys(opts: &KeyOptions, env: &Environment) -> Result<KeySet, HootError> {
    match resolve_plan(opts, env)? {
        KeyPlan::Load { private, jwks, source } => {
            let (private_value, private_path) = read_json(&private, "privateKeyJwk", Role::Private, env)?;
            let jwks = jwks.map(|j| read_json(&j, "jwks", Role::Jwks, env)).transpose()?;
            let (jwks_value, jwks_path) = match jwks {
                Some((value, path)) => (Some(value), path),
                None => (None, None),
            };
            let label = private_path.as_ref().map_or("privateKeyJwk".to_string(), |p| p.display().to_string());
            let jwks_label = jwks_path.as_ref().map_or("jwks".to_string(), |p| p.display().to_string());
            build_key_set(&private_value, jwks_value.as_ref(), &label, &jwks_label, source, private_path, jwks_path)
        }
        KeyPlan::KeyDir { dir, generate } => load_key_dir(&dir, generate, env),
    }
}

fn load_key_dir(dir: &Path, generate: bool, env: &Environment) -> Result<KeySet, HootError> {
    let private_path = dir.join(PRIVATE_KEY_FILE);
    if !is_present(&private_path) {
        if !generate {
            return Err(HootError::Keys(format!(
                "No key set found: looked for {} and {}. Put Hoot's {PRIVATE_KEY_FILE} and {JWKS_FILE} in the \
                 working directory, set JWT_PRIVATE_KEY_PATH and JWT_JWKS_PATH, call generateKeys(dir), \
                 or leave generateIfMissing on",
                env.cwd().join(PRIVATE_KEY_FILE).display(),
                private_path.display()
            )));
        }
        match write_new_key(dir, None, KeySize::Rsa2048, env.home().as_deref()) {
            // Another process made the key first: use theirs, so every process signs with one key.
            Ok(_) | Err(WriteError::Exists(_)) => {}
            Err(WriteError::Failed(e)) => return Err(e),
        }
    }
    let private = read_json(&JsonSource::File(private_path.clone()), "privateKeyJwk", Role::Private, env)?.0;
    let jwks_path = dir.join(JWKS_FILE);
    // A racing process may have linked the private key but not yet written jwks.json; the private
    // key carries its kid, so its public half is the same JWKS.
    let (jwks, jwks_path) = if is_present(&jwks_path) {
        (Some(read_json(&JsonSource::File(jwks_path.clone()), "jwks", Role::Jwks, env)?.0), Some(jwks_path))
    } else {
        (None, None)
    };
    let label = private_path.display().to_string();
    let jwks_label = jwks_path.as_ref().map_or(label.clone(), |p| p.display().to_string());
    build_key_set(&private, jwks.as_ref(), &label, &jwks_label, KeySource::Generated, Some(private_path), jwks_path)
}

#[derive(Clone, Copy)]
enum Role {
    Private,
    Jwks,
}

impl Role {
    fn fix(self) -> &'static str {
        match self {
            Role::Private => {
                "Point JWT_PRIVATE_KEY_PATH (or loadKeys({ privateKeyPath })) at Hoot's private-key.json, \
                 or unset it to use the key hoot-core generates in ~/.hoot/keys"
            }
            Role::Jwks => {
                "Point JWT_JWKS_PATH (or loadKeys({ jwksPath })) at Hoot's jwks.json, \
                 a JSON object { \"keys\": [ ...public RSA JWKs with kid... ] }"
            }
        }
    }
}

/// Reads a key document. A file must be a regular file (a FIFO would block the process) and be
/// trusted (`private_fs::untrusted`): whoever can write the private key or the JWKS can sign a
/// token for every user.
fn read_json(
    source: &JsonSource,
    option: &str,
    role: Role,
    env: &Environment,
) -> Result<(Value, Option<PathBuf>), HootError> {
    match source {
        JsonSource::Inline(Value::String(text)) => serde_json::from_str(text).map(|v| (v, None)).map_err(|e| {
            HootError::Keys(format!("The {option} option is a string but not valid JSON ({e}). {}", role.fix()))
        }),
        JsonSource::Inline(value) => Ok((value.clone(), None)),
        JsonSource::File(path) => {
            let cannot_read =
                |e: io::Error| HootError::Keys(format!("Cannot read {}: {e}. {}", path.display(), role.fix()));
            let (mut file, meta) = open_regular(path).map_err(cannot_read)?;
            if let Some(why) = untrusted(path, &meta, env.home().as_deref()) {
                return Err(HootError::Keys(format!(
                    "Refusing {}: {why}, and whoever can write it can sign a token for every user. Make the \
                     file and its directories owned by this user and writable by no one else (chown, chmod \
                     go-w), or point hoot-core at keys you made",
                    path.display()
                )));
            }
            let mut text = String::new();
            file.read_to_string(&mut text).map_err(cannot_read)?;
            let value = serde_json::from_str(&text)
                .map_err(|e| HootError::Keys(format!("{} is not valid JSON ({e}). {}", path.display(), role.fix())))?;
            Ok((value, Some(path.clone())))
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A base64url JWK member as an unsigned big-endian integer without leading zeros.
fn member(jwk: &Map<String, Value>, name: &str, label: &str) -> Result<Vec<u8>, HootError> {
    let text = jwk
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| HootError::Keys(format!("{label}: the RSA JWK has no \"{name}\" member (expected a string)")))?;
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| {
        HootError::Keys(format!("{label}: the \"{name}\" member is not base64url (RFC 7515, no padding)"))
    })?;
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    if start == bytes.len() {
        return Err(HootError::Keys(format!("{label}: the \"{name}\" member is zero")));
    }
    Ok(bytes[start..].to_vec())
}

fn modulus_bits(n: &[u8]) -> usize {
    n.first().map_or(0, |&top| n.len() * 8 - top.leading_zeros() as usize)
}

/// Checks the members every RSA signing JWK must have; returns (n, e).
fn rsa_public(jwk: &Value, label: &str) -> Result<(Vec<u8>, Vec<u8>), HootError> {
    let jwk = jwk.as_object().ok_or_else(|| HootError::Keys(format!("{label}: a JWK must be a JSON object")))?;
    match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => {}
        other => {
            return Err(HootError::Keys(format!(
                "{label}: kty is {}, but hoot-core signs and verifies RS256 only (kty \"RSA\")",
                other.map_or("missing".to_string(), |k| format!("{k:?}"))
            )))
        }
    }
    if let Some(alg) = jwk.get("alg") {
        if alg.as_str() != Some("RS256") {
            return Err(HootError::Keys(format!("{label}: alg is {alg}, but hoot-core signs and verifies RS256 only")));
        }
    }
    if let Some(usage) = jwk.get("use") {
        if usage.as_str() != Some("sig") {
            return Err(HootError::Keys(format!("{label}: use is {usage}, but a token key must have use \"sig\"")));
        }
    }
    let n = member(jwk, "n", label)?;
    let e = member(jwk, "e", label)?;
    let bits = modulus_bits(&n);
    if !(2048..=8192).contains(&bits) {
        return Err(HootError::Keys(format!(
            "{label}: the RSA modulus has {bits} bits; RS256 keys must have 2048 to 8192 bits"
        )));
    }
    Ok((n, e))
}

fn kid_of(jwk: &Value, label: &str) -> Result<Option<String>, HootError> {
    match jwk.get("kid") {
        None => Ok(None),
        Some(Value::String(kid)) if !kid.is_empty() => Ok(Some(kid.clone())),
        Some(other) => Err(HootError::Keys(format!("{label}: kid must be a non-empty string, found {other}"))),
    }
}

fn public_jwk(kid: &str, n: &[u8], e: &[u8]) -> Value {
    json!({ "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": b64(n), "e": b64(e) })
}

/// An RSA public key parsed once for RS256 verification (2048 to 8192 bits, as jose accepts).
fn verifying_key(n: &[u8], e: &[u8], label: &str) -> Result<ParsedPublicKey, HootError> {
    PublicKeyComponents { n, e }.to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256).map_err(|e| {
        HootError::Keys(format!(
            "{label}: not a usable RSA public key for RS256 ({e}); it needs a 2048- to 8192-bit modulus"
        ))
    })
}

/// A key set from a private JWK and a JWKS held somewhere other than files (the shared database),
/// checked as every other key set is. `label` names where they came from in messages.
pub fn key_set_from_json(private: &Value, jwks: &Value, label: &str, source: KeySource) -> Result<KeySet, HootError> {
    build_key_set(private, Some(jwks), label, label, source, None, None)
}

/// A new RS256 key pair in memory: its private JWK and its public JWK, with `kid`.
pub fn new_jwk_pair(kid: &str, size: KeySize) -> Result<(Value, Value), HootError> {
    let key_pair =
        KeyPair::generate(size).map_err(|_| HootError::Internal("aws-lc-rs could not generate an RSA key".into()))?;
    let pkcs8 = key_pair.as_der().map_err(|_| HootError::Internal("aws-lc-rs could not encode a new key".into()))?;
    jwk_of_pkcs8(pkcs8.as_ref(), kid).map_err(|e| HootError::Internal(format!("unreadable PKCS#8 from aws-lc-rs: {e}")))
}

/// Builds and cross-checks a key set. The private key must be a consistent two-prime RSA key; its
/// public half must be one of the JWKS keys (found by its kid, or, for Hoot's kid-less
/// private-key.json, by its modulus), so a token it signs always verifies.
fn build_key_set(
    private: &Value,
    jwks: Option<&Value>,
    label: &str,
    jwks_label: &str,
    source: KeySource,
    private_key_path: Option<PathBuf>,
    jwks_path: Option<PathBuf>,
) -> Result<KeySet, HootError> {
    let (signing_key, n, e) = signing_key_pair(private, label)?;
    let private_kid = kid_of(private, label)?;
    let public = match jwks {
        Some(jwks) => PublicKeys::from_jwks(jwks, jwks_label, label, private_kid.as_deref(), (&n, &e))?,
        None => PublicKeys::of_private_key(private_kid, (&n, &e), label)?,
    };
    Ok(KeySet {
        kid: public.signing_kid,
        signing_key,
        verifying_keys: public.verifying_keys,
        public_jwks: public.jwks,
        source,
        private_key_path,
        jwks_path,
    })
}

/// The private JWK as an aws-lc-rs key pair (validated once, here), with its `n` and `e`.
fn signing_key_pair(private: &Value, label: &str) -> Result<(KeyPair, Vec<u8>, Vec<u8>), HootError> {
    let (n, e) = rsa_public(private, label)?;
    let jwk = private.as_object().ok_or_else(|| HootError::Keys(format!("{label}: not a JSON object")))?;
    if PRIVATE_MEMBERS.iter().any(|m| !jwk.contains_key(*m)) {
        return Err(HootError::Keys(format!(
            "{label}: this is a public key; the private key needs the members d, p, q, dp, dq and qi \
             (Hoot's private-key.json, from jose's exportJWK(privateKey))"
        )));
    }
    if jwk.contains_key("oth") {
        return Err(HootError::Keys(format!("{label}: multi-prime RSA keys (\"oth\") are not supported")));
    }
    let [d, p, q, dp, dq, qi] = [
        member(jwk, "d", label)?,
        member(jwk, "p", label)?,
        member(jwk, "q", label)?,
        member(jwk, "dp", label)?,
        member(jwk, "dq", label)?,
        member(jwk, "qi", label)?,
    ];
    let components = KeyPairComponents {
        public_key: PublicKeyComponents { n: n.as_slice(), e: e.as_slice() },
        d: d.as_slice(),
        p: p.as_slice(),
        q: q.as_slice(),
        dP: dp.as_slice(),
        dQ: dq.as_slice(),
        qInv: qi.as_slice(),
    };
    let key_pair = KeyPair::from_components(&components)
        .map_err(|e| HootError::Keys(format!("{label}: the RSA private key is inconsistent or unsupported ({e})")))?;
    Ok((key_pair, n, e))
}

/// The keys that verify tokens, and which of them the private key signs as.
struct PublicKeys {
    signing_kid: String,
    verifying_keys: HashMap<String, ParsedPublicKey>,
    jwks: Vec<Value>,
}

impl PublicKeys {
    /// Every key of a JWKS, which must include the private key's public half `signing`.
    fn from_jwks(
        jwks: &Value,
        jwks_label: &str,
        label: &str,
        private_kid: Option<&str>,
        signing: (&[u8], &[u8]),
    ) -> Result<Self, HootError> {
        let keys = jwks.get("keys").and_then(Value::as_array).filter(|k| !k.is_empty()).ok_or_else(|| {
            HootError::Keys(format!(
                "{jwks_label}: a JWKS is an object {{ \"keys\": [ ... ] }} with at least one public key. {}",
                Role::Jwks.fix()
            ))
        })?;
        let mut public = PublicKeys { signing_kid: String::new(), verifying_keys: HashMap::new(), jwks: Vec::new() };
        let mut signing_kid = None;
        for (i, key) in keys.iter().enumerate() {
            let key_label = format!("{jwks_label} keys[{i}]");
            let (kn, ke) = rsa_public(key, &key_label)?;
            let kid = kid_of(key, &key_label)?.ok_or_else(|| {
                HootError::Keys(format!("{key_label}: has no kid; every JWKS key needs one so tokens can name it"))
            })?;
            if public.verifying_keys.contains_key(&kid) {
                return Err(HootError::Keys(format!("{key_label}: kid {kid:?} appears twice")));
            }
            let matches_private = (kn.as_slice(), ke.as_slice()) == signing;
            match private_kid {
                Some(pk) if pk == kid && !matches_private => {
                    return Err(HootError::Keys(format!(
                        "{label}: its kid {kid:?} names a different public key in {jwks_label}; \
                         the private key and jwks.json must come from the same key pair"
                    )))
                }
                Some(pk) if pk == kid => signing_kid = Some(kid.clone()),
                None if matches_private && signing_kid.is_none() => signing_kid = Some(kid.clone()),
                _ => {}
            }
            public.add(kid, &kn, &ke, &key_label)?;
        }
        public.signing_kid = signing_kid.ok_or_else(|| {
            HootError::Keys(match private_kid {
                Some(kid) => format!("{label}: its kid {kid:?} is not in {jwks_label}; add its public key there"),
                None => format!(
                    "{label}: its public key matches no key in {jwks_label}; \
                     the private key and jwks.json must come from the same key pair"
                ),
            })
        })?;
        Ok(public)
    }

    /// Without a JWKS: the private key's own public half, named by its kid.
    fn of_private_key(private_kid: Option<String>, (n, e): (&[u8], &[u8]), label: &str) -> Result<Self, HootError> {
        let kid = private_kid.ok_or_else(|| {
            HootError::Keys(format!(
                "{label}: the private key has no kid and no jwks.json was found to name it. {}",
                Role::Jwks.fix()
            ))
        })?;
        let mut public = PublicKeys { signing_kid: kid.clone(), verifying_keys: HashMap::new(), jwks: Vec::new() };
        public.add(kid, n, e, label)?;
        Ok(public)
    }

    fn add(&mut self, kid: String, n: &[u8], e: &[u8], label: &str) -> Result<(), HootError> {
        self.verifying_keys.insert(kid.clone(), verifying_key(n, e, label)?);
        self.jwks.push(public_jwk(&kid, n, e));
        Ok(())
    }
}

/// What `generateKeys` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedKeys {
    /// The new key's id.
    pub kid: String,
    /// The private JWK written (0600).
    pub private_key_path: PathBuf,
    /// The JWKS written with its public half (0600).
    pub jwks_path: PathBuf,
}

enum WriteError {
    Exists(PathBuf),
    Failed(HootError),
}

/// The RSA modulus sizes `generateKeys` makes.
pub fn key_size(bits: u32) -> Option<KeySize> {
    match bits {
        2048 => Some(KeySize::Rsa2048),
        3072 => Some(KeySize::Rsa3072),
        4096 => Some(KeySize::Rsa4096),
        _ => None,
    }
}

/// `generateKeys(dir, opts)`'s options as the caller gave them; `None` means "the default".
#[derive(Debug, Clone, Default)]
pub struct GenerateKeyOptions {
    /// The key id; a random UUID when absent.
    pub kid: Option<String>,
    /// The modulus size; 2048 when absent.
    pub bits: Option<f64>,
}

/// `generateKeys`: checks the caller's values, then writes a new pair into `dir` (relative to the
/// working directory).
pub fn generate_key_files(dir: &str, opts: &GenerateKeyOptions, env: &Environment) -> Result<GeneratedKeys, HootError> {
    if dir.is_empty() {
        return Err(HootError::arg_value("dir", "must not be empty"));
    }
    if opts.kid.as_deref() == Some("") {
        return Err(HootError::arg_value("opts.kid", "must not be empty"));
    }
    let size = match opts.bits {
        None => key_size(2048),
        Some(bits) if bits.fract() == 0.0 && bits > 0.0 && bits < 65536.0 => key_size(bits as u32),
        Some(_) => None,
    }
    .ok_or_else(|| HootError::out_of_range("opts.bits", "must be 2048, 3072 or 4096"))?;
    generate_keys(&env.absolute(Path::new(dir)), opts.kid.as_deref(), size, env.home().as_deref())
}

/// Generates an RS256 key pair into `dir` as Hoot's two files (directory 0700, files 0600). Refuses
/// to replace an existing key: rotating is deleting the files (or adding a key to jwks.json).
/// A dangling symbolic link at either name counts as a file, and a directory (or one above it, up
/// to `home`) that someone else can write is refused, as `loadKeys` would refuse the key.
pub fn generate_keys(
    dir: &Path,
    kid: Option<&str>,
    size: KeySize,
    home: Option<&Path>,
) -> Result<GeneratedKeys, HootError> {
    for existing in [dir.join(PRIVATE_KEY_FILE), dir.join(JWKS_FILE)] {
        if is_present(&existing) {
            return Err(HootError::Keys(format!(
                "{} already exists; hoot-core never overwrites a key. Delete {PRIVATE_KEY_FILE} and {JWKS_FILE} \
                 in {} to make a new one, or load the existing pair with loadKeys({{ keyDir }})",
                existing.display(),
                dir.display()
            )));
        }
    }
    match write_new_key(dir, kid, size, home) {
        Ok(written) => Ok(written),
        Err(WriteError::Exists(path)) => Err(HootError::Keys(format!(
            "{} appeared while the key was being written (another process is generating one); \
             load it with loadKeys({{ keyDir }})",
            path.display()
        ))),
        Err(WriteError::Failed(e)) => Err(e),
    }
}

fn write_new_key(
    dir: &Path,
    kid: Option<&str>,
    size: KeySize,
    home: Option<&Path>,
) -> Result<GeneratedKeys, WriteError> {
    let fail = |what: &str, path: &Path, e: io::Error| {
        WriteError::Failed(HootError::Keys(format!(
            "Cannot {what} {}: {e}. Make the directory writable, or pass loadKeys({{ keyDir }}) / set \
             JWT_PRIVATE_KEY_PATH and JWT_JWKS_PATH to keys you made yourself",
            path.display()
        )))
    };
    create_private_dir(dir).map_err(|e| fail("create the key directory", dir, e))?;
    let dir_meta = fs::metadata(dir).map_err(|e| fail("read the key directory", dir, e))?;
    if let Some(why) = untrusted(dir, &dir_meta, home) {
        return Err(WriteError::Failed(HootError::Keys(format!(
            "Refusing to write a key into {}: {why}, so someone else could replace the key. Use a \
             directory only this user can write (chmod 700 {}), or another one",
            dir.display(),
            dir.display()
        ))));
    }

    let key_pair = KeyPair::generate(size)
        .map_err(|_| WriteError::Failed(HootError::Internal("aws-lc-rs could not generate an RSA key".into())))?;
    let pkcs8 = key_pair
        .as_der()
        .map_err(|_| WriteError::Failed(HootError::Internal("aws-lc-rs could not encode a new key".into())))?;
    let kid = kid.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    let (private, public) = jwk_of_pkcs8(pkcs8.as_ref(), &kid)
        .map_err(|e| WriteError::Failed(HootError::Internal(format!("unreadable PKCS#8 from aws-lc-rs: {e}"))))?;
    let jwks = json!({ "keys": [public] });

    let private_key_path = dir.join(PRIVATE_KEY_FILE);
    let jwks_path = dir.join(JWKS_FILE);
    // The private key is linked into place last-writer-loses, so two processes starting at once
    // agree on one key; jwks.json follows and is only its public half.
    write_exclusive(&private_key_path, &pretty(&private)).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => WriteError::Exists(private_key_path.clone()),
        _ => fail("write", &private_key_path, e),
    })?;
    // Whoever links the private key writes its jwks.json, so one already there (a planted file or
    // link, or one left from an older key) is not this key's: never keep it.
    write_exclusive(&jwks_path, &pretty(&jwks)).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => WriteError::Failed(HootError::Keys(format!(
            "{} was already there (a file or link not written with this key). Delete {PRIVATE_KEY_FILE} and \
             {JWKS_FILE} in {} and start again",
            jwks_path.display(),
            dir.display()
        ))),
        _ => fail("write", &jwks_path, e),
    })?;
    Ok(GeneratedKeys { kid, private_key_path, jwks_path })
}

/// A two-prime RSA key in PKCS#8 (what aws-lc-rs writes for a key it generated; it has no accessor
/// for the private members) as Hoot's private JWK, and its public JWK.
fn jwk_of_pkcs8(pkcs8: &[u8], kid: &str) -> Result<(Value, Value), String> {
    let info = PrivateKeyInfoRef::try_from(pkcs8).map_err(|e| e.to_string())?;
    let key = RsaPrivateKeyRef::try_from(info.private_key).map_err(|e| e.to_string())?;
    if key.other_prime_infos.is_some() {
        return Err("a multi-prime key".to_string());
    }
    let b = |member: pkcs1::UintRef| b64(member.as_bytes());
    let private = json!({
        "kty": "RSA", "n": b(key.modulus), "e": b(key.public_exponent), "d": b(key.private_exponent),
        "p": b(key.prime1), "q": b(key.prime2), "dp": b(key.exponent1), "dq": b(key.exponent2),
        "qi": b(key.coefficient), "kid": kid, "alg": "RS256", "use": "sig",
    });
    Ok((private, public_jwk(kid, key.modulus.as_bytes(), key.public_exponent.as_bytes())))
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes `contents` to `path` only if nothing is there, never exposing a half-written file: a
/// 0600 temp file is filled and synced, then hard-linked into place (atomic, fails if it exists).
fn write_exclusive(path: &Path, contents: &str) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = new_private_file().open(&tmp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests;
