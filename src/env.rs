//! The process environment, read in one place and one style: the working directory, the home
//! directory and the variables hoot-core honours. Keys, tokens and the store take an
//! `Environment`, so their tests give one of their own instead of changing the process's.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The private JWK file (Hoot's `private-key.json`).
pub const JWT_PRIVATE_KEY_PATH: &str = "JWT_PRIVATE_KEY_PATH";
/// The JWKS file (Hoot's `jwks.json`).
pub const JWT_JWKS_PATH: &str = "JWT_JWKS_PATH";
/// The default `portkey_oid` claim.
pub const PORTKEY_ORG_ID: &str = "PORTKEY_ORG_ID";
/// The default `portkey_workspace` claim.
pub const PORTKEY_WORKSPACE_SLUG: &str = "PORTKEY_WORKSPACE_SLUG";
/// The database file.
pub const HOOT_DB_PATH: &str = "HOOT_DB_PATH";
/// The home directory (`USERPROFILE` on Windows), under which `.hoot/` lives.
pub const HOME: &str = if cfg!(windows) { "USERPROFILE" } else { "HOME" };

/// Where values come from: the process, read when asked (so a variable set at run time, such
/// as `PORTKEY_ORG_ID`, counts at the next call), or fixed values for a test.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    fixed: Option<Fixed>,
}

#[derive(Debug, Clone, Default)]
struct Fixed {
    cwd: PathBuf,
    vars: HashMap<String, OsString>,
}

impl Environment {
    /// The running process's environment.
    pub fn process() -> Self {
        Environment { fixed: None }
    }

    /// An environment with no variables set, rooted in `cwd`.
    pub fn fixed(cwd: impl Into<PathBuf>) -> Self {
        Environment { fixed: Some(Fixed { cwd: cwd.into(), vars: HashMap::new() }) }
    }

    /// This environment with `name` set to `value` (only for a fixed one; the process's own
    /// variables are never changed).
    pub fn with_var(mut self, name: &str, value: impl Into<OsString>) -> Self {
        if let Some(fixed) = &mut self.fixed {
            fixed.vars.insert(name.to_string(), value.into());
        }
        self
    }

    fn var_os(&self, name: &str) -> Option<OsString> {
        let value = match &self.fixed {
            Some(fixed) => fixed.vars.get(name).cloned(),
            None => std::env::var_os(name),
        };
        // A variable set to nothing means "not set" (`HOOT_DB_PATH= node server.js`).
        value.filter(|v| !v.is_empty())
    }

    /// A variable's value, unless unset, empty or not Unicode.
    pub fn var(&self, name: &str) -> Option<String> {
        self.var_os(name).and_then(|v| v.into_string().ok())
    }

    /// A variable naming a path, unless unset or empty (any bytes the platform allows).
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.var_os(name).map(PathBuf::from)
    }

    /// The working directory relative paths are taken from (empty if it cannot be read).
    pub fn cwd(&self) -> PathBuf {
        match &self.fixed {
            Some(fixed) => fixed.cwd.clone(),
            None => std::env::current_dir().unwrap_or_default(),
        }
    }

    /// `path` taken from the working directory (an absolute path stays as it is).
    pub fn absolute(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.cwd().join(path)
        }
    }

    /// The home directory (`$HOME`, `%USERPROFILE%` on Windows), if set.
    pub fn home(&self) -> Option<PathBuf> {
        self.path(HOME)
    }

    /// `<home>/.hoot`, where the zero-config key and the default database live.
    pub fn hoot_dir(&self) -> Option<PathBuf> {
        self.home().map(|home| home.join(".hoot"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_environment_reads_only_its_own_values() {
        let env = Environment::fixed("/work").with_var(HOOT_DB_PATH, "db.sqlite").with_var(PORTKEY_ORG_ID, "");
        assert_eq!(env.var(HOOT_DB_PATH).as_deref(), Some("db.sqlite"));
        assert_eq!(env.var(PORTKEY_ORG_ID), None, "empty is unset");
        assert_eq!(env.home(), None, "the process's HOME is not consulted");
        assert_eq!(env.absolute(Path::new("keys")), PathBuf::from("/work/keys"));
        assert_eq!(env.absolute(Path::new("/etc/keys")), PathBuf::from("/etc/keys"));
        let env = env.with_var(HOME, "/home/u");
        assert_eq!(env.hoot_dir(), Some(PathBuf::from("/home/u/.hoot")));
    }

    #[test]
    fn the_process_environment_is_read_when_asked() {
        let env = Environment::process();
        assert_eq!(env.cwd(), std::env::current_dir().unwrap_or_default());
        assert_eq!(env.var("HOOT_CORE_TEST_SURELY_UNSET"), None);
        // `with_var` never changes the process.
        let env = env.with_var("HOOT_CORE_TEST_SURELY_UNSET", "x");
        assert_eq!(env.var("HOOT_CORE_TEST_SURELY_UNSET"), None);
    }
}
