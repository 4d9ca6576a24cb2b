//! Sections register with the configuration, map-shaped sections such as
//! `[services.<name>]` are carried, and a section nobody reads is an error.
//!
//! No test touches the process environment: variables are injected with
//! `ConfigOptions::env_vars`, directories are temporary.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use apphost::HostOptions;
use apphost::config::{ConfigOptions, Configuration, Section};
use apphost::console::ConsoleLifetimeOptions;
use apphost::logging::LoggingOptions;

const NO_VARS: [(&str, &str); 0] = [];

/// A directory holding `default.toml` with `text`, and its path in messages.
fn dir_with(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path.display().to_string())
}

fn options_in(dir: &Path) -> ConfigOptions {
    ConfigOptions::default().directory(dir).env_vars(NO_VARS)
}

/// What `console::run` reads before the host starts.
fn read_as_console_run_does(config: &Configuration) {
    config.host_options().unwrap();
    config.logging_options().unwrap();
    config.section::<ConsoleLifetimeOptions>("console").unwrap();
}

/// The shape the host reads under `[services.<name>]`.
#[derive(Debug, Default, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ServiceOptions {
    depends_on: Vec<String>,
    #[serde(deserialize_with = "apphost::config::deserialize_optional_duration")]
    start_timeout: Option<Duration>,
    #[serde(deserialize_with = "apphost::config::deserialize_optional_duration")]
    stop_timeout: Option<Duration>,
}

// ===== registration =====

#[test]
fn unregistered_section_loads_and_the_read_reports_the_bad_value() {
    let config = ConfigOptions::default()
        .default_directory("/nonexistent/apphost")
        .env_vars([("APPHOST__HOST__SHUTDOWN_TIMEOUT", "soon")])
        .load()
        .expect("nothing registered: nothing checked at load");
    let err = config.host_options().unwrap_err();
    assert_eq!(err.source_name(), "APPHOST__HOST__SHUTDOWN_TIMEOUT");
    assert_eq!(err.key(), Some("host.shutdown_timeout"));
}

#[test]
fn registered_section_is_checked_in_every_layer_at_load() {
    let (dir, file) = dir_with("[worker]\nbatch = \"many\"\n");
    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    #[allow(dead_code)]
    struct Worker {
        batch: u32,
    }
    let err = options_in(dir.path())
        .env_vars([("APPHOST__WORKER__BATCH", "16")])
        .register(Section::new::<Worker>("worker"))
        .load()
        .unwrap_err();
    assert_eq!(err.source_name(), file);
    assert_eq!(err.key(), Some("worker.batch"));
}

#[test]
fn reading_a_section_checks_each_layer_so_an_override_hides_nothing() {
    let (dir, file) = dir_with("[host]\nshutdown_timeout = -1\n");
    let config = options_in(dir.path())
        .env_vars([("APPHOST__HOST__SHUTDOWN_TIMEOUT", "5s")])
        .load()
        .unwrap();
    let err = config.host_options().unwrap_err();
    assert_eq!(err.source_name(), file, "{err}");
}

#[test]
fn registering_a_name_again_replaces_the_first_registration() {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Strict {
        n: u32,
    }
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Loose {
        n: String,
    }
    let config = ConfigOptions::default()
        .default_directory("/nonexistent/apphost")
        .env_vars([("APPHOST__X__N", "text")])
        .register(Section::new::<Strict>("x"))
        .register(Section::new::<Loose>("x"))
        .load();
    assert!(config.is_ok(), "{config:?}");
}

#[test]
fn alias_and_key_in_one_layer_is_an_error_naming_both() {
    let (dir, file) = dir_with("[logging]\nlevel = \"info\"\nfilter = \"warn\"\n");
    let err = options_in(dir.path())
        .register(LoggingOptions::section())
        .load()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{file}: logging.level: expected either logging.level or logging.filter, found both"
        )
    );
}

// ===== map-shaped sections: [services.<name>] =====

#[test]
fn services_section_reads_as_a_map_from_files_and_variables() {
    let (dir, _) = dir_with(
        "[services.db]\nstart_timeout = \"10s\"\n\n[services.api]\ndepends_on = [\"db\"]\n",
    );
    let config = options_in(dir.path())
        .env_vars([("APPHOST__SERVICES__DB__STOP_TIMEOUT", "3s")])
        .register(Section::new::<BTreeMap<String, ServiceOptions>>("services"))
        .load()
        .unwrap();
    let services: BTreeMap<String, ServiceOptions> = config.section("services").unwrap();
    assert_eq!(
        services["db"],
        ServiceOptions {
            depends_on: vec![],
            start_timeout: Some(Duration::from_secs(10)),
            stop_timeout: Some(Duration::from_secs(3)),
        }
    );
    assert_eq!(services["api"].depends_on, ["db"]);
    config.check_unread().unwrap();
}

#[test]
fn services_variable_alone_reaches_the_entry() {
    let config = ConfigOptions::default()
        .default_directory("/nonexistent/apphost")
        .env_vars([("APPHOST__SERVICES__DB__STOP_TIMEOUT", "3s")])
        .load()
        .unwrap();
    let services: BTreeMap<String, ServiceOptions> = config.section("services").unwrap();
    assert_eq!(services["db"].stop_timeout, Some(Duration::from_secs(3)));
}

#[test]
fn bad_service_entry_names_its_file_and_full_key() {
    let (dir, file) = dir_with("[services.db]\nstop_timeout = \"soon\"\n");
    let err = options_in(dir.path())
        .env_vars([("APPHOST__SERVICES__DB__STOP_TIMEOUT", "3s")])
        .register(Section::new::<BTreeMap<String, ServiceOptions>>("services"))
        .load()
        .unwrap_err();
    assert_eq!(err.source_name(), file);
    assert_eq!(err.key(), Some("services.db.stop_timeout"));
}

#[test]
fn unknown_key_in_a_service_entry_suggests_the_nearest() {
    let err = ConfigOptions::default()
        .default_directory("/nonexistent/apphost")
        .env_vars([("APPHOST__SERVICES__DB__STOP_TIMOUT", "3s")])
        .load()
        .unwrap()
        .section::<BTreeMap<String, ServiceOptions>>("services")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "APPHOST__SERVICES__DB__STOP_TIMOUT: unknown key services.db.stop_timout; did you mean services.db.stop_timeout?"
    );
}

// ===== sections nobody reads =====

#[test]
fn misspelled_section_capitalised_is_an_error_naming_file_and_nearest() {
    let (dir, file) = dir_with("[Host]\nshutdown_timeout = \"1s\"\n");
    let config = options_in(dir.path()).load().unwrap();
    read_as_console_run_does(&config);
    let err = config.check_unread().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{file}: unknown section Host; did you mean host?")
    );
    assert_eq!(err.key(), Some("Host"));
    assert_eq!(err.exit_code(), 78);
}

#[test]
fn misspelled_section_plural_is_an_error() {
    let (dir, file) = dir_with("[hosts]\nshutdown_timeout = \"1s\"\n");
    let config = options_in(dir.path()).load().unwrap();
    read_as_console_run_does(&config);
    assert_eq!(
        config.check_unread().unwrap_err().to_string(),
        format!("{file}: unknown section hosts; did you mean host?")
    );
}

#[test]
fn misspelled_variable_is_an_error_naming_the_variable() {
    let config = ConfigOptions::default()
        .default_directory("/nonexistent/apphost")
        .env_vars([("APPHOST__WORKERS__BATCH", "16")])
        .load()
        .unwrap();
    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default)]
    #[allow(dead_code)]
    struct Worker {
        batch: u32,
    }
    let _: Worker = config.section("worker").unwrap();
    let err = config.check_unread().unwrap_err();
    assert_eq!(
        err.to_string(),
        "APPHOST__WORKERS__BATCH: unknown section workers; did you mean worker?"
    );
}

#[test]
fn unread_section_far_from_any_lists_the_known_ones() {
    let (dir, file) = dir_with("[zzz]\nx = 1\n");
    let config = options_in(dir.path()).load().unwrap();
    read_as_console_run_does(&config);
    assert_eq!(
        config.check_unread().unwrap_err().to_string(),
        format!(
            "{file}: unknown section zzz: no part of the program reads it (known sections: console, host, logging)"
        )
    );
}

#[test]
fn top_level_value_nobody_reads_is_an_error() {
    let (dir, file) = dir_with("shutdown_timeout = \"1s\"\n");
    let config = options_in(dir.path()).load().unwrap();
    read_as_console_run_does(&config);
    let err = config.check_unread().unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{file}: unknown section shutdown_timeout")),
        "{err}"
    );
}

#[test]
fn every_section_read_passes_the_check() {
    let (dir, _) = dir_with("[host]\nshutdown_timeout = \"1s\"\n[worker]\nbatch = 1\n");
    let config = options_in(dir.path()).load().unwrap();
    read_as_console_run_does(&config);
    let _: toml::Table = config.section("worker").unwrap();
    config.check_unread().unwrap();
}

#[test]
fn a_registered_section_counts_as_read() {
    let (dir, _) = dir_with("[late]\nkey = 1\n");
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Late {
        key: u32,
    }
    let config = options_in(dir.path())
        .register(Section::new::<Late>("late"))
        .load()
        .unwrap();
    config.check_unread().unwrap();
}

#[test]
fn reads_through_a_clone_count_for_the_original() {
    let (dir, _) = dir_with("[worker]\nbatch = 1\n");
    let config = options_in(dir.path()).load().unwrap();
    let _: toml::Table = config.clone().section("worker").unwrap();
    config.check_unread().unwrap();
}

#[test]
fn allow_unread_sections_opts_out() {
    let (dir, _) = dir_with("[read_later]\nkey = 1\n");
    let config = options_in(dir.path())
        .allow_unread_sections()
        .load()
        .unwrap();
    config.check_unread().unwrap();
}

#[test]
fn host_builder_reads_host_so_it_counts() {
    let (dir, _) = dir_with("[host]\nshutdown_timeout = \"1s\"\n");
    let config = options_in(dir.path()).load().unwrap();
    let host = apphost::Host::builder()
        .configuration(config.clone())
        .build()
        .unwrap();
    host.configuration().check_unread().unwrap();
    config.check_unread().unwrap();
    assert_eq!(host.options().shutdown_timeout, Duration::from_secs(1));
    assert_eq!(HostOptions::SECTION, "host");
}

#[test]
fn alias_across_layers_works_without_registering() {
    let (dir, _) = dir_with("[logging]\nfilter = \"info\"\nformat = \"json\"\n");
    let config = options_in(dir.path())
        .env_vars([("APPHOST__LOGGING__LEVEL", "debug")])
        .load()
        .unwrap();
    let logging = config.logging_options().unwrap();
    assert_eq!(logging.filter, "debug");
    assert_eq!(logging.format, apphost::logging::LogFormat::Json);
}

#[test]
fn alias_and_key_in_one_layer_is_an_error_without_registering_too() {
    let (dir, file) = dir_with("[logging]\nlevel = \"info\"\nfilter = \"warn\"\n");
    let err = options_in(dir.path())
        .load()
        .unwrap()
        .logging_options()
        .unwrap_err();
    assert_eq!(err.source_name(), file);
    assert_eq!(err.key(), Some("logging.level"));
}

#[test]
fn scalar_top_level_key_set_in_two_layers_reads_as_a_scalar() {
    let (dir, _) = dir_with("port = 8080\n");
    let options = options_in(dir.path()).env_vars([("APPHOST__PORT", "9090")]);
    let config = options.clone().load().unwrap();
    assert_eq!(config.section::<u16>("port").unwrap(), 9090);
    config.check_unread().unwrap();

    let (dir, _) = dir_with("port = \"eighty\"\n");
    let err = options_in(dir.path())
        .env_vars([("APPHOST__PORT", "9090")])
        .load()
        .unwrap()
        .section::<u16>("port")
        .unwrap_err();
    assert!(err.source_name().ends_with("default.toml"), "{err}");
}

#[test]
fn a_struct_that_allows_unknown_keys_reads_its_part_of_a_shared_section() {
    // Two services read two views of one section; neither denies the other's keys.
    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default)]
    struct Left {
        left: u32,
    }
    let (dir, _) = dir_with("[pair]\nleft = 1\nright = 2\n");
    let config = options_in(dir.path())
        .env_vars([("APPHOST__PAIR__RIGHT", "3")])
        .load()
        .unwrap();
    assert_eq!(config.section::<Left>("pair").unwrap().left, 1);
}
