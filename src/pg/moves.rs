//! Moving a user's data to another user on PostgreSQL, as `store::identity` does it on SQLite:
//! `moveUserData`, and the legacy user a copied single-user file brought (`legacy-user-<digits>`)
//! handed to a browser through a transfer code (`legacyTransferCode`, redeemed by
//! `identity::redeem_transfer_code` into the redeeming browser's user). Each is one transaction.

use std::sync::Arc;

use super::{PgDatabase, Prepared};
use crate::error::HootError;
use crate::sealing::{self, SEALED_COLUMNS};
use crate::store::identity::{account_mac, account_verifies, MoveReport, OnConflict};
use crate::store::SERVER_TABLES;

/// The move itself, inside `tx` (the caller commits): SQLite's `move_in`, statement for statement.
/// With `Fail` and a conflict it stops at the count, for the caller to roll back.
pub(crate) async fn move_in(
    tx: &deadpool_postgres::Transaction<'_>,
    db: &PgDatabase,
    from: &str,
    to: &str,
    on_conflict: OnConflict,
) -> Result<MoveReport, HootError> {
    let err = |e: tokio_postgres::Error| db.error("move user data in", &e);
    // The encryption state first, held until the commit: an `encrypt` or `decrypt` waits for the
    // move (or the move for it), and never for a row this move holds while it waits itself.
    tx.exec("LOCK TABLE hoot_encryption IN ACCESS SHARE MODE", &[]).await.map_err(err)?;
    let mut report = MoveReport::default();
    // A server is in conflict when both users have any state for it: its rows stay together (a
    // client registration and the tokens issued to it), whole from one user or the other.
    let servers_of = crate::store::servers_of_sql;
    let conflicts: Vec<String> = tx
        .rows(
            &format!(
                "SELECT server_id FROM ({}) AS a INTERSECT SELECT server_id FROM ({}) AS b",
                servers_of("$1"),
                servers_of("$2")
            ),
            &[&from, &to],
        )
        .await
        .map_err(err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    report.conflicts = conflicts.len() as u64;
    if on_conflict == OnConflict::Fail && report.conflicts > 0 {
        return Ok(report);
    }
    if !conflicts.is_empty() {
        for table in SERVER_TABLES {
            let sql = format!("DELETE FROM {table} WHERE user_id = $1 AND server_id = ANY($2)");
            match on_conflict {
                OnConflict::Fail => {}
                OnConflict::TakeSource => report.replaced += tx.exec(&sql, &[&to, &conflicts]).await.map_err(err)?,
                OnConflict::KeepTarget => report.dropped += tx.exec(&sql, &[&from, &conflicts]).await.map_err(err)?,
            }
        }
    }
    reseal_for_move(tx, db, from, to).await?;
    for table in SERVER_TABLES {
        report.moved += tx
            .exec(
                &format!(
                    "UPDATE {table} AS t SET user_id = $2 WHERE user_id = $1 AND NOT EXISTS \
                     (SELECT 1 FROM {table} AS o WHERE o.user_id = $2 AND o.server_id = t.server_id)"
                ),
                &[&from, &to],
            )
            .await
            .map_err(err)?;
    }
    // Links move with a MAC for their new user; a row no server made does not move, it goes.
    let links: Vec<(String, Option<String>)> = tx
        .rows("SELECT account_id, mac FROM hoot_accounts WHERE user_id = $1", &[&from])
        .await
        .map_err(err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    if !links.is_empty() {
        let secret = super::identity::store_secret(tx, db).await?;
        for (account_id, mac) in links {
            if account_verifies(&secret, &account_id, from, mac.as_deref()) {
                report.moved += tx
                    .exec(
                        "UPDATE hoot_accounts SET user_id = $2, mac = $3 WHERE account_id = $1",
                        &[&account_id, &to, &account_mac(&secret, &account_id, to)],
                    )
                    .await
                    .map_err(err)?;
            } else {
                tx.exec("DELETE FROM hoot_accounts WHERE account_id = $1", &[&account_id]).await.map_err(err)?;
            }
        }
    }
    tx.exec("DELETE FROM hoot_transfer_codes WHERE user_id = $1", &[&from]).await.map_err(err)?;
    // Activity: the target has been known since the earlier of the two, and seen at the later.
    tx.exec(
        "INSERT INTO hoot_users (user_id, first_seen, last_seen) \
         SELECT $2, first_seen, last_seen FROM hoot_users WHERE user_id = $1 \
         ON CONFLICT (user_id) DO UPDATE SET first_seen = least(hoot_users.first_seen, excluded.first_seen), \
         last_seen = greatest(hoot_users.last_seen, excluded.last_seen)",
        &[&from, &to],
    )
    .await
    .map_err(err)?;
    tx.exec("DELETE FROM hoot_users WHERE user_id = $1", &[&from]).await.map_err(err)?;
    Ok(report)
}

/// Seals again, for `to`, every sealed value of `from` before the move changes their user id (the
/// user id is part of what a sealed value is bound to), as SQLite's `reseal_for_move`: opened with
/// the keys for its key id, sealed with the database's current key as a write would be (or
/// written plain after a verified decrypt).
async fn reseal_for_move(
    tx: &deadpool_postgres::Transaction<'_>,
    db: &PgDatabase,
    from: &str,
    to: &str,
) -> Result<(), HootError> {
    let err = |e: tokio_postgres::Error| db.error("move user data in", &e);
    // Looked up once, at the first sealed value.
    let mut writer: Option<Option<Arc<crate::sealing::KeyRing>>> = None;
    for (table, column) in SEALED_COLUMNS {
        let rows = tx
            .rows(&format!("SELECT server_id, {column} FROM {table} WHERE user_id = $1"), &[&from])
            .await
            .map_err(err)?;
        for row in rows {
            let (server, stored): (String, String) = (row.get(0), row.get(1));
            let Some(key_id) = sealing::sealed_with(&stored) else { continue };
            let plain = db.opening_ring(key_id).await?.open(table, from, &server, &stored)?;
            let ring = match &writer {
                Some(ring) => ring.clone(),
                None => writer.insert(super::encryption::for_write(db, tx).await?).clone(),
            };
            let value = match ring {
                Some(ring) => ring.seal(table, to, &server, &plain)?,
                None => plain,
            };
            tx.exec(
                &format!("UPDATE {table} SET {column} = $3 WHERE user_id = $1 AND server_id = $2"),
                &[&from, &server, &value],
            )
            .await
            .map_err(err)?;
        }
    }
    Ok(())
}

/// The legacy user a copied single-user file brought, if it still has data: the first in byte
/// order, as SQLite's `legacy_user`.
pub(crate) async fn legacy_user(conn: &impl Prepared) -> Result<Option<String>, tokio_postgres::Error> {
    let union = SERVER_TABLES.iter().map(|t| format!("SELECT user_id FROM {t}")).collect::<Vec<_>>().join(" UNION ");
    let row = conn
        .row_opt(
            &format!(
                "SELECT user_id FROM ({union}) AS users WHERE {} ORDER BY user_id COLLATE \"C\" LIMIT 1",
                super::users::IS_LEGACY_USER
            ),
            &[],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}
