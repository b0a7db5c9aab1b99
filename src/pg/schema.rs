//! The schema on PostgreSQL: the SQLite file's tables and columns under the same names (INTEGER
//! as BIGINT, `strftime('%s','now')` as the epoch), plus the shared key set, versioned in
//! `hoot_schema_version`. Migrations run in one transaction under a transaction-level advisory
//! lock, so replicas that start together wait for the first, then find the schema current.

use std::sync::Arc;

use deadpool_postgres::Object;

use super::PgDatabase;
use crate::env::Environment;
use crate::error::HootError;
use crate::sealing::{self, KeyRing};

/// The schema version this hoot-core makes and understands on PostgreSQL.
/// Version 2 MACs transfer codes and account links under the store secret (`hoot_store_secret`),
/// records what a code derives from, and counts failed redemptions per source.
/// Version 3 versions the tokens and client registrations and adds the refresh claims.
pub const PG_SCHEMA_VERSION: i32 = 3;

/// The advisory lock every schema change (and the first key generation) is made under: "hoot" in
/// ASCII, a number no other program is likely to lock.
pub const SCHEMA_LOCK: i64 = 0x686f_6f74;

/// The epoch now, in SQL: the default of every `created_at`.
const NOW: &str = "(extract(epoch from now())::bigint)";

/// Each table and its columns. The first fourteen are the SQLite file's; the next two hold the key
/// set every replica signs and verifies with; then the legacy files copied in, the store secret,
/// and the refresh claims (which the SQLite file has too).
pub const TABLES: [(&str, &str); 19] = [
    ("oauth_tokens", "user_id TEXT NOT NULL, server_id TEXT NOT NULL, tokens TEXT NOT NULL, version BIGINT, PRIMARY KEY (user_id, server_id)"),
    (
        "oauth_client_info",
        "user_id TEXT NOT NULL, server_id TEXT NOT NULL, client_info TEXT NOT NULL, version BIGINT, \
         PRIMARY KEY (user_id, server_id)",
    ),
    ("oauth_verifiers", "user_id TEXT NOT NULL, server_id TEXT NOT NULL, verifier TEXT NOT NULL, created_at BIGINT DEFAULT NOW, PRIMARY KEY (user_id, server_id)"),
    ("server_configs", "user_id TEXT NOT NULL, server_id TEXT NOT NULL, config TEXT NOT NULL, created_at BIGINT DEFAULT NOW, PRIMARY KEY (user_id, server_id)"),
    ("favicon_cache", "server_url TEXT PRIMARY KEY, favicon_url TEXT, oauth_logo_uri TEXT, cached_at BIGINT DEFAULT NOW"),
    ("hoot_oauth_discovery", "user_id TEXT NOT NULL, server_id TEXT NOT NULL, state TEXT NOT NULL, created_at BIGINT DEFAULT NOW, PRIMARY KEY (user_id, server_id)"),
    ("hoot_oauth_states", "user_id TEXT NOT NULL, server_id TEXT NOT NULL, state TEXT NOT NULL, created_at BIGINT DEFAULT NOW, PRIMARY KEY (user_id, server_id)"),
    ("hoot_users", "user_id TEXT PRIMARY KEY, first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL"),
    ("hoot_revocations", "user_id TEXT PRIMARY KEY, revoked_before BIGINT NOT NULL"),
    ("hoot_transfer_codes", "code_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, derived_from BIGINT, mac TEXT"),
    ("hoot_transfer_failures", "window_start BIGINT PRIMARY KEY, failures BIGINT NOT NULL"),
    ("hoot_transfer_source_failures", "window_start BIGINT NOT NULL, source_mac TEXT NOT NULL, failures BIGINT NOT NULL, PRIMARY KEY (window_start, source_mac)"),
    ("hoot_accounts", "account_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, linked_at BIGINT NOT NULL, mac TEXT"),
    ("hoot_encryption", "key_id TEXT PRIMARY KEY, added_at BIGINT NOT NULL"),
    // The signing keys: the private JWK (sealed when encryption at rest is on), its public JWK,
    // and whether it signs (exactly one does; the others only verify).
    (
        "hoot_signing_keys",
        "kid TEXT PRIMARY KEY, private_jwk TEXT NOT NULL, public_jwk TEXT NOT NULL, created_at BIGINT NOT NULL, \
         signing BOOLEAN NOT NULL DEFAULT false",
    ),
    // One row: bumped by every change to the key set, so replicas poll one number.
    ("hoot_key_set", "id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL"),
    // Each legacy SQLite file copied in (by its absolute path) and the user its rows went to, so a
    // second copy of that file maps them to the same user and another file's to a new one.
    ("hoot_copied_files", "source TEXT PRIMARY KEY, legacy_user_id TEXT NOT NULL, copied_at BIGINT NOT NULL"),
    // One row: the store secret transfer codes and account links are MACed under (`crate::secret`).
    ("hoot_store_secret", "id INTEGER PRIMARY KEY CHECK (id = 1), secret TEXT NOT NULL"),
    // Who refreshes a user's credential for a server, until when (ms): one row while a replica does.
    (
        "hoot_refresh_claims",
        "user_id TEXT NOT NULL, server_id TEXT NOT NULL, holder TEXT NOT NULL, expires_at BIGINT NOT NULL, \
         PRIMARY KEY (user_id, server_id)",
    ),
];

/// The per-user tables, for the copy from SQLite and `deleteAll`.
pub const USER_TABLES: [&str; 8] = [
    "oauth_tokens",
    "oauth_client_info",
    "oauth_verifiers",
    "server_configs",
    "hoot_oauth_discovery",
    "hoot_oauth_states",
    "hoot_users",
    "hoot_accounts",
];

/// Every table, as `migration_1` and `migration_2` make the ones they lack.
fn create_tables(sql: &mut String) {
    for (name, columns) in TABLES {
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {name} ({});\n",
            columns.replace("DEFAULT NOW", &format!("DEFAULT {NOW}"))
        ));
    }
}

/// The statements of migration 1: every table, and the indexes the per-user reads want.
fn migration_1() -> String {
    let mut sql = String::new();
    create_tables(&mut sql);
    sql.push_str("CREATE INDEX IF NOT EXISTS hoot_verifiers_age ON oauth_verifiers (created_at);\n");
    sql.push_str("CREATE INDEX IF NOT EXISTS hoot_revocations_time ON hoot_revocations (revoked_before);\n");
    sql.push_str("CREATE INDEX IF NOT EXISTS hoot_accounts_user ON hoot_accounts (user_id);\n");
    sql.push_str("INSERT INTO hoot_key_set (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;\n");
    sql
}

/// The statements of migration 2 (after 1): the columns and tables schema 2 added. Codes of
/// schema 1 (a plain SHA-256, which anyone could have planted) never verify: dropped. Links made
/// before are MACed by `ensure` once the secret exists, in the same transaction.
fn migration_2() -> String {
    let mut sql = String::new();
    create_tables(&mut sql);
    sql.push_str("ALTER TABLE hoot_transfer_codes ADD COLUMN IF NOT EXISTS derived_from BIGINT;\n");
    sql.push_str("ALTER TABLE hoot_transfer_codes ADD COLUMN IF NOT EXISTS mac TEXT;\n");
    sql.push_str("ALTER TABLE hoot_accounts ADD COLUMN IF NOT EXISTS mac TEXT;\n");
    sql.push_str("DELETE FROM hoot_transfer_codes WHERE mac IS NULL;\n");
    sql
}

/// The statements of migration 3 (after 2): the credentials' versions and the refresh claims.
fn migration_3() -> String {
    let mut sql = String::new();
    create_tables(&mut sql);
    sql.push_str("ALTER TABLE oauth_tokens ADD COLUMN IF NOT EXISTS version BIGINT;\n");
    sql.push_str("ALTER TABLE oauth_client_info ADD COLUMN IF NOT EXISTS version BIGINT;\n");
    sql
}

/// What `ensure` found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaReport {
    /// The version before.
    pub from: i32,
    /// The version now.
    pub to: i32,
}

/// Brings the schema to `PG_SCHEMA_VERSION` in one transaction, under `SCHEMA_LOCK`. A database
/// made by a newer hoot-core is refused, untouched.
pub async fn ensure(conn: &mut Object, db: &PgDatabase) -> Result<SchemaReport, HootError> {
    let doing = "make the schema of";
    let err = |e: tokio_postgres::Error| db.error(doing, &e);
    let tx = conn.transaction().await.map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await.map_err(err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS hoot_schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), \
         version INTEGER NOT NULL, migrated_at BIGINT NOT NULL)",
    )
    .await
    .map_err(err)?;
    let from: i32 =
        match tx.query_opt("SELECT version FROM hoot_schema_version WHERE id = 1", &[]).await.map_err(err)? {
            Some(row) => row.get(0),
            None => 0,
        };
    if from > PG_SCHEMA_VERSION {
        crate::events::emit("database_refused", |e| {
            e.set("backend", "postgres").set("reason", "newer_schema");
        });
        return Err(HootError::Db(format!(
            "Cannot use {}: its schema is version {from}, made by a newer hoot-core than this one (which knows \
             version {PG_SCHEMA_VERSION}); upgrade hoot-core on this server",
            db.describe()
        )));
    }
    if from < 1 {
        tx.batch_execute(&migration_1()).await.map_err(err)?;
    }
    if from < 2 {
        tx.batch_execute(&migration_2()).await.map_err(err)?;
        tx.execute(
            "INSERT INTO hoot_store_secret (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
            &[&crate::secret::StoreSecret::new_text()?],
        )
        .await
        .map_err(err)?;
        // Links of schema 1 were made by a server, and whoever could plant one can read the
        // secret anyway: MACed here, in the same transaction, so the upgrade keeps them.
        let secret = super::identity::store_secret(&tx, db).await?;
        let links =
            tx.query("SELECT account_id, user_id FROM hoot_accounts WHERE mac IS NULL", &[]).await.map_err(err)?;
        for row in links {
            let (account_id, user_id): (String, String) = (row.get(0), row.get(1));
            let mac = crate::store::identity::account_mac(&secret, &account_id, &user_id);
            tx.execute(
                "UPDATE hoot_accounts SET mac = $3 WHERE account_id = $1 AND user_id = $2",
                &[&account_id, &user_id, &mac],
            )
            .await
            .map_err(err)?;
        }
    }
    if from < 3 {
        tx.batch_execute(&migration_3()).await.map_err(err)?;
    }
    if from < PG_SCHEMA_VERSION {
        tx.execute(
            &format!(
                "INSERT INTO hoot_schema_version (id, version, migrated_at) VALUES (1, $1, {NOW}) \
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version, migrated_at = excluded.migrated_at"
            ),
            &[&PG_SCHEMA_VERSION],
        )
        .await
        .map_err(err)?;
    }
    tx.commit().await.map_err(err)?;
    if from < PG_SCHEMA_VERSION {
        crate::events::emit("database_migrated", |e| {
            e.set("backend", "postgres").set("fromVersion", from).set("toVersion", PG_SCHEMA_VERSION);
        });
    }
    Ok(SchemaReport { from, to: PG_SCHEMA_VERSION })
}

/// The key ids of up to 1,000 sealed values of each sealed column, as SQLite's
/// `encryption::sealed_key_ids`. The filter comes before the limit: a sample of rows in no order
/// could hold only older plaintext ones and miss every sealed value, so each column is searched
/// for sealed values until it has 1,000 or none is left (a plain database has none, and reads
/// each column once).
async fn sealed_key_ids(conn: &Object) -> Result<Vec<String>, tokio_postgres::Error> {
    let mut ids: Vec<String> = Vec::new();
    for (table, column) in sealing::SEALED_COLUMNS {
        let sql = format!(
            "SELECT DISTINCT substr({column}, 15, 16) FROM (SELECT {column} FROM {table} \
             WHERE starts_with({column}, 'hoot-sealed:1:') LIMIT 1000) AS sealed"
        );
        for row in conn.query(&sql, &[]).await? {
            let id: String = row.get(0);
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

/// The keys writes are sealed with, from `hoot_encryption` and the environment, as SQLite's
/// `encryption::at_open`: a database that records key ids needs one of them here (else nothing is
/// read or written); one that records none turns encryption on when asked (`encrypt`, or
/// `HOOT_ENCRYPT_AT_REST=1`), recording the sealing key's id.
pub async fn encryption_at_open(
    conn: &Object,
    db: &PgDatabase,
    requested: bool,
    env: &Environment,
) -> Result<Option<Arc<KeyRing>>, HootError> {
    let doing = "read the encryption state of";
    let rows = conn
        .query("SELECT key_id FROM hoot_encryption ORDER BY added_at, key_id", &[])
        .await
        .map_err(|e| db.error(doing, &e))?;
    let mut ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let from_env = env.var(sealing::HOOT_ENCRYPT_AT_REST).is_some_and(|v| v == "1" || v == "on");
    if ids.is_empty() && !(requested || from_env) {
        // Sealed values and no key recorded (the record was deleted, which needs no key; or the
        // values were copied from an encrypted SQLite file): encrypted all the same, so a process
        // with the key seals beside them instead of writing plaintext.
        ids = sealed_key_ids(conn).await.map_err(|e| db.error(doing, &e))?;
    }
    let turned_on = ids.is_empty();
    let ring = if ids.is_empty() {
        if !(requested || from_env) {
            return Ok(None);
        }
        KeyRing::load_or_create(env)?
    } else {
        let ring = KeyRing::load(env)?.ok_or_else(|| {
            HootError::Keys(format!(
                "{} is encrypted and this process has no encryption key: set HOOT_ENCRYPTION_KEY (or put the key \
                 file ~/.hoot/keys/encryption-keys in place) with a key it was sealed with",
                db.describe()
            ))
        })?;
        if !ring.ids().iter().any(|id| ids.contains(id)) {
            return Err(HootError::Keys(format!(
                "{} is sealed with key(s) {}, and this process has {}: use a key it was sealed with",
                db.describe(),
                ids.join(", "),
                ring.ids().join(", ")
            )));
        }
        ring
    };
    let recorded = conn
        .execute(
            &format!(
                "INSERT INTO hoot_encryption (key_id, added_at) VALUES ($1, {NOW}) ON CONFLICT (key_id) DO NOTHING"
            ),
            &[&ring.current_id()],
        )
        .await
        .map_err(|e| db.error("turn encryption on for", &e))?;
    // Of replicas starting together, the one whose row went in turned it on.
    if turned_on && recorded == 1 {
        crate::store::status::report_sealing(crate::metrics::BackendKind::Postgres, false, ring.current_id(), 0);
    }
    Ok(Some(Arc::new(ring)))
}
