// Any JSON as the private JWK and as the JWKS: loading refuses it with ERR_HOOT_KEYS, never a
// panic; then the same input as the JWKS next to a real private key, never a panic.
#![no_main]
use hoot_core::env::Environment;
use hoot_core::error::HootError;
use hoot_core::keys::{load_keys, KeyOptions};
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let env = Environment::fixed(std::env::temp_dir());
    let as_private =
        KeyOptions { private_key_jwk: Some(value.clone()), jwks: Some(value.clone()), ..KeyOptions::default() };
    assert!(matches!(load_keys(&as_private, &env), Err(HootError::Keys(_))));
    // Next to the real private key, the input is the JWKS: it may load only if it names that key.
    let private = common::keys_and_private_jwk().1.clone();
    let as_jwks = KeyOptions { private_key_jwk: Some(private), jwks: Some(value), ..KeyOptions::default() };
    let _ = load_keys(&as_jwks, &env);
});
