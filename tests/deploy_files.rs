//! The deployment files under `examples/deploy/` stay valid: the production
//! configuration loads over `config/default.toml` with the keys the README's
//! deployment section describes, and its timings fit the supervisors'.

use std::time::Duration;

use apphost::config::ConfigOptions;
use apphost::console::ConsoleLifetimeOptions;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn production_config_loads_over_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("config/default.toml"),
        dir.path().join("default.toml"),
    )
    .unwrap();
    std::fs::copy(
        root().join("examples/deploy/production.toml"),
        dir.path().join("production.toml"),
    )
    .unwrap();
    let config = ConfigOptions::default()
        .directory(dir.path())
        .environment("production")
        .env_vars(Vec::<(String, String)>::new())
        .load()
        .unwrap();
    let host = config.host_options().unwrap();
    assert_eq!(host.shutdown_timeout, Duration::from_secs(8));
    let console: ConsoleLifetimeOptions = config.section("console").unwrap();
    assert_eq!(console.drain_delay, Duration::from_secs(3));
    assert!(console.drain_delay < host.shutdown_timeout);
    assert_eq!(
        console.readiness_file.as_deref(),
        Some(std::path::Path::new("/tmp/ready"))
    );
}

#[test]
fn supervisor_timeouts_exceed_the_shutdown_budget() {
    let unit = std::fs::read_to_string(root().join("examples/deploy/worker.service")).unwrap();
    assert!(unit.contains("TimeoutStopSec=15s"));
    assert!(unit.contains("Type=notify-reload"));
    // WorkingDirectory= under /var/lib needs systemd to create it.
    assert!(unit.contains("StateDirectory=apphost-worker"));
    assert!(unit.contains("WorkingDirectory=/var/lib/apphost-worker"));
    // It says what to use where Type=notify-reload is unknown (< 253).
    assert!(unit.contains("systemd >= 253"));
    assert!(unit.contains("#   Type=notify\n#   ExecReload=/bin/kill -HUP $MAINPID"));
    // No comment after a value: systemd would read it as part of the value.
    for line in unit.lines().filter(|l| !l.trim_start().starts_with('#')) {
        assert!(!line.contains(" #"), "a trailing comment: {line}");
    }
    assert!(unit.contains("RestartPreventExitStatus=78"));
    let pod = std::fs::read_to_string(root().join("examples/deploy/kubernetes.yaml")).unwrap();
    assert!(pod.contains("terminationGracePeriodSeconds: 15"));
    assert!(pod.contains("/tmp/ready"));
}
