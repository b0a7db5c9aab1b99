use super::*;
use crate::tests::{TestResult, KEYS};
use serde_json::json;

const USER: &str = "3b241101-e2bb-4255-8caf-4136c566a962";
const NOW: u64 = 1_800_000_000;

fn config() -> IssueConfig {
    IssueConfig::resolve(IssueOptions::default(), &no_env()).unwrap_or_else(|e| panic!("{e}"))
}

fn no_env() -> Environment {
    Environment::fixed(std::env::temp_dir())
}

fn b64json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Signs arbitrary header and payload bytes with the test key, as a forger with the key could.
fn sign_raw(header: &str, payload: &str) -> String {
    let input = format!("{header}.{payload}");
    let signature = KEYS.sign(input.as_bytes()).unwrap_or_else(|e| panic!("signing failed: {e}"));
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn header() -> Value {
    json!({ "alg": "RS256", "kid": "test-kid", "typ": "JWT" })
}

/// `issue_token` with nothing revoked: the process's revocation memory is shared with the store
/// tests, which revoke their own users (the revocation tests below pass it explicitly).
fn issue_token(keys: &KeySet, user_id: &str, config: &IssueConfig, now: u64) -> Result<String, HootError> {
    super::issue_token(keys, user_id, config, now, None)
}

/// `verify_token` with nothing revoked (see `issue_token`).
fn verify_token(keys: &KeySet, token: &str, now: u64, leeway: u64) -> Result<String, VerifyFailure> {
    super::verify_token(keys, token, now, leeway, |_, _| false)
}

/// `issue_token` with the process's revocation memory, as the binding calls it.
fn issue_revocable(user_id: &str, now: u64) -> Result<String, HootError> {
    super::issue_token(&KEYS, user_id, &config(), now, crate::revocation::revoked_before(user_id))
}

/// The verification's code with the process's revocation memory, as the binding calls it.
fn revocable_code_of(token: &str, now: u64) -> &'static str {
    match super::verify_token(&KEYS, token, now, 0, crate::revocation::refuses) {
        Ok(_) => "valid",
        Err(failure) => failure.code.as_str(),
    }
}

fn claims(exp: u64) -> Value {
    json!({ "sub": USER, "iat": NOW, "exp": exp })
}

fn code_of(token: &str, now: u64, leeway: u64) -> &'static str {
    match verify_token(&KEYS, token, now, leeway) {
        Ok(_) => "valid",
        Err(failure) => failure.code.as_str(),
    }
}

#[test]
fn user_ids_follow_hoots_regex() {
    assert!(is_valid_user_id(USER));
    assert!(is_valid_user_id(&USER.to_uppercase()));
    for bad in [
        "",
        "default-user",
        "3b241101-e2bb-1255-8caf-4136c566a962", // version 1
        "3b241101-e2bb-4255-7caf-4136c566a962", // variant 7
        "3b241101e2bb42558caf4136c566a962",
        "3b241101-e2bb-4255-8caf-4136c566a96g",
        "3b241101-e2bb-4255-8caf-4136c566a9621",
        " 3b241101-e2bb-4255-8caf-4136c566a962",
    ] {
        assert!(!is_valid_user_id(bad), "{bad:?} must be rejected");
    }
}

#[test]
fn issue_config_defaults_environment_and_limits() -> TestResult {
    let c = config();
    assert_eq!(
        (c.ttl_seconds, c.portkey_org_id.as_str(), c.portkey_workspace.as_str()),
        (3600, "test-org-id", "test-workspace")
    );
    assert_eq!(c.scope, DEFAULT_SCOPE);

    let env =
        no_env().with_var(crate::env::PORTKEY_ORG_ID, "org-from-env").with_var(crate::env::PORTKEY_WORKSPACE_SLUG, "");
    let c = IssueConfig::resolve(IssueOptions::default(), &env)?;
    assert_eq!(c.portkey_org_id, "org-from-env");
    assert_eq!(c.portkey_workspace, "test-workspace", "an empty variable counts as unset");
    let opts = IssueOptions { portkey_org_id: Some("explicit".into()), ..IssueOptions::default() };
    assert_eq!(IssueConfig::resolve(opts, &env)?.portkey_org_id, "explicit");

    for ttl in [0.0, -5.0, 1.5, f64::NAN, 1e12] {
        let opts = IssueOptions { ttl_seconds: Some(ttl), ..IssueOptions::default() };
        let err = IssueConfig::resolve(opts, &no_env()).err().ok_or("accepted a bad ttl")?;
        assert_eq!((err.code(), err.kind()), ("ERR_INVALID_ARG_VALUE", crate::error::ErrorKind::RangeError));
    }
    for reserved in ["sub", "iat", "exp"] {
        let mut extra = Map::new();
        extra.insert(reserved.into(), json!(1));
        let opts = IssueOptions { claims: Some(extra), ..IssueOptions::default() };
        let err = IssueConfig::resolve(opts, &no_env()).err().ok_or("accepted a reserved claim")?;
        assert_eq!(err.code(), "ERR_INVALID_ARG_VALUE");
        assert!(err.to_string().contains(reserved));
    }
    Ok(())
}

#[test]
fn issues_exactly_hoots_header_and_claims() -> TestResult {
    let token = issue_token(&KEYS, USER, &config(), NOW)?;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(
        String::from_utf8(URL_SAFE_NO_PAD.decode(parts[0])?)?,
        r#"{"alg":"RS256","kid":"test-kid","typ":"JWT"}"#
    );
    assert_eq!(
        String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1])?)?,
        format!(
            r#"{{"sub":"{USER}","portkey_oid":"test-org-id","portkey_workspace":"test-workspace","scope":["completions.write","virtual_keys.list","logs.view"],"iat":{NOW},"exp":{}}}"#,
            NOW + 3600
        )
    );
    let claims_json = verify_token(&KEYS, &token, NOW, 0).map_err(|f| f.message)?;
    let verified: Value = serde_json::from_str(&claims_json)?;
    assert_eq!(verified["sub"], USER);
    assert_eq!(verified["exp"], NOW + 3600);
    assert_eq!(claims_json.as_bytes(), &URL_SAFE_NO_PAD.decode(parts[1])?[..], "the claims as signed");
    Ok(())
}

#[test]
fn extra_claims_follow_hoots_and_may_replace_portkey_claims_in_place() -> TestResult {
    let mut extra = Map::new();
    extra.insert("portkey_oid".into(), json!("org-2"));
    extra.insert("role".into(), json!("admin"));
    let config = IssueConfig { claims: extra, ..config() };
    let token = issue_token(&KEYS, USER, &config, NOW)?;
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(token.split('.').nth(1).ok_or("payload")?)?)?;
    assert!(
        payload.starts_with(&format!(r#"{{"sub":"{USER}","portkey_oid":"org-2","portkey_workspace""#)),
        "{payload}"
    );
    assert!(payload.contains(r#""role":"admin","iat""#), "{payload}");

    let mut huge = Map::new();
    huge.insert("blob".into(), json!("x".repeat(8000)));
    let err = issue_token(&KEYS, USER, &IssueConfig { claims: huge, ..config.clone() }, NOW)
        .err()
        .ok_or("issued a token verifyToken would reject")?;
    assert_eq!(err.code(), "ERR_INVALID_ARG_VALUE");
    Ok(())
}

#[test]
fn claims_the_verifier_would_refuse_are_refused_at_issue() -> TestResult {
    let resolve = |claims: Value| {
        let claims = claims.as_object().cloned();
        IssueConfig::resolve(IssueOptions { claims, ..IssueOptions::default() }, &no_env())
    };
    for nbf in [json!("1800000000"), json!(null), json!(true), json!([1]), json!({})] {
        let e = resolve(json!({ "nbf": nbf })).err().ok_or("accepted a non-numeric nbf")?;
        assert!(e.code() == "ERR_INVALID_ARG_VALUE" && e.to_string().contains("\"nbf\""), "{e}");
    }
    let config = resolve(json!({ "nbf": NOW + 60 }))?;
    let token = issue_token(&KEYS, USER, &config, NOW)?;
    assert_eq!(code_of(&token, NOW + 60, 0), "valid", "a numeric nbf is kept and verifies once due");

    let nested = |levels: usize| (0..levels).fold(json!(1), |inner, _| json!([inner]));
    // The claims set is the first level: a value opening 31 more is the most that verifies.
    let config = resolve(json!({ "deep": nested(MAX_JSON_DEPTH - 1) }))?;
    assert_eq!(code_of(&issue_token(&KEYS, USER, &config, NOW)?, NOW, 0), "valid");
    let e = resolve(json!({ "deep": nested(MAX_JSON_DEPTH) })).err().ok_or("accepted 33 levels")?;
    assert!(e.code() == "ERR_INVALID_ARG_VALUE" && e.to_string().contains("32 levels"), "{e}");
    Ok(())
}

#[test]
fn refuses_to_issue_for_anything_but_a_uuid_v4() {
    match issue_token(&KEYS, "default-user", &config(), NOW) {
        Err(e @ HootError::InvalidUserId { .. }) => assert!(!e.to_string().contains("default-user"), "{e}"),
        other => panic!("expected ERR_INVALID_USER_ID, got {other:?}"),
    }
}

#[test]
fn expiry_is_now_at_or_after_exp_plus_leeway_like_jose() -> TestResult {
    let token = issue_token(&KEYS, USER, &config(), NOW)?;
    let exp = NOW + 3600;
    assert_eq!(code_of(&token, exp - 1, 0), "valid");
    assert_eq!(code_of(&token, exp, 0), "ERR_JWT_EXPIRED");
    assert_eq!(code_of(&token, exp + 59, 60), "valid");
    assert_eq!(code_of(&token, exp + 60, 60), "ERR_JWT_EXPIRED");
    let failure = verify_token(&KEYS, &token, exp, 0).err().ok_or("expired token verified")?;
    assert_eq!(failure.code, FailureCode::Expired);
    Ok(())
}

#[test]
fn leeway_is_whole_seconds_up_to_a_day() -> TestResult {
    let leeway = |l: Option<f64>| VerifyOptions { leeway_seconds: l }.leeway();
    assert_eq!(leeway(None)?, 0);
    assert_eq!(leeway(Some(0.0))?, 0);
    assert_eq!(leeway(Some(86_400.0))?, 86_400);
    for bad in [-1.0, 0.5, 86_401.0, f64::NAN, f64::INFINITY] {
        let e = leeway(Some(bad)).err().ok_or("accepted")?;
        assert_eq!(e.code(), "ERR_INVALID_ARG_VALUE", "{bad}");
        assert_eq!(e.kind(), crate::error::ErrorKind::RangeError);
        assert!(e.to_string().starts_with("The \"opts.leewaySeconds\" property must be a whole number"), "{e}");
    }
    Ok(())
}

#[test]
fn nbf_is_checked_with_the_same_leeway() {
    let token = sign_raw(&b64json(&header()), &b64json(&json!({ "sub": USER, "nbf": NOW + 30, "exp": NOW + 600 })));
    assert_eq!(code_of(&token, NOW, 0), "ERR_JWT_CLAIM_VALIDATION_FAILED");
    assert_eq!(code_of(&token, NOW, 30), "valid");
    assert_eq!(code_of(&token, NOW + 30, 0), "valid");
}

#[test]
fn claim_failures() {
    let h = b64json(&header());
    let cases = [
        (json!({ "sub": USER }), "missing exp"),
        (json!({ "sub": USER, "exp": "soon" }), "exp not a number"),
        (json!({ "sub": USER, "exp": NOW + 60, "iat": "then" }), "iat not a number"),
        (json!({ "sub": USER, "exp": NOW + 60, "nbf": null }), "nbf not a number"),
        (json!({ "sub": "default-user", "exp": NOW + 60 }), "sub not a UUID v4"),
        (json!({ "sub": 42, "exp": NOW + 60 }), "sub not a string"),
        (json!({ "exp": NOW + 60 }), "no sub"),
    ];
    for (payload, why) in cases {
        assert_eq!(code_of(&sign_raw(&h, &b64json(&payload)), NOW, 0), "ERR_JWT_CLAIM_VALIDATION_FAILED", "{why}");
    }
}

#[test]
fn only_rs256_is_allowed() {
    let p = b64json(&claims(NOW + 60));
    for alg in ["none", "HS256", "RS512", "PS256", "ES256", "rs256"] {
        let h = b64json(&json!({ "alg": alg, "kid": "test-kid" }));
        assert_eq!(code_of(&sign_raw(&h, &p), NOW, 0), "ERR_JOSE_ALG_NOT_ALLOWED", "{alg}");
    }
    // The classic `none` token has an empty signature.
    let none = format!("{}.{p}.", b64json(&json!({ "alg": "none" })));
    assert_eq!(code_of(&none, NOW, 0), "ERR_JOSE_ALG_NOT_ALLOWED");
    let no_alg = b64json(&json!({ "kid": "test-kid" }));
    assert_eq!(code_of(&sign_raw(&no_alg, &p), NOW, 0), "ERR_JWS_INVALID");
}

#[test]
fn hs256_signed_with_the_public_key_is_not_accepted() -> TestResult {
    // Algorithm confusion: HMAC keyed with the public key material an attacker can download.
    let h = b64json(&json!({ "alg": "HS256", "kid": "test-kid", "typ": "JWT" }));
    let p = b64json(&claims(NOW + 60));
    let secret = KEYS.public_jwks().to_string();
    let input = format!("{h}.{p}");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes()));
    assert_eq!(code_of(&format!("{input}.{signature}"), NOW, 0), "ERR_JOSE_ALG_NOT_ALLOWED");
    Ok(())
}

#[test]
fn kid_must_name_a_listed_key() {
    let p = b64json(&claims(NOW + 60));
    for h in
        [json!({ "alg": "RS256" }), json!({ "alg": "RS256", "kid": "unknown" }), json!({ "alg": "RS256", "kid": 7 })]
    {
        assert_eq!(code_of(&sign_raw(&b64json(&h), &p), NOW, 0), "ERR_JWKS_NO_MATCHING_KEY", "{h}");
    }
    let crit = json!({ "alg": "RS256", "kid": "test-kid", "crit": ["exp"] });
    assert_eq!(code_of(&sign_raw(&b64json(&crit), &p), NOW, 0), "ERR_JWS_INVALID");
}

#[test]
fn tampering_fails_the_signature_before_claims_are_read() -> TestResult {
    let token = issue_token(&KEYS, USER, &config(), NOW)?;
    let parts: Vec<&str> = token.split('.').collect();
    let forged_payload = b64json(&json!({ "sub": "11111111-1111-4111-8111-111111111111", "exp": NOW + 3600 }));
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_eq!(code_of(&forged, NOW, 0), "ERR_JWS_SIGNATURE_VERIFICATION_FAILED");
    assert_eq!(
        code_of(&forged, NOW + 7200, 0),
        "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
        "forged and expired is still forged"
    );
    let stripped = format!("{}.{}.", parts[0], parts[1]);
    assert_eq!(code_of(&stripped, NOW, 0), "ERR_JWS_SIGNATURE_VERIFICATION_FAILED");
    let mut flipped = parts[2].to_string();
    let last = if flipped.ends_with('A') { "Q" } else { "A" };
    flipped.replace_range(flipped.len() - 1.., last);
    assert_ne!(code_of(&format!("{}.{}.{flipped}", parts[0], parts[1]), NOW, 0), "valid");
    Ok(())
}

#[test]
fn shape_and_encoding_are_strict() -> TestResult {
    let token = issue_token(&KEYS, USER, &config(), NOW)?;
    let parts: Vec<&str> = token.split('.').collect();
    let cases = [
        format!("{}.{}", parts[0], parts[1]),
        format!("{token}.{}", parts[2]),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", parts[0].replace('e', "+"), parts[1], parts[2]),
        format!("{}.{} .{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", URL_SAFE_NO_PAD.encode("[1]"), parts[1], parts[2]),
        format!("{}.{}.{}", URL_SAFE_NO_PAD.encode("not json"), parts[1], parts[2]),
        String::new(),
        "...".to_string(),
        format!("{}.{}", "a".repeat(MAX_TOKEN_LENGTH), "b"),
    ];
    for (i, bad) in cases.iter().enumerate() {
        assert_eq!(code_of(bad, NOW, 0), "ERR_JWS_INVALID", "case {i}");
    }
    Ok(())
}

#[test]
fn oversized_tokens_are_rejected_before_decoding() {
    // A well-formed token just over the limit still fails on length alone.
    let h = b64json(&header());
    let p = b64json(&json!({ "sub": USER, "exp": NOW + 60, "pad": "x".repeat(6000) }));
    let token = sign_raw(&h, &p);
    assert!(token.len() > MAX_TOKEN_LENGTH);
    let failure = verify_token(&KEYS, &token, NOW, 0).err();
    assert_eq!(
        failure.map(|f| (f.code, f.message)),
        Some((FailureCode::JwsInvalid, "the token is longer than 8192 characters"))
    );
}

#[test]
fn a_signed_payload_that_is_not_a_json_object_is_jwt_invalid() {
    let h = b64json(&header());
    for payload in ["not json", "[1,2]", "\"text\"", "42"] {
        assert_eq!(code_of(&sign_raw(&h, &URL_SAFE_NO_PAD.encode(payload)), NOW, 0), "ERR_JWT_INVALID", "{payload}");
    }
}

#[test]
fn a_registered_claim_or_header_member_given_twice_is_rejected() {
    // Parsers disagree on duplicates (first wins, last wins); a token that depends on which one
    // reads it is refused.
    let h = b64json(&header());
    let twice = [
        format!(r#"{{"sub":"{USER}","exp":{},"exp":{}}}"#, NOW - 10, NOW + 60),
        format!(r#"{{"sub":"11111111-1111-4111-8111-111111111111","sub":"{USER}","exp":{}}}"#, NOW + 60),
    ];
    for payload in twice {
        assert_eq!(code_of(&sign_raw(&h, &URL_SAFE_NO_PAD.encode(&payload)), NOW, 0), "ERR_JWT_INVALID", "{payload}");
    }
    let p = b64json(&claims(NOW + 60));
    let alg_twice = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","alg":"RS256","kid":"test-kid"}"#);
    assert_eq!(code_of(&sign_raw(&alg_twice, &p), NOW, 0), "ERR_JWS_INVALID");
    // Other claims may repeat, as JSON.parse allows (the last one wins there, as in jose).
    let other = format!(r#"{{"sub":"{USER}","exp":{},"role":"a","role":"b"}}"#, NOW + 60);
    assert_eq!(code_of(&sign_raw(&h, &URL_SAFE_NO_PAD.encode(&other)), NOW, 0), "valid");
}

#[test]
fn null_claims_and_headers_count_as_present() {
    let h = b64json(&header());
    for payload in [
        json!({ "sub": USER, "exp": NOW + 60, "nbf": null }),
        json!({ "sub": USER, "exp": null }),
        json!({ "sub": USER, "exp": NOW + 60, "iat": null }),
    ] {
        assert_eq!(code_of(&sign_raw(&h, &b64json(&payload)), NOW, 0), "ERR_JWT_CLAIM_VALIDATION_FAILED", "{payload}");
    }
    let crit_null = b64json(&json!({ "alg": "RS256", "kid": "test-kid", "crit": null }));
    assert_eq!(code_of(&sign_raw(&crit_null, &b64json(&claims(NOW + 60))), NOW, 0), "ERR_JWS_INVALID");
}

#[test]
fn a_json_array_is_not_a_claims_set() {
    // serde reads an array into a struct by position; the claims set must be an object.
    let payload = format!(r#"["{USER}",{},null,null]"#, NOW + 60);
    assert_eq!(code_of(&sign_raw(&b64json(&header()), &URL_SAFE_NO_PAD.encode(&payload)), NOW, 0), "ERR_JWT_INVALID");
    let header = URL_SAFE_NO_PAD.encode(r#"["RS256","test-kid",null]"#);
    assert_eq!(code_of(&sign_raw(&header, &b64json(&claims(NOW + 60))), NOW, 0), "ERR_JWS_INVALID");
}

#[test]
fn the_largest_token_issued_is_exactly_what_verify_accepts() -> TestResult {
    let issue_with = |pad: usize| {
        let mut extra = Map::new();
        extra.insert("pad".into(), json!("x".repeat(pad)));
        issue_token(&KEYS, USER, &IssueConfig { claims: extra, ..config() }, NOW)
    };
    let (mut fits, mut too_big) = (0, 8192);
    while too_big - fits > 1 {
        let mid = (fits + too_big) / 2;
        match issue_with(mid) {
            Ok(_) => fits = mid,
            Err(_) => too_big = mid,
        }
    }
    let largest = issue_with(fits)?;
    assert!(largest.len() <= MAX_TOKEN_LENGTH && largest.len() > MAX_TOKEN_LENGTH - 4, "{}", largest.len());
    assert_eq!(code_of(&largest, NOW, 0), "valid");
    Ok(())
}

#[test]
fn nesting_is_counted_outside_strings_only() {
    assert!(!nests_deeper_than(br#"{"a":"[[[[{{","b":"\"[[[\\"}"#, 1), "brackets in strings, escaped quotes");
    assert!(nests_deeper_than(br#"{"a":[[1]]}"#, 2));
    assert!(!nests_deeper_than(br#"{"a":[[1]]}"#, 3));
    assert!(!nests_deeper_than(br#"{"a":[1],"b":[2],"c":{"d":[3]}}"#, 3), "siblings do not add up");
}

#[test]
fn json_nested_past_the_limit_is_refused_before_it_is_parsed() {
    let nested = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
    // The object itself is one level, so its member may nest MAX_JSON_DEPTH - 1 deep.
    let at_limit = format!(r#"{{"sub":"{USER}","exp":{},"x":{}}}"#, NOW + 60, nested(MAX_JSON_DEPTH - 1));
    let past = format!(r#"{{"sub":"{USER}","exp":{},"x":{}}}"#, NOW + 60, nested(MAX_JSON_DEPTH));
    let h = b64json(&header());
    assert_eq!(code_of(&sign_raw(&h, &URL_SAFE_NO_PAD.encode(&at_limit)), NOW, 0), "valid");
    assert_eq!(code_of(&sign_raw(&h, &URL_SAFE_NO_PAD.encode(&past)), NOW, 0), "ERR_JWT_INVALID");
    let deep_header = format!(r#"{{"alg":"RS256","kid":"test-kid","x":{}}}"#, nested(5000));
    let p = b64json(&claims(NOW + 60));
    assert_eq!(code_of(&sign_raw(&URL_SAFE_NO_PAD.encode(&deep_header), &p), NOW, 0), "ERR_JWS_INVALID");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A real token, made once: the mutation properties start from it.
    fn genuine() -> String {
        sign_raw(&b64json(&header()), &b64json(&claims(NOW + 600)))
    }

    fn refused(token: &str) -> bool {
        verify_token(&KEYS, token, NOW, 0).is_err()
    }

    fn segments(h: &str, p: &str, s: &str) -> String {
        [h, p, s].join(".")
    }

    /// `token` with the character at `at` (a byte index, the token being ASCII) replaced.
    fn replaced(token: &str, at: usize, with: &str) -> String {
        [&token[..at], with, &token[at + 1..]].concat()
    }

    proptest! {
        #[test]
        fn any_string_is_refused_without_a_panic(token in ".{0,600}") {
            prop_assert!(refused(&token));
        }

        #[test]
        fn three_base64url_segments_are_refused(h in "[A-Za-z0-9_-]{0,300}", p in "[A-Za-z0-9_-]{0,300}", s in "[A-Za-z0-9_-]{0,400}") {
            prop_assert!(refused(&segments(&h, &p, &s)));
        }

        #[test]
        fn any_json_header_and_claims_signed_by_us_never_panic(h in crate::tests::any_json(), p in crate::tests::any_json()) {
            // Signed with the real key, so every check after the signature is reached too.
            let _ = verify_token(&KEYS, &sign_raw(&b64json(&h), &b64json(&p)), NOW, 0);
        }

        #[test]
        fn changing_any_character_of_a_real_token_breaks_it(at in any::<prop::sample::Index>(), with in "[A-Za-z0-9_.=+/-]") {
            let token = genuine();
            let mutated = replaced(&token, at.index(token.len()), &with);
            prop_assume!(mutated != token);
            prop_assert!(refused(&mutated));
        }
    }
}

#[test]
fn a_token_issued_in_the_second_of_a_revocation_verifies_and_the_revoked_one_does_not() -> TestResult {
    // A user of its own: the revocation map is the process's, shared with other tests.
    let user = "5f0c2a8e-1b7d-4c3e-9a6f-2d8b4e1c7a90";
    let before = issue_revocable(user, NOW)?;
    crate::revocation::learn(user, (NOW + 1) as i64); // revoked at NOW: "forget me"
    assert_eq!(revocable_code_of(&before, NOW), "ERR_JWT_CLAIM_VALIDATION_FAILED");
    let after = issue_revocable(user, NOW)?;
    assert_eq!(revocable_code_of(&after, NOW), "valid", "the browser asking again at once gets a working token");
    let claims: Value = serde_json::from_str(
        &super::verify_token(&KEYS, &after, NOW, 0, crate::revocation::refuses).map_err(|f| f.message)?,
    )?;
    assert_eq!(claims["iat"], json!(NOW + 1));
    assert_eq!(claims["exp"], json!(NOW + 1 + DEFAULT_TTL_SECONDS));
    Ok(())
}

#[test]
fn a_revocation_time_in_the_future_never_dates_a_token_past_its_lifetime() -> TestResult {
    // A row planted in the database (or a writer's clock far ahead): revoked until 2100.
    let user = "6a1d3b9f-2c8e-4d7a-8b5f-3e9c1a7d2b64";
    crate::revocation::learn(user, 4_102_444_800);
    let token = issue_revocable(user, NOW)?;
    let claims = token.split('.').nth(1).ok_or("no claims")?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims)?)?;
    assert_eq!(claims["iat"], json!(NOW), "issued now, not in 2100");
    assert_eq!(claims["exp"], json!(NOW + DEFAULT_TTL_SECONDS));
    assert_eq!(
        revocable_code_of(&token, NOW),
        "ERR_JWT_CLAIM_VALIDATION_FAILED",
        "and refused while the revocation stands"
    );
    Ok(())
}
