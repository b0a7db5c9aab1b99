// Any text offered as a stored value: accepted exactly when it is one JSON object. serde_json's
// Value is the oracle, except where it is narrower than JSON itself: numbers past the range of a
// double, nesting past 128 levels and a lone surrogate escape (`\udb00`, which V8's JSON.stringify
// writes for a lone surrogate in a value) are valid JSON (JSON.parse reads them), and the store's
// check accepts them.
#![no_main]
use hoot_core::store::JsonObject;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let accepted = JsonObject::new(text.to_string(), "value").is_ok();
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => assert_eq!(accepted, value.is_object(), "{text:?}"),
        Err(e) if accepted => {
            let message = e.to_string();
            assert!(
                message.contains("number out of range")
                    || message.contains("recursion limit")
                    || message.contains("lone leading surrogate")
                    || message.contains("unexpected end of hex escape")
                    || message.contains("invalid unicode code point"),
                "{text:?}: {message}"
            );
            assert!(text.trim_start().starts_with('{'), "{text:?}");
        }
        Err(_) => {}
    }
});
