//! Strings from JavaScript where they become keys, ids or claims. JavaScript strings are UTF-16
//! and may hold a lone surrogate; turned into UTF-8 it would become U+FFFD, so two different
//! server ids (or a claim's key and its look-alike) would silently be one. Such a string is
//! refused instead.

#![warn(missing_docs)]

use serde_json::Value;

use crate::error::HootError;

/// The error for a string argument `name` that is not well-formed UTF-16.
fn lone_surrogate(name: &str) -> HootError {
    HootError::arg_value(name, "must be well-formed Unicode: it holds a lone surrogate (half of a UTF-16 pair)")
}

/// A string read as UTF-16 code units, refused if any surrogate is unpaired.
pub fn from_utf16(name: &str, units: &[u16]) -> Result<String, HootError> {
    String::from_utf16(units).map_err(|_| lone_surrogate(name))
}

/// A JSON value serialised by V8's `JSON.stringify`, which writes a lone surrogate as a `\udXXX`
/// escape: `serde_json` refuses exactly those, and reads everything else V8 writes.
pub fn from_js_json(name: &str, text: &str) -> Result<Value, HootError> {
    serde_json::from_str(text).map_err(|_| lone_surrogate(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_are_refused_and_pairs_are_kept() {
        let pair: Vec<u16> = "a\u{1F600}b".encode_utf16().collect();
        assert_eq!(from_utf16("serverId", &pair).ok().as_deref(), Some("a\u{1F600}b"));
        for lone in [&[0x61, 0xD800][..], &[0xDC00, 0x61], &[0xDBFF]] {
            let e = from_utf16("serverId", lone).err();
            assert!(e.is_some_and(|e| e.code() == "ERR_INVALID_ARG_VALUE" && e.to_string().contains("\"serverId\"")));
        }
        assert!(from_js_json("opts.claims", r#"{"a\ud800":1}"#).is_err());
        assert!(from_js_json("opts.claims", r#"{"a":"\udfff"}"#).is_err());
        assert_eq!(
            from_js_json("opts.claims", r#"{"a":"\ud83d\ude00"}"#).ok(),
            Some(serde_json::json!({"a": "\u{1F600}"}))
        );
    }
}
