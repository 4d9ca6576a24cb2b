//! Input that used to slip through or mislead: quoted dotted keys, control
//! characters in keys, and durations finer than a nanosecond or written
//! with a fraction.
//!
//! No test touches the process environment: variables are injected with
//! `ConfigOptions::env_vars`, directories are temporary.

use std::time::Duration;

use apphost::config::{ConfigError, ConfigOptions, DurationError, parse_duration};

const NO_VARS: [(&str, &str); 0] = [];

/// Loads `default.toml` holding `text` (with `vars`), `[host]` registered as
/// `console::run` does; returns the result and the file's path.
fn load(text: &str, vars: &[(&str, &str)]) -> (Result<(), ConfigError>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.toml");
    std::fs::write(&path, text).unwrap();
    let result = ConfigOptions::default()
        .directory(dir.path())
        .env_vars(vars.iter().copied())
        .register(apphost::HostOptions::section())
        .load()
        .and_then(|config| config.host_options().map(drop));
    (result, path.display().to_string())
}

// ===== quoted dotted keys =====

#[test]
fn quoted_dotted_key_at_top_level_is_rejected_naming_the_file() {
    let (result, file) = load("\"host.shutdown_timeout\" = \"1s\"\n", &NO_VARS);
    let err = result.unwrap_err();
    assert_eq!(err.source_name(), file);
    assert_eq!(
        err.to_string(),
        format!(
            "{file}: key \"host.shutdown_timeout\": expected a bare key (letters, digits, _ and -); a quoted key with a dot, a bracket or nothing in it is not allowed; write it as a table: [host] with shutdown_timeout = ..."
        )
    );
}

#[test]
fn quoted_dotted_key_with_a_table_value_is_reported_against_the_file() {
    let (result, file) = load("\"host.shutdown_timeout\" = { a = 1 }\n", &NO_VARS);
    let err = result.unwrap_err();
    assert_eq!(err.source_name(), file, "{err}");
}

#[test]
fn variable_overriding_a_quoted_dotted_key_does_not_hide_it() {
    let (result, file) = load(
        "\"host.shutdown_timeout\" = \"soon\"\n",
        &[("APPHOST__HOST__SHUTDOWN_TIMEOUT", "3s")],
    );
    assert_eq!(result.unwrap_err().source_name(), file);
}

#[test]
fn quoted_dotted_key_inside_a_section_is_rejected() {
    let (result, file) = load("[worker]\n\"a.b\" = 1\n", &NO_VARS);
    let err = result.unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{file}: key \"a.b\" in [worker]")),
        "{err}"
    );
}

#[test]
fn variable_with_a_dot_in_a_segment_is_rejected() {
    let (result, _) = load("", &[("APPHOST__HOST.X__Y", "1")]);
    assert_eq!(result.unwrap_err().source_name(), "APPHOST__HOST.X__Y");
}

// ===== one line =====

#[test]
fn key_with_an_escaped_newline_gives_a_one_line_message() {
    let (result, file) = load(
        "[host]\n\"shutdown\\nINFO forged log line\" = 1\n",
        &NO_VARS,
    );
    let message = result.unwrap_err().to_string();
    assert!(!message.contains('\n'), "{message}");
    assert_eq!(
        message,
        format!(
            "{file}: unknown key host.shutdown\\nINFO forged log line; expected one of host.shutdown_timeout, host.startup_timeout, host.services_start_concurrently, host.services_stop_concurrently, host.background_service_exception_behavior, host.report_file"
        )
    );
}

#[test]
fn control_characters_in_a_variable_name_and_value_are_escaped() {
    let (result, _) = load("", &[("APPHOST__HOST__SHUTDOWN_TIMEOUT", "1s\n\u{1b}[2J")]);
    let message = result.unwrap_err().to_string();
    assert!(!message.chars().any(char::is_control), "{message:?}");
}

#[test]
fn unknown_section_with_a_newline_in_its_name_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("default.toml"), "[\"a\\nb\"]\nx = 1\n").unwrap();
    let config = ConfigOptions::default()
        .directory(dir.path())
        .env_vars(NO_VARS)
        .load()
        .unwrap();
    let message = config.check_unread().unwrap_err().to_string();
    assert!(
        message.ends_with("unknown section a\\nb: no part of the program reads it"),
        "{message}"
    );
}

// ===== durations =====

#[test]
fn sub_nanosecond_fraction_is_rejected_for_its_precision_not_its_size() {
    for text in ["0.0000000001s", "2.999999999999s", "1.5ns"] {
        let err = parse_duration(text).unwrap_err();
        assert!(
            matches!(err, DurationError::TooPrecise { .. }),
            "{text}: {err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "expected a duration in whole nanoseconds, found {text:?} (a fraction finer than 1ns)"
            )
        );
    }
}

#[test]
fn sub_nanosecond_fraction_in_a_file_names_file_key_and_reason() {
    let (result, file) = load("[host]\nshutdown_timeout = \"2.999999999999s\"\n", &NO_VARS);
    assert_eq!(
        result.unwrap_err().to_string(),
        format!(
            "{file}: host.shutdown_timeout: expected a duration in whole nanoseconds, found \"2.999999999999s\" (a fraction finer than 1ns)"
        )
    );
}

#[test]
fn exact_fractions_with_a_unit_are_accepted() {
    let cases = [
        ("1.5s", Duration::from_millis(1500)),
        ("0.5m", Duration::from_secs(30)),
        ("0.0001h", Duration::from_millis(360)),
        ("1.25h", Duration::from_secs(4500)),
        ("2.5ms", Duration::from_micros(2500)),
        ("0.000000001s", Duration::from_nanos(1)),
        ("1.500000000000000000000s", Duration::from_millis(1500)),
        ("1m 0.5s", Duration::from_millis(60_500)),
        ("1m30s", Duration::from_secs(90)),
        ("364.5d", Duration::from_secs(364 * 86_400 + 43_200)),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_duration(text), Ok(expected), "{text}");
    }
}

#[test]
fn bare_fraction_without_unit_is_rejected_saying_to_add_one() {
    let err = parse_duration("1.5").unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected integer seconds or a string such as \"10s\" (a fraction needs a unit: \"1.5s\"), found \"1.5\""
    );
}

#[test]
fn too_large_stays_too_large() {
    for text in [
        "366d",
        "365.000000001d",
        "99999999999999999999999999999999999999999s",
        "1y",
    ] {
        assert!(
            matches!(parse_duration(text), Err(DurationError::TooLarge { .. })),
            "{text}"
        );
    }
    assert_eq!(
        parse_duration("365d").unwrap(),
        apphost::config::MAX_DURATION
    );
}

#[test]
fn malformed_durations_say_where() {
    let cases = [
        ("ten seconds", "expected a number at 0"),
        ("1.s", "expected a digit at 2"),
        ("5", ""),
        ("10 parsecs", "unknown unit \"parsecs\""),
        ("1s 2", "expected a unit such as \"s\" after \"2\""),
    ];
    for (text, reason) in cases {
        match parse_duration(text) {
            Ok(_) => assert!(reason.is_empty(), "{text} parsed"),
            Err(e) => assert!(e.to_string().contains(reason), "{text}: {e}"),
        }
    }
}

#[test]
fn table_where_a_value_belongs_is_reported_against_the_file() {
    let text = "[host]\nshutdown_timeout = { a = 1 }\n";
    let (result, file) = load(text, &NO_VARS);
    let err = result.unwrap_err();
    assert_eq!(err.source_name(), file, "{err}");
    assert_eq!(err.key(), Some("host.shutdown_timeout"));

    // Unregistered, read after load: the merged value still names the file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("default.toml"), text).unwrap();
    let err = ConfigOptions::default()
        .directory(dir.path())
        .env_vars(NO_VARS)
        .load()
        .unwrap()
        .host_options()
        .unwrap_err();
    assert!(err.source_name().ends_with("default.toml"), "{err}");
}
