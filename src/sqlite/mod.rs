//! The SQLite backend: Hoot's tables in one file (or in memory), one connection per file and
//! process. Its SQL only: what may be stored and every other rule is `crate::store`'s.

#![warn(missing_docs)]

pub mod backend;
pub mod db;
pub mod encryption;
pub mod identity;
pub mod revocations;
pub mod schema;
pub mod users;

use rusqlite::Connection;

pub use db::{DbLocation, MEMORY};
pub use schema::{DatabaseStatus, MigrationReport, SCHEMA_VERSION};

use crate::error::HootError;
use crate::store::backend::now;
pub use crate::store::*;
pub use backend::{
    activity_summary, cache_favicon, cached_favicon, cleanup_expired_verifiers, legacy_transfer_code, legacy_user,
    move_user_data, purge_inactive_users, redeem_transfer_code, revoke_user_tokens, user_id_for_account, SqliteFile,
};
use db::{get_or_open, Database};

/// One user's store on SQLite, synchronous (like better-sqlite3): the store core
/// (`crate::store::UserStore`) over this file, each call driven to its end at once.
#[derive(Debug, Clone)]
pub struct OAuthStore(UserStore<SqliteFile>);

impl OAuthStore {
    /// Checks the user id, then opens (and if needed migrates) the database.
    pub fn open(user_id: &str, location: DbLocation, now_ms: i64) -> Result<Self, HootError> {
        if !is_store_user_id(user_id) {
            return Err(HootError::invalid_user_id(user_id, USER_ID_FORMS));
        }
        Ok(OAuthStore(UserStore::new(SqliteFile::open(location, now_ms)?, user_id)?))
    }

    /// The store core this facade drives.
    pub fn core(&self) -> &UserStore<SqliteFile> {
        &self.0
    }

    /// The database this store is bound to (canonical).
    pub fn location(&self) -> &DbLocation {
        self.0.backend().location()
    }

    /// The user every statement is scoped to.
    pub fn user_id(&self) -> &str {
        self.0.user_id()
    }

    /// See `UserStore::client_information`.
    pub fn client_information(&self, server_id: &str) -> Result<Option<String>, HootError> {
        now(self.0.client_information(server_id))
    }

    /// See `UserStore::save_client_information`.
    pub fn save_client_information(&self, server_id: &str, info: &JsonObject) -> Result<(), HootError> {
        now(self.0.save_client_information(server_id, info))
    }

    /// See `UserStore::tokens`.
    pub fn tokens(&self, server_id: &str) -> Result<Option<String>, HootError> {
        now(self.0.tokens(server_id))
    }

    /// See `UserStore::tokens_versioned`.
    pub fn tokens_versioned(&self, server_id: &str) -> Result<Option<(String, i64)>, HootError> {
        now(self.0.tokens_versioned(server_id))
    }

    /// See `UserStore::client_information_versioned`.
    pub fn client_information_versioned(&self, server_id: &str) -> Result<Option<(String, i64)>, HootError> {
        now(self.0.client_information_versioned(server_id))
    }

    /// See `UserStore::invalidate_credentials_if`.
    pub fn invalidate_credentials_if(
        &self,
        server_id: &str,
        scope: CredentialScope,
        expected: crate::store::Expected,
    ) -> Result<u64, HootError> {
        now(self.0.invalidate_credentials_if(server_id, scope, expected))
    }

    /// See `UserStore::claim_refresh`.
    pub fn claim_refresh(&self, server_id: &str, holder: &str, now_ms: i64, lease_ms: i64) -> Result<bool, HootError> {
        now(self.0.claim_refresh(server_id, holder, now_ms, lease_ms))
    }

    /// See `UserStore::release_refresh`.
    pub fn release_refresh(&self, server_id: &str, holder: &str) -> Result<(), HootError> {
        now(self.0.release_refresh(server_id, holder))
    }

    /// See `UserStore::save_tokens`.
    pub fn save_tokens(&self, server_id: &str, tokens: &JsonObject) -> Result<(), HootError> {
        now(self.0.save_tokens(server_id, tokens))
    }

    /// See `UserStore::code_verifier`.
    pub fn code_verifier(&self, server_id: &str, at: i64) -> Result<Option<String>, HootError> {
        now(self.0.code_verifier(server_id, at))
    }

    /// See `UserStore::save_code_verifier`.
    pub fn save_code_verifier(&self, server_id: &str, verifier: &str, at: i64) -> Result<(), HootError> {
        now(self.0.save_code_verifier(server_id, verifier, at))
    }

    /// See `UserStore::discovery_state`.
    pub fn discovery_state(&self, server_id: &str) -> Result<Option<String>, HootError> {
        now(self.0.discovery_state(server_id))
    }

    /// See `UserStore::save_discovery_state`.
    pub fn save_discovery_state(&self, server_id: &str, state: &JsonObject, at: i64) -> Result<(), HootError> {
        now(self.0.save_discovery_state(server_id, state, at))
    }

    /// See `UserStore::save_authorization_state`.
    pub fn save_authorization_state(&self, server_id: &str, state: &str, at: i64) -> Result<(), HootError> {
        now(self.0.save_authorization_state(server_id, state, at))
    }

    /// See `UserStore::consume_authorization_state`.
    pub fn consume_authorization_state(&self, server_id: &str, state: &str, at: i64) -> Result<bool, HootError> {
        now(self.0.consume_authorization_state(server_id, state, at))
    }

    /// See `UserStore::invalidate_credentials`.
    pub fn invalidate_credentials(&self, server_id: &str, scope: CredentialScope) -> Result<u64, HootError> {
        now(self.0.invalidate_credentials(server_id, scope))
    }

    /// See `UserStore::server_config`.
    pub fn server_config(&self, server_id: &str) -> Result<Option<String>, HootError> {
        now(self.0.server_config(server_id))
    }

    /// See `UserStore::save_server_config`.
    pub fn save_server_config(&self, server_id: &str, config: &JsonObject, at: i64) -> Result<(), HootError> {
        now(self.0.save_server_config(server_id, config, at))
    }

    /// See `UserStore::delete_server_config`.
    pub fn delete_server_config(&self, server_id: &str) -> Result<u64, HootError> {
        now(self.0.delete_server_config(server_id))
    }

    /// See `UserStore::servers`.
    pub fn servers(&self) -> Result<Vec<String>, HootError> {
        now(self.0.servers())
    }

    /// See `UserStore::touch`.
    pub fn touch(&self, at: i64, interval: i64) -> Result<bool, HootError> {
        now(self.0.touch(at, interval))
    }

    /// See `UserStore::delete_all`.
    pub fn delete_all(&self, revoke_at: Option<i64>) -> Result<u64, HootError> {
        now(self.0.delete_all(revoke_at))
    }

    /// See `UserStore::create_transfer_code`.
    pub fn create_transfer_code(&self, ttl: i64, derived_from: i64, at: i64) -> Result<(String, i64), HootError> {
        now(self.0.create_transfer_code(ttl, derived_from, at))
    }

    /// See `UserStore::link_account`.
    pub fn link_account(&self, account_id: &str, at: i64) -> Result<(), HootError> {
        now(self.0.link_account(account_id, at))
    }

    /// See `UserStore::unlink_account`.
    pub fn unlink_account(&self, account_id: &str) -> Result<bool, HootError> {
        now(self.0.unlink_account(account_id))
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
