//! Files that hold secrets: creating directories and files only this user can read, opening a
//! file without ever blocking on something that is not one, and deciding whether a file someone
//! else could have written is to be trusted (OpenSSH's StrictModes).

use std::fs::{self, File, Metadata};
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

/// Opens options for a new file with mode 0600 that fails if anything, a dangling symbolic link
/// included, is at its name (`O_CREAT | O_EXCL` never follows a link).
pub fn new_private_file() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Whether anything is at `path`, a dangling symbolic link included (`Path::exists` follows links,
/// so it calls a dangling link absent).
pub fn is_present(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Opens `path` for reading if it is a regular file. A FIFO, a socket or a device is refused
/// without blocking: the file is opened non-blocking and checked on the open descriptor, so it
/// cannot be swapped for something else between a check and the open.
pub fn open_regular(path: &Path) -> io::Result<(File, Metadata)> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "it is not a regular file"));
    }
    Ok((file, meta))
}

/// The text of a secret file (an encryption key file, the store secret), read only when it is
/// trusted (`untrusted`) and readable by this user alone, and at most `limit` bytes of it.
/// `what` names the file in messages ("the encryption key file").
pub fn read_secret_text(path: &Path, what: &str, limit: u64) -> Result<String, crate::error::HootError> {
    use crate::error::HootError;
    let fail = |e: io::Error| HootError::Keys(format!("Cannot read {what} {}: {e}", path.display()));
    let (file, meta) = open_regular(path).map_err(fail)?;
    if let Some(problem) = untrusted(path, &meta, None) {
        return Err(HootError::Keys(format!("Refusing {what}: {problem}; chown or chmod it (0600)")));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(HootError::Keys(format!(
                "Refusing {what} {}: others can read it (mode {:o}); chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            )));
        }
    }
    let mut text = String::new();
    io::Read::read_to_string(&mut io::Read::take(file, limit), &mut text).map_err(fail)?;
    Ok(text)
}

/// Why a file that can forge every user's token (a private key, the JWKS that says which keys
/// verify) is not to be trusted, if it is not: the file, and each directory above it up to `home`
/// (when it is inside) or `/`, must be owned by this user or root and not writable by group or
/// others; a directory with the sticky bit (`/tmp`) is writable by others yet safe, since no one
/// may rename or remove another's entries in it.
pub fn untrusted(path: &Path, meta: &Metadata, home: Option<&Path>) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        let owned = |m: &Metadata| m.uid() == euid || m.uid() == 0;
        if !owned(meta) {
            return Some(format!("{} is owned by another user (uid {})", path.display(), meta.uid()));
        }
        if meta.mode() & 0o022 != 0 {
            return Some(format!("{} is writable by others (mode {:o})", path.display(), meta.mode() & 0o7777));
        }
        let home = home.and_then(|h| h.canonicalize().ok());
        let mut dir = path.parent().and_then(|p| p.canonicalize().ok());
        while let Some(current) = dir {
            let Ok(dir_meta) = fs::metadata(&current) else { break };
            if !owned(&dir_meta) {
                return Some(format!(
                    "its directory {} is owned by another user (uid {})",
                    current.display(),
                    dir_meta.uid()
                ));
            }
            if dir_meta.mode() & 0o022 != 0 && dir_meta.mode() & 0o1000 == 0 {
                let mode = dir_meta.mode() & 0o7777;
                return Some(format!("its directory {} is writable by others (mode {mode:o})", current.display()));
            }
            if home.as_deref() == Some(current.as_path()) {
                break;
            }
            dir = current.parent().map(Path::to_path_buf);
        }
        None
    }
    #[cfg(not(unix))]
    {
        let _ = (path, meta, home);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{temp_dir, TestResult};

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() -> TestResult {
        let fifo = temp_dir("fifo").join("private-key.json");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes())?;
        // SAFETY: `c_path` is a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let e = open_regular(&fifo).err().ok_or("opened a FIFO")?;
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn files_and_directories_others_can_write_are_not_trusted() -> TestResult {
        use std::os::unix::fs::PermissionsExt;
        let home = temp_dir("trust-home");
        let keys = home.join("keys");
        create_private_dir(&keys)?;
        let file = keys.join("private-key.json");
        fs::write(&file, "{}")?;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600))?;
        let check = || -> io::Result<Option<String>> { Ok(untrusted(&file, &fs::metadata(&file)?, Some(&home))) };
        assert_eq!(check()?, None);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o620))?;
        assert!(check()?.is_some_and(|why| why.contains("writable by others (mode 620)")));
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600))?;
        fs::set_permissions(&keys, fs::Permissions::from_mode(0o777))?;
        assert!(check()?.is_some_and(|why| why.contains("its directory") && why.contains("mode 777")));
        fs::set_permissions(&keys, fs::Permissions::from_mode(0o1777))?;
        assert_eq!(check()?, None, "a sticky directory is safe");
        // Above home nothing is looked at: home's own parent is the system temp directory.
        fs::set_permissions(&keys, fs::Permissions::from_mode(0o700))?;
        fs::set_permissions(&home, fs::Permissions::from_mode(0o757))?;
        assert!(check()?.is_some_and(|why| why.contains("mode 757")), "home itself is checked");
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700))?;
        Ok(())
    }
}
