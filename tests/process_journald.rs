//! Logs under journald: when `JOURNAL_STREAM` names the process's stderr
//! (as systemd sets it), every line starts with its syslog priority and has
//! no timestamp of its own; when it names another file (inherited, stderr
//! redirected), nothing changes. Real processes; every wait is bounded.
//! `tests/process_systemd_real.rs` checks the same through real journald.

#![cfg(unix)]

mod process_support;

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use process_support::example;

/// Runs the probe with stderr to a file; `journal_stream` computes the
/// variable's value from that file's device and inode. Stops it with
/// SIGTERM once READY; returns stderr's text.
fn probe_stderr(journal_stream: impl Fn(u64, u64) -> String) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("default.toml"),
        "[host]\nshutdown_timeout = \"5s\"\n[probe]\nservices = \"A\"\n",
    )
    .unwrap();
    let path = dir.path().join("stderr.log");
    let file = std::fs::File::create(&path).unwrap();
    let meta = file.metadata().unwrap();
    let mut child = Command::new(example("probe_service"))
        .env_clear()
        .env("APPHOST_CONFIG_DIR", dir.path())
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env("JOURNAL_STREAM", journal_stream(meta.dev(), meta.ino()))
        // Makes the console log a warning at start-up.
        .env("WATCHDOG_USEC", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&path)
        .unwrap()
        .contains("probe: READY")
    {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("never READY: {}", std::fs::read_to_string(&path).unwrap());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not exit: {}", std::fs::read_to_string(&path).unwrap());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(status.code(), Some(0), "{text}");
    text
}

#[test]
fn journal_stream_naming_stderr_gives_priority_prefixes_and_no_timestamps() {
    let text = probe_stderr(|dev, ino| format!("{dev}:{ino}"));
    let logged: Vec<&str> = text.lines().filter(|l| !l.starts_with("probe: ")).collect();
    assert!(!logged.is_empty(), "{text}");
    for line in &logged {
        assert!(
            line.starts_with('<'),
            "no priority prefix: {line:?}\n{text}"
        );
        assert!(!line.contains("Z "), "a timestamp: {line:?}");
    }
    assert!(
        logged
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("Application started")),
        "{text}"
    );
    assert!(
        logged
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("received signal 15")),
        "{text}"
    );
    assert!(
        logged
            .iter()
            .any(|l| l.starts_with("<4>") && l.contains("WATCHDOG_USEC=0")),
        "{text}"
    );
}

#[test]
fn journal_stream_naming_another_file_changes_nothing() {
    let text = probe_stderr(|dev, ino| format!("{dev}:{}", ino + 1));
    let started = text
        .lines()
        .find(|l| l.contains("Application started"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(!started.starts_with('<'), "{started}");
    assert!(started.starts_with("20"), "the timestamp stays: {started}");
}
