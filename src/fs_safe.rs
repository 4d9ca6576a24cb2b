//! Writing files without following links: every file apphost writes (the
//! readiness file; the report file to come) goes through [`write_atomic`].
//!
//! A file written with a plain `fs::write` follows a symbolic link at its
//! path: a local user who can write the directory (a shared `/tmp`, as the
//! Kubernetes example's `/tmp/ready`) could plant a link there and have the
//! service truncate and overwrite a file of the link's choosing, with the
//! service's privileges.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Distinguishes the temporary files of one process.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Writes `bytes` to `path` without following a link at `path`: the bytes
/// go to a new temporary file in the same directory, created with
/// `O_CREAT | O_EXCL` (`create_new`, which fails rather than follow a link
/// or open a file someone planted) and mode `0o666` less the process umask,
/// which is then renamed over `path`. `rename(2)` replaces whatever `path`
/// is — a planted link included — and never writes through it. Readers see
/// either the old file or the whole new one.
///
/// The directory's own path is followed as given: it is the operator's
/// choice, not the attacker's.
///
/// # Errors
///
/// `path` has no file name, or creating, writing or renaming failed; the
/// temporary file is removed then.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    // A name taken (by an earlier crash, or planted) is skipped, not opened.
    let mut attempts = 0;
    let (temp, mut file) = loop {
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(
            ".{}.{}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let temp = dir.join(temp_name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&temp)
        {
            Ok(file) => break (temp, file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let written = file
        .write_all(bytes)
        .and_then(|()| file.flush())
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The process umask, from procfs (reading it through umask(2) would
    /// change it for the other tests running in parallel).
    fn umask() -> u32 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o022)
    }

    #[test]
    fn writes_a_new_file_within_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready");
        write_atomic(&path, b"42\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"42\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o666, 0, "no execute bits: {mode:o}");
        assert_eq!(mode & umask(), 0, "within the umask: {mode:o}");
        // Replaces an existing file; leaves no temporary file behind.
        write_atomic(&path, b"43\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"43\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_link_at_the_path_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("ready");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_atomic(&path, b"42\n").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file(), "the link itself was replaced");
        assert_eq!(std::fs::read(&path).unwrap(), b"42\n");
    }

    #[test]
    fn a_dangling_link_is_not_followed_either() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("created-by-the-link");
        let path = dir.path().join("ready");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        write_atomic(&path, b"42\n").unwrap();
        assert!(!target.exists(), "nothing created through the link");
    }

    #[test]
    fn a_path_without_a_file_name_is_an_error() {
        assert!(write_atomic(Path::new("/"), b"x").is_err());
        assert!(write_atomic(Path::new(""), b"x").is_err());
    }

    #[test]
    fn a_missing_directory_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/ready");
        assert!(write_atomic(&path, b"x").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
