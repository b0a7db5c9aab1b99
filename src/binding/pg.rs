//! PostgreSQL's JavaScript face, used by `lib/database.js` (`openDatabase(url)`): a database
//! (`PostgresDatabase`) and its user-bound stores (`PostgresStore`). Each method reads and checks
//! its arguments now, throwing as the SQLite store does (lib/database.js turns the throw into a
//! rejection), then returns a promise of the call (`settle::spawn`): polled once on the event
//! loop, which sends a lone query without waiting for it, then run on napi's tokio runtime; no
//! call waits on the event loop. A rejection carries the core error's `code` (`ERR_HOOT_DB`,
//! `ERR_HOOT_KEYS`).

use std::sync::{Arc, Once};

use napi::bindgen_prelude::{Either, PromiseRaw, ToNapiValue};
use napi::{Env, Unknown};
use napi_derive::napi;

use super::args::{json_object_arg, optional_string, string_value, Props};
use super::guarded;
use crate::clock;
use crate::env::Environment;
use crate::error::HootError;
use crate::pg::{self, PgOptions};
use crate::store::backend::Call as Borrowing;
use crate::store::{ops, UserStore};

/// A call that owns what it needs, so it can run on any runtime thread.
type Call<T> = Borrowing<'static, T>;
use crate::store::identity::OnConflict;
use crate::store::{verifier_max_age, CredentialScope};

static POLLER: Once = Once::new();

/// The promise of `call` on `db`, bounded by its timeouts. It rejects with the same coded error
/// the SQLite store throws (made on the JS thread when the call ends).
fn promise<'e, T: ToNapiValue + 'static, R: Send + 'static>(
    env: &'e Env,
    db: &Arc<pg::PgDatabase>,
    doing: &'static str,
    call: Call<R>,
    convert: impl FnOnce(R) -> T + Send + 'static,
) -> napi::Result<PromiseRaw<'e, T>> {
    let db = Arc::clone(db);
    settled(env, async move { db.bounded(doing, call).await }, convert)
}

/// The promise of `call`'s outcome: `convert`ed, or rejected with the core error's JS error.
fn settled<'e, T: ToNapiValue + 'static, R: Send + 'static>(
    env: &'e Env,
    call: impl std::future::Future<Output = Result<R, HootError>> + Send + 'static,
    convert: impl FnOnce(R) -> T + Send + 'static,
) -> napi::Result<PromiseRaw<'e, T>> {
    super::settle::spawn(env, call, convert)
}

fn count(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The promise of an encryption transition. It may take longer than one call's bound (it reads and
/// rewrites every value), so each of its statements is bounded instead, as a copy's are; it runs
/// in a task of its own, whose panic rejects the promise.
fn transition<'e>(
    env: &'e Env,
    call: impl std::future::Future<Output = Result<crate::store::status::Transition, HootError>> + Send + 'static,
) -> napi::Result<PromiseRaw<'e, super::store::JsEncryptionReport>> {
    let run = async move {
        tokio::spawn(call).await.map_err(|e| HootError::Internal(format!("the transition stopped: {e}")))?
    };
    settled(env, run, super::store::transition_js)
}

/// The native half of a PostgreSQL database opened by `openDatabase(url)` (not exported by the
/// package: lib/header.d.ts's `Database` is what `openDatabase` returns on both backends).
#[napi]
pub struct PostgresDatabase {
    db: Arc<pg::PgDatabase>,
    url: String,
    /// This handle's `close` has run (each handle gives its share back once).
    closed: std::sync::atomic::AtomicBool,
}

/// Opens (or shares) the pool for `url`. Not exported by the package: `openDatabase` is.
#[napi(
    js_name = "postgresOpen",
    skip_typescript,
    ts_args_type = "url: string, opts?: { poolSize?: number; connectTimeoutMs?: number; statementTimeoutMs?: number; \
                    pollIntervalMs?: number; encryption?: 'on' | 'off' }"
)]
pub fn postgres_open(env: Env, url: Unknown, opts: Option<Unknown>) -> napi::Result<PostgresDatabase> {
    let (db, url) = guarded(&env, || {
        let url = string_value(&url, "url")?;
        let props = Props::new(opts, "opts")?;
        let options = PgOptions {
            pool_size: props.number("poolSize")?,
            connect_timeout_ms: props.number("connectTimeoutMs")?,
            statement_timeout_ms: props.number("statementTimeoutMs")?,
            poll_interval_ms: props.number("pollIntervalMs")?,
        };
        let encrypt = match props.string("encryption")?.as_deref() {
            None | Some("off") => false,
            Some("on") => true,
            Some(_) => return Err(HootError::arg_value("opts.encryption", "must be 'on' or 'off'")),
        };
        Ok((pg::open(&url, &options, encrypt, &Environment::process())?, url))
    })?;
    // The poller that learns other replicas' key rotations and revocations: one per process.
    POLLER.call_once(|| {
        napi::bindgen_prelude::spawn(pg::watch::poll_forever());
    });
    Ok(PostgresDatabase { db, url, closed: std::sync::atomic::AtomicBool::new(false) })
}

/// `describe`: where the database is, without credentials.
#[napi(object, js_name = "PostgresStatus", object_from_js = false)]
pub struct JsPostgresStatus {
    /// `PostgreSQL at host:port/db`.
    pub database: String,
    /// The schema version now.
    pub schema_version: u32,
    /// Whether values are written sealed.
    pub encrypted: bool,
}

/// Every PostgreSQL database this process has open, with its connections now: the pool gauges of
/// `hoot-core/metrics` (lib/metrics.js), whichever thread opened them.
#[napi(js_name = "postgresPoolStatuses", skip_typescript)]
pub fn postgres_pool_statuses() -> Vec<JsPoolStatus> {
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    pg::open_databases()
        .iter()
        .map(|db| {
            let status = db.pool_status();
            JsPoolStatus {
                database: db.describe().trim_start_matches("PostgreSQL at ").to_string(),
                max_size: n(status.max_size),
                size: n(status.size),
                available: n(status.available),
                waiting: n(status.waiting),
                lanes_open: n(status.lanes_open),
                lane_calls: n(status.lane_calls),
            }
        })
        .collect()
}

/// A database's connections now: what the pool gauges of `hoot-core`'s metrics show.
#[napi(object, js_name = "PoolStatus", object_from_js = false)]
pub struct JsPoolStatus {
    /// `host:port/database` (no user name, no password).
    pub database: String,
    /// The most connections the pool opens (the shared lanes are besides).
    pub max_size: u32,
    /// The pool's connections open now.
    pub size: u32,
    /// Of those, the idle ones.
    pub available: u32,
    /// Calls waiting for a pool connection.
    pub waiting: u32,
    /// The shared pipelined connections (lanes) open now.
    pub lanes_open: u32,
    /// The calls those lanes carry now.
    pub lane_calls: u32,
}

/// What a copy from SQLite did to one table.
#[napi(object, js_name = "TableCopy", object_from_js = false)]
pub struct JsTableCopy {
    /// The table.
    pub table: String,
    /// Rows in the file.
    pub rows: u32,
    /// Rows PostgreSQL did not have.
    pub inserted: u32,
    /// Rows PostgreSQL had with other values (now the file's).
    pub updated: u32,
}

/// What `copyFromSqlite` did.
#[napi(object, js_name = "CopyReport", object_from_js = false)]
pub struct JsCopyReport {
    /// The file read.
    pub from: String,
    /// The database written.
    pub to: String,
    /// Whether the file had Hoot's legacy single-user schema.
    pub legacy: bool,
    /// The user the legacy rows belong to.
    pub legacy_user_id: Option<String>,
    /// Distinct users copied.
    pub users: u32,
    /// Users of the file left out: PostgreSQL revoked them after the file was taken.
    pub skipped_users: u32,
    /// Account links of the file left out: they do not verify under this process's store secret.
    pub dropped_links: u32,
    /// Each table.
    pub tables: Vec<JsTableCopy>,
}

/// What `rotateKeys` did.
#[napi(object, js_name = "KeyRotation", object_from_js = false)]
pub struct JsKeyRotation {
    /// The new signing key.
    pub kid: String,
    /// The keys that still verify besides it.
    pub kept: Vec<String>,
    /// The keys removed.
    pub removed: Vec<String>,
}

impl PostgresDatabase {
    /// A database-level operation on this database, as a future of its own.
    fn call<R, F>(&self, f: impl FnOnce(Arc<pg::PgDatabase>) -> F) -> Call<R>
    where
        F: std::future::Future<Output = Result<R, HootError>> + Send + 'static,
    {
        Box::pin(f(Arc::clone(&self.db)))
    }
}

#[napi]
impl PostgresDatabase {
    /// The store of `userId` on this database.
    #[napi]
    pub fn store(&self, env: Env, user_id: Unknown) -> napi::Result<PostgresStore> {
        guarded(&env, || {
            let user_id = string_value(&user_id, "userId")?;
            Ok(PostgresStore { inner: UserStore::new(Arc::clone(&self.db), &user_id)? })
        })
    }

    /// Connects, makes or checks the schema, and says where the database is.
    #[napi(ts_return_type = "Promise<PostgresStatus>")]
    pub fn ready<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, JsPostgresStatus>> {
        let db = Arc::clone(&self.db);
        let call: Call<(String, bool)> = Box::pin(async move {
            let ring = db.ring().await?;
            Ok((db.describe().to_string(), ring.is_some()))
        });
        promise(env, &self.db, "connect to", call, |(database, encrypted)| JsPostgresStatus {
            database,
            schema_version: pg::schema::PG_SCHEMA_VERSION as u32,
            encrypted,
        })
    }

    /// Gives this handle back: the last open handle for the URL closes its pool (unless the key
    /// set follows it). Calls on this handle afterwards fail with `ERR_HOOT_DB` only once the pool
    /// is closed. Returns whether the pool was closed.
    #[napi]
    pub fn close(&self) -> bool {
        if self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return false;
        }
        pg::close(&self.url)
    }

    /// Deletes every user's verifiers older than `maxAgeSeconds` (default 600).
    #[napi(ts_args_type = "opts?: { maxAgeSeconds?: number }", ts_return_type = "Promise<number>")]
    pub fn cleanup_expired_verifiers<'e>(
        &self,
        env: &'e Env,
        opts: Option<Unknown>,
    ) -> napi::Result<PromiseRaw<'e, u32>> {
        let call = guarded(env, || {
            let max_age = verifier_max_age(Props::new(opts, "opts")?.number("maxAgeSeconds")?)?;
            Ok(self.call(move |db| async move {
                ops::cleanup_expired_verifiers(&*db, max_age, clock::unix_now() as i64).await
            }))
        })?;
        promise(env, &self.db, "delete from", call, count)
    }

    /// Hoot's favicon cache lookup: the URL, `null` when "no favicon" is cached, `undefined` when
    /// nothing fresh is.
    #[napi(
        ts_args_type = "serverUrl: string, oauthLogoUri?: string",
        ts_return_type = "Promise<string | null | undefined>"
    )]
    pub fn cached_favicon<'e>(
        &self,
        env: &'e Env,
        server_url: Unknown,
        oauth_logo_uri: Option<Unknown>,
    ) -> napi::Result<PromiseRaw<'e, Either<Option<String>, ()>>> {
        let call = guarded(env, || {
            let url = string_value(&server_url, "serverUrl")?;
            let logo = optional_string(oauth_logo_uri, "oauthLogoUri")?;
            Ok(self.call(move |db| async move {
                ops::cached_favicon(&*db, &url, logo.as_deref(), clock::unix_now() as i64).await
            }))
        })?;
        promise(env, &self.db, "read from", call, |found| found.map_or(Either::B(()), Either::A))
    }

    /// Caches a favicon lookup (`faviconUrl` null: none found).
    #[napi(
        ts_args_type = "serverUrl: string, faviconUrl: string | null, oauthLogoUri?: string",
        ts_return_type = "Promise<void>"
    )]
    pub fn cache_favicon<'e>(
        &self,
        env: &'e Env,
        server_url: Unknown,
        favicon_url: Option<Unknown>,
        oauth_logo_uri: Option<Unknown>,
    ) -> napi::Result<PromiseRaw<'e, ()>> {
        let call = guarded(env, || {
            let url = string_value(&server_url, "serverUrl")?;
            let favicon = match favicon_url {
                Some(v) if !matches!(super::args::type_of(&v)?, napi::ValueType::Null | napi::ValueType::Undefined) => {
                    Some(string_value(&v, "faviconUrl")?)
                }
                _ => None,
            };
            let logo = optional_string(oauth_logo_uri, "oauthLogoUri")?;
            Ok(self.call(move |db| async move {
                ops::cache_favicon(&*db, &url, favicon.as_deref(), logo.as_deref(), clock::unix_now() as i64).await
            }))
        })?;
        promise(env, &self.db, "write to", call, |()| ())
    }

    /// Revokes every token of `userId` issued until now, on every replica.
    #[napi(ts_args_type = "userId: string", ts_return_type = "Promise<number>")]
    pub fn revoke_user_tokens<'e>(&self, env: &'e Env, user_id: Unknown) -> napi::Result<PromiseRaw<'e, f64>> {
        let call = guarded(env, || {
            let user_id = string_value(&user_id, "userId")?;
            Ok(self
                .call(move |db| async move { ops::revoke_user_tokens(&*db, &user_id, clock::unix_now() as i64).await }))
        })?;
        promise(env, &self.db, "write to", call, |before| before as f64)
    }

    /// The user an account is linked to (`undefined` when none).
    #[napi(ts_args_type = "accountId: string", ts_return_type = "Promise<string | null>")]
    pub fn user_id_for_account<'e>(&self, env: &'e Env, account_id: Unknown) -> napi::Result<PromiseRaw<'e, Text>> {
        let call = guarded(env, || {
            let account_id = string_value(&account_id, "accountId")?;
            Ok(self.call(move |db| async move { ops::user_id_for_account(&*db, &account_id).await }))
        })?;
        promise(env, &self.db, "read from", call, |t| t)
    }

    /// Redeems a transfer code made by any replica's `store.createTransferCode`, once; throttled
    /// in all and per `opts.source`, as SQLite's `redeemTransferCode`. A legacy user's code
    /// (`legacyTransferCode`) needs `opts.intoUserId`, the redeeming browser's user, into which the
    /// legacy data moves.
    #[napi(
        ts_args_type = "code: string, opts?: { intoUserId?: string; source?: string }",
        ts_return_type = "Promise<RedeemedTransfer>"
    )]
    pub fn redeem_transfer_code<'e>(
        &self,
        env: &'e Env,
        code: Unknown,
        opts: Option<Unknown>,
    ) -> napi::Result<PromiseRaw<'e, super::store::JsRedeemed>> {
        let call = guarded(env, || {
            let code = string_value(&code, "code")?;
            let props = Props::new(opts, "opts")?;
            let into = props.string("intoUserId")?;
            let source = props.string("source")?;
            Ok(self.call(move |db| async move {
                ops::redeem_transfer_code(&*db, &code, into.as_deref(), source.as_deref(), clock::unix_now() as i64)
                    .await
            }))
        })?;
        promise(env, &self.db, "redeem a transfer code in", call, |redeemed| super::store::JsRedeemed {
            user_id: redeemed.user_id,
            moved: redeemed.moved.map(super::store::move_js),
        })
    }

    /// A transfer code for the legacy user a copied single-user file brought (`legacy-user-<ms>`),
    /// so that its OAuth state moves to the browser that redeems it (with `intoUserId`); `null`
    /// when the database holds no legacy data. As SQLite's `legacyTransferCode`.
    #[napi(ts_args_type = "opts?: { ttlSeconds?: number }", ts_return_type = "Promise<LegacyTransferCode | null>")]
    pub fn legacy_transfer_code<'e>(
        &self,
        env: &'e Env,
        opts: Option<Unknown>,
    ) -> napi::Result<PromiseRaw<'e, Option<super::store::JsLegacyTransferCode>>> {
        let ttl = guarded(env, || crate::store::identity::code_ttl(Props::new(opts, "opts")?.number("ttlSeconds")?))?;
        let call =
            self.call(move |db| async move { ops::legacy_transfer_code(&db, ttl, clock::unix_now() as i64).await });
        promise(env, &self.db, "write to", call, |made| {
            made.map(|(legacy_user_id, code, expires_at)| super::store::JsLegacyTransferCode {
                code,
                expires_at: expires_at as f64,
                legacy_user_id,
            })
        })
    }

    /// Moves every row of `fromUserId` to `toUserId` in one transaction and empties `fromUserId`.
    /// `opts.onConflict` says what happens where both have state for a server: `'fail'` (the
    /// default: nothing moves), `'keep-target'` or `'take-source'`. As SQLite's `moveUserData`.
    #[napi(
        ts_args_type = "fromUserId: string, toUserId: string, opts?: { onConflict?: 'fail' | 'keep-target' | 'take-source' }",
        ts_return_type = "Promise<MoveReport>"
    )]
    pub fn move_user_data<'e>(
        &self,
        env: &'e Env,
        from: Unknown,
        to: Unknown,
        opts: Option<Unknown>,
    ) -> napi::Result<PromiseRaw<'e, super::store::JsMoveReport>> {
        let call = guarded(env, || {
            let from = string_value(&from, "fromUserId")?;
            let to = string_value(&to, "toUserId")?;
            let on_conflict = match Props::new(opts, "opts")?.string("onConflict")? {
                Some(value) => OnConflict::parse(&value)?,
                None => OnConflict::Fail,
            };
            Ok(self.call(move |db| async move { ops::move_user_data(&*db, &from, &to, on_conflict).await }))
        })?;
        promise(env, &self.db, "move user data in", call, super::store::move_js)
    }

    /// Counts of the users in the database and of those active in the last 1, 7 and 30 days (by
    /// `store.touch()`). Names no one. As SQLite's `activitySummary`.
    #[napi(ts_return_type = "Promise<ActivitySummary>")]
    pub fn activity_summary<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, super::store::JsActivitySummary>> {
        let call = self.call(|db| async move { ops::activity_summary(&*db, clock::unix_now() as i64).await });
        promise(env, &self.db, "read from", call, super::store::summary_js)
    }

    /// Removes, in one transaction, every row of each user inactive for more than `inactiveDays`
    /// days (none with `dryRun`, which reports the same). A user with data but no recorded
    /// activity is recorded as active by the first run that sees them. As SQLite's
    /// `purgeInactiveUsers`.
    #[napi(ts_args_type = "opts: { inactiveDays: number; dryRun?: boolean }", ts_return_type = "Promise<PurgeReport>")]
    pub fn purge_inactive_users<'e>(
        &self,
        env: &'e Env,
        opts: Option<Unknown>,
    ) -> napi::Result<PromiseRaw<'e, super::store::JsPurgeReport>> {
        let call = guarded(env, || {
            let props = Props::new(opts, "opts")?;
            let days = props
                .number("inactiveDays")?
                .ok_or_else(|| HootError::arg_type("opts.inactiveDays", "of type number", "undefined".to_string()))?;
            let days = crate::store::users::inactive_days(days)?;
            let dry_run = props.boolean("dryRun")?.unwrap_or(false);
            Ok(self.call(move |db| async move {
                ops::purge_inactive_users(&*db, days, dry_run, clock::unix_now() as i64).await
            }))
        })?;
        promise(env, &self.db, "delete from", call, |report| super::store::JsPurgeReport {
            users: count(report.users),
            rows: count(report.rows),
            adopted: count(report.adopted),
            dry_run: report.dry_run,
        })
    }

    /// What the database holds, read without changing anything (doctor's report): `path` is
    /// where it is (`PostgreSQL at host:port/db`), `legacyTables` always empty. No key needed.
    #[napi(ts_return_type = "Promise<DatabaseStatus>")]
    pub fn inspect<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, super::store::JsDatabaseStatus>> {
        let call: Call<_> = Box::pin(pg::inspect::inspect(Arc::clone(&self.db), clock::unix_now() as i64));
        let described = self.db.describe().to_string();
        promise(env, &self.db, "inspect", call, move |status| {
            let up_to_date = pg::inspect::up_to_date(&status);
            super::store::status_js(described, status, up_to_date)
        })
    }

    /// Seals every plaintext value (and the signing keys) in one transaction, with the key from
    /// `HOOT_ENCRYPTION_KEY` or the key file (made on first use). With `rotate`, a new key goes
    /// first in the key file (with `HOOT_ENCRYPTION_KEY`, put it first there) and every value is
    /// sealed again under it. Every replica's next write seals. As SQLite's `encryptDatabase`.
    #[napi(ts_args_type = "opts?: { rotate?: boolean }", ts_return_type = "Promise<EncryptionReport>")]
    pub fn encrypt<'e>(
        &self,
        env: &'e Env,
        opts: Option<Unknown>,
    ) -> napi::Result<PromiseRaw<'e, super::store::JsEncryptionReport>> {
        let rotate = guarded(env, || Ok(Props::new(opts, "opts")?.boolean("rotate")?.unwrap_or(false)))?;
        transition(env, pg::encryption::encrypt(Arc::clone(&self.db), rotate, clock::unix_now() as i64))
    }

    /// Opens every sealed value back into plaintext in one transaction and marks the database
    /// plain, leaving a proof that makes every replica's next write plain. As SQLite's
    /// `decryptDatabase`.
    #[napi(ts_return_type = "Promise<EncryptionReport>")]
    pub fn decrypt<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, super::store::JsEncryptionReport>> {
        transition(env, pg::encryption::decrypt(Arc::clone(&self.db)))
    }

    /// Loads the shared key set (making its first key if there is none) as this process's.
    #[napi(ts_return_type = "Promise<KeysInfo>")]
    pub fn load_keys<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, super::keys::KeysInfo>> {
        let db = Arc::clone(&self.db);
        let call: Call<super::keys::KeysInfo> =
            Box::pin(async move { Ok(super::keys::info(&*pg::watch::load_keys(db).await?)) });
        promise(env, &self.db, "load the signing keys of", call, |info| info)
    }

    /// A new signing key for every replica; the previous one keeps verifying unless
    /// `dropPrevious`.
    #[napi(ts_args_type = "opts?: { dropPrevious?: boolean }", ts_return_type = "Promise<KeyRotation>")]
    pub fn rotate_keys<'e>(&self, env: &'e Env, opts: Option<Unknown>) -> napi::Result<PromiseRaw<'e, JsKeyRotation>> {
        let drop_previous = guarded(env, || Ok(Props::new(opts, "opts")?.boolean("dropPrevious")?.unwrap_or(false)))?;
        let db = Arc::clone(&self.db);
        let call: Call<pg::keys::Rotation> = Box::pin(async move {
            let rotation = pg::keys::rotate(Arc::clone(&db), drop_previous).await?;
            // This process's own key set follows at once when it comes from this database.
            if pg::watch::keys_database().is_some_and(|d| Arc::ptr_eq(&d, &db)) {
                pg::watch::poll_once().await;
            }
            Ok(rotation)
        });
        promise(env, &self.db, "rotate the signing keys of", call, |r| JsKeyRotation {
            kid: r.kid,
            kept: r.kept,
            removed: r.removed,
        })
    }

    /// Copies every row of the SQLite file at `path` (legacy or current) in one transaction. A
    /// file copied before is refused unless `force`; revocations are never lowered, and users
    /// revoked on PostgreSQL after the file was taken are skipped.
    #[napi(ts_args_type = "path: string, opts?: { force?: boolean }", ts_return_type = "Promise<CopyReport>")]
    pub fn copy_from_sqlite<'e>(
        &self,
        env: &'e Env,
        path: Unknown,
        opts: Option<Unknown>,
    ) -> napi::Result<PromiseRaw<'e, JsCopyReport>> {
        let (path, force) = guarded(env, || {
            let path = string_value(&path, "path")?;
            if path.is_empty() {
                return Err(HootError::arg_value("path", "must not be empty"));
            }
            let force = Props::new(opts, "opts")?.boolean("force")?.unwrap_or(false);
            Ok((Environment::process().absolute(std::path::Path::new(&path)), force))
        })?;
        let call = crate::copy::copy_sqlite(Arc::clone(&self.db), path, clock::unix_now_ms(), force);
        let db = Arc::clone(&self.db);
        // A copy may take longer than one call's bound: it is one transaction, under the statement
        // timeout for each of its statements.
        let run = async move {
            let _ = db;
            tokio::spawn(call).await.map_err(|e| HootError::Internal(format!("the copy stopped: {e}")))?
        };
        settled(env, run, |r| JsCopyReport {
            from: r.from.display().to_string(),
            to: r.to,
            legacy: r.legacy,
            legacy_user_id: r.legacy_user_id,
            users: count(r.users),
            skipped_users: count(r.skipped_users),
            dropped_links: count(r.dropped_links),
            tables: r
                .tables
                .into_iter()
                .map(|t| JsTableCopy {
                    table: t.table,
                    rows: count(t.rows),
                    inserted: count(t.inserted),
                    updated: count(t.updated),
                })
                .collect(),
        })
    }
}

/// One user's store on PostgreSQL: `OAuthStore`'s methods, each returning a promise (typed as
/// lib/header.d.ts's `UserStore`).
#[napi]
pub struct PostgresStore {
    inner: UserStore<pg::PgDatabase>,
}

/// Stored JSON text resolves as a string (lib/database.js parses it) or `null`.
type Text = Option<String>;

#[napi]
impl PostgresStore {
    /// The user every call is scoped to.
    #[napi(getter)]
    pub fn user_id(&self) -> String {
        self.inner.user_id().to_string()
    }

    fn db(&self) -> &Arc<pg::PgDatabase> {
        self.inner.backend()
    }

    /// A call of the store core on this user's store, as a future of its own.
    fn call<R, F>(&self, f: impl FnOnce(UserStore<pg::PgDatabase>) -> F) -> Call<R>
    where
        F: std::future::Future<Output = Result<R, HootError>> + Send + 'static,
    {
        Box::pin(f(self.inner.clone()))
    }

    /// The client registration's JSON text.
    #[napi(ts_args_type = "serverId: string", ts_return_type = "Promise<string | null>")]
    pub fn client_information_text<'e>(&self, env: &'e Env, server_id: Unknown) -> napi::Result<PromiseRaw<'e, Text>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            Ok(self.call(move |s| async move { s.client_information(&server_id).await }))
        })?;
        promise(env, self.db(), "read from", call, |t| t)
    }

    /// Saves the client registration.
    #[napi(ts_args_type = "serverId: string, info: object", ts_return_type = "Promise<void>")]
    pub fn save_client_information<'e>(
        &self,
        env: &'e Env,
        server_id: Unknown,
        info: Unknown,
    ) -> napi::Result<PromiseRaw<'e, ()>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let info = json_object_arg(env, info, "info")?;
            Ok(self.call(move |s| async move { s.save_client_information(&server_id, &info).await }))
        })?;
        promise(env, self.db(), "write to", call, |()| ())
    }

    /// The OAuth tokens' JSON text.
    #[napi(ts_args_type = "serverId: string", ts_return_type = "Promise<string | null>")]
    pub fn tokens_text<'e>(&self, env: &'e Env, server_id: Unknown) -> napi::Result<PromiseRaw<'e, Text>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            Ok(self.call(move |s| async move { s.tokens(&server_id).await }))
        })?;
        promise(env, self.db(), "read from", call, |t| t)
    }

    /// Saves the OAuth tokens; durable when the promise resolves.
    #[napi(ts_args_type = "serverId: string, tokens: object", ts_return_type = "Promise<void>")]
    pub fn save_tokens<'e>(
        &self,
        env: &'e Env,
        server_id: Unknown,
        tokens: Unknown,
    ) -> napi::Result<PromiseRaw<'e, ()>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let tokens = json_object_arg(env, tokens, "tokens")?;
            Ok(self.call(move |s| async move { s.save_tokens(&server_id, &tokens).await }))
        })?;
        promise(env, self.db(), "write to", call, |()| ())
    }

    /// The PKCE verifier, unless older than 10 minutes.
    #[napi(ts_args_type = "serverId: string", ts_return_type = "Promise<string | null>")]
    pub fn code_verifier<'e>(&self, env: &'e Env, server_id: Unknown) -> napi::Result<PromiseRaw<'e, Text>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            Ok(self.call(move |s| async move { s.code_verifier(&server_id, clock::unix_now() as i64).await }))
        })?;
        promise(env, self.db(), "read from", call, |t| t)
    }

    /// Saves the PKCE verifier.
    #[napi(ts_args_type = "serverId: string, verifier: string", ts_return_type = "Promise<void>")]
    pub fn save_code_verifier<'e>(
        &self,
        env: &'e Env,
        server_id: Unknown,
        verifier: Unknown,
    ) -> napi::Result<PromiseRaw<'e, ()>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let verifier = string_value(&verifier, "verifier")?;
            Ok(self.call(move |s| async move {
                s.save_code_verifier(&server_id, &verifier, clock::unix_now() as i64).await
            }))
        })?;
        promise(env, self.db(), "write to", call, |()| ())
    }

    /// The discovery state's JSON text.
    #[napi(ts_args_type = "serverId: string", ts_return_type = "Promise<string | null>")]
    pub fn discovery_state_text<'e>(&self, env: &'e Env, server_id: Unknown) -> napi::Result<PromiseRaw<'e, Text>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            Ok(self.call(move |s| async move { s.discovery_state(&server_id).await }))
        })?;
        promise(env, self.db(), "read from", call, |t| t)
    }

    /// Saves the discovery state.
    #[napi(ts_args_type = "serverId: string, state: object", ts_return_type = "Promise<void>")]
    pub fn save_discovery_state<'e>(
        &self,
        env: &'e Env,
        server_id: Unknown,
        state: Unknown,
    ) -> napi::Result<PromiseRaw<'e, ()>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let state = json_object_arg(env, state, "state")?;
            Ok(self.call(
                move |s| async move { s.save_discovery_state(&server_id, &state, clock::unix_now() as i64).await },
            ))
        })?;
        promise(env, self.db(), "write to", call, |()| ())
    }

    /// Saves the OAuth `state` of the authorization starting now.
    #[napi(ts_args_type = "serverId: string, state: string", ts_return_type = "Promise<void>")]
    pub fn save_authorization_state<'e>(
        &self,
        env: &'e Env,
        server_id: Unknown,
        state: Unknown,
    ) -> napi::Result<PromiseRaw<'e, ()>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let state = string_value(&state, "state")?;
            Ok(self.call(move |s| async move {
                s.save_authorization_state(&server_id, &state, clock::unix_now() as i64).await
            }))
        })?;
        promise(env, self.db(), "write to", call, |()| ())
    }

    /// Whether `state` is the saved one (fresh); removes it either way.
    #[napi(ts_args_type = "serverId: string, state: string", ts_return_type = "Promise<boolean>")]
    pub fn consume_authorization_state<'e>(
        &self,
        env: &'e Env,
        server_id: Unknown,
        state: Unknown,
    ) -> napi::Result<PromiseRaw<'e, bool>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let state = string_value(&state, "state")?;
            Ok(self.call(move |s| async move {
                s.consume_authorization_state(&server_id, &state, clock::unix_now() as i64).await
            }))
        })?;
        promise(env, self.db(), "delete from", call, |b| b)
    }

    /// Removes credentials in `scope`; with `expected`, the tokens and client registration only
    /// while they are still those versions.
    #[napi(
        ts_args_type = "serverId: string, scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery', expected?: { tokens?: number; clientInformation?: number }",
        ts_return_type = "Promise<void>"
    )]
    pub fn invalidate_credentials<'e>(
        &self,
        env: &'e Env,
        server_id: Unknown,
        scope: Unknown,
        expected: Option<Unknown>,
    ) -> napi::Result<PromiseRaw<'e, ()>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let scope = CredentialScope::parse(&string_value(&scope, "scope")?)?;
            let expected = super::store::expected_versions(expected)?;
            Ok(self.call(move |s| async move { s.invalidate_credentials_if(&server_id, scope, expected).await }))
        })?;
        promise(env, self.db(), "delete from", call, |_| ())
    }

    /// The OAuth tokens as `<version>:<JSON text>`.
    #[napi(ts_args_type = "serverId: string", ts_return_type = "Promise<string | null>")]
    pub fn tokens_versioned<'e>(&self, env: &'e Env, server_id: Unknown) -> napi::Result<PromiseRaw<'e, Text>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            Ok(self.call(move |s| async move { s.tokens_versioned(&server_id).await }))
        })?;
        promise(env, self.db(), "read from", call, super::store::versioned_text)
    }

    /// The client registration as `<version>:<JSON text>`.
    #[napi(ts_args_type = "serverId: string", ts_return_type = "Promise<string | null>")]
    pub fn client_information_versioned<'e>(
        &self,
        env: &'e Env,
        server_id: Unknown,
    ) -> napi::Result<PromiseRaw<'e, Text>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            Ok(self.call(move |s| async move { s.client_information_versioned(&server_id).await }))
        })?;
        promise(env, self.db(), "read from", call, super::store::versioned_text)
    }

    /// Claims the refresh of this user's credential for `serverId` for `holder`, for
    /// `opts.leaseMs`, unless another holder's claim is live; resolves to whether it has it.
    #[napi(
        ts_args_type = "serverId: string, holder: string, opts: { leaseMs: number }",
        ts_return_type = "Promise<boolean>"
    )]
    pub fn claim_refresh<'e>(
        &self,
        env: &'e Env,
        server_id: Unknown,
        holder: Unknown,
        opts: Option<Unknown>,
    ) -> napi::Result<PromiseRaw<'e, bool>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let holder = string_value(&holder, "holder")?;
            let lease_ms = super::store::lease_ms(opts)?;
            Ok(self.call(
                move |s| async move { s.claim_refresh(&server_id, &holder, clock::unix_now_ms(), lease_ms).await },
            ))
        })?;
        promise(env, self.db(), "write to", call, |b| b)
    }

    /// Ends `holder`'s claim on the refresh for `serverId`.
    #[napi(ts_args_type = "serverId: string, holder: string", ts_return_type = "Promise<void>")]
    pub fn release_refresh<'e>(
        &self,
        env: &'e Env,
        server_id: Unknown,
        holder: Unknown,
    ) -> napi::Result<PromiseRaw<'e, ()>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let holder = string_value(&holder, "holder")?;
            Ok(self.call(move |s| async move { s.release_refresh(&server_id, &holder).await }))
        })?;
        promise(env, self.db(), "delete from", call, |()| ())
    }

    /// The server config's JSON text.
    #[napi(ts_args_type = "serverId: string", ts_return_type = "Promise<string | null>")]
    pub fn server_config_text<'e>(&self, env: &'e Env, server_id: Unknown) -> napi::Result<PromiseRaw<'e, Text>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            Ok(self.call(move |s| async move { s.server_config(&server_id).await }))
        })?;
        promise(env, self.db(), "read from", call, |t| t)
    }

    /// Saves the server config.
    #[napi(ts_args_type = "serverId: string, config: object", ts_return_type = "Promise<void>")]
    pub fn save_server_config<'e>(
        &self,
        env: &'e Env,
        server_id: Unknown,
        config: Unknown,
    ) -> napi::Result<PromiseRaw<'e, ()>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            let config = json_object_arg(env, config, "config")?;
            Ok(self.call(
                move |s| async move { s.save_server_config(&server_id, &config, clock::unix_now() as i64).await },
            ))
        })?;
        promise(env, self.db(), "write to", call, |()| ())
    }

    /// Removes the server config.
    #[napi(ts_args_type = "serverId: string", ts_return_type = "Promise<void>")]
    pub fn delete_server_config<'e>(&self, env: &'e Env, server_id: Unknown) -> napi::Result<PromiseRaw<'e, ()>> {
        let call = guarded(env, || {
            let server_id = string_value(&server_id, "serverId")?;
            Ok(self.call(move |s| async move { s.delete_server_config(&server_id).await }))
        })?;
        promise(env, self.db(), "delete from", call, |_| ())
    }

    /// Server ids with any stored state, sorted.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn servers<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, Vec<String>>> {
        promise(env, self.db(), "read from", self.call(|s| async move { s.servers().await }), |s| s)
    }

    /// Records this user's activity (at most one write an hour from this process).
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn touch<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, bool>> {
        let call = self.call(|s| async move {
            s.touch(clock::unix_now() as i64, crate::store::users::TOUCH_INTERVAL_SECONDS).await
        });
        promise(env, self.db(), "write to", call, |b| b)
    }

    /// A one-time code that moves this user to another device (`redeemTransferCode` on any replica).
    #[napi(
        ts_args_type = "opts?: { ttlSeconds?: number; tokenIssuedAt?: number }",
        ts_return_type = "Promise<TransferCode>"
    )]
    pub fn create_transfer_code<'e>(
        &self,
        env: &'e Env,
        opts: Option<Unknown>,
    ) -> napi::Result<PromiseRaw<'e, super::store::JsTransferCode>> {
        let call = guarded(env, || {
            let props = Props::new(opts, "opts")?;
            let ttl = crate::store::identity::code_ttl(props.number("ttlSeconds")?)?;
            let now = clock::unix_now() as i64;
            let derived_from = crate::store::identity::derived_from(props.number("tokenIssuedAt")?, now)?;
            Ok(self.call(move |s| async move { s.create_transfer_code(ttl, derived_from, now).await }))
        })?;
        promise(env, self.db(), "write to", call, |(code, expires_at)| super::store::JsTransferCode {
            code,
            expires_at: expires_at as f64,
        })
    }

    /// Links an account id to this user; one linked to another user is refused.
    #[napi(ts_args_type = "accountId: string", ts_return_type = "Promise<void>")]
    pub fn link_account<'e>(&self, env: &'e Env, account_id: Unknown) -> napi::Result<PromiseRaw<'e, ()>> {
        let call = guarded(env, || {
            let account_id = string_value(&account_id, "accountId")?;
            Ok(self.call(move |s| async move { s.link_account(&account_id, clock::unix_now() as i64).await }))
        })?;
        promise(env, self.db(), "write to", call, |()| ())
    }

    /// Unlinks an account from this user; resolves to whether it was linked to them.
    #[napi(ts_args_type = "accountId: string", ts_return_type = "Promise<boolean>")]
    pub fn unlink_account<'e>(&self, env: &'e Env, account_id: Unknown) -> napi::Result<PromiseRaw<'e, bool>> {
        let call = guarded(env, || {
            let account_id = string_value(&account_id, "accountId")?;
            Ok(self.call(move |s| async move { s.unlink_account(&account_id).await }))
        })?;
        promise(env, self.db(), "delete from", call, |b| b)
    }

    /// Forgets this user; with `revokeTokens`, revokes their tokens first.
    #[napi(ts_args_type = "opts?: { revokeTokens?: boolean }", ts_return_type = "Promise<number>")]
    pub fn delete_all<'e>(&self, env: &'e Env, opts: Option<Unknown>) -> napi::Result<PromiseRaw<'e, u32>> {
        let revoke = guarded(env, || Ok(Props::new(opts, "opts")?.boolean("revokeTokens")?.unwrap_or(false)))?;
        let call = self.call(move |s| async move { s.delete_all(revoke.then(|| clock::unix_now() as i64)).await });
        promise(env, self.db(), "delete from", call, count)
    }
}
