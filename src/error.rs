//! The one error type of the core. Every variant has a stable `code()` that reaches JavaScript as
//! `err.code`; the binding picks the JS error class from `kind()`.

#![warn(missing_docs)]

use std::fmt;

/// Which JavaScript error class a failure becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `Error`: the environment (keys, database) or a bug.
    Error,
    /// `TypeError`: a wrong type, or a value of the right type that is never acceptable.
    TypeError,
    /// `RangeError`: a number or size outside its range.
    RangeError,
}

/// Every `code` a thrown hoot-core error can carry, in docs/api.md's order; lib/header.d.ts's
/// `HootErrorCode` and docs/api.md's table list the same set (a test checks).
pub const ERROR_CODES: [&str; 8] = [
    "ERR_INVALID_ARG_TYPE",
    "ERR_INVALID_ARG_VALUE",
    "ERR_INVALID_USER_ID",
    "ERR_HOOT_TRANSFER_CODE",
    "ERR_HOOT_TRANSFER_THROTTLED",
    "ERR_HOOT_KEYS",
    "ERR_HOOT_DB",
    "ERR_HOOT_INTERNAL",
];

/// A failure of a hoot-core call, with a stable `code()` and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HootError {
    /// An argument (or option property) has the wrong JavaScript type.
    InvalidArgType {
        /// The argument (`userId`) or property (`opts.ttlSeconds`).
        name: String,
        /// What it must be (`of type string`).
        expected: &'static str,
        /// What it was, in Node's words (`type number (42)`).
        received: String,
    },
    /// An argument has the right type but a value the API cannot accept.
    InvalidArgValue {
        /// The argument or property.
        name: String,
        /// What is wrong with it, as the end of a sentence starting with its name.
        reason: String,
        /// A number or size outside its range: a `RangeError` rather than a `TypeError`.
        out_of_range: bool,
    },
    /// A user id that is not a UUID v4 (or, for the store, one of its legacy forms). The id itself
    /// is not kept: it is the browser's bearer secret, which no message or log may repeat.
    InvalidUserId {
        /// What is wrong with it, without repeating it (`it is 37 characters long, not 36`).
        problem: String,
        /// Which forms the call accepts.
        expected: &'static str,
    },
    /// A transfer code that is unknown, expired or already used (all three look the same, so a
    /// guess learns nothing).
    TransferCode,
    /// Too many failed transfer-code redemptions lately, across every process sharing the
    /// database: redemptions are refused until the window ends.
    TransferThrottled {
        /// Seconds until redemptions are taken again.
        retry_after: i64,
    },
    /// The key set could not be loaded, generated or used; the message names the file and the fix.
    Keys(String),
    /// The database could not be opened, migrated, read or written; the message names the file.
    Db(String),
    /// A panic or an impossible state inside hoot-core; always a bug worth reporting.
    Internal(String),
}

impl HootError {
    /// The stable code JavaScript sees as `err.code`: one of `ERROR_CODES`.
    pub fn code(&self) -> &'static str {
        match self {
            HootError::InvalidArgType { .. } => "ERR_INVALID_ARG_TYPE",
            HootError::InvalidArgValue { .. } => "ERR_INVALID_ARG_VALUE",
            HootError::InvalidUserId { .. } => "ERR_INVALID_USER_ID",
            HootError::TransferCode => "ERR_HOOT_TRANSFER_CODE",
            HootError::TransferThrottled { .. } => "ERR_HOOT_TRANSFER_THROTTLED",
            HootError::Keys(_) => "ERR_HOOT_KEYS",
            HootError::Db(_) => "ERR_HOOT_DB",
            HootError::Internal(_) => "ERR_HOOT_INTERNAL",
        }
    }

    /// The JavaScript error class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            HootError::InvalidArgType { .. } => ErrorKind::TypeError,
            HootError::InvalidArgValue { out_of_range: true, .. } => ErrorKind::RangeError,
            HootError::InvalidArgValue { .. } => ErrorKind::TypeError,
            _ => ErrorKind::Error,
        }
    }

    /// `name` is not of the `expected` type.
    pub fn arg_type(name: impl Into<String>, expected: &'static str, received: impl Into<String>) -> Self {
        HootError::InvalidArgType { name: name.into(), expected, received: received.into() }
    }

    /// `name` has an unusable value; `reason` says why.
    pub fn arg_value(name: impl Into<String>, reason: impl Into<String>) -> Self {
        HootError::InvalidArgValue { name: name.into(), reason: reason.into(), out_of_range: false }
    }

    /// The refused user id `id`, described without being repeated.
    pub fn invalid_user_id(id: &str, expected: &'static str) -> Self {
        HootError::InvalidUserId { problem: user_id_problem(id), expected }
    }

    /// `name` is a number or size outside its range.
    pub fn out_of_range(name: impl Into<String>, reason: impl Into<String>) -> Self {
        HootError::InvalidArgValue { name: name.into(), reason: reason.into(), out_of_range: true }
    }

    /// `name` holds something JSON cannot (a BigInt, a function, a cycle); `detail` says what.
    pub fn not_json(name: impl Into<String>, detail: impl fmt::Display) -> Self {
        Self::arg_value(name, format!("must hold only JSON values: {detail}"))
    }
}

/// What is wrong with a refused user id, in words that never repeat it or any part of it.
fn user_id_problem(id: &str) -> String {
    let length = id.chars().count();
    if length == 0 {
        "it is empty".to_string()
    } else if id.trim() != id {
        format!("it has white space at its start or end ({length} characters)")
    } else if !id.is_ascii() {
        format!("it has characters outside ASCII ({length} characters)")
    } else if length != 36 {
        format!("it is {length} characters long, not 36")
    } else {
        "it is not in the 8-4-4-4-12 hex form with version digit 4 and variant 8, 9, a or b".to_string()
    }
}

/// `opts.ttlSeconds` is a property, `userId` an argument: Node words the two differently.
fn noun(name: &str) -> &'static str {
    if name.contains('.') {
        "property"
    } else {
        "argument"
    }
}

impl fmt::Display for HootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HootError::InvalidArgType { name, expected, received } => {
                write!(f, "The \"{name}\" {} must be {expected}. Received {received}", noun(name))
            }
            HootError::InvalidArgValue { name, reason, .. } => {
                write!(f, "The \"{name}\" {} {reason}", noun(name))
            }
            HootError::InvalidUserId { problem, expected } => {
                write!(f, "Invalid user id: {problem}; expected {expected}")
            }
            HootError::TransferCode => f.write_str(
                "This transfer code is unknown, expired or already used: ask the other device for a new one",
            ),
            HootError::TransferThrottled { retry_after } => {
                write!(f, "Too many wrong transfer codes lately: try again in {retry_after} seconds")
            }
            HootError::Keys(message) | HootError::Db(message) => f.write_str(message),
            HootError::Internal(message) => {
                write!(f, "hoot-core internal error (please report it): {message}")
            }
        }
    }
}

impl std::error::Error for HootError {}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_refused_user_id_is_described_never_repeated() {
        let secret = "3b241101-e2bb-4255-8caf-4136c566a962";
        for (id, problem) in [
            ("", "it is empty"),
            (&format!("{secret} ") as &str, "it has white space at its start or end (37 characters)"),
            (&format!("{secret}\n"), "it has white space at its start or end (37 characters)"),
            (&format!("{secret}\u{00e9}"), "it has characters outside ASCII (37 characters)"),
            (&secret[..35], "it is 35 characters long, not 36"),
            (&secret.replace("-4255-", "-1255-"), "it is not in the 8-4-4-4-12 hex form"),
        ] {
            let e = HootError::invalid_user_id(id, "a UUID v4");
            let message = e.to_string();
            assert_eq!(e.code(), "ERR_INVALID_USER_ID");
            assert!(message.starts_with(&format!("Invalid user id: {problem}")), "{message}");
            for part in secret.split('-') {
                assert!(!message.contains(part), "{message} repeats part of the id");
            }
            assert!(!format!("{e:?}").contains("3b241101"), "Debug repeats the id");
        }
    }

    #[test]
    fn messages_follow_node_wording() {
        let e = HootError::arg_type("userId", "of type string", "type number (42)");
        assert_eq!(e.code(), "ERR_INVALID_ARG_TYPE");
        assert_eq!(e.kind(), ErrorKind::TypeError);
        assert_eq!(e.to_string(), "The \"userId\" argument must be of type string. Received type number (42)");
        let e = HootError::out_of_range(
            "opts.ttlSeconds",
            "must be a whole number of seconds from 1 to 315360000. Received 0",
        );
        assert_eq!(e.kind(), ErrorKind::RangeError);
        assert!(e.to_string().starts_with("The \"opts.ttlSeconds\" property must"));
    }
}
