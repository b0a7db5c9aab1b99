//! One connection per database file per process: where the file is, how it is opened (WAL,
//! `synchronous=FULL`, a busy timeout, 0600), and the registry every `OAuthStore` shares.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::schema::{self, MigrationReport};
use crate::env::{self, Environment};
use crate::error::HootError;
use crate::private_fs::{create_private_dir, new_private_file};

/// The `dbPath` that names the process's one in-memory database.
pub const MEMORY: &str = ":memory:";
/// How long a statement waits for another process's lock before giving up with `ERR_HOOT_DB`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Opening (WAL switch, schema creation, migration) retries `SQLITE_BUSY` this long, so several
/// processes opening a brand-new file at once all succeed.
const OPEN_DEADLINE: Duration = Duration::from_secs(30);

/// A database: one file, or the process's one in-memory database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DbLocation {
    /// The process's one in-memory database (`':memory:'`).
    Memory,
    /// An absolute path with a canonical parent directory.
    File(PathBuf),
}

impl DbLocation {
    /// The path as messages and `inspectDatabase` show it.
    pub fn display(&self) -> String {
        match self {
            DbLocation::Memory => MEMORY.to_string(),
            DbLocation::File(path) => path.display().to_string(),
        }
    }
}

/// Where the database is: the `name` option (`dbPath` or `opts.dbPath`), else `$HOOT_DB_PATH`,
/// else `<home>/.hoot/hoot-mcp.db`, relative paths taken from the working directory. An empty
/// option is refused rather than read as the working directory. No directory is created here.
pub fn location(option: Option<&str>, name: &str, env: &Environment) -> Result<DbLocation, HootError> {
    if option == Some("") {
        return Err(HootError::arg_value(name, "must not be empty"));
    }
    let chosen = match option.map(PathBuf::from).or_else(|| env.path(env::HOOT_DB_PATH)) {
        Some(path) if path.as_os_str() == MEMORY => return Ok(DbLocation::Memory),
        Some(path) => env.absolute(&path),
        None => match env.hoot_dir() {
            Some(hoot) => hoot.join("hoot-mcp.db"),
            None => {
                return Err(HootError::Db(
                    "No home directory for ~/.hoot/hoot-mcp.db: set HOME, HOOT_DB_PATH, or pass { dbPath }".to_string(),
                ))
            }
        },
    };
    Ok(DbLocation::File(chosen))
}

/// What lies under a failed database operation.
pub enum Cause<'e> {
    /// SQLite refused, with the operating system's error behind it when SQLite saw one.
    Sqlite(&'e rusqlite::Error, Option<io::Error>),
    /// A file operation hoot-core made itself (creating the file, its directory, a backup).
    Io(&'e io::Error),
}

/// `ERR_HOOT_DB` for a file hoot-core will not use (`reason`: `not_a_database`,
/// `not_a_regular_file`, `hard_links`, `not_a_table`, `unknown_schema`, `newer_schema`), reported
/// as `database_refused`.
pub fn refused(reason: &'static str, message: String) -> HootError {
    crate::events::emit("database_refused", |e| {
        e.set("backend", "sqlite").set("reason", reason);
    });
    HootError::Db(message)
}

/// The one constructor of `ERR_HOOT_DB` for a failed operation: `Cannot <doing> <file>: <cause>
/// (<what to do>)`. A write refused for lack of space says "the disk is full", whichever layer
/// saw it, not "disk I/O error".
pub fn db_error(file: impl fmt::Display, doing: &str, cause: Cause) -> HootError {
    let disk_full = |os: &io::Error| {
        matches!(os.kind(), io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge | io::ErrorKind::QuotaExceeded)
    };
    let access = "check that the file and its directory exist and are writable by this user";
    let (shown, hint): (&dyn fmt::Display, Cow<str>) = match &cause {
        Cause::Sqlite(e, os) => (
            e,
            match (e.sqlite_error_code(), os) {
                (Some(ErrorCode::NotADatabase), _) => {
                    "it is not a SQLite database; point HOOT_DB_PATH (or { dbPath }) at another file".into()
                }
                (Some(ErrorCode::DiskFull), _) => "the disk is full; free some space and retry".into(),
                (Some(ErrorCode::SystemIoFailure), Some(os)) if disk_full(os) => {
                    format!("the disk is full or the file reached a size limit ({os}); free some space and retry")
                        .into()
                }
                (Some(ErrorCode::SystemIoFailure), Some(os)) => format!("the operating system said: {os}").into(),
                (Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied), _) => access.into(),
                (Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked), _) => {
                    "another process held the database locked for too long; retry".into()
                }
                (Some(ErrorCode::DatabaseCorrupt), _) => "the file is damaged; restore it from a backup".into(),
                (Some(ErrorCode::OperationInterrupted), _) => format!(
                    "reading its tables took longer than {} s and was stopped; check the file with `hoot-core doctor`",
                    SCAN_DEADLINE.as_secs()
                )
                .into(),
                _ => "see the SQLite message".into(),
            },
        ),
        Cause::Io(os) => (
            os,
            match os.kind() {
                _ if disk_full(os) => "the disk is full; free some space and retry".into(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => access.into(),
                _ => "see the operating system's message".into(),
            },
        ),
    };
    HootError::Db(format!("Cannot {doing} {file}: {shown} ({hint})"))
}

/// A rusqlite error from `conn`, with the OS error SQLite saw.
pub fn conn_error(conn: &Connection, location: &DbLocation, doing: &str, e: &rusqlite::Error) -> HootError {
    // SAFETY: the handle is only read, on the thread that holds the connection's lock.
    let errno = unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) };
    let os = (errno != 0).then(|| io::Error::from_raw_os_error(errno));
    db_error(location.display(), doing, Cause::Sqlite(e, os))
}

/// `db_error` for a rusqlite error at `location`, as `map_err` wants it.
pub fn sql_error<'a>(location: &'a DbLocation, doing: &'static str) -> impl Fn(rusqlite::Error) -> HootError + 'a {
    move |e| db_error(location.display(), doing, Cause::Sqlite(&e, None))
}

/// `db_error` for a file operation at `file`, as `map_err` wants it.
pub fn io_error<'a>(file: impl fmt::Display + 'a, doing: &'static str) -> impl FnOnce(io::Error) -> HootError + 'a {
    move |e| db_error(file, doing, Cause::Io(&e))
}

/// Whether SQLite refused for a lock another connection holds.
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked))
}

/// How long a read of whole tables (the activity counts, `inspect` for `doctor`, the copy's read of a
/// SQLite file) may run on its connection before SQLite interrupts it: such a read runs on the
/// calling thread, the event loop's for the synchronous API, and must end whatever the file holds.
pub const SCAN_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `f` on `conn`, interrupted (`SQLITE_INTERRUPT`, rolled back) if it is still running after
/// `deadline`. A watchdog thread waits on a channel that dropping its sender ends at once, so a call
/// that finishes in time pays for one thread and nothing is interrupted afterwards (an interrupt with
/// no statement running is a no-op).
pub fn within_deadline<T>(
    conn: &Connection,
    deadline: Duration,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let handle = conn.get_interrupt_handle();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = thread::Builder::new().name("hoot-core-deadline".into()).spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(deadline) {
            handle.interrupt();
        }
    });
    let result = f(conn);
    drop(done);
    if let Ok(watchdog) = watchdog {
        let _ = watchdog.join();
    }
    result
}

/// Retries `f` while SQLite says busy. The busy timeout covers ordinary statements, but SQLite
/// returns BUSY at once in a few places (a WAL switch racing another opener, a deadlock between
/// two IMMEDIATE transactions), and opening must still succeed.
pub fn retry_busy<T>(f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    retry_while(f, is_busy)
}

/// `retry_busy` for any error type, with `busy` telling which errors are worth another try.
pub fn retry_while<T, E>(mut f: impl FnMut() -> Result<T, E>, busy: impl Fn(&E) -> bool) -> Result<T, E> {
    // The clock is read only once a call has been refused: the usual call pays nothing for it.
    let mut start = None;
    let mut pause = Duration::from_millis(2);
    loop {
        match f() {
            Err(e) if busy(&e) && start.get_or_insert_with(Instant::now).elapsed() < OPEN_DEADLINE => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Refuses, without letting SQLite create anything next to it (it would create -wal/-shm files):
/// anything that is not a regular file (SQLite would block on a FIFO), a file with more than one
/// hard link (two names would get two WAL files, and a write acknowledged through one name would
/// be invisible through the other), and a file that is not empty and does not start with SQLite's
/// header.
///
/// The file itself is never opened here outside SQLite: this process may have it open through
/// SQLite already (a server's store, the revocation poller), and closing any descriptor of a file
/// drops every POSIX lock the process holds on it, after which another process's reader takes the
/// database for unused and deletes its live WAL ("How To Corrupt An SQLite Database File", §2.2).
/// So the type and links come from `stat`, and the header is read through SQLite, read-only and
/// `immutable` (no lock, no -wal or -shm), whose close of the descriptor waits for the process's
/// other connections to release their locks.
pub fn check_header(path: &Path, location: &DbLocation) -> Result<(), HootError> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(location.display(), "read")(e)),
    };
    if !meta.is_file() {
        return Err(refused(
            "not_a_regular_file",
            format!(
                "{} is not a regular file (a FIFO, a device or a directory); hoot-core left it untouched. \
             Point HOOT_DB_PATH (or {{ dbPath }}) at a database file",
                location.display()
            ),
        ));
    }
    check_single_link(&meta, location)?;
    if meta.len() == 0 {
        return Ok(());
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let header = Connection::open_with_flags(immutable_uri(path), flags)
        .and_then(|conn| conn.query_row("PRAGMA schema_version", [], |_| Ok(())));
    match header {
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => Err(refused(
            "not_a_database",
            format!(
                "{} is not a SQLite database; hoot-core left it untouched. Point HOOT_DB_PATH (or {{ dbPath }}) at \
             another file, or move this one away to start a new database",
                location.display()
            ),
        )),
        // Anything else (a damaged file, no read permission) is for the real open to report.
        _ => Ok(()),
    }
}

/// A read-only connection to the database at `path` that creates nothing next to it: a read-only
/// connection to a WAL database would create its `-shm` (and `-wal`), so unless both are there
/// already (a server has the file open, and the WAL is read) the file is opened `immutable`, which
/// creates nothing and is exact when there is no WAL to read.
pub fn open_for_reading(path: &Path) -> rusqlite::Result<Connection> {
    let sidecar = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        crate::private_fs::is_present(Path::new(&name))
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if sidecar("-wal") && sidecar("-shm") {
        Connection::open_with_flags(path, flags)
    } else {
        Connection::open_with_flags(immutable_uri(path), flags | OpenFlags::SQLITE_OPEN_URI)
    }
}

/// A read-only URI for `path` that SQLite opens `immutable`: no lock taken, nothing created next
/// to the file, the WAL not read.
pub fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for &byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => uri.push(char::from(byte)),
            _ => uri.push_str(&format!("%{byte:02X}")),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Refuses a database file with more than one name (hard link).
fn check_single_link(meta: &fs::Metadata, location: &DbLocation) -> Result<(), HootError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err(refused(
                "hard_links",
                format!(
                    "{} has {} hard links: processes using it by different names would keep separate WAL files \
                 and not see each other's writes. Keep one name (remove the other links, or copy the file)",
                    location.display(),
                    meta.nlink()
                ),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (meta, location);
    Ok(())
}

/// Creates an empty file with mode 0600 unless one exists; SQLite's -wal and -shm files copy
/// its mode.
pub fn create_private_file(path: &Path) -> io::Result<()> {
    match new_private_file().open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Tightens an existing database (and its -wal / -shm) to 0600, and the `.hoot` directory it is
/// in to 0700: Hoot's own code created them readable by others (its `mkdirSync` leaves `~/.hoot`
/// 0755), and they hold OAuth tokens. A directory of another name may be shared on purpose and is
/// only reported (`hoot-core doctor`). Best effort: what someone else owns is left for `doctor`.
fn make_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if let Some(dir) = path.parent().filter(|dir| dir.file_name().is_some_and(|name| name == ".hoot")) {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let euid = unsafe { libc::geteuid() };
            if let Ok(meta) = fs::symlink_metadata(dir) {
                if meta.is_dir() && meta.uid() == euid && meta.mode() & 0o077 != 0 {
                    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
                }
            }
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            if let Ok(meta) = fs::metadata(&file) {
                if meta.permissions().mode() & 0o077 != 0 {
                    let _ = fs::set_permissions(&file, fs::Permissions::from_mode(0o600));
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Turns a requested location into the registry key: the parent directory canonical (created
/// 0700 if missing), so two spellings of one file share one connection.
fn canonical(location: DbLocation) -> Result<DbLocation, HootError> {
    let DbLocation::File(path) = location else { return Ok(DbLocation::Memory) };
    let shown = DbLocation::File(path.clone());
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(HootError::Db(format!("{} is not a file path", shown.display())));
    };
    create_private_dir(parent).map_err(io_error(shown.display(), "create the directory for"))?;
    let parent = parent.canonicalize().map_err(io_error(shown.display(), "resolve the directory of"))?;
    let file = parent.join(name);
    // A symlinked database file is followed, like SQLite itself does.
    Ok(DbLocation::File(file.canonicalize().unwrap_or(file)))
}

/// An open database. The connection is behind a mutex: the store is synchronous, like
/// better-sqlite3, and async work may touch it from the libuv pool.
pub struct Database {
    /// The canonical location this database was opened at.
    pub location: DbLocation,
    conn: Mutex<Connection>,
    /// Set when the registry forgets it (`closeDatabase`): a store holding on to it must go back
    /// to the registry, which opens the file again.
    closed: AtomicBool,
    /// The keys that seal values written here and open sealed ones, when the database is
    /// encrypted (or encryption was turned on for it).
    sealer: std::sync::RwLock<Option<Arc<crate::sealing::KeyRing>>>,
    /// When this process started sealing the database's writes (ms): only a decrypt proven to be
    /// newer turns sealing off (`encryption::for_write`).
    sealing_since: std::sync::atomic::AtomicI64,
}

/// Whether `db` is still the registry's open database for its file.
pub fn is_open(db: &Database) -> bool {
    !db.closed.load(Ordering::Acquire)
}

impl Database {
    fn open(location: DbLocation, now_ms: i64) -> Result<(Database, MigrationReport), HootError> {
        let conn = match &location {
            DbLocation::Memory => Connection::open_in_memory().map_err(sql_error(&location, "open"))?,
            DbLocation::File(path) => {
                check_header(path, &location)?;
                create_private_file(path).map_err(io_error(location.display(), "create"))?;
                make_private(path);
                let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                Connection::open_with_flags(path, flags).map_err(sql_error(&location, "open"))?
            }
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error(&location, "configure"))?;
        conn.set_prepared_statement_cache_capacity(64);
        // Durable at commit: with WAL and synchronous=FULL every committed write survives a power
        // cut, so no checkpoint after each write is needed.
        retry_busy(|| conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0)))
            .map_err(sql_error(&location, "open"))?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(sql_error(&location, "configure"))?;
        let env = crate::env::Environment::process();
        super::encryption::before_migration(&conn, &location, &env)?;
        let report = schema::ensure_schema(&conn, &location, now_ms)?;
        let sealer = super::encryption::at_open(&conn, &location, &env, now_ms / 1000)?;
        if let DbLocation::File(path) = &location {
            super::revocations::watch(path, &conn);
        }
        let sealing_since = std::sync::atomic::AtomicI64::new(crate::clock::unix_now_ms());
        let sealer = std::sync::RwLock::new(sealer);
        Ok((
            Database { location, conn: Mutex::new(conn), closed: AtomicBool::new(false), sealer, sealing_since },
            report,
        ))
    }

    /// Refuses to write when the file this connection has open is no longer the one at its path
    /// (moved, replaced by `mv`, deleted): the write would go to the old file, where no later
    /// reader of the path finds it. SQLite tells (`SQLITE_FCNTL_HAS_MOVED`, one `stat`, next to a
    /// write's fsync). The `-wal` at the path still holds the old file's last commits, and SQLite
    /// would apply them to whatever file is opened there next; so they are first checkpointed into
    /// the old file (which keeps them wherever it was moved) and the WAL emptied, and then the
    /// database is forgotten: the next call opens the file now at the path, clean.
    pub fn check_not_moved(&self, conn: &Connection) -> Result<(), HootError> {
        let DbLocation::File(_) = &self.location else { return Ok(()) };
        let mut moved: std::os::raw::c_int = 0;
        // SAFETY: the handle is this connection's, used under its lock; "main" is a NUL-terminated
        // schema name and `moved` is the int this file control writes.
        let status = unsafe {
            rusqlite::ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                rusqlite::ffi::SQLITE_FCNTL_HAS_MOVED,
                (&mut moved as *mut std::os::raw::c_int).cast(),
            )
        };
        if status != rusqlite::ffi::SQLITE_OK || moved == 0 {
            return Ok(());
        }
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        self.closed.store(true, Ordering::Release);
        forget(&self.location);
        Err(HootError::Db(format!(
            "{} was moved, replaced or deleted while this process had it open, so nothing was written; the \
             next call uses the file now at that path. Replace a database only while no server has it open",
            self.location.display()
        )))
    }

    /// The keys of an encrypted database.
    pub fn sealer(&self) -> Option<Arc<crate::sealing::KeyRing>> {
        self.sealer.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sets (or, decrypted, clears) the keys; turning sealing on notes when.
    pub fn set_sealer(&self, sealer: Option<Arc<crate::sealing::KeyRing>>) {
        let mut slot = self.sealer.write().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() && sealer.is_some() {
            self.sealing_since.store(crate::clock::unix_now_ms(), Ordering::Release);
        }
        *slot = sealer;
    }

    /// When this process started sealing this database's writes (ms).
    pub fn sealing_since(&self) -> i64 {
        self.sealing_since.load(Ordering::Acquire)
    }

    /// Runs `f` with the connection. A poisoned lock (a panic mid-call, caught at the boundary)
    /// is recovered: SQLite rolls back any statement left half-done.
    pub fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> Result<T, HootError>) -> Result<T, HootError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn)
    }
}

/// Open databases by canonical location, and the canonical location each requested spelling
/// resolved to, so the per-request `new OAuthStore(userId)` makes no filesystem calls once its
/// database is open.
#[derive(Default)]
struct Registry {
    open: HashMap<DbLocation, Arc<Database>>,
    aliases: HashMap<DbLocation, DbLocation>,
    /// Files that failed to open (or migrate): asked again only once the file has changed or
    /// `RETRY_FAILED_OPEN_MS` has passed, not on every call of a server making one store per
    /// request.
    failed: HashMap<DbLocation, FailedOpen>,
}

/// How long a database that failed to open is answered with the same error while its file stays
/// as it was.
pub const RETRY_FAILED_OPEN_MS: i64 = 5_000;

struct FailedOpen {
    error: HootError,
    file: Option<FileIdentity>,
    at_ms: i64,
}

/// What tells that a file was changed or replaced: its inode, size and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileIdentity {
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileIdentity {
    fn of(location: &DbLocation) -> Option<FileIdentity> {
        let DbLocation::File(path) = location else { return None };
        let meta = fs::symlink_metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(FileIdentity { inode, len: meta.len(), modified: meta.modified().ok() })
    }
}

static REGISTRY: Lazy<Mutex<Registry>> = Lazy::new(|| Mutex::new(Registry::default()));

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// The database files this process has open now.
pub fn open_files() -> Vec<PathBuf> {
    registry()
        .open
        .keys()
        .filter_map(|location| match location {
            DbLocation::File(path) => Some(path.clone()),
            DbLocation::Memory => None,
        })
        .collect()
}

/// The open database at `location`, opening (and if needed migrating) it first. The report is
/// `Some` only for the call that opened it.
pub fn get_or_open(location: DbLocation, now_ms: i64) -> Result<(Arc<Database>, Option<MigrationReport>), HootError> {
    {
        let registry = registry();
        if let Some(db) = registry.aliases.get(&location).and_then(|key| registry.open.get(key)) {
            return Ok((Arc::clone(db), None));
        }
    }
    let key = canonical(location.clone())?;
    let opened = get_or_open_canonical(&key, now_ms)?;
    registry().aliases.insert(location, key);
    Ok(opened)
}

/// `get_or_open` for a key that is already canonical (a store's own location), skipping the
/// filesystem calls canonicalising takes.
pub fn get_or_open_canonical(
    key: &DbLocation,
    now_ms: i64,
) -> Result<(Arc<Database>, Option<MigrationReport>), HootError> {
    let mut registry = registry();
    if let Some(db) = registry.open.get(key) {
        return Ok((Arc::clone(db), None));
    }
    if let Some(failed) = registry.failed.get(key) {
        if now_ms - failed.at_ms < RETRY_FAILED_OPEN_MS && FileIdentity::of(key) == failed.file {
            return Err(failed.error.clone());
        }
    }
    let (db, report) = match Database::open(key.clone(), now_ms) {
        Ok(opened) => opened,
        Err(error) => {
            let failed = FailedOpen { error: error.clone(), file: FileIdentity::of(key), at_ms: now_ms };
            registry.failed.insert(key.clone(), failed);
            return Err(error);
        }
    };
    registry.failed.remove(key);
    let db = Arc::new(db);
    registry.open.insert(key.clone(), Arc::clone(&db));
    Ok((db, Some(report)))
}

/// Forgets the database at `location`; its connection closes once no call is using it. A store
/// used afterwards opens it again. Returns whether it was open.
pub fn close(location: DbLocation) -> Result<bool, HootError> {
    let mut registry = registry();
    let key = match registry.aliases.get(&location) {
        Some(key) => key.clone(),
        None => match location {
            DbLocation::Memory => DbLocation::Memory,
            DbLocation::File(path) => {
                let parent = path.parent().and_then(|p| p.canonicalize().ok());
                match (parent, path.file_name()) {
                    (Some(parent), Some(name)) => {
                        let file = parent.join(name);
                        DbLocation::File(file.canonicalize().unwrap_or(file))
                    }
                    _ => return Ok(false),
                }
            }
        },
    };
    registry.aliases.retain(|_, canonical| *canonical != key);
    registry.failed.remove(&key);
    let removed = registry.open.remove(&key);
    if let Some(db) = &removed {
        db.closed.store(true, Ordering::Release);
    }
    Ok(removed.is_some())
}

/// Drops `key` (a canonical location) from the registry, with every spelling that led to it.
fn forget(key: &DbLocation) {
    let mut registry = registry();
    registry.aliases.retain(|_, canonical| canonical != key);
    registry.open.remove(key);
}

/// Closes every database (shutdown).
pub fn close_all() {
    let mut registry = registry();
    for db in registry.open.values() {
        db.closed.store(true, Ordering::Release);
    }
    registry.open.clear();
    registry.aliases.clear();
    registry.failed.clear();
}
