//! A readiness file for exec and file probes (containers, Kubernetes).
//!
//! [`ReadinessFile`] creates a file once the host has started and removes it
//! as soon as stopping begins, so a probe such as
//! `test -f /run/app/ready` sees "not ready" before the services start to
//! drain. Its content is the process id, for humans.
//!
//! The file is written without following links — a new temporary file in
//! the same directory (`O_CREAT | O_EXCL`, mode `0o666` less the umask)
//! renamed into place — so a local user who can write the directory (a
//! shared `/tmp`) cannot plant a link at the path and have the service
//! overwrite another file. Removing it removes a link, never its target.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::host::ApplicationLifetime;

/// Keeps a file in existence exactly while the application is started and
/// not stopping. See the [module docs](self).
///
/// # Examples
///
/// ```
/// use apphost::{CancellationToken, Host};
/// use apphost::readiness::ReadinessFile;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("ready");
/// let host = Host::builder().build()?;
/// let _ready = ReadinessFile::attach(host.lifetime(), &path);
///
/// host.start(CancellationToken::none()).await?;
/// assert!(path.exists());
/// host.lifetime().stop_application();
/// assert!(!path.exists(), "removed as soon as stopping begins");
/// host.stop(CancellationToken::none()).await?;
/// # Ok(())
/// # }
/// ```
pub struct ReadinessFile {
    path: PathBuf,
}

impl ReadinessFile {
    /// Creates the file at `path` when `lifetime` has started (unless it is
    /// already stopping) and removes it when stopping begins. A stale file
    /// left by an earlier run is removed now. Failures are logged, never
    /// fatal: a probe then reports not-ready, which is the safe side.
    ///
    /// # Examples
    ///
    /// ```
    /// let host = apphost::Host::builder().build().unwrap();
    /// let dir = tempfile::tempdir().unwrap();
    /// let ready = apphost::readiness::ReadinessFile::attach(host.lifetime(), dir.path().join("ready"));
    /// assert!(!ready.path().exists());
    /// ```
    pub fn attach(lifetime: &ApplicationLifetime, path: impl Into<PathBuf>) -> ReadinessFile {
        let path = path.into();
        remove(&path);
        {
            let (path, stopping) = (path.clone(), lifetime.stopping());
            lifetime
                .started()
                .register(move || {
                    if stopping.is_cancelled() {
                        return;
                    }
                    let content = format!("{}\n", std::process::id());
                    // Never through a link planted at the path since the
                    // removal above (a shared /tmp): see `fs_safe`.
                    match crate::fs_safe::write_atomic(&path, content.as_bytes()) {
                        Ok(()) => tracing::debug!(target: "apphost::readiness", path = %path.display(), "readiness file created"),
                        Err(error) => tracing::warn!(target: "apphost::readiness", path = %path.display(), "could not create the readiness file: {error}"),
                    }
                })
                .detach();
        }
        {
            let path = path.clone();
            lifetime.stopping().register(move || remove(&path)).detach();
        }
        ReadinessFile { path }
    }

    /// The file's path.
    ///
    /// # Examples
    ///
    /// ```
    /// let host = apphost::Host::builder().build().unwrap();
    /// let ready = apphost::readiness::ReadinessFile::attach(host.lifetime(), "/tmp/apphost-doc-ready");
    /// assert_eq!(ready.path(), std::path::Path::new("/tmp/apphost-doc-ready"));
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for ReadinessFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadinessFile")
            .field("path", &self.path)
            .finish()
    }
}

fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {
            tracing::debug!(target: "apphost::readiness", path = %path.display(), "readiness file removed")
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(target: "apphost::readiness", path = %path.display(), "could not remove the readiness file: {error}")
        }
    }
}
