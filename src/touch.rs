//! The process's memory of which users it recorded as active lately (`touch`), so each user and
//! database is written at most once per interval. Keys name the database and the user; the
//! memory knows no backend.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::sync::Mutex;

use once_cell::sync::Lazy;

/// Users whose last write this process remembers; past it, the memory starts again (each user
/// then writes once more).
const TOUCHED_CAPACITY: usize = 100_000;

/// `(database, user)` → when this process last recorded the user's activity.
static TOUCHED: Lazy<Mutex<HashMap<String, i64>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// Whether `key` (a database and a user) was touched by this process less than `interval`
/// seconds before `now`: then `touch` need not write. Shared by the SQLite and PostgreSQL stores.
pub fn touched_recently(key: &str, now: i64, interval: i64) -> bool {
    TOUCHED.lock().unwrap_or_else(|e| e.into_inner()).get(key).is_some_and(|&at| now >= at && now - at < interval)
}

/// Notes that `key` was touched at `now` (bounded: past `TOUCHED_CAPACITY` the memory restarts).
pub fn note_touched(key: String, now: i64) {
    let mut touched = TOUCHED.lock().unwrap_or_else(|e| e.into_inner());
    if touched.len() >= TOUCHED_CAPACITY {
        touched.clear();
    }
    touched.insert(key, now);
}

/// Forgets `key`'s last touch, so the next one writes.
pub fn forget_touched(key: &str) {
    TOUCHED.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
}
