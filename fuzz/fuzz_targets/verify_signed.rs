// Any header and claims bytes, signed with the real key, so the fuzzer reaches every check after
// the signature: the parsers, the duplicate and depth rules, the claim checks. Never a panic.
#![no_main]
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    // The first 0xff byte separates the header from the claims.
    let split = data.iter().position(|&b| b == 0xff).unwrap_or(data.len());
    let (header, claims) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let Ok(signature) = common::keys().sign(input.as_bytes()) else { return };
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
    if let Ok(claims_json) = hoot_core::token::verify_token(common::keys(), &token, common::NOW, 0) {
        // What verifies is what was signed, and its claims are a JSON object.
        assert_eq!(claims_json.as_bytes(), claims);
        assert!(serde_json::from_slice::<serde_json::Value>(claims).is_ok_and(|v| v.is_object()));
    }
});
