//! Reload: typed watches that follow it, a reload validated as a whole
//! before anything changes, and `[host]` values set in code that keep
//! winning. Direct calls to `Host::reload`, no sleeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use apphost::Host;
use apphost::config::{ConfigOptions, Configuration};
use apphost::host::BuildError;

#[derive(Debug, Default, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Worker {
    batch: u32,
    #[serde(deserialize_with = "apphost::config::deserialize_duration")]
    interval: Duration,
}

/// A configuration from `default.toml` holding `text`, plus `vars`; the
/// directory is returned to keep it alive and to name the file.
fn config(text: &str, vars: &[(&str, &str)]) -> (Configuration, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("default.toml"), text).unwrap();
    let config = ConfigOptions::default()
        .directory(dir.path())
        .env_vars(vars.iter().copied())
        .load()
        .unwrap();
    (config, dir)
}

fn file(dir: &tempfile::TempDir) -> String {
    dir.path().join("default.toml").display().to_string()
}

#[test]
fn watch_follows_a_reload_and_cancels_its_token() {
    let (initial, _d) = config("[worker]\nbatch = 1\n", &[]);
    let worker = initial.watch::<Worker>("worker").unwrap();
    let host = Host::builder().configuration(initial).build().unwrap();
    let token = worker.token();

    let seen = Arc::new(AtomicU64::new(0));
    let registration = {
        let (worker, seen) = (worker.clone(), seen.clone());
        token.register(move || seen.store(worker.current().batch.into(), Ordering::SeqCst))
    };
    let (next, _d2) = config("[worker]\nbatch = 2\n", &[]);
    host.reload(next).unwrap();

    assert!(token.is_cancelled());
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "the callback saw the new value"
    );
    assert_eq!(worker.current().batch, 2);
    assert_eq!(worker.changes(), 1);
    assert!(
        !worker.token().is_cancelled(),
        "a fresh token for the next change"
    );
    drop(registration);
}

#[test]
fn invalid_watched_section_rejects_the_whole_reload() {
    let (initial, _d) = config(
        "[host]\nshutdown_timeout = \"5s\"\n[worker]\nbatch = 1\n",
        &[],
    );
    let worker = initial.watch::<Worker>("worker").unwrap();
    let builder = Host::builder();
    let reloads = builder.reloads();
    let host = builder.configuration(initial).build().unwrap();
    let (worker_token, reload_token) = (worker.token(), reloads.token());

    // [host] is valid and would change; [worker] is not: nothing applies.
    let (next, dir) = config(
        "[host]\nshutdown_timeout = \"20s\"\n[worker]\nbatch = 2\ninterval = \"soon\"\n",
        &[],
    );
    let err = host.reload(next).unwrap_err();

    assert_eq!(err.source_name(), file(&dir));
    assert_eq!(err.key(), Some("worker.interval"));
    assert!(!err.to_string().contains('\n'));
    assert_eq!(host.options().shutdown_timeout, Duration::from_secs(5));
    assert_eq!(worker.current().batch, 1);
    assert_eq!(worker.changes(), 0);
    assert_eq!(reloads.count(), 0);
    assert!(!worker_token.is_cancelled());
    assert!(!reload_token.is_cancelled());
    assert!(
        host.configuration()
            .sources()
            .iter()
            .all(|s| *s != file(&dir))
    );
}

#[test]
fn invalid_host_section_leaves_every_watch_alone() {
    let (initial, _d) = config("[worker]\nbatch = 1\n", &[]);
    let worker = initial.watch::<Worker>("worker").unwrap();
    let host = Host::builder().configuration(initial).build().unwrap();
    let (next, _d2) = config("[worker]\nbatch = 2\n[host]\nshutdown_timeout = -1\n", &[]);
    assert_eq!(
        host.reload(next).unwrap_err().key(),
        Some("host.shutdown_timeout")
    );
    assert_eq!(worker.current().batch, 1);
}

#[test]
fn reload_adding_a_section_nobody_reads_is_rejected() {
    let (initial, _d) = config("[worker]\nbatch = 1\n", &[]);
    let worker = initial.watch::<Worker>("worker").unwrap();
    let host = Host::builder().configuration(initial).build().unwrap();
    host.configuration().check_unread().unwrap(); // as console::run does
    let (next, dir) = config("[worker]\nbatch = 2\n[wroker]\nbatch = 3\n", &[]);
    let err = host.reload(next).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: unknown section wroker; did you mean worker?",
            file(&dir)
        )
    );
    assert_eq!(worker.current().batch, 1);
}

#[test]
fn reload_is_not_checked_for_unread_sections_unless_the_start_was() {
    let host = Host::builder().build().unwrap();
    let (next, _d) = config("[anything]\nkey = 1\n", &[]);
    host.reload(next).unwrap();
}

#[test]
fn reload_keeps_sections_the_program_started_with() {
    let (initial, _d) = config("[read_late]\nkey = 1\n", &[]);
    let host = Host::builder()
        .configuration(initial.clone())
        .build()
        .unwrap();
    let _: toml::Table = initial.section("read_late").unwrap();
    host.configuration().check_unread().unwrap();
    let (next, _d2) = config("[read_late]\nkey = 2\n", &[]);
    host.reload(next).unwrap();
}

#[test]
fn reads_before_a_reload_still_count_after_it() {
    let (initial, _d) = config("[worker]\nbatch = 1\n", &[]);
    let _: Worker = initial.section("worker").unwrap();
    let host = Host::builder().configuration(initial).build().unwrap();
    let (next, _d2) = config("[worker]\nbatch = 2\n", &[]);
    host.reload(next).unwrap();
    host.configuration().check_unread().unwrap();
}

#[test]
fn dropped_watch_is_no_longer_read_on_reload() {
    let (initial, _d) = config("[worker]\nbatch = 1\n", &[]);
    let worker = initial.watch::<Worker>("worker").unwrap();
    let host = Host::builder().configuration(initial).build().unwrap();
    drop(worker);
    let (next, _d2) = config("[worker]\ninterval = \"soon\"\n", &[]);
    host.reload(next).expect("no watch left to reject it");
}

#[test]
fn watch_taken_from_the_builder_gets_the_configuration_at_build() {
    let builder = Host::builder();
    let worker = builder.reloads().watch::<Worker>("worker").unwrap();
    assert_eq!(*worker.current(), Worker::default());
    let before = worker.token();
    let (initial, _d) = config("[worker]\nbatch = 8\n", &[]);
    let host = builder.configuration(initial).build().unwrap();
    assert_eq!(worker.current().batch, 8);
    assert!(before.is_cancelled());
    assert_eq!(host.reloads().count(), 0, "build is not a reload");
}

#[test]
fn watch_from_the_builder_on_an_invalid_configuration_fails_the_build() {
    let builder = Host::builder();
    let _worker = builder.reloads().watch::<Worker>("worker").unwrap();
    let (initial, dir) = config("[worker]\nbatch = \"many\"\n", &[]);
    match builder.configuration(initial).build() {
        Err(BuildError::Config(e)) => {
            assert_eq!(e.source_name(), file(&dir));
            assert_eq!(e.key(), Some("worker.batch"));
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn code_value_equal_to_the_file_value_keeps_winning_on_reload() {
    let (initial, _d) = config("[host]\nshutdown_timeout = \"7s\"\n", &[]);
    let host = Host::builder()
        .configure_options(|o| o.shutdown_timeout = Duration::from_secs(7))
        .configuration(initial)
        .build()
        .unwrap();
    let (next, _d2) = config(
        "[host]\nshutdown_timeout = \"20s\"\nservices_stop_concurrently = true\n",
        &[],
    );
    host.reload(next).unwrap();
    assert_eq!(host.options().shutdown_timeout, Duration::from_secs(7));
    assert!(
        host.options().services_stop_concurrently,
        "config values follow"
    );
}

#[test]
fn code_value_without_configuration_keeps_winning_on_reload() {
    let host = Host::builder()
        .configure_options(|o| o.shutdown_timeout = Duration::from_secs(5)) // the default
        .build()
        .unwrap();
    let (next, _d) = config(
        "[host]\nshutdown_timeout = \"20s\"\nstartup_timeout = \"9s\"\n",
        &[],
    );
    host.reload(next).unwrap();
    assert_eq!(host.options().shutdown_timeout, Duration::from_secs(5));
    assert_eq!(host.options().startup_timeout, Some(Duration::from_secs(9)));
}

#[test]
fn a_watch_callback_may_reload_again_without_deadlock() {
    let (initial, _d) = config("[worker]\nbatch = 1\n", &[]);
    let worker = initial.watch::<Worker>("worker").unwrap();
    let host = Arc::new(Host::builder().configuration(initial).build().unwrap());
    let (second, _d2) = config("[worker]\nbatch = 3\n", &[]);
    let second = std::sync::Mutex::new(Some(second));
    let _registration = {
        let host = Arc::clone(&host);
        worker.token().register(move || {
            if let Some(next) = second.lock().unwrap().take() {
                host.reload(next).unwrap();
            }
        })
    };
    let (first, _d3) = config("[worker]\nbatch = 2\n", &[]);
    host.reload(first).unwrap();
    assert_eq!(worker.current().batch, 3);
    assert_eq!(host.reloads().count(), 2);
}
