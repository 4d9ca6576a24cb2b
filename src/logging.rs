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

use std::fmt;
use std::io::{self, IsTerminal, Write};

use serde::de;
use tracing::subscriber::set_global_default;
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
/// `options.format`, filtered by `RUST_LOG` or else `options.filter`.
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
    let ansi =
        io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(QuietStderr)
        .with_ansi(ansi)
        // Our writer never fails, but if it did, the fallback report would
        // be an `eprintln!`, which panics on a broken stderr.
        .log_internal_errors(false);
    // `set_global_default` fails only if a subscriber is already installed
    // (perhaps by a thread racing the check above): "already installed".
    let installed = match options.format {
        LogFormat::Pretty => set_global_default(builder.pretty().finish()).is_ok(),
        LogFormat::Compact => set_global_default(builder.compact().finish()).is_ok(),
        LogFormat::Json => set_global_default(builder.json().finish()).is_ok(),
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

/// Stderr whose write errors are swallowed (`EPIPE` after `| head`, a
/// closed descriptor): the log line is lost, the process carries on.
#[derive(Debug, Clone, Copy)]
struct QuietStderr;

impl<'a> MakeWriter<'a> for QuietStderr {
    type Writer = QuietStderr;

    fn make_writer(&'a self) -> Self::Writer {
        QuietStderr
    }
}

impl Write for QuietStderr {
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
