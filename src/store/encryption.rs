//! Encryption at rest for a database: whether it is encrypted (`hoot_encryption` lists the ids of
//! the keys its values are sealed with), the keys a process needs to open it, and the transitions
//! (`encrypt`, `decrypt`, `encrypt --rotate`), each in one transaction. The sealing itself is
//! `crate::sealing`.

use std::sync::Arc;

use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use super::db::{get_or_open, sql_error, DbLocation};
use crate::env::Environment;
use crate::error::HootError;
use crate::sealing::{self, KeyRing};

/// Each sealed column: its table and column. The favicon cache (public) and the authorization
/// state (a short-lived random value compared in constant time) stay plain.
pub const SEALED_COLUMNS: [(&str, &str); 5] = [
    ("oauth_tokens", "tokens"),
    ("oauth_client_info", "client_info"),
    ("oauth_verifiers", "verifier"),
    ("server_configs", "config"),
    ("hoot_oauth_discovery", "state"),
];

/// The error for sealed values in a process without keys.
pub fn no_keys(location: &DbLocation) -> HootError {
    HootError::Keys(format!(
        "{} is encrypted and this process has no encryption key: set HOOT_ENCRYPTION_KEY (or put the key file \
         ~/.hoot/keys/encryption-keys in place) with a key it was sealed with",
        location.display()
    ))
}

fn recorded(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT key_id FROM hoot_encryption ORDER BY added_at, key_id")?;
    let ids = stmt.query_map([], |row| row.get(0))?.collect();
    ids
}

/// At open: the keys of an encrypted database (refusing to open it without one of them), or of
/// one that `HOOT_ENCRYPT_AT_REST=1` turns encryption on for.
pub fn at_open(
    conn: &Connection,
    location: &DbLocation,
    env: &Environment,
    now: i64,
) -> Result<Option<Arc<KeyRing>>, HootError> {
    let ids = recorded(conn).map_err(sql_error(location, "read the encryption state of"))?;
    if ids.is_empty() {
        if env.var(sealing::HOOT_ENCRYPT_AT_REST).is_some_and(|v| v == "1" || v == "on") {
            let ring = KeyRing::load_or_create(env)?;
            record(conn, &ring, now).map_err(sql_error(location, "turn encryption on for"))?;
            secure(conn);
            return Ok(Some(Arc::new(ring)));
        }
        return Ok(None);
    }
    let ring = KeyRing::load(env)?.ok_or_else(|| no_keys(location))?;
    if !ring.ids().iter().any(|id| ids.contains(id)) {
        return Err(HootError::Keys(format!(
            "{} is sealed with key(s) {}, and {} has {}: use a key it was sealed with",
            location.display(),
            ids.join(", "),
            ring.source,
            ring.ids().join(", ")
        )));
    }
    record(conn, &ring, now).map_err(sql_error(location, "record the encryption key of"))?;
    secure(conn);
    Ok(Some(Arc::new(ring)))
}

/// Before the schema is brought up to date: an encrypted database is not migrated (or written at
/// all) by a process that has no key for it.
pub fn before_migration(conn: &Connection, location: &DbLocation, env: &Environment) -> Result<(), HootError> {
    let has_table: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'hoot_encryption')",
            [],
            |r| r.get(0),
        )
        .map_err(sql_error(location, "read the encryption state of"))?;
    if has_table
        && !recorded(conn).map_err(sql_error(location, "read the encryption state of"))?.is_empty()
        && KeyRing::load(env)?.is_none()
    {
        return Err(no_keys(location));
    }
    Ok(())
}

/// The keys to seal a write with, from the database's state now (another process may have run
/// `encrypt` or `decrypt` since this one opened it): `None` for a plain database. An encrypted
/// database without a key in this process refuses the write rather than take plaintext; the
/// sealing key's id is recorded, so the list of ids stays the list of keys in use.
pub fn for_write(db: &super::db::Database) -> Result<Option<Arc<KeyRing>>, HootError> {
    let ids = db.with_conn(|conn| recorded(conn).map_err(sql_error(&db.location, "read the encryption state of")))?;
    if ids.is_empty() {
        if db.sealer().is_some() {
            db.set_sealer(None); // decrypted by another process: plaintext from now on
        }
        return Ok(None);
    }
    let ring = match db.sealer() {
        Some(ring) => ring,
        None => {
            let ring = Arc::new(KeyRing::load(&Environment::process())?.ok_or_else(|| no_keys(&db.location))?);
            db.set_sealer(Some(Arc::clone(&ring)));
            ring
        }
    };
    if !ids.iter().any(|id| id == ring.current_id()) {
        let now = crate::clock::unix_now() as i64;
        db.with_conn(|conn| {
            record(conn, &ring, now).map_err(sql_error(&db.location, "record the encryption key of"))?;
            secure(conn);
            Ok(())
        })?;
    }
    Ok(Some(ring))
}

/// The keys to open a sealed value with: this database's, or, if it had none when this process
/// opened it (another process ran `encrypt` since), the process's own.
pub fn for_read(db: &super::db::Database) -> Result<Arc<KeyRing>, HootError> {
    if let Some(ring) = db.sealer() {
        return Ok(ring);
    }
    let ring = Arc::new(KeyRing::load(&Environment::process())?.ok_or_else(|| no_keys(&db.location))?);
    db.set_sealer(Some(Arc::clone(&ring)));
    Ok(ring)
}

/// With encryption on, SQLite overwrites what it frees, so a replaced plaintext value does not
/// linger in free pages.
fn secure(conn: &Connection) {
    let _ = conn.pragma_update(None, "secure_delete", true);
}

/// After a transition: the WAL emptied into the file and the file rebuilt, so no copy of the old
/// values stays in it (best effort: another connection reading at that moment defers it).
fn compact(conn: &Connection) {
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    let _ = conn.execute_batch("VACUUM");
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

/// Records the sealing key's id (idempotent).
fn record(conn: &Connection, ring: &KeyRing, now: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO hoot_encryption (key_id, added_at) VALUES (?1, ?2)",
        params![ring.current_id(), now],
    )
    .map(|_| ())
}

/// Turns encryption on for an open database (a store opened with `encryption: 'on'`): from now
/// on every value written is sealed.
pub fn enable(location: DbLocation, env: &Environment, now: i64) -> Result<(), HootError> {
    let (db, _) = get_or_open(location.clone(), now * 1000)?;
    if db.sealer().is_some() {
        return Ok(());
    }
    let ring = KeyRing::load_or_create(env)?;
    db.with_conn(|conn| {
        record(conn, &ring, now).map_err(sql_error(&location, "turn encryption on for"))?;
        secure(conn);
        Ok(())
    })?;
    db.set_sealer(Some(Arc::new(ring)));
    Ok(())
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

/// `encrypt`: seals every plaintext value (with `rotate`, also every value sealed with another key
/// than the current one, and the key file gets a new current key), in one transaction.
pub fn encrypt_database(
    location: DbLocation,
    env: &Environment,
    rotate: bool,
    now: i64,
) -> Result<Transition, HootError> {
    let ring = Arc::new(if rotate { KeyRing::rotate_key_file_or_env(env)? } else { KeyRing::load_or_create(env)? });
    let (db, _) = get_or_open(location.clone(), now * 1000)?;
    let report = db.with_conn(|conn| {
        secure(conn);
        transform(conn, |table, user, server, stored| match sealing::sealed_with(stored) {
            None => Ok(Some(ring.seal(table, user, server, stored)?)),
            Some(id) if rotate && id != ring.current_id() => {
                Ok(Some(ring.seal(table, user, server, &ring.open(table, user, server, stored)?)?))
            }
            Some(_) => Ok(None),
        })
        .and_then(|(changed, tx)| {
            if rotate {
                tx.execute("DELETE FROM hoot_encryption", []).map_err(sql_error(&location, "rotate"))?;
            }
            record(&tx, &ring, now).map_err(sql_error(&location, "encrypt"))?;
            let ids = recorded(&tx).map_err(sql_error(&location, "encrypt"))?;
            tx.commit().map_err(sql_error(&location, "encrypt"))?;
            compact(conn);
            Ok(Transition { sealed: changed, opened: 0, key_ids: ids })
        })
    })?;
    db.set_sealer(Some(ring));
    Ok(report)
}

/// `decrypt`: opens every sealed value back into plaintext and marks the database plain, in one
/// transaction (for going back to Hoot's own code).
pub fn decrypt_database(location: DbLocation, env: &Environment, now: i64) -> Result<Transition, HootError> {
    let (db, _) = get_or_open(location.clone(), now * 1000)?;
    let ring = match db.sealer() {
        Some(ring) => ring,
        None => match KeyRing::load(env)? {
            Some(ring) => Arc::new(ring),
            None => Arc::new(KeyRing::empty()),
        },
    };
    let report = db.with_conn(|conn| {
        transform(conn, |table, user, server, stored| match sealing::sealed_with(stored) {
            Some(_) => Ok(Some(ring.open(table, user, server, stored)?)),
            None => Ok(None),
        })
        .and_then(|(changed, tx)| {
            tx.execute("DELETE FROM hoot_encryption", []).map_err(sql_error(&location, "decrypt"))?;
            tx.commit().map_err(sql_error(&location, "decrypt"))?;
            compact(conn);
            Ok(Transition { sealed: 0, opened: changed, key_ids: Vec::new() })
        })
    })?;
    db.set_sealer(None);
    Ok(report)
}

/// Rewrites every value of the sealed columns that `change` returns a new text for, inside one
/// `BEGIN IMMEDIATE` transaction it hands back uncommitted (dropped, it rolls back).
fn transform<'c>(
    conn: &'c Connection,
    mut change: impl FnMut(&str, &str, &str, &str) -> Result<Option<String>, HootError>,
) -> Result<(u64, Transaction<'c>), HootError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate).map_err(internal)?;
    let mut changed = 0;
    for (table, column) in SEALED_COLUMNS {
        let rows: Vec<(i64, String, String, String)> = {
            let mut stmt =
                tx.prepare(&format!("SELECT rowid, user_id, server_id, {column} FROM {table}")).map_err(internal)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(internal)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(internal)?;
            rows
        };
        for (rowid, user, server, stored) in rows {
            // Bound to the id as hoot-core reads it: a UUID in lower case (a mixed-case one, which
            // Hoot's own code may have written, is lowered at the next open).
            let user = if user.len() == 36 { user.to_ascii_lowercase() } else { user };
            if let Some(new) = change(table, &user, &server, &stored)? {
                tx.execute(&format!("UPDATE {table} SET {column} = ?1 WHERE rowid = ?2"), params![new, rowid])
                    .map_err(internal)?;
                changed += 1;
            }
        }
    }
    Ok((changed, tx))
}

fn internal(e: rusqlite::Error) -> HootError {
    HootError::Db(format!("The encryption transition failed and changed nothing: {e}"))
}

/// Seals again, for `to`, every sealed value of `from` before a move changes their user id (the
/// user id is part of what a sealed value is bound to). Called inside the move's transaction.
pub fn reseal_for_move(tx: &Connection, ring: Option<&KeyRing>, from: &str, to: &str) -> Result<(), HootError> {
    for (table, column) in SEALED_COLUMNS {
        let rows: Vec<(i64, String, String)> = {
            let mut stmt = tx
                .prepare(&format!("SELECT rowid, server_id, {column} FROM {table} WHERE user_id = ?1"))
                .map_err(internal)?;
            let rows = stmt
                .query_map([from], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(internal)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(internal)?;
            rows
        };
        for (rowid, server, stored) in rows {
            if sealing::sealed_with(&stored).is_none() {
                continue;
            }
            let ring = ring.ok_or_else(|| HootError::Keys("sealed values to move, and no encryption key".into()))?;
            let plain = ring.open(table, from, &server, &stored)?;
            tx.execute(
                &format!("UPDATE {table} SET {column} = ?1 WHERE rowid = ?2"),
                params![ring.seal(table, to, &server, &plain)?, rowid],
            )
            .map_err(internal)?;
        }
    }
    Ok(())
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

/// The encryption status, read on any connection to a database that has every table.
pub fn status_on(conn: &Connection) -> rusqlite::Result<EncryptionStatus> {
    let key_ids = recorded(conn)?;
    let mut per_key: Vec<(String, u64)> = Vec::new();
    let mut plaintext = 0;
    for (table, column) in SEALED_COLUMNS {
        let mut stmt = conn.prepare(&format!(
            "SELECT CASE WHEN {column} GLOB 'hoot-sealed:1:[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]:*' THEN substr({column}, 15, 16) END, count(*) FROM {table} GROUP BY 1"
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            match row? {
                (None, n) => plaintext += n as u64,
                (Some(id), n) => match per_key.iter_mut().find(|(k, _)| *k == id) {
                    Some(entry) => entry.1 += n as u64,
                    None => per_key.push((id, n as u64)),
                },
            }
        }
    }
    per_key.sort();
    let has_conflicts: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'hoot_migration_conflicts')",
        [],
        |r| r.get(0),
    )?;
    let kept_aside = match has_conflicts {
        true => conn.query_row("SELECT count(*) FROM hoot_migration_conflicts", [], |r| r.get::<_, i64>(0))? as u64,
        false => 0,
    };
    Ok(EncryptionStatus { encrypted: !key_ids.is_empty(), key_ids, sealed: per_key, plaintext, kept_aside })
}
