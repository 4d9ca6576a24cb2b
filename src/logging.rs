//! Logging to stderr with `tracing-subscriber`, configured from `[logging]`.
//!
//! ```toml
//! [logging]
//! filter = "info"      # or `level`; any EnvFilter directive, e.g. "info,apphost=debug"
//! format = "compact"   # "pretty" | "compact" | "json"
//! ```
//!
//! `RUST_LOG`, when set, replaces `filter`. [`init_logging`] does nothing if
//! the application already installed a global subscriber, so an application
//! that wants its own logging simply installs it first.
//!
//! Writes to a closed or broken stderr (a process piped into `head`) are
//! dropped silently instead of panicking: losing a log line is better than
//! losing the process during shutdown.
//!
//! # Under systemd: the journal
//!
//! When stderr is the journal — `JOURNAL_STREAM` is set and names stderr's
//! device and inode, as systemd sets it for `StandardError=journal` (the
//! default) — every line starts with its syslog priority, `<3>` for ERROR,
//! `<4>` WARN, `<6>` INFO and `<7>` DEBUG and TRACE, which journald strips
//! and records as the entry's priority (so `journalctl -p warning` shows
//! the warnings and errors), and no timestamp is written: journald stamps
//! every entry itself. A `JOURNAL_STREAM` inherited by a process whose stderr
//! was redirected elsewhere does not match and changes nothing.
//!
//! ```text
//! <6>INFO apphost::lifetime: Application started. Press Ctrl+C to shut down.
//! <4>WARN worker: reloaded [worker] is invalid, keeping interval 1s: …
//! ```

use std::fmt;
use std::io::{self, IsTerminal, Write};

use serde::de;
use tracing::subscriber::set_global_default;
use tracing::{Level, Metadata};
use tracing_log::AsLog;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{ConfigError, Configuration, Section};

/// Options of the log output, read from `[logging]`.
///
/// # Examples
///
/// ```
/// use apphost::logging::{LogFormat, LoggingOptions};
///
/// let options: LoggingOptions = toml::from_str(r#"level = "warn""#).unwrap();
/// assert_eq!(options.filter, "warn");
/// assert_eq!(options.format, LogFormat::Compact);
/// assert!(toml::from_str::<LoggingOptions>(r#"filter = "info,=" "#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingOptions {
    /// An [`EnvFilter`] directive string such as `"info"` or
    /// `"warn,apphost=debug"`; the key `level` is accepted too. Default `"info"`.
    #[serde(alias = "level", deserialize_with = "deserialize_filter")]
    pub filter: String,
    /// How each event is written. Default [`LogFormat::Compact`].
    pub format: LogFormat,
}

impl Default for LoggingOptions {
    fn default() -> Self {
        LoggingOptions {
            filter: "info".to_owned(),
            format: LogFormat::default(),
        }
    }
}

impl LoggingOptions {
    /// The name of the configuration section logging is set up from.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apphost::logging::LoggingOptions::SECTION, "logging");
    /// ```
    pub const SECTION: &'static str = "logging";

    /// The `[logging]` section, with `level` as another name of `filter`,
    /// to [register](crate::config::ConfigOptions::register) so that
    /// loading checks it in every layer ([`console::run`](crate::console::run)
    /// does).
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::config::ConfigOptions;
    /// use apphost::logging::{LogFormat, LoggingOptions};
    /// let config = ConfigOptions::default()
    ///     .env_vars([("APPHOST__LOGGING__LEVEL", "debug")])
    ///     .set("logging.format", "json")
    ///     .register(LoggingOptions::section())
    ///     .load()
    ///     .unwrap();
    /// let logging = config.logging_options().unwrap();
    /// assert_eq!((logging.filter.as_str(), logging.format), ("debug", LogFormat::Json));
    /// ```
    pub fn section() -> Section {
        Section::new::<LoggingOptions>(Self::SECTION).alias("level", "filter")
    }
}

impl Configuration {
    /// The `[logging]` section as [`LoggingOptions`]; defaults if absent.
    ///
    /// # Errors
    ///
    /// As [`section`](Self::section).
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// use apphost::logging::LogFormat;
    /// let config = ConfigOptions::default()
    ///     .env_vars([("APPHOST__LOGGING__FORMAT", "json"), ("APPHOST__LOGGING__LEVEL", "debug")])
    ///     .load().unwrap();
    /// let logging = config.logging_options().unwrap();
    /// assert_eq!((logging.filter.as_str(), logging.format), ("debug", LogFormat::Json));
    /// ```
    pub fn logging_options(&self) -> Result<LoggingOptions, ConfigError> {
        self.section_with_aliases(LoggingOptions::SECTION, &[("level", "filter")])
    }
}

/// How log events are written.
///
/// In configuration: `"pretty"`, `"compact"` or `"json"`, in any case.
///
/// # Examples
///
/// ```
/// use apphost::logging::LogFormat;
/// # #[derive(serde::Deserialize)] struct T { f: LogFormat }
/// let t: T = toml::from_str(r#"f = "JSON""#).unwrap();
/// assert_eq!(t.f, LogFormat::Json);
/// assert_eq!(LogFormat::default(), LogFormat::Compact);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Multi-line, human-friendly; for development.
    Pretty,
    /// One line per event; the default.
    #[default]
    Compact,
    /// One JSON object per line; for log collectors.
    Json,
}

impl<'de> de::Deserialize<'de> for LogFormat {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FormatVisitor;

        impl de::Visitor<'_> for FormatVisitor {
            type Value = LogFormat;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"pretty\", \"compact\" or \"json\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<LogFormat, E> {
                match v.trim().to_ascii_lowercase().as_str() {
                    "pretty" => Ok(LogFormat::Pretty),
                    "compact" => Ok(LogFormat::Compact),
                    "json" => Ok(LogFormat::Json),
                    _ => Err(E::custom(format_args!(
                        "expected \"pretty\", \"compact\" or \"json\", found {v:?}"
                    ))),
                }
            }
        }

        deserializer.deserialize_str(FormatVisitor)
    }
}

/// Rejects a filter at load time, where the error can still name the file.
fn deserialize_filter<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let filter = <String as de::Deserialize>::deserialize(deserializer)?;
    parse_filter(&filter).map_err(de::Error::custom)?;
    Ok(filter)
}

fn parse_filter(filter: &str) -> Result<EnvFilter, String> {
    const EXPECTED: &str = "expected a filter such as \"info\" or \"warn,apphost=debug\"";
    if filter.trim().is_empty() {
        return Err(format!("{EXPECTED}, found an empty string"));
    }
    EnvFilter::builder()
        .parse(filter)
        .map_err(|e| format!("{EXPECTED}, found {filter:?} ({e})"))
}

/// Builds the filter [`init_logging`] uses: `rust_log` (the value of
/// `RUST_LOG`) if it is set and not empty, else `options.filter`.
///
/// # Errors
///
/// A [`ConfigError`] naming `RUST_LOG`, or the key `logging.filter`, when
/// the chosen filter does not parse.
///
/// # Examples
///
/// ```
/// use apphost::logging::{build_filter, LoggingOptions};
/// let options = LoggingOptions::default();
/// assert_eq!(build_filter(&options, None).unwrap().to_string(), "info");
/// assert_eq!(build_filter(&options, Some("debug")).unwrap().to_string(), "debug");
/// let err = build_filter(&options, Some("info,=")).unwrap_err();
/// assert_eq!(err.source_name(), "RUST_LOG");
/// ```
pub fn build_filter(
    options: &LoggingOptions,
    rust_log: Option<&str>,
) -> Result<EnvFilter, ConfigError> {
    match rust_log.filter(|v| !v.trim().is_empty()) {
        Some(directives) => parse_filter(directives).map_err(|e| ConfigError::other("RUST_LOG", e)),
        None => parse_filter(&options.filter)
            .map_err(|e| ConfigError::value("logging options", "logging.filter", e)),
    }
}

/// Installs a global `tracing` subscriber writing to stderr in
/// `options.format`, filtered by `RUST_LOG` or else `options.filter`. When
/// stderr is the journal ([`stderr_is_journal`]) each line carries its
/// syslog priority and no timestamp (see the [module docs](self)).
///
/// Returns `Ok(true)` if it installed one, `Ok(false)` if a global
/// subscriber was already installed; then nothing changes. Records of the
/// `log` crate are routed to the new subscriber unless the application set
/// a `log` logger of its own. Colours are used only when stderr is a terminal and `NO_COLOR`
/// is unset.
///
/// # Errors
///
/// A [`ConfigError`] when `RUST_LOG` or `options.filter` does not parse, as
/// [`build_filter`]. It is checked before anything is installed.
///
/// # Examples
///
/// ```
/// use apphost::logging::{init_logging, LoggingOptions};
/// // `true` unless something in this process installed a subscriber first.
/// let _installed: bool = init_logging(&LoggingOptions::default()).unwrap();
/// // Either way, a second call leaves the first subscriber in place.
/// assert!(!init_logging(&LoggingOptions::default()).unwrap());
/// ```
pub fn init_logging(options: &LoggingOptions) -> Result<bool, ConfigError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = build_filter(options, rust_log.as_deref())?;
    if tracing::dispatcher::has_been_set() {
        return Ok(false);
    }
    let journal = stderr_is_journal();
    let ansi = !journal
        && io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(QuietStderr { journal })
        .with_ansi(ansi)
        // Our writer never fails, but if it did, the fallback report would
        // be an `eprintln!`, which panics on a broken stderr.
        .log_internal_errors(false);
    // `set_global_default` fails only if a subscriber is already installed
    // (perhaps by a thread racing the check above): "already installed".
    macro_rules! install {
        ($builder:expr) => {
            match options.format {
                LogFormat::Pretty => set_global_default($builder.pretty().finish()).is_ok(),
                LogFormat::Compact => set_global_default($builder.compact().finish()).is_ok(),
                LogFormat::Json => set_global_default($builder.json().finish()).is_ok(),
            }
        };
    }
    let installed = if journal {
        // journald stamps each entry: a second timestamp is noise.
        install!(builder.without_time())
    } else {
        install!(builder)
    };
    if installed {
        // Route `log` records of dependencies into the subscriber. If the
        // application set its own `log` logger, that one stays: not an error.
        let _ = tracing_log::LogTracer::builder()
            .with_max_level(tracing::level_filters::LevelFilter::current().as_log())
            .init();
    }
    Ok(installed)
}

/// Whether stderr is connected to the journal: `JOURNAL_STREAM` is set and
/// its `device:inode` is stderr's (`fstat` on descriptor 2), as
/// `systemd.exec(5)` says to check. `false` outside systemd, and for a
/// process that inherited the variable but whose stderr was redirected.
///
/// # Examples
///
/// ```
/// // Under `cargo test`, stderr is not the journal.
/// # if std::env::var_os("JOURNAL_STREAM").is_none() {
/// assert!(!apphost::logging::stderr_is_journal());
/// # }
/// ```
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(io::stderr()) else {
        return false;
    };
    // `st_dev`/`st_ino` widths differ by platform; compare as u64.
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    let (dev, ino) = (stat.st_dev as u64, stat.st_ino as u64);
    value
        .to_str()
        .is_some_and(|v| journal_stream_names(v, dev, ino))
}

/// Whether a `JOURNAL_STREAM` value (`"<device>:<inode>"`, decimal) names the
/// file with `dev` and `ino`.
fn journal_stream_names(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>() == Ok(dev) && i.parse::<u64>() == Ok(ino)
}

/// The syslog priority journald reads from a line's `<N>` prefix
/// (`sd-daemon(3)`): ERROR 3 (`LOG_ERR`), WARN 4 (`LOG_WARNING`), INFO 6
/// (`LOG_INFO`), DEBUG and TRACE 7 (`LOG_DEBUG`).
fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

// Why a `<N>` prefix on stderr rather than the `tracing-journald` crate:
// that crate sends each event as a datagram to /run/systemd/journal/socket,
// a second channel beside stderr. Lines apphost writes to stderr directly
// (the one-line configuration error printed before logging exists, a panic
// message) would then be ordered apart from the events; the socket must be
// reachable (not so in a container whose stderr systemd collects from the
// host); and it maps INFO to NOTICE (5) and DEBUG to INFO (6), unlike every
// other program under journald. The prefix keeps one ordered stream, keeps
// `[logging] format` (json included), needs no new dependency, and is what
// journald documents for stdout/stderr (`SyslogLevelPrefix=`, on by
// default). The structured fields tracing-journald adds are not lost for
// those who want them: `format = "json"` keeps them in the message.

/// Stderr whose write errors are swallowed (`EPIPE` after `| head`, a
/// closed descriptor): the log line is lost, the process carries on. When
/// `journal` is set, each line gets the event's `<N>` priority prefix.
#[derive(Debug, Clone, Copy)]
struct QuietStderr {
    journal: bool,
}

impl<'a> MakeWriter<'a> for QuietStderr {
    type Writer = EventWriter<QuietWrite>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter::new(QuietWrite, None)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        EventWriter::new(
            QuietWrite,
            self.journal.then(|| syslog_priority(meta.level())),
        )
    }
}

/// Writes to stderr, ignoring errors.
#[derive(Debug, Clone, Copy)]
struct QuietWrite;

impl Write for QuietWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Claim the whole buffer was written so `write_all` does not retry.
        let _ = io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// The writer of one event: with a priority, every line it starts (the
/// pretty format spans several) is prefixed `<N>`, so journald files each
/// line of the event at its level. The formatter writes an event in one
/// buffer, so the prefixed text goes out in one write too.
#[derive(Debug)]
struct EventWriter<W: Write> {
    inner: W,
    priority: Option<u8>,
    at_line_start: bool,
}

impl<W: Write> EventWriter<W> {
    fn new(inner: W, priority: Option<u8>) -> Self {
        EventWriter {
            inner,
            priority,
            at_line_start: true,
        }
    }
}

impl<W: Write> Write for EventWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(priority) = self.priority else {
            return self.inner.write(buf);
        };
        let prefix = [b'<', b'0' + priority, b'>'];
        let mut out = Vec::with_capacity(buf.len() + 3 * 4);
        for &byte in buf {
            if self.at_line_start {
                out.extend_from_slice(&prefix);
            }
            out.push(byte);
            self.at_line_start = byte == b'\n';
        }
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn journal_stream_must_name_this_device_and_inode() {
        assert!(journal_stream_names("2049:1234", 2049, 1234));
        assert!(journal_stream_names(" 2049:1234\n", 2049, 1234));
        assert!(!journal_stream_names("2049:1235", 2049, 1234));
        assert!(!journal_stream_names("2048:1234", 2049, 1234));
        assert!(!journal_stream_names("", 2049, 1234));
        assert!(!journal_stream_names("2049", 2049, 1234));
        assert!(!journal_stream_names("a:b", 2049, 1234));
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(syslog_priority(&Level::ERROR), 3);
        assert_eq!(syslog_priority(&Level::WARN), 4);
        assert_eq!(syslog_priority(&Level::INFO), 6);
        assert_eq!(syslog_priority(&Level::DEBUG), 7);
        assert_eq!(syslog_priority(&Level::TRACE), 7);
    }

    #[test]
    fn every_line_of_an_event_gets_the_prefix() {
        let mut out = EventWriter::new(Vec::new(), Some(4));
        out.write_all(b"first\nsecond\n").unwrap();
        assert_eq!(out.inner, b"<4>first\n<4>second\n");
        let mut plain = EventWriter::new(Vec::new(), None);
        plain.write_all(b"first\nsecond\n").unwrap();
        assert_eq!(plain.inner, b"first\nsecond\n");
    }

    /// Collects what a subscriber writes, through the same per-event writer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    struct CapturedWrite(Arc<Mutex<Vec<u8>>>);

    impl Write for CapturedWrite {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = EventWriter<CapturedWrite>;
        fn make_writer(&'a self) -> Self::Writer {
            EventWriter::new(CapturedWrite(self.0.clone()), None)
        }
        fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
            EventWriter::new(
                CapturedWrite(self.0.clone()),
                Some(syslog_priority(meta.level())),
            )
        }
    }

    #[test]
    fn journal_lines_carry_the_priority_and_no_timestamp() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .without_time()
            .compact()
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "t", "broken");
            tracing::warn!(target: "t", "careful");
            tracing::info!(target: "t", "fine");
            tracing::debug!(target: "t", "detail");
            tracing::trace!(target: "t", "noise");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "<3>ERROR t: broken",
                "<4> WARN t: careful",
                "<6> INFO t: fine",
                "<7>DEBUG t: detail",
                "<7>TRACE t: noise",
            ],
            "{text}"
        );
    }
}
