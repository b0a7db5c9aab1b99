//! One signing key set for every replica, in `hoot_signing_keys`. The first replica to ask makes
//! it, under an advisory lock, so replicas starting together agree on one key; the others load it.
//! A rotation adds a new signing key and keeps the previous one verifying (tokens it signed stay
//! good until they expire), removing older ones; it bumps `hoot_key_set.version`, which every
//! replica polls (`watch`), so each loads the new set within its poll interval.

use std::sync::Arc;

use aws_lc_rs::rsa::KeySize;
use serde_json::{json, Value};

use super::{schema, PgDatabase, Prepared};
use crate::error::HootError;
use crate::keys::{key_set_from_json, new_jwk_pair, KeySet, KeySource};

/// The advisory lock the first key is made under (the schema's, plus one).
const KEYS_LOCK: i64 = schema::SCHEMA_LOCK + 1;
/// The AAD table name a sealed private key is bound to (with its kid as the "server").
pub(crate) const TABLE: &str = "hoot_signing_keys";

/// The key set as loaded: the keys, and the version of the set they are.
pub struct Loaded {
    /// The key set, ready to install.
    pub keys: KeySet,
    /// `hoot_key_set.version` when it was read.
    pub version: i64,
}

/// What `rotate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The new signing key.
    pub kid: String,
    /// The keys that still verify besides it.
    pub kept: Vec<String>,
    /// The keys removed (their tokens stop verifying on every replica).
    pub removed: Vec<String>,
}

async fn generate() -> Result<(String, Value, Value), HootError> {
    let kid = uuid::Uuid::new_v4().to_string();
    // Generating an RSA key takes tens of milliseconds: off the runtime's async threads.
    let pair = tokio::task::spawn_blocking({
        let kid = kid.clone();
        move || new_jwk_pair(&kid, KeySize::Rsa2048)
    })
    .await
    .map_err(|e| HootError::Internal(format!("key generation stopped: {e}")))??;
    Ok((kid, pair.0, pair.1))
}

/// The private JWK as stored: sealed when the database is encrypted, as `encryption::for_write`
/// reads its state inside `tx` (which then holds off an `encrypt` or `decrypt` until it commits).
async fn sealed(
    db: &PgDatabase,
    tx: &deadpool_postgres::Transaction<'_>,
    kid: &str,
    private: &Value,
) -> Result<String, HootError> {
    let text = private.to_string();
    match super::encryption::for_write(db, tx).await? {
        Some(ring) => ring.seal(TABLE, "", kid, &text),
        None => Ok(text),
    }
}

/// Stores a new signing key (its private JWK as `stored`) and bumps the set's version, which is
/// what the replicas poll.
async fn add_signing_key(
    tx: &tokio_postgres::Transaction<'_>,
    kid: &str,
    stored: &str,
    public: &Value,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO hoot_signing_keys (kid, private_jwk, public_jwk, created_at, signing) \
         VALUES ($1, $2, $3, extract(epoch from now())::bigint, true)",
        &[&kid, &stored, &public.to_string()],
    )
    .await?;
    tx.execute("UPDATE hoot_key_set SET version = version + 1 WHERE id = 1", &[]).await?;
    Ok(())
}

/// Loads the key set, making its first key if the database has none. Exactly one key is made
/// however many replicas call this at once: each makes a candidate, and the first to take the lock
/// and find the table empty stores it.
pub async fn load_or_create(db: Arc<PgDatabase>) -> Result<Loaded, HootError> {
    if let Some(loaded) = load(&db).await? {
        return Ok(loaded);
    }
    let (kid, private, public) = generate().await?;
    let doing = "store the first signing key in";
    let mut conn = db.conn().await?;
    let err = |e: tokio_postgres::Error| db.error(doing, &e);
    let tx = conn.transaction().await.map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEYS_LOCK]).await.map_err(err)?;
    let count: i64 = tx.query_one("SELECT count(*) FROM hoot_signing_keys", &[]).await.map_err(err)?.get(0);
    if count == 0 {
        let stored = sealed(&db, &tx, &kid, &private).await?;
        add_signing_key(&tx, &kid, &stored, &public).await.map_err(err)?;
    }
    tx.commit().await.map_err(err)?;
    drop(conn);
    load(&db).await?.ok_or_else(|| HootError::Internal(format!("the first key in {} vanished", db.describe())))
}

/// The version of the key set now.
pub async fn version(db: &PgDatabase) -> Result<i64, HootError> {
    let conn = db.conn().await?;
    let row = conn
        .row_opt("SELECT version FROM hoot_key_set WHERE id = 1", &[])
        .await
        .map_err(|e| db.error("read the key set version of", &e))?;
    row.map(|r| r.get(0)).ok_or_else(|| HootError::Db(format!("{} has no key set row", db.describe())))
}

/// The key set stored now, or `None` when there is none yet. Read in one transaction, so the
/// version and the keys agree.
pub async fn load(db: &PgDatabase) -> Result<Option<Loaded>, HootError> {
    let doing = "read the signing keys of";
    let mut conn = db.conn().await?;
    let err = |e: tokio_postgres::Error| db.error(doing, &e);
    let tx = conn
        .build_transaction()
        .read_only(true)
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .map_err(err)?;
    let version: i64 = tx.query_one("SELECT version FROM hoot_key_set WHERE id = 1", &[]).await.map_err(err)?.get(0);
    let rows = tx
        .query("SELECT kid, private_jwk, public_jwk, signing FROM hoot_signing_keys ORDER BY created_at DESC, kid", &[])
        .await
        .map_err(err)?;
    tx.commit().await.map_err(err)?;
    drop(conn);
    let label = format!("the key set in {}", db.describe());
    let mut publics = Vec::new();
    let mut signing = None;
    for row in &rows {
        let (kid, private, public, is_signing): (String, String, String, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let public: Value = serde_json::from_str(&public)
            .map_err(|e| HootError::Keys(format!("{label} has an unreadable public key {kid:?}: {e}")))?;
        publics.push(public);
        if is_signing {
            signing = Some((kid, private));
        }
    }
    let Some((kid, private)) = signing else {
        if rows.is_empty() {
            return Ok(None);
        }
        return Err(HootError::Keys(format!(
            "{label} has no signing key; run `npx hoot-core keygen --rotate --database <url>` to make one"
        )));
    };
    let private = match crate::sealing::sealed_with(&private) {
        Some(key_id) => db.opening_ring(key_id).await?.open(TABLE, "", &kid, &private)?,
        None => private,
    };
    let private: Value = serde_json::from_str(&private)
        .map_err(|e| HootError::Keys(format!("{label} has an unreadable private key {kid:?}: {e}")))?;
    let keys = key_set_from_json(&private, &json!({ "keys": publics }), &label, KeySource::Database)?;
    Ok(Some(Loaded { keys, version }))
}

/// Makes a new signing key. The previous signing key keeps verifying unless `drop_previous` (a key
/// thought compromised); any older one is removed. Every replica loads the new set within its
/// poll interval, and drops the removed keys' cached verifications then.
pub async fn rotate(db: Arc<PgDatabase>, drop_previous: bool) -> Result<Rotation, HootError> {
    let (kid, private, public) = generate().await?;
    let doing = "rotate the signing keys of";
    let mut conn = db.conn().await?;
    let err = |e: tokio_postgres::Error| db.error(doing, &e);
    let tx = conn.transaction().await.map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEYS_LOCK]).await.map_err(err)?;
    let stored = sealed(&db, &tx, &kid, &private).await?;
    let previous: Vec<String> = tx
        .query("SELECT kid FROM hoot_signing_keys WHERE signing", &[])
        .await
        .map_err(err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let kept: Vec<String> = if drop_previous { Vec::new() } else { previous };
    let removed: Vec<String> = tx
        .query("DELETE FROM hoot_signing_keys WHERE NOT (kid = ANY($1)) RETURNING kid", &[&kept])
        .await
        .map_err(err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    tx.execute("UPDATE hoot_signing_keys SET signing = false", &[]).await.map_err(err)?;
    add_signing_key(&tx, &kid, &stored, &public).await.map_err(err)?;
    tx.commit().await.map_err(err)?;
    crate::events::emit("keys_rotated", |e| {
        e.set("backend", "postgres").set("kid", kid.as_str()).set("kept", kept.len()).set("removed", removed.len());
    });
    Ok(Rotation { kid, kept, removed })
}
