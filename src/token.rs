//! Hoot's session tokens: RS256 JWTs whose `sub` is the browser's UUID v4. Issuing produces exactly
//! Hoot's header and claims; verifying is strict and reports jose's error codes.
//!
//! Signatures are made and checked by aws-lc-rs with keys parsed once, when the key set loads
//! (`KeySet::sign`, `ParsedPublicKey::verify_sig`): a signature costs the RSA operation and
//! nothing else. Claims are checked here with `now` passed in, by jose's rules (expired when
//! `now >= exp + leeway`), so the tests need no sleeping.

#![warn(missing_docs)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::env::{self, Environment};
use crate::error::HootError;
use crate::keys::KeySet;
use crate::metrics::{CounterSite, TimingSite};
use aws_lc_rs::signature::ParsedPublicKey;
use std::time::Instant;

/// The most clock skew `leewaySeconds` may allow: a day.
pub const MAX_LEEWAY_SECONDS: u64 = 86_400;

/// `verifyToken`'s options as the caller gave them.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Clock skew allowed on `exp` and `nbf`; 0 when absent.
    pub leeway_seconds: Option<f64>,
}

impl VerifyOptions {
    /// The leeway in whole seconds, from 0 to `MAX_LEEWAY_SECONDS`.
    pub fn leeway(&self) -> Result<u64, HootError> {
        match self.leeway_seconds {
            None => Ok(0),
            Some(l) if l.fract() == 0.0 && (0.0..=MAX_LEEWAY_SECONDS as f64).contains(&l) => Ok(l as u64),
            Some(l) => Err(HootError::out_of_range(
                "opts.leewaySeconds",
                format!("must be a whole number of seconds from 0 to {MAX_LEEWAY_SECONDS}. Received {l}"),
            )),
        }
    }
}

/// Tokens longer than this are rejected before any decoding.
pub const MAX_TOKEN_LENGTH: usize = 8 * 1024;
/// A token's lifetime when `ttlSeconds` is not given: an hour, as Hoot issues them.
pub const DEFAULT_TTL_SECONDS: u64 = 3600;
/// Ten years: longer than any session, short enough that `iat + ttl` is an exact JS number.
pub const MAX_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;
/// Hoot's `portkey_oid` when neither the option nor `$PORTKEY_ORG_ID` gives one.
pub const DEFAULT_ORG_ID: &str = "test-org-id";
/// Hoot's `portkey_workspace` when neither the option nor `$PORTKEY_WORKSPACE_SLUG` gives one.
pub const DEFAULT_WORKSPACE: &str = "test-workspace";
/// Hoot's `scope` claim when `scope` is not given.
pub const DEFAULT_SCOPE: [&str; 3] = ["completions.write", "virtual_keys.list", "logs.view"];
const RESERVED_CLAIMS: [&str; 3] = ["sub", "iat", "exp"];
pub use crate::ids::is_valid_user_id;
use crate::ids::TOKEN_USER_ID_FORMS as USER_ID_FORMS;

/// Extra claims may set nothing `verify_token` would then refuse, so every issued token verifies:
/// not `sub`, `iat` or `exp` (they come from the call), `nbf` only as a number, and nothing nested
/// deeper than `MAX_JSON_DEPTH` levels counting the claims set itself.
fn check_extra_claims(claims: &Map<String, Value>) -> Result<(), HootError> {
    if let Some(reserved) = RESERVED_CLAIMS.iter().find(|c| claims.contains_key(**c)) {
        return Err(HootError::arg_value(
            "opts.claims",
            format!("may not set \"{reserved}\": sub is the userId argument, iat and exp come from ttlSeconds"),
        ));
    }
    if claims.get("nbf").is_some_and(|nbf| !nbf.is_number()) {
        return Err(HootError::arg_value(
            "opts.claims",
            "may set \"nbf\" only to a number of seconds: verifyToken refuses a token whose nbf is not a number",
        ));
    }
    if claims.values().any(|value| 1 + nesting(value) > MAX_JSON_DEPTH) {
        return Err(HootError::arg_value(
            "opts.claims",
            format!("nest more than {MAX_JSON_DEPTH} levels deep (the claims set included), which verifyToken refuses"),
        ));
    }
    Ok(())
}

/// How many arrays or objects `value` opens inside one another (0 for a scalar). Iterative, so
/// no input can exhaust the stack.
fn nesting(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0usize)];
    while let Some((value, depth)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(members) => Box::new(members.values()),
            _ => continue,
        };
        deepest = deepest.max(depth + 1);
        pending.extend(children.map(|child| (child, depth + 1)));
    }
    deepest
}

/// Issue options after defaults and `PORTKEY_*` variables have been applied.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueConfig {
    /// Lifetime in whole seconds.
    pub ttl_seconds: u64,
    /// The `portkey_oid` claim.
    pub portkey_org_id: String,
    /// The `portkey_workspace` claim.
    pub portkey_workspace: String,
    /// The `scope` claim.
    pub scope: Vec<String>,
    /// Extra claims, added after Hoot's.
    pub claims: Map<String, Value>,
}

/// The caller's `IssueOptions`, each `None` when not given.
#[derive(Debug, Clone, Default)]
pub struct IssueOptions {
    /// `ttlSeconds`.
    pub ttl_seconds: Option<f64>,
    /// `portkeyOrgId`.
    pub portkey_org_id: Option<String>,
    /// `portkeyWorkspace`.
    pub portkey_workspace: Option<String>,
    /// `scope`.
    pub scope: Option<Vec<String>>,
    /// `claims`.
    pub claims: Option<Map<String, Value>>,
}

impl IssueConfig {
    /// Applies defaults: options first, then `$PORTKEY_ORG_ID` / `$PORTKEY_WORKSPACE_SLUG` (looked up
    /// in `env` at every call, as Hoot reads them per request), then Hoot's fixed values.
    pub fn resolve(opts: IssueOptions, env: &Environment) -> Result<Self, HootError> {
        let ttl_seconds = match opts.ttl_seconds {
            None => DEFAULT_TTL_SECONDS,
            Some(t) if t.fract() == 0.0 && (1.0..=MAX_TTL_SECONDS as f64).contains(&t) => t as u64,
            Some(t) => {
                return Err(HootError::out_of_range(
                    "opts.ttlSeconds",
                    format!("must be a whole number of seconds from 1 to {MAX_TTL_SECONDS}. Received {t}"),
                ))
            }
        };
        let claims = opts.claims.unwrap_or_default();
        check_extra_claims(&claims)?;
        Ok(IssueConfig {
            ttl_seconds,
            portkey_org_id: opts
                .portkey_org_id
                .or_else(|| env.var(env::PORTKEY_ORG_ID))
                .unwrap_or_else(|| DEFAULT_ORG_ID.to_string()),
            portkey_workspace: opts
                .portkey_workspace
                .or_else(|| env.var(env::PORTKEY_WORKSPACE_SLUG))
                .unwrap_or_else(|| DEFAULT_WORKSPACE.to_string()),
            scope: opts.scope.unwrap_or_else(|| DEFAULT_SCOPE.iter().map(|s| s.to_string()).collect()),
            claims,
        })
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'static str,
}

/// Claims in the order Hoot's `new SignJWT({...}).setIssuedAt().setExpirationTime()` writes them.
#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    portkey_oid: Value,
    portkey_workspace: Value,
    scope: Value,
    #[serde(flatten)]
    extra: Map<String, Value>,
    iat: u64,
    exp: u64,
}

fn encode_segment<T: Serialize>(value: &T) -> Result<String, HootError> {
    serde_json::to_vec(value)
        .map(|json| URL_SAFE_NO_PAD.encode(json))
        .map_err(|e| HootError::Internal(format!("cannot serialise the token: {e}")))
}

/// Signs a session token for `user_id` at time `now` (seconds). `revoked_before`: the time before
/// which this user's tokens are refused, if they were revoked (the caller's revocation memory).
/// Timed (`token_issue`) and reported (`token_issued`).
pub fn issue_token(
    keys: &KeySet,
    user_id: &str,
    config: &IssueConfig,
    now: u64,
    revoked_before: Option<i64>,
) -> Result<String, HootError> {
    static TIMING: TimingSite<1> = TimingSite::new("token_issue", ("", ""), "");
    let start = Instant::now();
    let token = sign_session_token(keys, user_id, config, now, revoked_before);
    TIMING.get(0, "").observe(start.elapsed(), token.is_ok());
    if token.is_ok() {
        crate::events::emit("token_issued", |e| {
            e.hashed("userHash", &user_id.to_ascii_lowercase())
                .set("kid", keys.kid())
                .set("ttlSeconds", config.ttl_seconds);
        });
    }
    token
}

fn sign_session_token(
    keys: &KeySet,
    user_id: &str,
    config: &IssueConfig,
    now: u64,
    revoked_before: Option<i64>,
) -> Result<String, HootError> {
    crate::test_panic(user_id);
    if !is_valid_user_id(user_id) {
        return Err(HootError::invalid_user_id(user_id, USER_ID_FORMS));
    }
    // One browser secret is one tenant: `sub` is the UUID in lower case, whatever case it came in.
    let sub = user_id.to_ascii_lowercase();
    // Extra claims may replace the Portkey claims; they keep their place in the token.
    let mut extra = config.claims.clone();
    let mut take = |name: &str, default: Value| extra.remove(name).unwrap_or(default);
    let portkey_oid = take("portkey_oid", Value::from(config.portkey_org_id.as_str()));
    let portkey_workspace = take("portkey_workspace", Value::from(config.portkey_workspace.as_str()));
    let scope = take("scope", Value::from(config.scope.clone()));
    // A user whose tokens were revoked in this very second (`revokeUserTokens`, "forget me") gets a
    // token that verifies: dated at the end of that second, not a moment before the revocation, so
    // a browser asking again at once is not handed a token refused for its whole life. Only that
    // second: a revocation time further ahead (a row planted in the database, a writer's clock far
    // off) never dates a token into the future, where it would outlive its lifetime.
    let revoked = revoked_before.and_then(|before| u64::try_from(before).ok());
    let iat = revoked.filter(|before| *before == now + 1).unwrap_or(now);
    let claims = Claims { sub: &sub, portkey_oid, portkey_workspace, scope, extra, iat, exp: iat + config.ttl_seconds };
    let header = Header { alg: "RS256", kid: keys.kid(), typ: "JWT" };
    let mut token = encode_segment(&header)?;
    token.push('.');
    token.push_str(&encode_segment(&claims)?);
    // Checked before signing too, so oversized claims do not cost an RSA operation.
    let too_long = |length: usize| {
        HootError::out_of_range(
            "opts.claims",
            format!("make the token {length} characters long; verifyToken accepts at most {MAX_TOKEN_LENGTH}"),
        )
    };
    if token.len() >= MAX_TOKEN_LENGTH {
        return Err(too_long(token.len()));
    }
    let signature = keys.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    if token.len() > MAX_TOKEN_LENGTH {
        return Err(too_long(token.len()));
    }
    Ok(token)
}

/// jose's error codes for a token that does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCode {
    /// `now >= exp + leeway`.
    Expired,
    /// Not a well-formed JWS: segments, base64url, header JSON, `crit`, size.
    JwsInvalid,
    /// The signature does not verify under the key `kid` names.
    SignatureFailed,
    /// An `alg` other than RS256.
    AlgNotAllowed,
    /// No `kid`, or one the key set does not have.
    NoMatchingKey,
    /// `exp` missing or not a number, `nbf` in the future, `sub` not a UUID v4.
    ClaimInvalid,
    /// The claims set is not a JSON object.
    JwtInvalid,
}

impl FailureCode {
    /// Every failure, in docs/api.md's order; lib/header.d.ts's `VerifyFailureCode` and the
    /// docs/api.md's table list the same codes (a test checks).
    pub const ALL: [FailureCode; 7] = [
        FailureCode::Expired,
        FailureCode::JwsInvalid,
        FailureCode::SignatureFailed,
        FailureCode::AlgNotAllowed,
        FailureCode::NoMatchingKey,
        FailureCode::ClaimInvalid,
        FailureCode::JwtInvalid,
    ];

    /// The code JavaScript sees (jose's name).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::Expired => "ERR_JWT_EXPIRED",
            FailureCode::JwsInvalid => "ERR_JWS_INVALID",
            FailureCode::SignatureFailed => "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
            FailureCode::AlgNotAllowed => "ERR_JOSE_ALG_NOT_ALLOWED",
            FailureCode::NoMatchingKey => "ERR_JWKS_NO_MATCHING_KEY",
            FailureCode::ClaimInvalid => "ERR_JWT_CLAIM_VALIDATION_FAILED",
            FailureCode::JwtInvalid => "ERR_JWT_INVALID",
        }
    }
}

/// A token that did not verify: a value, not an exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// jose's code for the failure.
    pub code: FailureCode,
    /// What was wrong, for logs; never contains the token.
    pub message: &'static str,
}

fn fail<T>(code: FailureCode, message: &'static str) -> Result<T, VerifyFailure> {
    Err(VerifyFailure { code, message })
}

/// A member that is present, `null` included (`Option<Value>` alone reads `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The header members verification reads. Others are skipped (their JSON still checked); a member
/// given twice is an error, so no reader can see a different `alg` or `kid` than this one.
#[derive(Deserialize)]
struct JoseHeader {
    #[serde(default, deserialize_with = "present")]
    alg: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    kid: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    crit: Option<Value>,
}

/// The registered claims verification checks, read the same way as `JoseHeader`.
#[derive(Deserialize)]
struct RegisteredClaims {
    #[serde(default, deserialize_with = "present")]
    sub: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    exp: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    nbf: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    iat: Option<Value>,
}

/// JSON nested deeper than this is refused before it is parsed. A JWT needs two or three levels;
/// a depth bomb should cost one pass over its bytes and nothing else.
pub const MAX_JSON_DEPTH: usize = 32;

/// Why a header or claims set could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParseError {
    NotAnObject,
    /// A member `T` reads is named twice.
    Duplicate,
    TooDeep,
}

/// Whether `json` opens more than `max` arrays or objects inside one another (brackets inside
/// strings do not count). One pass, no allocation.
fn nests_deeper_than(json: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Parses `json` as a JSON object into `T`.
fn parse_object<'a, T: Deserialize<'a>>(json: &'a [u8]) -> Result<T, ParseError> {
    // serde would also read a JSON array into a struct, by position.
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ParseError::NotAnObject);
    }
    if nests_deeper_than(json, MAX_JSON_DEPTH) {
        return Err(ParseError::TooDeep);
    }
    serde_json::from_slice(json).map_err(|_| match serde_json::from_slice::<Value>(json) {
        Ok(Value::Object(_)) => ParseError::Duplicate,
        _ => ParseError::NotAnObject,
    })
}

/// Decodes one segment, accepting only strict base64url: no padding, no `+` `/`, no whitespace,
/// no stray trailing bits.
fn decode_segment(segment: &str) -> Result<Vec<u8>, VerifyFailure> {
    URL_SAFE_NO_PAD.decode(segment).or_else(|_| fail(FailureCode::JwsInvalid, "a JWS segment is not strict base64url"))
}

fn number_claim(value: Option<Value>, message: &'static str) -> Result<Option<f64>, VerifyFailure> {
    match value {
        None => Ok(None),
        Some(value) => value.as_f64().map(Some).ok_or(VerifyFailure { code: FailureCode::ClaimInvalid, message }),
    }
}

/// Verifies `token` against `keys` at time `now` (seconds) with `leeway` seconds of clock skew,
/// and returns the claims set exactly as signed: the JSON text of an object, which
/// `lib/verify.js` hands to V8's `JSON.parse` (faster than building the object through N-API,
/// with the same semantics as jose). Order: size and shape, header, signature, claims; so a
/// forged token never reports `expired`. `refuses(sub, iat)` says whether a token of `sub` issued
/// at `iat` was revoked (the caller's revocation memory).
/// Counted by outcome and timed; a refusal is reported (`token_refused`).
pub fn verify_token(
    keys: &KeySet,
    token: &str,
    now: u64,
    leeway: u64,
    refuses: impl Fn(&str, Option<f64>) -> bool,
) -> Result<String, VerifyFailure> {
    static TIMING: TimingSite<1> = TimingSite::new("token_verify", ("", ""), "");
    static OUTCOMES: CounterSite<{ FailureCode::ALL.len() + 1 }> =
        CounterSite::new("token_verification", ("cache", "miss"), "outcome");
    let start = Instant::now();
    let verified = check_token(keys, token, now, leeway, refuses);
    TIMING.get(0, "").observe(start.elapsed(), verified.is_ok());
    match &verified {
        Ok(_) => OUTCOMES.get(0, "valid").add(1),
        Err(failure) => {
            let at = FailureCode::ALL.iter().position(|c| *c == failure.code).unwrap_or(0);
            OUTCOMES.get(1 + at, failure.code.as_str()).add(1);
            crate::events::emit("token_refused", |e| {
                e.set("code", failure.code.as_str()).set("reason", failure.message);
            });
        }
    }
    verified
}

fn check_token(
    keys: &KeySet,
    token: &str,
    now: u64,
    leeway: u64,
    refuses: impl Fn(&str, Option<f64>) -> bool,
) -> Result<String, VerifyFailure> {
    if token.len() > MAX_TOKEN_LENGTH {
        return fail(FailureCode::JwsInvalid, "the token is longer than 8192 characters");
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return fail(FailureCode::JwsInvalid, "a JWT has three dot-separated segments");
    };
    let header_json = decode_segment(header_b64)?;
    let payload_json = decode_segment(payload_b64)?;
    let signature = decode_segment(signature_b64)?;

    let key = verifying_key_for(keys, &header_json)?;
    let signed_len = header_b64.len() + 1 + payload_b64.len();
    if key.verify_sig(&token.as_bytes()[..signed_len], &signature).is_err() {
        return fail(FailureCode::SignatureFailed, "signature verification failed");
    }
    check_claims(&payload_json, now as f64, leeway as f64, refuses)?;
    // The claims parsed as JSON, so they are UTF-8.
    String::from_utf8(payload_json)
        .or_else(|_| fail(FailureCode::JwtInvalid, "JWT Claims Set must be a top-level JSON object"))
}

/// Reads the protected header (RS256 only, no `crit`) and finds the key its `kid` names.
fn verifying_key_for<'k>(keys: &'k KeySet, header_json: &[u8]) -> Result<&'k ParsedPublicKey, VerifyFailure> {
    let header: JoseHeader = match parse_object(header_json) {
        Ok(header) => header,
        Err(ParseError::Duplicate) => {
            return fail(FailureCode::JwsInvalid, "the JWS protected header names a member twice")
        }
        Err(ParseError::TooDeep) => {
            return fail(FailureCode::JwsInvalid, "the JWS protected header nests more than 32 levels deep")
        }
        Err(ParseError::NotAnObject) => {
            return fail(FailureCode::JwsInvalid, "the JWS protected header is not a JSON object")
        }
    };
    match header.alg {
        Some(Value::String(alg)) if alg == "RS256" => {}
        Some(Value::String(_)) => {
            return fail(
                FailureCode::AlgNotAllowed,
                "\"alg\" (Algorithm) Header Parameter value not allowed: only RS256 is accepted",
            )
        }
        _ => return fail(FailureCode::JwsInvalid, "JWS \"alg\" (Algorithm) Header Parameter missing or invalid"),
    }
    if header.crit.is_some() {
        return fail(FailureCode::JwsInvalid, "the \"crit\" Header Parameter is not supported");
    }
    let Some(Value::String(kid)) = header.kid else {
        return fail(FailureCode::NoMatchingKey, "the token has no \"kid\" Header Parameter");
    };
    keys.verifying_key(&kid)
        .map_or_else(|| fail(FailureCode::NoMatchingKey, "no key in the JWKS matches the token's kid"), Ok)
}

/// Checks the registered claims of a signed claims set: `exp` (required), `iat` and `nbf` numbers,
/// the time window with `leeway`, and a UUID v4 `sub`.
fn check_claims(
    payload_json: &[u8],
    now: f64,
    leeway: f64,
    refuses: impl Fn(&str, Option<f64>) -> bool,
) -> Result<(), VerifyFailure> {
    let claims: RegisteredClaims = match parse_object(payload_json) {
        Ok(claims) => claims,
        Err(ParseError::Duplicate) => {
            return fail(FailureCode::JwtInvalid, "the JWT Claims Set names a registered claim twice")
        }
        Err(ParseError::TooDeep) => {
            return fail(FailureCode::JwtInvalid, "the JWT Claims Set nests more than 32 levels deep")
        }
        Err(ParseError::NotAnObject) => {
            return fail(FailureCode::JwtInvalid, "JWT Claims Set must be a top-level JSON object")
        }
    };
    let Some(exp) = number_claim(claims.exp, "\"exp\" claim must be a number")? else {
        return fail(FailureCode::ClaimInvalid, "missing required \"exp\" claim");
    };
    let iat = number_claim(claims.iat, "\"iat\" claim must be a number")?;
    let nbf = number_claim(claims.nbf, "\"nbf\" claim must be a number")?;
    if nbf.is_some_and(|nbf| nbf > now + leeway) {
        return fail(FailureCode::ClaimInvalid, "\"nbf\" claim timestamp check failed");
    }
    if now >= exp + leeway {
        return fail(FailureCode::Expired, "\"exp\" claim timestamp check failed");
    }
    match claims.sub {
        Some(Value::String(sub)) if is_valid_user_id(&sub) => match refuses(&sub, iat) {
            true => fail(FailureCode::ClaimInvalid, "the token was revoked (revokeUserTokens): get a new one"),
            false => Ok(()),
        },
        _ => fail(FailureCode::ClaimInvalid, "\"sub\" claim must be the user's UUID v4"),
    }
}

#[cfg(test)]
mod tests;
