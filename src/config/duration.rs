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
    /// A fraction finer than a nanosecond (`"0.0000000001s"`,
    /// `"2.999999999999s"`): durations are whole nanoseconds, and rounding
    /// silently would change the value.
    TooPrecise {
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
                "expected integer seconds or a string such as \"10s\" (a fraction needs a unit: \"1.5s\"), found {found}"
            ),
            DurationError::TooPrecise { found } => write!(
                f,
                "expected a duration in whole nanoseconds, found {found} (a fraction finer than 1ns)"
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
/// `"0s"`, `"1.5s"`, `"0.5m"`, `"2 days"`, or a bare integer such as `"7"`,
/// meaning seconds (environment variables are always strings, so
/// `APPHOST__HOST__SHUTDOWN_TIMEOUT=7` must work like `7` in a file).
///
/// Units: `ns`, `us`/`µs`, `ms`, `s`/`sec`/`second(s)`, `m`/`min`/`minute(s)`,
/// `h`/`hr`/`hour(s)`, `d`/`day(s)`, `w`/`week(s)` (and the other spellings
/// `humantime` knows, `months` and `years` included). A number with a unit
/// may have a fraction, kept exactly: it must come to whole nanoseconds.
/// Surrounding whitespace is ignored.
///
/// # Errors
///
/// A [`DurationError`] that names what was expected, for: an empty string,
/// a negative value, a bare number that is not an integer (`"1.5"`,
/// `"NaN"`, `"inf"`: write `"1.5s"`), a fraction finer than a nanosecond
/// (`"0.0000000001s"`), unparsable text, and anything above
/// [`MAX_DURATION`]. No input makes this function panic.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use apphost::config::{parse_duration, DurationError};
///
/// assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
/// assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
/// assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
/// assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
/// assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
/// assert!(parse_duration("ten seconds").is_err());
/// assert!(matches!(parse_duration("0.0000000001s"), Err(DurationError::TooPrecise { .. })));
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
    // the unit parser so the message says what to write instead.
    if trimmed.parse::<f64>().is_ok() {
        return Err(DurationError::NotInteger {
            found: quoted(value),
        });
    }
    let found = || quoted(value);
    let nanos = match parse_terms(trimmed) {
        Ok(nanos) => nanos,
        Err(Term::TooLarge) => return Err(DurationError::TooLarge { found: found() }),
        Err(Term::TooPrecise) => return Err(DurationError::TooPrecise { found: found() }),
        Err(Term::Invalid(reason)) => {
            return Err(DurationError::Invalid {
                found: found(),
                reason,
            });
        }
    };
    if nanos > MAX_DURATION.as_nanos() {
        return Err(DurationError::TooLarge { found: found() });
    }
    // At most 365 days of nanoseconds: fits in u64 seconds and u32 nanos.
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    let subsec = u32::try_from(nanos % NANOS_PER_SEC).unwrap_or(0);
    Ok(Duration::new(secs, subsec))
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Why a run of `<number> <unit>` terms was rejected.
enum Term {
    TooLarge,
    TooPrecise,
    Invalid(String),
}

/// Nanoseconds in one `unit`, with humantime's spellings (a month is
/// 30.44 days and a year 365.25 days, as there).
fn unit_nanos(unit: &str) -> Option<u128> {
    const S: u128 = NANOS_PER_SEC;
    Some(match unit {
        "nanos" | "nsec" | "ns" => 1,
        "usec" | "us" | "µs" => 1_000,
        "millis" | "msec" | "ms" => 1_000_000,
        "seconds" | "second" | "secs" | "sec" | "s" => S,
        "minutes" | "minute" | "min" | "mins" | "m" => 60 * S,
        "hours" | "hour" | "hr" | "hrs" | "h" => 3_600 * S,
        "days" | "day" | "d" => 86_400 * S,
        "weeks" | "week" | "wk" | "wks" | "w" => 7 * 86_400 * S,
        "months" | "month" | "M" => 2_630_016 * S,
        "years" | "year" | "y" => 31_557_600 * S,
        _ => return None,
    })
}

/// Sums `<integer>[.<fraction>] <unit>` terms exactly, in nanoseconds.
/// Anything beyond [`MAX_DURATION`] stops the sum early as too large.
fn parse_terms(text: &str) -> Result<u128, Term> {
    let limit = MAX_DURATION.as_nanos();
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.trim_start().is_empty() {
        let at = text.len() - rest.trim_start().len();
        rest = rest.trim_start();
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        if int_len == 0 {
            return Err(Term::Invalid(format!("expected a number at {at}")));
        }
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(after) => {
                let len = after.bytes().take_while(u8::is_ascii_digit).count();
                if len == 0 {
                    let at = text.len() - after.len();
                    return Err(Term::Invalid(format!("expected a digit at {at}")));
                }
                after.split_at(len)
            }
            None => ("", after),
        };
        let after = after.trim_start();
        let unit_len = after
            .char_indices()
            .find(|(_, c)| !(c.is_alphabetic()))
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(Term::Invalid(format!(
                "expected a unit such as \"s\" after {}",
                one_term(int, frac)
            )));
        }
        let Some(per_unit) = unit_nanos(unit) else {
            let shown = quoted(unit);
            return Err(Term::Invalid(format!(
                "unknown unit {shown}; expected ns, us, ms, s, m, h, d or w"
            )));
        };
        // Integer part: any digit run longer than 39 overflows u128, and
        // anything above the limit is too large already.
        let int: u128 = int.parse().map_err(|_| Term::TooLarge)?;
        let mut nanos = int.checked_mul(per_unit).ok_or(Term::TooLarge)?;
        let frac = frac.trim_end_matches('0');
        if !frac.is_empty() {
            // A unit is at most 3.2e16 ns, so a fraction with more than 17
            // significant digits can never come to whole nanoseconds.
            if frac.len() > 17 {
                return Err(Term::TooPrecise);
            }
            let digits: u128 = frac.parse().map_err(|_| Term::TooPrecise)?;
            let scale = 10u128.pow(u32::try_from(frac.len()).unwrap_or(17));
            let scaled = digits * per_unit; // < 1e17 * 3.2e16, fits u128
            if scaled % scale != 0 {
                return Err(Term::TooPrecise);
            }
            nanos = nanos.checked_add(scaled / scale).ok_or(Term::TooLarge)?;
        }
        total = total.checked_add(nanos).ok_or(Term::TooLarge)?;
        if total > limit {
            return Err(Term::TooLarge);
        }
        rest = after;
    }
    Ok(total)
}

/// `int.frac` as written, for messages.
fn one_term(int: &str, frac: &str) -> String {
    if frac.is_empty() {
        quoted(int)
    } else {
        quoted(&format!("{int}.{frac}"))
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
