//! SQLite as a store backend: `crate::store::Backend`'s primitives in SQLite's SQL, each done
//! when called (under the file's connection lock) and handed back as a ready future. Every rule
//! is the store's; the synchronous functions at the end run `crate::store::ops` on a file.

use std::sync::{Arc, Weak};

use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use super::db::{get_or_open, get_or_open_canonical, is_open, Database, DbLocation};
use super::identity::{move_in, secret_for};
use super::{carry, run_on, Access};
use crate::error::HootError;
use crate::sealing::KeyRing;
use crate::secret::StoreSecret;
use crate::store::backend::{done, now, Backend, Call, NewCode, Redeem, Redemption, Slot};
use crate::store::identity::{is_legacy_user, CodeRow, MoveReport, OnConflict, Redeemed};
use crate::store::users::{ActivitySummary, PurgeReport};
use crate::store::{ops, SERVER_TABLES};

/// A SQLite database (a file, or this process's in-memory one) as a backend.
#[derive(Debug)]
pub struct SqliteFile {
    /// Where it is; canonical once opened, so a closed database reopens under the same key.
    location: DbLocation,
    /// Whether `location` is canonical (it came from an open database).
    canonical: bool,
    /// The time (ms) a migration run by the first call is dated (a legacy user's id).
    at_ms: i64,
    /// The database, while it stays open: a call uses it without the registry's lock and lookup.
    /// Weak, so `closeDatabase` still closes it; after that, calls go through the registry, which
    /// opens it again.
    opened: Weak<Database>,
}

impl SqliteFile {
    /// Opens (and if needed migrates) the database at `location`.
    pub fn open(location: DbLocation, now_ms: i64) -> Result<Arc<Self>, HootError> {
        let (db, _) = get_or_open(location, now_ms)?;
        Ok(Arc::new(SqliteFile {
            location: db.location.clone(),
            canonical: true,
            at_ms: now_ms,
            opened: Arc::downgrade(&db),
        }))
    }

    /// The database at `location`, opened (and if needed migrated) by its first call: a call whose
    /// arguments are refused opens nothing.
    /// `now_ms` dates a migration that first call runs (a legacy user's id).
    pub fn at(location: DbLocation, now_ms: i64) -> Self {
        SqliteFile { location, canonical: false, at_ms: now_ms, opened: Weak::new() }
    }

    /// Where the database is (canonical).
    pub fn location(&self) -> &DbLocation {
        &self.location
    }

    /// The open database, opened again if it was closed.
    pub fn database(&self) -> Result<Arc<Database>, HootError> {
        match self.opened.upgrade().filter(|db| is_open(db)) {
            Some(db) => Ok(db),
            None if self.canonical => Ok(get_or_open_canonical(&self.location, crate::clock::unix_now_ms())?.0),
            None => Ok(get_or_open(self.location.clone(), self.at_ms)?.0),
        }
    }

    fn run<T>(
        &self,
        access: Access,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T, HootError> {
        run_on(&*self.database()?, access, f)
    }
}

/// `SELECT <column> FROM <table> WHERE user_id = ?1 AND server_id = ?2 [AND created_at >= ?3]`.
fn select_sql(slot: Slot, since: bool) -> &'static str {
    match (slot, since) {
        (Slot::ClientInformation, _) => {
            "SELECT client_info FROM oauth_client_info WHERE user_id = ?1 AND server_id = ?2"
        }
        (Slot::Tokens, _) => "SELECT tokens FROM oauth_tokens WHERE user_id = ?1 AND server_id = ?2",
        (Slot::Verifier, false) => "SELECT verifier FROM oauth_verifiers WHERE user_id = ?1 AND server_id = ?2",
        (Slot::Verifier, true) => {
            "SELECT verifier FROM oauth_verifiers WHERE user_id = ?1 AND server_id = ?2 AND created_at >= ?3"
        }
        (Slot::Discovery, _) => "SELECT state FROM hoot_oauth_discovery WHERE user_id = ?1 AND server_id = ?2",
        (Slot::AuthorizationState, _) => "SELECT state FROM hoot_oauth_states WHERE user_id = ?1 AND server_id = ?2",
        (Slot::ServerConfig, _) => "SELECT config FROM server_configs WHERE user_id = ?1 AND server_id = ?2",
    }
}

/// `SELECT <column>, <version> FROM <table> WHERE user_id = ?1 AND server_id = ?2` of a versioned slot.
fn select_versioned_sql(slot: Slot) -> Result<&'static str, HootError> {
    match slot {
        Slot::ClientInformation => Ok("SELECT client_info, COALESCE(version, 0) FROM oauth_client_info \
             WHERE user_id = ?1 AND server_id = ?2"),
        Slot::Tokens => {
            Ok("SELECT tokens, COALESCE(version, 0) FROM oauth_tokens WHERE user_id = ?1 AND server_id = ?2")
        }
        _ => Err(HootError::Internal(format!("{} values have no version", slot.table()))),
    }
}

/// The upsert of one slot's row (binds user, server, value and, for a dated slot, `now`); a
/// versioned slot's row gets a new random version (53 bits, as a JavaScript number holds exactly;
/// never 0, `UNVERSIONED`).
fn upsert_sql(slot: Slot) -> &'static str {
    match slot {
        Slot::ClientInformation => {
            "INSERT OR REPLACE INTO oauth_client_info (user_id, server_id, client_info, version) \
             VALUES (?1, ?2, ?3, (random() & 9007199254740991) | 1)"
        }
        Slot::Tokens => {
            "INSERT OR REPLACE INTO oauth_tokens (user_id, server_id, tokens, version) \
             VALUES (?1, ?2, ?3, (random() & 9007199254740991) | 1)"
        }
        Slot::Verifier => {
            "INSERT OR REPLACE INTO oauth_verifiers (user_id, server_id, verifier, created_at) VALUES (?1, ?2, ?3, ?4)"
        }
        Slot::Discovery => {
            "INSERT OR REPLACE INTO hoot_oauth_discovery (user_id, server_id, state, created_at) VALUES (?1, ?2, ?3, ?4)"
        }
        Slot::AuthorizationState => {
            "INSERT OR REPLACE INTO hoot_oauth_states (user_id, server_id, state, created_at) VALUES (?1, ?2, ?3, ?4)"
        }
        Slot::ServerConfig => {
            "INSERT OR REPLACE INTO server_configs (user_id, server_id, config, created_at) VALUES (?1, ?2, ?3, ?4)"
        }
    }
}

/// Claims a refresh (?3 the holder, ?4 now, ?5 until, in ms): inserted, or taken over from a claim
/// that has ended (or is this holder's); a live claim of another holder changes nothing.
const CLAIM_REFRESH_SQL: &str = "INSERT INTO hoot_refresh_claims (user_id, server_id, holder, expires_at) \
     VALUES (?1, ?2, ?3, ?5) ON CONFLICT (user_id, server_id) DO UPDATE SET holder = excluded.holder, \
     expires_at = excluded.expires_at WHERE hoot_refresh_claims.expires_at <= ?4 OR hoot_refresh_claims.holder = ?3";

/// The data tables' users that have no activity row: data written before activity was recorded.
const UNTRACKED: &str = "SELECT user_id FROM oauth_tokens UNION SELECT user_id FROM oauth_client_info \
     UNION SELECT user_id FROM oauth_verifiers UNION SELECT user_id FROM server_configs \
     UNION SELECT user_id FROM hoot_oauth_discovery UNION SELECT user_id FROM hoot_oauth_states \
     UNION SELECT user_id FROM hoot_accounts UNION SELECT user_id FROM hoot_transfer_codes \
     EXCEPT SELECT user_id FROM hoot_users";

impl Backend for SqliteFile {
    fn kind(&self) -> crate::metrics::BackendKind {
        crate::metrics::BackendKind::Sqlite
    }

    fn place(&self) -> String {
        self.location.display()
    }

    fn read<'a>(&'a self, user: &'a str, slot: Slot, server: &'a str, since: Option<i64>) -> Call<'a, Option<String>> {
        done(self.run(Access::Read, |conn| {
            let mut stmt = conn.prepare_cached(select_sql(slot, since.is_some()))?;
            match since {
                Some(since) => stmt.query_row(params![user, server, since], |row| row.get(0)),
                None => stmt.query_row(params![user, server], |row| row.get(0)),
            }
            .optional()
        }))
    }

    fn opening_keys<'a>(&'a self, key_id: &'a str) -> Call<'a, Arc<KeyRing>> {
        done(self.database().and_then(|db| super::encryption::for_read(&db, key_id)))
    }

    fn read_versioned<'a>(&'a self, user: &'a str, slot: Slot, server: &'a str) -> Call<'a, Option<(String, i64)>> {
        let sql = match select_versioned_sql(slot) {
            Ok(sql) => sql,
            Err(e) => return done(Err(e)),
        };
        done(self.run(Access::Read, |conn| {
            conn.prepare_cached(sql)?.query_row(params![user, server], |row| Ok((row.get(0)?, row.get(1)?))).optional()
        }))
    }

    fn write<'a>(&'a self, user: &'a str, slot: Slot, server: &'a str, text: &'a str, now: i64) -> Call<'a, ()> {
        done((|| {
            let db = self.database()?;
            run_on(&db, Access::Write, |conn| {
                let execute = |conn: &rusqlite::Connection, value: &str| {
                    let mut stmt = conn.prepare_cached(upsert_sql(slot))?;
                    match slot.dated() {
                        true => stmt.execute(params![user, server, value, now]),
                        false => stmt.execute(params![user, server, value]),
                    }
                };
                if !slot.sealed() {
                    return execute(conn, text).map(|_| ());
                }
                // The encryption state is read inside the write's own transaction, so no
                // `encrypt`, `decrypt` or `encrypt --rotate` of another process falls in between.
                let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
                let sealed = match super::encryption::for_write(&db, &tx).map_err(carry)? {
                    Some(ring) => Some(ring.seal(slot.table(), user, server, text).map_err(carry)?),
                    None => None,
                };
                execute(&tx, sealed.as_deref().unwrap_or(text))?;
                tx.commit()
            })
        })())
    }

    fn take<'a>(&'a self, user: &'a str, slot: Slot, server: &'a str) -> Call<'a, Option<(String, i64)>> {
        let sql = match slot {
            Slot::AuthorizationState => {
                "DELETE FROM hoot_oauth_states WHERE user_id = ?1 AND server_id = ?2 RETURNING state, created_at"
            }
            _ => return done(Err(HootError::Internal(format!("{} values are not taken", slot.table())))),
        };
        done(self.run(Access::Delete, |conn| {
            conn.prepare_cached(sql)?.query_row(params![user, server], |row| Ok((row.get(0)?, row.get(1)?))).optional()
        }))
    }

    fn delete<'a>(
        &'a self,
        user: &'a str,
        tables: &'a [&'static str],
        server: Option<&'a str>,
        expected: &'a [(&'static str, i64)],
    ) -> Call<'a, u64> {
        done(self.run(Access::Delete, |conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            let mut removed = 0;
            for table in tables {
                let version = expected.iter().find(|(t, _)| t == table).map(|(_, v)| *v);
                removed += match (server, version) {
                    (Some(server), Some(version)) => tx
                        .prepare_cached(&format!(
                            "DELETE FROM {table} WHERE user_id = ?1 AND server_id = ?2 AND COALESCE(version, 0) = ?3"
                        ))?
                        .execute(params![user, server, version])?,
                    (Some(server), None) => tx
                        .prepare_cached(&format!("DELETE FROM {table} WHERE user_id = ?1 AND server_id = ?2"))?
                        .execute(params![user, server])?,
                    (None, _) => {
                        tx.prepare_cached(&format!("DELETE FROM {table} WHERE user_id = ?1"))?.execute([user])?
                    }
                } as u64;
            }
            // Forgetting a user forgets the rows a migration kept aside for them too, in any case.
            if server.is_none() {
                let conflicts = super::schema::CONFLICTS_TABLE;
                let kept_aside: bool = tx
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)")?
                    .query_row([conflicts], |row| row.get(0))?;
                if kept_aside {
                    removed += tx
                        .prepare_cached(&format!("DELETE FROM {conflicts} WHERE lower(user_id) = ?1"))?
                        .execute([user])? as u64;
                }
            }
            tx.commit()?;
            Ok(removed)
        }))
    }

    fn claim_refresh<'a>(
        &'a self,
        user: &'a str,
        server: &'a str,
        holder: &'a str,
        now: i64,
        until: i64,
    ) -> Call<'a, bool> {
        done(self.run(Access::Write, |conn| {
            let claimed = conn.prepare_cached(CLAIM_REFRESH_SQL)?.execute(params![user, server, holder, now, until])?;
            Ok(claimed > 0)
        }))
    }

    fn release_refresh<'a>(&'a self, user: &'a str, server: &'a str, holder: &'a str) -> Call<'a, ()> {
        done(self.run(Access::Delete, |conn| {
            conn.prepare_cached(
                "DELETE FROM hoot_refresh_claims WHERE user_id = ?1 AND server_id = ?2 AND holder = ?3",
            )?
            .execute(params![user, server, holder])
            .map(|_| ())
        }))
    }

    fn servers<'a>(&'a self, user: &'a str) -> Call<'a, Vec<String>> {
        done(self.run(Access::Read, |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT server_id FROM oauth_tokens WHERE user_id = ?1
                 UNION SELECT server_id FROM oauth_client_info WHERE user_id = ?1
                 UNION SELECT server_id FROM oauth_verifiers WHERE user_id = ?1
                 UNION SELECT server_id FROM server_configs WHERE user_id = ?1
                 UNION SELECT server_id FROM hoot_oauth_discovery WHERE user_id = ?1
                 ORDER BY 1",
            )?;
            let ids = stmt.query_map([user], |row| row.get(0))?.collect();
            ids
        }))
    }

    fn touch<'a>(&'a self, user: &'a str, now: i64) -> Call<'a, ()> {
        done(self.run(Access::Write, |conn| {
            conn.prepare_cached(
                "INSERT INTO hoot_users (user_id, first_seen, last_seen) VALUES (?1, ?2, ?2) \
                 ON CONFLICT (user_id) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
            )?
            .execute(params![user, now])
            .map(|_| ())
        }))
    }

    fn store_secret(&self) -> Call<'_, Arc<StoreSecret>> {
        done(secret_for(&self.location))
    }

    fn save_transfer_code<'a>(&'a self, user: &'a str, code: NewCode) -> Call<'a, ()> {
        done(self.run(Access::Write, |conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM hoot_transfer_codes WHERE user_id = ?1", [user])?;
            tx.execute(
                "INSERT INTO hoot_transfer_codes (code_hash, user_id, created_at, expires_at, derived_from, mac) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![code.hash, user, code.created_at, code.expires_at, code.derived_from, code.mac],
            )?;
            tx.commit()
        }))
    }

    fn link_account<'a>(
        &'a self,
        account: &'a str,
        user: &'a str,
        mac: &'a str,
        now: i64,
        genuine: &'a (dyn Fn(&str, Option<&str>) -> bool + Send + Sync),
    ) -> Call<'a, bool> {
        done(self.run(Access::Write, |conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            let existing: Option<(String, Option<String>)> = tx
                .prepare_cached("SELECT user_id, mac FROM hoot_accounts WHERE account_id = ?1")?
                .query_row([account], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            if let Some((owner, stored)) = existing {
                if genuine(&owner, stored.as_deref()) {
                    return Ok(owner == user);
                }
            }
            tx.prepare_cached(
                "INSERT INTO hoot_accounts (account_id, user_id, linked_at, mac) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (account_id) DO UPDATE SET user_id = excluded.user_id, linked_at = excluded.linked_at, \
                 mac = excluded.mac",
            )?
            .execute(params![account, user, now, mac])?;
            tx.commit()?;
            Ok(true)
        }))
    }

    fn unlink_account<'a>(&'a self, account: &'a str, user: &'a str) -> Call<'a, bool> {
        done(self.run(Access::Delete, |conn| {
            conn.prepare_cached("DELETE FROM hoot_accounts WHERE account_id = ?1 AND user_id = ?2")?
                .execute(params![account, user])
                .map(|n| n > 0)
        }))
    }

    fn account_owner<'a>(&'a self, account: &'a str) -> Call<'a, Option<(String, Option<String>)>> {
        done(self.run(Access::Read, |conn| {
            conn.prepare_cached("SELECT user_id, mac FROM hoot_accounts WHERE account_id = ?1")?
                .query_row([account], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        }))
    }

    fn revoke<'a>(&'a self, user: &'a str, before: i64) -> Call<'a, ()> {
        // The user's pending transfer code goes in the same transaction: redemption refuses it
        // anyway (it derives from revoked tokens), but none is left to try.
        done(self.run(Access::Write, |conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            tx.prepare_cached(
                "INSERT INTO hoot_revocations (user_id, revoked_before) VALUES (?1, ?2) \
                 ON CONFLICT (user_id) DO UPDATE SET revoked_before = max(revoked_before, excluded.revoked_before)",
            )?
            .execute(params![user, before])?;
            tx.prepare_cached("DELETE FROM hoot_transfer_codes WHERE user_id = ?1")?.execute([user])?;
            tx.commit()
        }))
    }

    fn redeem<'a>(&'a self, r: Redemption<'a>) -> Call<'a, Redeem> {
        done((|| {
            let db = self.database()?;
            run_on(&db, Access::Write, |conn| {
                // IMMEDIATE: one redemption at a time across processes, so the counts read are
                // the counts and the throttle cannot be raced.
                let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
                let window = r.window;
                let failures: i64 = tx
                    .prepare_cached("SELECT failures FROM hoot_transfer_failures WHERE window_start = ?1")?
                    .query_row([window], |row| row.get(0))
                    .optional()?
                    .unwrap_or(0);
                let source_failures: Option<i64> = match &r.source {
                    Some(source) => Some(
                        tx.prepare_cached(
                            "SELECT failures FROM hoot_transfer_source_failures \
                             WHERE window_start = ?1 AND source_mac = ?2",
                        )?
                        .query_row(params![window, source], |row| row.get(0))
                        .optional()?
                        .unwrap_or(0),
                    ),
                    None => None,
                };
                if let Some(retry_after) = (r.throttled)(failures, source_failures) {
                    return Ok(Redeem::Throttled(retry_after));
                }
                let found: Option<CodeRow> = match &r.hash {
                    Some(hash) => tx
                        .prepare_cached(
                            "DELETE FROM hoot_transfer_codes WHERE code_hash = ?1 \
                             RETURNING user_id, expires_at, derived_from, mac",
                        )?
                        .query_row([hash], |row| {
                            Ok(CodeRow {
                                user_id: row.get(0)?,
                                expires_at: row.get(1)?,
                                derived_from: row.get(2)?,
                                mac: row.get(3)?,
                            })
                        })
                        .optional()?,
                    None => None,
                };
                let Some((user_id, derived_from)) = found.and_then(r.verified) else {
                    tx.execute("DELETE FROM hoot_transfer_failures WHERE window_start < ?1", [window])?;
                    tx.execute("DELETE FROM hoot_transfer_source_failures WHERE window_start < ?1", [window])?;
                    tx.execute(
                        "INSERT INTO hoot_transfer_failures (window_start, failures) VALUES (?1, 1) \
                         ON CONFLICT (window_start) DO UPDATE SET failures = failures + 1",
                        [window],
                    )?;
                    if let Some(source) = &r.source {
                        tx.execute(
                            "INSERT INTO hoot_transfer_source_failures (window_start, source_mac, failures) \
                             VALUES (?1, ?2, 1) ON CONFLICT (window_start, source_mac) \
                             DO UPDATE SET failures = failures + 1",
                            params![window, source],
                        )?;
                    }
                    tx.commit()?;
                    return Ok(Redeem::Refused);
                };
                let revoked_before: Option<i64> = tx
                    .prepare_cached("SELECT revoked_before FROM hoot_revocations WHERE user_id = ?1")?
                    .query_row([&user_id], |row| row.get(0))
                    .optional()?;
                if revoked_before.is_some_and(|before| derived_from < before) {
                    // Ended by a revocation: used up (committed), and not a guess, so not counted.
                    tx.commit()?;
                    return Ok(Redeem::Refused);
                }
                let moved = match (is_legacy_user(&user_id), &r.into) {
                    (false, _) => None,
                    (true, None) => return Ok(Redeem::NeedsTarget), // rolled back: the code stays usable
                    (true, Some(into)) => {
                        Some(move_in(&tx, &self.location, &user_id, into, OnConflict::KeepTarget, &db)?)
                    }
                };
                tx.commit()?;
                let user_id = match (&moved, &r.into) {
                    (Some(_), Some(into)) => into.clone(),
                    _ => user_id,
                };
                Ok(Redeem::Redeemed(Redeemed { user_id, moved }))
            })
        })())
    }

    fn move_user_data<'a>(&'a self, from: &'a str, to: &'a str, on_conflict: OnConflict) -> Call<'a, MoveReport> {
        done((|| {
            let db = self.database()?;
            run_on(&db, Access::Write, |conn| {
                let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
                let report = move_in(&tx, &self.location, from, to, on_conflict, &db)?;
                if on_conflict == OnConflict::Fail && report.conflicts > 0 {
                    return Ok(report); // dropped: rolled back
                }
                tx.commit()?;
                Ok(report)
            })
        })())
    }

    fn legacy_user(&self) -> Call<'_, Option<String>> {
        done(self.run(Access::Read, |conn| {
            let union =
                SERVER_TABLES.iter().map(|t| format!("SELECT user_id FROM {t}")).collect::<Vec<_>>().join(" UNION ");
            conn.query_row(
                &format!(
                    "SELECT user_id FROM ({union}) WHERE user_id GLOB 'legacy-user-[0-9]*' \
                     AND substr(user_id, 13) NOT GLOB '*[^0-9]*' ORDER BY user_id LIMIT 1"
                ),
                [],
                |row| row.get(0),
            )
            .optional()
        }))
    }

    fn delete_verifiers_before(&self, before: i64) -> Call<'_, u64> {
        done(self.run(Access::Delete, |conn| {
            conn.prepare_cached("DELETE FROM oauth_verifiers WHERE created_at < ?1")?
                .execute([before])
                .map(|n| n as u64)
        }))
    }

    fn cached_favicon<'a>(
        &'a self,
        server_url: &'a str,
        oauth_logo_uri: Option<&'a str>,
        fresh_after: i64,
    ) -> Call<'a, Option<Option<String>>> {
        done(self.run(Access::Read, |conn| {
            conn.prepare_cached(
                "SELECT favicon_url FROM favicon_cache WHERE server_url = ?1
                 AND (oauth_logo_uri IS NULL OR oauth_logo_uri = ?2) AND cached_at > ?3",
            )?
            .query_row(params![server_url, oauth_logo_uri, fresh_after], |row| row.get(0))
            .optional()
        }))
    }

    fn cache_favicon<'a>(
        &'a self,
        server_url: &'a str,
        favicon_url: Option<&'a str>,
        oauth_logo_uri: Option<&'a str>,
        now: i64,
    ) -> Call<'a, ()> {
        done(self.run(Access::Write, |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO favicon_cache (server_url, favicon_url, oauth_logo_uri, cached_at) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![server_url, favicon_url, oauth_logo_uri, now])
            .map(|_| ())
        }))
    }

    fn activity_summary(&self, now: i64) -> Call<'_, ActivitySummary> {
        done(self.run(Access::Read, |conn| {
            super::db::within_deadline(conn, super::db::SCAN_DEADLINE, |conn| summary_on(conn, now))
        }))
    }

    fn purge(&self, cutoff: i64, dry_run: bool, now: i64) -> Call<'_, PurgeReport> {
        done(self.run(Access::Delete, |conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            let report = purge_in(&tx, cutoff, dry_run, now)?;
            match dry_run {
                true => tx.rollback()?,
                false => tx.commit()?,
            }
            Ok(report)
        }))
    }
}

/// The activity counts at `now`, on a connection to a database that has every table.
pub(super) fn summary_on(conn: &rusqlite::Connection, now: i64) -> rusqlite::Result<ActivitySummary> {
    let count = |sql: &str, since: Option<i64>| -> rusqlite::Result<u64> {
        let n: i64 = match since {
            Some(since) => conn.prepare_cached(sql)?.query_row([since], |r| r.get(0))?,
            None => conn.prepare_cached(sql)?.query_row([], |r| r.get(0))?,
        };
        Ok(n as u64)
    };
    let active = "SELECT count(*) FROM hoot_users WHERE last_seen >= ?1";
    let tracked = count("SELECT count(*) FROM hoot_users", None)?;
    let untracked = count(&format!("SELECT count(*) FROM ({UNTRACKED})"), None)?;
    Ok(ActivitySummary {
        users: tracked + untracked,
        active_1d: count(active, Some(now - 86_400))?,
        active_7d: count(active, Some(now - 7 * 86_400))?,
        active_30d: count(active, Some(now - 30 * 86_400))?,
        untracked,
    })
}

fn purge_in(tx: &rusqlite::Connection, cutoff: i64, dry_run: bool, now: i64) -> rusqlite::Result<PurgeReport> {
    let adopted = tx.execute(
        &format!("INSERT INTO hoot_users (user_id, first_seen, last_seen) SELECT user_id, ?1, ?1 FROM ({UNTRACKED})"),
        [now],
    )? as u64;
    tx.execute_batch("DROP TABLE IF EXISTS temp.hoot_purge; CREATE TEMP TABLE hoot_purge (user_id TEXT PRIMARY KEY)")?;
    // A legacy user (a migrated single-user install) can never be active: only an operator removes
    // it (`adopt-legacy` hands it to a browser, or its rows are deleted by hand).
    let users = tx.execute(
        "INSERT INTO temp.hoot_purge SELECT user_id FROM hoot_users WHERE last_seen < ?1 \
         AND NOT (user_id GLOB 'legacy-user-[0-9]*' AND substr(user_id, 13) NOT GLOB '*[^0-9]*')",
        [cutoff],
    )?;
    let mut rows = 0;
    for table in crate::store::USER_TABLES.iter().chain([&crate::store::tables::USERS_TABLE]) {
        rows +=
            tx.execute(&format!("DELETE FROM {table} WHERE user_id IN (SELECT user_id FROM temp.hoot_purge)"), [])?;
    }
    // The users table's own rows are not data: count the rows a user had besides it.
    rows -= users;
    // And the rows a migration kept aside for them, if any.
    let conflicts_kept: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'hoot_migration_conflicts')",
        [],
        |r| r.get(0),
    )?;
    if conflicts_kept {
        rows += tx.execute(
            "DELETE FROM hoot_migration_conflicts WHERE lower(user_id) IN (SELECT user_id FROM temp.hoot_purge)",
            [],
        )?;
    }
    tx.execute_batch("DROP TABLE temp.hoot_purge")?;
    Ok(PurgeReport { users: users as u64, rows: rows as u64, adopted, dry_run })
}

// The database-level operations on a SQLite file, synchronously (the package's `hoot-core/sqlite`
// functions and the CLI): `crate::store::ops` run on the file at `location`.

/// `ops::revoke_user_tokens` on the file at `location`.
pub fn revoke_user_tokens(location: DbLocation, user_id: &str, at: i64) -> Result<i64, HootError> {
    now(ops::revoke_user_tokens(&SqliteFile::at(location, at * 1000), user_id, at))
}

/// `ops::redeem_transfer_code` on the file at `location`.
pub fn redeem_transfer_code(
    location: DbLocation,
    code: &str,
    into: Option<&str>,
    source: Option<&str>,
    at: i64,
) -> Result<Redeemed, HootError> {
    now(ops::redeem_transfer_code(&SqliteFile::at(location, at * 1000), code, into, source, at))
}

/// `ops::user_id_for_account` on the file at `location`.
pub fn user_id_for_account(location: DbLocation, account_id: &str, at: i64) -> Result<Option<String>, HootError> {
    now(ops::user_id_for_account(&SqliteFile::at(location, at * 1000), account_id))
}

/// `ops::move_user_data` on the file at `location`.
pub fn move_user_data(
    location: DbLocation,
    from: &str,
    to: &str,
    on_conflict: OnConflict,
    at: i64,
) -> Result<MoveReport, HootError> {
    now(ops::move_user_data(&SqliteFile::at(location, at * 1000), from, to, on_conflict))
}

/// The legacy user of the file at `location`, if it still has data.
pub fn legacy_user(location: DbLocation, at: i64) -> Result<Option<String>, HootError> {
    now(SqliteFile::at(location, at * 1000).legacy_user())
}

/// `ops::legacy_transfer_code` on the file at `location`.
pub fn legacy_transfer_code(
    location: DbLocation,
    ttl: i64,
    at: i64,
) -> Result<Option<(String, String, i64)>, HootError> {
    now(ops::legacy_transfer_code(&Arc::new(SqliteFile::at(location, at * 1000)), ttl, at))
}

/// `ops::activity_summary` on the file at `location`.
pub fn activity_summary(location: DbLocation, at: i64) -> Result<ActivitySummary, HootError> {
    now(ops::activity_summary(&SqliteFile::at(location, at * 1000), at))
}

/// `ops::purge_inactive_users` on the file at `location`.
pub fn purge_inactive_users(location: DbLocation, days: i64, dry_run: bool, at: i64) -> Result<PurgeReport, HootError> {
    now(ops::purge_inactive_users(&SqliteFile::at(location, at * 1000), days, dry_run, at))
}

/// `ops::cleanup_expired_verifiers` on the file at `location`.
pub fn cleanup_expired_verifiers(location: DbLocation, max_age: i64, at: i64) -> Result<u64, HootError> {
    now(ops::cleanup_expired_verifiers(&SqliteFile::at(location, at * 1000), max_age, at))
}

/// `ops::cached_favicon` on the file at `location`.
pub fn cached_favicon(
    location: DbLocation,
    server_url: &str,
    oauth_logo_uri: Option<&str>,
    at: i64,
) -> Result<Option<Option<String>>, HootError> {
    now(ops::cached_favicon(&SqliteFile::at(location, at * 1000), server_url, oauth_logo_uri, at))
}

/// `ops::cache_favicon` on the file at `location`.
pub fn cache_favicon(
    location: DbLocation,
    server_url: &str,
    favicon_url: Option<&str>,
    oauth_logo_uri: Option<&str>,
    at: i64,
) -> Result<(), HootError> {
    now(ops::cache_favicon(&SqliteFile::at(location, at * 1000), server_url, favicon_url, oauth_logo_uri, at))
}
