//! `npx hoot-core migrate --from <sqlite file> --to postgres://...`: every row of a SQLite file
//! (Hoot's legacy single-user schema or hoot-core's) into PostgreSQL, in one transaction. The file
//! is read through SQLite's online backup into memory (so a server writing it meanwhile is not
//! disturbed, and the file is never changed), migrated there if it is legacy, then upserted row by
//! row: a row already in PostgreSQL with the same values is left alone, one with other values takes
//! the file's. A run killed midway leaves PostgreSQL as it was.
//!
//! A copy never undoes what happened on PostgreSQL after the file was taken:
//! - a revocation is only ever raised (the greatest `revoked_before` wins), never lowered;
//! - a user PostgreSQL revoked after the file's last write, or later than the file itself did
//!   ("forget me" deletes their rows and revokes), is skipped: none of their rows is written back;
//! - every file copied is recorded in `hoot_copied_files` (by absolute path), and copying a file
//!   recorded there again is refused unless `force`: whatever PostgreSQL deleted since without a
//!   revocation (a removed server, expired codes) would come back from the file. Forced, the
//!   first two rules still hold, and the "taken" time is the earlier of the file's last write
//!   and its previous copy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use tokio_postgres::types::ToSql;

use crate::error::HootError;
use crate::pg::schema::TABLES;
use crate::pg::{PgDatabase, Prepared};
use crate::secret::StoreSecret;
use crate::sqlite::db::{check_header, sql_error, DbLocation};
use crate::store::identity::{account_mac, account_verifies};

/// What one table's copy did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableCopy {
    /// The table.
    pub table: String,
    /// Rows in the file.
    pub rows: u64,
    /// Rows PostgreSQL did not have.
    pub inserted: u64,
    /// Rows PostgreSQL had with other values (now the file's).
    pub updated: u64,
}

/// What `copy_sqlite` did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyReport {
    /// The file read.
    pub from: PathBuf,
    /// The database written (`PostgreSQL at host:port/db`).
    pub to: String,
    /// Whether the file had Hoot's legacy schema (migrated in memory on the way).
    pub legacy: bool,
    /// The user the legacy rows belong to, when it was legacy.
    pub legacy_user_id: Option<String>,
    /// Distinct users with rows copied.
    pub users: u64,
    /// Each table copied, in order.
    pub tables: Vec<TableCopy>,
    /// Users of the file whose rows were not written: PostgreSQL revoked them after the file
    /// was taken (see the module's comment).
    pub skipped_users: u64,
    /// Account links of the file not copied: they do not verify under this process's store
    /// secret (a copy run without the server's `HOOT_STORE_SECRET` or home), or were planted.
    pub dropped_links: u64,
}

/// The tables copied: the SQLite file's own (not the key set, which the file does not have), the
/// failed-redemption throttles excepted (a short window of this process's, not data), and the
/// transfer codes (MACed under the file's store secret with the code, which no one keeps).
fn copied_tables() -> impl Iterator<Item = (&'static str, &'static str)> {
    TABLES.into_iter().filter(|(name, _)| {
        !matches!(
            *name,
            "hoot_signing_keys"
                | "hoot_key_set"
                | "hoot_transfer_failures"
                | "hoot_transfer_source_failures"
                | "hoot_transfer_codes"
                | "hoot_copied_files"
                | "hoot_store_secret"
                | "hoot_refresh_claims"
        )
    })
}

/// Account links MACed again for PostgreSQL's store secret: those that verify under this
/// process's SQLite secret (the file's, when run with the server's home or `HOOT_STORE_SECRET`);
/// a row no server made is not copied. Returns how many were left out.
fn relink(rows: &mut Vec<Vec<Cell>>, cols: &[(String, bool)], from: &StoreSecret, to: &StoreSecret) -> u64 {
    let before = rows.len();
    let at = |name: &str| cols.iter().position(|(c, _)| c == name);
    let (Some(account), Some(user), Some(mac)) = (at("account_id"), at("user_id"), at("mac")) else {
        rows.clear();
        return before as u64;
    };
    let text = |cell: &Cell| match cell {
        Cell::Text(t) => t.clone(),
        Cell::Int(_) => None,
    };
    rows.retain_mut(|row| {
        let (Some(account_id), Some(user_id)) = (text(&row[account]), text(&row[user])) else { return false };
        if !account_verifies(from, &account_id, &user_id, text(&row[mac]).as_deref()) {
            return false;
        }
        row[mac] = Cell::Text(Some(account_mac(to, &account_id, &user_id)));
        true
    });
    (before - rows.len()) as u64
}

/// A table's columns (name, is BIGINT) and its primary key, read from its definition.
fn shape(columns: &str) -> (Vec<(String, bool)>, Vec<String>) {
    let mut cols = Vec::new();
    let mut key = Vec::new();
    let (plain, composite) = match columns.find("PRIMARY KEY (") {
        Some(at) => (&columns[..at], Some(&columns[at + 13..])),
        None => (columns, None),
    };
    for part in plain.split(", ").map(str::trim).filter(|p| !p.is_empty()) {
        let mut words = part.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else { continue };
        if part.contains("PRIMARY KEY") {
            key.push(name.to_string());
        }
        cols.push((name.to_string(), kind == "BIGINT" || kind == "INTEGER"));
    }
    if let Some(list) = composite {
        key.extend(list.trim_end_matches(')').split(", ").map(|k| k.trim().to_string()));
    }
    (cols, key)
}

/// One value read from SQLite, typed for its PostgreSQL column.
#[derive(Debug, Clone)]
enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
}

impl Cell {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Cell::Text(v) => v,
            Cell::Int(v) => v,
        }
    }
}

/// One table as read: its name, columns (name, is BIGINT), primary key, and rows.
struct TableRows {
    name: &'static str,
    cols: Vec<(String, bool)>,
    key: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

struct Read {
    legacy: bool,
    legacy_user_id: Option<String>,
    tables: Vec<TableRows>,
}

/// Reads the whole file (migrated in memory if legacy). Blocking.
fn read_file(path: &Path, now_ms: i64) -> Result<Read, HootError> {
    let location = DbLocation::File(path.to_path_buf());
    if !path.is_file() {
        return Err(HootError::Db(format!("Cannot copy from {}: there is no database file there", path.display())));
    }
    check_header(path, &location)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let source = Connection::open_with_flags(path, flags).map_err(sql_error(&location, "open"))?;
    source.busy_timeout(crate::sqlite::db::BUSY_TIMEOUT).map_err(sql_error(&location, "open"))?;
    let mut copy = Connection::open_in_memory().map_err(sql_error(&location, "copy"))?;
    rusqlite::backup::Backup::new(&source, &mut copy)
        .and_then(|b| b.run_to_completion(1024, std::time::Duration::ZERO, None))
        .map_err(sql_error(&location, "read"))?;
    drop(source);
    let adopt = crate::sqlite::identity::AdoptLinks::Copied(path);
    let report = crate::sqlite::schema::ensure_schema_adopting(&copy, &DbLocation::Memory, now_ms, adopt)
        .map_err(|e| HootError::Db(format!("Cannot read {} as a Hoot database: {e}", path.display())))?;
    let mut tables = Vec::new();
    for (name, columns) in copied_tables() {
        let (cols, key) = shape(columns);
        let list = cols.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(", ");
        let mut stmt = copy.prepare(&format!("SELECT {list} FROM {name}")).map_err(sql_error(&location, "read"))?;
        let rows = stmt
            .query_map([], |row| {
                cols.iter()
                    .enumerate()
                    .map(|(i, (_, int))| {
                        let value = row.get_ref(i)?;
                        Ok(if *int {
                            Cell::Int(match value {
                                ValueRef::Null => None,
                                ValueRef::Integer(n) => Some(n),
                                ValueRef::Real(f) => Some(f as i64),
                                ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(|t| t.trim().parse().ok()),
                                ValueRef::Blob(_) => None,
                            })
                        } else {
                            Cell::Text(match value {
                                ValueRef::Null => None,
                                ValueRef::Integer(n) => Some(n.to_string()),
                                ValueRef::Real(f) => Some(f.to_string()),
                                ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
                            })
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Cell>>>()
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(sql_error(&location, "read"))?;
        tables.push(TableRows { name, cols, key, rows });
    }
    Ok(Read { legacy: report.migrated, legacy_user_id: report.legacy_user_id, tables })
}

/// Rows per INSERT: well under PostgreSQL's 65535 parameters for the widest table.
const CHUNK: usize = 500;

/// When the file was last written, in seconds since the epoch: the later of the database's and
/// its WAL's modification times (read with `stat`, no descriptor opened).
fn last_write(path: &Path) -> Option<i64> {
    let seconds = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64)
    };
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    seconds(path).max(seconds(Path::new(&wal)))
}

/// Copies the SQLite file at `from` into `db` in one transaction; see the module's comment.
/// `force` copies a file `hoot_copied_files` says was copied before. Every statement is bounded
/// by the database's call timeout on this side too (`within`): a server that stops answering
/// fails the copy instead of holding it forever.
pub async fn copy_sqlite(
    db: Arc<PgDatabase>,
    from: PathBuf,
    now_ms: i64,
    force: bool,
) -> Result<CopyReport, HootError> {
    // A legacy file is migrated in memory on every run, which names its user `legacy-user-<ms>`
    // by the time it runs: the copy of this same file made before fixes that time, so running
    // again maps the file's rows onto the same user (and another legacy file's onto a new one).
    let source = std::fs::canonicalize(&from).unwrap_or_else(|_| from.clone()).display().to_string();
    let previous = {
        let conn = within(&db, db.conn()).await?;
        within(&db, async {
            conn.row_opt("SELECT legacy_user_id, copied_at FROM hoot_copied_files WHERE source = $1", &[&source])
                .await
                .map_err(|e| db.error("read from", &e))
        })
        .await?
        .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
    };
    if let (Some((_, copied_at)), false) = (&previous, force) {
        return Err(HootError::Db(format!(
            "Cannot copy {} into {}: it was copied there before (at {copied_at}, seconds since the epoch, per \
             hoot_copied_files). Copying it again would bring back rows PostgreSQL deleted since; run again with \
             --force (copyFromSqlite(path, {{ force: true }})) to copy it anyway (revocations are never lowered and \
             users revoked on PostgreSQL since are skipped even then)",
            from.display(),
            db.describe()
        )));
    }
    let earlier =
        previous.as_ref().and_then(|(id, _)| id.strip_prefix("legacy-user-").and_then(|ms| ms.parse::<i64>().ok()));
    // When the file was taken: its last write, or its previous copy if that was earlier (a file
    // whose time was reset by a copy made later is still not newer than what it was copied as).
    let taken = match (last_write(&from), previous.as_ref().map(|(_, at)| *at)) {
        (Some(written), Some(copied)) => written.min(copied),
        (written, copied) => written.or(copied).unwrap_or(now_ms / 1000),
    };
    let path = from.clone();
    let read = tokio::task::spawn_blocking(move || read_file(&path, earlier.unwrap_or(now_ms)))
        .await
        .map_err(|e| HootError::Internal(format!("reading the file stopped: {e}")))??;
    let doing = "copy into";
    let mut conn = within(&db, db.conn()).await?;
    let err = |e: tokio_postgres::Error| db.error(doing, &e);
    let tx = within(&db, async { conn.transaction().await.map_err(err) }).await?;
    let mut report = CopyReport {
        from,
        to: db.describe().to_string(),
        legacy: read.legacy,
        legacy_user_id: read.legacy_user_id,
        ..CopyReport::default()
    };
    let mut tables = read.tables;
    // The file's links verify only under the secret of the server that wrote it: a copy never
    // makes one (it would be new, and verify none of them), and refuses to leave every link out.
    if let Some(accounts) = tables.iter_mut().find(|t| t.name == "hoot_accounts" && !t.rows.is_empty()) {
        let file_secret = if cfg!(test) {
            crate::sqlite::identity::secret_for(&DbLocation::Memory)?
        } else {
            crate::secret::existing_process_secret(&crate::env::Environment::process())?
                .ok_or_else(|| crate::sqlite::identity::no_secret_to_copy(&report.from))?
        };
        let secret = crate::pg::identity::store_secret(&tx, &db).await?;
        let had = accounts.rows.len();
        report.dropped_links = relink(&mut accounts.rows, &accounts.cols, &file_secret, &secret);
        if accounts.rows.is_empty() && !force {
            return Err(HootError::Keys(format!(
                "None of the {had} account links of {} verifies under this process's store secret, so the copy \
                 would leave them all out (each account would sign in to a new, empty user): run it with the \
                 server's {} or HOME, or with --force (copyFromSqlite(path, {{ force: true }})) to copy without them",
                report.from.display(),
                crate::secret::HOOT_STORE_SECRET
            )));
        }
    }
    // Users PostgreSQL revoked after the file was taken, and later than the file itself did:
    // read inside the transaction, under a lock that holds off new revocations until it commits.
    let file_revocations: std::collections::HashMap<&str, i64> = tables
        .iter()
        .filter(|t| t.name == "hoot_revocations")
        .flat_map(|t| t.rows.iter())
        .filter_map(|row| match (&row[0], &row[1]) {
            (Cell::Text(Some(user)), Cell::Int(Some(before))) => Some((user.as_str(), *before)),
            _ => None,
        })
        .collect();
    // Read once before writing (without a lock: a replica's revocation is never held for the whole
    // copy), and again under the lock just before the commit, for what was revoked meanwhile.
    let (tx_ref, file_revocations) = (&tx, &file_revocations);
    let revoked_since = |lock: bool| async move {
        let tx = tx_ref;
        if lock {
            tx.exec("LOCK TABLE hoot_revocations IN SHARE ROW EXCLUSIVE MODE", &[]).await.map_err(err)?;
        }
        let rows = tx
            .rows("SELECT user_id, revoked_before FROM hoot_revocations WHERE revoked_before > $1", &[&taken])
            .await
            .map_err(err)?;
        Ok::<_, HootError>(
            rows.into_iter()
                .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
                .filter(|(user, before)| file_revocations.get(user.as_str()).is_none_or(|file| before > file))
                .map(|(user, _)| user)
                .collect::<std::collections::HashSet<String>>(),
        )
    };
    let skipped = within(&db, revoked_since(false)).await?;
    // Rows this copy inserted, per user, to take out again if PostgreSQL revokes them meanwhile.
    let mut written: std::collections::HashMap<String, Vec<(&'static str, String)>> = Default::default();
    let mut users = std::collections::HashSet::new();
    let mut skipped_users = std::collections::HashSet::new();
    for &TableRows { name, ref cols, ref key, ref rows } in &tables {
        let mut done = TableCopy { table: name.to_string(), rows: rows.len() as u64, ..TableCopy::default() };
        let user_col = cols.iter().position(|(c, _)| c == "user_id");
        // A skipped user's revocation is still raised: only their data stays out.
        let skips = name != "hoot_revocations";
        let kept: Vec<&Vec<Cell>> = rows
            .iter()
            .filter(|row| match user_col.map(|at| &row[at]) {
                Some(Cell::Text(Some(id))) if skipped.contains(id.as_str()) => {
                    skipped_users.insert(id.clone());
                    !skips
                }
                Some(Cell::Text(Some(id))) => {
                    users.insert(id.clone());
                    true
                }
                _ => true,
            })
            .collect();
        let names = cols.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>();
        let rest: Vec<&str> = names.iter().copied().filter(|c| !key.iter().any(|k| k == c)).collect();
        let conflict = if name == "hoot_revocations" {
            // Never lowered: a later revocation on PostgreSQL ("forget me") stands.
            "DO UPDATE SET revoked_before = excluded.revoked_before \
             WHERE excluded.revoked_before > hoot_revocations.revoked_before"
                .to_string()
        } else if rest.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!(
                "DO UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})",
                rest.iter().map(|c| format!("{c} = excluded.{c}")).collect::<Vec<_>>().join(", "),
                rest.iter().map(|c| format!("{name}.{c}")).collect::<Vec<_>>().join(", "),
                rest.iter().map(|c| format!("excluded.{c}")).collect::<Vec<_>>().join(", "),
            )
        };
        for chunk in kept.chunks(CHUNK) {
            let mut values = Vec::with_capacity(chunk.len());
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * names.len());
            for row in chunk {
                let at = params.len();
                values.push(format!(
                    "({})",
                    (1..=names.len()).map(|i| format!("${}", at + i)).collect::<Vec<_>>().join(", ")
                ));
                params.extend(row.iter().map(Cell::as_sql));
            }
            let user = if user_col.is_some() && skips { "user_id" } else { "NULL::text" };
            let sql = format!(
                "INSERT INTO {name} ({}) VALUES {} ON CONFLICT ({}) {conflict} RETURNING (xmax = 0), {user}, ctid::text",
                names.join(", "),
                values.join(", "),
                key.join(", ")
            );
            for row in within(&db, async { tx.query(&sql, &params).await.map_err(err) }).await? {
                if row.get::<_, bool>(0) {
                    if let Some(user) = row.get::<_, Option<String>>(1) {
                        written.entry(user).or_default().push((name, row.get(2)));
                    }
                    done.inserted += 1;
                } else {
                    done.updated += 1;
                }
            }
        }
        report.tables.push(done);
    }
    // Users revoked while the rows were written: what this copy inserted for them goes again (a
    // row it updated keeps the file's values; the replica's "forget me" deletes it after commit).
    let late: Vec<String> = within(&db, revoked_since(true)).await?.difference(&skipped).cloned().collect();
    for user in late {
        for (table, ctid) in written.remove(&user).unwrap_or_default() {
            let sql = format!("DELETE FROM {table} WHERE ctid = $1::text::tid");
            within(&db, async { tx.exec(&sql, &[&ctid]).await.map_err(err) }).await?;
            if let Some(done) = report.tables.iter_mut().find(|t| t.table == table) {
                done.inserted -= 1;
            }
        }
        users.remove(&user);
        skipped_users.insert(user);
    }
    // Every file is recorded (a current one with no legacy user: ''), so a second copy is known.
    let legacy_user = report.legacy_user_id.clone().unwrap_or_default();
    within(&db, async {
        tx.exec(
            "INSERT INTO hoot_copied_files (source, legacy_user_id, copied_at) \
             VALUES ($1, $2, extract(epoch from now())::bigint) \
             ON CONFLICT (source) DO UPDATE SET legacy_user_id = excluded.legacy_user_id, copied_at = excluded.copied_at",
            &[&source, &legacy_user],
        )
        .await
        .map_err(err)
    })
    .await?;
    within(&db, async { tx.commit().await.map_err(err) }).await?;
    report.users = users.len() as u64;
    report.skipped_users = skipped_users.len() as u64;
    crate::events::emit("database_copied", |e| {
        e.set("from", "sqlite")
            .set("backend", "postgres")
            .set("legacy", report.legacy)
            .set("users", report.users)
            .set("rows", report.tables.iter().map(|t| t.inserted + t.updated).sum::<u64>())
            .set("skippedUsers", report.skipped_users);
    });
    Ok(report)
}

/// `step`, failing with `ERR_HOOT_DB` if it takes longer than the database's call timeout (the
/// copy as a whole may take longer than one call: each of its steps may not).
async fn within<T>(
    db: &PgDatabase,
    step: impl std::future::Future<Output = Result<T, HootError>>,
) -> Result<T, HootError> {
    let limit = db.settings().call_timeout();
    match tokio::time::timeout(limit, step).await {
        Ok(result) => result,
        Err(_) => {
            db.forget_idle_connections();
            Err(HootError::Db(format!(
                "Cannot copy into {}: no answer within {} ms (the server or the network stopped answering; the \
                 copy's transaction is rolled back)",
                db.describe(),
                limit.as_millis()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_table_is_read_with_its_key_and_types() {
        let shapes: Vec<_> = copied_tables().map(|(name, columns)| (name, shape(columns))).collect();
        let find = |n: &str| shapes.iter().find(|(name, _)| *name == n).map(|(_, s)| s.clone()).unwrap_or_default();
        let (cols, key) = find("oauth_verifiers");
        assert_eq!(key, ["user_id", "server_id"]);
        assert_eq!(cols.iter().filter(|(_, int)| *int).map(|(c, _)| c.as_str()).collect::<Vec<_>>(), ["created_at"]);
        let (cols, key) = find("favicon_cache");
        assert_eq!((cols.len(), key), (4, vec!["server_url".to_string()]));
        assert!(shapes.iter().all(|(_, (cols, key))| !cols.is_empty() && !key.is_empty()));
        assert_eq!(shapes.len(), 11);
    }
}
