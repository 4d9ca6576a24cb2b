//! What the program did with a [`Configuration`]: the top-level sections it
//! read or registered (for [`Configuration::check_unread`]), and the
//! sections it watches; and a reload staged against them, validated as a
//! whole before anything is applied.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use config::Value;

use super::layer::Layer;
use super::watch::{Commit, Stage};
use super::{ConfigError, Configuration};
use crate::cancel::CancellationTokenSource;

/// What the program did with a configuration: the top-level sections it
/// read or registered, whether it opted out of the unread check, and the
/// sections it watches.
#[derive(Default)]
pub(crate) struct Tracking {
    pub(crate) read: BTreeSet<String>,
    pub(crate) allow_unread: bool,
    /// [`Configuration::check_unread`] was called: reloads check too.
    pub(crate) checked: bool,
    pub(crate) watches: Vec<Weak<dyn Stage>>,
}

impl fmt::Debug for Tracking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracking")
            .field("read", &self.read)
            .field("allow_unread", &self.allow_unread)
            .field("checked", &self.checked)
            .field("watches", &self.watches.len())
            .finish()
    }
}

/// A reload validated as a whole by [`Configuration::stage_reload`], ready
/// to be applied.
pub(crate) struct StagedReload {
    commits: Vec<Commit>,
    tracking: Tracking,
    /// The tracking `tracking` was copied from.
    from: Arc<Mutex<Tracking>>,
}

impl StagedReload {
    /// Gives every watch its new value and `next` the tracking of the
    /// configuration it replaces. Returns the sources to cancel once the
    /// new configuration is published, so callbacks see it.
    pub(crate) fn commit(self, next: &Configuration) -> Vec<CancellationTokenSource> {
        if !Arc::ptr_eq(&self.from, &next.tracking) {
            let mut tracking = next.tracking();
            tracking.read.extend(self.tracking.read);
            tracking.allow_unread |= self.tracking.allow_unread;
            tracking.checked |= self.tracking.checked;
            tracking.watches.extend(self.tracking.watches);
        }
        self.commits.into_iter().map(|commit| commit()).collect()
    }
}

impl Configuration {
    /// Checks that every top-level section (or variable) was read or
    /// registered by some part of the program, so a misspelled `[hosts]` or
    /// `APPHOST__WORKERS__BATCH` is an error instead of silently leaving
    /// defaults in force. [`console::run`](crate::console::run) calls it
    /// after your `configure` returned and the host was built, before the
    /// host starts; call it yourself at the same point if you build the
    /// host otherwise.
    ///
    /// Once it has been called, every [reload](crate::host::Host::reload)
    /// of this configuration is checked too: a reload that adds a section
    /// nobody reads is rejected.
    ///
    /// A program that reads a section only later (in a service's `start`,
    /// say) registers it with
    /// [`ConfigOptions::register`](super::ConfigOptions::register), reads
    /// or [`watch`](Self::watch)es it in `configure`, or opts out with
    /// [`ConfigOptions::allow_unread_sections`](super::ConfigOptions::allow_unread_sections).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first unread section (by name), the
    /// file or variable that set it, and the nearest known section.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::config::ConfigOptions;
    /// # #[derive(serde::Deserialize, Default)] #[serde(default)] struct Worker { batch: u32 }
    /// let config = ConfigOptions::default()
    ///     .env_vars([("APPHOST__WORKERS__BATCH", "16")])
    /// #   .default_directory("/no/such/dir")
    ///     .load().unwrap();
    /// let _worker: Worker = config.section("worker").unwrap();
    /// let err = config.check_unread().unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "APPHOST__WORKERS__BATCH: unknown section workers; did you mean worker?"
    /// );
    /// ```
    pub fn check_unread(&self) -> Result<(), ConfigError> {
        let mut tracking = self.tracking();
        tracking.checked = true;
        if tracking.allow_unread {
            return Ok(());
        }
        unknown_section(&self.layers, &tracking.read)
    }

    /// Validates `next` as a reload of this configuration, as a whole:
    /// unknown sections (unless opted out) and every live watch. Nothing
    /// changes until the result is committed.
    pub(crate) fn stage_reload(
        &self,
        next: &Configuration,
        check_unread: bool,
    ) -> Result<StagedReload, ConfigError> {
        let (read, allow_unread, checked, watches) = {
            let mut tracking = self.tracking();
            tracking.watches.retain(|w| w.strong_count() > 0);
            (
                tracking.read.clone(),
                tracking.allow_unread,
                tracking.checked,
                tracking.watches.clone(),
            )
        };
        if check_unread && checked {
            let next_tracking = next.tracking();
            if !allow_unread && !next_tracking.allow_unread {
                // Known: what was read before, what the reload has read of
                // `next` already (`[host]`, registered sections), and what
                // the configuration in force had: a reload is rejected for a
                // section it adds, not for one the program started with.
                let mut known: BTreeSet<String> =
                    read.union(&next_tracking.read).cloned().collect();
                for layer in self.layers.iter() {
                    known.extend(layer.root.keys().cloned());
                }
                unknown_section(&next.layers, &known)?;
            }
        }
        let mut commits = Vec::with_capacity(watches.len());
        for watch in watches.iter().filter_map(Weak::upgrade) {
            commits.push(watch.stage(next)?);
        }
        Ok(StagedReload {
            commits,
            tracking: Tracking {
                read,
                allow_unread,
                checked,
                watches,
            },
            from: Arc::clone(&self.tracking),
        })
    }

    pub(super) fn mark_read(&self, key: &str) {
        let top = key.split(['.', '[']).next().unwrap_or(key);
        let mut tracking = self.tracking();
        if top.is_empty() {
            // The whole configuration was read.
            tracking.allow_unread = true;
        } else if !tracking.read.contains(top) {
            tracking.read.insert(top.to_owned());
        }
    }

    pub(crate) fn tracking(&self) -> MutexGuard<'_, Tracking> {
        self.tracking.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The first top-level key of `layers` (in layer order, then by name) that
/// is not in `known`, as an error naming the layer's source.
fn unknown_section(layers: &[Layer], known: &BTreeSet<String>) -> Result<(), ConfigError> {
    for layer in layers {
        let mut names: Vec<&String> = layer.root.keys().collect();
        names.sort();
        if let Some(name) = names.into_iter().find(|n| !known.contains(*n)) {
            let source = source_of(&layer.root[name]);
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            return Err(ConfigError::unknown_section(&source, name, &known));
        }
    }
    Ok(())
}

/// The source of a value: its own origin, or else its first leaf's.
fn source_of(value: &Value) -> String {
    if let Some(origin) = value.origin() {
        return origin.to_owned();
    }
    if let config::ValueKind::Table(table) = &value.kind {
        let mut names: Vec<&String> = table.keys().collect();
        names.sort();
        if let Some(first) = names.first() {
            return source_of(&table[*first]);
        }
    }
    "configuration".to_owned()
}
