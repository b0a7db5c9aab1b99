//! The user-id rules every layer shares: which ids a token may carry, and which a store accepts.

#![warn(missing_docs)]

/// What a token's user id must be, for messages.
pub const TOKEN_USER_ID_FORMS: &str = "a UUID v4, the browser's crypto.randomUUID() (8-4-4-4-12 hex digits)";

/// What a store's user id must be, for messages.
pub const USER_ID_FORMS: &str = "a UUID v4, \"default-user\" or \"legacy-user-<digits>\" (the verified token's sub)";

/// Hoot's user id check: a UUID v4, any case (`/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i`).
pub fn is_valid_user_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            14 => c == b'4',
            19 => matches!(c.to_ascii_lowercase(), b'8' | b'9' | b'a' | b'b'),
            _ => c.is_ascii_hexdigit(),
        })
}

/// Whether a user id is the one a migration gave a single-user install's data.
pub fn is_legacy_user(user_id: &str) -> bool {
    user_id.strip_prefix("legacy-user-").is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The user ids a store accepts: a UUID v4 (a browser), `default-user` (Hoot's session-token
/// fallback) or `legacy-user-<digits>` (data migrated from the single-user schema).
pub fn is_store_user_id(id: &str) -> bool {
    is_valid_user_id(id) || id == "default-user" || is_legacy_user(id)
}
