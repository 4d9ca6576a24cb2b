//! Bad configuration, as a deployed process meets it: every case exits with
//! 78 (`EX_CONFIG`) and one stderr line naming the file or variable, the key
//! and what was expected, and no service starts (the probe prints
//! `probe: start X` when one does).

#![cfg(unix)]

mod process_support;

use std::time::Duration;

use process_support::{Spawn, assert_absent};

/// Runs the probe with `spawn`'s configuration; asserts exit 78, no service
/// started, and one `configuration error` line containing every `expected`
/// fragment. Returns that line.
fn rejects(spawn: Spawn, expected: &[&str]) -> String {
    let mut probe = spawn.start();
    let (code, _) = probe.exit_code_within(Duration::from_secs(10));
    let lines = probe.lines();
    assert_eq!(code, 78, "output:\n{}", lines.join("\n"));
    assert_absent(&lines, "probe: start");
    assert_absent(&lines, "host starting");
    let errors: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("configuration error"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "one error line; output:\n{}",
        lines.join("\n")
    );
    for fragment in expected {
        assert!(
            errors[0].contains(fragment),
            "{fragment:?} missing from {:?}",
            errors[0]
        );
    }
    errors[0].clone()
}

fn file(text: &str) -> Spawn {
    Spawn::probe().file("default.toml", text)
}

#[test]
fn a_malformed_file_names_the_file_and_the_position() {
    let line = rejects(
        file("[host\nshutdown_timeout = 1\n"),
        &["default.toml", "invalid TOML at line 1"],
    );
    assert!(
        line.starts_with("probe_service: configuration error: "),
        "{line}"
    );
}

#[test]
fn a_wrong_type_names_the_file_and_the_key() {
    rejects(
        file("[host]\nservices_stop_concurrently = \"sometimes\"\n"),
        &[
            "default.toml",
            "host.services_stop_concurrently",
            "expected true or false",
            "\"sometimes\"",
        ],
    );
}

#[test]
fn an_unknown_key_suggests_the_nearest_one() {
    rejects(
        file("[host]\nshutdown_timout = \"1s\"\n"),
        &[
            "default.toml",
            "unknown key host.shutdown_timout",
            "did you mean host.shutdown_timeout?",
        ],
    );
}

#[test]
fn a_negative_duration_is_rejected() {
    rejects(
        file("[host]\nshutdown_timeout = -5\n"),
        &[
            "default.toml",
            "host.shutdown_timeout",
            "non-negative",
            "-5",
        ],
    );
}

#[test]
fn a_nan_duration_is_rejected() {
    rejects(
        file("[host]\nshutdown_timeout = nan\n"),
        &["default.toml", "host.shutdown_timeout", "NaN"],
    );
}

#[test]
fn an_absurd_duration_is_rejected_without_overflow() {
    rejects(
        file("[host]\nshutdown_timeout = \"1000000000000000000000s\"\n"),
        &["default.toml", "host.shutdown_timeout", "at most 365 days"],
    );
    rejects(
        file("[host]\nstartup_timeout = \"1000000d\"\n"),
        &["host.startup_timeout", "at most 365 days"],
    );
}

#[test]
fn a_bad_environment_variable_is_named() {
    rejects(
        Spawn::probe().env("APPHOST__HOST__SHUTDOWN_TIMEOUT", "banana"),
        &[
            "APPHOST__HOST__SHUTDOWN_TIMEOUT",
            "host.shutdown_timeout",
            "\"banana\"",
        ],
    );
    rejects(
        Spawn::probe().env("APPHOST__HOST__SHUTDWN_TIMEOUT", "1s"),
        &[
            "APPHOST__HOST__SHUTDWN_TIMEOUT",
            "did you mean host.shutdown_timeout?",
        ],
    );
}

#[test]
fn a_bad_value_in_the_environment_file_names_that_file() {
    rejects(
        Spawn::probe().file("production.toml", "[host]\nstartup_timeout = \"soon\"\n"),
        &["production.toml", "host.startup_timeout", "\"soon\""],
    );
}

#[test]
fn a_missing_named_config_directory_is_an_error() {
    rejects(
        Spawn::probe().env("APPHOST_CONFIG_DIR", "/no/such/apphost/dir"),
        &["APPHOST_CONFIG_DIR", "/no/such/apphost/dir"],
    );
}

#[test]
fn bad_logging_options_and_rust_log_are_configuration_errors() {
    rejects(
        file("[logging]\nformat = \"fancy\"\n"),
        &["default.toml", "logging.format", "\"fancy\""],
    );
    rejects(
        Spawn::probe().env("RUST_LOG", "info,="),
        &["RUST_LOG", "info,="],
    );
}

#[test]
fn a_bad_console_section_is_a_configuration_error() {
    rejects(
        file("[console]\nsupress_status_messages = true\n"),
        &[
            "default.toml",
            "did you mean console.suppress_status_messages?",
        ],
    );
}

#[test]
fn a_service_section_gets_the_same_quality_of_error() {
    rejects(
        file("[probe]\ntrivial = \"many\"\n"),
        &["default.toml", "probe.trivial", "\"many\""],
    );
    rejects(
        Spawn::probe().env("APPHOST__PROBE__TRIVAIL", "3"),
        &["APPHOST__PROBE__TRIVAIL", "did you mean probe.trivial?"],
    );
}

#[test]
fn a_misspelled_section_nobody_reads_is_a_configuration_error() {
    rejects(
        file("[hosts]\nshutdown_timeout = \"1s\"\n"),
        &["default.toml", "unknown section hosts; did you mean host?"],
    );
    rejects(
        file("[Host]\nshutdown_timeout = \"1s\"\n"),
        &["default.toml", "unknown section Host; did you mean host?"],
    );
}

#[test]
fn a_misspelled_variable_nobody_reads_is_a_configuration_error() {
    rejects(
        Spawn::probe().env("APPHOST__PROBES__TRIVIAL", "3"),
        &[
            "APPHOST__PROBES__TRIVIAL",
            "unknown section probes; did you mean probe?",
        ],
    );
}

#[test]
fn a_quoted_dotted_key_is_a_configuration_error_naming_the_file() {
    rejects(
        file("\"host.shutdown_timeout\" = \"1s\"\n"),
        &["default.toml", "key \"host.shutdown_timeout\"", "[host]"],
    );
}

#[test]
fn a_sub_nanosecond_duration_gives_the_real_reason() {
    rejects(
        file("[host]\nshutdown_timeout = \"0.0000000001s\"\n"),
        &["default.toml", "host.shutdown_timeout", "whole nanoseconds"],
    );
}

#[test]
fn a_reload_that_adds_a_section_nobody_reads_is_rejected_and_the_service_keeps_running() {
    use process_support::{SIGHUP, SIGTERM};
    let mut probe = file("[host]\nshutdown_timeout = \"5s\"\n").start();
    probe.wait_ready();
    std::fs::write(
        probe.dir().join("default.toml"),
        "[host]\nshutdown_timeout = \"5s\"\n[hosts]\nshutdown_timeout = \"1s\"\n",
    )
    .unwrap();
    probe.signal(SIGHUP);
    probe.wait_for("configuration reload rejected", Duration::from_secs(10));
    let lines = probe.lines();
    let rejected: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("configuration reload rejected"))
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(
        rejected[0].contains("ERROR")
            && rejected[0].contains("default.toml")
            && rejected[0].contains("unknown section hosts; did you mean host?"),
        "{rejected:?}"
    );
    assert!(probe.is_running(), "a bad reload must not stop the service");
    probe.signal(SIGTERM);
    let (code, _) = probe.exit_code_within(Duration::from_secs(10));
    assert_eq!(code, 0, "output:\n{}", probe.dump());
}
