//! Hoot's on-disk schema and the migration from its single-user schema, in one `BEGIN IMMEDIATE`
//! transaction: a crash leaves the file fully legacy or fully migrated, never in between.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};

use super::db::{io_error, is_busy, retry_busy, retry_while, sql_error, DbLocation};
use super::identity::{adopt_links, AdoptLinks};
use crate::error::HootError;
use crate::private_fs::new_private_file;
pub use crate::store::status::DatabaseStatus;
pub use crate::store::tables::*;

/// `PRAGMA user_version` of a database whose schema hoot-core has checked and completed.
/// Version 2 MACs transfer codes and account links under the store secret (`crate::secret`),
/// records what a code derives from, and counts failed redemptions per source.
/// Version 3 versions the tokens and client registrations (a new random `version` at each write)
/// and adds the refresh claims (`REFRESH_CLAIMS_TABLE`).
pub const SCHEMA_VERSION: i64 = 3;

/// Each table's columns exactly as Hoot's backend creates them, so each side reads the other's rows.
/// The last two are hoot-core's own (no Hoot query names them): the MCP SDK's discovery state and
/// the OAuth `state` handed out with a PKCE verifier, per user and server.
const TABLES: [(&str, &str); 15] = [
    (
        "oauth_tokens",
        "user_id TEXT NOT NULL, server_id TEXT NOT NULL, tokens TEXT NOT NULL, version INTEGER, \
         PRIMARY KEY (user_id, server_id)",
    ),
    (
        "oauth_client_info",
        "user_id TEXT NOT NULL, server_id TEXT NOT NULL, client_info TEXT NOT NULL, version INTEGER, \
         PRIMARY KEY (user_id, server_id)",
    ),
    (
        "oauth_verifiers",
        "user_id TEXT NOT NULL, server_id TEXT NOT NULL, verifier TEXT NOT NULL, \
         created_at INTEGER DEFAULT (strftime('%s', 'now')), PRIMARY KEY (user_id, server_id)",
    ),
    (
        "server_configs",
        "user_id TEXT NOT NULL, server_id TEXT NOT NULL, config TEXT NOT NULL, \
         created_at INTEGER DEFAULT (strftime('%s', 'now')), PRIMARY KEY (user_id, server_id)",
    ),
    (
        "favicon_cache",
        "server_url TEXT PRIMARY KEY, favicon_url TEXT, oauth_logo_uri TEXT, \
         cached_at INTEGER DEFAULT (strftime('%s', 'now'))",
    ),
    (
        DISCOVERY_TABLE,
        "user_id TEXT NOT NULL, server_id TEXT NOT NULL, state TEXT NOT NULL, \
         created_at INTEGER DEFAULT (strftime('%s', 'now')), PRIMARY KEY (user_id, server_id)",
    ),
    (
        AUTHORIZATION_STATES_TABLE,
        "user_id TEXT NOT NULL, server_id TEXT NOT NULL, state TEXT NOT NULL, \
         created_at INTEGER DEFAULT (strftime('%s', 'now')), PRIMARY KEY (user_id, server_id)",
    ),
    (USERS_TABLE, "user_id TEXT PRIMARY KEY, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL"),
    (REVOCATIONS_TABLE, "user_id TEXT PRIMARY KEY, revoked_before INTEGER NOT NULL"),
    (
        TRANSFER_CODES_TABLE,
        "code_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, \
         derived_from INTEGER, mac TEXT",
    ),
    ("hoot_transfer_failures", "window_start INTEGER PRIMARY KEY, failures INTEGER NOT NULL"),
    (
        SOURCE_FAILURES_TABLE,
        "window_start INTEGER NOT NULL, source_mac TEXT NOT NULL, failures INTEGER NOT NULL, \
         PRIMARY KEY (window_start, source_mac)",
    ),
    (ACCOUNTS_TABLE, "account_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, linked_at INTEGER NOT NULL, mac TEXT"),
    (ENCRYPTION_TABLE, "key_id TEXT PRIMARY KEY, added_at INTEGER NOT NULL"),
    (
        REFRESH_CLAIMS_TABLE,
        "user_id TEXT NOT NULL, server_id TEXT NOT NULL, holder TEXT NOT NULL, expires_at INTEGER NOT NULL, \
         PRIMARY KEY (user_id, server_id)",
    ),
];

/// Columns schemas 2 and 3 added to tables earlier ones made: (table, column, its definition).
/// Rows from before have none: codes are dropped, links adopted (MACed) by the migration that adds
/// `mac`, and credentials are `UNVERSIONED` until written again.
const ADDED_COLUMNS: [(&str, &str, &str); 5] = [
    (TRANSFER_CODES_TABLE, "derived_from", "derived_from INTEGER"),
    (TRANSFER_CODES_TABLE, "mac", "mac TEXT"),
    (ACCOUNTS_TABLE, "mac", "mac TEXT"),
    ("oauth_tokens", "version", "version INTEGER"),
    ("oauth_client_info", "version", "version INTEGER"),
];

fn create_table(name: &str, columns: &str) -> String {
    format!("CREATE TABLE IF NOT EXISTS {name} ({columns});")
}

fn columns_of(name: &str) -> &'static str {
    TABLES.iter().find(|(table, _)| *table == name).map_or("", |(_, columns)| columns)
}

/// A table that had a single-user form: its name and the columns carried over besides `server_id`.
struct UserTable {
    name: &'static str,
    columns: &'static [&'static str],
}

const USER_TABLES: [UserTable; 3] = [
    UserTable { name: "oauth_tokens", columns: &["tokens"] },
    UserTable { name: "oauth_client_info", columns: &["client_info"] },
    UserTable { name: "oauth_verifiers", columns: &["verifier", "created_at"] },
];

/// What `migrateDatabase` did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationReport {
    /// True when legacy tables were converted (empty ones included).
    pub migrated: bool,
    /// The user the legacy rows now belong to.
    pub legacy_user_id: Option<String>,
    /// Rows moved into `oauth_tokens`.
    pub tokens: u64,
    /// Rows moved into `oauth_client_info`.
    pub client_info: u64,
    /// Rows moved into `oauth_verifiers`.
    pub verifiers: u64,
    /// `PRAGMA user_version` afterwards.
    pub schema_version: i64,
    /// The copy of the file taken before migrating.
    pub backup_path: Option<PathBuf>,
    /// Rows that could not be kept under their key because another row has it (two NULL server
    /// ids, or a NULL and an empty one; an upper-case user id whose lower-case twin has the same
    /// server): moved, whole, into `CONFLICTS_TABLE`.
    pub conflicts: u64,
    /// Rows whose UUID user id was lowered to the one spelling hoot-core uses.
    pub user_ids_lowered: u64,
}

/// A user id that is a UUID with an upper-case letter (the other forms are lower case by rule).
const MIXED_CASE_UUID: &str = "length(user_id) = 36 AND user_id <> lower(user_id)";

/// The columns besides `user_id` and `server_id` of each table that has them, for a row kept in
/// `CONFLICTS_TABLE`.
fn value_columns(table: &str) -> &'static [&'static str] {
    match table {
        "oauth_tokens" => &["tokens"],
        "oauth_client_info" => &["client_info"],
        "oauth_verifiers" => &["verifier", "created_at"],
        DISCOVERY_TABLE | AUTHORIZATION_STATES_TABLE => &["state", "created_at"],
        USERS_TABLE => &["first_seen", "last_seen"],
        TRANSFER_CODES_TABLE => &["code_hash", "created_at", "expires_at"],
        ACCOUNTS_TABLE => &["account_id", "linked_at"],
        REFRESH_CLAIMS_TABLE => &["holder", "expires_at"],
        _ => &["config", "created_at"],
    }
}

fn create_conflicts_table(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {CONFLICTS_TABLE} (table_name TEXT NOT NULL, user_id TEXT NOT NULL, \
         server_id TEXT, legacy_rowid INTEGER NOT NULL, row TEXT NOT NULL, migrated_at INTEGER NOT NULL)"
    ))
}

/// Lowers the UUID user ids of `table`. A row whose lower-case twin is already there (the same
/// server for the same secret) keeps the twin and goes, whole, to `CONFLICTS_TABLE`: the one
/// spelled in lower case wins, then the first inserted. Returns (ids lowered, rows kept aside).
fn lower_user_ids(tx: &Transaction, table: &str, now_ms: i64) -> rusqlite::Result<(u64, u64)> {
    let lowered =
        tx.execute(&format!("UPDATE OR IGNORE {table} SET user_id = lower(user_id) WHERE {MIXED_CASE_UUID}"), [])?;
    create_conflicts_table(tx)?;
    let members = value_columns(table).iter().map(|c| format!("'{c}', {c}")).collect::<Vec<_>>().join(", ");
    let kept = tx.execute(
        &format!(
            "INSERT INTO {CONFLICTS_TABLE} (table_name, user_id, server_id, legacy_rowid, row, migrated_at) \
             SELECT ?1, user_id, server_id, rowid, json_object({members}), ?2 FROM {table} WHERE {MIXED_CASE_UUID}"
        ),
        rusqlite::params![table, now_ms],
    )?;
    tx.execute(&format!("DELETE FROM {table} WHERE {MIXED_CASE_UUID}"), [])?;
    if kept == 0 {
        drop_if_empty(tx)?;
    }
    Ok((lowered as u64, kept as u64))
}

/// The tables hoot-core's schema has, in Hoot's single-user form, or lacks: what decides whether
/// a database needs migrating (the same answer for `migrateDatabase`, `inspectDatabase` and
/// `doctor`, whatever `user_version` says).
struct Shape {
    /// Legacy tables with their columns.
    legacy: Vec<(&'static UserTable, Vec<String>)>,
    /// Tables already in the multi-tenant form.
    multi_tenant: Vec<&'static str>,
    /// Tables hoot-core would create.
    missing: Vec<&'static str>,
    /// Tables holding a UUID user id in upper case: one browser secret in two spellings, which
    /// hoot-core (keeping ids in lower case) would never reach.
    mixed_case: Vec<&'static str>,
    /// Tables of an earlier schema that lack a column (`ADDED_COLUMNS`).
    outdated: Vec<&'static str>,
}

impl Shape {
    fn read(conn: &Connection) -> rusqlite::Result<Shape> {
        let mut shape = Shape {
            legacy: Vec::new(),
            multi_tenant: Vec::new(),
            missing: Vec::new(),
            mixed_case: Vec::new(),
            outdated: Vec::new(),
        };
        for (name, _) in TABLES {
            let cols = columns(conn, name)?;
            let added = ADDED_COLUMNS.iter().filter(|(table, _, _)| *table == name);
            if !cols.is_empty() && added.clone().any(|(_, column, _)| !cols.iter().any(|c| c == column)) {
                shape.outdated.push(name);
            }
            let has_user_id = cols.iter().any(|c| c == "user_id");
            let has_server_id = cols.iter().any(|c| c == "server_id");
            match USER_TABLES.iter().find(|t| t.name == name) {
                _ if cols.is_empty() => shape.missing.push(name),
                Some(table) if !has_user_id => shape.legacy.push((table, cols)),
                Some(_) => shape.multi_tenant.push(name),
                None => {}
            }
            // Only Hoot's kind of table (user and server): hoot-core's own tables without a server
            // column keep ids as they were written, and lowering them has no conflict rule to follow.
            if has_user_id && has_server_id {
                let sql = format!("SELECT EXISTS (SELECT 1 FROM {name} WHERE {MIXED_CASE_UUID})");
                if conn.query_row(&sql, [], |row| row.get::<_, bool>(0))? {
                    shape.mixed_case.push(name);
                }
            }
        }
        Ok(shape)
    }

    fn complete(&self) -> bool {
        self.legacy.is_empty() && self.missing.is_empty() && self.mixed_case.is_empty() && self.outdated.is_empty()
    }

    /// Refuses, before any backup or change, a legacy table without the columns its rows need.
    fn check_columns(&self, location: &DbLocation) -> Result<(), HootError> {
        for (table, cols) in &self.legacy {
            // created_at may be missing (a very old verifiers table): it gets the column's default.
            let needed = ["server_id"].iter().chain(table.columns.iter().take(1));
            if let Some(absent) = needed.into_iter().find(|c| !cols.iter().any(|have| have == *c)) {
                return Err(super::db::refused(
                    "unknown_schema",
                    format!(
                        "{}: table {} has no {absent} column (it has {}), so it is neither Hoot's single-user nor \
                     its multi-user schema and hoot-core cannot convert it; nothing was changed. Rename or drop \
                     that table (its rows stay yours to move by hand), or point HOOT_DB_PATH at another file",
                        location.display(),
                        table.name,
                        cols.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Refuses a database where one of hoot-core's table names is a view, a virtual table or anything
/// else that is not a plain table: every read of it would run whatever it was defined as (a
/// recursive view that never ends would hang the process), and writes would fail. Nothing is read
/// but the schema.
pub fn refuse_non_tables(conn: &Connection, location: &DbLocation) -> Result<(), HootError> {
    let odd: Option<(String, String)> = retry_busy(|| {
        let mut stmt = conn.prepare_cached(
            "SELECT name, type FROM sqlite_schema WHERE type IN ('view', 'trigger', 'index', 'table') \
             AND (type <> 'table' OR sql LIKE 'CREATE VIRTUAL%') AND name = ?1 COLLATE NOCASE",
        )?;
        for (name, _) in TABLES {
            if let Some(found) = stmt.query_row([name], |row| Ok((row.get(0)?, row.get(1)?))).optional()? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    })
    .map_err(sql_error(location, "read the schema of"))?;
    match odd {
        None => Ok(()),
        Some((name, kind)) => Err(super::db::refused(
            "not_a_table",
            format!(
                "{}: {name} is a {kind}, not a table, so hoot-core cannot keep its rows there and left the file \
             untouched. Drop or rename it (its definition is in sqlite_schema), or point HOOT_DB_PATH at another file",
                location.display(),
                kind = if kind == "table" { "virtual table" } else { kind.as_str() },
            ),
        )),
    }
}

fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let names = stmt.query_map([table], |row| row.get(0))?.collect();
    names
}

/// A legacy-user id already in the multi-tenant tables (a migration Hoot's own code left half
/// done), to reuse instead of making a second one.
fn existing_legacy_user(conn: &Connection, tables: &[&str]) -> rusqlite::Result<Option<String>> {
    for table in tables {
        let sql = format!(
            "SELECT user_id FROM {table} WHERE user_id GLOB 'legacy-user-[0-9]*' \
             AND substr(user_id, 13) NOT GLOB '*[^0-9]*' ORDER BY user_id LIMIT 1"
        );
        if let Some(id) = conn.query_row(&sql, [], |row| row.get(0)).optional()? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The pre-migration backup, created exclusively (0600, `O_EXCL`, so never through a link planted
/// at its name) under the first free name, and removed again unless the migration commits: a
/// rolled-back attempt leaves no copy of every user's tokens behind.
struct Backup {
    path: PathBuf,
    kept: bool,
}

impl Backup {
    fn create(db: &Path, now_ms: i64) -> io::Result<Backup> {
        let name = db.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for n in 0u32.. {
            let suffix = if n == 0 { String::new() } else { format!("-{n}") };
            let path = db.with_file_name(format!("{name}.pre-migration-{now_ms}{suffix}.bak"));
            match new_private_file().open(&path) {
                Ok(_) => return Ok(Backup { path, kept: false }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("no free backup name"))
    }

    /// Copies the committed state of `db` into the backup, through a second, read-only
    /// connection: SQLite refuses to back up through the connection holding the write
    /// transaction. In WAL mode it reads the pre-migration state, and the write lock held by the
    /// caller keeps every other writer out. The backup is opened without following links.
    fn copy_from(&self, db: &Path) -> rusqlite::Result<()> {
        let reader =
            Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        let flags =
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NOFOLLOW | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut copy = Connection::open_with_flags(&self.path, flags)?;
        let copied = rusqlite::backup::Backup::new(&reader, &mut copy)?.run_to_completion(
            i32::MAX,
            std::time::Duration::ZERO,
            None,
        );
        copied
    }
}

impl Drop for Backup {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Brings the schema up to date: creates missing tables, converts legacy single-user tables
/// (moving every row to one `legacy-user-<ms>` id), and records `SCHEMA_VERSION`. Idempotent.
/// A file-backed database is backed up (SQLite's online backup, file 0600) before any change.
pub fn ensure_schema(conn: &Connection, location: &DbLocation, now_ms: i64) -> Result<MigrationReport, HootError> {
    let adopt = match location {
        DbLocation::File(path) => AdoptLinks::Opened(path),
        _ => AdoptLinks::Never,
    };
    ensure_schema_adopting(conn, location, now_ms, adopt)
}

/// `ensure_schema`, adopting the links of schema 1 as `adopt` says (`identity::adopt_links`).
pub fn ensure_schema_adopting(
    conn: &Connection,
    location: &DbLocation,
    now_ms: i64,
    adopt: AdoptLinks,
) -> Result<MigrationReport, HootError> {
    let up_to_date = MigrationReport { schema_version: SCHEMA_VERSION, ..MigrationReport::default() };
    refuse_non_tables(conn, location)?;
    let version: i64 = retry_busy(|| conn.pragma_query_value(None, "user_version", |row| row.get(0)))
        .map_err(sql_error(location, "read the schema version of"))?;
    if version == SCHEMA_VERSION {
        // user_version alone is not trusted: Hoot's own code or a restore can leave legacy tables
        // under a version 1, and then every write would fail.
        let shape = retry_busy(|| Shape::read(conn)).map_err(sql_error(location, "read the schema of"))?;
        if shape.complete() {
            return Ok(up_to_date);
        }
    }
    if version > SCHEMA_VERSION {
        return Err(super::db::refused("newer_schema", format!(
            "{} has schema version {version}, newer than this hoot-core understands ({SCHEMA_VERSION}); upgrade hoot-core",
            location.display()
        )));
    }
    let busy = |e: &MigrateError| matches!(e, MigrateError::Sql(e) if is_busy(e));
    let migrated =
        with_room_to_migrate(conn, || retry_while(|| migrate_in_transaction(conn, location, now_ms, adopt), busy));
    let report = migrated.map_err(|e| match e {
        MigrateError::Sql(e) => sql_error(location, "migrate")(e),
        MigrateError::Hoot(e) => e,
    })?;
    // A database in memory (a copy's scratch migration of its source) changes nothing on disk.
    if matches!(location, DbLocation::Memory) {
        return Ok(report);
    }
    crate::events::emit("database_migrated", |e| {
        e.set("backend", "sqlite")
            .set("fromVersion", version)
            .set("toVersion", report.schema_version)
            .set("legacy", report.migrated)
            .set("rows", report.tokens + report.client_info + report.verifiers)
            .set("conflicts", report.conflicts)
            .set("backup", report.backup_path.is_some());
    });
    Ok(report)
}

/// Runs `migrate` with a page cache large enough to hold the tables it rebuilds (a limit, not an
/// allocation), then puts the connection's setting back. With SQLite's default 2 MB cache, a
/// legacy table of 20,000 rows spilled to the WAL while it was being rebuilt; the transaction and
/// its crash safety are the same either way.
fn with_room_to_migrate<T>(
    conn: &Connection,
    migrate: impl FnOnce() -> Result<T, MigrateError>,
) -> Result<T, MigrateError> {
    let cache: i64 = conn.pragma_query_value(None, "cache_size", |row| row.get(0))?;
    conn.pragma_update(None, "cache_size", -262_144)?;
    let migrated = migrate();
    let restored = conn.pragma_update(None, "cache_size", cache);
    let migrated = migrated?;
    restored?;
    Ok(migrated)
}

enum MigrateError {
    Sql(rusqlite::Error),
    Hoot(HootError),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Sql(e)
    }
}

fn migrate_in_transaction(
    conn: &Connection,
    location: &DbLocation,
    now_ms: i64,
    adopt: AdoptLinks,
) -> Result<MigrationReport, MigrateError> {
    // IMMEDIATE takes the write lock first, so two processes never both decide to migrate; the
    // transaction rolls back when dropped unless committed.
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let mut report = MigrationReport { schema_version: SCHEMA_VERSION, ..MigrationReport::default() };
    let shape = Shape::read(&tx)?;
    if shape.complete() {
        let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version == SCHEMA_VERSION {
            return Ok(report); // another process finished first
        }
    }
    shape.check_columns(location).map_err(MigrateError::Hoot)?;
    let Shape { legacy, multi_tenant, mixed_case, outdated, .. } = shape;

    // Converting legacy tables, or adding an earlier schema's missing columns, starts from a copy.
    let mut backup = None;
    if !legacy.is_empty() || !outdated.is_empty() {
        if let DbLocation::File(path) = location {
            let made = Backup::create(path, now_ms).map_err(|e| {
                MigrateError::Hoot(io_error(location.display(), "create the pre-migration backup of")(e))
            })?;
            made.copy_from(path)?;
            report.backup_path = Some(made.path.clone());
            backup = Some(made);
        }
    }
    if !legacy.is_empty() {
        let user = match existing_legacy_user(&tx, &multi_tenant)? {
            Some(id) => id,
            None => format!("legacy-user-{now_ms}"),
        };
        for (table, cols) in &legacy {
            let (moved, conflicts) = migrate_table(&tx, table, cols, &user, now_ms)?;
            report.conflicts += conflicts;
            match table.name {
                "oauth_tokens" => report.tokens = moved,
                "oauth_client_info" => report.client_info = moved,
                _ => report.verifiers = moved,
            }
        }
        report.migrated = true;
        report.legacy_user_id = Some(user);
    }
    for table in mixed_case {
        let (lowered, kept) = lower_user_ids(&tx, table, now_ms)?;
        report.user_ids_lowered += lowered;
        report.conflicts += kept;
    }
    for (name, columns) in TABLES {
        tx.execute_batch(&create_table(name, columns))?;
    }
    let mut links_unmaced = false;
    for (table, column, definition) in ADDED_COLUMNS {
        if !columns(&tx, table)?.iter().any(|c| c == column) {
            tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {definition}"))?;
            links_unmaced |= table == ACCOUNTS_TABLE;
        }
    }
    // Links of schema 1 were made by the server (nothing else could, then): MACed in the run
    // that adds their column, so the upgrade keeps them (`identity::adopt_links`).
    if links_unmaced {
        adopt_links(&tx, adopt).map_err(MigrateError::Hoot)?;
    }
    // Codes of schema 1 (a plain SHA-256, which anyone could have planted) never verify: gone.
    tx.execute(&format!("DELETE FROM {TRANSFER_CODES_TABLE} WHERE mac IS NULL"), [])?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    if let Some(backup) = &mut backup {
        backup.kept = true;
    }
    Ok(report)
}

/// Rebuilds one legacy table in the multi-tenant form with every row under `user`; returns the
/// rows moved and the rows kept aside in `CONFLICTS_TABLE`.
///
/// A NULL server id (the legacy key allowed several) becomes `''`. Where rows then share a key,
/// one is kept, by a fixed rule (a real `''` before a NULL, then the first inserted), and the
/// others go, whole, to `CONFLICTS_TABLE`: nothing is lost. Views naming the table keep working
/// (the new table takes its name, with its columns), and its triggers are made again on it.
fn migrate_table(
    tx: &Transaction,
    table: &UserTable,
    legacy_cols: &[String],
    user: &str,
    now_ms: i64,
) -> Result<(u64, u64), MigrateError> {
    let name = table.name;
    let new_name = format!("{name}__hoot_migrating");
    tx.execute_batch(&format!("DROP TABLE IF EXISTS {new_name}; {}", create_table(&new_name, columns_of(name))))?;
    // A column the legacy table lacks (a very old verifiers table without created_at) gets the
    // column's default.
    let select: Vec<String> = table
        .columns
        .iter()
        .map(|c| match legacy_cols.iter().any(|l| l == c) {
            true => (*c).to_string(),
            false => "CAST(strftime('%s', 'now') AS INTEGER)".to_string(),
        })
        .collect();
    let cols = table.columns.join(", ");
    // Server ids distinct once NULL is read as '' (the usual case: the legacy key): every row
    // moves, and no ranking is needed to choose which. In key order, the new table's index is
    // filled by appending (the legacy key's own index gives that order without a sort).
    let distinct: bool =
        tx.query_row(&format!("SELECT count(*) = count(DISTINCT COALESCE(server_id, '')) FROM {name}"), [], |row| {
            row.get(0)
        })?;
    if distinct {
        let moved = tx.execute(
            &format!(
                "INSERT INTO {new_name} (user_id, server_id, {cols}) SELECT ?1, COALESCE(server_id, ''), {select} \
                 FROM {name} ORDER BY server_id",
                select = select.join(", ")
            ),
            [user],
        )?;
        replace_table(tx, name, &new_name)?;
        return Ok((moved as u64, 0));
    }
    let ranked = format!(
        "SELECT rowid AS legacy_rowid, server_id AS legacy_server_id, {select}, ROW_NUMBER() OVER \
         (PARTITION BY COALESCE(server_id, '') ORDER BY server_id IS NULL, rowid) AS rank FROM {name}",
        select = select.iter().zip(table.columns).map(|(s, c)| format!("{s} AS {c}")).collect::<Vec<_>>().join(", ")
    );
    let moved = tx.execute(
        &format!(
            "INSERT INTO {new_name} (user_id, server_id, {cols}) \
             SELECT ?1, COALESCE(legacy_server_id, ''), {cols} FROM ({ranked}) WHERE rank = 1"
        ),
        [user],
    )?;
    let members = table.columns.iter().map(|c| format!("'{c}', {c}")).collect::<Vec<_>>().join(", ");
    create_conflicts_table(tx)?;
    let conflicts = tx.execute(
        &format!(
            "INSERT INTO {CONFLICTS_TABLE} (table_name, user_id, server_id, legacy_rowid, row, migrated_at) \
             SELECT ?1, ?2, legacy_server_id, legacy_rowid, json_object({members}), ?3 FROM ({ranked}) WHERE rank > 1"
        ),
        rusqlite::params![name, user, now_ms],
    )?;
    if conflicts == 0 {
        drop_if_empty(tx)?;
    }
    replace_table(tx, name, &new_name)?;
    Ok((moved as u64, conflicts as u64))
}

/// Puts `new_name` in place of the legacy table `name`: views naming it keep working (the new
/// table takes its name, with its columns), and its triggers are made again on it.
fn replace_table(tx: &Transaction, name: &str, new_name: &str) -> Result<(), MigrateError> {
    let triggers: Vec<(String, String)> = tx
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?1 AND sql IS NOT NULL")?
        .query_map([name], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    // With the legacy rename rule SQLite leaves views alone (they name the table, which the new
    // one becomes) instead of refusing the rename because a view names a table being dropped.
    tx.pragma_update(None, "legacy_alter_table", true)?;
    let renamed = tx.execute_batch(&format!("DROP TABLE {name}; ALTER TABLE {new_name} RENAME TO {name};"));
    tx.pragma_update(None, "legacy_alter_table", false)?;
    renamed?;
    for (trigger, sql) in triggers {
        tx.execute_batch(&sql).map_err(|e| {
            MigrateError::Hoot(HootError::Db(format!(
                "The trigger {trigger} on {name} does not fit the multi-user table ({e}), so nothing was \
                 migrated. Drop it (DROP TRIGGER {trigger}) and migrate again, then make it anew if you need it"
            )))
        })?;
    }
    Ok(())
}

/// Drops the conflicts table when this migration put nothing in it (and no earlier one did).
fn drop_if_empty(tx: &Transaction) -> rusqlite::Result<()> {
    let empty: bool =
        tx.query_row(&format!("SELECT NOT EXISTS (SELECT 1 FROM {CONFLICTS_TABLE})"), [], |r| r.get(0))?;
    if empty {
        tx.execute_batch(&format!("DROP TABLE {CONFLICTS_TABLE}"))?;
    }
    Ok(())
}

impl DatabaseStatus {
    /// Nothing for `migrateDatabase` to do.
    pub fn up_to_date(&self) -> bool {
        self.up_to_date_at(SCHEMA_VERSION)
    }
}

/// Reads the schema state of the database at `path` through a read-only connection that creates
/// nothing next to the file (`db::open_for_reading`).
pub fn inspect(path: &Path, location: &DbLocation, now: i64) -> Result<DatabaseStatus, HootError> {
    if !crate::private_fs::is_present(path) {
        return Ok(DatabaseStatus::default());
    }
    super::db::check_header(path, location)?;
    let fail = sql_error(location, "inspect");
    let conn = super::db::open_for_reading(path).map_err(&fail)?;
    refuse_non_tables(&conn, location)?;
    let read = super::db::within_deadline(&conn, super::db::SCAN_DEADLINE, |conn| {
        let shape = Shape::read(conn)?;
        let (activity, encryption) = match shape.complete() {
            true => (Some(super::backend::summary_on(conn, now)?), Some(super::encryption::status_on(conn)?)),
            false => (None, None),
        };
        Ok((shape, activity, encryption))
    });
    let (shape, activity, encryption) = read.map_err(&fail)?;
    Ok(DatabaseStatus {
        exists: true,
        activity,
        encryption,
        schema_version: conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(&fail)?,
        legacy_tables: shape.legacy.iter().map(|(t, _)| t.name.to_string()).collect(),
        missing_tables: shape.missing.iter().map(|t| t.to_string()).collect(),
        mixed_case_tables: shape.mixed_case.iter().map(|t| t.to_string()).collect(),
    })
}

/// What the store's tests need of the schema.
#[cfg(test)]
pub mod tests_support {
    /// Hoot's own tables, as a database of the schema before hoot-core's own tables has them.
    pub fn hoot_tables() -> impl Iterator<Item = (&'static str, &'static str)> {
        super::TABLES.into_iter().filter(|(name, _)| !name.starts_with("hoot_"))
    }
}
