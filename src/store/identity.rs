//! The rules of moving an anonymous user between devices and identities, whatever the backend:
//! transfer codes (their alphabet, life, MACs and throttle), account links (their MAC), and what
//! merging two users' data reports. Times are seconds, passed in.

#![warn(missing_docs)]

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use super::{is_store_user_id, USER_ID_FORMS};
use crate::error::HootError;
pub use crate::ids::is_legacy_user;
use crate::secret::StoreSecret;

/// The symbols of a transfer code: digits and capitals without 0, O, 1, I, L and U, so nothing
/// read aloud or typed from a screen can be mistaken for another.
pub const CODE_ALPHABET: &[u8; 30] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Symbols in a code (shown as three groups of four): 12 × log2(30) ≈ 58.9 bits.
pub const CODE_LENGTH: usize = 12;
/// A code's default and longest life.
pub const CODE_TTL_SECONDS: i64 = 600;
const MAX_CODE_TTL_SECONDS: f64 = 3600.0;
const MIN_CODE_TTL_SECONDS: f64 = 30.0;
/// The throttle: at most this many failed redemptions per window, across every process sharing
/// the database; past it every redemption is refused until the window ends.
pub const MAX_FAILURES_PER_WINDOW: i64 = 100;
/// The throttle's window, in seconds.
pub const FAILURE_WINDOW_SECONDS: i64 = 600;
/// The throttle of one source (what the server passes as `source`, its client's address): past
/// this many failures in the window its redemptions are refused, and only these many count
/// towards the global limit, so one source can never exhaust it for everyone.
pub const MAX_FAILURES_PER_SOURCE: i64 = 10;
/// The longest `source`, in bytes.
const MAX_SOURCE_BYTES: usize = 1024;

const CODE_PURPOSE: &str = "hoot-transfer-code";
const CODE_ROW_PURPOSE: &str = "hoot-transfer-code-row";
const ACCOUNT_PURPOSE: &str = "hoot-account-link";
const SOURCE_PURPOSE: &str = "hoot-transfer-source";

/// `ttlSeconds` of a transfer code: whole seconds from 30 to 3,600, 600 when absent.
pub fn code_ttl(ttl_seconds: Option<f64>) -> Result<i64, HootError> {
    match ttl_seconds {
        None => Ok(CODE_TTL_SECONDS),
        Some(t) if t.fract() == 0.0 && (MIN_CODE_TTL_SECONDS..=MAX_CODE_TTL_SECONDS).contains(&t) => Ok(t as i64),
        Some(t) => Err(HootError::out_of_range(
            "opts.ttlSeconds",
            format!("must be whole seconds from {MIN_CODE_TTL_SECONDS} to {MAX_CODE_TTL_SECONDS}. Received {t}"),
        )),
    }
}

/// A new random code, grouped for reading: `7KQ4-M9XR-2HBT`.
pub(crate) fn new_code() -> Result<String, HootError> {
    let rng = SystemRandom::new();
    let mut symbols = Vec::with_capacity(CODE_LENGTH);
    let mut bytes = [0u8; 32];
    while symbols.len() < CODE_LENGTH {
        rng.fill(&mut bytes).map_err(|_| HootError::Internal("the system random source failed".into()))?;
        // 240 = 8 × 30: bytes at or above it are dropped, so every symbol is equally likely.
        symbols.extend(bytes.iter().filter(|&&b| b < 240).map(|&b| CODE_ALPHABET[usize::from(b % 30)]));
    }
    symbols.truncate(CODE_LENGTH);
    let groups: Vec<String> = symbols.chunks(4).map(|g| String::from_utf8_lossy(g).into_owned()).collect();
    Ok(groups.join("-"))
}

/// A code's symbols (case, spaces and dashes ignored), or `None` for anything that cannot be a code.
pub(crate) fn code_symbols(code: &str) -> Option<String> {
    let symbols: String =
        code.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_uppercase()).collect();
    if symbols.len() != CODE_LENGTH || !symbols.bytes().all(|b| CODE_ALPHABET.contains(&b)) {
        return None;
    }
    Some(symbols)
}

/// The code as looked up: a MAC of its symbols under the store secret, which a database writer
/// without the secret cannot make for a code of their choosing.
pub(crate) fn code_hash(secret: &StoreSecret, symbols: &str) -> String {
    secret.mac(CODE_PURPOSE, &[symbols.as_bytes()])
}

/// The MAC binding a code's row to its user, what it derives from and its expiry: a row moved to
/// another user, or made longer-lived, does not verify.
pub(crate) fn code_row_mac(
    secret: &StoreSecret,
    symbols: &str,
    user_id: &str,
    derived_from: i64,
    expires_at: i64,
) -> String {
    let (from, until) = (derived_from.to_string(), expires_at.to_string());
    secret.mac(CODE_ROW_PURPOSE, &[symbols.as_bytes(), user_id.as_bytes(), from.as_bytes(), until.as_bytes()])
}

/// A code's row as read by the delete that redeems it.
#[derive(Debug)]
pub struct CodeRow {
    /// Whose code it is.
    pub user_id: String,
    /// When it stops redeeming.
    pub expires_at: i64,
    /// What it derives from (absent in rows from before schema 2: such a row never verifies).
    pub derived_from: Option<i64>,
    /// Its MAC (absent likewise).
    pub mac: Option<String>,
}

impl CodeRow {
    /// The user, if the row is unexpired at `now` and verifies under `secret`, with what it
    /// derives from.
    pub fn verified(self, secret: &StoreSecret, symbols: &str, now: i64) -> Option<(String, i64)> {
        let derived_from = self.derived_from?;
        let mac = code_row_mac(secret, symbols, &self.user_id, derived_from, self.expires_at);
        let stored = self.mac.as_deref().unwrap_or_default();
        let genuine = aws_lc_rs::constant_time::verify_slices_are_equal(mac.as_bytes(), stored.as_bytes()).is_ok();
        (genuine && self.expires_at > now).then_some((self.user_id, derived_from))
    }
}

/// The MAC of an account link under the store secret.
pub(crate) fn account_mac(secret: &StoreSecret, account_id: &str, user_id: &str) -> String {
    secret.mac(ACCOUNT_PURPOSE, &[account_id.as_bytes(), user_id.as_bytes()])
}

/// Whether a stored link of `account_id` to `user_id` is one a server made.
pub(crate) fn account_verifies(secret: &StoreSecret, account_id: &str, user_id: &str, mac: Option<&str>) -> bool {
    secret.verify(ACCOUNT_PURPOSE, &[account_id.as_bytes(), user_id.as_bytes()], mac)
}

/// A redemption's source as stored: a MAC, so the database never holds a client's address.
pub(crate) fn source_mac(secret: &StoreSecret, source: &str) -> String {
    secret.mac(SOURCE_PURPOSE, &[source.as_bytes()])
}

/// `opts.source` of a redemption: a non-empty string of at most 1,024 bytes.
pub fn check_source(source: &str) -> Result<(), HootError> {
    match !source.is_empty() && source.len() <= MAX_SOURCE_BYTES {
        true => Ok(()),
        false => Err(HootError::arg_value("opts.source", format!("must be 1 to {MAX_SOURCE_BYTES} bytes"))),
    }
}

/// What a code made at `now` derives from: the `iat` of the token the request was authenticated
/// with (`opts.tokenIssuedAt`, seconds), never later than `now + 1` (a token issued in the second of
/// a revocation is dated at its end); `now` without one. A revocation
/// of the user's tokens issued before a time ends the codes derived from them.
pub fn derived_from(token_issued_at: Option<f64>, now: i64) -> Result<i64, HootError> {
    match token_issued_at {
        None => Ok(now),
        Some(t) if t.is_finite() && t >= 0.0 => Ok((t.floor() as i64).min(now + 1)),
        Some(t) => Err(HootError::out_of_range(
            "opts.tokenIssuedAt",
            format!("must be a token's iat: seconds since the epoch. Received {t}"),
        )),
    }
}

/// Seconds until the window ends if a redemption is refused outright: the global count is at its
/// limit, or this source's is at its own.
pub(crate) fn throttled(global: i64, source: Option<i64>, window: i64, now: i64) -> Option<i64> {
    let full = global >= MAX_FAILURES_PER_WINDOW || source.is_some_and(|n| n >= MAX_FAILURES_PER_SOURCE);
    full.then_some(window + FAILURE_WINDOW_SECONDS - now)
}

/// What a redeemed code gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    /// The user the new device now is: the code's user, or for a legacy code `into`.
    pub user_id: String,
    /// For a legacy code: what moved into `into`.
    pub moved: Option<MoveReport>,
}

/// A store user id, or `ERR_INVALID_USER_ID`.
pub fn check_user_id(id: &str) -> Result<(), HootError> {
    match is_store_user_id(id) {
        true => Ok(()),
        false => Err(HootError::invalid_user_id(id, USER_ID_FORMS)),
    }
}

/// What `moveUserData` does where both users have state for one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Refuse the whole move, changing nothing.
    Fail,
    /// Keep the target's rows and drop the source's.
    KeepTarget,
    /// Replace the target's rows with the source's.
    TakeSource,
}

impl OnConflict {
    /// `'fail'`, `'keep-target'` or `'take-source'`.
    pub fn parse(value: &str) -> Result<Self, HootError> {
        match value {
            "fail" => Ok(OnConflict::Fail),
            "keep-target" => Ok(OnConflict::KeepTarget),
            "take-source" => Ok(OnConflict::TakeSource),
            _ => Err(HootError::arg_value("opts.onConflict", "must be 'fail', 'keep-target' or 'take-source'")),
        }
    }
}

/// What `moveUserData` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MoveReport {
    /// Rows that now belong to the target.
    pub moved: u64,
    /// Rows of the target replaced by the source's (`take-source`).
    pub replaced: u64,
    /// Rows of the source dropped for the target's (`keep-target`).
    pub dropped: u64,
    /// Servers both users had state for (their rows move, or stay, together).
    pub conflicts: u64,
}
