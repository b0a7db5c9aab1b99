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
use crate::private_fs::{create_private_dir, new_private_file};

/// The environment variable with the keys (base64url, comma-separated, the first seals).
pub const HOOT_ENCRYPTION_KEY: &str = "HOOT_ENCRYPTION_KEY";
/// The environment variable that turns encryption on for databases this process opens.
pub const HOOT_ENCRYPT_AT_REST: &str = "HOOT_ENCRYPT_AT_REST";
/// What every sealed value starts with; a stored value without it is plaintext.
pub const PREFIX: &str = "hoot-sealed:1:";
const KEY_FILE: &str = "encryption-keys";

/// Each sealed column of the OAuth store, on both backends: its table and column. The favicon cache (public) and the authorization
/// state (a short-lived random value compared in constant time) stay plain.
pub const SEALED_COLUMNS: [(&str, &str); 5] = [
    ("oauth_tokens", "tokens"),
    ("oauth_client_info", "client_info"),
    ("oauth_verifiers", "verifier"),
    ("server_configs", "config"),
    ("hoot_oauth_discovery", "state"),
];

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
        // One rotation at a time, across processes: the read, the new key and the rewrite happen
        // under an exclusive lock on a file beside the key file.
        let _lock = lock_beside(&path)?;
        let old = if crate::private_fs::is_present(&path) { read_lines(&path)? } else { Vec::new() };
        let new = new_key_text()?;
        let mut lines = vec![new.clone()];
        lines.extend(old);
        write_key_file(&path, &lines, false)?;
        let ring = read_key_file(&path)?;
        if ring.current_id() != parse_key(&new, "the new key")?.id {
            return Err(HootError::Keys(format!("{} changed during the rotation: run it again", path.display())));
        }
        Ok(ring)
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
        let Some(id) = sealed_with(stored) else { return Ok(stored.to_string()) };
        let body = &stored[PREFIX.len() + id.len() + 1..];
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| {
            let have = match self.keys.is_empty() {
                true => "no key".to_string(),
                false => format!("{} has {}", self.source, self.ids().join(", ")),
            };
            HootError::Keys(format!(
                "A value in {table} is sealed with key {id}, which this process does not have ({have}): add that key"
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

/// Whether a stored value is sealed, and with which key: the prefix, 16 hex digits and a
/// base64url body. Anything else is plaintext.
pub fn sealed_with(stored: &str) -> Option<&str> {
    let (id, body) = stored.strip_prefix(PREFIX)?.split_once(':')?;
    let hex = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    let base64 = !body.is_empty() && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (hex && base64).then_some(id)
}

/// The associated data: a label, then each field length-prefixed, so no two rows share it
/// whatever their ids hold.
fn aad(table: &str, user_id: &str, server_id: &str) -> Vec<u8> {
    let mut aad = b"hoot-core:1".to_vec();
    for field in [table, user_id, server_id] {
        aad.extend_from_slice(&(field.len() as u32).to_be_bytes());
        aad.extend_from_slice(field.as_bytes());
    }
    aad
}

fn altered(table: &str) -> HootError {
    HootError::Db(format!(
        "A sealed value in {table} does not open for its row: it was copied from another user's, server's or \
         table's row, or altered. It was not read; delete that row (the user authorizes again)"
    ))
}

fn read_lines(path: &Path) -> Result<Vec<String>, HootError> {
    let text = crate::private_fs::read_secret_text(path, "the encryption key file", 1 << 20)?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect())
}

fn read_key_file(path: &Path) -> Result<KeyRing, HootError> {
    let lines = read_lines(path)?;
    KeyRing::from_lines(&lines.join("\n"), path.display().to_string())
}

/// Writes the key file 0600 (its directory 0700) through a temporary file of a unique name: a new
/// file is linked into place (it fails, leaving the other process's file, if one appeared first);
/// a rewrite is renamed over the old one. The directory is synced after, so a crash leaves the old
/// file or the new one, whole.
fn write_key_file(path: &Path, lines: &[String], new: bool) -> Result<(), HootError> {
    let fail =
        |e: std::io::Error| HootError::Keys(format!("Cannot write the encryption key file {}: {e}", path.display()));
    let dir = path.parent().ok_or_else(|| HootError::Keys(format!("{} has no directory", path.display())))?;
    create_private_dir(dir).map_err(fail)?;
    let text = format!(
        "# hoot-core encryption keys: the first seals, all open. Keep a copy apart from the database.\n{}\n",
        lines.join("\n")
    );
    let mut suffix = [0u8; 8];
    SystemRandom::new().fill(&mut suffix).map_err(|_| HootError::Internal("the system random source failed".into()))?;
    let temp = dir.join(format!(".{KEY_FILE}.{}.tmp", suffix.iter().map(|b| format!("{b:02x}")).collect::<String>()));
    let mut file = new_private_file().open(&temp).map_err(fail)?;
    let written = file.write_all(text.as_bytes()).and_then(|_| file.sync_all());
    let placed = written.and_then(|_| if new { fs::hard_link(&temp, path) } else { fs::rename(&temp, path) });
    let _ = fs::remove_file(&temp);
    match placed {
        Ok(()) => {}
        // Another process made the file first: theirs is the key.
        Err(e) if new && e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(fail(e)),
    }
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// An exclusive lock on `<path>.lock`, held until dropped (`flock`; on other systems, none).
fn lock_beside(path: &Path) -> Result<fs::File, HootError> {
    let lock_path = path.with_extension("lock");
    let fail = |e: std::io::Error| HootError::Keys(format!("Cannot lock {}: {e}", lock_path.display()));
    let file = fs::OpenOptions::new().create(true).append(true).open(&lock_path).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: the descriptor is open for the whole call; flock has no other precondition.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(fail(std::io::Error::last_os_error()));
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(keys: &[&str]) -> Result<KeyRing, HootError> {
        KeyRing::from_lines(&keys.join(","), "test".into())
    }

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const K2: &str = "HxcbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEAAAA";

    #[test]
    fn a_sealed_value_opens_only_in_its_own_row_and_with_its_key() -> crate::tests::TestResult {
        let r = ring(&[K1])?;
        let sealed = r.seal("oauth_tokens", "u1", "s1", r#"{"access_token":"secret"}"#)?;
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
        assert_eq!(ring(&[K2])?.open("oauth_tokens", "u1", "s1", &sealed).map_err(|e| e.code()), Err("ERR_HOOT_KEYS"));
        assert_eq!(
            ring(&[K2, K1])?.open("oauth_tokens", "u1", "s1", &sealed).ok().as_deref(),
            Some(r#"{"access_token":"secret"}"#)
        );
        assert_eq!(r.open("oauth_tokens", "u1", "s1", "{\"plain\":1}").ok().as_deref(), Some("{\"plain\":1}"));
        let two = r.seal("oauth_tokens", "u1", "s1", "x")?;
        assert_ne!(two, r.seal("oauth_tokens", "u1", "s1", "x")?, "a nonce per value");
        assert_eq!(sealed_with(&sealed), Some(r.current_id()));
        assert_eq!(KeyRing::from_lines("abc", "t".into()).map_err(|e| e.code()).err(), Some("ERR_HOOT_KEYS"));
        Ok(())
    }
}
