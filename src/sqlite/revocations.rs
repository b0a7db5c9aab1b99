//! Revoking a user's tokens (`revokeUserTokens`), and learning the revocations other processes
//! make on a shared database: every database file a process opens is read once at open and then,
//! while it stays open, every `POLL_INTERVAL` by one background thread, so another process's
//! revocation takes effect here within that delay (plus one read). Nothing is read on a
//! verification. Writers' clocks may disagree by up to `SKEW_SECONDS`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::Duration;

use once_cell::sync::Lazy;
use rusqlite::Connection;

use super::DbLocation;
use crate::revocation;

/// How often the databases this process has open are read for other processes' revocations.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How far back each poll reads again, for clocks of processes that disagree a little.
pub const SKEW_SECONDS: i64 = 300;

/// Each watched database and the latest revocation time read from it.
static WATCHED: Lazy<Mutex<HashMap<PathBuf, i64>>> = Lazy::new(|| Mutex::new(HashMap::new()));
/// Databases followed though no store of this process may have them open: the default database,
/// read before the process's first verification (`follow`).
static FOLLOWED: Lazy<Mutex<Vec<PathBuf>>> = Lazy::new(|| Mutex::new(Vec::new()));
static POLLER: Once = Once::new();

pub use super::backend::revoke_user_tokens;

/// Learns the revocations in the database `conn` has open (all of them, the first time), and
/// starts the poller.
pub(super) fn watch(path: &Path, conn: &Connection) {
    learn_from(path, conn);
    start_poller();
}

/// Learns the revocations of the database at `location` now, before this process verifies or
/// issues its first token, and follows it from then on: a restarted process refuses a revoked
/// token from its first request, not only once a store opens the file. Nothing is created or
/// locked: a missing file has nothing revoked (a store that creates it later reads it at open),
/// and a file no server has open is read `immutable`.
pub fn follow(location: &DbLocation) {
    let DbLocation::File(path) = location else { return };
    let Ok(path) = std::fs::canonicalize(path) else { return };
    if super::db::check_header(&path, location).is_err() {
        return;
    }
    if let Some(conn) = reader(&path) {
        learn_from(&path, &conn);
    }
    let mut followed = FOLLOWED.lock().unwrap_or_else(|e| e.into_inner());
    if !followed.contains(&path) {
        followed.push(path);
    }
    drop(followed);
    start_poller();
}

fn learn_from(path: &Path, conn: &Connection) {
    let since = WATCHED.lock().unwrap_or_else(|e| e.into_inner()).get(path).copied().unwrap_or(i64::MIN);
    if let Ok(latest) = read(conn, since) {
        WATCHED.lock().unwrap_or_else(|e| e.into_inner()).insert(path.to_path_buf(), latest);
    }
}

fn start_poller() {
    POLLER.call_once(|| {
        let _ = std::thread::Builder::new().name("hoot-core-revocations".into()).spawn(poll_forever);
    });
}

/// A read-only connection of its own for one read, creating nothing next to the file.
fn reader(path: &Path) -> Option<Connection> {
    let conn = super::db::open_for_reading(path).ok()?;
    conn.busy_timeout(Duration::from_millis(200)).ok()?;
    Some(conn)
}

/// Learns every revocation at or after `since`; returns where the next read starts.
fn read(conn: &Connection, since: i64) -> rusqlite::Result<i64> {
    let mut stmt =
        conn.prepare_cached("SELECT user_id, revoked_before FROM hoot_revocations WHERE revoked_before >= ?1")?;
    let mut latest = since;
    let rows = stmt.query_map([since], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
    for row in rows {
        let (user_id, before) = row?;
        revocation::learn(&user_id, before);
        latest = latest.max(before - SKEW_SECONDS);
    }
    Ok(latest)
}

fn poll_forever() {
    loop {
        std::thread::sleep(POLL_INTERVAL);
        // The files open now and the ones followed, each through a connection of its own made for
        // this read and closed after it: a closed, deleted or replaced database is let go of, and
        // the file now at the path is the one read.
        let mut paths = super::db::open_files();
        for path in FOLLOWED.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if !paths.contains(path) {
                paths.push(path.clone());
            }
        }
        for path in paths {
            if let Some(conn) = reader(&path) {
                learn_from(&path, &conn);
            }
        }
    }
}
