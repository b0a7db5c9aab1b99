//! What a database reports about itself, whatever the backend: its schema and activity for
//! `doctor` (`DatabaseStatus`), its encryption (`EncryptionStatus`), what an encryption transition
//! did (`Transition`), and the proof a decrypt leaves for the processes still sealing.

#![warn(missing_docs)]

use std::sync::Arc;

use crate::error::HootError;
use crate::metrics::BackendKind;
use crate::sealing::{self, KeyRing};

/// The table holding the proof of the last `decrypt`: its time (ms) sealed under the decrypting
/// key, which nobody without that key can make. It is hoot-core's own, made by the first decrypt.
pub const DECRYPTED_TABLE: &str = "hoot_encryption_decrypted";

/// Whether `proof` is the decrypt time `at` sealed under a key of `ring` (a plaintext proof,
/// which `open` would hand back as it is, proves nothing).
pub fn proves(ring: &KeyRing, at: i64, proof: &str) -> bool {
    sealing::sealed_with(proof).is_some()
        && ring.open(DECRYPTED_TABLE, "", "", proof).is_ok_and(|text| text == at.to_string())
}

/// Reports sealing turned on (`encryption_on`: at open, by `encryption: 'on'` or `encrypt()`) or
/// moved to a new key (`encryption_rotated`), with the sealing key's id (an id, not the key) and
/// the values sealed by the change.
pub fn report_sealing(backend: BackendKind, rotated: bool, key_id: &str, sealed: u64) {
    let kind = if rotated { "encryption_rotated" } else { "encryption_on" };
    crate::events::emit(kind, |e| {
        e.set("backend", backend.label()).set("keyId", key_id).set("sealed", sealed);
    });
}

/// Reports a `decrypt()` (`encryption_off`), with the values opened.
pub fn report_opened(backend: BackendKind, opened: u64) {
    crate::events::emit("encryption_off", |e| {
        e.set("backend", backend.label()).set("opened", opened);
    });
}

/// What a transition did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transition {
    /// Values sealed (or sealed again under the current key).
    pub sealed: u64,
    /// Values opened back into plaintext.
    pub opened: u64,
    /// The key ids the database records afterwards.
    pub key_ids: Vec<String>,
}

/// What `doctor` reports: whether the database is encrypted, its key ids, and values per key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EncryptionStatus {
    /// True when the database records a key.
    pub encrypted: bool,
    /// The key ids it records.
    pub key_ids: Vec<String>,
    /// Sealed values per key id.
    pub sealed: Vec<(String, u64)>,
    /// Values still in plaintext.
    pub plaintext: u64,
    /// Rows a migration kept aside (`hoot_migration_conflicts`), which hold their values in
    /// plaintext whatever the encryption.
    pub kept_aside: u64,
}

/// What a database holds, read without changing anything (for `hoot-core doctor`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabaseStatus {
    /// Whether the file exists.
    pub exists: bool,
    /// `PRAGMA user_version`.
    pub schema_version: i64,
    /// Tables still in Hoot's single-user form: `migrateDatabase` would convert them.
    pub legacy_tables: Vec<String>,
    /// Tables hoot-core would create.
    pub missing_tables: Vec<String>,
    /// Tables holding UUID user ids in upper case, which `migrateDatabase` lowers.
    pub mixed_case_tables: Vec<String>,
    /// The users' activity, when every table is there to count it.
    pub activity: Option<super::users::ActivitySummary>,
    /// Whether values are sealed, and with which keys, when every table is there.
    pub encryption: Option<EncryptionStatus>,
}

impl DatabaseStatus {
    /// Nothing for a migration to do, on a backend whose schema is at `version`.
    pub fn up_to_date_at(&self, version: i64) -> bool {
        self.exists
            && self.schema_version == version
            && self.legacy_tables.is_empty()
            && self.missing_tables.is_empty()
            && self.mixed_case_tables.is_empty()
    }
}

/// The error for sealed values in a process without keys; `described` names the database.
pub fn no_keys(described: &str) -> HootError {
    HootError::Keys(format!(
        "{described} is encrypted and this process has no encryption key: set HOOT_ENCRYPTION_KEY (or put the key \
         file ~/.hoot/keys/encryption-keys in place) with a key it was sealed with"
    ))
}

/// The keys a write seals with on an encrypted database (one that records the key ids `ids`, at
/// least one), the rule both backends follow inside the write's transaction. `sealer` is what this
/// process seals the database with (none: another process encrypted it since it opened it), and
/// `load` reads the key source as it is now. Returns the keys, and whether their current id is to
/// be recorded (a newer key of this process's own, put first since it opened the database). A
/// database sealed since with keys this process does not have first (another process ran
/// `encrypt --rotate`) refuses the write (`ERR_HOOT_KEYS`) rather than seal under a retired key;
/// one this process has no keys for refuses it too. The backend then seals with the keys returned.
pub fn keys_for_write(
    ids: &[String],
    sealer: Option<Arc<KeyRing>>,
    load: impl Fn() -> Result<Option<KeyRing>, HootError>,
    described: &str,
) -> Result<(Arc<KeyRing>, bool), HootError> {
    let loaded = || Ok::<_, HootError>(Arc::new(load()?.ok_or_else(|| no_keys(described))?));
    let ring = match sealer {
        Some(ring) => ring,
        None => loaded()?,
    };
    if ids.iter().any(|id| id == ring.current_id()) {
        return Ok((ring, false));
    }
    let fresh = loaded()?;
    if ids.iter().any(|id| id == fresh.current_id()) {
        return Ok((fresh, false));
    }
    if !fresh.ids().iter().any(|id| ids.contains(id)) {
        return Err(HootError::Keys(format!(
            "{described} is now sealed with key(s) {} (an `encrypt --rotate` ran since this process opened it), and \
             {} seals with {}: put the new key first there (keep the old ones after it) and restart; nothing was \
             written",
            ids.join(", "),
            fresh.source,
            fresh.current_id()
        )));
    }
    Ok((fresh, true))
}

/// What `encrypt` does to one stored value (`None`: leaves it): a plaintext value is sealed for
/// its row, and with `rotate` a value sealed under another key than `ring`'s current one is
/// sealed again under it. The rule of both backends' transitions.
pub fn encrypted(
    ring: &KeyRing,
    rotate: bool,
    table: &str,
    user: &str,
    server: &str,
    stored: &str,
) -> Result<Option<String>, HootError> {
    match sealing::sealed_with(stored) {
        None => Ok(Some(ring.seal(table, user, server, stored)?)),
        Some(id) if rotate && id != ring.current_id() => {
            Ok(Some(ring.seal(table, user, server, &ring.open(table, user, server, stored)?)?))
        }
        Some(_) => Ok(None),
    }
}

/// What `decrypt` does to one stored value (`None`: leaves it): a sealed value is opened.
pub fn decrypted(
    ring: &KeyRing,
    table: &str,
    user: &str,
    server: &str,
    stored: &str,
) -> Result<Option<String>, HootError> {
    match sealing::sealed_with(stored) {
        Some(_) => Ok(Some(ring.open(table, user, server, stored)?)),
        None => Ok(None),
    }
}
