//! Creating directories and files only this user can read: keys and OAuth credentials live in them.

use std::fs;
use std::io;
use std::path::Path;

/// Creates `dir` and its missing parents with mode 0700 (an existing directory is left as it is).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Opens options for a new file with mode 0600 that fails if the file exists.
pub fn new_private_file() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}
