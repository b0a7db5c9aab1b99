use super::*;
use crate::tests::{env_in, read_json, temp_dir, TestResult, KEYS, OTHER_PAIR, PAIR};

fn keys_err(result: Result<KeySet, HootError>) -> String {
    match result {
        Err(HootError::Keys(message)) => message,
        Err(other) => panic!("expected ERR_HOOT_KEYS, got {other:?}"),
        Ok(keys) => panic!("expected ERR_HOOT_KEYS, loaded {keys:?}"),
    }
}

/// Hoot's own private-key.json has no kid (jose's exportJWK of the private key).
fn hoot_private_jwk() -> Value {
    let mut private = read_json(&PAIR.private_key_path);
    if let Some(map) = private.as_object_mut() {
        for member in ["kid", "alg", "use"] {
            map.remove(member);
        }
    }
    private
}

fn write(path: &Path, value: &Value) -> TestResult {
    fs::write(path, serde_json::to_string(value)?)?;
    Ok(())
}

#[test]
fn generate_key_files_checks_the_callers_values_before_writing() -> TestResult {
    let cwd = temp_dir("generate-opts");
    let opts = |kid: Option<&str>, bits: Option<f64>| GenerateKeyOptions { kid: kid.map(str::to_string), bits };
    let refused = |dir: &str, opts: GenerateKeyOptions| match generate_key_files(dir, &opts, &env_in(&cwd, None)) {
        Err(e) => (e.code(), e.to_string()),
        Ok(written) => panic!("wrote {written:?}"),
    };
    assert_eq!(
        refused("", opts(None, None)),
        ("ERR_INVALID_ARG_VALUE", "The \"dir\" argument must not be empty".into())
    );
    assert_eq!(refused("k", opts(Some(""), None)).1, "The \"opts.kid\" property must not be empty");
    for bits in [1024.0, 2048.5, -2048.0, 0.0, 65536.0 + 2048.0, f64::NAN] {
        assert_eq!(
            refused("k", opts(None, Some(bits))).1,
            "The \"opts.bits\" property must be 2048, 3072 or 4096",
            "{bits}"
        );
    }
    assert_eq!(fs::read_dir(&cwd)?.count(), 0, "nothing was written");

    let written = generate_key_files("k", &opts(Some("mine"), None), &env_in(&cwd, None))?;
    assert_eq!((written.kid.as_str(), written.private_key_path), ("mine", cwd.join("k").join(PRIVATE_KEY_FILE)));
    Ok(())
}

#[test]
fn plan_prefers_inline_then_paths_then_cwd_files_then_key_dir() -> TestResult {
    let cwd = temp_dir("plan");
    let home = temp_dir("home");
    let mut env = env_in(&cwd, Some(&home));
    assert_eq!(
        resolve_plan(&KeyOptions::default(), &env)?,
        KeyPlan::KeyDir { dir: home.join(".hoot").join("keys"), generate: true }
    );

    fs::write(cwd.join(PRIVATE_KEY_FILE), "{}")?;
    fs::write(cwd.join(JWKS_FILE), "{}")?;
    assert_eq!(
        resolve_plan(&KeyOptions::default(), &env)?,
        KeyPlan::Load {
            private: JsonSource::File(cwd.join(PRIVATE_KEY_FILE)),
            jwks: Some(JsonSource::File(cwd.join(JWKS_FILE))),
            source: KeySource::Files,
        }
    );

    env = env.with_var(env::JWT_PRIVATE_KEY_PATH, "env/private.json").with_var(env::JWT_JWKS_PATH, "/abs/jwks.json");
    assert_eq!(
        resolve_plan(&KeyOptions::default(), &env)?,
        KeyPlan::Load {
            private: JsonSource::File(cwd.join("env/private.json")),
            jwks: Some(JsonSource::File(PathBuf::from("/abs/jwks.json"))),
            source: KeySource::Files,
        },
        "environment variables beat the working directory; relative paths are taken from cwd"
    );

    let opts = KeyOptions { private_key_path: Some("opt.json".into()), ..KeyOptions::default() };
    match resolve_plan(&opts, &env)? {
        KeyPlan::Load { private, .. } => assert_eq!(private, JsonSource::File(cwd.join("opt.json"))),
        other => panic!("unexpected plan {other:?}"),
    }

    let opts = KeyOptions { private_key_jwk: Some(json!({"kty": "RSA"})), ..KeyOptions::default() };
    match resolve_plan(&opts, &env)? {
        KeyPlan::Load { private: JsonSource::Inline(_), source: KeySource::Inline, .. } => {}
        other => panic!("unexpected plan {other:?}"),
    }

    let opts = KeyOptions { generate_if_missing: Some(false), key_dir: Some("k".into()), ..KeyOptions::default() };
    let elsewhere = temp_dir("empty");
    assert_eq!(
        resolve_plan(&opts, &env_in(&elsewhere, None))?,
        KeyPlan::KeyDir { dir: elsewhere.join("k"), generate: false },
        "keyDir needs no home directory and is taken from cwd when relative"
    );
    Ok(())
}

#[test]
fn a_jwks_without_its_private_key_is_an_error_not_a_new_key() -> TestResult {
    let cwd = temp_dir("half");
    fs::write(cwd.join(JWKS_FILE), "{}")?;
    let message = keys_err(load_keys(&KeyOptions::default(), &env_in(&cwd, Some(&temp_dir("home")))));
    assert!(message.contains("jwks.json") && message.contains("JWT_PRIVATE_KEY_PATH"), "{message}");
    Ok(())
}

#[test]
fn no_home_and_no_files_says_what_to_set() {
    let message = keys_err(load_keys(&KeyOptions::default(), &env_in(&temp_dir("nohome"), None)));
    assert!(message.contains("HOME") && message.contains("keyDir"), "{message}");
}

#[test]
fn reads_hoots_files_where_the_private_key_has_no_kid() -> TestResult {
    let cwd = temp_dir("hoot");
    write(&cwd.join(PRIVATE_KEY_FILE), &hoot_private_jwk())?;
    fs::copy(&PAIR.jwks_path, cwd.join(JWKS_FILE))?;
    let keys = load_keys(&KeyOptions::default(), &env_in(&cwd, None))?;
    assert_eq!(keys.kid(), "test-kid", "the kid comes from jwks.json");
    assert_eq!(keys.source(), KeySource::Files);
    assert_eq!(keys.private_key_path(), Some(cwd.join(PRIVATE_KEY_FILE).as_path()));
    assert_eq!(keys.jwks_path(), Some(cwd.join(JWKS_FILE).as_path()));
    Ok(())
}

#[test]
fn rotation_signs_with_the_private_keys_kid_and_verifies_every_listed_kid() -> TestResult {
    let mut jwks = read_json(&OTHER_PAIR.jwks_path);
    let ours = read_json(&PAIR.jwks_path)["keys"][0].clone();
    jwks["keys"].as_array_mut().ok_or("keys")?.push(ours);
    for private in [read_json(&PAIR.private_key_path), hoot_private_jwk()] {
        let opts = KeyOptions { private_key_jwk: Some(private), jwks: Some(jwks.clone()), ..KeyOptions::default() };
        let keys = load_keys(&opts, &env_in(&temp_dir("rot"), None))?;
        assert_eq!(keys.kid(), "test-kid", "found by kid, or by modulus when the private key has none");
        assert_eq!(keys.public_keys(), 2);
        assert!(keys.verifying_key("other-kid").is_some() && keys.verifying_key("test-kid").is_some());
    }
    Ok(())
}

#[test]
fn a_private_key_that_matches_no_jwks_key_is_refused() {
    let env = env_in(&temp_dir("mismatch"), None);
    let opts = KeyOptions {
        private_key_jwk: Some(hoot_private_jwk()),
        jwks: Some(read_json(&OTHER_PAIR.jwks_path)),
        ..KeyOptions::default()
    };
    assert!(keys_err(load_keys(&opts, &env)).contains("matches no key"));

    let mut private = read_json(&PAIR.private_key_path);
    private["kid"] = json!("other-kid");
    let opts = KeyOptions {
        private_key_jwk: Some(private),
        jwks: Some(read_json(&OTHER_PAIR.jwks_path)),
        ..KeyOptions::default()
    };
    assert!(keys_err(load_keys(&opts, &env)).contains("different public key"));

    let opts = KeyOptions {
        private_key_jwk: Some(read_json(&PAIR.private_key_path)),
        jwks: Some(read_json(&OTHER_PAIR.jwks_path)),
        ..KeyOptions::default()
    };
    assert!(keys_err(load_keys(&opts, &env)).contains("is not in"));
}

#[test]
fn bad_key_material_is_named_with_its_fix() -> TestResult {
    let cwd = temp_dir("bad");
    let env = env_in(&cwd, None);
    let missing = KeyOptions { private_key_path: Some("nope.json".into()), ..KeyOptions::default() };
    let message = keys_err(load_keys(&missing, &env));
    assert!(message.contains(&cwd.join("nope.json").display().to_string()), "{message}");
    assert!(message.contains("JWT_PRIVATE_KEY_PATH"), "{message}");

    fs::write(cwd.join("broken.json"), "{ not json")?;
    let broken = KeyOptions { private_key_path: Some("broken.json".into()), ..KeyOptions::default() };
    assert!(keys_err(load_keys(&broken, &env)).contains("is not valid JSON"));

    let public_only =
        KeyOptions { private_key_jwk: Some(read_json(&PAIR.jwks_path)["keys"][0].clone()), ..KeyOptions::default() };
    assert!(keys_err(load_keys(&public_only, &env)).contains("d, p, q, dp, dq and qi"));

    let mut ec = read_json(&PAIR.private_key_path);
    ec["kty"] = json!("EC");
    let ec = KeyOptions { private_key_jwk: Some(ec), ..KeyOptions::default() };
    assert!(keys_err(load_keys(&ec, &env)).contains("RS256 only"));

    let mut tampered = read_json(&PAIR.private_key_path);
    tampered["d"] = read_json(&OTHER_PAIR.private_key_path)["d"].clone();
    let tampered = KeyOptions { private_key_jwk: Some(tampered), ..KeyOptions::default() };
    assert!(keys_err(load_keys(&tampered, &env)).contains("inconsistent"));

    let mut padded = read_json(&PAIR.private_key_path);
    padded["e"] = json!("AQAB=");
    let padded = KeyOptions { private_key_jwk: Some(padded), ..KeyOptions::default() };
    assert!(keys_err(load_keys(&padded, &env)).contains("not base64url"));

    let not_a_jwks = KeyOptions {
        private_key_jwk: Some(read_json(&PAIR.private_key_path)),
        jwks: Some(json!({ "keys": [] })),
        ..KeyOptions::default()
    };
    assert!(keys_err(load_keys(&not_a_jwks, &env)).contains("at least one public key"));

    let no_kid = KeyOptions { private_key_jwk: Some(hoot_private_jwk()), ..KeyOptions::default() };
    assert!(keys_err(load_keys(&no_kid, &env)).contains("no kid"));
    Ok(())
}

#[test]
fn inline_json_may_be_text() -> TestResult {
    let opts = KeyOptions {
        private_key_jwk: Some(Value::String(fs::read_to_string(&PAIR.private_key_path)?)),
        jwks: Some(Value::String(fs::read_to_string(&PAIR.jwks_path)?)),
        ..KeyOptions::default()
    };
    let keys = load_keys(&opts, &env_in(&temp_dir("text"), None))?;
    assert_eq!((keys.kid(), keys.source()), ("test-kid", KeySource::Inline));
    assert_eq!(keys.private_key_path(), None);

    let bad = KeyOptions { private_key_jwk: Some(Value::String("{".into())), ..KeyOptions::default() };
    assert!(keys_err(load_keys(&bad, &env_in(&temp_dir("text"), None))).contains("not valid JSON"));
    Ok(())
}

#[test]
fn published_keys_never_carry_private_members() -> TestResult {
    // A JWKS that wrongly holds the private key must still publish only the public half.
    let leaky = json!({ "keys": [read_json(&PAIR.private_key_path)] });
    let opts = KeyOptions {
        private_key_jwk: Some(read_json(&PAIR.private_key_path)),
        jwks: Some(leaky),
        ..KeyOptions::default()
    };
    let keys = load_keys(&opts, &env_in(&temp_dir("leak"), None))?;
    let published = keys.public_jwks();
    let key = published["keys"][0].as_object().ok_or("not an object")?;
    let mut members: Vec<&str> = key.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"]);
    let debug = format!("{keys:?}");
    assert!(!debug.contains(read_json(&PAIR.private_key_path)["d"].as_str().ok_or("d")?));
    Ok(())
}

#[cfg(unix)]
fn mode(path: &Path) -> Result<u32, io::Error> {
    use std::os::unix::fs::PermissionsExt;
    Ok(fs::metadata(path)?.permissions().mode() & 0o777)
}

#[test]
fn zero_config_generates_once_with_private_permissions_and_reuses_the_key() -> TestResult {
    let home = temp_dir("zero");
    let env = env_in(&temp_dir("cwd"), Some(&home));
    let first = load_keys(&KeyOptions::default(), &env)?;
    assert_eq!(first.source(), KeySource::Generated);
    let dir = home.join(".hoot").join("keys");
    assert_eq!(first.private_key_path(), Some(dir.join(PRIVATE_KEY_FILE).as_path()));
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir)?, 0o700);
        assert_eq!(mode(&dir.join(PRIVATE_KEY_FILE))?, 0o600);
        assert_eq!(mode(&dir.join(JWKS_FILE))?, 0o600);
    }
    let second = load_keys(&KeyOptions::default(), &env)?;
    assert_eq!(first.kid(), second.kid(), "a second start reuses the key");
    let leftovers: Vec<_> = fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != PRIVATE_KEY_FILE && e.file_name() != JWKS_FILE)
        .collect();
    assert!(leftovers.is_empty(), "no temp files left behind: {leftovers:?}");

    let off = KeyOptions { generate_if_missing: Some(false), ..KeyOptions::default() };
    let message = keys_err(load_keys(&off, &env_in(&temp_dir("cwd"), Some(&temp_dir("home")))));
    assert!(message.contains("generateKeys"), "{message}");
    Ok(())
}

#[test]
fn a_key_dir_caught_between_the_two_writes_still_loads() -> TestResult {
    let dir = temp_dir("race");
    fs::copy(&PAIR.private_key_path, dir.join(PRIVATE_KEY_FILE))?;
    let opts = KeyOptions { key_dir: Some(dir.clone()), ..KeyOptions::default() };
    let keys = load_keys(&opts, &env_in(&temp_dir("cwd"), None))?;
    assert_eq!(keys.kid(), "test-kid");
    assert_eq!(keys.public_keys(), 1);
    assert_eq!(keys.jwks_path(), None, "no jwks.json yet: the public half is derived");
    Ok(())
}

#[test]
fn generate_keys_never_overwrites() -> TestResult {
    let dir = temp_dir("gen");
    fs::write(dir.join(JWKS_FILE), "{}")?;
    match generate_keys(&dir, None, KeySize::Rsa2048, None) {
        Err(HootError::Keys(message)) => assert!(message.contains("never overwrites"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(fs::read_to_string(dir.join(JWKS_FILE))?, "{}");
    assert!(!dir.join(PRIVATE_KEY_FILE).exists());
    Ok(())
}

#[test]
fn generated_files_are_hoots_format() -> TestResult {
    let private = read_json(&PAIR.private_key_path);
    for member in ["kty", "n", "e", "d", "p", "q", "dp", "dq", "qi", "kid"] {
        assert!(private.get(member).is_some(), "private-key.json lacks {member}");
    }
    let jwks = read_json(&PAIR.jwks_path);
    assert_eq!(jwks["keys"][0]["kid"], "test-kid");
    assert_eq!(jwks["keys"][0]["n"], private["n"]);
    assert!(jwks["keys"][0].get("d").is_none());
    assert_eq!(KEYS.kid(), "test-kid");
    let n = URL_SAFE_NO_PAD.decode(private["n"].as_str().ok_or("n")?)?;
    assert_eq!(modulus_bits(&n), 2048);
    Ok(())
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn load(private: Value, jwks: Option<Value>) -> Result<KeySet, HootError> {
        let opts = KeyOptions { private_key_jwk: Some(private), jwks, ..KeyOptions::default() };
        load_keys(&opts, &env_in(&std::env::temp_dir(), None))
    }

    proptest! {
        #[test]
        fn any_json_as_keys_is_refused_as_err_hoot_keys(private in crate::tests::any_json(), jwks in proptest::option::of(crate::tests::any_json())) {
            prop_assert!(matches!(load(private, jwks), Err(HootError::Keys(_))));
        }

        #[test]
        fn rsa_shaped_jwks_with_random_members_never_panic(
            n in "[A-Za-z0-9_-]{0,400}", e in "[A-Za-z0-9_-]{0,8}", d in "[A-Za-z0-9_-]{0,400}",
            kid in ".{0,20}", alg in "RS256|RS384|HS256|none|", with_jwks in any::<bool>(),
        ) {
            let private = json!({ "kty": "RSA", "n": n, "e": e, "d": d, "p": d, "q": d, "dp": d, "dq": d, "qi": d, "kid": kid, "alg": alg });
            let jwks = with_jwks.then(|| json!({ "keys": [{ "kty": "RSA", "n": n, "e": e, "kid": kid, "alg": alg, "use": "sig" }] }));
            prop_assert!(load(private, jwks).is_err());
        }

        #[test]
        fn a_real_private_key_with_one_member_changed_is_refused(member in "n|e|d|p|q|dp|dq|qi", flip in 0usize..300) {
            let mut private = read_json(&PAIR.private_key_path);
            let value = private[&member].as_str().unwrap_or_default().to_string();
            prop_assume!(!value.is_empty());
            let i = flip % value.len();
            let replacement = if value.as_bytes()[i] == b'A' { "B" } else { "A" };
            private[&member] = Value::from([&value[..i], replacement, &value[i + 1..]].concat());
            prop_assert!(load(private, Some(read_json(&PAIR.jwks_path))).is_err());
        }
    }
}
