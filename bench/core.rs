//! The Rust core alone, with no Node in the way: what `bench/run.mjs` reports as the floor its
//! JavaScript figures stand on. `cargo bench --bench core` prints one JSON line of per-call
//! medians in microseconds.

use std::time::Instant;

use hoot_core::env::Environment;
use hoot_core::keys::{load_keys, KeyOptions};
use hoot_core::token::{issue_token, verify_token, IssueConfig, IssueOptions};

const COLD: usize = 1000;
const SIGN: usize = 100;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A UUID v4 that differs in its last 12 hex digits.
fn user(i: usize) -> String {
    format!("3b241101-e2bb-4255-8caf-{i:012x}")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("hoot-core-bench-{}", std::process::id()));
    let env = Environment::fixed(&dir);
    let keys = load_keys(&KeyOptions { key_dir: Some(dir.clone()), ..KeyOptions::default() }, &env)?;
    let config = IssueConfig::resolve(IssueOptions::default(), &env)?;
    let now = 1_800_000_000;
    let tokens = (0..COLD).map(|i| issue_token(&keys, &user(i), &config, now, None)).collect::<Result<Vec<_>, _>>()?;

    let rounds = std::env::var("CORE_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(7);
    let (mut verify, mut sign) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        for token in &tokens {
            verify_token(&keys, token, now, 0, hoot_core::revocation::refuses).map_err(|f| f.message)?;
        }
        verify.push(start.elapsed().as_secs_f64() * 1e6 / COLD as f64);
        let start = Instant::now();
        for i in 0..SIGN {
            issue_token(&keys, &user(i), &config, now, None)?;
        }
        sign.push(start.elapsed().as_secs_f64() * 1e6 / SIGN as f64);
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("{{\"verify_us\":{:.3},\"sign_us\":{:.3}}}", median(verify), median(sign));
    Ok(())
}
