//! One user's view of the store on PostgreSQL: `OAuthStore`'s methods as futures. The arguments
//! are checked when a method is called (so a bad one fails before anything is sent), then the
//! returned future runs the statement; every statement binds the store's user id, and each call is
//! one statement or one transaction.

use std::future::Future;
use std::sync::Arc;

use super::{PgDatabase, Prepared};
use crate::error::HootError;
use crate::sealing;
use crate::store::users;
use crate::store::{check_id, is_store_user_id, CredentialScope, JsonObject, USER_ID_FORMS, VERIFIER_TTL_SECONDS};

/// A future a store method returns: `'static`, so it can run on any runtime thread.
pub type Call<T> = std::pin::Pin<Box<dyn Future<Output = Result<T, HootError>> + Send + 'static>>;

/// One user's store on one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    db: Arc<PgDatabase>,
    user_id: String,
}

fn boxed<T>(f: impl Future<Output = Result<T, HootError>> + Send + 'static) -> Call<T> {
    Box::pin(f)
}

impl PgStore {
    /// The store of `user_id` (checked, and kept lower-case) on `db`.
    pub fn new(db: Arc<PgDatabase>, user_id: &str) -> Result<Self, HootError> {
        if !is_store_user_id(user_id) {
            return Err(HootError::invalid_user_id(user_id, USER_ID_FORMS));
        }
        Ok(PgStore { db, user_id: user_id.to_ascii_lowercase() })
    }

    /// The user every statement is scoped to.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The database.
    pub fn database(&self) -> &Arc<PgDatabase> {
        &self.db
    }

    /// Reads one text column of this user's row for `server_id` (`extra`: more conditions, with
    /// their parameter from $3), opening it when sealed.
    fn read(
        &self,
        table: &'static str,
        column: &'static str,
        server_id: &str,
        since: Option<i64>,
    ) -> Call<Option<String>> {
        let (db, user_id, server_id) = (Arc::clone(&self.db), self.user_id.clone(), server_id.to_string());
        boxed(async move {
            let conn = db.conn().await?;
            let sql = match since {
                None => format!("SELECT {column} FROM {table} WHERE user_id = $1 AND server_id = $2"),
                Some(_) => {
                    format!("SELECT {column} FROM {table} WHERE user_id = $1 AND server_id = $2 AND created_at >= $3")
                }
            };
            let err = |e: tokio_postgres::Error| db.error("read from", &e);
            let stmt = conn.prepare_cached(&sql).await.map_err(err)?;
            let row = match since {
                None => conn.query_opt(&stmt, &[&user_id, &server_id]).await,
                Some(since) => conn.query_opt(&stmt, &[&user_id, &server_id, &since]).await,
            }
            .map_err(err)?;
            drop(conn);
            let Some(text) = row.map(|r| r.get::<_, String>(0)) else { return Ok(None) };
            let Some(key_id) = sealing::sealed_with(&text) else { return Ok(Some(text)) };
            db.opening_ring(key_id).await?.open(table, &user_id, &server_id, &text).map(Some)
        })
    }

    /// Upserts this user's row for `server_id` in `table`: `column` (sealed when the database is
    /// encrypted), and `created_at` when `now` is given. The statement writes only while the
    /// database's encryption state is the one the value was prepared for (no key recorded for a
    /// plain value; the sealing key recorded for a sealed one): otherwise another process ran
    /// `encrypt` or `decrypt` since, and the value is prepared again for the state now
    /// (`encryption::for_write`), as SQLite's writes read it inside their transaction.
    fn write(
        &self,
        table: &'static str,
        column: &'static str,
        server_id: &str,
        text: String,
        now: Option<i64>,
    ) -> Call<()> {
        let (db, user_id, server_id) = (Arc::clone(&self.db), self.user_id.clone(), server_id.to_string());
        boxed(async move {
            let conn = db.conn().await?;
            let err = |e: tokio_postgres::Error| db.error("write to", &e);
            if table == "hoot_oauth_states" {
                // Never sealed: no state to agree with.
                let sql = format!(
                    "INSERT INTO {table} (user_id, server_id, {column}, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (user_id, server_id) DO UPDATE SET {column} = excluded.{column}, \
                     created_at = excluded.created_at"
                );
                conn.exec(&sql, &[&user_id, &server_id, &text, &now]).await.map_err(err)?;
                return Ok(());
            }
            // $4: the sealing key's id, or '' for plain.
            let state = "CASE WHEN $4::text = '' THEN NOT EXISTS (SELECT 1 FROM hoot_encryption) \
                         ELSE EXISTS (SELECT 1 FROM hoot_encryption WHERE key_id = $4::text) END";
            let sql = match now {
                None => format!(
                    "INSERT INTO {table} (user_id, server_id, {column}) SELECT $1::text, $2::text, $3::text \
                     WHERE {state} ON CONFLICT (user_id, server_id) DO UPDATE SET {column} = excluded.{column}"
                ),
                Some(_) => format!(
                    "INSERT INTO {table} (user_id, server_id, {column}, created_at) \
                     SELECT $1::text, $2::text, $3::text, $5::bigint WHERE {state} \
                     ON CONFLICT (user_id, server_id) DO UPDATE SET {column} = excluded.{column}, \
                     created_at = excluded.created_at"
                ),
            };
            let stmt = conn.prepare_cached(&sql).await.map_err(err)?;
            let mut ring = db.ring().await?;
            // Two changes of state between two statements of one write would take two transitions
            // committing in that moment: the third try is the last.
            for _ in 0..3 {
                let (value, key_id) = match &ring {
                    Some(ring) => (ring.seal(table, &user_id, &server_id, &text)?, ring.current_id().to_string()),
                    None => (text.clone(), String::new()),
                };
                let written = match now {
                    None => conn.execute(&stmt, &[&user_id, &server_id, &value, &key_id]).await,
                    Some(now) => conn.execute(&stmt, &[&user_id, &server_id, &value, &key_id, &now]).await,
                }
                .map_err(err)?;
                if written > 0 {
                    return Ok(());
                }
                ring = super::encryption::for_write(&db, &*conn).await?;
            }
            Err(HootError::Db(format!(
                "Cannot write to {}: its encryption state kept changing (encrypt or decrypt running again and \
                 again); nothing was written",
                db.describe()
            )))
        })
    }

    /// The OAuth client registration (JSON text), if any.
    pub fn client_information(&self, server_id: &str) -> Result<Call<Option<String>>, HootError> {
        check_id("serverId", server_id)?;
        Ok(self.read("oauth_client_info", "client_info", server_id, None))
    }

    /// Saves the OAuth client registration for `server_id`, replacing any.
    pub fn save_client_information(&self, server_id: &str, info: JsonObject) -> Result<Call<()>, HootError> {
        check_id("serverId", server_id)?;
        Ok(self.write("oauth_client_info", "client_info", server_id, info.as_str().to_string(), None))
    }

    /// The OAuth tokens (JSON text), if any.
    pub fn tokens(&self, server_id: &str) -> Result<Call<Option<String>>, HootError> {
        check_id("serverId", server_id)?;
        Ok(self.read("oauth_tokens", "tokens", server_id, None))
    }

    /// Saves the OAuth tokens for `server_id`, replacing any.
    pub fn save_tokens(&self, server_id: &str, tokens: JsonObject) -> Result<Call<()>, HootError> {
        check_id("serverId", server_id)?;
        Ok(self.write("oauth_tokens", "tokens", server_id, tokens.as_str().to_string(), None))
    }

    /// The PKCE verifier saved for `server_id`, unless it is older than ten minutes at `now`.
    pub fn code_verifier(&self, server_id: &str, now: i64) -> Result<Call<Option<String>>, HootError> {
        check_id("serverId", server_id)?;
        Ok(self.read("oauth_verifiers", "verifier", server_id, Some(now - VERIFIER_TTL_SECONDS)))
    }

    /// Saves the PKCE verifier for `server_id` at `now`, replacing any.
    pub fn save_code_verifier(&self, server_id: &str, verifier: &str, now: i64) -> Result<Call<()>, HootError> {
        check_id("serverId", server_id)?;
        check_id("verifier", verifier)?;
        if verifier.starts_with(sealing::PREFIX) {
            return Err(HootError::arg_value("verifier", "must not look like a sealed value (hoot-sealed:1:...)"));
        }
        Ok(self.write("oauth_verifiers", "verifier", server_id, verifier.to_string(), Some(now)))
    }

    /// The MCP SDK's discovery state (JSON text) for `server_id`, if any.
    pub fn discovery_state(&self, server_id: &str) -> Result<Call<Option<String>>, HootError> {
        check_id("serverId", server_id)?;
        Ok(self.read("hoot_oauth_discovery", "state", server_id, None))
    }

    /// Saves the discovery state for `server_id` at `now`, replacing any.
    pub fn save_discovery_state(&self, server_id: &str, state: JsonObject, now: i64) -> Result<Call<()>, HootError> {
        check_id("serverId", server_id)?;
        Ok(self.write("hoot_oauth_discovery", "state", server_id, state.as_str().to_string(), Some(now)))
    }

    /// Saves the OAuth `state` of the authorization starting now for `server_id`, replacing any.
    pub fn save_authorization_state(&self, server_id: &str, state: &str, now: i64) -> Result<Call<()>, HootError> {
        check_id("serverId", server_id)?;
        check_id("state", state)?;
        Ok(self.write("hoot_oauth_states", "state", server_id, state.to_string(), Some(now)))
    }

    /// Whether `state` is the one saved for `server_id` in the last ten minutes at `now`; the saved
    /// one is removed by the same statement that reads it (single use across replicas), and
    /// compared in constant time.
    pub fn consume_authorization_state(&self, server_id: &str, state: &str, now: i64) -> Result<Call<bool>, HootError> {
        check_id("serverId", server_id)?;
        let (db, user_id, server_id, state) =
            (Arc::clone(&self.db), self.user_id.clone(), server_id.to_string(), state.to_string());
        Ok(boxed(async move {
            let conn = db.conn().await?;
            let row = conn
                .row_opt(
                    "DELETE FROM hoot_oauth_states WHERE user_id = $1 AND server_id = $2 RETURNING state, created_at",
                    &[&user_id, &server_id],
                )
                .await
                .map_err(|e| db.error("delete from", &e))?;
            Ok(row.is_some_and(|row| {
                let (saved, created_at): (String, Option<i64>) = (row.get(0), row.get(1));
                let created_at = created_at.unwrap_or(i64::MIN);
                let fresh = created_at >= now - VERIFIER_TTL_SECONDS && created_at <= now + 60;
                let same =
                    aws_lc_rs::constant_time::verify_slices_are_equal(saved.as_bytes(), state.as_bytes()).is_ok();
                same & fresh
            }))
        }))
    }

    /// Deletes this user's rows in `tables` (for `server_id`, or all of them), in one transaction.
    fn delete_rows(&self, tables: Vec<&'static str>, server_id: Option<String>) -> Call<u64> {
        let (db, user_id) = (Arc::clone(&self.db), self.user_id.clone());
        boxed(async move {
            let mut conn = db.conn().await?;
            let err = |e: tokio_postgres::Error| db.error("delete from", &e);
            let tx = conn.transaction().await.map_err(err)?;
            let mut removed = 0;
            for table in tables {
                removed += match &server_id {
                    Some(server_id) => tx
                        .exec(
                            &format!("DELETE FROM {table} WHERE user_id = $1 AND server_id = $2"),
                            &[&user_id, server_id],
                        )
                        .await
                        .map_err(err)?,
                    None => {
                        tx.exec(&format!("DELETE FROM {table} WHERE user_id = $1"), &[&user_id]).await.map_err(err)?
                    }
                };
            }
            tx.commit().await.map_err(err)?;
            Ok(removed)
        })
    }

    /// Removes this user's credentials for `server_id` in `scope`, in one transaction.
    pub fn invalidate_credentials(&self, server_id: &str, scope: CredentialScope) -> Result<Call<u64>, HootError> {
        check_id("serverId", server_id)?;
        Ok(self.delete_rows(scope.tables().to_vec(), Some(server_id.to_string())))
    }

    /// The server config (JSON text), if any.
    pub fn server_config(&self, server_id: &str) -> Result<Call<Option<String>>, HootError> {
        check_id("serverId", server_id)?;
        Ok(self.read("server_configs", "config", server_id, None))
    }

    /// Saves the config of `server_id` at `now`, replacing any.
    pub fn save_server_config(&self, server_id: &str, config: JsonObject, now: i64) -> Result<Call<()>, HootError> {
        check_id("serverId", server_id)?;
        Ok(self.write("server_configs", "config", server_id, config.as_str().to_string(), Some(now)))
    }

    /// Removes the config of `server_id`; returns the rows removed.
    pub fn delete_server_config(&self, server_id: &str) -> Result<Call<u64>, HootError> {
        check_id("serverId", server_id)?;
        Ok(self.delete_rows(vec!["server_configs"], Some(server_id.to_string())))
    }

    /// Server ids with any stored state for this user, sorted (byte order, as SQLite's).
    pub fn servers(&self) -> Call<Vec<String>> {
        let (db, user_id) = (Arc::clone(&self.db), self.user_id.clone());
        boxed(async move {
            let conn = db.conn().await?;
            let rows = conn
                .rows(
                    "SELECT server_id FROM (SELECT server_id FROM oauth_tokens WHERE user_id = $1
                     UNION SELECT server_id FROM oauth_client_info WHERE user_id = $1
                     UNION SELECT server_id FROM oauth_verifiers WHERE user_id = $1
                     UNION SELECT server_id FROM server_configs WHERE user_id = $1
                     UNION SELECT server_id FROM hoot_oauth_discovery WHERE user_id = $1) AS s
                     ORDER BY server_id COLLATE \"C\"",
                    &[&user_id],
                )
                .await
                .map_err(|e| db.error("read from", &e))?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// Forgets this user: every row of every per-user table and the activity row, in one
    /// transaction. With `revoke_at`, their tokens issued before then are revoked first.
    pub fn delete_all(&self, revoke_at: Option<i64>) -> Call<u64> {
        let mut tables = crate::store::USER_TABLES.to_vec();
        tables.push("hoot_users");
        let delete = self.delete_rows(tables, None);
        let revoke = revoke_at.map(|now| revoke_user_tokens(Arc::clone(&self.db), &self.user_id, now));
        let key = touch_key(&self.db, &self.user_id);
        boxed(async move {
            if let Some(revoke) = revoke {
                revoke?.await?;
            }
            let removed = delete.await?;
            users::forget_touched(&key);
            Ok(removed)
        })
    }

    /// Records that this user is active at `now`: at most one write per `interval` seconds per
    /// user and database from this process. Resolves to whether it wrote.
    pub fn touch(&self, now: i64, interval: i64) -> Call<bool> {
        let key = touch_key(&self.db, &self.user_id);
        let recent = users::touched_recently(&key, now, interval);
        let (db, user_id) = (Arc::clone(&self.db), self.user_id.clone());
        boxed(async move {
            if recent {
                return Ok(false);
            }
            let conn = db.conn().await?;
            conn.exec(
                "INSERT INTO hoot_users (user_id, first_seen, last_seen) VALUES ($1, $2, $2) \
                 ON CONFLICT (user_id) DO UPDATE SET last_seen = greatest(hoot_users.last_seen, excluded.last_seen)",
                &[&user_id, &now],
            )
            .await
            .map_err(|e| db.error("write to", &e))?;
            users::note_touched(key, now);
            Ok(true)
        })
    }
}

/// The touch memory's key: SQLite's is the file's path and the user, this the server's
/// description (`PostgreSQL at ...`) and the user, so the two never collide.
fn touch_key(db: &PgDatabase, user_id: &str) -> String {
    format!("{}\0{user_id}", db.describe())
}

/// Revokes every token of `user_id` issued before `now + 1`: refused here at once, and by every
/// replica within its poll interval. The user's pending transfer code goes in the same
/// transaction (and a code made meanwhile on a replica that has not learnt of this is refused at
/// redemption, which reads the revocation). Resolves to the time before which tokens are refused.
pub fn revoke_user_tokens(db: Arc<PgDatabase>, user_id: &str, now: i64) -> Result<Call<i64>, HootError> {
    if !is_store_user_id(user_id) {
        return Err(HootError::invalid_user_id(user_id, USER_ID_FORMS));
    }
    let user_id = user_id.to_ascii_lowercase();
    let before = now + 1;
    Ok(boxed(async move {
        let mut conn = db.conn().await?;
        let err = |e: tokio_postgres::Error| db.error("write to", &e);
        let tx = conn.transaction().await.map_err(err)?;
        tx.exec(
            "INSERT INTO hoot_revocations (user_id, revoked_before) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE SET revoked_before = greatest(hoot_revocations.revoked_before, \
             excluded.revoked_before)",
            &[&user_id, &before],
        )
        .await
        .map_err(err)?;
        tx.exec("DELETE FROM hoot_transfer_codes WHERE user_id = $1", &[&user_id]).await.map_err(err)?;
        tx.commit().await.map_err(err)?;
        crate::revocation::learn(&user_id, before);
        Ok(before)
    }))
}

/// Deletes every user's verifiers older than `max_age` seconds at `now`; resolves to how many.
pub fn cleanup_expired_verifiers(db: Arc<PgDatabase>, max_age: i64, now: i64) -> Call<u64> {
    boxed(async move {
        let conn = db.conn().await?;
        conn.exec("DELETE FROM oauth_verifiers WHERE created_at < $1", &[&(now - max_age)])
            .await
            .map_err(|e| db.error("delete from", &e))
    })
}

/// Hoot's favicon cache lookup, as SQLite's `cached_favicon`.
pub fn cached_favicon(
    db: Arc<PgDatabase>,
    server_url: &str,
    oauth_logo_uri: Option<&str>,
    now: i64,
) -> Result<Call<Option<Option<String>>>, HootError> {
    check_id("serverUrl", server_url)?;
    let (server_url, logo) = (server_url.to_string(), oauth_logo_uri.map(str::to_string));
    Ok(boxed(async move {
        let conn = db.conn().await?;
        let row = conn
            .row_opt(
                "SELECT favicon_url FROM favicon_cache WHERE server_url = $1 \
                 AND (oauth_logo_uri IS NULL OR oauth_logo_uri = $2) AND cached_at > $3",
                &[&server_url, &logo, &(now - crate::store::FAVICON_TTL_SECONDS)],
            )
            .await
            .map_err(|e| db.error("read from", &e))?;
        Ok(row.map(|r| r.get(0)))
    }))
}

/// Caches a favicon lookup, as SQLite's `cache_favicon`.
pub fn cache_favicon(
    db: Arc<PgDatabase>,
    server_url: &str,
    favicon_url: Option<&str>,
    oauth_logo_uri: Option<&str>,
    now: i64,
) -> Result<Call<()>, HootError> {
    check_id("serverUrl", server_url)?;
    for (name, value) in [("faviconUrl", favicon_url), ("oauthLogoUri", oauth_logo_uri)] {
        if value.is_some_and(|v| v.len() > crate::store::MAX_VALUE_BYTES) {
            return Err(HootError::out_of_range(
                name,
                format!("must be at most {} bytes", crate::store::MAX_VALUE_BYTES),
            ));
        }
    }
    let (server_url, favicon, logo) =
        (server_url.to_string(), favicon_url.map(str::to_string), oauth_logo_uri.map(str::to_string));
    Ok(boxed(async move {
        let conn = db.conn().await?;
        conn.exec(
            "INSERT INTO favicon_cache (server_url, favicon_url, oauth_logo_uri, cached_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (server_url) DO UPDATE SET favicon_url = excluded.favicon_url, \
             oauth_logo_uri = excluded.oauth_logo_uri, cached_at = excluded.cached_at",
            &[&server_url, &favicon, &logo, &now],
        )
        .await
        .map_err(|e| db.error("write to", &e))?;
        Ok(())
    }))
}
