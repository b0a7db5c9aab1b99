//! Transfer codes and linked accounts on PostgreSQL, as `store::identity` does them on SQLite: a
//! code is stored only as MACs under the store secret (`hoot_store_secret`), redeemed once (the
//! lookup is the delete), refused once a revocation ends what it derives from, and failed
//! redemptions are throttled across every replica per window, in all and per source. A legacy
//! user's code (`moves::legacy_transfer_code`) moves that user's data into the redeeming
//! browser's user, in the redemption's transaction.

use std::sync::Arc;

use super::store::{Call, PgStore};
use super::{PgDatabase, Prepared};
use crate::error::HootError;
use crate::secret::StoreSecret;
use crate::store::check_id;
use crate::store::identity::{
    account_mac, account_verifies, check_source, code_hash, code_row_mac, code_symbols, is_legacy_user, new_code,
    source_mac, throttled, CodeRow, OnConflict, Redeemed, FAILURE_WINDOW_SECONDS,
};

/// The advisory lock redemptions take (the schema's, plus two).
const REDEEM_LOCK: i64 = super::schema::SCHEMA_LOCK + 2;

/// The database's store secret (made again if its row is gone: whatever was MACed under the old
/// one then no longer verifies).
pub(crate) async fn store_secret(conn: &impl Prepared, db: &PgDatabase) -> Result<StoreSecret, HootError> {
    let err = |e: tokio_postgres::Error| db.error("read the store secret of", &e);
    let read = || async { conn.row_opt("SELECT secret FROM hoot_store_secret WHERE id = 1", &[]).await.map_err(err) };
    let row = match read().await? {
        Some(row) => row,
        None => {
            conn.exec(
                "INSERT INTO hoot_store_secret (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                &[&StoreSecret::new_text()?],
            )
            .await
            .map_err(err)?;
            read().await?.ok_or_else(|| HootError::Internal("the store secret was not kept".into()))?
        }
    };
    StoreSecret::parse(&row.get::<_, String>(0), &format!("hoot_store_secret of {}", db.describe()))
}

/// Makes `user_id`'s one transfer code in `tx` (replacing any it had), valid `ttl` seconds from
/// `now`: only MACs of it are stored. Returns the code and its expiry.
pub(crate) async fn insert_transfer_code(
    tx: &deadpool_postgres::Transaction<'_>,
    db: &PgDatabase,
    user_id: &str,
    ttl: i64,
    derived_from: i64,
    now: i64,
) -> Result<(String, i64), HootError> {
    let code = new_code()?;
    let symbols = code_symbols(&code).ok_or_else(|| HootError::Internal("a new transfer code did not parse".into()))?;
    let err = |e: tokio_postgres::Error| db.error("write to", &e);
    let secret = store_secret(tx, db).await?;
    let hash = code_hash(&secret, &symbols);
    let mac = code_row_mac(&secret, &symbols, user_id, derived_from, now + ttl);
    tx.exec("DELETE FROM hoot_transfer_codes WHERE user_id = $1", &[&user_id]).await.map_err(err)?;
    tx.exec(
        "INSERT INTO hoot_transfer_codes (code_hash, user_id, created_at, expires_at, derived_from, mac) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&hash, &user_id, &now, &(now + ttl), &derived_from, &mac],
    )
    .await
    .map_err(err)?;
    Ok((code, now + ttl))
}

impl PgStore {
    /// A one-time code that moves this user to another device, valid `ttl` seconds from `now`; it
    /// replaces any code this user had. `derived_from`: as SQLite's. Resolves to the code and its
    /// expiry.
    pub fn create_transfer_code(
        &self,
        ttl: i64,
        derived_from: i64,
        now: i64,
    ) -> Result<Call<(String, i64)>, HootError> {
        let (db, user_id) = (Arc::clone(self.database()), self.user_id().to_string());
        Ok(Box::pin(async move {
            let mut conn = db.conn().await?;
            let err = |e: tokio_postgres::Error| db.error("write to", &e);
            let tx = conn.transaction().await.map_err(err)?;
            let made = insert_transfer_code(&tx, &db, &user_id, ttl, derived_from, now).await?;
            tx.commit().await.map_err(err)?;
            Ok(made)
        }))
    }

    /// Links `account_id` to this user; an account linked to another user is refused. A row no
    /// server made (its MAC does not verify) counts as no link, and is replaced.
    pub fn link_account(&self, account_id: &str, now: i64) -> Result<Call<()>, HootError> {
        check_id("accountId", account_id)?;
        let (db, user_id, account_id) =
            (Arc::clone(self.database()), self.user_id().to_string(), account_id.to_string());
        Ok(Box::pin(async move {
            let mut conn = db.conn().await?;
            let err = |e: tokio_postgres::Error| db.error("write to", &e);
            let tx = conn.transaction().await.map_err(err)?;
            let secret = store_secret(&tx, &db).await?;
            let existing = tx
                .row_opt("SELECT user_id, mac FROM hoot_accounts WHERE account_id = $1 FOR UPDATE", &[&account_id])
                .await
                .map_err(err)?
                .map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(1)));
            let taken = || {
                Err(HootError::arg_value(
                    "accountId",
                    "is already linked to another user: unlink it from that user first",
                ))
            };
            let mac = account_mac(&secret, &account_id, &user_id);
            match existing {
                Some((owner, stored)) if account_verifies(&secret, &account_id, &owner, stored.as_deref()) => {
                    return if owner == user_id { Ok(()) } else { taken() };
                }
                // A row no server made, locked above: replaced.
                Some(_) => {
                    tx.exec(
                        "UPDATE hoot_accounts SET user_id = $2, linked_at = $3, mac = $4 WHERE account_id = $1",
                        &[&account_id, &user_id, &now, &mac],
                    )
                    .await
                    .map_err(err)?;
                }
                None => {
                    let inserted = tx
                        .exec(
                            "INSERT INTO hoot_accounts (account_id, user_id, linked_at, mac) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (account_id) DO NOTHING",
                            &[&account_id, &user_id, &now, &mac],
                        )
                        .await
                        .map_err(err)?;
                    if inserted == 0 {
                        // Another replica linked it meanwhile: theirs stands, fine if it is this user's.
                        let row = tx
                            .row_opt("SELECT user_id, mac FROM hoot_accounts WHERE account_id = $1", &[&account_id])
                            .await
                            .map_err(err)?;
                        let ours = row.is_some_and(|r| {
                            let (owner, stored) = (r.get::<_, String>(0), r.get::<_, Option<String>>(1));
                            owner == user_id && account_verifies(&secret, &account_id, &owner, stored.as_deref())
                        });
                        return if ours { Ok(()) } else { taken() };
                    }
                }
            }
            tx.commit().await.map_err(err)?;
            Ok(())
        }))
    }

    /// Unlinks `account_id` from this user; resolves to whether it was linked to them.
    pub fn unlink_account(&self, account_id: &str) -> Result<Call<bool>, HootError> {
        check_id("accountId", account_id)?;
        let (db, user_id, account_id) =
            (Arc::clone(self.database()), self.user_id().to_string(), account_id.to_string());
        Ok(Box::pin(async move {
            let conn = db.conn().await?;
            let n = conn
                .exec("DELETE FROM hoot_accounts WHERE account_id = $1 AND user_id = $2", &[&account_id, &user_id])
                .await
                .map_err(|e| db.error("delete from", &e))?;
            Ok(n > 0)
        }))
    }
}

/// The user an account is linked to; a row whose MAC does not verify is no link.
pub fn user_id_for_account(db: Arc<PgDatabase>, account_id: &str) -> Result<Call<Option<String>>, HootError> {
    check_id("accountId", account_id)?;
    let account_id = account_id.to_string();
    Ok(Box::pin(async move {
        let conn = db.conn().await?;
        let secret = store_secret(&*conn, &db).await?;
        let row = conn
            .row_opt("SELECT user_id, mac FROM hoot_accounts WHERE account_id = $1", &[&account_id])
            .await
            .map_err(|e| db.error("read from", &e))?;
        Ok(row
            .map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(1)))
            .filter(|(user, mac)| account_verifies(&secret, &account_id, user, mac.as_deref()))
            .map(|(user, _)| user))
    }))
}

/// Redeems a transfer code at `now`: resolves to the code's user. Unknown, expired, used,
/// unverifiable and revoked codes fail alike (`ERR_HOOT_TRANSFER_CODE`); past the limits (in all,
/// or for `source`) redemptions are refused (`ERR_HOOT_TRANSFER_THROTTLED`) on every replica, as
/// SQLite's `redeem_transfer_code`. A legacy user's code moves that user's data into `into` (the
/// redeeming browser's user, which it then resolves to), keeping `into`'s own state where both
/// have a server, in the same transaction.
pub fn redeem_transfer_code(
    db: Arc<PgDatabase>,
    code: &str,
    into: Option<&str>,
    source: Option<&str>,
    now: i64,
) -> Result<Call<Redeemed>, HootError> {
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
    let symbols = code_symbols(code);
    let source = source.map(str::to_string);
    Ok(Box::pin(async move {
        let mut conn = db.conn().await?;
        let err = |e: tokio_postgres::Error| db.error("redeem a transfer code in", &e);
        let tx = conn.transaction().await.map_err(err)?;
        // One redemption at a time across the replicas, as SQLite's IMMEDIATE transaction: the
        // failure counts read below are then the counts, and the throttle cannot be raced.
        tx.exec("SELECT pg_advisory_xact_lock($1)", &[&REDEEM_LOCK]).await.map_err(err)?;
        let secret = store_secret(&tx, &db).await?;
        let source = source.map(|s| source_mac(&secret, &s));
        let window = now - now.rem_euclid(FAILURE_WINDOW_SECONDS);
        let failures: i64 = tx
            .row_opt("SELECT failures FROM hoot_transfer_failures WHERE window_start = $1", &[&window])
            .await
            .map_err(err)?
            .map_or(0, |r| r.get(0));
        let source_failures = match &source {
            Some(source) => Some(
                tx.row_opt(
                    "SELECT failures FROM hoot_transfer_source_failures WHERE window_start = $1 AND source_mac = $2",
                    &[&window, source],
                )
                .await
                .map_err(err)?
                .map_or(0, |r| r.get::<_, i64>(0)),
            ),
            None => None,
        };
        if let Some(retry_after) = throttled(failures, source_failures, window, now) {
            return Err(HootError::TransferThrottled { retry_after });
        }
        let found = match &symbols {
            Some(symbols) => tx
                .row_opt(
                    "DELETE FROM hoot_transfer_codes WHERE code_hash = $1 \
                     RETURNING user_id, expires_at, derived_from, mac",
                    &[&code_hash(&secret, symbols)],
                )
                .await
                .map_err(err)?
                .map(|r| CodeRow { user_id: r.get(0), expires_at: r.get(1), derived_from: r.get(2), mac: r.get(3) }),
            None => None,
        };
        let verified = found.zip(symbols.as_deref()).and_then(|(row, symbols)| row.verified(&secret, symbols, now));
        let Some((user_id, derived_from)) = verified else {
            tx.exec("DELETE FROM hoot_transfer_failures WHERE window_start < $1", &[&window]).await.map_err(err)?;
            tx.exec("DELETE FROM hoot_transfer_source_failures WHERE window_start < $1", &[&window])
                .await
                .map_err(err)?;
            tx.exec(
                "INSERT INTO hoot_transfer_failures (window_start, failures) VALUES ($1, 1) \
                 ON CONFLICT (window_start) DO UPDATE SET failures = hoot_transfer_failures.failures + 1",
                &[&window],
            )
            .await
            .map_err(err)?;
            if let Some(source) = &source {
                tx.exec(
                    "INSERT INTO hoot_transfer_source_failures (window_start, source_mac, failures) \
                     VALUES ($1, $2, 1) ON CONFLICT (window_start, source_mac) \
                     DO UPDATE SET failures = hoot_transfer_source_failures.failures + 1",
                    &[&window, source],
                )
                .await
                .map_err(err)?;
            }
            tx.commit().await.map_err(err)?;
            return Err(HootError::TransferCode);
        };
        // Read in this transaction, from the database: a revocation another replica committed
        // ends the code here even before this replica's poll learns of it.
        let revoked_before: Option<i64> = tx
            .row_opt("SELECT revoked_before FROM hoot_revocations WHERE user_id = $1", &[&user_id])
            .await
            .map_err(err)?
            .map(|r| r.get(0));
        if revoked_before.is_some_and(|before| derived_from < before) {
            // Used up (committed), and not a guess, so not counted.
            tx.commit().await.map_err(err)?;
            return Err(HootError::TransferCode);
        }
        let moved = match (is_legacy_user(&user_id), &into) {
            (false, _) => None,
            // Rolled back: the code stays usable.
            (true, None) => {
                return Err(HootError::arg_value(
                    "opts.intoUserId",
                    "is needed for a legacy user's code: the data moves into the redeeming browser's user",
                ))
            }
            (true, Some(into)) => Some(super::moves::move_in(&tx, &db, &user_id, into, OnConflict::KeepTarget).await?),
        };
        tx.commit().await.map_err(err)?;
        let user_id = match (&moved, into) {
            (Some(_), Some(into)) => into,
            _ => user_id,
        };
        Ok(Redeemed { user_id, moved })
    }))
}
