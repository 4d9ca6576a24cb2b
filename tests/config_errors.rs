//! Bad input: every error names its source, its key and what was expected.
//!
//! No test touches the process environment: variables are injected with
//! `ConfigOptions::env_vars`, directories are temporary.

use apphost::config::{ConfigError, ConfigOptions, parse_duration};

const NO_VARS: [(&str, &str); 0] = [];

/// Options with the sections `console::run` registers, so `load` checks them.
fn registered() -> ConfigOptions {
    ConfigOptions::default()
        .register(apphost::HostOptions::section())
        .register(apphost::logging::LoggingOptions::section())
        .register(apphost::console::ConsoleLifetimeOptions::section())
}

/// Loads a directory holding only `default.toml` with `text`; returns the
/// error and the file's path as it appears in messages.
fn load_default(text: &str) -> (ConfigError, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.toml");
    std::fs::write(&path, text).unwrap();
    let err = registered()
        .directory(dir.path())
        .env_vars(NO_VARS)
        .load()
        .expect_err("the configuration should be rejected");
    (err, path.display().to_string())
}

/// Asserts the full message is `"{file}: {rest}"` and the key is `key`.
fn assert_file_error(text: &str, key: Option<&str>, rest: &str) {
    let (err, file) = load_default(text);
    assert_eq!(err.source_name(), file);
    assert_eq!(err.key(), key);
    assert_eq!(err.to_string(), format!("{file}: {rest}"));
    assert_eq!(err.exit_code(), 78);
}

fn load_vars(vars: &[(&str, &str)]) -> ConfigError {
    registered()
        .default_directory("/nonexistent/apphost")
        .env_vars(vars.iter().copied())
        .load()
        .expect_err("the configuration should be rejected")
}

#[test]
fn named_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent");
    let err = registered()
        .directory(&missing)
        .env_vars(NO_VARS)
        .load()
        .unwrap_err();
    assert_eq!(err.source_name(), "value set in code");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn missing_directory_from_variable_names_the_variable() {
    let err = load_vars(&[("APPHOST_CONFIG_DIR", "/nonexistent/apphost/config")]);
    assert_eq!(
        err.to_string(),
        "APPHOST_CONFIG_DIR: configuration directory /nonexistent/apphost/config \
         does not exist or is not a directory"
    );
}

#[test]
fn named_missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("local.toml");
    let err = registered()
        .directory(dir.path())
        .file(&missing)
        .env_vars(NO_VARS)
        .load()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: file not found", missing.display())
    );
}

#[test]
fn string_for_bool_names_file_key_and_expectation() {
    assert_file_error(
        "[host]\nservices_start_concurrently = \"yes\"\n",
        Some("host.services_start_concurrently"),
        "host.services_start_concurrently: expected true or false, found \"yes\"",
    );
}

#[test]
fn integer_for_bool_is_a_wrong_type() {
    assert_file_error(
        "[host]\nservices_stop_concurrently = 1\n",
        Some("host.services_stop_concurrently"),
        "host.services_stop_concurrently: expected true or false, found integer `1`",
    );
}

#[test]
fn malformed_toml_names_file_and_line() {
    assert_file_error(
        "[host]\nshutdown_timeout = \"5s\"\nstartup_timeout = \n",
        None,
        "invalid TOML at line 3, column 19: string values must be quoted, expected literal string",
    );
}

#[test]
fn unknown_host_key_suggests_nearest() {
    assert_file_error(
        "[host]\nshutdown_timout = \"5s\"\n",
        Some("host.shutdown_timout"),
        "unknown key host.shutdown_timout; did you mean host.shutdown_timeout?",
    );
}

#[test]
fn unknown_host_key_far_from_any_lists_valid_keys() {
    let (err, _) = load_default("[host]\ncolour = \"blue\"\n");
    let text = err.to_string();
    assert!(
        text.contains("unknown key host.colour; expected one of host.shutdown_timeout, "),
        "{text}"
    );
    assert!(!text.contains("did you mean"), "{text}");
}

#[test]
fn negative_duration_is_rejected() {
    assert_file_error(
        "[host]\nshutdown_timeout = -5\n",
        Some("host.shutdown_timeout"),
        "host.shutdown_timeout: expected a non-negative duration, found -5",
    );
}

#[test]
fn float_nan_and_infinite_durations_are_rejected() {
    for (written, found) in [
        ("1.5", "1.5"),
        ("nan", "NaN"),
        ("inf", "inf"),
        ("\"2.5\"", "\"2.5\""),
    ] {
        assert_file_error(
            &format!("[host]\nshutdown_timeout = {written}\n"),
            Some("host.shutdown_timeout"),
            &format!(
                "host.shutdown_timeout: expected integer seconds or a string such as \"10s\" (a fraction needs a unit: \"1.5s\"), found {found}"
            ),
        );
    }
}

#[test]
fn absurd_durations_are_rejected_with_the_maximum() {
    for (written, found) in [
        ("\"366d\"", "\"366d\""),
        ("31536001", "31536001"),
        ("\"99999999999999999999s\"", "\"99999999999999999999s\""),
        ("\"99999999999999999999\"", "\"99999999999999999999\""),
        ("\"10000years\"", "\"10000years\""),
    ] {
        assert_file_error(
            &format!("[host]\nstartup_timeout = {written}\n"),
            Some("host.startup_timeout"),
            &format!(
                "host.startup_timeout: expected a duration of at most 365 days (the maximum), found {found}"
            ),
        );
    }
}

#[test]
fn garbage_and_empty_duration_strings_are_rejected() {
    let (err, file) = load_default("[host]\nshutdown_timeout = \"ten seconds\"\n");
    assert!(
        err.to_string().starts_with(&format!(
            "{file}: host.shutdown_timeout: expected a duration such as \"10s\" or integer seconds, \
             found \"ten seconds\""
        )),
        "{err}"
    );
    assert_file_error(
        "[host]\nshutdown_timeout = \"\"\n",
        Some("host.shutdown_timeout"),
        "host.shutdown_timeout: expected a duration such as \"10s\" or integer seconds, \
         found an empty string",
    );
}

#[test]
fn bad_exception_behavior_lists_choices() {
    assert_file_error(
        "[host]\nbackground_service_exception_behavior = \"restart\"\n",
        Some("host.background_service_exception_behavior"),
        "host.background_service_exception_behavior: expected \"stop_host\" or \"ignore\", found \"restart\"",
    );
}

#[test]
fn host_that_is_not_a_table_is_rejected() {
    assert_file_error(
        "host = 5\n",
        Some("host"),
        "host: expected a table of host options, found 5",
    );
}

#[test]
fn variable_errors_name_the_variable() {
    let err = load_vars(&[("APPHOST__HOST__SHUTDOWN_TIMEOUT", "soon")]);
    assert_eq!(err.source_name(), "APPHOST__HOST__SHUTDOWN_TIMEOUT");
    assert_eq!(err.key(), Some("host.shutdown_timeout"));
    assert!(err.to_string().starts_with(
        "APPHOST__HOST__SHUTDOWN_TIMEOUT: host.shutdown_timeout: expected a duration such as \"10s\""
    ));

    let err = load_vars(&[("APPHOST__HOST__SHUTDOWN_TIMOUT", "5s")]);
    assert_eq!(
        err.to_string(),
        "APPHOST__HOST__SHUTDOWN_TIMOUT: unknown key host.shutdown_timout; did you mean host.shutdown_timeout?"
    );

    let err = load_vars(&[("APPHOST__HOST__", "5s")]);
    assert_eq!(err.source_name(), "APPHOST__HOST__");
    assert!(
        err.to_string().contains("APPHOST__HOST__SHUTDOWN_TIMEOUT"),
        "{err}"
    );
}

#[test]
fn value_set_in_code_errors_say_so() {
    let err = registered()
        .default_directory("/nonexistent/apphost")
        .env_vars(NO_VARS)
        .set("host.services_start_concurrently", "maybe")
        .load()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "value set in code: host.services_start_concurrently: expected true or false, found \"maybe\""
    );
}

#[test]
fn bad_value_in_an_overridden_layer_is_still_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("default.toml"),
        "[host]\nshutdown_timeout = -1\n",
    )
    .unwrap();
    let err = registered()
        .directory(dir.path())
        .env_vars([("APPHOST__HOST__SHUTDOWN_TIMEOUT", "5s")])
        .load()
        .unwrap_err();
    assert!(err.source_name().ends_with("default.toml"), "{err}");
}

#[test]
fn bad_environment_name_is_rejected() {
    let err = load_vars(&[("APPHOST_ENVIRONMENT", "../etc")]);
    assert_eq!(err.source_name(), "APPHOST_ENVIRONMENT");
    assert!(
        err.to_string().contains("expected an environment name"),
        "{err}"
    );
}

#[test]
fn logging_errors_name_file_and_key() {
    assert_file_error(
        "[logging]\nformat = \"xml\"\n",
        Some("logging.format"),
        "logging.format: expected \"pretty\", \"compact\" or \"json\", found \"xml\"",
    );
    let (err, _) = load_default("[logging]\nfilter = \"info,=\"\n");
    assert_eq!(err.key(), Some("logging.filter"));
    assert!(
        err.to_string()
            .contains("expected a filter such as \"info\""),
        "{err}"
    );
    assert_file_error(
        "[logging]\nlevle = \"info\"\n",
        Some("logging.levle"),
        "unknown key logging.levle; did you mean logging.level?",
    );
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // only the errors are under test
struct Worker {
    #[serde(deserialize_with = "apphost::config::deserialize_duration")]
    interval: std::time::Duration,
    state_file: String,
}

fn worker_error(text: &str) -> (ConfigError, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.toml");
    std::fs::write(&path, text).unwrap();
    let config = registered()
        .directory(dir.path())
        .env_vars(NO_VARS)
        .load()
        .expect("[worker] is the service's business, not load's");
    let err = config.section::<Worker>("worker").unwrap_err();
    (err, path.display().to_string())
}

#[test]
fn worker_section_bad_field_names_file_key_and_expectation() {
    let (err, file) = worker_error("[worker]\ninterval = -3\nstate_file = \"s\"\n");
    assert_eq!(
        err.to_string(),
        format!("{file}: worker.interval: expected a non-negative duration, found -3")
    );

    let (err, file) = worker_error("[worker]\ninterval = 1\nstate_file = [\"a\"]\n");
    assert_eq!(err.source_name(), file);
    assert_eq!(err.key(), Some("worker.state_file"));
    assert!(err.to_string().contains("expected"), "{err}");
}

#[test]
fn worker_section_unknown_field_suggests_nearest() {
    let (err, file) = worker_error("[worker]\nintervall = 1\nstate_file = \"s\"\n");
    assert_eq!(
        err.to_string(),
        format!("{file}: unknown key worker.intervall; did you mean worker.interval?")
    );
}

#[test]
fn worker_section_missing_field_is_named() {
    let (err, _) = worker_error("[worker]\ninterval = 1\n");
    assert_eq!(err.key(), Some("worker.state_file"));
    assert!(
        err.to_string().contains("missing from every source"),
        "{err}"
    );
}

#[test]
fn parse_duration_never_panics() {
    let long = "9".repeat(10_000);
    let inputs = [
        "",
        " ",
        "-",
        "-0",
        "+5",
        "5",
        "5 5",
        "s",
        "1e9",
        "1e400",
        "-inf",
        "NaN",
        "0x10",
        "1.5.5s",
        "١٢s",
        "5ß",
        "🦀",
        "18446744073709551615",
        "18446744073709551616",
        "1ns",
        "9999999999d",
        "1m -1s",
        long.as_str(),
    ];
    for input in inputs {
        let result = std::panic::catch_unwind(|| parse_duration(input));
        assert!(result.is_ok(), "parse_duration panicked on {input:?}");
        if let Ok(Ok(d)) = result {
            assert!(d <= apphost::config::MAX_DURATION, "{input:?}");
        }
    }
    // Long inputs are shortened in messages.
    assert!(parse_duration(&long).unwrap_err().to_string().len() < 200);
}

#[test]
fn exit_code_is_ex_config() {
    assert_eq!(ConfigError::EXIT_CODE, 78);
    let (err, _) = load_default("not toml at all");
    assert_eq!(err.exit_code(), ConfigError::EXIT_CODE);
}
