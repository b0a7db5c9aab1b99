//! Encryption at rest on PostgreSQL, as `store::encryption` does it on SQLite: `hoot_encryption`
//! lists the ids of the keys the values are sealed with; `encrypt` (with `rotate`, under a new
//! key) and `decrypt` rewrite every sealed column in one transaction; every write checks, in its
//! own statement, that the database's state is still the one this process seals for, and learns
//! the new one when it is not (`for_write`), so a replica that opened the database before another
//! ran `encrypt` seals its next write, and one open before a `decrypt` stops sealing.
//!
//! A transition takes `hoot_encryption` in ACCESS EXCLUSIVE mode for its whole transaction. Every
//! statement that writes a sealed value names that table (the write's check, a move's and a key
//! rotation's reads of the state), so it waits for the transition to commit and then sees its
//! outcome: nothing is written plain into a database being encrypted, or sealed into one being
//! decrypted. Reads never touch the table and go on meanwhile.
//!
//! PostgreSQL holds one more sealed column than SQLite: the signing keys' private JWKs
//! (`hoot_signing_keys`, bound to their kid), which are sealed, rotated, opened and counted with
//! the rest.

use std::future::Future;
use std::sync::Arc;

use super::{PgDatabase, Prepared};
use crate::error::HootError;
use crate::metrics::BackendKind;
use crate::sealing::{KeyRing, SEALED_COLUMNS};
use crate::store::status::{
    decrypted, encrypted, keys_for_write, proves, report_opened, report_sealing, EncryptionStatus, Transition,
    DECRYPTED_TABLE,
};

/// The signing keys' private JWKs: sealed with table `hoot_signing_keys`, user `""` and their kid
/// as the server (`keys::sealed`).
const SIGNING_KEYS: (&str, &str) = (super::keys::TABLE, "private_jwk");

/// Rows per UPDATE of a transition.
const CHUNK: usize = 1000;

/// The key ids the database records, oldest first.
pub(crate) async fn recorded(conn: &impl Prepared) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = conn.rows("SELECT key_id FROM hoot_encryption ORDER BY added_at, key_id", &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Records the sealing key's id (idempotent).
async fn record(conn: &impl Prepared, ring: &KeyRing, now: i64) -> Result<(), tokio_postgres::Error> {
    conn.exec(
        "INSERT INTO hoot_encryption (key_id, added_at) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING",
        &[&ring.current_id(), &now],
    )
    .await
    .map(|_| ())
}

/// The last decrypt's record, if any: its time (ms) and proof, unverified. The table is made by
/// the first decrypt, as on SQLite.
async fn decrypt_record(conn: &impl Prepared) -> Result<Option<(i64, String)>, tokio_postgres::Error> {
    let exists: bool = conn
        .row_opt(&format!("SELECT to_regclass('{DECRYPTED_TABLE}') IS NOT NULL"), &[])
        .await?
        .is_some_and(|r| r.get(0));
    if !exists {
        return Ok(None);
    }
    let row = conn.row_opt(&format!("SELECT decrypted_at, proof FROM {DECRYPTED_TABLE} WHERE id = 1"), &[]).await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Whether a decrypt ran since this process started sealing `db`, as a record proven under one of
/// its keys (or, the key source having changed since, of the key source's) says.
async fn decrypted_since(conn: &impl Prepared, db: &PgDatabase, ring: &KeyRing) -> Result<bool, HootError> {
    let record = decrypt_record(conn).await.map_err(|e| db.error("read the encryption state of", &e))?;
    let Some((at, proof)) = record.filter(|(at, _)| *at >= db.sealing_since()) else { return Ok(false) };
    if proves(ring, at, &proof) {
        return Ok(true);
    }
    Ok(matches!(KeyRing::load(db.env()), Ok(Some(fresh)) if proves(&fresh, at, &proof)))
}

/// The keys to seal a write with, read on `conn` (`None`: plain), by SQLite's rules
/// (`store::encryption::for_write`), after a write found the database's state other than this
/// process's (`store::PgStore::write`), and inside a move's or a key rotation's transaction:
///
/// - no key recorded while this process seals: a decrypt (proven under the key, and since this
///   process started sealing) stops sealing; otherwise the record was deleted, and the key id is
///   recorded again;
/// - a key recorded while this process writes plain: another process encrypted it; the keys are
///   loaded (none: `ERR_HOOT_KEYS`, nothing written);
/// - this process's sealing key no longer recorded: another process ran `encrypt --rotate`; the
///   key source is read again, and without a recorded key first there the write is refused
///   (`ERR_HOOT_KEYS`) rather than sealed under a retired key.
pub(crate) async fn for_write(db: &PgDatabase, conn: &impl Prepared) -> Result<Option<Arc<KeyRing>>, HootError> {
    let ids = recorded(conn).await.map_err(|e| db.error("read the encryption state of", &e))?;
    let now = crate::clock::unix_now() as i64;
    let recording = |e: tokio_postgres::Error| db.error("record the encryption key of", &e);
    if ids.is_empty() {
        let Some(ring) = db.sealer() else { return Ok(None) };
        if decrypted_since(conn, db, &ring).await? {
            db.set_sealer(None);
            return Ok(None);
        }
        record(conn, &ring, now).await.map_err(recording)?;
        return Ok(Some(ring));
    }
    let (ring, record_it) = keys_for_write(&ids, db.sealer(), || KeyRing::load(db.env()), db.describe())?;
    if record_it {
        record(conn, &ring, now).await.map_err(recording)?;
    }
    if !db.sealer().is_some_and(|sealer| Arc::ptr_eq(&sealer, &ring)) {
        db.set_sealer(Some(Arc::clone(&ring)));
    }
    Ok(Some(ring))
}

/// `step`, failing with `ERR_HOOT_DB` if it takes longer than the database's call timeout: a
/// transition as a whole may take longer than one call (it reads and rewrites every value), each
/// of its statements may not.
async fn within<T>(
    db: &PgDatabase,
    doing: &str,
    step: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, HootError> {
    let limit = db.settings().call_timeout();
    match tokio::time::timeout(limit, step).await {
        Ok(result) => result.map_err(|e| db.error(doing, &e)),
        Err(_) => {
            db.forget_idle_connections();
            Err(HootError::Db(format!(
                "Cannot {doing} {}: no answer within {} ms (the server or the network stopped answering; the \
                 transaction is rolled back and nothing changed)",
                db.describe(),
                limit.as_millis()
            )))
        }
    }
}

/// Rewrites every value of the sealed columns (and the signing keys) that `change` returns a new
/// text for, inside `tx`; returns how many. `change` gets the table, user id, server id (for the
/// signing keys: `""` and the kid) and stored text, as SQLite's `transform`.
async fn transform(
    tx: &deadpool_postgres::Transaction<'_>,
    db: &PgDatabase,
    doing: &str,
    mut change: impl FnMut(&str, &str, &str, &str) -> Result<Option<String>, HootError>,
) -> Result<u64, HootError> {
    let mut changed = 0;
    for (table, column) in SEALED_COLUMNS {
        let rows =
            within(db, doing, tx.rows(&format!("SELECT user_id, server_id, {column} FROM {table}"), &[])).await?;
        let (mut users, mut servers, mut values) = (Vec::new(), Vec::new(), Vec::new());
        for row in rows {
            let (user, server, stored): (String, String, String) = (row.get(0), row.get(1), row.get(2));
            // Bound to the id as hoot-core reads it: a UUID in lower case.
            let bound = if user.len() == 36 { user.to_ascii_lowercase() } else { user.clone() };
            if let Some(new) = change(table, &bound, &server, &stored)? {
                users.push(user);
                servers.push(server);
                values.push(new);
            }
        }
        changed += values.len() as u64;
        let sql = format!(
            "UPDATE {table} AS t SET {column} = v.value FROM unnest($1::text[], $2::text[], $3::text[]) \
             AS v(user_id, server_id, value) WHERE t.user_id = v.user_id AND t.server_id = v.server_id"
        );
        for at in (0..values.len()).step_by(CHUNK) {
            let end = (at + CHUNK).min(values.len());
            let (u, s, v) = (&users[at..end], &servers[at..end], &values[at..end]);
            within(db, doing, tx.exec(&sql, &[&u, &s, &v])).await?;
        }
    }
    let (table, column) = SIGNING_KEYS;
    let rows = within(db, doing, tx.rows(&format!("SELECT kid, {column} FROM {table}"), &[])).await?;
    let (mut kids, mut values) = (Vec::new(), Vec::new());
    for row in rows {
        let (kid, stored): (String, String) = (row.get(0), row.get(1));
        if let Some(new) = change(table, "", &kid, &stored)? {
            kids.push(kid);
            values.push(new);
        }
    }
    changed += values.len() as u64;
    if !values.is_empty() {
        let sql = format!(
            "UPDATE {table} AS t SET {column} = v.value FROM unnest($1::text[], $2::text[]) AS v(kid, value) \
             WHERE t.kid = v.kid"
        );
        within(db, doing, tx.exec(&sql, &[&kids, &values])).await?;
    }
    Ok(changed)
}

/// Takes the encryption state for a transition: writers of sealed values wait until it commits.
async fn lock_state(tx: &deadpool_postgres::Transaction<'_>, db: &PgDatabase, doing: &str) -> Result<(), HootError> {
    within(db, doing, tx.exec("LOCK TABLE hoot_encryption IN ACCESS EXCLUSIVE MODE", &[])).await.map(|_| ())
}

/// `encrypt`: seals every plaintext value (with `rotate`, also every value sealed with another
/// key than the current one, and the key file gets a new current key first), in one transaction,
/// as SQLite's `encrypt_database`. The keys come from `HOOT_ENCRYPTION_KEY` or the key file (made
/// on first use).
pub async fn encrypt(db: Arc<PgDatabase>, rotate: bool, now: i64) -> Result<Transition, HootError> {
    let doing = "encrypt";
    let ring = Arc::new(match rotate {
        true => KeyRing::rotate_key_file_or_env(db.env())?,
        false => KeyRing::load_or_create(db.env())?,
    });
    let was_on = db.ring().await?.is_some();
    let mut conn = db.conn().await?;
    let tx = within(&db, doing, conn.transaction()).await?;
    lock_state(&tx, &db, doing).await?;
    let sealed =
        transform(&tx, &db, doing, |table, user, server, stored| encrypted(&ring, rotate, table, user, server, stored))
            .await?;
    if rotate {
        within(&db, doing, tx.exec("DELETE FROM hoot_encryption", &[])).await?;
    }
    if within(&db, doing, decrypt_record(&tx)).await?.is_some() {
        within(&db, doing, tx.exec(&format!("DELETE FROM {DECRYPTED_TABLE}"), &[])).await?;
    }
    within(&db, doing, record(&tx, &ring, now)).await?;
    let key_ids = within(&db, doing, recorded(&tx)).await?;
    within(&db, doing, tx.commit()).await?;
    // Run again on an encrypted database with nothing left to seal, it changed nothing to report.
    if rotate || !was_on || sealed > 0 {
        report_sealing(BackendKind::Postgres, rotate, ring.current_id(), sealed);
    }
    db.set_sealer(Some(ring));
    Ok(Transition { sealed, opened: 0, key_ids })
}

/// `decrypt`: opens every sealed value back into plaintext and marks the database plain, in one
/// transaction, leaving a proof of the decrypt sealed under the key (`hoot_encryption_decrypted`,
/// made by the first decrypt) that makes the replicas which seal stop, as SQLite's
/// `decrypt_database`.
pub async fn decrypt(db: Arc<PgDatabase>) -> Result<Transition, HootError> {
    let doing = "decrypt";
    let ring = match db.ring().await? {
        Some(ring) => ring,
        None => Arc::new(KeyRing::load(db.env())?.unwrap_or_else(KeyRing::empty)),
    };
    let mut conn = db.conn().await?;
    let tx = within(&db, doing, conn.transaction()).await?;
    lock_state(&tx, &db, doing).await?;
    let opened =
        transform(&tx, &db, doing, |table, user, server, stored| decrypted(&ring, table, user, server, stored)).await?;
    within(&db, doing, tx.exec("DELETE FROM hoot_encryption", &[])).await?;
    // The proof that this was a decrypt, not a deleted row: what makes the replicas that seal
    // stop (`for_write`). Without a key there is nothing to prove, nor was anything sealed.
    if !ring.ids().is_empty() {
        let at = crate::clock::unix_now_ms();
        within(
            &db,
            doing,
            tx.exec(
                &format!(
                    "CREATE TABLE IF NOT EXISTS {DECRYPTED_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), \
                     decrypted_at BIGINT NOT NULL, proof TEXT NOT NULL)"
                ),
                &[],
            ),
        )
        .await?;
        let proof = ring.seal(DECRYPTED_TABLE, "", "", &at.to_string())?;
        within(
            &db,
            doing,
            tx.exec(
                &format!(
                    "INSERT INTO {DECRYPTED_TABLE} (id, decrypted_at, proof) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO UPDATE SET decrypted_at = excluded.decrypted_at, proof = excluded.proof"
                ),
                &[&at, &proof],
            ),
        )
        .await?;
    }
    within(&db, doing, tx.commit()).await?;
    db.set_sealer(None);
    report_opened(BackendKind::Postgres, opened);
    Ok(Transition { sealed: 0, opened, key_ids: Vec::new() })
}

/// The encryption status (for `inspect`), as SQLite's `status_on`, the signing keys counted with
/// the values. PostgreSQL never holds rows a migration kept aside (`hoot_migration_conflicts`:
/// a copy from SQLite leaves them in the file), so `kept_aside` is 0.
pub(crate) async fn status_on(conn: &impl Prepared) -> Result<EncryptionStatus, tokio_postgres::Error> {
    let key_ids = recorded(conn).await?;
    let mut sealed: Vec<(String, u64)> = Vec::new();
    let mut plaintext = 0;
    for (table, column) in SEALED_COLUMNS.into_iter().chain([SIGNING_KEYS]) {
        let sql = format!(
            "SELECT CASE WHEN {column} ~ '^hoot-sealed:1:[0-9a-f]{{16}}:' THEN substr({column}, 15, 16) END, \
             count(*) FROM {table} GROUP BY 1"
        );
        for row in conn.rows(&sql, &[]).await? {
            let n = row.get::<_, i64>(1) as u64;
            match row.get::<_, Option<String>>(0) {
                None => plaintext += n,
                Some(id) => match sealed.iter_mut().find(|(k, _)| *k == id) {
                    Some(entry) => entry.1 += n,
                    None => sealed.push((id, n)),
                },
            }
        }
    }
    sealed.sort();
    Ok(EncryptionStatus { encrypted: !key_ids.is_empty(), key_ids, sealed, plaintext, kept_aside: 0 })
}
