// Any bytes as a token: verify_token must refuse them without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        assert!(hoot_core::token::verify_token(common::keys(), token, common::NOW, 0).is_err());
    }
});
