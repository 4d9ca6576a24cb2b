//! Logging set-up: filter choice, formats, and a broken stderr.
//!
//! A global subscriber can be installed once per process, so the tests that
//! install one run this test binary again as a child process (selected by
//! `APPHOST_LOGGING_CHILD`, set only on the child's command) and look at its
//! stderr and exit status. The parent's own environment is never changed.

use std::io::Read;
use std::process::{Command, Stdio};

use apphost::logging::{LogFormat, LoggingOptions, build_filter, init_logging};

const CHILD: &str = "APPHOST_LOGGING_CHILD";

/// Runs `child_entry` in a child process with `mode`, and `RUST_LOG` as given.
fn child(mode: &str, rust_log: Option<&str>) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .env_remove("NO_COLOR")
        .stdout(Stdio::null());
    match rust_log {
        Some(value) => command.env("RUST_LOG", value),
        None => command.env_remove("RUST_LOG"),
    };
    command
}

/// The body of the child process; a no-op in the parent.
#[test]
fn child_entry() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    let format = match mode.as_str() {
        "json" => LogFormat::Json,
        "pretty" => LogFormat::Pretty,
        _ => LogFormat::Compact,
    };
    let options = LoggingOptions {
        filter: "info".into(),
        format,
    };
    assert!(init_logging(&options).unwrap(), "first call installs");
    assert!(
        !init_logging(&options).unwrap(),
        "second call finds it installed"
    );
    tracing::debug!("hidden-unless-debug");
    tracing::info!(answer = 42, "hello-from-child");
    if mode == "flood" {
        // Far more than a pipe buffer, so writes fail once the reader is gone.
        for i in 0..20_000 {
            tracing::info!(i, "flooding a closed stderr");
        }
        println!("child survived");
    }
}

fn stderr_of(mut command: Command) -> String {
    let output = command.stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "child failed: {stderr}");
    stderr
}

#[test]
fn compact_logs_go_to_stderr_filtered_by_options() {
    let stderr = stderr_of(child("compact", None));
    assert!(stderr.contains("hello-from-child"), "{stderr}");
    assert!(stderr.contains("answer=42"), "{stderr}");
    assert!(!stderr.contains("hidden-unless-debug"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no colours when stderr is not a terminal: {stderr}"
    );
}

#[test]
fn json_format_writes_one_object_per_line() {
    let stderr = stderr_of(child("json", None));
    let line = stderr
        .lines()
        .find(|l| l.contains("hello-from-child"))
        .expect(&stderr);
    assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    assert!(line.contains("\"answer\":42"), "{line}");
}

#[test]
fn rust_log_overrides_configured_filter() {
    let stderr = stderr_of(child("compact", Some("debug")));
    assert!(stderr.contains("hidden-unless-debug"), "{stderr}");
}

#[test]
fn closed_stderr_does_not_panic() {
    let mut process = child("flood", None).stderr(Stdio::piped()).spawn().unwrap();
    // Close the read end before the child writes: every write gets EPIPE.
    let pipe = process.stderr.take().unwrap();
    drop(pipe);
    let status = process.wait().unwrap();
    assert!(status.success(), "child exited with {status}");
}

#[test]
fn closed_stderr_after_some_output_does_not_panic() {
    let mut process = child("flood", None).stderr(Stdio::piped()).spawn().unwrap();
    // Like `| head -c 100`: read a little, then go away.
    let mut pipe = process.stderr.take().unwrap();
    let mut first = [0u8; 100];
    pipe.read_exact(&mut first).unwrap();
    drop(pipe);
    let status = process.wait().unwrap();
    assert!(status.success(), "child exited with {status}");
}

#[test]
fn filter_comes_from_rust_log_when_set() {
    let options = LoggingOptions {
        filter: "warn".into(),
        format: LogFormat::Compact,
    };
    assert_eq!(build_filter(&options, None).unwrap().to_string(), "warn");
    assert_eq!(
        build_filter(&options, Some("")).unwrap().to_string(),
        "warn"
    );
    assert_eq!(
        build_filter(&options, Some("apphost=trace"))
            .unwrap()
            .to_string(),
        "apphost=trace"
    );
}

#[test]
fn invalid_filters_name_their_source() {
    let options = LoggingOptions::default();
    let err = build_filter(&options, Some("info,=")).unwrap_err();
    assert_eq!(err.source_name(), "RUST_LOG");
    assert!(err.to_string().contains("expected a filter"), "{err}");

    let options = LoggingOptions {
        filter: "[".into(),
        format: LogFormat::Json,
    };
    let err = build_filter(&options, None).unwrap_err();
    assert_eq!(err.key(), Some("logging.filter"));
}
