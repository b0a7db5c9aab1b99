//! Moving an anonymous user between devices and identities: one-time transfer codes, merging two
//! users' data, legacy data made reachable again, and accounts linked to a user. Times are
//! seconds, passed in.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{check_id, is_store_user_id, run_at, Access, DbLocation, OAuthStore, SERVER_TABLES, USER_ID_FORMS};
use crate::error::HootError;

/// The symbols of a transfer code: digits and capitals without 0, O, 1, I, L and U, so nothing
/// read aloud or typed from a screen can be mistaken for another.
pub const CODE_ALPHABET: &[u8; 30] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Symbols in a code (shown as three groups of four): 12 × log2(30) ≈ 58.9 bits.
pub const CODE_LENGTH: usize = 12;
/// A code's default and longest life.
pub const CODE_TTL_SECONDS: i64 = 600;
const MAX_CODE_TTL_SECONDS: f64 = 3600.0;
const MIN_CODE_TTL_SECONDS: f64 = 30.0;
/// The throttle: at most this many failed redemptions per window, across every process sharing
/// the database; past it every redemption is refused until the window ends.
pub const MAX_FAILURES_PER_WINDOW: i64 = 100;
/// The throttle's window, in seconds.
pub const FAILURE_WINDOW_SECONDS: i64 = 600;

/// `ttlSeconds` of a transfer code: whole seconds from 30 to 3,600, 600 when absent.
pub fn code_ttl(ttl_seconds: Option<f64>) -> Result<i64, HootError> {
    match ttl_seconds {
        None => Ok(CODE_TTL_SECONDS),
        Some(t) if t.fract() == 0.0 && (MIN_CODE_TTL_SECONDS..=MAX_CODE_TTL_SECONDS).contains(&t) => Ok(t as i64),
        Some(t) => Err(HootError::out_of_range(
            "opts.ttlSeconds",
            format!("must be whole seconds from {MIN_CODE_TTL_SECONDS} to {MAX_CODE_TTL_SECONDS}. Received {t}"),
        )),
    }
}

/// A new random code, grouped for reading: `7KQ4-M9XR-2HBT`.
pub(crate) fn new_code() -> Result<String, HootError> {
    let rng = SystemRandom::new();
    let mut symbols = Vec::with_capacity(CODE_LENGTH);
    let mut bytes = [0u8; 32];
    while symbols.len() < CODE_LENGTH {
        rng.fill(&mut bytes).map_err(|_| HootError::Internal("the system random source failed".into()))?;
        // 240 = 8 × 30: bytes at or above it are dropped, so every symbol is equally likely.
        symbols.extend(bytes.iter().filter(|&&b| b < 240).map(|&b| CODE_ALPHABET[usize::from(b % 30)]));
    }
    symbols.truncate(CODE_LENGTH);
    let groups: Vec<String> = symbols.chunks(4).map(|g| String::from_utf8_lossy(g).into_owned()).collect();
    Ok(groups.join("-"))
}

/// The code as stored: the SHA-256 of its symbols (case, spaces and dashes ignored), or `None`
/// for anything that cannot be a code.
pub(crate) fn code_hash(code: &str) -> Option<String> {
    let symbols: String =
        code.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_uppercase()).collect();
    if symbols.len() != CODE_LENGTH || !symbols.bytes().all(|b| CODE_ALPHABET.contains(&b)) {
        return None;
    }
    Some(digest(&SHA256, symbols.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether a user id is the one a migration gave a single-user install's data.
pub fn is_legacy_user(user_id: &str) -> bool {
    user_id.strip_prefix("legacy-user-").is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

impl OAuthStore {
    /// A one-time code for moving this user to another device, valid `ttl` seconds from `now`;
    /// it replaces any code this user had. Only its hash is stored. Returns the code and its expiry.
    pub fn create_transfer_code(&self, ttl: i64, now: i64) -> Result<(String, i64), HootError> {
        let code = new_code()?;
        let hash = code_hash(&code).ok_or_else(|| HootError::Internal("a new transfer code did not parse".into()))?;
        self.run(Access::Write, |conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM hoot_transfer_codes WHERE user_id = ?1", [self.user_id()])?;
            tx.execute(
                "INSERT INTO hoot_transfer_codes (code_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![hash, self.user_id(), now, now + ttl],
            )?;
            tx.commit()
        })?;
        Ok((code, now + ttl))
    }

    /// Links `account_id` (any identity provider's, opaque) to this user. One account belongs to
    /// one user: an account linked to another user is refused (unlink it there first).
    pub fn link_account(&self, account_id: &str, now: i64) -> Result<(), HootError> {
        check_id("accountId", account_id)?;
        let owner: Option<String> = self.run(Access::Write, |conn| {
            conn.prepare_cached(
                "INSERT INTO hoot_accounts (account_id, user_id, linked_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (account_id) DO UPDATE SET linked_at = linked_at WHERE user_id = excluded.user_id \
                 RETURNING user_id",
            )?
            .query_row(params![account_id, self.user_id(), now], |row| row.get(0))
            .optional()
        })?;
        match owner {
            Some(_) => Ok(()),
            None => Err(HootError::arg_value(
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

/// The user an account is linked to.
pub fn user_id_for_account(location: DbLocation, account_id: &str, now: i64) -> Result<Option<String>, HootError> {
    check_id("accountId", account_id)?;
    run_at(location, now, Access::Read, |conn| {
        conn.prepare_cached("SELECT user_id FROM hoot_accounts WHERE account_id = ?1")?
            .query_row([account_id], |row| row.get(0))
            .optional()
    })
}

/// What a redeemed code gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    /// The user the new device now is: the code's user, or for a legacy code `into`.
    pub user_id: String,
    /// For a legacy code: what moved into `into`.
    pub moved: Option<MoveReport>,
}

enum Outcome {
    Redeemed(Redeemed),
    Refused,
    Throttled(i64),
    NeedsTarget,
}

/// Redeems a transfer code at `now`: single use (the lookup is the delete), refused when unknown,
/// expired or used, and throttled across processes (`MAX_FAILURES_PER_WINDOW` failures per
/// `FAILURE_WINDOW_SECONDS`). A legacy user's code moves that user's data into `into` (the
/// redeeming browser's user), keeping `into`'s own state where both have a server.
pub fn redeem_transfer_code(
    location: DbLocation,
    code: &str,
    into: Option<&str>,
    now: i64,
) -> Result<Redeemed, HootError> {
    if let Some(into) = into {
        // The browser that redeems: a UUID, so never the legacy user itself (whose data the move
        // would otherwise drop as its own conflicts).
        if !crate::token::is_valid_user_id(into) {
            return Err(HootError::invalid_user_id(into, "a UUID v4 (the redeeming browser's verified user)"));
        }
    }
    let into = into.map(str::to_ascii_lowercase);
    let hash = code_hash(code);
    let ring = super::db::get_or_open(location.clone(), now * 1000)?.0.sealer();
    let outcome = run_at(location, now, Access::Write, |conn| {
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        let window = now - now.rem_euclid(FAILURE_WINDOW_SECONDS);
        let failures: i64 = tx
            .prepare_cached("SELECT failures FROM hoot_transfer_failures WHERE window_start = ?1")?
            .query_row([window], |row| row.get(0))
            .optional()?
            .unwrap_or(0);
        if failures >= MAX_FAILURES_PER_WINDOW {
            return Ok(Outcome::Throttled(window + FAILURE_WINDOW_SECONDS - now));
        }
        let found: Option<(String, i64)> = match &hash {
            Some(hash) => tx
                .prepare_cached("DELETE FROM hoot_transfer_codes WHERE code_hash = ?1 RETURNING user_id, expires_at")?
                .query_row([hash], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?,
            None => None,
        };
        let Some((user_id, _)) = found.filter(|(_, expires_at)| *expires_at > now) else {
            tx.execute("DELETE FROM hoot_transfer_failures WHERE window_start < ?1", [window])?;
            tx.execute(
                "INSERT INTO hoot_transfer_failures (window_start, failures) VALUES (?1, 1) \
                 ON CONFLICT (window_start) DO UPDATE SET failures = failures + 1",
                [window],
            )?;
            tx.commit()?;
            return Ok(Outcome::Refused);
        };
        let moved = match (is_legacy_user(&user_id), &into) {
            (false, _) => None,
            (true, None) => return Ok(Outcome::NeedsTarget), // rolled back: the code stays usable
            (true, Some(into)) => Some(move_in(&tx, &user_id, into, OnConflict::KeepTarget, ring.as_deref())?),
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

fn check_user_id(id: &str) -> Result<(), HootError> {
    match is_store_user_id(id) {
        true => Ok(()),
        false => Err(HootError::invalid_user_id(id, USER_ID_FORMS)),
    }
}

/// What `moveUserData` does where both users have state for one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Refuse the whole move, changing nothing.
    Fail,
    /// Keep the target's rows and drop the source's.
    KeepTarget,
    /// Replace the target's rows with the source's.
    TakeSource,
}

impl OnConflict {
    /// `'fail'`, `'keep-target'` or `'take-source'`.
    pub fn parse(value: &str) -> Result<Self, HootError> {
        match value {
            "fail" => Ok(OnConflict::Fail),
            "keep-target" => Ok(OnConflict::KeepTarget),
            "take-source" => Ok(OnConflict::TakeSource),
            _ => Err(HootError::arg_value("opts.onConflict", "must be 'fail', 'keep-target' or 'take-source'")),
        }
    }
}

/// What `moveUserData` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MoveReport {
    /// Rows that now belong to the target.
    pub moved: u64,
    /// Rows of the target replaced by the source's (`take-source`).
    pub replaced: u64,
    /// Rows of the source dropped for the target's (`keep-target`).
    pub dropped: u64,
    /// Servers both users had state for (their rows move, or stay, together).
    pub conflicts: u64,
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
    let ring = super::db::get_or_open(location.clone(), now * 1000)?.0.sealer();
    let report = run_at(location, now, Access::Write, |conn| {
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        let report = move_in(&tx, &from, &to, on_conflict, ring.as_deref())?;
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
    from: &str,
    to: &str,
    on_conflict: OnConflict,
    ring: Option<&crate::sealing::KeyRing>,
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
    super::encryption::reseal_for_move(tx, ring, from, to).map_err(super::carry)?;
    for table in SERVER_TABLES {
        report.moved += tx
            .execute(&format!("UPDATE OR IGNORE {table} SET user_id = ?2 WHERE user_id = ?1"), params![from, to])?
            as u64;
    }
    report.moved += tx.execute("UPDATE hoot_accounts SET user_id = ?2 WHERE user_id = ?1", params![from, to])? as u64;
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
    let (code, expires_at) = OAuthStore::open(&legacy, location, now * 1000)?.create_transfer_code(ttl, now)?;
    Ok(Some((legacy, code, expires_at)))
}
