//! The anonymous session's life on PostgreSQL, as `store::users` on SQLite: counts of active
//! users that name no one (`activity_summary`), and removing the data of users inactive for too
//! long (`purge_inactive_users`). Activity is recorded by `PgStore::touch` in `hoot_users`. Times
//! are seconds, passed in.

use super::{PgDatabase, Prepared};
use crate::error::HootError;
use crate::store::users::{ActivitySummary, PurgeReport};

/// The data tables' users that have no activity row: data written before activity was recorded
/// (or copied from a file whose users never touched).
const UNTRACKED: &str = "SELECT user_id FROM oauth_tokens UNION SELECT user_id FROM oauth_client_info \
     UNION SELECT user_id FROM oauth_verifiers UNION SELECT user_id FROM server_configs \
     UNION SELECT user_id FROM hoot_oauth_discovery UNION SELECT user_id FROM hoot_oauth_states \
     UNION SELECT user_id FROM hoot_accounts UNION SELECT user_id FROM hoot_transfer_codes \
     EXCEPT SELECT user_id FROM hoot_users";

/// A legacy user (a migrated single-user install's data, `legacy-user-<digits>`), in SQL.
pub(crate) const IS_LEGACY_USER: &str = "user_id ~ '^legacy-user-[0-9]+$'";

/// The activity counts at `now`, on a connection to a database that has every table.
pub(crate) async fn summary_on(conn: &impl Prepared, now: i64) -> Result<ActivitySummary, tokio_postgres::Error> {
    let row = conn
        .row_opt(
            &format!(
                "SELECT (SELECT count(*) FROM hoot_users), (SELECT count(*) FROM ({UNTRACKED}) AS untracked), \
                 count(*) FILTER (WHERE last_seen >= $1), count(*) FILTER (WHERE last_seen >= $2), \
                 count(*) FILTER (WHERE last_seen >= $3) FROM hoot_users"
            ),
            &[&(now - 86_400), &(now - 7 * 86_400), &(now - 30 * 86_400)],
        )
        .await?;
    let n = |i: usize| row.as_ref().map_or(0, |r| r.get::<_, i64>(i) as u64);
    Ok(ActivitySummary { users: n(0) + n(1), active_1d: n(2), active_7d: n(3), active_30d: n(4), untracked: n(1) })
}

/// Removes every row of each user whose last activity is more than `days` days before `now`, in
/// one transaction, as SQLite's `purge_inactive_users`: a user with data but no activity row is
/// recorded as active now by the run that first sees them (so data from before activity was
/// recorded is never purged on upgrade), a legacy user is never purged (only an operator removes
/// it), and a dry run counts the same and changes nothing (rolled back). The rows counted are the
/// user's data, not their activity row. `days`: see `store::users::inactive_days`.
pub(crate) async fn purge(db: &PgDatabase, cutoff: i64, dry_run: bool, now: i64) -> Result<PurgeReport, HootError> {
    let mut conn = db.conn().await?;
    let err = |e: tokio_postgres::Error| db.error("delete from", &e);
    let tx = conn.transaction().await.map_err(err)?;
    // A replica's `touch` of the same user meanwhile keeps its own row (inserted first, it wins).
    let adopted = tx
        .exec(
            &format!(
                "INSERT INTO hoot_users (user_id, first_seen, last_seen) SELECT user_id, $1, $1 FROM ({UNTRACKED}) \
                 AS untracked ON CONFLICT (user_id) DO NOTHING"
            ),
            &[&now],
        )
        .await
        .map_err(err)?;
    // Locked, so a `touch` of one of them waits, and then records a user whose data is gone.
    let users: Vec<String> = tx
        .rows(
            &format!("SELECT user_id FROM hoot_users WHERE last_seen < $1 AND NOT ({IS_LEGACY_USER}) FOR UPDATE"),
            &[&cutoff],
        )
        .await
        .map_err(err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut rows = 0;
    if !users.is_empty() {
        for table in crate::store::USER_TABLES.iter().chain(&["hoot_users"]) {
            rows += tx.exec(&format!("DELETE FROM {table} WHERE user_id = ANY($1)"), &[&users]).await.map_err(err)?;
        }
    }
    // The activity table's own rows are not data: the rows a user had besides it.
    rows = rows.saturating_sub(users.len() as u64);
    match dry_run {
        true => tx.rollback().await.map_err(err)?,
        false => tx.commit().await.map_err(err)?,
    }
    Ok(PurgeReport { users: users.len() as u64, rows, adopted, dry_run })
}
