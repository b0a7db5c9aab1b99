use super::*;
use crate::env::{self, Environment};
use crate::tests::{temp_dir, TestResult};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const ALICE: &str = "3b241101-e2bb-4255-8caf-4136c566a962";
const BOB: &str = "9c5b94b1-35ad-49bb-b118-8e8fc24abf80";
const NOW: i64 = 1_800_000_000;
const NOW_MS: i64 = NOW * 1000;

fn db_file(label: &str) -> PathBuf {
    temp_dir(label).join("hoot-mcp.db")
}

fn store(user: &str, path: &Path) -> Result<OAuthStore, HootError> {
    OAuthStore::open(user, DbLocation::File(path.to_path_buf()), NOW_MS)
}

fn json(text: &str) -> JsonObject {
    JsonObject::new(text.to_string(), "value").unwrap_or_else(|e| panic!("{e}"))
}

/// Hoot's single-user schema, as its backend created it before multi-tenancy.
fn legacy_db(path: &Path, rows: usize) -> TestResult {
    let conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE oauth_tokens (server_id TEXT PRIMARY KEY, tokens TEXT NOT NULL);
         CREATE TABLE oauth_client_info (server_id TEXT PRIMARY KEY, client_info TEXT NOT NULL);
         CREATE TABLE oauth_verifiers (server_id TEXT PRIMARY KEY, verifier TEXT NOT NULL,
             created_at INTEGER DEFAULT (strftime('%s', 'now')));
         CREATE TABLE favicon_cache (server_url TEXT PRIMARY KEY, favicon_url TEXT, oauth_logo_uri TEXT,
             cached_at INTEGER DEFAULT (strftime('%s', 'now')));",
    )?;
    let tx = conn.unchecked_transaction()?;
    for i in 0..rows {
        tx.execute(
            "INSERT INTO oauth_tokens VALUES (?1, ?2)",
            params![format!("s{i}"), format!("{{\"access_token\":\"t{i}\"}}")],
        )?;
        tx.execute(
            "INSERT INTO oauth_client_info VALUES (?1, ?2)",
            params![format!("s{i}"), format!("{{\"client_id\":\"c{i}\"}}")],
        )?;
        tx.execute(
            "INSERT INTO oauth_verifiers VALUES (?1, ?2, ?3)",
            params![format!("s{i}"), format!("v{i}"), NOW - 10],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn user_id_columns(path: &Path) -> Result<Vec<bool>, rusqlite::Error> {
    let conn = Connection::open(path)?;
    ["oauth_tokens", "oauth_client_info", "oauth_verifiers"]
        .iter()
        .map(|t| {
            conn.query_row("SELECT count(*) FROM pragma_table_info(?1) WHERE name = 'user_id'", [t], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n == 1)
        })
        .collect()
}

#[test]
fn user_ids_accepted_by_the_store() {
    for ok in [ALICE, "default-user", "legacy-user-1732000000000", "legacy-user-0"] {
        assert!(is_store_user_id(ok), "{ok}");
    }
    for bad in ["", "legacy-user-", "legacy-user-12a", "legacy-user-\u{0661}", "Default-User", "legacy-user--1", "x"] {
        assert!(!is_store_user_id(bad), "{bad:?}");
    }
    match OAuthStore::open("nobody", DbLocation::Memory, NOW_MS) {
        Err(e @ HootError::InvalidUserId { .. }) => assert!(!e.to_string().contains("nobody"), "{e}"),
        other => panic!("expected ERR_INVALID_USER_ID, got {other:?}"),
    }
}

#[test]
fn location_rules() -> TestResult {
    let cwd = Path::new("/work");
    let home = Path::new("/home/u");
    let at_home = Environment::fixed(cwd).with_var(env::HOME, home);
    let env_db = at_home.clone().with_var(env::HOOT_DB_PATH, "env.db");
    let location = |option, env: &Environment| db::location(option, "dbPath", env);
    assert_eq!(location(None, &at_home)?, DbLocation::File(home.join(".hoot/hoot-mcp.db")));
    assert_eq!(location(None, &env_db)?, DbLocation::File(cwd.join("env.db")));
    assert_eq!(
        location(Some("/x/opt.db"), &Environment::fixed(cwd).with_var(env::HOOT_DB_PATH, "env.db"))?,
        DbLocation::File("/x/opt.db".into())
    );
    assert_eq!(location(Some(":memory:"), &Environment::fixed(cwd))?, DbLocation::Memory);
    assert_eq!(
        location(None, &at_home.clone().with_var(env::HOOT_DB_PATH, ""))?,
        DbLocation::File(home.join(".hoot/hoot-mcp.db"))
    );
    assert!(matches!(location(None, &Environment::fixed(cwd)), Err(HootError::Db(_))));
    Ok(())
}

#[test]
fn an_empty_db_path_is_refused_not_read_as_the_working_directory() {
    for name in ["dbPath", "opts.dbPath"] {
        match db::location(Some(""), name, &Environment::process()) {
            Err(e) => {
                assert!(e.code() == "ERR_INVALID_ARG_VALUE" && e.to_string().contains(&format!("\"{name}\"")), "{e}")
            }
            Ok(location) => panic!("accepted as {location:?}"),
        }
    }
}

#[test]
fn verifier_max_age_is_whole_seconds() -> TestResult {
    assert_eq!(verifier_max_age(None)?, VERIFIER_TTL_SECONDS);
    assert_eq!(verifier_max_age(Some(0.0))?, 0);
    assert_eq!(verifier_max_age(Some(86_400.0))?, 86_400);
    for bad in [-1.0, 1.5, 1e13, f64::NAN] {
        let e = verifier_max_age(Some(bad)).err().ok_or("accepted")?;
        assert_eq!((e.code(), e.kind()), ("ERR_INVALID_ARG_VALUE", crate::error::ErrorKind::RangeError), "{bad}");
        assert!(e.to_string().contains("\"opts.maxAgeSeconds\""));
    }
    Ok(())
}

#[test]
fn only_an_object_may_be_stored() {
    assert_eq!(JsonObject::check_kind(ValueKind::Object, "tokens", "an instance of Object"), Ok(()));
    let e = JsonObject::check_kind(ValueKind::NotJson, "tokens", "undefined").err();
    assert_eq!(
        e.map(|e| (e.code(), e.to_string())),
        Some(("ERR_INVALID_ARG_TYPE", "The \"tokens\" argument must be a JSON object. Received undefined".into()))
    );
    let e = JsonObject::check_kind(ValueKind::OtherJson, "tokens", "an instance of Array").err();
    assert_eq!(
        e.map(|e| (e.code(), e.to_string())),
        Some((
            "ERR_INVALID_ARG_VALUE",
            "The \"tokens\" argument must be a JSON object. Received an instance of Array".into()
        ))
    );
    assert_eq!(JsonObject::unserialisable("info", "cycle").code(), "ERR_INVALID_ARG_VALUE");
}

#[test]
fn bad_values_are_refused_before_anything_is_written() -> TestResult {
    assert!(matches!(JsonObject::new("[1]".into(), "tokens"), Err(HootError::InvalidArgValue { .. })));
    assert!(matches!(JsonObject::new("\"s\"".into(), "tokens"), Err(HootError::InvalidArgValue { .. })));
    assert!(matches!(JsonObject::new("{".into(), "tokens"), Err(HootError::InvalidArgValue { .. })));
    let big = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_VALUE_BYTES));
    assert!(matches!(JsonObject::new(big, "tokens"), Err(HootError::InvalidArgValue { out_of_range: true, .. })));
    let path = db_file("bad");
    let s = store(ALICE, &path)?;
    assert!(matches!(s.save_tokens("", &json("{}")), Err(HootError::InvalidArgValue { .. })));
    assert!(matches!(s.save_code_verifier("srv", "", NOW), Err(HootError::InvalidArgValue { .. })));
    assert!(matches!(s.tokens(&"s".repeat(MAX_ID_BYTES + 1)), Err(HootError::InvalidArgValue { .. })));
    assert!(CredentialScope::parse("everything").is_err());
    assert!(s.servers()?.is_empty());
    Ok(())
}

#[cfg(unix)]
#[test]
fn a_new_database_is_private_and_at_the_current_schema() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("fresh").join("nested");
    let path = dir.join("hoot-mcp.db");
    let report = migrate_database(DbLocation::File(path.clone()), NOW_MS)?;
    assert_eq!(report, MigrationReport { schema_version: SCHEMA_VERSION, ..MigrationReport::default() });
    assert_eq!(std::fs::metadata(&dir)?.permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
    let conn = Connection::open(&path)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    assert_eq!(mode, "wal");
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN
         ('oauth_tokens', 'oauth_client_info', 'oauth_verifiers', 'server_configs', 'favicon_cache')",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(tables, 5);
    Ok(())
}

#[cfg(unix)]
#[test]
fn a_hoot_directory_left_open_by_hoot_is_tightened_and_another_directory_is_not() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let base = temp_dir("open-dir");
    let (hoot, shared) = (base.join(".hoot"), base.join("shared"));
    for dir in [&hoot, &shared] {
        // As Hoot's mkdirSync leaves it.
        std::fs::create_dir(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        store(ALICE, &dir.join("hoot-mcp.db"))?;
    }
    assert_eq!(std::fs::metadata(&hoot)?.permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&shared)?.permissions().mode() & 0o777, 0o755, "maybe shared on purpose");
    Ok(())
}

#[test]
fn migrates_legacy_rows_to_one_legacy_user_with_a_backup() -> TestResult {
    let path = db_file("legacy");
    legacy_db(&path, 25)?;
    let report = migrate_database(DbLocation::File(path.clone()), NOW_MS)?;
    let legacy = format!("legacy-user-{NOW_MS}");
    assert!(report.migrated);
    assert_eq!(report.legacy_user_id.as_deref(), Some(legacy.as_str()));
    assert_eq!((report.tokens, report.client_info, report.verifiers), (25, 25, 25));
    let backup = report.backup_path.clone().ok_or("no backup")?;
    assert_eq!(user_id_columns(&backup)?, [false, false, false], "the backup is the legacy file");
    assert_eq!(user_id_columns(&path)?, [true, true, true]);

    let s = store(&legacy, &path)?;
    assert_eq!(s.tokens("s7")?.as_deref(), Some(r#"{"access_token":"t7"}"#));
    assert_eq!(s.client_information("s24")?.as_deref(), Some(r#"{"client_id":"c24"}"#));
    assert_eq!(s.code_verifier("s0", NOW)?.as_deref(), Some("v0"), "created_at is carried over");
    assert_eq!(s.servers()?.len(), 25);

    let again = migrate_database(DbLocation::File(path.clone()), NOW_MS + 1)?;
    assert_eq!(again, MigrationReport { schema_version: SCHEMA_VERSION, ..MigrationReport::default() });
    Ok(())
}

#[test]
fn empty_legacy_tables_are_converted_too() -> TestResult {
    let path = db_file("empty-legacy");
    legacy_db(&path, 0)?;
    let report = migrate_database(DbLocation::File(path.clone()), NOW_MS)?;
    assert!(report.migrated);
    assert_eq!((report.tokens, report.client_info, report.verifiers), (0, 0, 0));
    assert_eq!(user_id_columns(&path)?, [true, true, true]);
    store(ALICE, &path)?.save_tokens("srv", &json("{}"))?;
    Ok(())
}

#[test]
fn a_half_migrated_file_finishes_under_the_existing_legacy_user() -> TestResult {
    let path = db_file("mixed");
    legacy_db(&path, 3)?;
    {
        // What Hoot's non-transactional migration leaves after converting only oauth_tokens.
        let conn = Connection::open(&path)?;
        conn.execute_batch(
            "DROP TABLE oauth_tokens;
             CREATE TABLE oauth_tokens (user_id TEXT NOT NULL, server_id TEXT NOT NULL, tokens TEXT NOT NULL,
                 PRIMARY KEY (user_id, server_id));
             INSERT INTO oauth_tokens VALUES ('legacy-user-42', 's0', '{}');",
        )?;
    }
    let report = migrate_database(DbLocation::File(path.clone()), NOW_MS)?;
    assert_eq!(report.legacy_user_id.as_deref(), Some("legacy-user-42"));
    assert_eq!((report.tokens, report.client_info, report.verifiers), (0, 3, 3));
    let s = store("legacy-user-42", &path)?;
    assert_eq!(s.servers()?, ["s0", "s1", "s2"]);
    Ok(())
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() -> TestResult {
    let path = db_file("notadb");
    let content = b"this is a text file, not a database\n".repeat(100);
    std::fs::write(&path, &content)?;
    match migrate_database(DbLocation::File(path.clone()), NOW_MS) {
        Err(HootError::Db(message)) => assert!(message.contains("not a SQLite database"), "{message}"),
        other => panic!("expected ERR_HOOT_DB, got {other:?}"),
    }
    assert!(matches!(store(ALICE, &path), Err(HootError::Db(_))));
    assert_eq!(std::fs::read(&path)?, content);
    let dir = path.parent().ok_or("parent")?;
    assert_eq!(std::fs::read_dir(dir)?.count(), 1, "no -wal, -shm or backup files appeared");
    Ok(())
}

#[test]
fn a_closed_database_reopens_for_stores_still_in_use() -> TestResult {
    let path = db_file("close");
    let s = store(ALICE, &path)?;
    s.save_tokens("srv", &json("{}"))?;
    assert!(db::close(DbLocation::File(path.clone()))?);
    assert!(!db::close(DbLocation::File(path.clone()))?);
    assert_eq!(s.tokens("srv")?.as_deref(), Some("{}"));
    Ok(())
}

#[test]
fn two_spellings_of_one_file_share_one_connection() -> TestResult {
    let path = db_file("spelling");
    let dir = path.parent().ok_or("parent")?;
    let (a, _) = db::get_or_open(DbLocation::File(path.clone()), NOW_MS)?;
    let (b, report) = db::get_or_open(DbLocation::File(dir.join(".").join("hoot-mcp.db")), NOW_MS)?;
    assert!(Arc::ptr_eq(&a, &b));
    assert!(report.is_none());
    Ok(())
}

#[test]
fn inspection_reports_without_changing_anything() -> TestResult {
    let path = db_file("inspect");
    let location = DbLocation::File(path.clone());
    assert_eq!(inspect_database(location.clone(), NOW)?, DatabaseStatus::default(), "a missing file");
    assert!(!path.exists(), "inspecting does not create it");
    legacy_db(&path, 2)?;
    let before = std::fs::read(&path)?;
    let status = inspect_database(location.clone(), NOW)?;
    assert_eq!(status.legacy_tables, ["oauth_tokens", "oauth_client_info", "oauth_verifiers"]);
    assert_eq!(
        status.missing_tables,
        [
            "server_configs",
            "hoot_oauth_discovery",
            "hoot_oauth_states",
            "hoot_users",
            "hoot_revocations",
            "hoot_transfer_codes",
            "hoot_transfer_failures",
            "hoot_transfer_source_failures",
            "hoot_accounts",
            "hoot_encryption",
            "hoot_refresh_claims"
        ]
    );
    assert!(!status.up_to_date());
    assert_eq!(std::fs::read(&path)?, before);
    migrate_database(location.clone(), NOW_MS)?;
    assert!(inspect_database(location, NOW)?.up_to_date());
    Ok(())
}

#[test]
fn a_store_never_uses_a_database_closed_while_a_call_still_held_it() -> TestResult {
    // The only test here on the shared in-memory database: closing it while something still holds
    // it (a call in flight) must send the store back to the registry, not to the old connection.
    let store = OAuthStore::open(ALICE, DbLocation::Memory, NOW_MS)?;
    store.save_tokens("s", &json(r#"{"old":true}"#))?;
    let (in_flight, _) = db::get_or_open(DbLocation::Memory, NOW_MS)?;
    assert!(db::close(DbLocation::Memory)?);
    assert_eq!(store.tokens("s")?, None, "read from the closed database");
    drop(in_flight);
    db::close(DbLocation::Memory)?;
    Ok(())
}

#[test]
fn json_the_value_type_cannot_hold_is_still_a_json_object() -> TestResult {
    // Found by the stored_json fuzz target: valid JSON that serde_json's Value refuses (a number
    // past the range of a double; JSON.parse reads it as Infinity) is a JSON object all the same.
    let text = "{\r\" 4\":4E2222}";
    assert!(serde_json::from_str::<serde_json::Value>(text).is_err());
    let db = store(ALICE, &db_file("big-number"))?;
    db.save_tokens("s", &JsonObject::new(text.to_string(), "tokens")?)?;
    assert_eq!(db.tokens("s")?.as_deref(), Some(text));
    // Found by the same target after lone surrogates were refused in ids: inside a stored value
    // one is data, not a key. V8's JSON.stringify writes it as an escape serde_json's Value
    // refuses, JSON.parse reads it back, and the store keeps it byte for byte.
    let text = r#"{"access_token":"a\udb00b","\udc00":1}"#;
    assert!(serde_json::from_str::<serde_json::Value>(text).is_err());
    db.save_tokens("lone", &JsonObject::new(text.to_string(), "tokens")?)?;
    assert_eq!(db.tokens("lone")?.as_deref(), Some(text));
    Ok(())
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_is_a_stored_object_only_if_it_parses_as_one(text in ".{0,200}") {
            // serde's Value as the oracle; it also refuses numbers past f64, which JSON allows
            // (see json_the_value_type_cannot_hold_is_still_a_json_object).
            prop_assume!(!text.contains(['e', 'E']));
            let parsed = serde_json::from_str::<serde_json::Value>(&text).map(|v| v.is_object()).unwrap_or(false);
            prop_assert_eq!(JsonObject::new(text, "value").is_ok(), parsed);
        }

        #[test]
        fn any_json_object_round_trips_through_the_store(value in crate::tests::any_json()) {
            let text = value.to_string();
            let stored = JsonObject::new(text.clone(), "value");
            prop_assert_eq!(stored.is_ok(), value.is_object());
            if let Ok(stored) = stored {
                let db = store(ALICE, &db_file("prop"))?;
                db.save_tokens("s", &stored)?;
                prop_assert_eq!(db.tokens("s")?, Some(text));
            }
        }
    }
}

// Legacy files that Hoot's own code could leave and that a plain conversion cannot take.

fn backups_next_to(path: &Path) -> usize {
    let dir = path.parent().unwrap_or(path);
    std::fs::read_dir(dir)
        .map_or(0, |d| d.flatten().filter(|e| e.file_name().to_string_lossy().contains("pre-migration")).count())
}

#[test]
fn colliding_legacy_keys_are_kept_aside_whole_by_a_fixed_rule() -> TestResult {
    let path = db_file("collide");
    legacy_db(&path, 2)?;
    {
        let conn = Connection::open(&path)?;
        // The legacy key allowed several NULLs; a NULL and '' become one key too.
        conn.execute_batch(
            r#"INSERT INTO oauth_tokens VALUES (NULL, '{"access_token":"null-1"}');
               INSERT INTO oauth_tokens VALUES (NULL, '{"access_token":"null-2"}');
               INSERT INTO oauth_tokens VALUES ('', '{"access_token":"empty"}');
               INSERT INTO oauth_client_info VALUES (NULL, '{"client_id":"a"}');
               INSERT INTO oauth_client_info VALUES (NULL, '{"client_id":"b"}');"#,
        )?;
    }
    let report = migrate_database(DbLocation::File(path.clone()), NOW_MS)?;
    assert!(report.migrated);
    assert_eq!((report.tokens, report.client_info, report.conflicts), (3, 3, 3));
    let legacy = report.legacy_user_id.clone().ok_or("no legacy user")?;
    assert_eq!(store(&legacy, &path)?.tokens("s1")?.as_deref(), Some(r#"{"access_token":"t1"}"#));
    // The '' key is Hoot's (the store API refuses empty ids), so it is read here with SQL.
    let conn = Connection::open(&path)?;
    let kept_under_empty = |sql: &str| conn.query_row(sql, [&legacy], |r| r.get::<_, String>(0));
    assert_eq!(
        kept_under_empty("SELECT tokens FROM oauth_tokens WHERE user_id = ?1 AND server_id = ''")?,
        r#"{"access_token":"empty"}"#,
        "a real '' before a NULL"
    );
    assert_eq!(
        kept_under_empty("SELECT client_info FROM oauth_client_info WHERE user_id = ?1 AND server_id = ''")?,
        r#"{"client_id":"a"}"#,
        "then the first inserted"
    );
    let mut kept = conn.prepare(&format!(
        "SELECT table_name, user_id, server_id IS NULL, json_extract(row, '$.tokens'), json_extract(row, '$.client_info') \
         FROM {} ORDER BY table_name, legacy_rowid",
        schema::CONFLICTS_TABLE
    ))?;
    type KeptRow = (String, String, bool, Option<String>, Option<String>);
    let rows: Vec<KeptRow> = kept
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<Result<_, _>>()?;
    assert_eq!(
        rows,
        vec![
            ("oauth_client_info".into(), legacy.clone(), true, None, Some(r#"{"client_id":"b"}"#.into())),
            ("oauth_tokens".into(), legacy.clone(), true, Some(r#"{"access_token":"null-1"}"#.into()), None),
            ("oauth_tokens".into(), legacy.clone(), true, Some(r#"{"access_token":"null-2"}"#.into()), None),
        ],
        "nothing is lost"
    );
    Ok(())
}

#[test]
fn views_and_triggers_naming_a_legacy_table_survive_the_migration() -> TestResult {
    let path = db_file("dependents");
    legacy_db(&path, 3)?;
    {
        let conn = Connection::open(&path)?;
        conn.execute_batch(
            "CREATE VIEW token_servers AS SELECT server_id FROM oauth_tokens;
             CREATE TABLE token_log (server_id TEXT);
             CREATE TRIGGER log_tokens AFTER INSERT ON oauth_tokens BEGIN INSERT INTO token_log VALUES (new.server_id); END;",
        )?;
    }
    let report = migrate_database(DbLocation::File(path.clone()), NOW_MS)?;
    assert_eq!((report.migrated, report.tokens), (true, 3));
    let s = store(&report.legacy_user_id.clone().ok_or("no legacy user")?, &path)?;
    s.save_tokens("new", &json(r#"{"access_token":"n"}"#))?;
    let conn = Connection::open(&path)?;
    let servers: i64 = conn.query_row("SELECT count(*) FROM token_servers", [], |r| r.get(0))?;
    assert_eq!(servers, 4, "the view reads the new table");
    let logged: i64 = conn.query_row("SELECT count(*) FROM token_log WHERE server_id = 'new'", [], |r| r.get(0))?;
    assert_eq!(logged, 1, "the trigger fires on the new table");
    Ok(())
}

#[test]
fn a_legacy_table_without_its_key_column_is_refused_before_any_backup_and_not_retried_per_call() -> TestResult {
    let path = db_file("no-server-id");
    {
        let conn = Connection::open(&path)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE oauth_tokens (id TEXT PRIMARY KEY, tokens TEXT);")?;
    }
    let location = DbLocation::File(path.clone());
    let refused = |now_ms| match migrate_database(location.clone(), now_ms) {
        Err(HootError::Db(message)) => message,
        other => panic!("expected ERR_HOOT_DB, got {other:?}"),
    };
    let message = refused(NOW_MS);
    assert!(message.contains("table oauth_tokens has no server_id column (it has id, tokens)"), "{message}");
    assert!(message.contains("nothing was changed"), "{message}");
    assert_eq!(backups_next_to(&path), 0, "the columns are checked before the backup is taken");
    assert_eq!(user_id_columns(&path)?, [false, false, false]);

    // Fixed in place, but with the same size and time stamp, the file is not looked at again
    // within RETRY_FAILED_OPEN_MS: the same error comes back at no cost.
    let before = std::fs::metadata(&path)?;
    {
        let conn = Connection::open(&path)?;
        conn.execute_batch(
            "DROP TABLE oauth_tokens; CREATE TABLE oauth_tokens (server_id TEXT PRIMARY KEY, tokens TEXT);",
        )?;
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    }
    std::fs::OpenOptions::new().write(true).open(&path)?.set_len(before.len())?;
    std::fs::File::options().write(true).open(&path)?.set_modified(before.modified()?)?;
    assert_eq!(std::fs::metadata(&path)?.len(), before.len());
    assert_eq!(refused(NOW_MS + 1), message, "not retried on the next call");
    // After the pause it is tried again, and opens.
    let report = migrate_database(location, NOW_MS + db::RETRY_FAILED_OPEN_MS)?;
    assert!(report.migrated);
    Ok(())
}

#[test]
fn a_version_1_file_over_legacy_tables_is_migrated_and_reported_the_same_everywhere() -> TestResult {
    let path = db_file("v1-legacy");
    legacy_db(&path, 4)?;
    Connection::open(&path)?.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    let location = DbLocation::File(path.clone());
    let status = inspect_database(location.clone(), NOW)?;
    assert_eq!(status.legacy_tables, ["oauth_tokens", "oauth_client_info", "oauth_verifiers"]);
    assert!(!status.up_to_date(), "inspect (and doctor) say it needs migrating");
    let report = migrate_database(location.clone(), NOW_MS)?;
    assert_eq!((report.migrated, report.tokens), (true, 4), "and migrate migrates it, despite user_version");
    assert!(inspect_database(location, NOW)?.up_to_date());
    Ok(())
}

#[test]
fn upper_case_user_ids_are_lowered_and_a_collision_kept_aside() -> TestResult {
    let path = db_file("mixed-case");
    migrate_database(DbLocation::File(path.clone()), NOW_MS)?;
    db::close(DbLocation::File(path.clone()))?;
    let upper = ALICE.to_uppercase();
    {
        // As Hoot's own code (or an older hoot-core) stored them: the id as the request spelled it.
        let conn = Connection::open(&path)?;
        conn.execute_batch(&format!(
            r#"INSERT INTO oauth_tokens (user_id, server_id, tokens) VALUES ('{upper}', 'only-upper', '{{"access_token":"u"}}');
               INSERT INTO oauth_tokens (user_id, server_id, tokens) VALUES ('{upper}', 'both', '{{"access_token":"upper twin"}}');
               INSERT INTO oauth_tokens (user_id, server_id, tokens) VALUES ('{ALICE}', 'both', '{{"access_token":"lower twin"}}');
               INSERT INTO server_configs VALUES ('{upper}', 'cfg', '{{"url":"u"}}', 1);"#
        ))?;
    }
    let location = DbLocation::File(path.clone());
    assert_eq!(inspect_database(location.clone(), NOW)?.mixed_case_tables, ["oauth_tokens", "server_configs"]);
    let report = migrate_database(location.clone(), NOW_MS)?;
    assert_eq!((report.user_ids_lowered, report.conflicts), (2, 1));
    let s = store(ALICE, &path)?;
    assert_eq!(s.tokens("only-upper")?.as_deref(), Some(r#"{"access_token":"u"}"#));
    assert_eq!(s.tokens("both")?.as_deref(), Some(r#"{"access_token":"lower twin"}"#), "the lower-case twin wins");
    assert_eq!(s.server_config("cfg")?.as_deref(), Some(r#"{"url":"u"}"#));
    let conn = Connection::open(&path)?;
    let kept: String = conn.query_row(
        &format!("SELECT json_extract(row, '$.tokens') FROM {} WHERE user_id = ?1", schema::CONFLICTS_TABLE),
        [&upper],
        |r| r.get(0),
    )?;
    assert_eq!(kept, r#"{"access_token":"upper twin"}"#);
    assert!(inspect_database(location, NOW)?.up_to_date());
    // Forgetting the user forgets what was kept aside for them as well.
    assert_eq!(s.delete_all(None)?, 4);
    let left: i64 = conn.query_row(&format!("SELECT count(*) FROM {}", schema::CONFLICTS_TABLE), [], |r| r.get(0))?;
    assert_eq!(left, 0);
    Ok(())
}

#[test]
fn a_database_of_the_previous_schema_gains_the_new_tables_without_a_backup() -> TestResult {
    let path = db_file("gains-tables");
    {
        let conn = Connection::open(&path)?;
        for (name, columns) in schema::tests_support::hoot_tables() {
            conn.execute_batch(&format!("CREATE TABLE {name} ({columns})"))?;
        }
        conn.pragma_update(None, "user_version", 1)?;
    }
    let alice = store(ALICE, &path)?;
    alice.save_discovery_state("srv", &json("{}"), NOW)?;
    let dir = path.parent().ok_or("no parent")?;
    let backups = std::fs::read_dir(dir)?
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().contains(".bak")))
        .count();
    assert_eq!(backups, 0);
    Ok(())
}

#[test]
fn touch_writes_once_per_interval_and_the_summary_counts_without_ids() -> TestResult {
    let path = db_file("touch");
    let (alice, bob) = (store(ALICE, &path)?, store(BOB, &path)?);
    const DAY: i64 = 86_400;
    assert!(alice.touch(NOW - 10 * DAY, users::TOUCH_INTERVAL_SECONDS)?, "the first call writes");
    assert!(!alice.touch(NOW - 10 * DAY + 60, users::TOUCH_INTERVAL_SECONDS)?, "within the hour: no write");
    assert!(alice.touch(NOW - 10 * DAY + 3600, users::TOUCH_INTERVAL_SECONDS)?);
    assert!(bob.touch(NOW - 2 * DAY, users::TOUCH_INTERVAL_SECONDS)?);
    assert!(alice.touch(NOW - 100, users::TOUCH_INTERVAL_SECONDS)?);
    // A user with data but no activity row (written before activity was recorded).
    store("0f9d4b7a-2c3e-4f5a-8b6c-7d8e9f0a1b2c", &path)?.save_tokens("srv", &json("{}"))?;
    let summary = users::activity_summary(DbLocation::File(path.clone()), NOW)?;
    assert_eq!(summary, users::ActivitySummary { users: 3, active_1d: 1, active_7d: 2, active_30d: 2, untracked: 1 });
    let conn = Connection::open(&path)?;
    let (first, last): (i64, i64) =
        conn.query_row("SELECT first_seen, last_seen FROM hoot_users WHERE user_id = ?1", [ALICE], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    assert_eq!((first, last), (NOW - 10 * DAY, NOW - 100));
    Ok(())
}

mod identity_tests {
    use super::*;
    use crate::sqlite::identity::{self, OnConflict};

    fn location(path: &Path) -> DbLocation {
        DbLocation::File(path.to_path_buf())
    }

    #[test]
    fn a_revocation_ends_the_codes_derived_from_the_tokens_it_revokes() -> TestResult {
        let path = db_file("revoked-code");
        let alice = store(ALICE, &path)?;
        // Made with a token issued at NOW - 60 (stolen), then its user's tokens are revoked.
        let (stolen, _) = alice.create_transfer_code(600, NOW - 60, NOW)?;
        let revoke = |before: i64| -> rusqlite::Result<usize> {
            Connection::open(&path)?.execute(
                "INSERT INTO hoot_revocations (user_id, revoked_before) VALUES (?1, ?2) \
                 ON CONFLICT (user_id) DO UPDATE SET revoked_before = excluded.revoked_before",
                rusqlite::params![ALICE, before],
            )
        };
        revoke(NOW + 1)?;
        let refused = identity::redeem_transfer_code(location(&path), &stolen, None, None, NOW + 2);
        assert_eq!(refused.map_err(|e| e.code()), Err("ERR_HOOT_TRANSFER_CODE"));
        // Another process that had not yet learnt of the revocation makes a code from the same
        // token after it: the redemption reads the revocation, and refuses it too.
        let (late, _) = alice.create_transfer_code(600, NOW - 60, NOW + 3)?;
        let refused = identity::redeem_transfer_code(location(&path), &late, None, None, NOW + 4);
        assert_eq!(refused.map_err(|e| e.code()), Err("ERR_HOOT_TRANSFER_CODE"));
        // A token issued after the revocation makes codes that work.
        let (fresh, _) = alice.create_transfer_code(600, NOW + 1, NOW + 5)?;
        assert_eq!(identity::redeem_transfer_code(location(&path), &fresh, None, None, NOW + 6)?.user_id, ALICE);
        assert_eq!(identity::derived_from(Some(9e12), NOW)?, NOW + 1, "never later than the end of this second");
        assert_eq!(identity::derived_from(Some(-1.0), NOW).map_err(|e| e.code()), Err("ERR_INVALID_ARG_VALUE"));
        Ok(())
    }

    #[test]
    fn planted_codes_and_links_do_not_verify() -> TestResult {
        use aws_lc_rs::digest::{digest, SHA256};
        let path = db_file("planted");
        let alice = store(ALICE, &path)?;
        alice.link_account("github|1", NOW)?;
        let conn = Connection::open(&path)?;
        // A writer without the store secret plants a code of their choosing for Alice, as the
        // plain SHA-256 schema 1 stored, and as whatever the MAC column could hold.
        let planted = "2345-6789-ABCD";
        let sha: String = digest(&SHA256, b"23456789ABCD").as_ref().iter().map(|b| format!("{b:02x}")).collect();
        conn.execute(
            "INSERT INTO hoot_transfer_codes (code_hash, user_id, created_at, expires_at, derived_from, mac) \
             VALUES (?1, ?2, ?3, ?4, ?3, ?1)",
            rusqlite::params![sha, ALICE, NOW, NOW + 600],
        )?;
        let refused = identity::redeem_transfer_code(location(&path), planted, None, None, NOW + 1);
        assert_eq!(refused.map_err(|e| e.code()), Err("ERR_HOOT_TRANSFER_CODE"));
        // A genuine code (Bob's) moved to Alice by the writer does not verify either.
        let (bobs, _) = store(BOB, &path)?.create_transfer_code(600, NOW, NOW)?;
        conn.execute("UPDATE hoot_transfer_codes SET user_id = ?1", [ALICE])?;
        let refused = identity::redeem_transfer_code(location(&path), &bobs, None, None, NOW + 1);
        assert_eq!(refused.map_err(|e| e.code()), Err("ERR_HOOT_TRANSFER_CODE"));
        // A planted link (the attacker's account to Alice), and a genuine one moved to Alice.
        conn.execute(
            "INSERT INTO hoot_accounts (account_id, user_id, linked_at, mac) VALUES ('evil|1', ?1, ?2, NULL)",
            rusqlite::params![ALICE, NOW],
        )?;
        store(BOB, &path)?.link_account("github|2", NOW)?;
        conn.execute("UPDATE hoot_accounts SET user_id = ?1 WHERE account_id = 'github|2'", [ALICE])?;
        assert_eq!(identity::user_id_for_account(location(&path), "evil|1", NOW)?, None);
        assert_eq!(identity::user_id_for_account(location(&path), "github|2", NOW)?, None);
        assert_eq!(identity::user_id_for_account(location(&path), "github|1", NOW)?.as_deref(), Some(ALICE));
        // A row no server made blocks no one: linking replaces it.
        store(BOB, &path)?.link_account("evil|1", NOW)?;
        assert_eq!(identity::user_id_for_account(location(&path), "evil|1", NOW)?.as_deref(), Some(BOB));
        Ok(())
    }

    #[test]
    fn move_user_data_merges_by_the_chosen_rule_and_empties_the_source() -> TestResult {
        let path = db_file("move");
        let (alice, bob) = (store(ALICE, &path)?, store(BOB, &path)?);
        alice.save_tokens("shared", &json(r#"{"who":"alice"}"#))?;
        alice.save_tokens("mine", &json(r#"{"who":"alice"}"#))?;
        alice.link_account("github|1", NOW)?;
        alice.touch(NOW - 100, 1)?;
        bob.save_tokens("shared", &json(r#"{"who":"bob"}"#))?;
        bob.touch(NOW, 1)?;
        let refused = identity::move_user_data(location(&path), ALICE, BOB, OnConflict::Fail, NOW);
        assert_eq!(refused.map_err(|e| e.code()), Err("ERR_INVALID_ARG_VALUE"));
        assert!(alice.tokens("mine")?.is_some(), "a refused move changes nothing");

        let report = identity::move_user_data(location(&path), ALICE, BOB, OnConflict::KeepTarget, NOW)?;
        assert_eq!(report, identity::MoveReport { moved: 2, replaced: 0, dropped: 1, conflicts: 1 });
        assert_eq!(bob.tokens("shared")?.as_deref(), Some(r#"{"who":"bob"}"#));
        assert_eq!(bob.tokens("mine")?.as_deref(), Some(r#"{"who":"alice"}"#));
        assert_eq!(alice.servers()?, Vec::<String>::new(), "the source is empty");
        assert_eq!(identity::user_id_for_account(location(&path), "github|1", NOW)?.as_deref(), Some(BOB));
        let conn = Connection::open(&path)?;
        let (first, last): (i64, i64) =
            conn.query_row("SELECT first_seen, last_seen FROM hoot_users WHERE user_id = ?1", [BOB], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        assert_eq!((first, last), (NOW - 100, NOW));
        let gone: i64 = conn.query_row("SELECT count(*) FROM hoot_users WHERE user_id = ?1", [ALICE], |r| r.get(0))?;
        assert_eq!(gone, 0);

        bob.save_tokens("x", &json(r#"{"v":1}"#))?;
        alice.save_tokens("x", &json(r#"{"v":2}"#))?;
        let took = identity::move_user_data(location(&path), ALICE, BOB, OnConflict::TakeSource, NOW)?;
        assert_eq!((took.replaced, took.moved), (1, 1));
        assert_eq!(bob.tokens("x")?.as_deref(), Some(r#"{"v":2}"#));
        let same = identity::move_user_data(location(&path), BOB, &BOB.to_uppercase(), OnConflict::Fail, NOW);
        assert_eq!(same.map_err(|e| e.code()), Err("ERR_INVALID_ARG_VALUE"));
        Ok(())
    }

    #[test]
    fn a_legacy_users_code_moves_the_legacy_data_into_the_redeeming_user() -> TestResult {
        let path = db_file("adopt");
        legacy_db(&path, 3)?;
        migrate_database(location(&path), NOW_MS)?;
        let legacy = identity::legacy_user(location(&path), NOW)?.ok_or("no legacy user")?;
        assert_eq!(legacy, format!("legacy-user-{NOW_MS}"));
        let (code, _) = store(&legacy, &path)?.create_transfer_code(600, NOW, NOW)?;
        let without = identity::redeem_transfer_code(location(&path), &code, None, None, NOW);
        assert_eq!(without.map_err(|e| e.code()), Err("ERR_INVALID_ARG_VALUE"));
        let redeemed = identity::redeem_transfer_code(location(&path), &code, Some(ALICE), None, NOW)?;
        assert_eq!(redeemed.user_id, ALICE, "the code was still good after the refusal above");
        assert_eq!(redeemed.moved.map(|m| m.moved), Some(9));
        assert_eq!(store(ALICE, &path)?.servers()?, ["s0", "s1", "s2"]);
        assert_eq!(identity::legacy_user(location(&path), NOW)?, None);
        Ok(())
    }
}

#[test]
fn revoking_deletes_the_users_pending_transfer_codes_as_on_postgres() -> TestResult {
    let path = db_file("revoke-codes");
    let dave = "6e2a8b3c-4d5e-4f60-8b1c-2d3e4f5a6b7c";
    store(dave, &path)?.create_transfer_code(600, NOW, NOW)?;
    store(BOB, &path)?.create_transfer_code(600, NOW, NOW)?;
    let count = |user: &str| -> rusqlite::Result<i64> {
        Connection::open(&path)?
            .query_row("SELECT count(*) FROM hoot_transfer_codes WHERE user_id = ?1", [user], |r| r.get(0))
    };
    assert_eq!(count(dave)?, 1, "a user has one code at a time");
    revocations::revoke_user_tokens(DbLocation::File(path.clone()), dave, NOW)?;
    assert_eq!(count(dave)?, 0, "the revoked user's codes are gone");
    assert_eq!(count(BOB)?, 1, "another user's code stays");
    Ok(())
}

#[test]
fn revoking_refuses_earlier_tokens_from_now_and_is_kept_in_the_database() -> TestResult {
    let path = db_file("revoke");
    let carol = "5d1f7a2b-3c4d-4e5f-9a0b-1c2d3e4f5a6b";
    let before = revocations::revoke_user_tokens(DbLocation::File(path.clone()), &carol.to_uppercase(), NOW)?;
    assert_eq!(before, NOW + 1, "a token issued in the revocation's second goes too");
    assert!(crate::revocation::refuses(carol, Some(NOW as f64)));
    assert!(!crate::revocation::refuses(carol, Some((NOW + 1) as f64)));
    // Forgetting, moving and purging the user leave the revocation, which other processes read.
    let s = store(carol, &path)?;
    s.touch(NOW - 400 * 86_400, 1)?;
    s.save_tokens("srv", &json("{}"))?;
    identity::move_user_data(DbLocation::File(path.clone()), carol, ALICE, identity::OnConflict::Fail, NOW)?;
    s.delete_all(None)?;
    users::purge_inactive_users(DbLocation::File(path.clone()), 1, false, NOW)?;
    let conn = Connection::open(&path)?;
    let stored: i64 =
        conn.query_row("SELECT revoked_before FROM hoot_revocations WHERE user_id = ?1", [carol], |r| r.get(0))?;
    assert_eq!(stored, NOW + 1, "kept, lower-cased, for the other processes to read");
    let active: i64 = conn.query_row("SELECT count(*) FROM hoot_users WHERE user_id = ?1", [carol], |r| r.get(0))?;
    assert_eq!(active, 0, "a revocation is not activity");
    let bad = revocations::revoke_user_tokens(DbLocation::File(path), "nope", NOW);
    assert_eq!(bad.map_err(|e| e.code()), Err("ERR_INVALID_USER_ID"));
    Ok(())
}

#[test]
fn an_upper_case_id_written_by_hoot_after_open_never_stops_the_database_from_opening() -> TestResult {
    let path = db_file("upper-after-open");
    store(ALICE, &path)?.touch(NOW, 1)?;
    // Hoot's own code, on the open file, in upper case.
    Connection::open(&path)?.execute(
        "INSERT INTO oauth_tokens (user_id, server_id, tokens) VALUES (?1, 's', '{}')",
        [BOB.to_uppercase()],
    )?;
    let report = users::purge_inactive_users(DbLocation::File(path.clone()), 90, false, NOW)?;
    assert_eq!(report.adopted, 1);
    db::close(DbLocation::File(path.clone()))?;
    let reopened = store(BOB, &path)?;
    assert_eq!(reopened.tokens("s")?.as_deref(), Some("{}"), "lowered at open, and reachable");
    Ok(())
}

#[test]
fn encrypt_seals_every_value_for_its_row_and_decrypt_opens_them_again() -> TestResult {
    let path = db_file("encrypt");
    let home = temp_dir("encrypt-home");
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    let env = Environment::fixed(&home)
        .with_var(env::HOME, home.to_str().ok_or("path")?)
        .with_var(crate::sealing::HOOT_ENCRYPTION_KEY, key);
    let alice = store(ALICE, &path)?;
    alice.save_tokens("srv", &json(r#"{"refresh_token":"secret"}"#))?;
    let report = encryption::encrypt_database(DbLocation::File(path.clone()), &env, false, NOW)?;
    assert_eq!(report.sealed, 1);
    let stored: String = Connection::open(&path)?.query_row("SELECT tokens FROM oauth_tokens", [], |r| r.get(0))?;
    assert!(stored.starts_with(crate::sealing::PREFIX) && !stored.contains("secret"));
    assert_eq!(alice.tokens("srv")?.as_deref(), Some(r#"{"refresh_token":"secret"}"#));
    alice.save_tokens("other", &json(r#"{"refresh_token":"new"}"#))?;
    let written: String =
        Connection::open(&path)?
            .query_row("SELECT tokens FROM oauth_tokens WHERE server_id = 'other'", [], |r| r.get(0))?;
    assert!(written.starts_with(crate::sealing::PREFIX), "a write after encrypt is sealed");
    // Reopened without the key (this process has none in its environment): refused.
    db::close(DbLocation::File(path.clone()))?;
    assert_eq!(alice.tokens("srv").map_err(|e| e.code()), Err("ERR_HOOT_KEYS"));
    Ok(())
}

#[test]
fn a_read_past_its_deadline_is_interrupted_and_one_within_it_is_not() -> TestResult {
    let conn = Connection::open_in_memory()?;
    let endless = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r";
    let started = std::time::Instant::now();
    let stopped = db::within_deadline(&conn, std::time::Duration::from_millis(50), |c| {
        c.query_row(endless, [], |r| r.get::<_, i64>(0))
    });
    assert_eq!(stopped.err().and_then(|e| e.sqlite_error_code()), Some(rusqlite::ErrorCode::OperationInterrupted));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let message = db::db_error(
        "x.db",
        "read",
        db::Cause::Sqlite(
            &rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT), None),
            None,
        ),
    )
    .to_string();
    assert!(message.contains("took longer than"), "{message}");
    // A read that ends in time is untouched, and so is the next statement on the connection.
    let one = db::within_deadline(&conn, std::time::Duration::from_secs(5), |c| {
        c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
    })?;
    assert_eq!(one, 1);
    assert_eq!(conn.query_row("SELECT 2", [], |r| r.get::<_, i64>(0))?, 2);
    Ok(())
}

/// The store's contract (`crate::store::tests`), each check on a SQLite file of its own.
mod contract {
    use super::*;
    use crate::store::backend::now;

    macro_rules! on_sqlite {
        ($($name:ident),*) => {
            $(
                #[test]
                fn $name() -> TestResult {
                    let db = SqliteFile::open(DbLocation::File(db_file(stringify!($name))), NOW_MS)?;
                    Ok(now(crate::store::tests::$name(db))?)
                }
            )*
        };
    }
    crate::store::tests::contract_tests!(on_sqlite);
}
