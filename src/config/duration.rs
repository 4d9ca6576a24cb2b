//! Durations in configuration: one parser for files, environment variables
//! and code, with a hard upper bound so that no later `Instant + Duration`
//! can overflow.

use std::fmt;
use std::time::Duration;

use serde::de;

/// The largest duration accepted from configuration: 365 days.
///
/// Timeouts are added to `Instant::now()` by the host; bounding them here
/// means that arithmetic can never overflow or panic, and a value this large
/// is almost certainly a typo (`"10000d"`) rather than a real timeout.
///
/// # Examples
///
/// ```
/// use apphost::config::{parse_duration, MAX_DURATION};
/// assert_eq!(parse_duration("365d").unwrap(), MAX_DURATION);
/// assert!(parse_duration("366d").is_err());
/// ```
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How a duration is described in messages: shared so that every error says
/// the same thing.
const EXPECTED: &str = "a duration such as \"10s\" or integer seconds";

/// Inputs are echoed back in messages; a pasted megabyte should not be.
const MAX_ECHO: usize = 64;

/// Why a value could not be read as a duration.
///
/// The `Display` text says what was expected and what was found, so it can
/// be shown as is after the source and key (see
/// [`ConfigError`](crate::config::ConfigError)).
///
/// # Examples
///
/// ```
/// use apphost::config::{parse_duration, DurationError};
/// let err = parse_duration("-5s").unwrap_err();
/// assert!(matches!(err, DurationError::Negative { .. }));
/// assert_eq!(err.to_string(), "expected a non-negative duration, found \"-5s\"");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurationError {
    /// The value was empty or only whitespace.
    Empty,
    /// The value was negative.
    Negative {
        /// The value as written (shortened if very long).
        found: String,
    },
    /// The value was a non-integer number (including NaN and infinities).
    NotInteger {
        /// The value as written (shortened if very long).
        found: String,
    },
    /// The value was larger than [`MAX_DURATION`].
    TooLarge {
        /// The value as written (shortened if very long).
        found: String,
    },
    /// The value was not a duration at all.
    Invalid {
        /// The value as written (shortened if very long).
        found: String,
        /// What the duration parser objected to.
        reason: String,
    },
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Empty => write!(f, "expected {EXPECTED}, found an empty string"),
            DurationError::Negative { found } => {
                write!(f, "expected a non-negative duration, found {found}")
            }
            DurationError::NotInteger { found } => write!(
                f,
                "expected integer seconds or a string such as \"10s\", found {found}"
            ),
            DurationError::TooLarge { found } => write!(
                f,
                "expected a duration of at most 365 days (the maximum), found {found}"
            ),
            DurationError::Invalid { found, reason } => {
                write!(f, "expected {EXPECTED}, found {found} ({reason})")
            }
        }
    }
}

impl std::error::Error for DurationError {}

/// Quotes `s` for a message, shortening it to a bounded length.
fn quoted(s: &str) -> String {
    if s.chars().count() <= MAX_ECHO {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX_ECHO).collect();
        format!("{head:?}...")
    }
}

/// Parses a duration written for humans: `"10s"`, `"1m 30s"`, `"250ms"`,
/// `"0s"`, `"2 days"` (any unit [`humantime`] knows), or a bare integer
/// such as `"7"`, meaning seconds (environment variables are always strings,
/// so `APPHOST__HOST__SHUTDOWN_TIMEOUT=7` must work like `7` in a file).
///
/// Surrounding whitespace is ignored.
///
/// # Errors
///
/// Empty strings, negative values, non-integer bare numbers (`"1.5"`,
/// `"NaN"`, `"inf"`), unparsable text and anything above [`MAX_DURATION`]
/// are rejected with a [`DurationError`] that names what was expected. No
/// input makes this function panic.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use apphost::config::parse_duration;
///
/// assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
/// assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
/// assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
/// assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
/// assert!(parse_duration("ten seconds").is_err());
/// ```
pub fn parse_duration(value: &str) -> Result<Duration, DurationError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(DurationError::Empty);
    }
    if trimmed.starts_with('-') {
        return Err(DurationError::Negative {
            found: quoted(value),
        });
    }
    if trimmed.bytes().all(|b| b.is_ascii_digit()) {
        // A long run of digits overflows u64: that is "too large", not garbage.
        return match trimmed.parse::<u64>() {
            Ok(secs) => from_secs(secs, || quoted(value)),
            Err(_) => Err(DurationError::TooLarge {
                found: quoted(value),
            }),
        };
    }
    // "1.5", "NaN", "inf": numbers, but not integer seconds. Checked before
    // humantime so the message says what to write instead.
    if trimmed.parse::<f64>().is_ok() {
        return Err(DurationError::NotInteger {
            found: quoted(value),
        });
    }
    match humantime::parse_duration(trimmed) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        Ok(_) | Err(humantime::DurationError::NumberOverflow) => Err(DurationError::TooLarge {
            found: quoted(value),
        }),
        Err(e) => Err(DurationError::Invalid {
            found: quoted(value),
            reason: e.to_string(),
        }),
    }
}

/// Whole seconds, bounded by [`MAX_DURATION`].
fn from_secs(secs: u64, found: impl FnOnce() -> String) -> Result<Duration, DurationError> {
    if secs <= MAX_DURATION.as_secs() {
        Ok(Duration::from_secs(secs))
    } else {
        Err(DurationError::TooLarge { found: found() })
    }
}

// ===== serde =====

/// Deserializes a duration written as a string for [`parse_duration`] or as
/// non-negative integer seconds.
///
/// Use it for duration fields in a service's own configuration section.
///
/// # Errors
///
/// Anything [`parse_duration`] rejects, plus negative integers, floats
/// (NaN and infinities included) and non-scalar values, each with a message
/// that says what was expected and what was found.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// #[derive(serde::Deserialize)]
/// struct Worker {
///     #[serde(deserialize_with = "apphost::config::deserialize_duration")]
///     interval: Duration,
/// }
///
/// let config = apphost::config::ConfigOptions::default()
///     .env_vars(Vec::<(String, String)>::new())
///     .set("worker.interval", "1m 30s")
///     .load()
///     .unwrap();
/// let worker: Worker = config.section("worker").unwrap();
/// assert_eq!(worker.interval, Duration::from_secs(90));
/// ```
pub fn deserialize_duration<'de, D>(deserializer: D) -> Result<Duration, D::Error>
where
    D: de::Deserializer<'de>,
{
    deserializer
        .deserialize_any(DurationVisitor { optional: false })?
        .ok_or_else(|| de::Error::custom(format!("expected {EXPECTED}, found \"none\"")))
}

/// Like [`deserialize_duration`], but `"none"` or `"infinite"` (any case)
/// mean `None`: no limit.
///
/// # Errors
///
/// As [`deserialize_duration`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// #[derive(serde::Deserialize)]
/// struct Job {
///     #[serde(deserialize_with = "apphost::config::deserialize_optional_duration")]
///     deadline: Option<Duration>,
/// }
///
/// let job: Job = toml::from_str(r#"deadline = "infinite""#).unwrap();
/// assert_eq!(job.deadline, None);
/// let job: Job = toml::from_str("deadline = 30").unwrap();
/// assert_eq!(job.deadline, Some(Duration::from_secs(30)));
/// ```
pub fn deserialize_optional_duration<'de, D>(deserializer: D) -> Result<Option<Duration>, D::Error>
where
    D: de::Deserializer<'de>,
{
    deserializer.deserialize_any(DurationVisitor { optional: true })
}

/// Accepts every spelling of a duration; `optional` also accepts the words
/// meaning "no limit".
struct DurationVisitor {
    optional: bool,
}

impl<'de> de::Visitor<'de> for DurationVisitor {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)?;
        if self.optional {
            f.write_str(", or \"none\"")?;
        }
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        from_secs(v, || v.to_string()).map(Some).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(DurationError::Negative {
                found: v.to_string(),
            })),
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(DurationError::TooLarge {
                found: v.to_string(),
            })),
        }
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
        if v < 0 {
            Err(E::custom(DurationError::Negative {
                found: v.to_string(),
            }))
        } else {
            self.visit_u128(v.unsigned_abs())
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // Negative floats are reported as negative: that is the first thing
        // to fix. Everything else (1.5, NaN, inf) is "not integer seconds".
        let found = v.to_string();
        if v < 0.0 {
            Err(E::custom(DurationError::Negative { found }))
        } else {
            Err(E::custom(DurationError::NotInteger { found }))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let word = v.trim();
        if self.optional
            && (word.eq_ignore_ascii_case("none") || word.eq_ignore_ascii_case("infinite"))
        {
            return Ok(None);
        }
        parse_duration(v).map(Some).map_err(E::custom)
    }
}

/// A boolean that also accepts the strings `"true"`/`"false"` in any case,
/// because environment variables and values set in code are strings.
/// Deliberately not `yes`/`on`/`1`: one spelling per value keeps files greppable.
pub(crate) fn deserialize_bool<'de, D>(deserializer: D) -> Result<bool, D::Error>
where
    D: de::Deserializer<'de>,
{
    struct BoolVisitor;

    impl de::Visitor<'_> for BoolVisitor {
        type Value = bool;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("true or false")
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
            match v.trim() {
                t if t.eq_ignore_ascii_case("true") => Ok(true),
                f if f.eq_ignore_ascii_case("false") => Ok(false),
                _ => Err(E::custom(format!(
                    "expected true or false, found {}",
                    quoted(v)
                ))),
            }
        }
    }

    deserializer.deserialize_any(BoolVisitor)
}
