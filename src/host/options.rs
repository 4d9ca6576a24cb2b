//! [`HostOptions`]: the knobs of the host's start and stop, and how they are
//! read from the `[host]` table of the configuration.

use std::fmt;
use std::time::Duration;

use serde::de;

use crate::config::duration::{
    deserialize_bool, deserialize_duration, deserialize_optional_duration,
};
use crate::config::{ConfigError, Configuration, Section};

/// What the host does when a background service's `execute` fails or panics.
///
/// In configuration it is written `"stop_host"` or `"ignore"`; the case and
/// the `_` do not matter, so .NET's `"StopHost"`/`"Ignore"` work too.
///
/// # Examples
///
/// ```
/// use apphost::BackgroundServiceExceptionBehavior as B;
/// # #[derive(serde::Deserialize)] struct T { b: B }
/// let t: T = toml::from_str(r#"b = "StopHost""#).unwrap();
/// assert_eq!(t.b, B::StopHost);
/// assert_eq!(B::default(), B::StopHost);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackgroundServiceExceptionBehavior {
    /// Log the failure, request a stop of the host, and report the failure from `run`.
    #[default]
    StopHost,
    /// Log the failure and keep the host running.
    Ignore,
}

/// Options of the host's start and stop.
///
/// Read from the `[host]` table of the configuration (see
/// [`Configuration::host_options`](crate::config::Configuration::host_options)):
///
/// | key | type | default |
/// |---|---|---|
/// | `shutdown_timeout` | duration (`"10s"`, `"1m 30s"`, integer seconds) | `"5s"` |
/// | `startup_timeout` | duration, or `"none"`/`"infinite"` | `"none"` |
/// | `services_start_concurrently` | bool | `false` |
/// | `services_stop_concurrently` | bool | `false` |
/// | `background_service_exception_behavior` | `"stop_host"` or `"ignore"` | `"stop_host"` |
/// | `report_file` | path | none |
///
/// Missing keys keep their defaults; unknown keys are an error (a typo would
/// otherwise silently leave the default in force).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use apphost::HostOptions;
///
/// let options: HostOptions = toml::from_str(r#"
///     shutdown_timeout = "10s"
///     services_stop_concurrently = true
/// "#).unwrap();
/// assert_eq!(options.shutdown_timeout, Duration::from_secs(10));
/// assert!(options.services_stop_concurrently);
/// assert_eq!(options.startup_timeout, None);
///
/// let err = toml::from_str::<HostOptions>("shutdown_timout = 1").unwrap_err();
/// assert!(err.to_string().contains("unknown field `shutdown_timout`"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOptions {
    /// The budget for the whole stop sequence. Default 5 s.
    pub shutdown_timeout: Duration,
    /// The budget for the whole start sequence; `None` means no limit. Default `None`.
    pub startup_timeout: Option<Duration>,
    /// Start services concurrently within each start phase. Default false.
    pub services_start_concurrently: bool,
    /// Stop services concurrently within each stop phase. Default false.
    pub services_stop_concurrently: bool,
    /// What a failing background service does to the host. Default `StopHost`.
    pub background_service_exception_behavior: BackgroundServiceExceptionBehavior,
    /// Where [`console::run`](crate::console::run) writes the
    /// [`HostReport`](crate::host::HostReport) as pretty JSON once the host
    /// has stopped (atomically: a reader sees no file, the old one, or the
    /// whole new one). While it is set, every call is recorded and timed.
    /// An empty path means none. Default: none.
    pub report_file: Option<std::path::PathBuf>,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            shutdown_timeout: Duration::from_secs(5),
            startup_timeout: None,
            services_start_concurrently: false,
            services_stop_concurrently: false,
            background_service_exception_behavior: BackgroundServiceExceptionBehavior::StopHost,
            report_file: None,
        }
    }
}

// ===== the [host] section =====

impl HostOptions {
    /// The name of the configuration section the host reads.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apphost::HostOptions::SECTION, "host");
    /// ```
    pub const SECTION: &'static str = "host";

    /// The `[host]` section, to [register](crate::config::ConfigOptions::register)
    /// so that loading checks it in every layer
    /// ([`console::run`](crate::console::run) does).
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::config::ConfigOptions;
    /// let err = ConfigOptions::default()
    ///     .env_vars([("APPHOST__HOST__SHUTDOWN_TIMOUT", "1s")])
    ///     .register(apphost::HostOptions::section())
    ///     .load()
    ///     .unwrap_err();
    /// assert!(err.to_string().ends_with("did you mean host.shutdown_timeout?"), "{err}");
    /// ```
    pub fn section() -> Section {
        Section::new::<HostOptions>(Self::SECTION)
    }
}

impl Configuration {
    /// The `[host]` section as [`HostOptions`]; defaults if absent.
    ///
    /// # Errors
    ///
    /// As [`section`](Self::section): the source, key and expectation of
    /// the first bad value (in any layer that sets `[host]`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// let config = ConfigOptions::default()
    ///     .set("host.startup_timeout", "30s")
    /// #   .env_vars(Vec::<(String, String)>::new())
    ///     .load().unwrap();
    /// assert_eq!(config.host_options().unwrap().startup_timeout.unwrap().as_secs(), 30);
    /// ```
    pub fn host_options(&self) -> Result<HostOptions, ConfigError> {
        self.section(HostOptions::SECTION)
    }
}

// ===== serde =====

impl HostOptions {
    /// The keys accepted under `[host]`, in documentation order.
    pub(crate) const KEYS: &'static [&'static str] = &[
        "shutdown_timeout",
        "startup_timeout",
        "services_start_concurrently",
        "services_stop_concurrently",
        "background_service_exception_behavior",
        "report_file",
    ];
}

impl<'de> de::Deserialize<'de> for BackgroundServiceExceptionBehavior {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BehaviorVisitor;

        impl de::Visitor<'_> for BehaviorVisitor {
            type Value = BackgroundServiceExceptionBehavior;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"stop_host\" or \"ignore\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                // Fold case and separators so snake_case, PascalCase (.NET's
                // spelling) and kebab-case all name the same variant.
                let folded: String = v
                    .chars()
                    .filter(|c| !matches!(c, '_' | '-'))
                    .map(|c| c.to_ascii_lowercase())
                    .collect();
                match folded.as_str() {
                    "stophost" => Ok(BackgroundServiceExceptionBehavior::StopHost),
                    "ignore" => Ok(BackgroundServiceExceptionBehavior::Ignore),
                    _ => Err(E::custom(format_args!(
                        "expected \"stop_host\" or \"ignore\", found {v:?}"
                    ))),
                }
            }
        }

        deserializer.deserialize_str(BehaviorVisitor)
    }
}

impl<'de> de::Deserialize<'de> for HostOptions {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct("HostOptions", Self::KEYS, HostOptionsVisitor)
    }
}

struct HostOptionsVisitor;

/// Wrappers so each field goes through the shared, lenient-but-strict
/// parsers (strings from the environment are accepted, floats are not).
struct Secs(Duration);
struct OptSecs(Option<Duration>);
struct Flag(bool);

impl<'de> de::Deserialize<'de> for Secs {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_duration(d).map(Secs)
    }
}

impl<'de> de::Deserialize<'de> for OptSecs {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_optional_duration(d).map(OptSecs)
    }
}

impl<'de> de::Deserialize<'de> for Flag {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_bool(d).map(Flag)
    }
}

impl<'de> de::Visitor<'de> for HostOptionsVisitor {
    type Value = HostOptions;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of host options")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<HostOptions, A::Error> {
        let mut options = HostOptions::default();
        let mut seen: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            match key.as_str() {
                "shutdown_timeout" => options.shutdown_timeout = map.next_value::<Secs>()?.0,
                "startup_timeout" => options.startup_timeout = map.next_value::<OptSecs>()?.0,
                "services_start_concurrently" => {
                    options.services_start_concurrently = map.next_value::<Flag>()?.0;
                }
                "services_stop_concurrently" => {
                    options.services_stop_concurrently = map.next_value::<Flag>()?.0;
                }
                "background_service_exception_behavior" => {
                    options.background_service_exception_behavior = map.next_value()?;
                }
                "report_file" => {
                    let path: std::path::PathBuf = map.next_value()?;
                    options.report_file = (!path.as_os_str().is_empty()).then_some(path);
                }
                // serde's standard error: the configuration turns it into
                // "unknown key host.x; did you mean host.y?".
                _ => return Err(de::Error::unknown_field(&key, Self::Value::KEYS)),
            }
            seen.push(key);
        }
        Ok(options)
    }
}

// ===== values set in code =====

/// A deferred [`HostBuilder::configure_options`](crate::host::HostBuilder::configure_options) call.
pub(crate) type Configure<'a> = Box<dyn FnMut(&mut HostOptions) + Send + 'a>;

/// Which [`HostOptions`] fields code set with
/// [`HostBuilder::configure_options`](crate::host::HostBuilder::configure_options):
/// recorded at build, not inferred from a difference, so a value set in
/// code keeps winning on reload even when it equals the file's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CodeSet {
    shutdown_timeout: bool,
    startup_timeout: bool,
    services_start_concurrently: bool,
    services_stop_concurrently: bool,
    background_service_exception_behavior: bool,
    report_file: bool,
}

impl CodeSet {
    /// Runs the `configure` closures on `from_config` (the result) and again
    /// on a copy whose every field differs from it: a field is set in code
    /// if either run changed it. A closure that writes a field therefore
    /// counts even when it writes the value the configuration gave.
    pub(crate) fn apply(
        from_config: &HostOptions,
        configure: &mut [Configure<'_>],
    ) -> (HostOptions, CodeSet) {
        let mut result = from_config.clone();
        for f in configure.iter_mut() {
            f(&mut result);
        }
        let sentinel = sentinel(from_config);
        let mut probe = sentinel.clone();
        for f in configure.iter_mut() {
            f(&mut probe);
        }
        let set = CodeSet {
            shutdown_timeout: result.shutdown_timeout != from_config.shutdown_timeout
                || probe.shutdown_timeout != sentinel.shutdown_timeout,
            startup_timeout: result.startup_timeout != from_config.startup_timeout
                || probe.startup_timeout != sentinel.startup_timeout,
            services_start_concurrently: result.services_start_concurrently
                != from_config.services_start_concurrently
                || probe.services_start_concurrently != sentinel.services_start_concurrently,
            services_stop_concurrently: result.services_stop_concurrently
                != from_config.services_stop_concurrently
                || probe.services_stop_concurrently != sentinel.services_stop_concurrently,
            background_service_exception_behavior: result.background_service_exception_behavior
                != from_config.background_service_exception_behavior
                || probe.background_service_exception_behavior
                    != sentinel.background_service_exception_behavior,
            report_file: result.report_file != from_config.report_file
                || probe.report_file != sentinel.report_file,
        };
        (result, set)
    }

    /// The options after a reload: each field takes `reloaded`'s value
    /// unless code set it.
    pub(crate) fn merge(self, current: &HostOptions, reloaded: &HostOptions) -> HostOptions {
        fn pick<T: Clone>(code: bool, current: &T, reloaded: &T) -> T {
            if code { current } else { reloaded }.clone()
        }
        HostOptions {
            shutdown_timeout: pick(
                self.shutdown_timeout,
                &current.shutdown_timeout,
                &reloaded.shutdown_timeout,
            ),
            startup_timeout: pick(
                self.startup_timeout,
                &current.startup_timeout,
                &reloaded.startup_timeout,
            ),
            services_start_concurrently: pick(
                self.services_start_concurrently,
                &current.services_start_concurrently,
                &reloaded.services_start_concurrently,
            ),
            services_stop_concurrently: pick(
                self.services_stop_concurrently,
                &current.services_stop_concurrently,
                &reloaded.services_stop_concurrently,
            ),
            background_service_exception_behavior: pick(
                self.background_service_exception_behavior,
                &current.background_service_exception_behavior,
                &reloaded.background_service_exception_behavior,
            ),
            report_file: pick(
                self.report_file,
                &current.report_file,
                &reloaded.report_file,
            ),
        }
    }
}

/// Options whose every field differs from `options`'.
fn sentinel(options: &HostOptions) -> HostOptions {
    let nudge = |d: Duration| {
        d.checked_add(Duration::from_nanos(1))
            .unwrap_or(d - Duration::from_nanos(1))
    };
    HostOptions {
        shutdown_timeout: nudge(options.shutdown_timeout),
        startup_timeout: match options.startup_timeout {
            Some(_) => None,
            None => Some(Duration::from_nanos(1)),
        },
        services_start_concurrently: !options.services_start_concurrently,
        services_stop_concurrently: !options.services_stop_concurrently,
        background_service_exception_behavior: match options.background_service_exception_behavior {
            BackgroundServiceExceptionBehavior::StopHost => {
                BackgroundServiceExceptionBehavior::Ignore
            }
            BackgroundServiceExceptionBehavior::Ignore => {
                BackgroundServiceExceptionBehavior::StopHost
            }
        },
        report_file: match options.report_file {
            Some(_) => None,
            None => Some(std::path::PathBuf::from("sentinel")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_value_equal_to_the_file_value_is_still_recorded_as_set_in_code() {
        let from_config = HostOptions {
            shutdown_timeout: Duration::from_secs(7),
            ..HostOptions::default()
        };
        let mut configure: Vec<Configure<'_>> =
            vec![Box::new(|o| o.shutdown_timeout = Duration::from_secs(7))];
        let (options, set) = CodeSet::apply(&from_config, &mut configure);
        assert_eq!(options.shutdown_timeout, Duration::from_secs(7));
        let reloaded = HostOptions {
            shutdown_timeout: Duration::from_secs(20),
            services_stop_concurrently: true,
            ..HostOptions::default()
        };
        let merged = set.merge(&options, &reloaded);
        assert_eq!(merged.shutdown_timeout, Duration::from_secs(7), "code wins");
        assert!(
            merged.services_stop_concurrently,
            "config follows the reload"
        );
    }

    #[test]
    fn every_field_written_by_code_is_recorded_and_untouched_ones_are_not() {
        let from_config = HostOptions::default();
        let mut configure: Vec<Configure<'_>> = vec![Box::new(|o| {
            o.startup_timeout = None;
            o.services_start_concurrently = false;
            o.background_service_exception_behavior = BackgroundServiceExceptionBehavior::StopHost;
        })];
        let (_, set) = CodeSet::apply(&from_config, &mut configure);
        assert_eq!(
            set,
            CodeSet {
                startup_timeout: true,
                services_start_concurrently: true,
                background_service_exception_behavior: true,
                ..CodeSet::default()
            }
        );
    }

    #[test]
    fn sentinel_differs_in_every_field_even_at_the_extremes() {
        let max = HostOptions {
            shutdown_timeout: Duration::MAX,
            startup_timeout: Some(Duration::MAX),
            ..HostOptions::default()
        };
        let s = sentinel(&max);
        assert_ne!(s.shutdown_timeout, max.shutdown_timeout);
        assert_ne!(s.startup_timeout, max.startup_timeout);
        assert_ne!(s.services_stop_concurrently, max.services_stop_concurrently);
        assert_ne!(s.report_file, max.report_file);
    }

    #[test]
    fn report_file_is_read_from_host_and_an_empty_path_means_none() {
        let options: HostOptions =
            toml::from_str(r#"report_file = "/run/app/report.json""#).unwrap();
        assert_eq!(
            options.report_file.as_deref(),
            Some(std::path::Path::new("/run/app/report.json"))
        );
        let options: HostOptions = toml::from_str("report_file = ''").unwrap();
        assert_eq!(options.report_file, None);
    }
}
