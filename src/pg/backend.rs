//! PostgreSQL as a store backend: `crate::store::Backend`'s primitives in PostgreSQL's SQL, each
//! one statement or one transaction on a pooled connection. Every rule is the store's.

use std::sync::Arc;

use super::{PgDatabase, Prepared};
use crate::error::HootError;
use crate::sealing::KeyRing;
use crate::secret::StoreSecret;
use crate::store::backend::{Backend, Call, NewCode, Redeem, Redemption, Slot};
use crate::store::identity::{is_legacy_user, CodeRow, MoveReport, OnConflict, Redeemed};
use crate::store::users::{ActivitySummary, PurgeReport};

/// The advisory lock redemptions take (the schema's, plus two).
const REDEEM_LOCK: i64 = super::schema::SCHEMA_LOCK + 2;

/// `SELECT <column> FROM <table> WHERE user_id = $1 AND server_id = $2 [AND created_at >= $3]`.
fn select_sql(slot: Slot, since: bool) -> &'static str {
    match (slot, since) {
        (Slot::ClientInformation, _) => {
            "SELECT client_info FROM oauth_client_info WHERE user_id = $1 AND server_id = $2"
        }
        (Slot::Tokens, _) => "SELECT tokens FROM oauth_tokens WHERE user_id = $1 AND server_id = $2",
        (Slot::Verifier, false) => "SELECT verifier FROM oauth_verifiers WHERE user_id = $1 AND server_id = $2",
        (Slot::Verifier, true) => {
            "SELECT verifier FROM oauth_verifiers WHERE user_id = $1 AND server_id = $2 AND created_at >= $3"
        }
        (Slot::Discovery, _) => "SELECT state FROM hoot_oauth_discovery WHERE user_id = $1 AND server_id = $2",
        (Slot::AuthorizationState, _) => "SELECT state FROM hoot_oauth_states WHERE user_id = $1 AND server_id = $2",
        (Slot::ServerConfig, _) => "SELECT config FROM server_configs WHERE user_id = $1 AND server_id = $2",
    }
}

/// The upsert of a slot's row that writes only while the database's encryption state is the one
/// the value was prepared for ($4: the sealing key's id, or '' for plain; $5: `created_at`).
fn guarded_upsert_sql(slot: Slot) -> String {
    let (table, column) = (slot.table(), slot.column());
    let state = "CASE WHEN $4::text = '' THEN NOT EXISTS (SELECT 1 FROM hoot_encryption) \
                 ELSE EXISTS (SELECT 1 FROM hoot_encryption WHERE key_id = $4::text) END";
    match slot.dated() {
        // A versioned slot's row gets a new random version: odd, below 2^53 (a JavaScript number
        // holds it exactly), so never 0 (`UNVERSIONED`).
        false if slot.versioned() => format!(
            "INSERT INTO {table} (user_id, server_id, {column}, version) SELECT $1::text, $2::text, $3::text, \
             floor(random() * 4503599627370496)::bigint * 2 + 1 WHERE {state} ON CONFLICT (user_id, server_id) \
             DO UPDATE SET {column} = excluded.{column}, version = excluded.version"
        ),
        false => format!(
            "INSERT INTO {table} (user_id, server_id, {column}) SELECT $1::text, $2::text, $3::text \
             WHERE {state} ON CONFLICT (user_id, server_id) DO UPDATE SET {column} = excluded.{column}"
        ),
        true => format!(
            "INSERT INTO {table} (user_id, server_id, {column}, created_at) \
             SELECT $1::text, $2::text, $3::text, $5::bigint WHERE {state} \
             ON CONFLICT (user_id, server_id) DO UPDATE SET {column} = excluded.{column}, \
             created_at = excluded.created_at"
        ),
    }
}

impl Backend for PgDatabase {
    fn kind(&self) -> crate::metrics::BackendKind {
        crate::metrics::BackendKind::Postgres
    }

    fn place(&self) -> String {
        self.describe().to_string()
    }

    fn read<'a>(&'a self, user: &'a str, slot: Slot, server: &'a str, since: Option<i64>) -> Call<'a, Option<String>> {
        Box::pin(async move {
            let conn = self.reader().await?;
            let err = |e: tokio_postgres::Error| self.error("read from", &e);
            let stmt = conn.prepared(select_sql(slot, since.is_some())).await.map_err(err)?;
            let row = match since {
                None => conn.client().query_opt(&stmt, &[&user, &server]).await,
                Some(since) => conn.client().query_opt(&stmt, &[&user, &server, &since]).await,
            }
            .map_err(err)?;
            Ok(row.map(|r| r.get::<_, String>(0)))
        })
    }

    fn opening_keys<'a>(&'a self, key_id: &'a str) -> Call<'a, Arc<KeyRing>> {
        Box::pin(self.opening_ring(key_id))
    }

    fn read_versioned<'a>(&'a self, user: &'a str, slot: Slot, server: &'a str) -> Call<'a, Option<(String, i64)>> {
        Box::pin(async move {
            let sql = match slot {
                Slot::ClientInformation => {
                    "SELECT client_info, COALESCE(version, 0) FROM oauth_client_info WHERE user_id = $1 AND server_id = $2"
                }
                Slot::Tokens => "SELECT tokens, COALESCE(version, 0) FROM oauth_tokens WHERE user_id = $1 AND server_id = $2",
                _ => return Err(HootError::Internal(format!("{} values have no version", slot.table()))),
            };
            let conn = self.reader().await?;
            let err = |e: tokio_postgres::Error| self.error("read from", &e);
            let stmt = conn.prepared(sql).await.map_err(err)?;
            let row = conn.client().query_opt(&stmt, &[&user, &server]).await.map_err(err)?;
            Ok(row.map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1))))
        })
    }

    fn write<'a>(&'a self, user: &'a str, slot: Slot, server: &'a str, text: &'a str, now: i64) -> Call<'a, ()> {
        Box::pin(async move {
            let conn = self.writer().await?;
            let err = |e: tokio_postgres::Error| self.error("write to", &e);
            if !slot.sealed() {
                let sql = format!(
                    "INSERT INTO {table} (user_id, server_id, {column}, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (user_id, server_id) DO UPDATE SET {column} = excluded.{column}, \
                     created_at = excluded.created_at",
                    table = slot.table(),
                    column = slot.column()
                );
                let stmt = conn.prepared(&sql).await.map_err(err)?;
                conn.client().execute(&stmt, &[&user, &server, &text, &now]).await.map_err(err)?;
                return Ok(());
            }
            // The statement writes only while the encryption state is the one the value was
            // prepared for: otherwise another process ran `encrypt` or `decrypt` since, and the
            // value is prepared again for the state now, as SQLite's writes read it inside their
            // transaction.
            let stmt = conn.prepared(&guarded_upsert_sql(slot)).await.map_err(err)?;
            let mut ring = self.ring().await?;
            // Two changes of state between two statements of one write would take two transitions
            // committing in that moment: the third try is the last.
            for _ in 0..3 {
                let (value, key_id) = match &ring {
                    Some(ring) => (ring.seal(slot.table(), user, server, text)?, ring.current_id().to_string()),
                    None => (text.to_string(), String::new()),
                };
                let written = match slot.dated() {
                    false => conn.client().execute(&stmt, &[&user, &server, &value, &key_id]).await,
                    true => conn.client().execute(&stmt, &[&user, &server, &value, &key_id, &now]).await,
                }
                .map_err(err)?;
                if written > 0 {
                    return Ok(());
                }
                // Another process changed the state: read it on a pooled connection.
                ring = match &conn {
                    super::Conn::Pool(pooled) => super::encryption::for_write(self, &***pooled).await?,
                    super::Conn::Lane(_) => super::encryption::for_write(self, &*self.conn().await?).await?,
                };
            }
            Err(HootError::Db(format!(
                "Cannot write to {}: its encryption state kept changing (encrypt or decrypt running again and \
                 again); nothing was written",
                self.describe()
            )))
        })
    }

    fn take<'a>(&'a self, user: &'a str, slot: Slot, server: &'a str) -> Call<'a, Option<(String, i64)>> {
        Box::pin(async move {
            if slot != Slot::AuthorizationState {
                return Err(HootError::Internal(format!("{} values are not taken", slot.table())));
            }
            let conn = self.conn().await?;
            let row = conn
                .row_opt(
                    "DELETE FROM hoot_oauth_states WHERE user_id = $1 AND server_id = $2 RETURNING state, created_at",
                    &[&user, &server],
                )
                .await
                .map_err(|e| self.error("delete from", &e))?;
            Ok(row.map(|row| (row.get(0), row.get::<_, Option<i64>>(1).unwrap_or(i64::MIN))))
        })
    }

    fn delete<'a>(
        &'a self,
        user: &'a str,
        tables: &'a [&'static str],
        server: Option<&'a str>,
        expected: &'a [(&'static str, i64)],
    ) -> Call<'a, u64> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let err = |e: tokio_postgres::Error| self.error("delete from", &e);
            let tx = conn.transaction().await.map_err(err)?;
            let mut removed = 0;
            for table in tables {
                let version = expected.iter().find(|(t, _)| t == table).map(|(_, v)| *v);
                removed += match (server, version) {
                    (Some(server), Some(version)) => tx
                        .exec(
                            &format!(
                                "DELETE FROM {table} WHERE user_id = $1 AND server_id = $2 AND COALESCE(version, 0) = $3"
                            ),
                            &[&user, &server, &version],
                        )
                        .await
                        .map_err(err)?,
                    (Some(server), None) => tx
                        .exec(&format!("DELETE FROM {table} WHERE user_id = $1 AND server_id = $2"), &[&user, &server])
                        .await
                        .map_err(err)?,
                    (None, _) => {
                        tx.exec(&format!("DELETE FROM {table} WHERE user_id = $1"), &[&user]).await.map_err(err)?
                    }
                };
            }
            tx.commit().await.map_err(err)?;
            Ok(removed)
        })
    }

    fn claim_refresh<'a>(
        &'a self,
        user: &'a str,
        server: &'a str,
        holder: &'a str,
        now: i64,
        until: i64,
    ) -> Call<'a, bool> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let claimed = conn
                .exec(
                    "INSERT INTO hoot_refresh_claims (user_id, server_id, holder, expires_at) VALUES ($1, $2, $3, $5) \
                     ON CONFLICT (user_id, server_id) DO UPDATE SET holder = excluded.holder, \
                     expires_at = excluded.expires_at \
                     WHERE hoot_refresh_claims.expires_at <= $4 OR hoot_refresh_claims.holder = $3",
                    &[&user, &server, &holder, &now, &until],
                )
                .await
                .map_err(|e| self.error("write to", &e))?;
            Ok(claimed > 0)
        })
    }

    fn release_refresh<'a>(&'a self, user: &'a str, server: &'a str, holder: &'a str) -> Call<'a, ()> {
        Box::pin(async move {
            let conn = self.conn().await?;
            conn.exec(
                "DELETE FROM hoot_refresh_claims WHERE user_id = $1 AND server_id = $2 AND holder = $3",
                &[&user, &server, &holder],
            )
            .await
            .map_err(|e| self.error("delete from", &e))?;
            Ok(())
        })
    }

    fn servers<'a>(&'a self, user: &'a str) -> Call<'a, Vec<String>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let rows = conn
                .rows(
                    "SELECT server_id FROM (SELECT server_id FROM oauth_tokens WHERE user_id = $1
                     UNION SELECT server_id FROM oauth_client_info WHERE user_id = $1
                     UNION SELECT server_id FROM oauth_verifiers WHERE user_id = $1
                     UNION SELECT server_id FROM server_configs WHERE user_id = $1
                     UNION SELECT server_id FROM hoot_oauth_discovery WHERE user_id = $1) AS s
                     ORDER BY server_id COLLATE \"C\"",
                    &[&user],
                )
                .await
                .map_err(|e| self.error("read from", &e))?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn touch<'a>(&'a self, user: &'a str, now: i64) -> Call<'a, ()> {
        Box::pin(async move {
            let conn = self.conn().await?;
            conn.exec(
                "INSERT INTO hoot_users (user_id, first_seen, last_seen) VALUES ($1, $2, $2) \
                 ON CONFLICT (user_id) DO UPDATE SET last_seen = greatest(hoot_users.last_seen, excluded.last_seen)",
                &[&user, &now],
            )
            .await
            .map_err(|e| self.error("write to", &e))?;
            Ok(())
        })
    }

    fn store_secret(&self) -> Call<'_, Arc<StoreSecret>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            super::identity::store_secret(&*conn, self).await.map(Arc::new)
        })
    }

    fn save_transfer_code<'a>(&'a self, user: &'a str, code: NewCode) -> Call<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let err = |e: tokio_postgres::Error| self.error("write to", &e);
            let tx = conn.transaction().await.map_err(err)?;
            tx.exec("DELETE FROM hoot_transfer_codes WHERE user_id = $1", &[&user]).await.map_err(err)?;
            tx.exec(
                "INSERT INTO hoot_transfer_codes (code_hash, user_id, created_at, expires_at, derived_from, mac) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&code.hash, &user, &code.created_at, &code.expires_at, &code.derived_from, &code.mac],
            )
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)
        })
    }

    fn link_account<'a>(
        &'a self,
        account: &'a str,
        user: &'a str,
        mac: &'a str,
        now: i64,
        genuine: &'a (dyn Fn(&str, Option<&str>) -> bool + Send + Sync),
    ) -> Call<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let err = |e: tokio_postgres::Error| self.error("write to", &e);
            let tx = conn.transaction().await.map_err(err)?;
            // Made if missing, then locked: two replicas linking one account take turns.
            tx.exec(
                "INSERT INTO hoot_accounts (account_id, user_id, linked_at, mac) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (account_id) DO NOTHING",
                &[&account, &user, &now, &mac],
            )
            .await
            .map_err(err)?;
            let row = tx
                .row_opt("SELECT user_id, mac FROM hoot_accounts WHERE account_id = $1 FOR UPDATE", &[&account])
                .await
                .map_err(err)?;
            if let Some((owner, stored)) = row.map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(1))) {
                if genuine(&owner, stored.as_deref()) {
                    tx.commit().await.map_err(err)?;
                    return Ok(owner == user);
                }
            }
            tx.exec(
                "UPDATE hoot_accounts SET user_id = $2, linked_at = $3, mac = $4 WHERE account_id = $1",
                &[&account, &user, &now, &mac],
            )
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)?;
            Ok(true)
        })
    }

    fn unlink_account<'a>(&'a self, account: &'a str, user: &'a str) -> Call<'a, bool> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let removed = conn
                .exec("DELETE FROM hoot_accounts WHERE account_id = $1 AND user_id = $2", &[&account, &user])
                .await
                .map_err(|e| self.error("delete from", &e))?;
            Ok(removed > 0)
        })
    }

    fn account_owner<'a>(&'a self, account: &'a str) -> Call<'a, Option<(String, Option<String>)>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let row = conn
                .row_opt("SELECT user_id, mac FROM hoot_accounts WHERE account_id = $1", &[&account])
                .await
                .map_err(|e| self.error("read from", &e))?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
    }

    fn revoke<'a>(&'a self, user: &'a str, before: i64) -> Call<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let err = |e: tokio_postgres::Error| self.error("write to", &e);
            let tx = conn.transaction().await.map_err(err)?;
            tx.exec(
                "INSERT INTO hoot_revocations (user_id, revoked_before) VALUES ($1, $2) \
                 ON CONFLICT (user_id) DO UPDATE SET revoked_before = greatest(hoot_revocations.revoked_before, \
                 excluded.revoked_before)",
                &[&user, &before],
            )
            .await
            .map_err(err)?;
            tx.exec("DELETE FROM hoot_transfer_codes WHERE user_id = $1", &[&user]).await.map_err(err)?;
            tx.commit().await.map_err(err)
        })
    }

    fn redeem<'a>(&'a self, r: Redemption<'a>) -> Call<'a, Redeem> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let err = |e: tokio_postgres::Error| self.error("redeem a transfer code in", &e);
            let tx = conn.transaction().await.map_err(err)?;
            // One redemption at a time across the replicas, as SQLite's IMMEDIATE transaction: the
            // failure counts read below are then the counts, and the throttle cannot be raced.
            tx.exec("SELECT pg_advisory_xact_lock($1)", &[&REDEEM_LOCK]).await.map_err(err)?;
            let window = r.window;
            let failures: i64 = tx
                .row_opt("SELECT failures FROM hoot_transfer_failures WHERE window_start = $1", &[&window])
                .await
                .map_err(err)?
                .map_or(0, |r| r.get(0));
            let source_failures = match &r.source {
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
            if let Some(retry_after) = (r.throttled)(failures, source_failures) {
                return Ok(Redeem::Throttled(retry_after));
            }
            let found = match &r.hash {
                Some(hash) => tx
                    .row_opt(
                        "DELETE FROM hoot_transfer_codes WHERE code_hash = $1 \
                         RETURNING user_id, expires_at, derived_from, mac",
                        &[hash],
                    )
                    .await
                    .map_err(err)?
                    .map(|r| CodeRow {
                        user_id: r.get(0),
                        expires_at: r.get(1),
                        derived_from: r.get(2),
                        mac: r.get(3),
                    }),
                None => None,
            };
            let Some((user_id, derived_from)) = found.and_then(r.verified) else {
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
                if let Some(source) = &r.source {
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
                return Ok(Redeem::Refused);
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
                return Ok(Redeem::Refused);
            }
            let moved = match (is_legacy_user(&user_id), &r.into) {
                (false, _) => None,
                (true, None) => return Ok(Redeem::NeedsTarget), // rolled back: the code stays usable
                (true, Some(into)) => {
                    Some(super::moves::move_in(&tx, self, &user_id, into, OnConflict::KeepTarget).await?)
                }
            };
            tx.commit().await.map_err(err)?;
            let user_id = match (&moved, r.into) {
                (Some(_), Some(into)) => into,
                _ => user_id,
            };
            Ok(Redeem::Redeemed(Redeemed { user_id, moved }))
        })
    }

    fn move_user_data<'a>(&'a self, from: &'a str, to: &'a str, on_conflict: OnConflict) -> Call<'a, MoveReport> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let err = |e: tokio_postgres::Error| self.error("move user data in", &e);
            let tx = conn.transaction().await.map_err(err)?;
            let report = super::moves::move_in(&tx, self, from, to, on_conflict).await?;
            if on_conflict == OnConflict::Fail && report.conflicts > 0 {
                return Ok(report); // dropped: rolled back
            }
            tx.commit().await.map_err(err)?;
            Ok(report)
        })
    }

    fn legacy_user(&self) -> Call<'_, Option<String>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            super::moves::legacy_user(&*conn).await.map_err(|e| self.error("read from", &e))
        })
    }

    fn delete_verifiers_before(&self, before: i64) -> Call<'_, u64> {
        Box::pin(async move {
            let conn = self.conn().await?;
            conn.exec("DELETE FROM oauth_verifiers WHERE created_at < $1", &[&before])
                .await
                .map_err(|e| self.error("delete from", &e))
        })
    }

    fn cached_favicon<'a>(
        &'a self,
        server_url: &'a str,
        oauth_logo_uri: Option<&'a str>,
        fresh_after: i64,
    ) -> Call<'a, Option<Option<String>>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let row = conn
                .row_opt(
                    "SELECT favicon_url FROM favicon_cache WHERE server_url = $1 \
                     AND (oauth_logo_uri IS NULL OR oauth_logo_uri = $2) AND cached_at > $3",
                    &[&server_url, &oauth_logo_uri, &fresh_after],
                )
                .await
                .map_err(|e| self.error("read from", &e))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn cache_favicon<'a>(
        &'a self,
        server_url: &'a str,
        favicon_url: Option<&'a str>,
        oauth_logo_uri: Option<&'a str>,
        now: i64,
    ) -> Call<'a, ()> {
        Box::pin(async move {
            let conn = self.conn().await?;
            conn.exec(
                "INSERT INTO favicon_cache (server_url, favicon_url, oauth_logo_uri, cached_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (server_url) DO UPDATE SET favicon_url = excluded.favicon_url, \
                 oauth_logo_uri = excluded.oauth_logo_uri, cached_at = excluded.cached_at",
                &[&server_url, &favicon_url, &oauth_logo_uri, &now],
            )
            .await
            .map_err(|e| self.error("write to", &e))?;
            Ok(())
        })
    }

    fn activity_summary(&self, now: i64) -> Call<'_, ActivitySummary> {
        Box::pin(async move {
            let conn = self.conn().await?;
            super::users::summary_on(&*conn, now).await.map_err(|e| self.error("read from", &e))
        })
    }

    fn purge(&self, cutoff: i64, dry_run: bool, now: i64) -> Call<'_, PurgeReport> {
        Box::pin(super::users::purge(self, cutoff, dry_run, now))
    }
}
