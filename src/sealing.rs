//! Encryption at rest: AES-256-GCM (aws-lc-rs) over the stored OAuth values, each sealed with a
//! random nonce and bound to its row (table, user id, server id as associated data), in a
//! versioned envelope that fits the same TEXT column: `hoot-sealed:1:<key id>:<base64url>`.
//!
//! Keys come from `HOOT_ENCRYPTION_KEY` (base64url of 32 random bytes; several, comma-separated,
//! the first sealing and the rest only opening) or from the key file `~/.hoot/keys/encryption-keys`
//! (one key per line, the first sealing), made 0600 on first use. A key's id is derived from it,
//! so a database can record which keys it needs without recording the keys.

#![warn(missing_docs)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::env::Environment;
use crate::error::HootError;
use crate::private_fs::{create_private_dir, new_private_file, open_regular};

/// The environment variable with the keys (base64url, comma-separated, the first seals).
pub const HOOT_ENCRYPTION_KEY: &str = "HOOT_ENCRYPTION_KEY";
/// The environment variable that turns encryption on for databases this process opens.
pub const HOOT_ENCRYPT_AT_REST: &str = "HOOT_ENCRYPT_AT_REST";
/// What every sealed value starts with; a stored value without it is plaintext.
pub const PREFIX: &str = "hoot-sealed:1:";
const KEY_FILE: &str = "encryption-keys";

/// A key and its id.
struct Key {
    id: String,
    key: LessSafeKey,
}

/// The keys a process has: the first seals, every one opens.
pub struct KeyRing {
    keys: Vec<Key>,
    /// Where the keys came from, for messages (`HOOT_ENCRYPTION_KEY` or the key file).
    pub source: String,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("ids", &self.ids()).field("source", &self.source).finish()
    }
}

/// The id of a key: 16 hex digits of a SHA-256 over a label and the key (never the key).
fn key_id(bytes: &[u8]) -> String {
    let mut input = b"hoot-core encryption key id\0".to_vec();
    input.extend_from_slice(bytes);
    digest(&SHA256, &input).as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_key(text: &str, source: &str) -> Result<Key, HootError> {
    let bytes = URL_SAFE_NO_PAD.decode(text.trim().trim_end_matches('=')).map_err(|_| {
        HootError::Keys(format!(
            "{source}: a key is not base64url (32 random bytes, e.g. `openssl rand -base64 32 | tr '+/' '-_'`)"
        ))
    })?;
    if bytes.len() != 32 {
        return Err(HootError::Keys(format!("{source}: a key is {} bytes; it must be 32", bytes.len())));
    }
    let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| HootError::Internal("AES key".into()))?;
    Ok(Key { id: key_id(&bytes), key: LessSafeKey::new(unbound) })
}

fn new_key_text() -> Result<String, HootError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).map_err(|_| HootError::Internal("the system random source failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The key file's path: `<HOME>/.hoot/keys/encryption-keys`.
pub fn key_file(env: &Environment) -> Option<PathBuf> {
    env.hoot_dir().map(|dir| dir.join("keys").join(KEY_FILE))
}

impl KeyRing {
    fn from_lines(text: &str, source: String) -> Result<KeyRing, HootError> {
        let keys = text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| parse_key(l, &source))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(HootError::Keys(format!("{source} holds no key")));
        }
        Ok(KeyRing { keys, source })
    }

    /// The process's keys: `HOOT_ENCRYPTION_KEY`, else the key file; `None` when neither exists.
    pub fn load(env: &Environment) -> Result<Option<KeyRing>, HootError> {
        if let Some(text) = env.var(HOOT_ENCRYPTION_KEY) {
            return KeyRing::from_lines(&text, HOOT_ENCRYPTION_KEY.to_string()).map(Some);
        }
        let Some(path) = key_file(env) else { return Ok(None) };
        if !crate::private_fs::is_present(&path) {
            return Ok(None);
        }
        read_key_file(&path).map(Some)
    }

    /// `load`, making the key file with a new key when there is no key at all.
    pub fn load_or_create(env: &Environment) -> Result<KeyRing, HootError> {
        if let Some(ring) = KeyRing::load(env)? {
            return Ok(ring);
        }
        let path = key_file(env).ok_or_else(|| {
            HootError::Keys(
                "No home directory for ~/.hoot/keys/encryption-keys: set HOME or HOOT_ENCRYPTION_KEY".into(),
            )
        })?;
        write_key_file(&path, &[new_key_text()?], true)?;
        read_key_file(&path)
    }

    /// A new key first in the key file, the old ones kept for opening (`encrypt --rotate`). With
    /// `HOOT_ENCRYPTION_KEY` set, the operator puts the new key first there instead.
    pub fn rotate_key_file(env: &Environment) -> Result<KeyRing, HootError> {
        if env.var(HOOT_ENCRYPTION_KEY).is_some() {
            return Err(HootError::Keys(
                "The keys come from HOOT_ENCRYPTION_KEY: put a new key first there (keep the old ones after it), then run encrypt --rotate without it changing".into(),
            ));
        }
        let path = key_file(env).ok_or_else(|| HootError::Keys("No home directory for the key file".into()))?;
        let old = if crate::private_fs::is_present(&path) { read_lines(&path)? } else { Vec::new() };
        let mut lines = vec![new_key_text()?];
        lines.extend(old);
        write_key_file(&path, &lines, false)?;
        read_key_file(&path)
    }

    /// `rotate_key_file`, or with `HOOT_ENCRYPTION_KEY` set, its keys as they are (the operator
    /// has put the new key first).
    pub fn rotate_key_file_or_env(env: &Environment) -> Result<KeyRing, HootError> {
        match env.var(HOOT_ENCRYPTION_KEY) {
            Some(text) => KeyRing::from_lines(&text, HOOT_ENCRYPTION_KEY.to_string()),
            None => KeyRing::rotate_key_file(env),
        }
    }

    /// No keys: opens plaintext only.
    pub fn empty() -> KeyRing {
        KeyRing { keys: Vec::new(), source: "no key".to_string() }
    }

    /// The ids of the keys, the sealing one first.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    /// The id of the key that seals (empty for `empty()`).
    pub fn current_id(&self) -> &str {
        self.keys.first().map_or("", |k| k.id.as_str())
    }

    /// Seals `plain` for its row.
    pub fn seal(&self, table: &str, user_id: &str, server_id: &str, plain: &str) -> Result<String, HootError> {
        let key = self.keys.first().ok_or_else(|| HootError::Keys("no encryption key to seal with".into()))?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| HootError::Internal("the system random source failed".into()))?;
        let mut data = plain.as_bytes().to_vec();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(table, user_id, server_id)),
                &mut data,
            )
            .map_err(|_| HootError::Internal("AES-GCM sealing failed".into()))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&data);
        Ok(format!("{PREFIX}{}:{}", key.id, URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// Opens a stored value of its row: plaintext is returned as it is; a sealed value opens only
    /// with its key and only in the row it was sealed for.
    pub fn open(&self, table: &str, user_id: &str, server_id: &str, stored: &str) -> Result<String, HootError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_string()) };
        let (id, body) = rest.split_once(':').ok_or_else(|| altered(table))?;
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| {
            HootError::Keys(format!(
                "A value in {table} is sealed with key {id}, which this process does not have ({} has {}): add that key",
                self.source,
                self.ids().join(", ")
            ))
        })?;
        let mut data = URL_SAFE_NO_PAD.decode(body).map_err(|_| altered(table))?;
        if data.len() < NONCE_LEN + 16 {
            return Err(altered(table));
        }
        let nonce = Nonce::try_assume_unique_for_key(&data[..NONCE_LEN]).map_err(|_| altered(table))?;
        let mut cipher = data.split_off(NONCE_LEN);
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(aad(table, user_id, server_id)), &mut cipher)
            .map_err(|_| altered(table))?;
        String::from_utf8(plain.to_vec()).map_err(|_| altered(table))
    }
}

/// Whether a stored value is sealed, and with which key.
pub fn sealed_with(stored: &str) -> Option<&str> {
    stored.strip_prefix(PREFIX).and_then(|rest| rest.split_once(':')).map(|(id, _)| id)
}

fn aad(table: &str, user_id: &str, server_id: &str) -> Vec<u8> {
    format!("hoot-core:1\0{table}\0{user_id}\0{server_id}").into_bytes()
}

fn altered(table: &str) -> HootError {
    HootError::Db(format!(
        "A sealed value in {table} does not open for its row: it was copied from another user's, server's or \
         table's row, or altered. It was not read; delete that row (the user authorizes again)"
    ))
}

fn read_lines(path: &Path) -> Result<Vec<String>, HootError> {
    let fail =
        |e: std::io::Error| HootError::Keys(format!("Cannot read the encryption key file {}: {e}", path.display()));
    let (mut file, _) = open_regular(path).map_err(fail)?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).map_err(fail)?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect())
}

fn read_key_file(path: &Path) -> Result<KeyRing, HootError> {
    let lines = read_lines(path)?;
    KeyRing::from_lines(&lines.join("\n"), path.display().to_string())
}

/// Writes the key file 0600 (its directory 0700): a new file is created exclusively; a rewrite
/// goes through a temporary file renamed over it, so a crash leaves the old or the new file.
fn write_key_file(path: &Path, lines: &[String], new: bool) -> Result<(), HootError> {
    let fail =
        |e: std::io::Error| HootError::Keys(format!("Cannot write the encryption key file {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        create_private_dir(dir).map_err(fail)?;
    }
    let text = format!(
        "# hoot-core encryption keys: the first seals, all open. Keep a copy somewhere safe.\n{}\n",
        lines.join("\n")
    );
    let target = if new { path.to_path_buf() } else { path.with_extension("tmp") };
    if !new {
        let _ = fs::remove_file(&target);
    }
    let mut file = new_private_file().open(&target).map_err(fail)?;
    file.write_all(text.as_bytes()).and_then(|_| file.sync_all()).map_err(fail)?;
    if !new {
        fs::rename(&target, path).map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(keys: &[&str]) -> KeyRing {
        KeyRing::from_lines(&keys.join(","), "test".into()).unwrap_or_else(|e| panic!("{e}"))
    }

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const K2: &str = "HxcbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEAAAA";

    #[test]
    fn a_sealed_value_opens_only_in_its_own_row_and_with_its_key() {
        let r = ring(&[K1]);
        let sealed = r.seal("oauth_tokens", "u1", "s1", r#"{"access_token":"secret"}"#).unwrap_or_default();
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("secret"));
        assert_eq!(r.open("oauth_tokens", "u1", "s1", &sealed).ok().as_deref(), Some(r#"{"access_token":"secret"}"#));
        for (table, user, server) in
            [("oauth_tokens", "u2", "s1"), ("oauth_tokens", "u1", "s2"), ("server_configs", "u1", "s1")]
        {
            assert_eq!(
                r.open(table, user, server, &sealed).map_err(|e| e.code()),
                Err("ERR_HOOT_DB"),
                "{table} {user} {server}"
            );
        }
        assert_eq!(ring(&[K2]).open("oauth_tokens", "u1", "s1", &sealed).map_err(|e| e.code()), Err("ERR_HOOT_KEYS"));
        assert_eq!(
            ring(&[K2, K1]).open("oauth_tokens", "u1", "s1", &sealed).ok().as_deref(),
            Some(r#"{"access_token":"secret"}"#)
        );
        assert_eq!(r.open("oauth_tokens", "u1", "s1", "{\"plain\":1}").ok().as_deref(), Some("{\"plain\":1}"));
        let two = r.seal("oauth_tokens", "u1", "s1", "x").unwrap_or_default();
        assert_ne!(two, r.seal("oauth_tokens", "u1", "s1", "x").unwrap_or_default(), "a nonce per value");
        assert_eq!(sealed_with(&sealed), Some(r.current_id()));
        assert_eq!(KeyRing::from_lines("abc", "t".into()).map_err(|e| e.code()).err(), Some("ERR_HOOT_KEYS"));
    }
}
