//! The PostgreSQL core against a real server: `HOOT_TEST_POSTGRES_URL` (CI sets it; `.ci/run` fails
//! when the server is unreachable). Each test makes a database of its own and drops it after.
//! Without the variable each test says so on stderr and checks nothing else.

use std::sync::Arc;

use super::{close, keys, open, PgOptions};
use crate::env::Environment;
use crate::error::HootError;
use crate::store::users::ActivitySummary;
use crate::store::JsonObject;
use crate::store::UserStore;

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

const NOW: i64 = 1_700_000_000;
const ALICE: &str = "3b241101-e2bb-4255-8caf-4136c566a962";
const BOB: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

/// An environment whose keys come from the key file in a home of its own.
fn home_env(label: &str) -> Result<Environment> {
    let home = crate::tests::temp_dir(label);
    Ok(Environment::fixed(&home).with_var(crate::env::HOME, home.to_str().ok_or("path")?))
}

async fn stored(db: &super::PgDatabase, sql: &str) -> Result<String> {
    Ok(db.conn().await?.query_one(sql, &[]).await?.get(0))
}

#[tokio::test]
async fn encrypt_rotate_and_decrypt_reach_every_value_and_every_replica_follows() -> Result<()> {
    let Some((url, name)) = fresh_database("encrypt").await? else { return Ok(()) };
    let env = home_env("pg-encrypt")?;
    // Two pools on one database: this process, and a replica that opened it before each change.
    let db = open(&url, &PgOptions::default(), false, &env)?;
    let replica_url = format!("{url}&application_name=replica");
    let replica = open(&replica_url, &PgOptions::default(), false, &env)?;
    let (alice, bob) = (UserStore::new(Arc::clone(&db), ALICE)?, UserStore::new(Arc::clone(&replica), BOB)?);
    alice.save_tokens("srv", &json(r#"{"refresh_token":"secret"}"#)?).await?;
    bob.save_server_config("srv", &json(r#"{"url":"x"}"#)?, NOW).await?;
    keys::load_or_create(Arc::clone(&db)).await?;
    assert!(replica.ring().await?.is_none(), "the replica writes plain");

    let sealed = super::encryption::encrypt(Arc::clone(&db), false, NOW).await?;
    assert_eq!(sealed.sealed, 3, "two values and the signing key");
    let k1 = sealed.key_ids.first().cloned().ok_or("no key id")?;
    assert_eq!(sealed.key_ids.len(), 1);
    let tokens = stored(&db, "SELECT tokens FROM oauth_tokens").await?;
    assert!(tokens.starts_with(crate::sealing::PREFIX) && !tokens.contains("secret"));
    assert!(stored(&db, "SELECT private_jwk FROM hoot_signing_keys").await?.starts_with(crate::sealing::PREFIX));
    assert_eq!(alice.tokens("srv").await?.as_deref(), Some(r#"{"refresh_token":"secret"}"#));
    // The replica's next write is sealed, though it opened the database plain.
    bob.save_tokens("srv", &json(r#"{"refresh_token":"bob"}"#)?).await?;
    let bobs = format!("SELECT tokens FROM oauth_tokens WHERE user_id = '{BOB}'");
    assert_eq!(crate::sealing::sealed_with(&stored(&db, &bobs).await?), Some(k1.as_str()));
    assert_eq!(
        UserStore::new(Arc::clone(&replica), ALICE)?.tokens("srv").await?.as_deref(),
        Some(r#"{"refresh_token":"secret"}"#)
    );
    let status = super::inspect::inspect(Arc::clone(&db), NOW).await?.encryption.ok_or("no status")?;
    assert_eq!((status.encrypted, status.sealed.clone(), status.plaintext), (true, vec![(k1.clone(), 4)], 0));

    let rotated = super::encryption::encrypt(Arc::clone(&db), true, NOW).await?;
    let k2 = rotated.key_ids.first().cloned().ok_or("no key id")?;
    assert_ne!(k2, k1);
    assert_eq!((rotated.sealed, rotated.key_ids.len()), (4, 1), "every value sealed again, one key recorded");
    // The replica, sealing with k1, reads the key file again and seals with k2.
    bob.save_tokens("srv", &json(r#"{"refresh_token":"bob2"}"#)?).await?;
    assert_eq!(crate::sealing::sealed_with(&stored(&db, &bobs).await?), Some(k2.as_str()));
    let status = super::inspect::inspect(Arc::clone(&db), NOW).await?.encryption.ok_or("no status")?;
    assert_eq!(status.sealed, [(k2.clone(), 4)]);

    let opened = super::encryption::decrypt(Arc::clone(&db)).await?;
    assert_eq!((opened.opened, opened.key_ids.len()), (4, 0));
    assert_eq!(stored(&db, &bobs).await?, r#"{"refresh_token":"bob2"}"#);
    // The replica, sealing with k2, finds the decrypt's proof and writes plain.
    bob.save_tokens("srv", &json(r#"{"refresh_token":"bob3"}"#)?).await?;
    assert_eq!(stored(&db, &bobs).await?, r#"{"refresh_token":"bob3"}"#);
    assert!(replica.ring().await?.is_none());
    assert!(!stored(&db, "SELECT private_jwk FROM hoot_signing_keys").await?.starts_with(crate::sealing::PREFIX));
    keys::load(&db).await?.ok_or("no key set")?;
    let status = super::inspect::inspect(Arc::clone(&db), NOW).await?.encryption.ok_or("no status")?;
    assert_eq!((status.encrypted, status.sealed.len(), status.plaintext), (false, 0, 4));
    close(&url);
    close(&replica_url);
    drop_database(&name).await
}

#[tokio::test]
async fn a_write_waiting_on_an_encrypt_is_sealed_once_it_commits() -> Result<()> {
    let Some((url, name)) = fresh_database("encrypt_wait").await? else { return Ok(()) };
    let env = home_env("pg-encrypt-wait")?;
    let db = open(&url, &PgOptions::default(), false, &env)?;
    let alice = UserStore::new(Arc::clone(&db), ALICE)?;
    alice.save_tokens("before", &json("{}")?).await?;
    let key = crate::sealing::KeyRing::load_or_create(&env)?;
    // An encrypt's transaction, by hand: the state taken, a key recorded, not yet committed.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    let running = tokio::spawn(connection);
    client.batch_execute("BEGIN; LOCK TABLE hoot_encryption IN ACCESS EXCLUSIVE MODE").await?;
    client.execute("INSERT INTO hoot_encryption (key_id, added_at) VALUES ($1, 0)", &[&key.current_id()]).await?;
    let during = json(r#"{"refresh_token":"during"}"#)?;
    let writer = alice.clone();
    let write = tokio::spawn(async move { writer.save_tokens("during", &during).await });
    // Until the write waits for the lock (polled: no sleep decides it).
    let watcher = db.conn().await?;
    loop {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'hoot_encryption'::regclass",
                &[],
            )
            .await?
            .get(0);
        if waiting > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    drop(watcher);
    client.batch_execute("COMMIT").await?;
    write.await??;
    let during = stored(&db, "SELECT tokens FROM oauth_tokens WHERE server_id = 'during'").await?;
    assert_eq!(crate::sealing::sealed_with(&during), Some(key.current_id()), "sealed under the key just recorded");
    drop(client);
    let _ = running.await;
    close(&url);
    drop_database(&name).await
}

#[tokio::test]
async fn inspect_reports_without_changing_anything() -> Result<()> {
    let Some((url, name)) = fresh_database("inspect").await? else { return Ok(()) };
    let db = open(&url, &PgOptions::default(), false, &Environment::process())?;
    let empty = super::inspect::inspect(Arc::clone(&db), NOW).await?;
    assert_eq!((empty.exists, empty.schema_version, &empty.activity, &empty.encryption), (true, 0, &None, &None));
    assert_eq!(empty.missing_tables.len(), super::schema::TABLES.len());
    assert!(!super::inspect::up_to_date(&empty));
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    let running = tokio::spawn(connection);
    let tables: i64 =
        client.query_one("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()", &[]).await?.get(0);
    assert_eq!(tables, 0, "inspecting creates nothing");

    let alice = UserStore::new(Arc::clone(&db), ALICE)?;
    alice.save_tokens("srv", &json("{}")?).await?;
    alice.touch(NOW, 1).await?;
    let status = super::inspect::inspect(Arc::clone(&db), NOW).await?;
    assert!(super::inspect::up_to_date(&status), "{status:?}");
    assert_eq!(status.schema_version, i64::from(super::schema::PG_SCHEMA_VERSION));
    assert_eq!(
        status.activity,
        Some(ActivitySummary { users: 1, active_1d: 1, active_7d: 1, active_30d: 1, untracked: 0 })
    );
    let encryption = status.encryption.ok_or("no encryption status")?;
    assert_eq!((encryption.encrypted, encryption.plaintext, encryption.kept_aside), (false, 1, 0));
    client
        .execute(
            "INSERT INTO server_configs (user_id, server_id, config) VALUES ($1, 's', '{}')",
            &[&BOB.to_uppercase()],
        )
        .await?;
    let status = super::inspect::inspect(Arc::clone(&db), NOW).await?;
    assert_eq!(status.mixed_case_tables, ["server_configs"]);
    assert!(!super::inspect::up_to_date(&status));
    drop(client);
    let _ = running.await;
    close(&url);
    drop_database(&name).await
}

/// The store's contract (`crate::store::tests`), each check on a PostgreSQL database of its own.
mod contract {
    use super::*;

    macro_rules! on_postgres {
        ($($name:ident),*) => {
            $(
                #[tokio::test]
                async fn $name() -> Result<()> {
                    let Some((url, name)) = fresh_database(stringify!($name)).await? else { return Ok(()) };
                    let db = open(&url, &PgOptions::default(), false, &Environment::process())?;
                    let outcome = crate::store::tests::$name(Arc::clone(&db)).await;
                    close(&url);
                    drop_database(&name).await?;
                    Ok(outcome?)
                }
            )*
        };
    }
    crate::store::tests::contract_tests!(on_postgres);
}
