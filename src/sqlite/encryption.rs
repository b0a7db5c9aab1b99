//! Encryption at rest for a database: whether it is encrypted (`hoot_encryption` lists the ids of
//! the keys its values are sealed with), the keys a process needs to open it, and the transitions
//! (`encrypt`, `decrypt`, `encrypt --rotate`), each in one transaction. The sealing itself is
//! `crate::sealing`.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::db::{get_or_open, sql_error, DbLocation};
use crate::env::Environment;
use crate::error::HootError;
use crate::metrics::BackendKind;
use crate::sealing::{self, KeyRing};
use crate::store::status::{decrypted, encrypted, keys_for_write, report_opened, report_sealing};
pub use crate::store::status::{proves, EncryptionStatus, Transition, DECRYPTED_TABLE};

pub use crate::sealing::SEALED_COLUMNS;

/// The error for sealed values in a process without keys.
pub fn no_keys(location: &DbLocation) -> HootError {
    crate::store::status::no_keys(&location.display())
}

fn recorded(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT key_id FROM hoot_encryption ORDER BY added_at, key_id")?;
    let ids = stmt.query_map([], |row| row.get(0))?.collect();
    ids
}

/// How many of each sealed column's newest sealed values are read for their key ids when the
/// database records no key. Only sealed values are looked at, so plaintext written after them
/// (by a writer without the key, say) cannot hide them; a plain database is read through once, at
/// open.
const SEALED_SCAN_ROWS: i64 = 1000;

/// The key ids of sealed values among each sealed column's newest rows. A decrypt leaves none, so
/// any found in a database that records no key means its key record was deleted.
pub(crate) fn sealed_key_ids(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut ids: Vec<String> = Vec::new();
    for (table, column) in SEALED_COLUMNS {
        let mut stmt = conn.prepare(&format!(
            "SELECT DISTINCT substr({column}, 15, 16) FROM \
             (SELECT {column} FROM {table} WHERE {column} GLOB 'hoot-sealed:1:*' ORDER BY rowid DESC LIMIT ?1)"
        ))?;
        for id in stmt.query_map([SEALED_SCAN_ROWS], |r| r.get::<_, String>(0))? {
            let id = id?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

/// The last decrypt's record, if any: its time (ms) and proof, unverified.
fn decrypt_record(conn: &Connection) -> rusqlite::Result<Option<(i64, String)>> {
    let exists: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)")?
        .query_row([DECRYPTED_TABLE], |r| r.get(0))?;
    if !exists {
        return Ok(None);
    }
    conn.prepare_cached(&format!("SELECT decrypted_at, proof FROM {DECRYPTED_TABLE} WHERE id = 1"))?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// Whether a decrypt ran since this process started sealing `db`, as a record proven under one of
/// its keys (or, the key file having changed since, of the key source's) says. A record older than
/// that is not enough: it may be an old one put back.
fn decrypted_since(conn: &Connection, db: &super::db::Database, ring: &KeyRing) -> Result<bool, HootError> {
    let record = decrypt_record(conn).map_err(sql_error(&db.location, "read the encryption state of"))?;
    let Some((at, proof)) = record.filter(|(at, _)| *at >= db.sealing_since()) else { return Ok(false) };
    if proves(ring, at, &proof) {
        return Ok(true);
    }
    Ok(matches!(KeyRing::load(&Environment::process()), Ok(Some(fresh)) if proves(&fresh, at, &proof)))
}

/// At open: the keys of an encrypted database (refusing to open it without one of them), or of
/// one that `HOOT_ENCRYPT_AT_REST=1` turns encryption on for.
pub fn at_open(
    conn: &Connection,
    location: &DbLocation,
    env: &Environment,
    now: i64,
) -> Result<Option<Arc<KeyRing>>, HootError> {
    let mut ids = recorded(conn).map_err(sql_error(location, "read the encryption state of"))?;
    if ids.is_empty() {
        if env.var(sealing::HOOT_ENCRYPT_AT_REST).is_some_and(|v| v == "1" || v == "on") {
            let ring = KeyRing::load_or_create(env)?;
            record(conn, &ring, now).map_err(sql_error(location, "turn encryption on for"))?;
            secure(conn);
            report_sealing(BackendKind::Sqlite, false, ring.current_id(), 0);
            return Ok(Some(Arc::new(ring)));
        }
        // Sealed values, and no key recorded: the record was deleted (a decrypt leaves no sealed
        // value). The database is encrypted all the same, and is treated so: no plaintext beside them.
        ids = sealed_key_ids(conn).map_err(sql_error(location, "read the encryption state of"))?;
        if ids.is_empty() {
            return Ok(None);
        }
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

/// The keys to seal a write with, read on `conn` inside the write's transaction: `None` for a
/// plain database.
///
/// - A database that records no key while this process seals was either decrypted (by a process
///   holding the key, which leaves a proof: sealing stops) or had its record deleted (which needs
///   no key): sealing goes on, and the key id is recorded again. A process that asked for
///   encryption thus never writes plaintext unless a real decrypt ran after it started sealing.
/// - An encrypted database whose recorded ids do not include this process's sealing key was
///   rotated (`encrypt --rotate`) since: the key source is read again, and if it still has no
///   current key, the write is refused (`ERR_HOOT_KEYS`) rather than sealed under a retired key.
///   A retired key's id is never written back.
/// - An encrypted database without a key in this process refuses the write.
///
/// The common case costs one cached read of a one-row table inside the write's transaction.
pub fn for_write(db: &super::db::Database, conn: &Connection) -> Result<Option<Arc<KeyRing>>, HootError> {
    let ids = recorded(conn).map_err(sql_error(&db.location, "read the encryption state of"))?;
    let now = crate::clock::unix_now() as i64;
    if ids.is_empty() {
        let Some(ring) = db.sealer() else { return Ok(None) };
        if decrypted_since(conn, db, &ring)? {
            db.set_sealer(None);
            return Ok(None);
        }
        record(conn, &ring, now).map_err(sql_error(&db.location, "record the encryption key of"))?;
        secure(conn);
        return Ok(Some(ring));
    }
    let described = db.location.display();
    let (ring, record_it) = keys_for_write(&ids, db.sealer(), || KeyRing::load(&Environment::process()), &described)?;
    if record_it {
        record(conn, &ring, now).map_err(sql_error(&db.location, "record the encryption key of"))?;
    }
    if !db.sealer().is_some_and(|sealer| Arc::ptr_eq(&sealer, &ring)) {
        db.set_sealer(Some(Arc::clone(&ring)));
    }
    Ok(Some(ring))
}

/// The keys to open a value sealed with `key_id`: this database's, or, if they lack that key
/// (another process ran `encrypt`, or `encrypt --rotate`, since this one opened it), the key
/// source's as they are now.
pub fn for_read(db: &super::db::Database, key_id: &str) -> Result<Arc<KeyRing>, HootError> {
    let current = db.sealer();
    if let Some(ring) = current.as_ref().filter(|ring| ring.ids().iter().any(|id| id == key_id)) {
        return Ok(Arc::clone(ring));
    }
    let fresh = match KeyRing::load(&Environment::process())? {
        Some(fresh) => Arc::new(fresh),
        None => return current.ok_or_else(|| no_keys(&db.location)),
    };
    // Kept for writes only when it holds every key the old one had (it is that key source, later).
    if current.as_ref().is_none_or(|old| old.ids().iter().all(|id| fresh.ids().contains(id))) {
        db.set_sealer(Some(Arc::clone(&fresh)));
    }
    Ok(fresh)
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
    report_sealing(BackendKind::Sqlite, false, ring.current_id(), 0);
    db.set_sealer(Some(Arc::new(ring)));
    Ok(())
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
    let was_on = db.sealer().is_some();
    let report = db.with_conn(|conn| {
        secure(conn);
        transform(conn, |table, user, server, stored| encrypted(&ring, rotate, table, user, server, stored)).and_then(
            |(changed, tx)| {
                if rotate {
                    tx.execute("DELETE FROM hoot_encryption", []).map_err(sql_error(&location, "rotate"))?;
                }
                if decrypt_record(&tx).map_err(sql_error(&location, "encrypt"))?.is_some() {
                    tx.execute(&format!("DELETE FROM {DECRYPTED_TABLE}"), [])
                        .map_err(sql_error(&location, "encrypt"))?;
                }
                record(&tx, &ring, now).map_err(sql_error(&location, "encrypt"))?;
                let ids = recorded(&tx).map_err(sql_error(&location, "encrypt"))?;
                tx.commit().map_err(sql_error(&location, "encrypt"))?;
                compact(conn);
                Ok(Transition { sealed: changed, opened: 0, key_ids: ids })
            },
        )
    })?;
    // Run again on an encrypted database with nothing left to seal, it changed nothing to report.
    if rotate || !was_on || report.sealed > 0 {
        report_sealing(BackendKind::Sqlite, rotate, ring.current_id(), report.sealed);
    }
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
        transform(conn, |table, user, server, stored| decrypted(&ring, table, user, server, stored)).and_then(
            |(changed, tx)| {
                tx.execute("DELETE FROM hoot_encryption", []).map_err(sql_error(&location, "decrypt"))?;
                // The proof that this was a decrypt, not a deleted row: what makes the servers that
                // seal stop (`for_write`). Without a key there is nothing to prove, nor was anything sealed.
                if !ring.ids().is_empty() {
                    let at = crate::clock::unix_now_ms();
                    tx.execute_batch(&format!(
                        "CREATE TABLE IF NOT EXISTS {DECRYPTED_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), \
                     decrypted_at INTEGER NOT NULL, proof TEXT NOT NULL)"
                    ))
                    .map_err(sql_error(&location, "decrypt"))?;
                    tx.execute(
                        &format!(
                            "INSERT OR REPLACE INTO {DECRYPTED_TABLE} (id, decrypted_at, proof) VALUES (1, ?1, ?2)"
                        ),
                        params![at, ring.seal(DECRYPTED_TABLE, "", "", &at.to_string())?],
                    )
                    .map_err(sql_error(&location, "decrypt"))?;
                }
                tx.commit().map_err(sql_error(&location, "decrypt"))?;
                compact(conn);
                Ok(Transition { sealed: 0, opened: changed, key_ids: Vec::new() })
            },
        )
    })?;
    db.set_sealer(None);
    report_opened(BackendKind::Sqlite, report.opened);
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
pub fn reseal_for_move(tx: &Connection, db: &super::db::Database, from: &str, to: &str) -> Result<(), HootError> {
    // The keys to seal with, as a write's: the database's current key, reloaded from the key
    // source after an `encrypt --rotate` (never a retired key written back). Looked up once, at
    // the first sealed value.
    let mut writer: Option<Option<Arc<KeyRing>>> = None;
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
            let Some(key_id) = sealing::sealed_with(&stored) else { continue };
            let plain = for_read(db, key_id)?.open(table, from, &server, &stored)?;
            let ring = match &writer {
                Some(ring) => ring.clone(),
                None => writer.insert(for_write(db, tx)?).clone(),
            };
            let value = match ring {
                Some(ring) => ring.seal(table, to, &server, &plain)?,
                None => plain, // decrypted (a verified decrypt) since: written as every write is
            };
            tx.execute(&format!("UPDATE {table} SET {column} = ?1 WHERE rowid = ?2"), params![value, rowid])
                .map_err(internal)?;
        }
    }
    Ok(())
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
