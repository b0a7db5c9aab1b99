//! The SQLite backend: Hoot's tables in one file (or in memory), one connection per file and
//! process. Its SQL only: what may be stored and every other rule is `crate::store`'s.

#![warn(missing_docs)]

pub mod db;
pub mod encryption;
pub mod identity;
pub mod revocations;
pub mod schema;
pub mod users;

use std::sync::{Arc, Weak};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

pub use db::{DbLocation, MEMORY};
pub use schema::{DatabaseStatus, MigrationReport, SCHEMA_VERSION};

use crate::error::HootError;
pub use crate::store::*;
use db::{get_or_open, get_or_open_canonical, Database};

/// One user's view of the store. Every statement binds `user_id` from here.
#[derive(Debug, Clone)]
pub struct OAuthStore {
    user_id: String,
    /// Canonical, so a closed database reopens under the same key.
    location: DbLocation,
    /// The database this store opened, while it stays open: a call uses it without the
    /// registry's lock and lookup. Weak, so `closeDatabase` still closes it; after that, calls
    /// go through the registry, which opens it again.
    opened: Weak<Database>,
}

impl OAuthStore {
    /// Checks the user id and opens (and if needed migrates) the database.
    pub fn open(user_id: &str, location: DbLocation, now_ms: i64) -> Result<Self, HootError> {
        if !is_store_user_id(user_id) {
            return Err(HootError::invalid_user_id(user_id, USER_ID_FORMS));
        }
        let (db, _) = get_or_open(location, now_ms)?;
        // One browser secret is one tenant: a UUID is kept lower-case whatever case it came in.
        let user_id = user_id.to_ascii_lowercase();
        Ok(OAuthStore { user_id, location: db.location.clone(), opened: Arc::downgrade(&db) })
    }

    /// The database this store is bound to (canonical).
    pub fn location(&self) -> &DbLocation {
        &self.location
    }

    /// The user every statement is scoped to.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Runs `f` on this store's connection; a SQLite error becomes `ERR_HOOT_DB` naming the file.
    fn database(&self) -> Result<Arc<Database>, HootError> {
        match self.opened.upgrade().filter(|db| db::is_open(db)) {
            Some(db) => Ok(db),
            None => Ok(get_or_open_canonical(&self.location, crate::clock::unix_now_ms())?.0),
        }
    }

    fn run<T>(&self, access: Access, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, HootError> {
        run_on(&*self.database()?, access, f)
    }

    /// A value read from `table`, opened when it is sealed.
    fn opened(&self, table: &str, server_id: &str, stored: Option<String>) -> Result<Option<String>, HootError> {
        match stored {
            Some(text) => match crate::sealing::sealed_with(&text) {
                Some(key_id) => {
                    let ring = encryption::for_read(&*self.database()?, key_id)?;
                    ring.open(table, &self.user_id, server_id, &text).map(Some)
                }
                None => Ok(Some(text)),
            },
            None => Ok(None),
        }
    }

    /// Writes `text` into this user's row for `server_id` of a sealed column (`sql` binds the user,
    /// the server, the value and, when given, `now`), sealed when the database is encrypted. The
    /// encryption state is read inside the write's own transaction, so no `encrypt`, `decrypt` or
    /// `encrypt --rotate` of another process falls between the check and the write.
    fn write_value(
        &self,
        sql: &'static str,
        table: &str,
        server_id: &str,
        text: &str,
        now: Option<i64>,
    ) -> Result<(), HootError> {
        let db = self.database()?;
        run_on(&db, Access::Write, |conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            let value = match encryption::for_write(&db, &tx).map_err(carry)? {
                Some(ring) => ring.seal(table, &self.user_id, server_id, text).map_err(carry)?,
                None => text.to_string(),
            };
            {
                let mut stmt = tx.prepare_cached(sql)?;
                match now {
                    Some(now) => stmt.execute(params![self.user_id, server_id, value, now])?,
                    None => stmt.execute(params![self.user_id, server_id, value])?,
                };
            }
            tx.commit()
        })
    }

    fn read_text(&self, sql: &'static str, server_id: &str) -> Result<Option<String>, HootError> {
        crate::test_panic(server_id);
        check_id("serverId", server_id)?;
        self.run(Access::Read, |conn| {
            conn.prepare_cached(sql)?.query_row(params![self.user_id, server_id], |row| row.get(0)).optional()
        })
    }

    fn write(&self, sql: &'static str, params: impl rusqlite::Params) -> Result<(), HootError> {
        self.run(Access::Write, |conn| conn.prepare_cached(sql)?.execute(params).map(|_| ()))
    }

    /// The OAuth client registration (JSON text), if any.
    pub fn client_information(&self, server_id: &str) -> Result<Option<String>, HootError> {
        let stored = self
            .read_text("SELECT client_info FROM oauth_client_info WHERE user_id = ?1 AND server_id = ?2", server_id)?;
        self.opened("oauth_client_info", server_id, stored)
    }

    /// Saves the OAuth client registration for `server_id`, replacing any.
    pub fn save_client_information(&self, server_id: &str, info: &JsonObject) -> Result<(), HootError> {
        check_id("serverId", server_id)?;
        self.write_value(
            "INSERT OR REPLACE INTO oauth_client_info (user_id, server_id, client_info) VALUES (?1, ?2, ?3)",
            "oauth_client_info",
            server_id,
            info.as_str(),
            None,
        )
    }

    /// The OAuth tokens (JSON text), if any.
    pub fn tokens(&self, server_id: &str) -> Result<Option<String>, HootError> {
        let stored =
            self.read_text("SELECT tokens FROM oauth_tokens WHERE user_id = ?1 AND server_id = ?2", server_id)?;
        self.opened("oauth_tokens", server_id, stored)
    }

    /// Saves the OAuth tokens for `server_id`, replacing any.
    pub fn save_tokens(&self, server_id: &str, tokens: &JsonObject) -> Result<(), HootError> {
        check_id("serverId", server_id)?;
        self.write_value(
            "INSERT OR REPLACE INTO oauth_tokens (user_id, server_id, tokens) VALUES (?1, ?2, ?3)",
            "oauth_tokens",
            server_id,
            tokens.as_str(),
            None,
        )
    }

    /// The PKCE verifier saved for `server_id`, unless it is older than ten minutes at `now`.
    pub fn code_verifier(&self, server_id: &str, now: i64) -> Result<Option<String>, HootError> {
        check_id("serverId", server_id)?;
        let stored = self.run(Access::Read, |conn| {
            conn.prepare_cached(
                "SELECT verifier FROM oauth_verifiers WHERE user_id = ?1 AND server_id = ?2 AND created_at >= ?3",
            )?
            .query_row(params![self.user_id, server_id, now - VERIFIER_TTL_SECONDS], |row| row.get(0))
            .optional()
        })?;
        self.opened("oauth_verifiers", server_id, stored)
    }

    /// Saves the PKCE verifier for `server_id` at time `now` (seconds), replacing any.
    pub fn save_code_verifier(&self, server_id: &str, verifier: &str, now: i64) -> Result<(), HootError> {
        check_id("serverId", server_id)?;
        check_id("verifier", verifier)?;
        if verifier.starts_with(crate::sealing::PREFIX) {
            return Err(HootError::arg_value("verifier", "must not look like a sealed value (hoot-sealed:1:...)"));
        }
        self.write_value(
            "INSERT OR REPLACE INTO oauth_verifiers (user_id, server_id, verifier, created_at) VALUES (?1, ?2, ?3, ?4)",
            "oauth_verifiers",
            server_id,
            verifier,
            Some(now),
        )
    }

    /// The MCP SDK's discovery state (JSON text) saved for `server_id`, if any.
    pub fn discovery_state(&self, server_id: &str) -> Result<Option<String>, HootError> {
        let stored =
            self.read_text("SELECT state FROM hoot_oauth_discovery WHERE user_id = ?1 AND server_id = ?2", server_id)?;
        self.opened("hoot_oauth_discovery", server_id, stored)
    }

    /// Saves the MCP SDK's discovery state for `server_id` at time `now`, replacing any. It lasts
    /// until invalidated (`'discovery'` or `'all'`): it describes the server, not a flow.
    pub fn save_discovery_state(&self, server_id: &str, state: &JsonObject, now: i64) -> Result<(), HootError> {
        check_id("serverId", server_id)?;
        self.write_value(
            "INSERT OR REPLACE INTO hoot_oauth_discovery (user_id, server_id, state, created_at) VALUES (?1, ?2, ?3, ?4)",
            "hoot_oauth_discovery",
            server_id,
            state.as_str(),
            Some(now),
        )
    }

    /// Saves the OAuth `state` parameter of the authorization starting now for `server_id`,
    /// replacing any: one authorization per user and server at a time, as with the verifier.
    pub fn save_authorization_state(&self, server_id: &str, state: &str, now: i64) -> Result<(), HootError> {
        check_id("serverId", server_id)?;
        check_id("state", state)?;
        self.write(
            "INSERT OR REPLACE INTO hoot_oauth_states (user_id, server_id, state, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![self.user_id, server_id, state, now],
        )
    }

    /// Whether `state` is the one saved for `server_id` within the last ten minutes at `now`. The
    /// saved state is removed by the check, whatever its outcome (single use, even across
    /// processes: the delete and the read are one statement), and compared in constant time.
    pub fn consume_authorization_state(&self, server_id: &str, state: &str, now: i64) -> Result<bool, HootError> {
        check_id("serverId", server_id)?;
        let saved: Option<(String, i64)> = self.run(Access::Delete, |conn| {
            conn.prepare_cached(
                "DELETE FROM hoot_oauth_states WHERE user_id = ?1 AND server_id = ?2 RETURNING state, created_at",
            )?
            .query_row(params![self.user_id, server_id], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
        })?;
        Ok(saved.is_some_and(|(saved, created_at)| {
            let fresh = created_at >= now - VERIFIER_TTL_SECONDS && created_at <= now + 60;
            let same = aws_lc_rs::constant_time::verify_slices_are_equal(saved.as_bytes(), state.as_bytes()).is_ok();
            same & fresh
        }))
    }

    /// Removes this user's credentials for `server_id` in the given scope, in one transaction.
    pub fn invalidate_credentials(&self, server_id: &str, scope: CredentialScope) -> Result<u64, HootError> {
        check_id("serverId", server_id)?;
        self.delete_rows(scope.tables(), Some(server_id))
    }

    fn delete_rows(&self, tables: &[&str], server_id: Option<&str>) -> Result<u64, HootError> {
        self.run(Access::Delete, |conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            let mut removed = 0;
            for table in tables {
                removed += match server_id {
                    Some(server_id) => tx
                        .prepare_cached(&format!("DELETE FROM {table} WHERE user_id = ?1 AND server_id = ?2"))?
                        .execute(params![self.user_id, server_id])?,
                    None => tx
                        .prepare_cached(&format!("DELETE FROM {table} WHERE user_id = ?1"))?
                        .execute(params![self.user_id])?,
                } as u64;
            }
            // Forgetting a user forgets the rows a migration kept aside for them too, in any case.
            if server_id.is_none() {
                let conflicts = schema::CONFLICTS_TABLE;
                let kept_aside: bool = tx
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)")?
                    .query_row([conflicts], |row| row.get(0))?;
                if kept_aside {
                    removed += tx
                        .prepare_cached(&format!("DELETE FROM {conflicts} WHERE lower(user_id) = ?1"))?
                        .execute(params![self.user_id])? as u64;
                }
            }
            tx.commit()?;
            Ok(removed)
        })
    }

    /// The server config (JSON text), if any.
    pub fn server_config(&self, server_id: &str) -> Result<Option<String>, HootError> {
        let stored =
            self.read_text("SELECT config FROM server_configs WHERE user_id = ?1 AND server_id = ?2", server_id)?;
        self.opened("server_configs", server_id, stored)
    }

    /// Saves the config of `server_id` (for reconnecting) at time `now`, replacing any.
    pub fn save_server_config(&self, server_id: &str, config: &JsonObject, now: i64) -> Result<(), HootError> {
        check_id("serverId", server_id)?;
        self.write_value(
            "INSERT OR REPLACE INTO server_configs (user_id, server_id, config, created_at) VALUES (?1, ?2, ?3, ?4)",
            "server_configs",
            server_id,
            config.as_str(),
            Some(now),
        )
    }

    /// Removes the config of `server_id`; returns the rows removed.
    pub fn delete_server_config(&self, server_id: &str) -> Result<u64, HootError> {
        check_id("serverId", server_id)?;
        self.delete_rows(&["server_configs"], Some(server_id))
    }

    /// Server ids with any stored state for this user, sorted.
    pub fn servers(&self) -> Result<Vec<String>, HootError> {
        self.run(Access::Read, |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT server_id FROM oauth_tokens WHERE user_id = ?1
                 UNION SELECT server_id FROM oauth_client_info WHERE user_id = ?1
                 UNION SELECT server_id FROM oauth_verifiers WHERE user_id = ?1
                 UNION SELECT server_id FROM server_configs WHERE user_id = ?1
                 UNION SELECT server_id FROM hoot_oauth_discovery WHERE user_id = ?1
                 ORDER BY 1",
            )?;
            let ids = stmt.query_map(params![self.user_id], |row| row.get(0))?.collect();
            ids
        })
    }

    /// Forgets this user: every row in every per-user table, in one transaction. Returns the count.
    pub fn delete_all(&self) -> Result<u64, HootError> {
        let mut tables = USER_TABLES.to_vec();
        tables.push(schema::USERS_TABLE);
        let removed = self.delete_rows(&tables, None)?;
        users::forget_touch(self);
        Ok(removed)
    }
}

/// What a call does to the database: its error message says so, and only a read may go ahead on
/// a file that was moved or replaced under this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
    Delete,
}

impl Access {
    fn doing(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write to",
            Access::Delete => "delete from",
        }
    }
}

pub(crate) fn run_on<T>(
    db: &Database,
    access: Access,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T, HootError> {
    db.with_conn(|conn| {
        if access != Access::Read {
            db.check_not_moved(conn)?;
        }
        f(conn).map_err(|e| match e {
            // A hoot-core error raised inside a statement's closure (see `carry`) comes out as it was.
            rusqlite::Error::ToSqlConversionFailure(inner) if inner.is::<HootError>() => {
                inner.downcast::<HootError>().map_or_else(|_| HootError::Internal("lost error".into()), |e| *e)
            }
            e => db::conn_error(conn, &db.location, access.doing(), &e),
        })
    })
}

/// Carries a hoot-core error through a closure that returns `rusqlite::Result`, to `run_on`.
pub(crate) fn carry(e: HootError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// Runs `f` on the database at `location` (opening it if needed), for the functions shared by all users.
pub(crate) fn run_at<T>(
    location: DbLocation,
    now: i64,
    access: Access,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T, HootError> {
    let (db, _) = get_or_open(location, now * 1000)?;
    run_on(&db, access, f)
}

/// Deletes every user's verifiers older than `max_age` seconds at `now`; returns how many.
pub fn cleanup_expired_verifiers(location: DbLocation, max_age: i64, now: i64) -> Result<u64, HootError> {
    run_at(location, now, Access::Delete, |conn| {
        conn.prepare_cached("DELETE FROM oauth_verifiers WHERE created_at < ?1")?
            .execute(params![now - max_age])
            .map(|n| n as u64)
    })
}

/// Hoot's favicon cache lookup: `None` when nothing fresh is cached, `Some(None)` when "no
/// favicon" was cached, `Some(Some(url))` otherwise.
pub fn cached_favicon(
    location: DbLocation,
    server_url: &str,
    oauth_logo_uri: Option<&str>,
    now: i64,
) -> Result<Option<Option<String>>, HootError> {
    check_id("serverUrl", server_url)?;
    run_at(location, now, Access::Read, |conn| {
        conn.prepare_cached(
            "SELECT favicon_url FROM favicon_cache WHERE server_url = ?1
             AND (oauth_logo_uri IS NULL OR oauth_logo_uri = ?2) AND cached_at > ?3",
        )?
        .query_row(params![server_url, oauth_logo_uri, now - FAVICON_TTL_SECONDS], |row| row.get(0))
        .optional()
    })
}

/// Caches a favicon lookup for `server_url` at `now` (`None`: the lookup found no favicon).
pub fn cache_favicon(
    location: DbLocation,
    server_url: &str,
    favicon_url: Option<&str>,
    oauth_logo_uri: Option<&str>,
    now: i64,
) -> Result<(), HootError> {
    check_id("serverUrl", server_url)?;
    for (name, value) in [("faviconUrl", favicon_url), ("oauthLogoUri", oauth_logo_uri)] {
        if value.is_some_and(|v| v.len() > MAX_VALUE_BYTES) {
            return Err(HootError::out_of_range(name, format!("must be at most {MAX_VALUE_BYTES} bytes")));
        }
    }
    run_at(location, now, Access::Write, |conn| {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO favicon_cache (server_url, favicon_url, oauth_logo_uri, cached_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![server_url, favicon_url, oauth_logo_uri, now])
        .map(|_| ())
    })
}

/// Opens the database (migrating it if needed) and reports what was done; a database already
/// open in this process is checked again, which for a migrated one changes nothing.
pub fn migrate_database(location: DbLocation, now_ms: i64) -> Result<MigrationReport, HootError> {
    let (db, report) = get_or_open(location, now_ms)?;
    match report {
        Some(report) => Ok(report),
        None => db.with_conn(|conn| schema::ensure_schema(conn, &db.location, now_ms)),
    }
}

/// The schema state of the database at `location`, without opening it for writing or migrating
/// it. An in-memory database is whatever this process made of it, so it is reported as it stands.
pub fn inspect_database(location: DbLocation, now: i64) -> Result<DatabaseStatus, HootError> {
    match &location {
        DbLocation::File(path) => schema::inspect(path, &location, now),
        DbLocation::Memory => {
            Ok(DatabaseStatus { exists: true, schema_version: SCHEMA_VERSION, ..DatabaseStatus::default() })
        }
    }
}

#[cfg(test)]
mod tests;
