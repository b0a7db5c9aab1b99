//! What a PostgreSQL database holds, read without changing anything (`inspect`, doctor's report),
//! as SQLite's `schema::inspect`: the schema version, the tables hoot-core would make, tables
//! holding UUID user ids in upper case, and, when every table is there, the users' activity and
//! the encryption status. Nothing is created or migrated, and no key is needed: the connection
//! skips the schema check every other call makes first, and everything is read in one read-only
//! transaction, so the figures are of one moment.

use std::sync::Arc;

use super::schema::{PG_SCHEMA_VERSION, TABLES};
use super::{PgDatabase, Prepared};
use crate::error::HootError;
use crate::store::DatabaseStatus;

/// Reads the state of the database. `exists` is true once it is reached (a database that does not
/// exist fails to connect, `ERR_HOOT_DB`); `legacy_tables` is always empty (PostgreSQL never holds
/// Hoot's single-user form: a copy converts a legacy file on the way).
pub async fn inspect(db: Arc<PgDatabase>, now: i64) -> Result<DatabaseStatus, HootError> {
    let mut conn = db.raw_conn().await?;
    let err = |e: tokio_postgres::Error| db.error("inspect", &e);
    let tx = conn
        .build_transaction()
        .read_only(true)
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .map_err(err)?;
    let names: Vec<&str> = TABLES.iter().map(|(name, _)| *name).collect();
    // Resolved as every statement resolves them: through the search path.
    let missing: Vec<String> = tx
        .rows("SELECT name FROM unnest($1::text[]) WITH ORDINALITY AS t(name, n) WHERE to_regclass(name) IS NULL ORDER BY n", &[&names])
        .await
        .map_err(err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let has_version = tx.row_opt("SELECT to_regclass('hoot_schema_version') IS NOT NULL", &[]).await.map_err(err)?;
    let schema_version: i32 = match has_version.is_some_and(|r| r.get::<_, bool>(0)) {
        true => tx
            .row_opt("SELECT version FROM hoot_schema_version WHERE id = 1", &[])
            .await
            .map_err(err)?
            .map_or(0, |r| r.get(0)),
        false => 0,
    };
    // Only Hoot's kind of table (user and server), as on SQLite.
    let mut mixed_case_tables = Vec::new();
    for (name, columns) in TABLES {
        if missing.iter().any(|m| m == name) || !columns.starts_with("user_id TEXT NOT NULL, server_id") {
            continue;
        }
        let sql =
            format!("SELECT EXISTS (SELECT 1 FROM {name} WHERE length(user_id) = 36 AND user_id <> lower(user_id))");
        if tx.row_opt(&sql, &[]).await.map_err(err)?.is_some_and(|r| r.get::<_, bool>(0)) {
            mixed_case_tables.push(name.to_string());
        }
    }
    let (activity, encryption) = match missing.is_empty() {
        true => (
            Some(super::users::summary_on(&tx, now).await.map_err(err)?),
            Some(super::encryption::status_on(&tx).await.map_err(err)?),
        ),
        false => (None, None),
    };
    tx.commit().await.map_err(err)?;
    Ok(DatabaseStatus {
        exists: true,
        schema_version: i64::from(schema_version),
        legacy_tables: Vec::new(),
        missing_tables: missing,
        mixed_case_tables,
        activity,
        encryption,
    })
}

/// Nothing for hoot-core to do on this database: its schema is this version's, whole
/// (`DatabaseStatus::up_to_date` with PostgreSQL's schema version).
pub fn up_to_date(status: &DatabaseStatus) -> bool {
    status.up_to_date_at(i64::from(PG_SCHEMA_VERSION))
}
