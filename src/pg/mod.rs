//! The store and the key set on PostgreSQL, for several Hoot servers sharing one state: the same
//! tables and columns as the SQLite file (Hoot's names), reached through a pool of async
//! connections (deadpool-postgres over tokio-postgres, TLS by rustls). Nothing here knows Node:
//! every call is a future, run by napi's tokio runtime in the binding and by a runtime of their
//! own in the tests.
//!
//! A database is opened once per process and URL (`open`) and shared by every store, adapter and
//! key set that names it. Its schema is made (or checked) on first use, under a lock every replica
//! takes, so replicas starting together migrate it once. Every call is bounded: getting a
//! connection by `connectTimeoutMs`, each statement by `statementTimeoutMs` on the server, and the
//! whole call by both on the client, for a server that stops answering. A call that fails leaves
//! nothing half done (each is one statement or one transaction), and a broken connection is
//! dropped by the pool, which opens a new one on the next call.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use tokio::sync::OnceCell;

use crate::env::Environment;
use crate::error::HootError;
use crate::sealing::KeyRing;

pub mod backend;
pub mod config;
pub mod encryption;
pub mod identity;
pub mod inspect;
pub mod keys;
pub mod lanes;
pub mod moves;
pub mod schema;
pub mod users;
pub mod watch;

pub use config::{is_postgres_url, PgOptions, PgSettings};

/// The environment variable that puts the store (and, with `loadKeys`, the key set) on
/// PostgreSQL: a `postgres://` URL. A path, or nothing, keeps SQLite.
pub const HOOT_DATABASE_URL: &str = "HOOT_DATABASE_URL";

/// A database's connections at one moment.
#[derive(Debug, Clone, Copy)]
pub struct PoolStatus {
    /// The most connections the pool opens (the lanes are besides).
    pub max_size: usize,
    /// The pool's connections open now.
    pub size: usize,
    /// Of those, the idle ones.
    pub available: usize,
    /// Calls waiting for a pool connection.
    pub waiting: usize,
    /// The lanes (shared pipelined connections) open now.
    pub lanes_open: usize,
    /// The calls those lanes carry now.
    pub lane_calls: usize,
}

/// One PostgreSQL database, as this process uses it.
pub struct PgDatabase {
    pool: Pool,
    /// The connections single statements share (`lanes`); the pool's carry transactions.
    lanes: lanes::Lanes,
    described: String,
    settings: PgSettings,
    /// The schema, made or checked once, and the encryption state read at open.
    ready: OnceCell<()>,
    /// The keys writes are sealed with (`None`: plain), as the database's `hoot_encryption` and
    /// this process's environment say: set at open, then by `encryption::for_write` when another
    /// process changed the state, and by this process's own `encrypt` and `decrypt`.
    sealer: RwLock<Option<Arc<KeyRing>>>,
    /// When this process started sealing this database's writes (ms): a decrypt recorded before
    /// then does not stop it (`encryption::for_write`).
    sealing_since: AtomicI64,
    encrypt_requested: bool,
    env: Environment,
    /// Handles `open` gave out and `close` has not taken back.
    handles: AtomicUsize,
}

impl std::fmt::Debug for PgDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDatabase").field("at", &self.described).finish_non_exhaustive()
    }
}

static OPEN: Mutex<Option<HashMap<String, Arc<PgDatabase>>>> = Mutex::new(None);

/// The database at `url`, opened (its pool made; no connection yet) the first time this process
/// names it, with `opts`; later calls share it, and their options must match or be absent.
/// `encrypt` turns encryption at rest on for its writes (as `HOOT_ENCRYPT_AT_REST=1` does).
pub fn open(url: &str, opts: &PgOptions, encrypt: bool, env: &Environment) -> Result<Arc<PgDatabase>, HootError> {
    let settings = opts.settings()?;
    let target = config::parse_url(url)?;
    let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    let open = open.get_or_insert_with(HashMap::new);
    if let Some(db) = open.get(url) {
        if *opts != PgOptions::default() && db.settings != settings {
            return Err(HootError::arg_value(
                "opts",
                format!("differ from those {} was opened with in this process; close it first", db.described),
            ));
        }
        if encrypt && !db.encrypt_requested {
            return Err(HootError::arg_value(
                "opts.encryption",
                format!("cannot turn on for {}, opened without it in this process; close it first", db.described),
            ));
        }
        db.handles.fetch_add(1, Ordering::AcqRel);
        return Ok(Arc::clone(db));
    }
    let db = Arc::new(PgDatabase::new(target, settings, encrypt, env.clone())?);
    db.handles.fetch_add(1, Ordering::AcqRel);
    open.insert(url.to_string(), Arc::clone(&db));
    Ok(db)
}

/// Gives back one handle `open` gave for `url`. The last one closes the pool (in-flight calls
/// finish; a later `open` makes a new one), unless the process's key set follows the database,
/// which keeps it open for the poller. Returns whether the pool was closed.
pub fn close(url: &str) -> bool {
    let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    let Some(db) = open.as_ref().and_then(|o| o.get(url)).map(Arc::clone) else { return false };
    let before = db.handles.fetch_sub(1, Ordering::AcqRel);
    let followed = watch::keys_database().is_some_and(|k| Arc::ptr_eq(&k, &db));
    if before > 1 || followed {
        db.handles.store(before.saturating_sub(1), Ordering::Release);
        return false;
    }
    if let Some(o) = open.as_mut() {
        o.remove(url);
    }
    db.pool.close();
    db.lanes.close();
    true
}

/// The URLs open in this process (the poller reads each).
pub(crate) fn open_databases() -> Vec<Arc<PgDatabase>> {
    OPEN.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map_or_else(Vec::new, |o| o.values().cloned().collect())
}

impl PgDatabase {
    fn new(target: config::Target, settings: PgSettings, encrypt: bool, env: Environment) -> Result<Self, HootError> {
        let described = target.describe();
        let mut pg = target.config.clone();
        pg.connect_timeout(settings.connect_timeout);
        pg.keepalives(true);
        pg.keepalives_idle(std::time::Duration::from_secs(30));
        pg.keepalives_interval(std::time::Duration::from_secs(5));
        pg.keepalives_retries(3);
        // A connection whose sent data goes unacknowledged that long (a network gone silent) is
        // closed by the kernel, so the pool drops it rather than hand it out again.
        pg.tcp_user_timeout(settings.call_timeout());
        if pg.get_application_name().is_none() {
            pg.application_name("hoot-core");
        }
        // The server ends a statement that runs longer, and a session idle inside a transaction.
        let ms = settings.statement_timeout.as_millis();
        let mut options = pg.get_options().map(|o| format!("{o} ")).unwrap_or_default();
        options.push_str(&format!("-c statement_timeout={ms} -c idle_in_transaction_session_timeout={ms}"));
        pg.options(&options);
        // poolSize connections in all: one of them a lane from a poolSize of 2, two from 4, the
        // rest the pool's.
        let lane_count = match settings.pool_size {
            0 | 1 => 0,
            2 | 3 => 1,
            _ => 2,
        };
        let lanes = lanes::Lanes::new(lane_count, &target, pg.clone());
        let manager = if target.tls == config::Tls::Disable {
            Manager::from_config(pg, tokio_postgres::NoTls, manager_config())
        } else {
            Manager::from_config(pg, config::LazyTls::new(&target), manager_config())
        };
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.saturating_sub(lane_count).max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .build()
            .map_err(|e| HootError::Internal(format!("Cannot make the pool for {described}: {e}")))?;
        Ok(PgDatabase {
            pool,
            lanes,
            described,
            settings,
            ready: OnceCell::new(),
            sealer: RwLock::new(None),
            sealing_since: AtomicI64::new(crate::clock::unix_now_ms()),
            encrypt_requested: encrypt,
            env,
            handles: AtomicUsize::new(0),
        })
    }

    /// The pool's and the lanes' state now: what the pool gauges show.
    pub fn pool_status(&self) -> PoolStatus {
        let status = self.pool.status();
        let (lanes_open, lane_calls) = self.lanes.load();
        PoolStatus {
            max_size: status.max_size,
            size: status.size,
            available: status.available,
            waiting: status.waiting,
            lanes_open,
            lane_calls,
        }
    }

    /// `PostgreSQL at host:port/db`.
    pub fn describe(&self) -> &str {
        &self.described
    }

    /// The options in use.
    pub fn settings(&self) -> PgSettings {
        self.settings
    }

    /// Whether this process has reached the database yet (the poller reads only those: opening a
    /// database connects nothing by itself).
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.initialized()
    }

    /// A connection from the pool, the schema made first if this process has not yet.
    pub(crate) async fn conn(&self) -> Result<Object, HootError> {
        self.ring().await?;
        self.raw_conn().await
    }

    /// Where one read goes, the schema made first: a lane (shared, pipelined), else a pooled
    /// connection (no lanes, or each carrying a write).
    pub(crate) async fn reader(&self) -> Result<Conn, HootError> {
        self.ring().await?;
        match self.lanes.get().await {
            Ok(Some(lane)) => Ok(Conn::Lane(lane)),
            Ok(None) => Ok(Conn::Pool(Box::new(self.raw_conn().await?))),
            Err(e) => Err(self.error("connect to", &e)),
        }
    }

    /// Where one write goes, the schema made first: a lane with nothing in flight, else a pooled
    /// connection. A commit waits for the WAL flush, and a lane's statements wait for each other,
    /// so writes in flight together go on the pool's connections, where they share flushes.
    pub(crate) async fn writer(&self) -> Result<Conn, HootError> {
        self.ring().await?;
        match self.lanes.idle() {
            Some(lane) => Ok(Conn::Lane(lane)),
            None => Ok(Conn::Pool(Box::new(self.raw_conn().await?))),
        }
    }

    /// A connection, without the schema check (the schema is being made through it).
    async fn raw_conn(&self) -> Result<Object, HootError> {
        self.pool.get().await.map_err(|e| self.pool_error(&e))
    }

    /// The encryption keys writes are sealed with (`None`: plain), the schema made first.
    pub(crate) async fn ring(&self) -> Result<Option<Arc<KeyRing>>, HootError> {
        self.ready
            .get_or_try_init(|| async {
                let mut conn = self.raw_conn().await?;
                schema::ensure(&mut conn, self).await?;
                let ring = schema::encryption_at_open(&conn, self, self.encrypt_requested, &self.env).await?;
                self.set_sealer(ring);
                Ok::<(), HootError>(())
            })
            .await?;
        Ok(self.sealer())
    }

    /// The keys writes are sealed with now, as this process last learnt them.
    pub(crate) fn sealer(&self) -> Option<Arc<KeyRing>> {
        self.sealer.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sets (or, decrypted, clears) the keys writes are sealed with; turning sealing on notes when.
    pub(crate) fn set_sealer(&self, sealer: Option<Arc<KeyRing>>) {
        let mut slot = self.sealer.write().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() && sealer.is_some() {
            self.sealing_since.store(crate::clock::unix_now_ms(), Ordering::Release);
        }
        *slot = sealer;
    }

    /// When this process started sealing this database's writes (ms).
    pub(crate) fn sealing_since(&self) -> i64 {
        self.sealing_since.load(Ordering::Acquire)
    }

    /// The environment the keys come from.
    pub(crate) fn env(&self) -> &Environment {
        &self.env
    }

    /// The keys to open a value sealed with `key_id`: the database's, or, if they lack that key
    /// (another process ran `encrypt`, or `encrypt --rotate`, since this one opened it; or the
    /// database never turned encryption on here but holds values copied from an encrypted SQLite
    /// file), the key source's as they are now, as SQLite's `encryption::for_read`.
    pub(crate) async fn opening_ring(&self, key_id: &str) -> Result<Arc<KeyRing>, HootError> {
        let current = self.ring().await?;
        if let Some(ring) = current.as_ref().filter(|ring| ring.ids().iter().any(|id| id == key_id)) {
            return Ok(Arc::clone(ring));
        }
        let fresh = match KeyRing::load(&self.env)? {
            Some(fresh) => Arc::new(fresh),
            None => {
                return current.ok_or_else(|| {
                    HootError::Keys(format!(
                        "{} holds sealed values and this process has no encryption key: set HOOT_ENCRYPTION_KEY \
                         (or put ~/.hoot/keys/encryption-keys in place) with a key they were sealed with",
                        self.described
                    ))
                })
            }
        };
        // Kept for writes only when it holds every key the old one had (it is that key source, later).
        if current.as_ref().is_none_or(|old| old.ids().iter().all(|id| fresh.ids().contains(id))) {
            self.set_sealer(Some(Arc::clone(&fresh)));
        }
        Ok(fresh)
    }

    /// Runs `call`, failing with `ERR_HOOT_DB` if it takes longer than the connect and statement
    /// timeouts together (a server that stopped answering; the call is dropped, which closes its
    /// connection), and with `ERR_HOOT_INTERNAL` if it panics: the caller always gets an answer.
    /// The call runs in the caller's task (no task of its own: one less hand-off per call).
    pub async fn bounded<T>(&self, doing: &str, call: crate::store::backend::Call<'static, T>) -> Result<T, HootError> {
        let limit = self.settings.call_timeout();
        match tokio::time::timeout(limit, CatchUnwind(call)).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(HootError::Internal(format!("panic: {text}")))
            }
            Err(_) => {
                self.forget_idle_connections();
                Err(HootError::Db(format!(
                    "Cannot {doing} {}: no answer within {} ms (the server or the network stopped answering; \
                 raise connectTimeoutMs / statementTimeoutMs if the server is just slow)",
                    self.described,
                    limit.as_millis()
                )))
            }
        }
    }

    /// Drops every idle connection of the pool. After a call that did not finish in time, its
    /// connection went back to the pool still waiting for an answer that may never come; the next
    /// calls then open new ones instead of queueing behind it.
    pub(crate) fn forget_idle_connections(&self) {
        let _ = self.pool.retain(|_, _| false);
        self.lanes.forget();
    }

    fn pool_error(&self, e: &PoolError) -> HootError {
        let connect_ms = self.settings.connect_timeout.as_millis();
        match e {
            PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => HootError::Db(format!(
                "Cannot reach {}: all {} connections stayed busy for {connect_ms} ms (raise poolSize, or find the slow \
                 calls)",
                self.described,
                self.pool.status().max_size
            )),
            PoolError::Timeout(_) => HootError::Db(format!(
                "Cannot reach {}: no connection within {connect_ms} ms (check that the server is up and reachable; \
                 connectTimeoutMs sets the wait)",
                self.described
            )),
            PoolError::Backend(e) => self.error("connect to", e),
            PoolError::Closed => HootError::Db(format!("Cannot use {}: it was closed in this process", self.described)),
            other => HootError::Db(format!("Cannot reach {}: {other}", self.described)),
        }
    }

    /// `ERR_HOOT_DB` for a driver error while `doing` something: what the server said (its
    /// message and SQLSTATE, never the statement's values), or why the connection failed.
    pub(crate) fn error(&self, doing: &str, e: &tokio_postgres::Error) -> HootError {
        error_at(&self.described, doing, e)
    }
}

/// `PgDatabase::error` for a database named `described`.
pub(crate) fn error_at(described: &str, doing: &str, e: &tokio_postgres::Error) -> HootError {
    if let Some(db) = e.as_db_error() {
        let hint = match db.code().code() {
            "57014" => "the statement ran past statementTimeoutMs",
            "57P01" | "57P02" | "57P03" => "the server is shutting down or restarting; retry",
            "53300" => "the server has no connection slot left; lower poolSize or raise max_connections",
            "3D000" => "the database does not exist; create it or fix the URL",
            "28P01" | "28000" => "the server refused the user or password in the URL, or has no such user",
            "42501" => "the user in the URL lacks a privilege hoot-core needs (CREATE on the schema, then read/write)",
            _ => "see PostgreSQL's message",
        };
        // The server names the role in these (`role "x" does not exist`, `password authentication
        // failed for user "x"`, `too many connections for role "x"`, pg_hba.conf's `... user "x"`):
        // the database user is a secret half of the credentials, so only the code and hint go out.
        let code = db.code().code();
        let message = db.message();
        let names_role =
            code.starts_with("28") || code == "53300" || message.contains("role \"") || message.contains("user \"");
        let said = if names_role { "the server refused the connection" } else { message };
        return HootError::Db(format!("Cannot {doing} {described}: {said} (SQLSTATE {code}; {hint})"));
    }
    let cause = std::error::Error::source(e).map(|s| format!(": {s}")).unwrap_or_default();
    let hint = if e.is_closed() {
        "the connection was lost; the next call opens a new one"
    } else {
        "check that the server is up, reachable, and accepts this URL"
    };
    HootError::Db(format!("Cannot {doing} {described}: {e}{cause} ({hint})"))
}

fn manager_config() -> ManagerConfig {
    // Fast: a connection the server or network closed is known closed, and dropped, without a
    // round trip per call.
    ManagerConfig { recycling_method: RecyclingMethod::Fast }
}

/// The connection one statement runs on (`PgDatabase::reader`, `PgDatabase::writer`).
pub(crate) enum Conn {
    Lane(lanes::InUse),
    Pool(Box<Object>),
}

impl Conn {
    /// The client to run the statement on.
    pub(crate) fn client(&self) -> &tokio_postgres::Client {
        match self {
            Conn::Lane(lane) => lane.client(),
            Conn::Pool(conn) => conn,
        }
    }

    /// `sql`, prepared once per connection.
    pub(crate) async fn prepared(&self, sql: &str) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        match self {
            Conn::Lane(lane) => lane.prepared(sql).await,
            Conn::Pool(conn) => conn.prepare_cached(sql).await,
        }
    }
}

#[cfg(test)]
mod tests;

/// A future whose panic becomes its output (`Err` with the payload), so no panic leaves a call.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| std::pin::Pin::new(inner).poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

/// Statements prepared once per connection (deadpool's statement cache), so a call is one round
/// trip to the server instead of two (a parse, then the execution).
pub(crate) trait Prepared: Sync {
    /// `prepare_cached`.
    fn prepared<'a>(
        &'a self,
        sql: &'a str,
    ) -> impl Future<Output = Result<tokio_postgres::Statement, tokio_postgres::Error>> + Send + 'a;
    /// The statement's execution on this client.
    fn run<'a>(
        &'a self,
        stmt: &'a tokio_postgres::Statement,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>> + Send + 'a;
    /// Executes `sql` and returns the rows changed.
    fn exec<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a;
    /// Runs `sql` and returns its rows.
    fn rows<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>> + Send + 'a
    where
        Self: Sized,
    {
        async move {
            let stmt = self.prepared(sql).await?;
            self.run(&stmt, params).await
        }
    }
    /// Runs `sql` and returns its one row, if any (more than one is an error).
    fn row_opt<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<tokio_postgres::Row>, tokio_postgres::Error>> + Send + 'a
    where
        Self: Sized,
    {
        async move { Ok(self.rows(sql, params).await?.into_iter().next()) }
    }
}

/// The pooled client and a transaction on it have the same inherent methods: one impl for both.
macro_rules! prepared_for {
    ($($client:ty),*) => {$(
        impl Prepared for $client {
            fn prepared<'a>(
                &'a self,
                sql: &'a str,
            ) -> impl Future<Output = Result<tokio_postgres::Statement, tokio_postgres::Error>> + Send + 'a {
                self.prepare_cached(sql)
            }
            fn run<'a>(
                &'a self,
                stmt: &'a tokio_postgres::Statement,
                params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
            ) -> impl Future<Output = Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>> + Send + 'a {
                self.query(stmt, params)
            }
            async fn exec<'a>(
                &'a self,
                sql: &'a str,
                params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
            ) -> Result<u64, tokio_postgres::Error> {
                self.execute(&self.prepare_cached(sql).await?, params).await
            }
        }
    )*};
}
prepared_for!(deadpool_postgres::ClientWrapper, deadpool_postgres::Transaction<'_>);
