//! The store secret: 256 random bits only the servers hold, under which hoot-core MACs what a
//! database writer must not be able to make: a transfer code (whoever plants one becomes its
//! user), an account link (a planted one maps an attacker's account to a victim) and a throttled
//! source (stored as a MAC, never in clear). Rows whose MAC does not verify are treated as absent.
//!
//! On SQLite it is the process's: `HOOT_STORE_SECRET` (base64url of 32 bytes), else
//! `~/.hoot/keys/store-secret`, made 0600 on first use. It is apart from the signing keys, so a
//! key rotation keeps every link. On PostgreSQL it is a row of the database (`hoot_store_secret`),
//! shared by the replicas: there a database writer can read it (and mint tokens anyway).

#![warn(missing_docs)]

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use once_cell::sync::Lazy;

use crate::env::Environment;
use crate::error::HootError;
use crate::private_fs::{create_private_dir, new_private_file, open_regular};

/// The variable that holds the store secret (base64url of 32 random bytes), for processes whose
/// home directory does not persist.
pub const HOOT_STORE_SECRET: &str = "HOOT_STORE_SECRET";
const SECRET_FILE: &str = "store-secret";
const SECRET_BYTES: usize = 32;

/// A store secret. Its `Debug` shows nothing of it.
pub struct StoreSecret(hmac::Key);

impl std::fmt::Debug for StoreSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreSecret(..)")
    }
}

fn random_bytes() -> Result<[u8; SECRET_BYTES], HootError> {
    let mut bytes = [0u8; SECRET_BYTES];
    SystemRandom::new().fill(&mut bytes).map_err(|_| HootError::Internal("the system random source failed".into()))?;
    Ok(bytes)
}

impl StoreSecret {
    /// A new random secret.
    pub fn random() -> Result<Self, HootError> {
        Ok(StoreSecret::from_bytes(&random_bytes()?))
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        StoreSecret(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// A new random secret as stored: base64url of 32 bytes.
    pub fn new_text() -> Result<String, HootError> {
        Ok(URL_SAFE_NO_PAD.encode(random_bytes()?))
    }

    /// The secret written as `new_text` makes it; `source` names where it came from, for messages.
    pub fn parse(text: &str, source: &str) -> Result<Self, HootError> {
        match URL_SAFE_NO_PAD.decode(text.trim()) {
            Ok(bytes) if bytes.len() == SECRET_BYTES => Ok(StoreSecret::from_bytes(&bytes)),
            _ => Err(HootError::Keys(format!(
                "The store secret in {source} is not base64url of {SECRET_BYTES} bytes; make one with \
                 `node -e \"console.log(require('crypto').randomBytes(32).toString('base64url'))\"`"
            ))),
        }
    }

    /// The MAC (hex) of `parts` for `purpose`: each part length-prefixed, so no two lists of parts
    /// share a MAC.
    pub fn mac(&self, purpose: &str, parts: &[&[u8]]) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        for part in std::iter::once(purpose.as_bytes()).chain(parts.iter().copied()) {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        ctx.sign().as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `stored` is the MAC of `parts` for `purpose` (compared in constant time); false for
    /// a missing one.
    pub fn verify(&self, purpose: &str, parts: &[&[u8]], stored: Option<&str>) -> bool {
        let Some(stored) = stored else { return false };
        let expected = self.mac(purpose, parts);
        aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), stored.as_bytes()).is_ok()
    }
}

/// The secret file: `~/.hoot/keys/store-secret`.
pub fn secret_file(env: &Environment) -> Option<PathBuf> {
    env.hoot_dir().map(|dir| dir.join("keys").join(SECRET_FILE))
}

static FILE_SECRETS: Lazy<Mutex<HashMap<PathBuf, Arc<StoreSecret>>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// This process's store secret for SQLite databases: `HOOT_STORE_SECRET`, else the secret file
/// (made when missing; read once per process).
pub fn process_secret(env: &Environment) -> Result<Arc<StoreSecret>, HootError> {
    if let Some(text) = env.var(HOOT_STORE_SECRET) {
        return StoreSecret::parse(&text, HOOT_STORE_SECRET).map(Arc::new);
    }
    let path = secret_file(env).ok_or_else(|| {
        HootError::Keys(format!(
            "No home directory for the store secret (~/.hoot/keys/{SECRET_FILE}), which transfer codes and \
             account links need: set HOME or {HOOT_STORE_SECRET}"
        ))
    })?;
    let mut secrets = FILE_SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(secret) = secrets.get(&path) {
        return Ok(Arc::clone(secret));
    }
    let secret = Arc::new(load_or_create(&path)?);
    secrets.insert(path, Arc::clone(&secret));
    Ok(secret)
}

/// This process's store secret for SQLite databases if it has one already (`HOOT_STORE_SECRET`,
/// else an existing secret file): never makes one, for a copy run under another home.
pub fn existing_process_secret(env: &Environment) -> Result<Option<Arc<StoreSecret>>, HootError> {
    match env.var(HOOT_STORE_SECRET).is_some() || secret_file(env).is_some_and(|p| crate::private_fs::is_present(&p)) {
        true => process_secret(env).map(Some),
        false => Ok(None),
    }
}

/// The record, beside the secret file, of the database files whose account links from before
/// their MAC (schema 1) were adopted: a file is adopted once, so a database writer who drops the
/// `mac` column and lowers `user_version` gets no planted link adopted by a second migration.
pub fn adoption_ledger(env: &Environment) -> Option<PathBuf> {
    secret_file(env).map(|p| p.with_file_name("adopted-links"))
}

/// Whether `db` (a canonical path) is in the ledger at `ledger`.
pub fn adopted_before(ledger: &Path, db: &Path) -> Result<bool, HootError> {
    if !crate::private_fs::is_present(ledger) {
        return Ok(false);
    }
    let fail = |e: std::io::Error| HootError::Keys(format!("Cannot read {}: {e}", ledger.display()));
    let (file, _) = open_regular(ledger).map_err(fail)?;
    let mut text = String::new();
    file.take(16 << 20).read_to_string(&mut text).map_err(fail)?;
    let want = db.to_string_lossy();
    Ok(text.lines().any(|line| line == want))
}

/// Adds `db` (a canonical path) to the ledger at `ledger` (0600, its directory 0700).
pub fn record_adopted(ledger: &Path, db: &Path) -> Result<(), HootError> {
    let fail = |e: std::io::Error| HootError::Keys(format!("Cannot write {}: {e}", ledger.display()));
    if let Some(dir) = ledger.parent() {
        create_private_dir(dir).map_err(fail)?;
    }
    let mut file = new_private_file().create_new(false).create(true).append(true).open(ledger).map_err(fail)?;
    file.write_all(format!("{}\n", db.to_string_lossy()).as_bytes()).and_then(|_| file.sync_all()).map_err(fail)
}

/// Reads the secret file at `path`, or makes it (0600, its directory 0700) when there is none.
/// Processes that start together agree: the file is written whole under a temporary name and
/// linked into place, and the one that loses the race reads the winner's.
pub fn load_or_create(path: &Path) -> Result<StoreSecret, HootError> {
    let fail = |e: std::io::Error| HootError::Keys(format!("Cannot make the store secret {}: {e}", path.display()));
    if !crate::private_fs::is_present(path) {
        let dir = path.parent().ok_or_else(|| HootError::Keys(format!("{} has no directory", path.display())))?;
        create_private_dir(dir).map_err(fail)?;
        let suffix: String = random_bytes()?[..8].iter().map(|b| format!("{b:02x}")).collect();
        let temp = dir.join(format!(".{SECRET_FILE}.{suffix}.tmp"));
        let mut file = new_private_file().open(&temp).map_err(fail)?;
        let text = format!("{}\n", StoreSecret::new_text()?);
        let placed =
            file.write_all(text.as_bytes()).and_then(|_| file.sync_all()).and_then(|_| fs::hard_link(&temp, path));
        let _ = fs::remove_file(&temp);
        match placed {
            Ok(()) => {
                if let Ok(d) = fs::File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(e)),
        }
    }
    read_secret_file(path)
}

fn read_secret_file(path: &Path) -> Result<StoreSecret, HootError> {
    let text = crate::private_fs::read_secret_text(path, "the store secret", 1024)?;
    StoreSecret::parse(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mac_binds_its_purpose_and_every_part() -> crate::tests::TestResult {
        let secret = StoreSecret::random()?;
        let mac = secret.mac("p", &[b"ab", b"c"]);
        assert!(secret.verify("p", &[b"ab", b"c"], Some(&mac)));
        assert!(!secret.verify("p", &[b"a", b"bc"], Some(&mac)));
        assert!(!secret.verify("q", &[b"ab", b"c"], Some(&mac)));
        assert!(!secret.verify("p", &[b"ab", b"c"], None));
        assert!(!StoreSecret::random()?.verify("p", &[b"ab", b"c"], Some(&mac)));
        Ok(())
    }

    #[test]
    fn the_secret_file_is_made_private_once_and_read_back() -> crate::tests::TestResult {
        let dir = crate::tests::temp_dir("store-secret");
        let path = dir.join("keys").join(SECRET_FILE);
        let made = load_or_create(&path)?;
        let again = load_or_create(&path)?;
        assert_eq!(made.mac("p", &[b"x"]), again.mac("p", &[b"x"]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
            assert_eq!(load_or_create(&path).map_err(|e| e.code()).err(), Some("ERR_HOOT_KEYS"));
        }
        Ok(())
    }
}
