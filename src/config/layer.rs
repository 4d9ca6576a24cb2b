//! One configuration layer (a file, the environment, or values set in code)
//! read on its own, so every value remembers its source before the `config`
//! crate merges the layers.
//!
//! Each leaf [`Value`] carries its source as its `origin`: a file path, an
//! environment variable name, or [`IN_CODE`]. The `config` crate keeps
//! origins through its merge, so an error found after merging can still be
//! blamed on the right source.

use std::path::Path;

use config::{Map, Value, ValueKind};

use super::error::ConfigError;

/// The source name of values set through `ConfigOptions::set`.
pub(crate) const IN_CODE: &str = "value set in code";

/// A parsed layer: a table of origin-tagged values, plus the human-readable
/// names of what it was read from.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) names: Vec<String>,
    pub(crate) root: Map<String, Value>,
}

impl config::Source for Layer {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        // Top-level tables are deep-merged by the `config` crate, so a layer
        // that sets only `host.shutdown_timeout` keeps the other host keys.
        Ok(self.root.clone())
    }
}

// ===== reading =====

/// Reads a TOML file. A missing file is `Ok(None)` unless `required`.
pub(crate) fn file(path: &Path, required: bool) -> Result<Option<Layer>, ConfigError> {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::other(&name, "file not found"));
        }
        Err(e) => return Err(ConfigError::other(&name, format_args!("cannot read: {e}"))),
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let at = match e.span() {
            Some(span) => {
                let (line, column) = line_column(&text, span.start);
                format!(" at line {line}, column {column}")
            }
            None => String::new(),
        };
        ConfigError::other(
            &name,
            format_args!("invalid TOML{at}: {}", e.message().trim()),
        )
    })?;
    reject_dotted_keys(&table, "", &name)?;
    let root = table
        .into_iter()
        .map(|(k, v)| (k, from_toml(v, &name)))
        .collect();
    Ok(Some(Layer {
        names: vec![name],
        root,
    }))
}

/// A quoted key holding a dot (`"host.shutdown_timeout" = 1` at the top
/// level) is one key to TOML but a path to every reader of the merged
/// configuration: it would slip past the check of `[host]` and fail later,
/// or be read as a different key. Rejected, naming the file, so it is fixed
/// where it was written.
fn reject_dotted_keys(table: &toml::Table, parent: &str, file: &str) -> Result<(), ConfigError> {
    let mut keys: Vec<&String> = table.keys().collect();
    keys.sort();
    for key in keys {
        if key.contains(['.', '[', ']']) || key.is_empty() {
            let suggestion = match key.split_once('.') {
                Some((head, rest)) if !head.is_empty() && !rest.is_empty() => {
                    format!("; write it as a table: [{parent}{head}] with {rest} = ...")
                }
                _ => String::new(),
            };
            return Err(ConfigError::other(
                file,
                format_args!(
                    "key {:?}{}: expected a bare key (letters, digits, _ and -); a quoted key with a dot, a bracket or nothing in it is not allowed{suggestion}",
                    key,
                    if parent.is_empty() {
                        String::new()
                    } else {
                        format!(" in [{}]", parent.trim_end_matches('.'))
                    },
                ),
            ));
        }
        if let toml::Value::Table(inner) = &table[key] {
            reject_dotted_keys(inner, &format!("{parent}{key}."), file)?;
        }
    }
    Ok(())
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn from_toml(value: toml::Value, origin: &String) -> Value {
    let kind = match value {
        toml::Value::String(s) => ValueKind::String(s),
        toml::Value::Integer(i) => ValueKind::I64(i),
        toml::Value::Float(f) => ValueKind::Float(f),
        toml::Value::Boolean(b) => ValueKind::Boolean(b),
        // No option takes a date; keep the text so a service can parse it.
        toml::Value::Datetime(d) => ValueKind::String(d.to_string()),
        toml::Value::Array(items) => {
            ValueKind::Array(items.into_iter().map(|v| from_toml(v, origin)).collect())
        }
        toml::Value::Table(table) => ValueKind::Table(
            table
                .into_iter()
                .map(|(k, v)| (k, from_toml(v, origin)))
                .collect(),
        ),
    };
    Value::new(Some(origin), kind)
}

/// Variables named `{prefix}__SECTION__KEY`, sorted by name so the result
/// does not depend on the order of the process environment.
pub(crate) fn environment(
    prefix: &str,
    vars: &[(String, String)],
) -> Result<Option<Layer>, ConfigError> {
    let mut ours: Vec<(&str, &str, &str)> = vars
        .iter()
        .filter_map(|(name, value)| {
            let head = name.get(..prefix.len())?;
            let rest = name.get(prefix.len()..)?.strip_prefix("__")?;
            head.eq_ignore_ascii_case(prefix)
                .then_some((name.as_str(), rest, value.as_str()))
        })
        .collect();
    if ours.is_empty() {
        return Ok(None);
    }
    ours.sort_by(|a, b| a.0.cmp(b.0));
    let mut layer = Layer {
        names: Vec::new(),
        root: Map::new(),
    };
    for (name, rest, value) in ours {
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if path
            .iter()
            .any(|p| p.is_empty() || p.contains(['.', '[', ']']))
        {
            return Err(ConfigError::other(
                name,
                format_args!("expected a variable name such as {prefix}__HOST__SHUTDOWN_TIMEOUT"),
            ));
        }
        insert(
            &mut layer.root,
            &path,
            Value::new(Some(&name.to_owned()), value),
            false,
        )
        .map_err(|other| {
            ConfigError::other(
                name,
                format_args!("conflicts with {other}: one sets a table, the other a value"),
            )
        })?;
        layer.names.push(format!("environment variable {name}"));
    }
    Ok(Some(layer))
}

/// Values set in code, in the order they were set (a later one wins).
pub(crate) fn code(overrides: &[(String, String)]) -> Result<Option<Layer>, ConfigError> {
    if overrides.is_empty() {
        return Ok(None);
    }
    let origin = IN_CODE.to_owned();
    let mut root = Map::new();
    for (key, value) in overrides {
        let path: Vec<String> = key.split('.').map(|s| s.trim().to_owned()).collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::value(
                IN_CODE,
                key,
                "expected a dotted key such as \"host.shutdown_timeout\"",
            ));
        }
        let _ = insert(
            &mut root,
            &path,
            Value::new(Some(&origin), value.as_str()),
            true,
        );
    }
    Ok(Some(Layer {
        names: overrides
            .iter()
            .map(|(k, _)| format!("{IN_CODE}: {k}"))
            .collect(),
        root,
    }))
}

/// Puts `value` at `path`, creating tables on the way. When a table and a
/// value collide, `replace` decides: replace, or return the other's origin.
fn insert(
    table: &mut Map<String, Value>,
    path: &[String],
    value: Value,
    replace: bool,
) -> Result<(), String> {
    let Some((head, rest)) = path.split_first() else {
        return Ok(());
    };
    if rest.is_empty() {
        if let Some(old) = table.get(head) {
            if matches!(old.kind, ValueKind::Table(_)) && !replace {
                return Err(old.origin().unwrap_or("another variable").to_owned());
            }
        }
        table.insert(head.clone(), value);
        return Ok(());
    }
    let origin = value.origin().map(str::to_owned);
    let slot = table
        .entry(head.clone())
        .or_insert_with(|| Value::new(origin.as_ref(), Map::<String, Value>::new()));
    if !matches!(slot.kind, ValueKind::Table(_)) {
        if !replace {
            return Err(slot.origin().unwrap_or("another variable").to_owned());
        }
        *slot = Value::new(origin.as_ref(), Map::<String, Value>::new());
    }
    match &mut slot.kind {
        ValueKind::Table(inner) => insert(inner, rest, value, replace),
        _ => Ok(()),
    }
}
