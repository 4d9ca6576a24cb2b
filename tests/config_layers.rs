//! Layering: which source wins, and every accepted spelling of a value.
//!
//! No test touches the process environment: variables are injected with
//! `ConfigOptions::env_vars`, directories are temporary.

use std::path::Path;
use std::time::Duration;

use apphost::config::{ConfigOptions, Configuration};
use apphost::logging::{LogFormat, LoggingOptions};
use apphost::{BackgroundServiceExceptionBehavior, HostOptions};

const NO_VARS: [(&str, &str); 0] = [];

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// Options reading only `dir` and the given variables.
fn options_in(dir: &Path) -> ConfigOptions {
    ConfigOptions::default().directory(dir).env_vars(NO_VARS)
}

fn shutdown_timeout(config: &Configuration) -> Duration {
    config.host_options().unwrap().shutdown_timeout
}

#[test]
fn empty_configuration_has_all_defaults() {
    let config = Configuration::empty();
    assert_eq!(config.host_options().unwrap(), HostOptions::default());
    assert_eq!(config.logging_options().unwrap(), LoggingOptions::default());
    assert_eq!(config.environment(), "production");
    assert!(config.sources().is_empty());
}

#[test]
fn empty_directory_gives_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = options_in(dir.path()).load().unwrap();
    assert_eq!(config.directory(), Some(dir.path()));
    assert_eq!(config.host_options().unwrap(), HostOptions::default());
    assert!(config.sources().is_empty());
}

#[test]
fn missing_default_directory_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigOptions::default()
        .default_directory(dir.path().join("absent"))
        .env_vars(NO_VARS)
        .load()
        .unwrap();
    assert_eq!(config.directory(), None);
    assert_eq!(config.host_options().unwrap(), HostOptions::default());
}

#[test]
fn repository_default_toml_states_the_built_in_defaults() {
    // Tests run in the package root, so `./config` is the repository's.
    let config = ConfigOptions::default().env_vars(NO_VARS).load().unwrap();
    assert_eq!(config.directory(), Some(Path::new("config")));
    assert_eq!(config.host_options().unwrap(), HostOptions::default());
    assert_eq!(config.logging_options().unwrap(), LoggingOptions::default());

    // It holds only what the console runner reads, so every program passes
    // the unread-section check with it.
    let _: apphost::console::ConsoleLifetimeOptions = config.section("console").unwrap();
    config.check_unread().unwrap();
}

#[test]
fn production_file_overrides_default_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "default.toml",
        "[host]\nshutdown_timeout = \"10s\"\nstartup_timeout = \"30s\"\n",
    );
    write(
        dir.path(),
        "production.toml",
        "[host]\nshutdown_timeout = \"20s\"\n",
    );
    write(
        dir.path(),
        "development.toml",
        "[host]\nshutdown_timeout = \"1s\"\n",
    );
    let config = options_in(dir.path()).load().unwrap();
    let host = config.host_options().unwrap();
    assert_eq!(host.shutdown_timeout, Duration::from_secs(20));
    // Keys the later file does not set keep the earlier file's values.
    assert_eq!(host.startup_timeout, Some(Duration::from_secs(30)));
    let default = dir.path().join("default.toml").display().to_string();
    let production = dir.path().join("production.toml").display().to_string();
    assert_eq!(config.sources(), [default, production]);
}

#[test]
fn development_file_chosen_by_builder_or_variable() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "default.toml",
        "[host]\nshutdown_timeout = 10\n",
    );
    write(
        dir.path(),
        "development.toml",
        "[host]\nshutdown_timeout = 2\n",
    );

    let by_builder = options_in(dir.path())
        .environment("Development")
        .load()
        .unwrap();
    assert_eq!(by_builder.environment(), "development");
    assert_eq!(shutdown_timeout(&by_builder), Duration::from_secs(2));

    let by_variable = ConfigOptions::default()
        .directory(dir.path())
        .env_vars([("APPHOST_ENVIRONMENT", "development")])
        .load()
        .unwrap();
    assert_eq!(shutdown_timeout(&by_variable), Duration::from_secs(2));

    // The builder beats the variable.
    let both = ConfigOptions::default()
        .directory(dir.path())
        .environment("production")
        .env_vars([("APPHOST_ENVIRONMENT", "development")])
        .load()
        .unwrap();
    assert_eq!(shutdown_timeout(&both), Duration::from_secs(10));
}

#[test]
fn config_dir_variable_selects_directory() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "default.toml", "[host]\nshutdown_timeout = 4\n");
    let config = ConfigOptions::default()
        .env_vars([("APPHOST_CONFIG_DIR", dir.path().to_str().unwrap())])
        .load()
        .unwrap();
    assert_eq!(config.directory(), Some(dir.path()));
    assert_eq!(shutdown_timeout(&config), Duration::from_secs(4));
}

#[test]
fn environment_variable_overrides_files() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "default.toml",
        "[host]\nshutdown_timeout = \"10s\"\n",
    );
    write(
        dir.path(),
        "production.toml",
        "[host]\nshutdown_timeout = \"20s\"\n",
    );
    let config = options_in(dir.path())
        .env_vars([
            ("APPHOST__HOST__SHUTDOWN_TIMEOUT", "30s"),
            ("APPHOST__HOST__SERVICES_START_CONCURRENTLY", "true"),
            ("UNRELATED__HOST__SHUTDOWN_TIMEOUT", "nonsense"),
        ])
        .load()
        .unwrap();
    let host = config.host_options().unwrap();
    assert_eq!(host.shutdown_timeout, Duration::from_secs(30));
    assert!(host.services_start_concurrently);
    assert!(
        config
            .sources()
            .contains(&"environment variable APPHOST__HOST__SHUTDOWN_TIMEOUT".to_owned())
    );
}

#[test]
fn value_set_in_code_overrides_environment() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "default.toml",
        "[host]\nshutdown_timeout = \"10s\"\n",
    );
    let config = options_in(dir.path())
        .env_vars([("APPHOST__HOST__SHUTDOWN_TIMEOUT", "30s")])
        .set("host.shutdown_timeout", "40s")
        .set("host.shutdown_timeout", "45s") // the later call wins
        .load()
        .unwrap();
    assert_eq!(shutdown_timeout(&config), Duration::from_secs(45));
    assert_eq!(
        config.sources().last().unwrap(),
        "value set in code: host.shutdown_timeout"
    );
}

#[test]
fn explicit_file_is_read_after_environment_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "production.toml",
        "[host]\nshutdown_timeout = 20\n",
    );
    write(dir.path(), "local.toml", "[host]\nshutdown_timeout = 21\n");
    let config = options_in(dir.path())
        .file(dir.path().join("local.toml"))
        .load()
        .unwrap();
    assert_eq!(shutdown_timeout(&config), Duration::from_secs(21));
}

#[test]
fn custom_prefix_reads_only_its_variables() {
    let config = ConfigOptions::default()
        .default_directory("/nonexistent/apphost")
        .env_prefix("MYAPP")
        .env_vars([
            ("MYAPP__HOST__SHUTDOWN_TIMEOUT", "3s"),
            ("APPHOST__HOST__SHUTDOWN_TIMEOUT", "nonsense"),
            ("MYAPP_ENVIRONMENT", "staging"),
        ])
        .load()
        .unwrap();
    assert_eq!(shutdown_timeout(&config), Duration::from_secs(3));
    assert_eq!(config.environment(), "staging");
}

#[test]
fn duration_forms_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    for (written, expected) in [
        ("\"10s\"", Duration::from_secs(10)),
        ("\"1m 30s\"", Duration::from_secs(90)),
        ("\"250ms\"", Duration::from_millis(250)),
        ("\"0s\"", Duration::ZERO),
        ("7", Duration::from_secs(7)),
        ("0", Duration::ZERO),
        ("\"365d\"", apphost::config::MAX_DURATION),
    ] {
        write(
            dir.path(),
            "default.toml",
            &format!("[host]\nshutdown_timeout = {written}\n"),
        );
        let config = options_in(dir.path()).load().unwrap();
        assert_eq!(shutdown_timeout(&config), expected, "{written}");
    }
    // Variables are strings: bare digits still mean seconds.
    let config = options_in(dir.path())
        .env_vars([("APPHOST__HOST__SHUTDOWN_TIMEOUT", "7")])
        .load()
        .unwrap();
    assert_eq!(shutdown_timeout(&config), Duration::from_secs(7));
}

#[test]
fn startup_timeout_none_or_infinite_means_no_limit() {
    for word in ["none", "infinite", "Infinite", "NONE"] {
        let config = ConfigOptions::default()
            .env_vars(NO_VARS)
            .default_directory("/nonexistent/apphost")
            .set("host.startup_timeout", "1s")
            .set("host.startup_timeout", word)
            .load()
            .unwrap();
        assert_eq!(
            config.host_options().unwrap().startup_timeout,
            None,
            "{word}"
        );
    }
}

#[test]
fn exception_behavior_spellings() {
    use BackgroundServiceExceptionBehavior::{Ignore, StopHost};
    for (written, expected) in [
        ("stop_host", StopHost),
        ("StopHost", StopHost),
        ("STOP_HOST", StopHost),
        ("ignore", Ignore),
        ("Ignore", Ignore),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "default.toml",
            &format!("[host]\nbackground_service_exception_behavior = \"{written}\"\n"),
        );
        let host = options_in(dir.path())
            .load()
            .unwrap()
            .host_options()
            .unwrap();
        assert_eq!(
            host.background_service_exception_behavior, expected,
            "{written}"
        );
    }
}

#[test]
fn logging_section_with_level_alias_across_layers() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "default.toml",
        "[logging]\nfilter = \"info\"\nformat = \"pretty\"\n",
    );
    // `LEVEL` in a later layer replaces `filter` from an earlier one: the
    // registered section renames the alias in each layer before merging.
    let config = options_in(dir.path())
        .env_vars([("APPHOST__LOGGING__LEVEL", "warn,apphost=debug")])
        .register(LoggingOptions::section())
        .load()
        .unwrap();
    let logging = config.logging_options().unwrap();
    assert_eq!(logging.filter, "warn,apphost=debug");
    assert_eq!(logging.format, LogFormat::Pretty);
}

#[test]
fn worker_section_reads_into_user_struct() {
    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Worker {
        #[serde(deserialize_with = "apphost::config::deserialize_duration")]
        interval: Duration,
        state_file: String,
        #[serde(default)]
        batch: u32,
    }
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "default.toml",
        "[worker]\ninterval = \"1s\"\nstate_file = \"state.txt\"\n",
    );
    let config = options_in(dir.path())
        .env_vars([("APPHOST__WORKER__BATCH", "8")])
        .load()
        .unwrap();
    let worker: Worker = config.section("worker").unwrap();
    assert_eq!(
        worker,
        Worker {
            interval: Duration::from_secs(1),
            state_file: "state.txt".into(),
            batch: 8
        }
    );
}
