//! Transfer codes and linked accounts on PostgreSQL, as `store::identity` does them on SQLite: a
//! code is stored only as its hash, redeemed once (the lookup is the delete), and failed
//! redemptions are throttled across every replica by one counter per window. A legacy user's code
//! (`adopt-legacy`) is SQLite's alone: adopt before copying a file to PostgreSQL.

use std::sync::Arc;

use super::store::{Call, PgStore};
use super::{PgDatabase, Prepared};
use crate::error::HootError;
use crate::store::check_id;
use crate::store::identity::{code_hash, is_legacy_user, new_code, FAILURE_WINDOW_SECONDS, MAX_FAILURES_PER_WINDOW};

/// The advisory lock redemptions take (the schema's, plus two).
const REDEEM_LOCK: i64 = super::schema::SCHEMA_LOCK + 2;

impl PgStore {
    /// A one-time code that moves this user to another device, valid `ttl` seconds from `now`; it
    /// replaces any code this user had. Resolves to the code and its expiry.
    pub fn create_transfer_code(&self, ttl: i64, now: i64) -> Result<Call<(String, i64)>, HootError> {
        let code = new_code()?;
        let hash = code_hash(&code).ok_or_else(|| HootError::Internal("a new transfer code did not parse".into()))?;
        let (db, user_id) = (Arc::clone(self.database()), self.user_id().to_string());
        Ok(Box::pin(async move {
            let mut conn = db.conn().await?;
            let err = |e: tokio_postgres::Error| db.error("write to", &e);
            let tx = conn.transaction().await.map_err(err)?;
            tx.exec("DELETE FROM hoot_transfer_codes WHERE user_id = $1", &[&user_id]).await.map_err(err)?;
            tx.exec(
                "INSERT INTO hoot_transfer_codes (code_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                &[&hash, &user_id, &now, &(now + ttl)],
            )
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)?;
            Ok((code, now + ttl))
        }))
    }

    /// Links `account_id` to this user; an account linked to another user is refused.
    pub fn link_account(&self, account_id: &str, now: i64) -> Result<Call<()>, HootError> {
        check_id("accountId", account_id)?;
        let (db, user_id, account_id) =
            (Arc::clone(self.database()), self.user_id().to_string(), account_id.to_string());
        Ok(Box::pin(async move {
            let conn = db.conn().await?;
            let owner = conn
                .row_opt(
                    "INSERT INTO hoot_accounts (account_id, user_id, linked_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (account_id) DO UPDATE SET linked_at = hoot_accounts.linked_at \
                     WHERE hoot_accounts.user_id = excluded.user_id RETURNING user_id",
                    &[&account_id, &user_id, &now],
                )
                .await
                .map_err(|e| db.error("write to", &e))?;
            match owner {
                Some(_) => Ok(()),
                None => Err(HootError::arg_value(
                    "accountId",
                    "is already linked to another user: unlink it from that user first",
                )),
            }
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

/// The user an account is linked to.
pub fn user_id_for_account(db: Arc<PgDatabase>, account_id: &str) -> Result<Call<Option<String>>, HootError> {
    check_id("accountId", account_id)?;
    let account_id = account_id.to_string();
    Ok(Box::pin(async move {
        let conn = db.conn().await?;
        let row = conn
            .row_opt("SELECT user_id FROM hoot_accounts WHERE account_id = $1", &[&account_id])
            .await
            .map_err(|e| db.error("read from", &e))?;
        Ok(row.map(|r| r.get(0)))
    }))
}

/// Redeems a transfer code at `now`: resolves to the code's user. Unknown, expired and used codes
/// fail alike (`ERR_HOOT_TRANSFER_CODE`), and past `MAX_FAILURES_PER_WINDOW` failures in the window
/// every redemption is refused (`ERR_HOOT_TRANSFER_THROTTLED`) on every replica.
pub fn redeem_transfer_code(db: Arc<PgDatabase>, code: &str, now: i64) -> Call<String> {
    let hash = code_hash(code);
    Box::pin(async move {
        let mut conn = db.conn().await?;
        let err = |e: tokio_postgres::Error| db.error("redeem a transfer code in", &e);
        let tx = conn.transaction().await.map_err(err)?;
        // One redemption at a time across the replicas, as SQLite's IMMEDIATE transaction: the
        // failure count read below is then the count, and the throttle cannot be raced.
        tx.exec("SELECT pg_advisory_xact_lock($1)", &[&REDEEM_LOCK]).await.map_err(err)?;
        let window = now - now.rem_euclid(FAILURE_WINDOW_SECONDS);
        let failures: i64 = tx
            .row_opt("SELECT failures FROM hoot_transfer_failures WHERE window_start = $1", &[&window])
            .await
            .map_err(err)?
            .map_or(0, |r| r.get(0));
        if failures >= MAX_FAILURES_PER_WINDOW {
            return Err(HootError::TransferThrottled { retry_after: window + FAILURE_WINDOW_SECONDS - now });
        }
        let found = match &hash {
            Some(hash) => tx
                .row_opt("DELETE FROM hoot_transfer_codes WHERE code_hash = $1 RETURNING user_id, expires_at", &[hash])
                .await
                .map_err(err)?
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1))),
            None => None,
        };
        let Some((user_id, _)) = found.filter(|(_, expires_at)| *expires_at > now) else {
            tx.exec("DELETE FROM hoot_transfer_failures WHERE window_start < $1", &[&window]).await.map_err(err)?;
            tx.exec(
                "INSERT INTO hoot_transfer_failures (window_start, failures) VALUES ($1, 1) \
                 ON CONFLICT (window_start) DO UPDATE SET failures = hoot_transfer_failures.failures + 1",
                &[&window],
            )
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)?;
            return Err(HootError::TransferCode);
        };
        if is_legacy_user(&user_id) {
            // Rolled back: the code stays usable where it can be redeemed.
            return Err(HootError::arg_value(
                "code",
                "belongs to a legacy user, whose adoption runs on SQLite only: adopt it there (npx hoot-core \
                 adopt-legacy), then copy the file to PostgreSQL",
            ));
        }
        tx.commit().await.map_err(err)?;
        Ok(user_id)
    })
}
