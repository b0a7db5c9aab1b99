//! The PostgreSQL core against a real server: `HOOT_TEST_POSTGRES_URL` (CI sets it; `.ci/run` fails
//! when the server is unreachable). Each test makes a database of its own and drops it after.
//! Without the variable each test says so on stderr and checks nothing else.

use std::sync::Arc;

use super::{close, keys, open, store::PgStore, PgOptions};
use crate::env::Environment;
use crate::error::HootError;
use crate::store::JsonObject;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A new database on the test server: its URL, or `None` (said on stderr) without a server.
async fn fresh_database(label: &str) -> Result<Option<(String, String)>> {
    let Ok(server) = std::env::var("HOOT_TEST_POSTGRES_URL") else {
        eprintln!("{label}: HOOT_TEST_POSTGRES_URL is not set, so this PostgreSQL test did NOT run");
        return Ok(None);
    };
    let name = format!("hoot_rust_{label}_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    admin(&server, &format!("CREATE DATABASE {name}")).await?;
    let base = server.split('?').next().unwrap_or(&server);
    let root = &base[..base.rfind('/').filter(|&i| i > "postgres://".len()).unwrap_or(base.len())];
    Ok(Some((format!("{root}/{name}?sslmode=disable"), name)))
}

async fn admin(server: &str, sql: &str) -> Result<()> {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls).await?;
    let running = tokio::spawn(connection);
    client.batch_execute(sql).await?;
    drop(client);
    let _ = running.await;
    Ok(())
}

async fn drop_database(name: &str) -> Result<()> {
    let server = std::env::var("HOOT_TEST_POSTGRES_URL")?;
    admin(&server, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await
}

fn json(text: &str) -> std::result::Result<JsonObject, HootError> {
    JsonObject::new(text.to_string(), "value")
}

#[tokio::test]
async fn replicas_starting_together_make_one_schema_and_one_key() -> Result<()> {
    let Some((url, name)) = fresh_database("together").await? else { return Ok(()) };
    let env = Environment::process();
    // Six pools (a URL each), as six replicas would have, all asking for the key set at once.
    let urls: Vec<String> = (0..6).map(|i| format!("{url}&application_name=replica{i}")).collect();
    let mut tasks = Vec::new();
    for u in &urls {
        let db = open(u, &PgOptions::default(), false, &env)?;
        tasks.push(tokio::spawn(async move { keys::load_or_create(db).await.map(|l| l.keys.kid().to_string()) }));
    }
    let mut kids = Vec::new();
    for task in tasks {
        kids.push(task.await??);
    }
    kids.dedup();
    assert_eq!(kids.len(), 1, "one key for all six: {kids:?}");
    let db = open(&urls[0], &PgOptions::default(), false, &env)?;
    let conn = db.conn().await?;
    let count: i64 = conn.query_one("SELECT count(*) FROM hoot_signing_keys", &[]).await?.get(0);
    let version: i32 = conn.query_one("SELECT version FROM hoot_schema_version", &[]).await?.get(0);
    assert_eq!((count, version), (1, super::schema::PG_SCHEMA_VERSION));
    drop(conn);
    for u in &urls {
        close(u);
    }
    drop_database(&name).await
}

#[tokio::test]
async fn a_rotation_keeps_the_previous_key_and_removes_older_ones() -> Result<()> {
    let Some((url, name)) = fresh_database("rotation").await? else { return Ok(()) };
    let db = open(&url, &PgOptions::default(), false, &Environment::process())?;
    let first = keys::load_or_create(Arc::clone(&db)).await?.keys.kid().to_string();
    let second = keys::rotate(Arc::clone(&db), false).await?;
    assert_eq!((second.kept.clone(), second.removed.clone()), (vec![first.clone()], vec![]));
    let third = keys::rotate(Arc::clone(&db), false).await?;
    assert_eq!((third.kept.clone(), third.removed.clone()), (vec![second.kid.clone()], vec![first.clone()]));
    let loaded = keys::load(&db).await?.ok_or("no key set")?;
    assert_eq!(loaded.keys.kid(), third.kid);
    assert_eq!(loaded.keys.public_keys(), 2);
    let dropped = keys::rotate(Arc::clone(&db), true).await?;
    assert_eq!(dropped.removed.len(), 2);
    assert_eq!(keys::load(&db).await?.ok_or("no key set")?.keys.public_keys(), 1);
    assert!(loaded.version < keys::version(&db).await?, "each change bumps the version");
    close(&url);
    drop_database(&name).await
}

#[tokio::test]
async fn a_store_reads_lists_and_deletes_only_its_users_rows() -> Result<()> {
    let Some((url, name)) = fresh_database("isolation").await? else { return Ok(()) };
    let db = open(&url, &PgOptions::default(), false, &Environment::process())?;
    let alice = PgStore::new(Arc::clone(&db), "3B241101-E2BB-4255-8CAF-4136C566A962")?;
    let bob = PgStore::new(Arc::clone(&db), "7c9e6679-7425-40de-944b-e07fc1f90ae7")?;
    assert_eq!(alice.user_id(), "3b241101-e2bb-4255-8caf-4136c566a962", "one spelling per user");
    alice.save_tokens("srv", json(r#"{"who":"alice"}"#)?)?.await?;
    bob.save_tokens("srv", json(r#"{"who":"bob"}"#)?)?.await?;
    bob.save_server_config("other", json("{}")?, 1)?.await?;
    assert_eq!(alice.tokens("srv")?.await?.as_deref(), Some(r#"{"who":"alice"}"#));
    assert_eq!(alice.servers().await?, ["srv"]);
    assert_eq!(bob.servers().await?, ["other", "srv"]);
    assert_eq!(alice.delete_all(None).await?, 1);
    assert_eq!(bob.tokens("srv")?.await?.as_deref(), Some(r#"{"who":"bob"}"#), "bob's rows stay");
    assert!(PgStore::new(Arc::clone(&db), "nope").is_err());
    assert_eq!(alice.tokens("").err().map(|e| e.code()), Some("ERR_INVALID_ARG_VALUE"));
    close(&url);
    drop_database(&name).await
}
