//! [`ConfigError`]: one error type for every configuration problem, always
//! naming where the bad value came from.

use std::fmt;

use config::{Value, ValueKind};

/// A configuration problem: which source, which key, and what was expected.
///
/// The `Display` text starts with the source (a file path such as
/// `config/production.toml`, an environment variable such as
/// `APPHOST__HOST__SHUTDOWN_TIMEOUT`, or `value set in code`), then the key,
/// then what was expected and what was found:
///
/// ```text
/// config/default.toml: host.shutdown_timeout: expected a duration such as "10s" or integer seconds, found "ten seconds" (expected a number at 0)
/// config/default.toml: unknown key host.shutdown_timout; did you mean host.shutdown_timeout?
/// config/default.toml: invalid TOML at line 3, column 20: ...
/// ```
///
/// A host should report it and exit with [`ConfigError::EXIT_CODE`] before
/// any service starts.
///
/// # Examples
///
/// ```
/// use apphost::config::{ConfigError, ConfigOptions};
///
/// let err = ConfigOptions::default()
///     .env_vars([("APPHOST__HOST__SHUTDOWN_TIMEOUT", "-5")])
///     .register(apphost::HostOptions::section()) // as console::run does
///     .load()
///     .unwrap_err();
/// assert_eq!(err.source_name(), "APPHOST__HOST__SHUTDOWN_TIMEOUT");
/// assert_eq!(err.key(), Some("host.shutdown_timeout"));
/// assert_eq!(
///     err.to_string(),
///     "APPHOST__HOST__SHUTDOWN_TIMEOUT: host.shutdown_timeout: expected a non-negative duration, found \"-5\""
/// );
/// assert_eq!(err.exit_code(), ConfigError::EXIT_CODE);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    source_name: String,
    key: Option<String>,
    /// Everything after `"{source_name}: "`.
    message: String,
}

impl ConfigError {
    /// The process exit code for a configuration error: 78, `EX_CONFIG` from
    /// BSD `sysexits.h`, which supervisors and operators recognise as
    /// "fix the configuration, restarting will not help".
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apphost::config::ConfigError::EXIT_CODE, 78);
    /// ```
    pub const EXIT_CODE: u8 = 78;

    /// Where the bad value came from: a file path, an environment variable
    /// name, `value set in code`, or `configuration` when no single source
    /// is to blame (a required key missing everywhere).
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// let err = ConfigOptions::default()
    ///     .env_vars(Vec::<(String, String)>::new())
    ///     .set("host.services_start_concurrently", "maybe")
    ///     .register(apphost::HostOptions::section())
    ///     .load()
    ///     .unwrap_err();
    /// assert_eq!(err.source_name(), "value set in code");
    /// ```
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The dotted key at fault (`host.shutdown_timeout`), if the problem is
    /// about one key rather than a whole file.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// let err = ConfigOptions::default()
    ///     .env_vars(Vec::<(String, String)>::new())
    ///     .set("host.startup_timeout", "soon")
    ///     .register(apphost::HostOptions::section())
    ///     .load()
    ///     .unwrap_err();
    /// assert_eq!(err.key(), Some("host.startup_timeout"));
    /// ```
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The exit code a process should end with: always
    /// [`ConfigError::EXIT_CODE`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// let err = ConfigOptions::default()
    ///     .env_vars(Vec::<(String, String)>::new())
    ///     .directory("/no/such/apphost/dir")
    ///     .load()
    ///     .unwrap_err();
    /// assert_eq!(err.exit_code(), 78);
    /// ```
    pub fn exit_code(&self) -> u8 {
        Self::EXIT_CODE
    }

    /// A problem with the value of `key`: `"{source}: {key}: {what}"`.
    pub(crate) fn value(source: &str, key: &str, what: impl fmt::Display) -> Self {
        ConfigError::new(source, Some(key), format!("{key}: {what}"))
    }

    /// A problem with no single key: `"{source}: {message}"`.
    pub(crate) fn other(source: &str, message: impl fmt::Display) -> Self {
        ConfigError::new(source, None, message.to_string())
    }

    /// The one constructor: every part is made one line here (see
    /// [`one_line`]), so no message can span lines or forge a log line.
    fn new(source: &str, key: Option<&str>, message: String) -> Self {
        ConfigError {
            source_name: one_line(source),
            key: key.map(one_line),
            message: one_line(&message),
        }
    }

    /// A top-level section (or variable) that no part of the program read or
    /// registered, with the nearest known section if one is close.
    pub(crate) fn unknown_section(source: &str, name: &str, known: &[&str]) -> Self {
        let message = match closest(name, known) {
            Some(near) => format!("unknown section {name}; did you mean {near}?"),
            None if known.is_empty() => {
                format!("unknown section {name}: no part of the program reads it")
            }
            None => format!(
                "unknown section {name}: no part of the program reads it (known sections: {})",
                known.join(", ")
            ),
        };
        ConfigError::new(source, Some(name), message)
    }

    /// An unknown key, with the nearest valid key if one is close.
    /// `valid` holds the keys allowed next to it, without the parent path.
    pub(crate) fn unknown_key(source: &str, key: &str, valid: &[&str]) -> Self {
        let parent = match key.rfind('.') {
            Some(dot) => &key[..=dot],
            None => "",
        };
        let leaf = &key[parent.len()..];
        let message = match closest(leaf, valid) {
            Some(near) => format!("unknown key {key}; did you mean {parent}{near}?"),
            None if valid.is_empty() => format!("unknown key {key}"),
            None => {
                let list: Vec<String> = valid.iter().map(|v| format!("{parent}{v}")).collect();
                format!("unknown key {key}; expected one of {}", list.join(", "))
            }
        };
        ConfigError::new(source, Some(key), message)
    }

    /// Translates an error of the `config` crate's deserializer, raised while
    /// reading the value at `section` of `root`, into one that names the
    /// source of the offending value (looked up by key in `root`, whose
    /// leaves remember their origin).
    pub(crate) fn from_config(err: config::ConfigError, section: &str, root: &Value) -> Self {
        let (relative, inner) = split_key(err);
        let key = join(section, relative.as_deref().unwrap_or(""));
        let source = |key: &str| origin_of(root, key).unwrap_or_else(|| "configuration".into());
        match inner {
            Inner::Missing(field) => {
                let blame = source(&key);
                let key = join(&key, &field);
                ConfigError::value(
                    &blame,
                    &key,
                    "expected a value, found nothing (the key is missing from every source)",
                )
            }
            Inner::Message(message) => {
                // serde's derive reports unknown fields as
                // "unknown field `x`, expected one of `a`, `b`": recover the
                // names so the message matches our own unknown-key errors.
                if let Some(rest) = message.strip_prefix("unknown field ") {
                    let names: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
                    if let Some((field, valid)) = names.split_first() {
                        let full = join(&key, field);
                        return ConfigError::unknown_key(&source(&full), &full, valid);
                    }
                }
                ConfigError::value(&source(&key), &key, reword(&message))
            }
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source_name, self.message)
    }
}

impl std::error::Error for ConfigError {}

// ===== helpers =====

/// `text` with every control character escaped (`\n`, `\u{1b}`, ...), so a
/// message built from a key or value read from a file stays on one line.
pub(crate) fn one_line(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

enum Inner {
    Missing(String),
    Message(String),
}

/// Peels the key path off a `config` error, leaving the bare problem.
fn split_key(err: config::ConfigError) -> (Option<String>, Inner) {
    match err {
        config::ConfigError::At { error, key, .. } => {
            let (inner_key, inner) = split_key(*error);
            // The outer key is the full path; an inner one is only possible
            // for errors that were raised with their own key already set.
            (key.or(inner_key), inner)
        }
        config::ConfigError::Type {
            unexpected,
            expected,
            key,
            ..
        } => {
            let found = toml_words(&unexpected.to_string());
            (
                key,
                Inner::Message(format!("expected {expected}, found {found}")),
            )
        }
        config::ConfigError::NotFound(path) => {
            // The deserializer prepends parents to the missing field's name.
            match path.rfind('.') {
                Some(dot) => (
                    Some(path[..dot].to_owned()),
                    Inner::Missing(path[dot + 1..].to_owned()),
                ),
                None => (None, Inner::Missing(path)),
            }
        }
        other => (None, Inner::Message(other.to_string())),
    }
}

/// Rewrites serde's "invalid type: X, expected Y" as "expected Y, found X",
/// the order every other message uses.
fn reword(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some((found, expected)) = rest.split_once(", expected ") {
                return format!("expected {expected}, found {}", toml_words(found));
            }
        }
    }
    message.to_owned()
}

/// serde names containers "sequence" and "map"; configuration files call
/// them arrays and tables.
fn toml_words(found: &str) -> String {
    match found {
        "sequence" => "an array".to_owned(),
        "map" => "a table".to_owned(),
        other => other.to_owned(),
    }
}

fn join(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (_, true) => parent.to_owned(),
        (true, false) => child.to_owned(),
        (false, false) if child.starts_with('[') => format!("{parent}{child}"),
        (false, false) => format!("{parent}.{child}"),
    }
}

/// The value at a dotted path (`worker.targets[1].url`) under `root`.
pub(crate) fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut value = root;
    if path.is_empty() {
        return Some(value);
    }
    for segment in path.split('.') {
        let (name, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !name.is_empty() {
            value = match &value.kind {
                ValueKind::Table(table) => table.get(name)?,
                _ => return None,
            };
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let index: usize = index.trim_end_matches(']').parse().ok()?;
            value = match &value.kind {
                ValueKind::Array(items) => items.get(index)?,
                _ => return None,
            };
        }
    }
    Some(value)
}

/// The source of the value at `path`, walking up to the nearest ancestor
/// that exists (a missing field is blamed on the table that lacks it).
fn origin_of(root: &Value, path: &str) -> Option<String> {
    let mut path = path;
    loop {
        if let Some(origin) = lookup(root, path).and_then(own_or_leaf_origin) {
            return Some(origin);
        }
        path = &path[..path.rfind(['.', '['])?];
    }
}

/// A value's origin; for a table merged by the `config` crate (which keeps
/// origins on leaves only), the origin of its first leaf by name.
fn own_or_leaf_origin(value: &Value) -> Option<String> {
    if let Some(origin) = value.origin() {
        return Some(origin.to_owned());
    }
    match &value.kind {
        ValueKind::Table(table) => {
            let mut names: Vec<&String> = table.keys().collect();
            names.sort();
            names
                .into_iter()
                .find_map(|n| own_or_leaf_origin(&table[n]))
        }
        ValueKind::Array(items) => items.iter().find_map(own_or_leaf_origin),
        _ => None,
    }
}

/// The candidate nearest to `word` by edit distance, if it is close enough
/// to be a plausible typo: at most 2 edits, or a third of the word.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (levenshtein(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Classic two-row edit distance; inputs are short keys.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut row = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            row[j + 1] = substitute.min(prev[j + 1] + 1).min(row[j] + 1);
        }
        std::mem::swap(&mut prev, &mut row);
    }
    prev[b.len()]
}
