//! The one error type of the core. Every variant has a stable `code()` that reaches JavaScript as
//! `err.code`; the binding picks the JS error class from `kind()`.

use std::fmt;

/// Which JavaScript error class a failure becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Error,
    TypeError,
    RangeError,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HootError {
    /// An argument (or option property) has the wrong JavaScript type.
    InvalidArgType { name: String, expected: &'static str, received: String },
    /// An argument has the right type but a value the API cannot accept.
    InvalidArgValue { name: String, reason: String, out_of_range: bool },
    /// A user id that is not a UUID v4 (or, for the store, one of its legacy forms); `expected`
    /// says which forms the call accepts.
    InvalidUserId { id: String, expected: &'static str },
    /// The key set could not be loaded, generated or used; the message names the file and the fix.
    Keys(String),
    /// The database could not be opened, migrated, read or written; the message names the file.
    Db(String),
    /// A panic or an impossible state inside hoot-core; always a bug worth reporting.
    Internal(String),
}

impl HootError {
    pub fn code(&self) -> &'static str {
        match self {
            HootError::InvalidArgType { .. } => "ERR_INVALID_ARG_TYPE",
            HootError::InvalidArgValue { .. } => "ERR_INVALID_ARG_VALUE",
            HootError::InvalidUserId { .. } => "ERR_INVALID_USER_ID",
            HootError::Keys(_) => "ERR_HOOT_KEYS",
            HootError::Db(_) => "ERR_HOOT_DB",
            HootError::Internal(_) => "ERR_HOOT_INTERNAL",
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            HootError::InvalidArgType { .. } => ErrorKind::TypeError,
            HootError::InvalidArgValue { out_of_range: true, .. } => ErrorKind::RangeError,
            HootError::InvalidArgValue { .. } => ErrorKind::TypeError,
            _ => ErrorKind::Error,
        }
    }

    pub fn arg_type(name: impl Into<String>, expected: &'static str, received: impl Into<String>) -> Self {
        HootError::InvalidArgType { name: name.into(), expected, received: received.into() }
    }

    pub fn arg_value(name: impl Into<String>, reason: impl Into<String>) -> Self {
        HootError::InvalidArgValue { name: name.into(), reason: reason.into(), out_of_range: false }
    }

    pub fn out_of_range(name: impl Into<String>, reason: impl Into<String>) -> Self {
        HootError::InvalidArgValue { name: name.into(), reason: reason.into(), out_of_range: true }
    }

    /// `name` holds something JSON cannot (a BigInt, a function, a cycle); `detail` says what.
    pub fn not_json(name: impl Into<String>, detail: impl fmt::Display) -> Self {
        Self::arg_value(name, format!("must hold only JSON values: {detail}"))
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
            HootError::InvalidArgType { name, expected, received } => write!(
                f,
                "The \"{name}\" {} must be {expected}. Received {received}",
                noun(name)
            ),
            HootError::InvalidArgValue { name, reason, .. } => {
                write!(f, "The \"{name}\" {} {reason}", noun(name))
            }
            HootError::InvalidUserId { id, expected } => {
                let shown: String = id.chars().take(64).collect();
                write!(f, "Invalid user id {shown:?}: expected {expected}")
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
    fn messages_follow_node_wording() {
        let e = HootError::arg_type("userId", "of type string", "type number (42)");
        assert_eq!(e.code(), "ERR_INVALID_ARG_TYPE");
        assert_eq!(e.kind(), ErrorKind::TypeError);
        assert_eq!(
            e.to_string(),
            "The \"userId\" argument must be of type string. Received type number (42)"
        );
        let e = HootError::out_of_range("opts.ttlSeconds", "must be a whole number of seconds from 1 to 315360000. Received 0");
        assert_eq!(e.kind(), ErrorKind::RangeError);
        assert!(e.to_string().starts_with("The \"opts.ttlSeconds\" property must"));
    }
}
