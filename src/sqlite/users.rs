//! The anonymous session's life: when each user was last active (`touch`), counts of active users
//! that name no one (`activity_summary`), and removing the data of users inactive for too long
//! (`purge_inactive_users`). Times are seconds, passed in.

use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use super::schema::USERS_TABLE;
use super::{run_at, Access, DbLocation, OAuthStore, USER_TABLES};
use crate::error::HootError;
pub use crate::store::users::{inactive_days, ActivitySummary, PurgeReport, TOUCH_INTERVAL_SECONDS};
use crate::touch::{forget_touched, note_touched, touched_recently};

/// The data tables' users that have no activity row: data written before activity was recorded.
const UNTRACKED: &str = "SELECT user_id FROM oauth_tokens UNION SELECT user_id FROM oauth_client_info \
     UNION SELECT user_id FROM oauth_verifiers UNION SELECT user_id FROM server_configs \
     UNION SELECT user_id FROM hoot_oauth_discovery UNION SELECT user_id FROM hoot_oauth_states \
     UNION SELECT user_id FROM hoot_accounts UNION SELECT user_id FROM hoot_transfer_codes \
     EXCEPT SELECT user_id FROM hoot_users";

fn touch_key(store: &OAuthStore) -> String {
    format!("{}\0{}", store.location.display(), store.user_id())
}

/// Forgets this process's note of the user's last `touch`, so the next one writes.
pub(super) fn forget_touch(store: &OAuthStore) {
    forget_touched(&touch_key(store));
}

impl OAuthStore {
    /// Records that this user is active at `now`: at most one write per `interval` seconds per
    /// user and database in this process (the first call always writes). Returns whether it wrote.
    pub fn touch(&self, now: i64, interval: i64) -> Result<bool, HootError> {
        let key = touch_key(self);
        if touched_recently(&key, now, interval) {
            return Ok(false);
        }
        self.run(Access::Write, |conn| {
            conn.prepare_cached(
                "INSERT INTO hoot_users (user_id, first_seen, last_seen) VALUES (?1, ?2, ?2) \
                 ON CONFLICT (user_id) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
            )?
            .execute(params![self.user_id(), now])
        })?;
        note_touched(key, now);
        Ok(true)
    }
}

/// The activity counts at `now`.
pub fn activity_summary(location: DbLocation, now: i64) -> Result<ActivitySummary, HootError> {
    run_at(location, now, Access::Read, |conn| {
        super::db::within_deadline(conn, super::db::SCAN_DEADLINE, |conn| summary_on(conn, now))
    })
}

/// The activity counts at `now`, on a connection to a database that has every table.
pub(super) fn summary_on(conn: &Connection, now: i64) -> rusqlite::Result<ActivitySummary> {
    let count = |sql: &str, since: Option<i64>| -> rusqlite::Result<u64> {
        let n: i64 = match since {
            Some(since) => conn.prepare_cached(sql)?.query_row([since], |r| r.get(0))?,
            None => conn.prepare_cached(sql)?.query_row([], |r| r.get(0))?,
        };
        Ok(n as u64)
    };
    let active = "SELECT count(*) FROM hoot_users WHERE last_seen >= ?1";
    let tracked = count("SELECT count(*) FROM hoot_users", None)?;
    let untracked = count(&format!("SELECT count(*) FROM ({UNTRACKED})"), None)?;
    Ok(ActivitySummary {
        users: tracked + untracked,
        active_1d: count(active, Some(now - 86_400))?,
        active_7d: count(active, Some(now - 7 * 86_400))?,
        active_30d: count(active, Some(now - 30 * 86_400))?,
        untracked,
    })
}

/// Removes every row of each user whose last activity is more than `days` days before `now`, in
/// one transaction (a crash leaves each user whole or gone). A user with data but no activity
/// row (data from before activity was recorded) is never purged by the run that first sees it:
/// that run records them as active now, so they go only after `days` more days without a
/// `touch`. A dry run counts the same and changes nothing.
pub fn purge_inactive_users(
    location: DbLocation,
    days: i64,
    dry_run: bool,
    now: i64,
) -> Result<PurgeReport, HootError> {
    run_at(location, now, Access::Delete, |conn| {
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        let report = purge_in(&tx, now - days * 86_400, dry_run, now)?;
        if dry_run {
            tx.rollback()?;
        } else {
            tx.commit()?;
        }
        Ok(report)
    })
}

fn purge_in(tx: &Connection, cutoff: i64, dry_run: bool, now: i64) -> rusqlite::Result<PurgeReport> {
    let adopted = tx.execute(
        &format!("INSERT INTO hoot_users (user_id, first_seen, last_seen) SELECT user_id, ?1, ?1 FROM ({UNTRACKED})"),
        [now],
    )? as u64;
    tx.execute_batch("DROP TABLE IF EXISTS temp.hoot_purge; CREATE TEMP TABLE hoot_purge (user_id TEXT PRIMARY KEY)")?;
    // A legacy user (a migrated single-user install) can never be active: only an operator removes
    // it (`adopt-legacy` hands it to a browser, or its rows are deleted by hand).
    let users = tx.execute(
        "INSERT INTO temp.hoot_purge SELECT user_id FROM hoot_users WHERE last_seen < ?1 \
         AND NOT (user_id GLOB 'legacy-user-[0-9]*' AND substr(user_id, 13) NOT GLOB '*[^0-9]*')",
        [cutoff],
    )?;
    let mut rows = 0;
    for table in USER_TABLES.iter().chain([&USERS_TABLE]) {
        rows +=
            tx.execute(&format!("DELETE FROM {table} WHERE user_id IN (SELECT user_id FROM temp.hoot_purge)"), [])?;
    }
    // The users table's own rows are not data: count the rows a user had besides it.
    rows -= users;
    // And the rows a migration kept aside for them, if any.
    let conflicts_kept: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'hoot_migration_conflicts')",
        [],
        |r| r.get(0),
    )?;
    if conflicts_kept {
        rows += tx.execute(
            "DELETE FROM hoot_migration_conflicts WHERE lower(user_id) IN (SELECT user_id FROM temp.hoot_purge)",
            [],
        )?;
    }
    tx.execute_batch("DROP TABLE temp.hoot_purge")?;
    Ok(PurgeReport { users: users as u64, rows: rows as u64, adopted, dry_run })
}
