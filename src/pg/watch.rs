//! What replicas learn from each other, by polling (not LISTEN/NOTIFY: a poll works through
//! PgBouncer's transaction pooling and across a lost connection, where a notification sent while
//! a replica was disconnected would be missed). Every `pollIntervalMs` (1 s by default) this
//! process reads, from each PostgreSQL database it has open, one number (`hoot_key_set.version`,
//! for the database its key set came from) and the revocations made since its last read. A new
//! version loads the new key set and installs it, which drops every isolate's verify cache: a
//! removed key stops verifying here within one interval of its removal. Nothing is read on a
//! verification.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use once_cell::sync::Lazy;

use super::{PgDatabase, Prepared};
use crate::error::HootError;

/// How far back each revocation read goes again, for writers' clocks that disagree a little (as
/// the SQLite poller).
pub const SKEW_SECONDS: i64 = 300;

struct Watched {
    /// The database the key set came from, and the version installed.
    keys: Option<(Arc<PgDatabase>, i64)>,
    /// Per database: where the next revocation read starts.
    revocations: HashMap<String, i64>,
}

static STATE: Lazy<Mutex<Watched>> = Lazy::new(|| Mutex::new(Watched { keys: None, revocations: HashMap::new() }));

fn state() -> std::sync::MutexGuard<'static, Watched> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Loads the key set of `db` (making its first key if there is none), installs it as the
/// process's, and keeps it current from then on.
pub async fn load_keys(db: Arc<PgDatabase>) -> Result<Arc<crate::keys::KeySet>, HootError> {
    EXPECTED.store(true, std::sync::atomic::Ordering::Release);
    let loaded = super::keys::load_or_create(Arc::clone(&db)).await?;
    // The revocations before the keys: a restarted replica refuses a revoked token from its first
    // verification, not from its first poll.
    read_revocations(&db).await?;
    install(&db, loaded, false).ok_or_else(|| HootError::Internal("the key set was not installed".into()))
}

/// Installs `loaded` as the process's key set and records its version, in one step under the
/// state's lock, unless a newer version of the same database's set is already installed (a poll
/// that finished first): so the version recorded is always the one in use. A poll (`following`)
/// installs nothing once the key set no longer follows `db` (keys were loaded from elsewhere).
fn install(db: &Arc<PgDatabase>, loaded: super::keys::Loaded, following: bool) -> Option<Arc<crate::keys::KeySet>> {
    let mut watched = state();
    let same = watched.keys.as_ref().filter(|(followed, _)| Arc::ptr_eq(followed, db));
    if following && same.is_none() {
        return None;
    }
    if same.is_some_and(|(_, version)| *version > loaded.version) {
        if let Some(current) = crate::active::installed() {
            return Some(current);
        }
    }
    let keys = crate::active::replace(loaded.keys);
    watched.keys = Some((Arc::clone(db), loaded.version));
    Some(keys)
}

/// Set once this process has asked for a database's key set: from then on the default key files
/// are never made or used (a token issued meanwhile would be signed by a key no other replica has).
static EXPECTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the process's key set is to come from a database (see `EXPECTED`).
pub fn keys_expected() -> bool {
    EXPECTED.load(std::sync::atomic::Ordering::Acquire)
}

/// The key set no longer follows a database (keys were loaded from elsewhere).
pub fn stop_following_keys() {
    state().keys = None;
}

/// The database the key set follows, if any.
pub fn keys_database() -> Option<Arc<PgDatabase>> {
    state().keys.as_ref().map(|(db, _)| Arc::clone(db))
}

/// One round, each database's part bounded by its call timeout (a database that stops answering
/// holds up no other, and its idle connections are dropped as a timed-out call's are).
pub async fn poll_once() {
    let followed = state().keys.as_ref().map(|(db, _)| Arc::clone(db));
    if let Some(db) = followed {
        if tokio::time::timeout(db.settings().call_timeout(), poll_keys()).await.is_err() {
            db.forget_idle_connections();
        }
    }
    for db in super::open_databases().into_iter().filter(|db| db.is_ready()) {
        if tokio::time::timeout(db.settings().call_timeout(), read_revocations(&db)).await.is_err() {
            db.forget_idle_connections();
        }
    }
}

/// The key set's version, and the new set when it changed. A database that cannot be read now is
/// read again next round.
async fn poll_keys() {
    let followed = state().keys.as_ref().map(|(db, v)| (Arc::clone(db), *v));
    if let Some((db, installed)) = followed {
        if let Ok(version) = super::keys::version(&db).await {
            if version != installed {
                if let Ok(Some(loaded)) = super::keys::load(&db).await {
                    install(&db, loaded, true);
                }
            }
        }
    }
}

/// Learns the revocations in `db` since the last read (all of them the first time).
pub async fn read_revocations(db: &PgDatabase) -> Result<(), HootError> {
    let since = state().revocations.get(db.describe()).copied().unwrap_or(i64::MIN);
    let conn = db.conn().await?;
    let rows = conn
        .rows("SELECT user_id, revoked_before FROM hoot_revocations WHERE revoked_before >= $1", &[&since])
        .await
        .map_err(|e| db.error("read the revocations of", &e))?;
    let mut latest = since;
    for row in rows {
        let (user_id, before): (String, i64) = (row.get(0), row.get(1));
        crate::revocation::learn(&user_id, before);
        latest = latest.max(before - SKEW_SECONDS);
    }
    state().revocations.insert(db.describe().to_string(), latest);
    Ok(())
}

/// Polls forever, every `interval` (the shortest of the open databases' `pollIntervalMs`).
pub async fn poll_forever() {
    loop {
        let interval = super::open_databases()
            .iter()
            .map(|db| db.settings().poll_interval)
            .min()
            .unwrap_or(super::config::DEFAULT_POLL_INTERVAL);
        tokio::time::sleep(interval).await;
        poll_once().await;
    }
}
