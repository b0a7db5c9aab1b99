//! Moving an anonymous user between devices and identities: one-time transfer codes, merging two
//! users' data, legacy data made reachable again, and accounts linked to a user. Times are
//! seconds, passed in.

use std::path::Path;
use std::sync::Arc;

use once_cell::sync::OnceCell;
use rusqlite::{params, Connection};

pub use super::backend::{
    legacy_transfer_code, legacy_user, move_user_data, redeem_transfer_code, user_id_for_account,
};
use super::{DbLocation, SERVER_TABLES};
use crate::error::HootError;
use crate::secret::StoreSecret;
pub use crate::store::identity::*;

/// The store secret for SQLite databases at `location`: the process's (`crate::secret`), or for
/// the in-memory database, which lives and dies with this process, a random one. Tests use one
/// random secret throughout, so they never touch the home directory.
pub(crate) fn secret_for(location: &DbLocation) -> Result<Arc<StoreSecret>, HootError> {
    static RANDOM: OnceCell<Arc<StoreSecret>> = OnceCell::new();
    let random = || RANDOM.get_or_try_init(|| StoreSecret::random().map(Arc::new)).cloned();
    if cfg!(test) {
        return random();
    }
    match location {
        DbLocation::Memory => random(),
        _ => crate::secret::process_secret(&crate::env::Environment::process()),
    }
}

/// Whose account links a migration that adds their MAC column (schema 1 to 2) adopts.
#[derive(Debug, Clone, Copy)]
pub enum AdoptLinks<'a> {
    /// A database file a store opens: under this process's secret (made when missing), once per
    /// file (`crate::secret::adoption_ledger`).
    Opened(&'a Path),
    /// A file a copy reads (migrated in memory): under this process's existing secret only.
    Copied(&'a Path),
    /// None (an in-memory database has no links from before).
    Never,
}

/// MACs the links of schema 1 (no `mac`) under the secret `adopt` names, unless the ledger says
/// this file was adopted before (then they stay unverified: absent). Returns the links adopted.
pub(crate) fn adopt_links(conn: &Connection, adopt: AdoptLinks) -> Result<u64, HootError> {
    let fail = |e: rusqlite::Error| HootError::Db(format!("Cannot adopt the account links: {e}"));
    let rows: Vec<(String, String)> = conn
        .prepare(&format!("SELECT account_id, user_id FROM {} WHERE mac IS NULL", super::schema::ACCOUNTS_TABLE))
        .and_then(|mut stmt| stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect())
        .map_err(fail)?;
    let (path, create) = match adopt {
        _ if rows.is_empty() => return Ok(0),
        AdoptLinks::Never => return Ok(0),
        AdoptLinks::Opened(path) => (path, true),
        AdoptLinks::Copied(path) => (path, false),
    };
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let env = crate::env::Environment::process();
    let ledger = if cfg!(test) { None } else { crate::secret::adoption_ledger(&env) };
    if let Some(ledger) = &ledger {
        if crate::secret::adopted_before(ledger, &canonical)? {
            return Ok(0);
        }
    }
    let secret = match (cfg!(test), create) {
        (true, _) => secret_for(&DbLocation::Memory)?,
        (false, true) => crate::secret::process_secret(&env)?,
        (false, false) => crate::secret::existing_process_secret(&env)?.ok_or_else(|| no_secret_to_copy(path))?,
    };
    let mut stmt = conn
        .prepare("UPDATE hoot_accounts SET mac = ?3 WHERE account_id = ?1 AND user_id = ?2 AND mac IS NULL")
        .map_err(fail)?;
    for (account_id, user_id) in &rows {
        stmt.execute(params![account_id, user_id, account_mac(&secret, account_id, user_id)]).map_err(fail)?;
    }
    // Recorded before the migration commits: a failed commit loses these links (linked again at
    // the next sign-in) rather than leaving a second adoption open.
    if let (Some(ledger), true) = (&ledger, create) {
        crate::secret::record_adopted(ledger, &canonical)?;
    }
    Ok(rows.len() as u64)
}

/// A copy of a file with account links run where there is no store secret: it would make one,
/// under which none of them verifies.
pub(crate) fn no_secret_to_copy(path: &Path) -> HootError {
    HootError::Keys(format!(
        "{} has account links, made under the store secret of the server that wrote it, and this process has none (no {} and no ~/.hoot/keys/store-secret): run the copy with the server's {} or HOME",
        path.display(),
        crate::secret::HOOT_STORE_SECRET,
        crate::secret::HOOT_STORE_SECRET,
    ))
}

/// Moves `from`'s rows to `to` inside `tx` (see `store::ops::move_user_data`).
pub(super) fn move_in(
    tx: &Connection,
    location: &DbLocation,
    from: &str,
    to: &str,
    on_conflict: OnConflict,
    db: &super::db::Database,
) -> rusqlite::Result<MoveReport> {
    let mut report = MoveReport::default();
    // A server is in conflict when both users have any state for it: its rows stay together (a
    // client registration and the tokens issued to it), whole from one user or the other.
    let servers_of = crate::store::servers_of_sql;
    tx.execute_batch("DROP TABLE IF EXISTS temp.hoot_move; CREATE TEMP TABLE hoot_move (server_id TEXT PRIMARY KEY)")?;
    report.conflicts = tx.execute(
        &format!(
            "INSERT INTO temp.hoot_move SELECT server_id FROM ({}) INTERSECT SELECT server_id FROM ({})",
            servers_of("?1"),
            servers_of("?2")
        ),
        params![from, to],
    )? as u64;
    for table in SERVER_TABLES {
        let in_conflict = "server_id IN (SELECT server_id FROM temp.hoot_move)";
        match on_conflict {
            OnConflict::Fail => {}
            OnConflict::TakeSource => {
                report.replaced +=
                    tx.execute(&format!("DELETE FROM {table} WHERE user_id = ?1 AND {in_conflict}"), [to])? as u64;
            }
            OnConflict::KeepTarget => {
                report.dropped +=
                    tx.execute(&format!("DELETE FROM {table} WHERE user_id = ?1 AND {in_conflict}"), [from])? as u64;
            }
        }
    }
    tx.execute_batch("DROP TABLE temp.hoot_move")?;
    // Sealed values are bound to their user: sealed again for `to` before they become `to`'s.
    super::encryption::reseal_for_move(tx, db, from, to).map_err(super::carry)?;
    for table in SERVER_TABLES {
        report.moved += tx
            .execute(&format!("UPDATE OR IGNORE {table} SET user_id = ?2 WHERE user_id = ?1"), params![from, to])?
            as u64;
    }
    // Links move with a MAC for their new user; a row no server made does not move, it goes.
    let links: Vec<(String, Option<String>)> = tx
        .prepare("SELECT account_id, mac FROM hoot_accounts WHERE user_id = ?1")?
        .query_map([from], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if !links.is_empty() {
        let secret = secret_for(location).map_err(super::carry)?;
        for (account_id, mac) in links {
            if account_verifies(&secret, &account_id, from, mac.as_deref()) {
                report.moved += tx.execute(
                    "UPDATE hoot_accounts SET user_id = ?2, mac = ?3 WHERE account_id = ?1",
                    params![account_id, to, account_mac(&secret, &account_id, to)],
                )? as u64;
            } else {
                tx.execute("DELETE FROM hoot_accounts WHERE account_id = ?1", [&account_id])?;
            }
        }
    }
    tx.execute("DELETE FROM hoot_transfer_codes WHERE user_id = ?1", [from])?;
    // Activity: the target has been known since the earlier of the two, and seen at the later.
    tx.execute(
        "INSERT INTO hoot_users (user_id, first_seen, last_seen) \
         SELECT ?2, first_seen, last_seen FROM hoot_users WHERE user_id = ?1 \
         ON CONFLICT (user_id) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen), \
         last_seen = max(last_seen, excluded.last_seen)",
        params![from, to],
    )?;
    tx.execute("DELETE FROM hoot_users WHERE user_id = ?1", [from])?;
    Ok(report)
}
