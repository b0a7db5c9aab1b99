//! Shared fixtures for the Rust tests (crate::tests): temp directories and key pairs generated once per run.

use std::path::PathBuf;

use once_cell::sync::Lazy;

use crate::env::{Environment, HOME};
use crate::keys::{generate_keys, key_size, load_keys, GeneratedKeys, KeyOptions, KeySet};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hoot-core-{label}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// An environment with no variables set, rooted in `cwd`, with `home` as the home directory.
pub fn env_in(cwd: &std::path::Path, home: Option<&std::path::Path>) -> Environment {
    let env = Environment::fixed(cwd);
    match home {
        Some(home) => env.with_var(HOME, home),
        None => env,
    }
}

/// One RSA-2048 key pair written as Hoot's files (generation takes a while, so it is shared).
pub static PAIR: Lazy<GeneratedKeys> = Lazy::new(|| {
    let dir = temp_dir("pair");
    let size = key_size(2048).unwrap_or_else(|| panic!("2048 is a supported size"));
    generate_keys(&dir, Some("test-kid"), size, None).unwrap_or_else(|e| panic!("key generation failed: {e}"))
});

/// A second, different key pair, for rotation and mismatch tests.
pub static OTHER_PAIR: Lazy<GeneratedKeys> = Lazy::new(|| {
    let dir = temp_dir("other");
    let size = key_size(2048).unwrap_or_else(|| panic!("2048 is a supported size"));
    generate_keys(&dir, Some("other-kid"), size, None).unwrap_or_else(|e| panic!("key generation failed: {e}"))
});

pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The shared pair loaded as a key set.
pub static KEYS: Lazy<KeySet> = Lazy::new(|| {
    let opts = KeyOptions {
        private_key_jwk: Some(read_json(&PAIR.private_key_path)),
        jwks: Some(read_json(&PAIR.jwks_path)),
        ..KeyOptions::default()
    };
    load_keys(&opts, &env_in(&std::env::temp_dir(), None)).unwrap_or_else(|e| panic!("loading test keys: {e}"))
});

/// Any JSON value, nested a few levels: the input of the property tests that parse JSON.
pub fn any_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        "[A-Za-z0-9_-]{0,400}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,3}|kty|n|e|d|p|q|dp|dq|qi|kid|alg|use|keys|oth", inner, 0..10)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// The closed code sets, written in three places: Rust, the types and the README's error table.

use crate::error::{HootError, ERROR_CODES};
use crate::token::FailureCode;

/// The members of `export type <name> =` in a d.ts text.
fn union_members(dts: &str, name: &str) -> Vec<String> {
    let start = dts.find(&format!("export type {name} =")).unwrap_or_else(|| panic!("no type {name}"));
    dts[start..]
        .lines()
        .skip(1)
        .map_while(|line| line.trim().strip_prefix("| '"))
        .map(|member| member.trim_end_matches('\'').to_string())
        .collect()
}

/// The part of `text` from the line `heading` to the next `## ` heading.
fn section<'t>(text: &'t str, heading: &str) -> &'t str {
    let start = text.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("no {heading} section"));
    let section = &text[start + 1..];
    &section[..section[1..].find("\n## ").map_or(section.len(), |end| end + 1)]
}

/// The codes in the first column of the README's "Errors" tables.
fn readme_codes() -> Vec<String> {
    section(include_str!("../README.md"), "## Errors")
        .lines()
        .filter_map(|l| l.strip_prefix("| `ERR_"))
        .map(|l| format!("ERR_{}", &l[..l.find('`').unwrap_or(0)]))
        .collect()
}

#[test]
fn the_code_sets_agree_in_rust_the_types_and_the_readme() {
    let dts = include_str!("../lib/header.d.ts");
    let failure_codes: Vec<&str> = FailureCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(union_members(dts, "HootErrorCode"), ERROR_CODES);
    assert_eq!(union_members(dts, "VerifyFailureCode"), failure_codes);
    let mut both: Vec<&str> = ERROR_CODES.to_vec();
    both.extend(&failure_codes);
    assert_eq!(readme_codes(), both, "the README's tables, thrown codes then verifyToken's");
    // Every variant's code is in the list, and every listed code has a variant.
    let variants = [
        HootError::arg_type("x", "y", "z"),
        HootError::arg_value("x", "y"),
        HootError::invalid_user_id("", ""),
        HootError::TransferCode,
        HootError::TransferThrottled { retry_after: 1 },
        HootError::Keys(String::new()),
        HootError::Db(String::new()),
        HootError::Internal(String::new()),
    ];
    assert_eq!(variants.iter().map(HootError::code).collect::<Vec<_>>(), ERROR_CODES);
}

/// The event types in the first column of docs/api.md's table under "### onEvent".
fn documented_events() -> Vec<String> {
    section(include_str!("../docs/api.md"), "### onEvent")
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let first = l[2..].split(" |").next().unwrap_or("");
            first.split(" / ").map(|name| name.trim_matches('`').to_string()).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_event_types_agree_in_rust_the_types_and_the_docs() {
    let dts = include_str!("../lib/index.d.ts");
    assert_eq!(union_members(dts, "HootEventType"), crate::events::EVENT_TYPES);
    assert_eq!(documented_events(), crate::events::EVENT_TYPES);
}

/// The floors of the crate, lowest first: a module may use only its own floor's and lower ones',
/// and the two backends (floor 4) never use each other.
const FLOORS: [&[&str]; 7] = [
    &[
        "error",
        "clock",
        "env",
        "text",
        "private_fs",
        "ids",
        "test_panic",
        "TEST_PANIC_ID",
        "events",
        "metrics",
        "store_timing",
    ],
    &["keys", "sealing", "secret", "token"],
    &["active", "revocation", "touch"],
    &["store"],
    &["sqlite", "pg"],
    &["copy"],
    &["binding"],
];

fn floor_of(module: &str) -> Option<usize> {
    FLOORS.iter().position(|floor| floor.contains(&module))
}

/// `text` without its comments and the contents of its string and character literals (each
/// replaced by spaces, so lines keep their numbers): a path in a comment or a string is no use.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    // Skips to the end of a literal, keeping its newlines; `close` ends it.
    let skip = |i: &mut usize, out: &mut String, close: &dyn Fn(&[char]) -> Option<usize>, escapes: bool| {
        while *i < chars.len() {
            if let Some(len) = close(&chars[*i..]) {
                *i += len;
                return;
            }
            match chars[*i] {
                '\\' if escapes => *i += 2,
                '\n' => {
                    out.push('\n');
                    *i += 1;
                }
                _ => *i += 1,
            }
        }
    };
    while i < chars.len() {
        let (c, next) = (chars[i], chars.get(i + 1).copied());
        let word_before = i > 0 && (chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == 'r' && !word_before && matches!(next, Some('"') | Some('#')) {
            let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            i += hashes + 2;
            let close = move |rest: &[char]| {
                (rest.first() == Some(&'"') && rest.len() > hashes && rest[1..=hashes].iter().all(|&c| c == '#'))
                    .then_some(hashes + 1)
            };
            skip(&mut i, &mut out, &close, false);
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            skip(&mut i, &mut out, &|rest: &[char]| (rest.first() == Some(&'"')).then_some(1), true);
            out.push_str("\"\"");
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A character literal ('"', '\n', '\''); a lifetime ('a) has no closing quote there.
            i += 1;
            skip(&mut i, &mut out, &|rest: &[char]| (rest.first() == Some(&'\'')).then_some(1), true);
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The top-level module each path a source file names outside its tests leads to, with the line
/// it is on: `crate::x`, and `super::` paths resolved from the file's own module (`module`, its
/// path from the crate root: `["store", "user"]` for src/store/user.rs, `["token"]` for
/// src/token.rs and for src/token/mod.rs).
fn used_modules(text: &str, module: &[String]) -> Vec<(usize, String)> {
    let code = code_only(text);
    // Test code may reach anything (fixtures): an inline `mod tests { ... }` is cut, and it must
    // be the file's end.
    let code = code.split("#[cfg(test)]\nmod tests {").next().unwrap_or(&code);
    let ident =
        |rest: &str| -> String { rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        for (at, _) in line.match_indices("crate::") {
            if line[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
                continue; // `hoot_crate::`, `$crate::`
            }
            found.push((n + 1, ident(&line[at + 7..])));
        }
        let mut rest = line;
        while let Some(at) = rest.find("super::") {
            if rest[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                rest = &rest[at + 7..];
                continue; // the middle of a chain, counted with its first `super::`
            }
            let mut depth = 0;
            let mut tail = &rest[at..];
            while let Some(after) = tail.strip_prefix("super::") {
                depth += 1;
                tail = after;
            }
            let base = module.len().saturating_sub(depth);
            let top = if base == 0 { ident(tail) } else { module[0].clone() };
            found.push((n + 1, top));
            rest = tail;
        }
    }
    found.retain(|(_, name)| name != "tests" && !name.is_empty());
    found
}

/// Every source file of `dir`, and every `tests.rs`, which must be declared under `#[cfg(test)]`
/// by the file that names it.
fn rust_files(dir: &std::path::Path, out: &mut Vec<PathBuf>, tests: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())).flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out, tests);
        } else if path.file_name().is_some_and(|n| n == "tests.rs") {
            tests.push(path);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn each_module_uses_only_the_floors_below_it_and_the_backends_never_use_each_other() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let (mut files, mut tests) = (Vec::new(), Vec::new());
    rust_files(&src, &mut files, &mut tests);
    let mut wrong = Vec::new();
    for test in &tests {
        // src/x/tests.rs is named by src/x.rs or src/x/mod.rs; src/tests.rs by src/lib.rs.
        let dir = test.parent().unwrap_or(&src);
        let parents = match dir == src.as_path() {
            true => vec![src.join("lib.rs")],
            false => vec![dir.join("mod.rs"), dir.with_extension("rs")],
        };
        let declared = parents.iter().filter_map(|p| std::fs::read_to_string(p).ok()).any(|text| {
            text.contains("#[cfg(test)]\nmod tests;") || text.contains("#[cfg(test)]\npub(crate) mod tests;")
        });
        if !declared {
            wrong.push(format!("{}: not declared under #[cfg(test)], so it may not reach any floor", test.display()));
        }
    }
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap_or(file);
        let mut path: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if path.last().is_some_and(|last| last == "mod") {
            path.pop();
        }
        let Some(module) = path.first().cloned() else { continue };
        if module == "lib" {
            continue;
        }
        let Some(own) = floor_of(&module) else {
            wrong.push(format!("{}: module `{module}` has no floor in FLOORS", relative.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        for (line, used) in used_modules(&text, &path) {
            match floor_of(&used) {
                None => wrong.push(format!("{}:{line}: `crate::{used}` has no floor in FLOORS", relative.display())),
                Some(floor) if floor > own => wrong.push(format!(
                    "{}:{line}: `{module}` (floor {own}) uses `crate::{used}` (floor {floor}): an arrow upwards",
                    relative.display()
                )),
                Some(floor) if floor == own && floor == 4 && used != module => wrong.push(format!(
                    "{}:{line}: the backend `{module}` uses the backend `{used}`: only `copy` sees both",
                    relative.display()
                )),
                Some(_) => {}
            }
        }
    }
    assert!(wrong.is_empty(), "the layering is broken:\n{}", wrong.join("\n"));
}
