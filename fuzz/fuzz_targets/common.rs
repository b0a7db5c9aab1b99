// Shared by the fuzz targets: one key set, generated once per fuzzing process.
use std::sync::OnceLock;

use hoot_core::env::Environment;
use hoot_core::keys::{generate_keys, key_size, load_keys, KeyOptions, KeySet};

#[allow(dead_code)] // not every target verifies
pub const NOW: u64 = 1_800_000_000;

/// The fuzz key set, and its private JWK as Hoot's private-key.json holds it.
pub fn keys_and_private_jwk() -> &'static (KeySet, serde_json::Value) {
    static KEYS: OnceLock<(KeySet, serde_json::Value)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hoot-core-fuzz-{}", std::process::id()));
        let env = Environment::fixed(&dir);
        let generated = generate_keys(&dir, Some("fuzz-kid"), key_size(2048).unwrap_or_else(|| unreachable!()), None);
        let opts = KeyOptions { key_dir: Some(dir.clone()), generate_if_missing: Some(false), ..KeyOptions::default() };
        let keys = match generated.and_then(|_| load_keys(&opts, &env)) {
            Ok(keys) => keys,
            Err(e) => panic!("the fuzz key could not be made: {e}"),
        };
        let text = std::fs::read_to_string(dir.join("private-key.json")).unwrap_or_default();
        (keys, serde_json::from_str(&text).unwrap_or_default())
    })
}

#[allow(dead_code)] // not every target signs
pub fn keys() -> &'static KeySet {
    &keys_and_private_jwk().0
}
