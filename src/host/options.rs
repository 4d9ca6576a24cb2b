//! [`HostOptions`]: the knobs of the host's start and stop, and how they are
//! read from the `[host]` table of the configuration.

use std::fmt;
use std::time::Duration;

use serde::de;

use crate::config::duration::{
    deserialize_bool, deserialize_duration, deserialize_optional_duration,
};

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
/// assert!(err.to_string().contains("did you mean `shutdown_timeout`?"));
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
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            shutdown_timeout: Duration::from_secs(5),
            startup_timeout: None,
            services_start_concurrently: false,
            services_stop_concurrently: false,
            background_service_exception_behavior: BackgroundServiceExceptionBehavior::StopHost,
        }
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
                _ => {
                    let hint = match crate::config::closest(&key, Self::Value::KEYS) {
                        Some(near) => format!("; did you mean `{near}`?"),
                        None => format!("; expected one of {}", Self::Value::KEYS.join(", ")),
                    };
                    return Err(de::Error::custom(format_args!("unknown key `{key}`{hint}")));
                }
            }
            seen.push(key);
        }
        Ok(options)
    }
}
