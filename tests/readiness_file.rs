//! The readiness file is written without following links: a link planted
//! at its path between `ReadinessFile::attach` (which removes a stale file)
//! and the host's start does not make the service overwrite the link's
//! target.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;

use apphost::readiness::ReadinessFile;
use apphost::{CancellationToken, Host};

#[tokio::test]
async fn a_link_planted_between_attach_and_start_leaves_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = dir.path().join("ready");

    let host = Host::builder().build().unwrap();
    let _ready = ReadinessFile::attach(host.lifetime(), &path);
    // The window: the stale file is gone, the host has not started.
    std::os::unix::fs::symlink(&victim, &path).unwrap();

    host.start(CancellationToken::none()).await.unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the link was replaced by the file"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().trim(),
        std::process::id().to_string()
    );
    assert_eq!(meta.permissions().mode() & 0o111, 0);

    host.lifetime().stop_application();
    assert!(!path.exists());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    host.stop(CancellationToken::none()).await.unwrap();
}

#[tokio::test]
async fn a_link_planted_before_attach_is_removed_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let path = dir.path().join("ready");
    std::os::unix::fs::symlink(&victim, &path).unwrap();

    let host = Host::builder().build().unwrap();
    let _ready = ReadinessFile::attach(host.lifetime(), &path);
    assert!(
        std::fs::symlink_metadata(&path).is_err(),
        "the stale link is gone"
    );
    assert!(victim.exists(), "its target is not");
    host.start(CancellationToken::none()).await.unwrap();
    host.lifetime().stop_application();
    host.stop(CancellationToken::none()).await.unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}
