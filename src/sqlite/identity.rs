//! Moving an anonymous user between devices and identities: one-time transfer codes, merging two
//! users' data, legacy data made reachable again, and accounts linked to a user. Times are
//! seconds, passed in.

use std::path::Path;
use std::sync::Arc;

use once_cell::sync::OnceCell;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{check_id, run_at, Access, DbLocation, OAuthStore, SERVER_TABLES};
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

impl OAuthStore {
    /// A one-time code for moving this user to another device, valid `ttl` seconds from `now`;
    /// it replaces any code this user had. Only MACs are stored (`code_hash`, `code_row_mac`).
    /// `derived_from` (see `derived_from`) is when the credential it was made with was issued: a
    /// revocation after it ends the code. Returns the code and its expiry.
    pub fn create_transfer_code(&self, ttl: i64, derived_from: i64, now: i64) -> Result<(String, i64), HootError> {
        let code = new_code()?;
        let symbols =
            code_symbols(&code).ok_or_else(|| HootError::Internal("a new transfer code did not parse".into()))?;
        let secret = secret_for(self.location())?;
        let hash = code_hash(&secret, &symbols);
        let mac = code_row_mac(&secret, &symbols, self.user_id(), derived_from, now + ttl);
        self.run(Access::Write, |conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM hoot_transfer_codes WHERE user_id = ?1", [self.user_id()])?;
            tx.execute(
                "INSERT INTO hoot_transfer_codes (code_hash, user_id, created_at, expires_at, derived_from, mac) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![hash, self.user_id(), now, now + ttl, derived_from, mac],
            )?;
            tx.commit()
        })?;
        Ok((code, now + ttl))
    }

    /// Links `account_id` (any identity provider's, opaque) to this user. One account belongs to
    /// one user: an account linked to another user is refused (unlink it there first). A row no
    /// server made (its MAC does not verify) counts as no link, and is replaced.
    pub fn link_account(&self, account_id: &str, now: i64) -> Result<(), HootError> {
        check_id("accountId", account_id)?;
        let secret = secret_for(self.location())?;
        let mac = account_mac(&secret, account_id, self.user_id());
        let linked = self.run(Access::Write, |conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            let existing: Option<(String, Option<String>)> = tx
                .prepare_cached("SELECT user_id, mac FROM hoot_accounts WHERE account_id = ?1")?
                .query_row([account_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            match existing {
                Some((owner, stored)) if account_verifies(&secret, account_id, &owner, stored.as_deref()) => {
                    return Ok(owner == self.user_id());
                }
                _ => {}
            }
            tx.prepare_cached(
                "INSERT INTO hoot_accounts (account_id, user_id, linked_at, mac) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (account_id) DO UPDATE SET user_id = excluded.user_id, linked_at = excluded.linked_at, \
                 mac = excluded.mac",
            )?
            .execute(params![account_id, self.user_id(), now, mac])?;
            tx.commit()?;
            Ok(true)
        })?;
        match linked {
            true => Ok(()),
            false => Err(HootError::arg_value(
                "accountId",
                "is already linked to another user: unlink it from that user first",
            )),
        }
    }

    /// Unlinks `account_id` from this user; true if it was linked to them.
    pub fn unlink_account(&self, account_id: &str) -> Result<bool, HootError> {
        check_id("accountId", account_id)?;
        self.run(Access::Delete, |conn| {
            conn.prepare_cached("DELETE FROM hoot_accounts WHERE account_id = ?1 AND user_id = ?2")?
                .execute(params![account_id, self.user_id()])
                .map(|n| n > 0)
        })
    }
}

/// The user an account is linked to; a row whose MAC does not verify (planted by someone who can
/// write the database but has not the store secret) is no link.
pub fn user_id_for_account(location: DbLocation, account_id: &str, now: i64) -> Result<Option<String>, HootError> {
    check_id("accountId", account_id)?;
    let secret = secret_for(&location)?;
    let row: Option<(String, Option<String>)> = run_at(location, now, Access::Read, |conn| {
        conn.prepare_cached("SELECT user_id, mac FROM hoot_accounts WHERE account_id = ?1")?
            .query_row([account_id], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
    })?;
    Ok(row.filter(|(user, mac)| account_verifies(&secret, account_id, user, mac.as_deref())).map(|(user, _)| user))
}

enum Outcome {
    Redeemed(Redeemed),
    Refused,
    Throttled(i64),
    NeedsTarget,
}

/// Redeems a transfer code at `now`: single use (the lookup is the delete), refused when unknown,
/// expired, used, unverifiable (a row no server made) or ended by a revocation of the user's
/// tokens issued after what the code derives from (read in the same transaction, so a code made
/// on another process just before the revocation reached it is refused too). Failures are
/// throttled across processes: `MAX_FAILURES_PER_WINDOW` per `FAILURE_WINDOW_SECONDS` in all, and
/// per `source` (the client's address, stored as a MAC) `MAX_FAILURES_PER_SOURCE`, of which only
/// that many count in the global limit. A legacy user's code moves that user's data into `into`
/// (the redeeming browser's user), keeping `into`'s own state where both have a server.
pub fn redeem_transfer_code(
    location: DbLocation,
    code: &str,
    into: Option<&str>,
    source: Option<&str>,
    now: i64,
) -> Result<Redeemed, HootError> {
    if let Some(into) = into {
        // The browser that redeems: a UUID, so never the legacy user itself (whose data the move
        // would otherwise drop as its own conflicts).
        if !crate::token::is_valid_user_id(into) {
            return Err(HootError::invalid_user_id(into, "a UUID v4 (the redeeming browser's verified user)"));
        }
    }
    if let Some(source) = source {
        check_source(source)?;
    }
    let into = into.map(str::to_ascii_lowercase);
    let secret = secret_for(&location)?;
    let symbols = code_symbols(code);
    let hash = symbols.as_deref().map(|s| code_hash(&secret, s));
    let source = source.map(|s| source_mac(&secret, s));
    let db = super::db::get_or_open(location.clone(), now * 1000)?.0;
    let move_location = location.clone();
    let outcome = run_at(location, now, Access::Write, |conn| {
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        let window = now - now.rem_euclid(FAILURE_WINDOW_SECONDS);
        let failures: i64 = tx
            .prepare_cached("SELECT failures FROM hoot_transfer_failures WHERE window_start = ?1")?
            .query_row([window], |row| row.get(0))
            .optional()?
            .unwrap_or(0);
        let source_failures: Option<i64> = match &source {
            Some(source) => Some(
                tx.prepare_cached(
                    "SELECT failures FROM hoot_transfer_source_failures WHERE window_start = ?1 AND source_mac = ?2",
                )?
                .query_row(params![window, source], |row| row.get(0))
                .optional()?
                .unwrap_or(0),
            ),
            None => None,
        };
        if let Some(retry_after) = throttled(failures, source_failures, window, now) {
            return Ok(Outcome::Throttled(retry_after));
        }
        let found: Option<CodeRow> = match &hash {
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
        let verified = found.zip(symbols.as_deref()).and_then(|(row, symbols)| row.verified(&secret, symbols, now));
        let Some((user_id, derived_from)) = verified else {
            tx.execute("DELETE FROM hoot_transfer_failures WHERE window_start < ?1", [window])?;
            tx.execute("DELETE FROM hoot_transfer_source_failures WHERE window_start < ?1", [window])?;
            tx.execute(
                "INSERT INTO hoot_transfer_failures (window_start, failures) VALUES (?1, 1) \
                 ON CONFLICT (window_start) DO UPDATE SET failures = failures + 1",
                [window],
            )?;
            if let Some(source) = &source {
                tx.execute(
                    "INSERT INTO hoot_transfer_source_failures (window_start, source_mac, failures) VALUES (?1, ?2, 1) \
                     ON CONFLICT (window_start, source_mac) DO UPDATE SET failures = failures + 1",
                    params![window, source],
                )?;
            }
            tx.commit()?;
            return Ok(Outcome::Refused);
        };
        let revoked_before: Option<i64> = tx
            .prepare_cached("SELECT revoked_before FROM hoot_revocations WHERE user_id = ?1")?
            .query_row([&user_id], |row| row.get(0))
            .optional()?;
        if revoked_before.is_some_and(|before| derived_from < before) {
            // Ended by a revocation: used up (committed), and not a guess, so not counted.
            tx.commit()?;
            return Ok(Outcome::Refused);
        }
        let moved = match (is_legacy_user(&user_id), &into) {
            (false, _) => None,
            (true, None) => return Ok(Outcome::NeedsTarget), // rolled back: the code stays usable
            (true, Some(into)) => Some(move_in(&tx, &move_location, &user_id, into, OnConflict::KeepTarget, &db)?),
        };
        tx.commit()?;
        let user_id = match moved {
            Some(_) => into.clone().unwrap_or(user_id),
            None => user_id,
        };
        Ok(Outcome::Redeemed(Redeemed { user_id, moved }))
    })?;
    match outcome {
        Outcome::Redeemed(redeemed) => Ok(redeemed),
        Outcome::Refused => Err(HootError::TransferCode),
        Outcome::Throttled(retry_after) => Err(HootError::TransferThrottled { retry_after }),
        Outcome::NeedsTarget => Err(HootError::arg_value(
            "opts.intoUserId",
            "is needed for a legacy user's code: the data moves into the redeeming browser's user",
        )),
    }
}

/// Moves every row of `from` to `to` in one transaction and empties `from` (its pending transfer
/// code is dropped; activity merges: earliest first, latest last seen). Accounts move too.
pub fn move_user_data(
    location: DbLocation,
    from: &str,
    to: &str,
    on_conflict: OnConflict,
    now: i64,
) -> Result<MoveReport, HootError> {
    check_user_id(from)?;
    check_user_id(to)?;
    let (from, to) = (from.to_ascii_lowercase(), to.to_ascii_lowercase());
    if from == to {
        return Err(HootError::arg_value("toUserId", "must differ from fromUserId"));
    }
    let db = super::db::get_or_open(location.clone(), now * 1000)?.0;
    let move_location = location.clone();
    let report = run_at(location, now, Access::Write, |conn| {
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        let report = move_in(&tx, &move_location, &from, &to, on_conflict, &db)?;
        if on_conflict == OnConflict::Fail && report.conflicts > 0 {
            return Ok(report); // dropped: rolled back
        }
        tx.commit()?;
        Ok(report)
    })?;
    if on_conflict == OnConflict::Fail && report.conflicts > 0 {
        return Err(HootError::arg_value(
            "opts.onConflict",
            format!(
                "is 'fail', and both users have state for {} server(s); nothing was moved. \
                 Pass 'keep-target' or 'take-source'",
                report.conflicts
            ),
        ));
    }
    Ok(report)
}

fn move_in(
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
    let servers_of = |who: &str| {
        SERVER_TABLES
            .iter()
            .map(|t| format!("SELECT server_id FROM {t} WHERE user_id = {who}"))
            .collect::<Vec<_>>()
            .join(" UNION ")
    };
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

/// The legacy user a migration made, if it still has data.
pub fn legacy_user(location: DbLocation, now: i64) -> Result<Option<String>, HootError> {
    run_at(location, now, Access::Read, |conn| {
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
    })
}

/// A transfer code for the legacy user, if the database holds legacy data: (user, code, expiry).
pub fn legacy_transfer_code(
    location: DbLocation,
    ttl: i64,
    now: i64,
) -> Result<Option<(String, String, i64)>, HootError> {
    let Some(legacy) = legacy_user(location.clone(), now)? else { return Ok(None) };
    let (code, expires_at) = OAuthStore::open(&legacy, location, now * 1000)?.create_transfer_code(ttl, now, now)?;
    Ok(Some((legacy, code, expires_at)))
}
