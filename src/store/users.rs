//! The rules of the anonymous session's life, whatever the backend: how often `touch` writes, what
//! the activity counts and a purge report, and which inactivity a purge takes. Times are seconds.

#![warn(missing_docs)]

use crate::error::HootError;

/// How often `touch` writes for one user in one process, by default: once an hour.
pub const TOUCH_INTERVAL_SECONDS: i64 = 60 * 60;
/// The longest inactivity `purge_inactive_users` takes, in days (a hundred years).
const MAX_INACTIVE_DAYS: f64 = 36_500.0;

/// How many users there are and how many were active lately: counts only, never an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ActivitySummary {
    /// Users with an activity row or any stored data.
    pub users: u64,
    /// Active in the last day, 7 days and 30 days.
    pub active_1d: u64,
    /// See `active_1d`.
    pub active_7d: u64,
    /// See `active_1d`.
    pub active_30d: u64,
    /// Users with data but no recorded activity (from before `touch` was called for them).
    pub untracked: u64,
}

/// What `purge_inactive_users` removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurgeReport {
    /// Users whose data was removed.
    pub users: u64,
    /// Rows removed, in every table.
    pub rows: u64,
    /// Users with data but no recorded activity, now counted as active from this moment on.
    pub adopted: u64,
    /// True when nothing was changed.
    pub dry_run: bool,
}

/// `inactiveDays`: a whole number of days, 1 to 36,500.
pub fn inactive_days(days: f64) -> Result<i64, HootError> {
    if days.fract() == 0.0 && (1.0..=MAX_INACTIVE_DAYS).contains(&days) {
        return Ok(days as i64);
    }
    Err(HootError::out_of_range(
        "inactiveDays",
        format!("must be a whole number of days from 1 to {MAX_INACTIVE_DAYS}. Received {days}"),
    ))
}
