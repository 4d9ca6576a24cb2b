//! [`Section`]: how a part of the program registers the top-level section
//! it reads (its name, its keys and a typed validator), so that the
//! configuration can check it in every layer without knowing its type.
//!
//! The configuration knows no consumer: `[host]`, `[logging]` and
//! `[console]` are registered by the host, the logging set-up and the
//! console runner, exactly like a service's own `[worker]`.

use std::fmt;
use std::sync::Arc;

use config::{Map, Value, ValueKind};
use serde::de::{self, DeserializeOwned};

use super::error::{ConfigError, lookup};
use super::layer::IN_CODE;

/// The type-erased check of one section in one layer.
type Check = Arc<dyn Fn(&Value, &str) -> Result<(), ConfigError> + Send + Sync>;

/// A registered top-level section: its name, the keys its type accepts, key
/// aliases, and a validator that deserializes its type.
///
/// Register it with [`ConfigOptions::register`](super::ConfigOptions::register):
/// [`load`](super::ConfigOptions::load) then checks the section in every
/// layer (each file, the variables, the values set in code) before merging,
/// so a bad value in a file is reported against that file even when a
/// variable overrides it, and the section counts as read for
/// [`Configuration::check_unread`](super::Configuration::check_unread).
///
/// The type must deserialize from a partial table, as a
/// `#[serde(default)]` struct does, because each layer is checked on its
/// own (a missing field is not reported per layer; the merged read reports
/// it). A struct that denies unknown fields (`#[serde(deny_unknown_fields)]`)
/// gets the nearest valid key suggested for an unknown one. A map-shaped section
/// (`BTreeMap<String, T>`, such as `[services.<name>]`) accepts any entry
/// name; each entry is checked as a `T`.
///
/// # Examples
///
/// ```
/// use apphost::config::{ConfigOptions, Section};
///
/// #[derive(serde::Deserialize, Default)]
/// #[serde(default, deny_unknown_fields)]
/// struct Worker { batch: u32 }
///
/// let err = ConfigOptions::default()
///     .env_vars([("APPHOST__WORKER__BACTH", "16")])
///     .register(Section::new::<Worker>("worker"))
///     .load()
///     .unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "APPHOST__WORKER__BACTH: unknown key worker.bacth; did you mean worker.batch?"
/// );
/// ```
#[derive(Clone)]
pub struct Section {
    name: String,
    aliases: Vec<(String, String)>,
    check: Check,
}

impl Section {
    /// A section named `name` (a top-level key such as `"worker"`) read as
    /// a `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// let section = apphost::config::Section::new::<apphost::HostOptions>("host");
    /// assert_eq!(section.name(), "host");
    /// ```
    pub fn new<T: DeserializeOwned + 'static>(name: impl Into<String>) -> Self {
        Section {
            name: name.into(),
            aliases: Vec::new(),
            check: Arc::new(check_layer::<T>),
        }
    }

    /// Accepts `alias` as another name of `key` (`level` for `filter`):
    /// within each layer the alias is renamed to the key before the layers
    /// are merged, so a file's `filter` and a variable's `LEVEL` are one
    /// key; one layer setting both is an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::config::{ConfigOptions, Section};
    /// use apphost::logging::LoggingOptions;
    ///
    /// let config = ConfigOptions::default()
    ///     .env_vars([("APPHOST__LOGGING__LEVEL", "debug")])
    ///     .set("logging.filter", "warn")
    ///     .register(Section::new::<LoggingOptions>("logging").alias("level", "filter"))
    ///     .load()
    ///     .unwrap();
    /// assert_eq!(config.section::<LoggingOptions>("logging").unwrap().filter, "warn");
    /// ```
    pub fn alias(mut self, alias: impl Into<String>, key: impl Into<String>) -> Self {
        self.aliases.push((alias.into(), key.into()));
        self
    }

    /// The section's name.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[derive(serde::Deserialize)] struct Echo {}
    /// assert_eq!(apphost::config::Section::new::<Echo>("echo").name(), "echo");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames aliases in one layer's table, then checks the section there.
    pub(crate) fn check(&self, root: &mut Map<String, Value>) -> Result<(), ConfigError> {
        let aliases: Vec<(&str, &str)> = self
            .aliases
            .iter()
            .map(|(a, k)| (a.as_str(), k.as_str()))
            .collect();
        rename_aliases(root, &self.name, &aliases)?;
        (self.check)(&Value::new(None, root.clone()), &self.name)
    }
}

/// Renames each `alias` of `root[section]` (one layer) to its key; the
/// alias and its key both in the layer is an error.
pub(crate) fn rename_aliases(
    root: &mut Map<String, Value>,
    section: &str,
    aliases: &[(&str, &str)],
) -> Result<(), ConfigError> {
    let Some(ValueKind::Table(table)) = root.get_mut(section).map(|v| &mut v.kind) else {
        return Ok(());
    };
    for (alias, key) in aliases {
        if let Some(value) = table.remove(*alias) {
            if table.contains_key(*key) {
                let source = value.origin().unwrap_or(IN_CODE).to_owned();
                return Err(ConfigError::value(
                    &source,
                    &format!("{section}.{alias}"),
                    format_args!(
                        "expected either {section}.{alias} or {section}.{key}, found both"
                    ),
                ));
            }
            table.insert((*key).to_owned(), value);
        }
    }
    Ok(())
}

impl fmt::Debug for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Section")
            .field("name", &self.name)
            .field("aliases", &self.aliases)
            .finish_non_exhaustive()
    }
}

/// Checks `root[section]` of one layer as a `T`: not a table, then each
/// value alone (keys `T` does not know first, then in the order of `T`'s
/// keys; sorted, so the first reported is stable), so the error names
/// exactly one key. Unknown keys are errors only if `T` rejects them
/// (`#[serde(deny_unknown_fields)]`). Missing fields are left to the merged
/// read: another layer may supply them.
pub(crate) fn check_layer<T: DeserializeOwned>(
    root: &Value,
    section: &str,
) -> Result<(), ConfigError> {
    let Some(value) = lookup(root, section) else {
        return Ok(());
    };
    let origin = |v: &Value| v.origin().unwrap_or(IN_CODE).to_owned();
    let keys = struct_keys::<T>();
    let ValueKind::Table(table) = &value.kind else {
        if keys.is_none() {
            // Not a struct (a number, a list, a map read from a scalar):
            // the value alone says whether it fits.
            return match T::deserialize(value.clone()) {
                Err(e) if !is_missing_field(&e) => Err(ConfigError::from_config(e, section, root)),
                _ => Ok(()),
            };
        }
        return Err(ConfigError::value(
            &origin(value),
            section,
            format_args!(
                "expected a table of {section} options, found {}",
                describe(&value.kind)
            ),
        ));
    };
    let mut names: Vec<&String> = table.keys().collect();
    names.sort();
    if let Some(keys) = keys {
        // Keys the type does not know come first (position `None`): the type
        // itself rejects them if it denies unknown fields, and then that is
        // the error to report.
        names.sort_by_key(|n| keys.iter().position(|k| k == n));
    }
    for name in names {
        let single: Map<String, Value> = [(name.clone(), table[name].clone())].into();
        let single = Value::new(value.origin().map(str::to_owned).as_ref(), single);
        if let Err(e) = T::deserialize(single) {
            if !matches!(e, config::ConfigError::NotFound(_)) && !is_missing_field(&e) {
                return Err(ConfigError::from_config(e, section, root));
            }
        }
    }
    Ok(())
}

/// serde's derive reports a missing field as a custom "missing field" error.
fn is_missing_field(err: &config::ConfigError) -> bool {
    match err {
        config::ConfigError::At { error, .. } => is_missing_field(error),
        config::ConfigError::Message(m) => m.starts_with("missing field"),
        _ => false,
    }
}

/// A short description of a value for "found ..." messages.
pub(crate) fn describe(kind: &ValueKind) -> String {
    match kind {
        ValueKind::String(s) => format!("{s:?}"),
        ValueKind::Table(_) => "a table".to_owned(),
        ValueKind::Array(_) => "an array".to_owned(),
        ValueKind::Nil => "nothing".to_owned(),
        other => other.to_string(),
    }
}

// ===== the keys of a struct =====

/// The field names `T`'s `Deserialize` passes to `deserialize_struct` (a
/// derived struct's fields and aliases, or a hand-written list), or `None`
/// for anything else (a map accepts any key).
pub(crate) fn struct_keys<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    let mut keys = None;
    let _ = T::deserialize(KeysOf { keys: &mut keys });
    keys
}

/// A deserializer that only records the field list of a struct and stops.
struct KeysOf<'a> {
    keys: &'a mut Option<&'static [&'static str]>,
}

/// The error [`KeysOf`] stops with; never shown.
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field list recorded")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for KeysOf<'_> {
    type Error = Stop;

    fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        *self.keys = Some(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Two {
        #[serde(alias = "b")]
        a: u32,
        c: u32,
    }

    #[test]
    fn struct_keys_lists_fields_and_aliases_and_none_for_maps() {
        assert_eq!(struct_keys::<Two>(), Some(&["a", "b", "c"][..]));
        assert_eq!(struct_keys::<BTreeMap<String, Two>>(), None);
        assert_eq!(struct_keys::<u32>(), None);
    }
}
