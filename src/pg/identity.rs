//! The store secret on PostgreSQL (`hoot_store_secret`): transfer codes and account links are
//! MACed under it (`crate::store::identity`), so every replica must share it.

use super::{PgDatabase, Prepared};
use crate::error::HootError;
use crate::secret::StoreSecret;

/// The database's store secret (made again if its row is gone: whatever was MACed under the old
/// one then no longer verifies).
pub(crate) async fn store_secret(conn: &impl Prepared, db: &PgDatabase) -> Result<StoreSecret, HootError> {
    let err = |e: tokio_postgres::Error| db.error("read the store secret of", &e);
    let read = || async { conn.row_opt("SELECT secret FROM hoot_store_secret WHERE id = 1", &[]).await.map_err(err) };
    let row = match read().await? {
        Some(row) => row,
        None => {
            conn.exec(
                "INSERT INTO hoot_store_secret (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                &[&StoreSecret::new_text()?],
            )
            .await
            .map_err(err)?;
            read().await?.ok_or_else(|| HootError::Internal("the store secret was not kept".into()))?
        }
    };
    StoreSecret::parse(&row.get::<_, String>(0), &format!("hoot_store_secret of {}", db.describe()))
}
