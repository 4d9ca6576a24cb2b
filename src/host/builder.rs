//! [`HostBuilder`]: register services, set options, build a [`Host`].

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Host;
use super::adapter::Hooks;
use super::background::Background;
use super::build_error::BuildError;
use super::graph::{Graph, Node};
use super::hub::Hub;
use super::inner::{Entry, EntryKind, HostInner, Once};
use super::lifetime::ApplicationLifetime;
use super::options::{CodeSet, Configure, HostOptions};
use super::plan::{self, ConfigureService};
use super::reload::ConfigReloads;
use super::service::{BackgroundService, HostedService};
use super::service_options::ServiceOptions;
use super::subscription::LifecycleEvents;
use crate::cancel::CancellationTokenSource;
use crate::config::Configuration;

/// Builds a [`Host`]: services in registration order (the start order; stop
/// is the reverse), and [`HostOptions`].
///
/// Options come from, later winning: the defaults, the `[host]` section of the
/// [`configuration`](Self::configuration) if one is given, then the
/// [`configure_options`](Self::configure_options) closures. `'a` is the
/// lifetime of what those closures borrow.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use apphost::CancellationToken;
/// use apphost::host::{BackgroundService, Host, HostedService};
///
/// struct Db;
/// impl HostedService for Db {
///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
/// }
///
/// struct Worker;
/// impl BackgroundService for Worker {
///     async fn execute(&self, stopping: CancellationToken) -> anyhow::Result<()> {
///         stopping.cancelled().await;
///         Ok(())
///     }
/// }
///
/// let host = Host::builder()
///     .add_hosted_service(Db)
///     .add_background_service(Worker)
///     .configure_options(|o| o.shutdown_timeout = Duration::from_secs(2))
///     .build()
///     .unwrap();
/// assert_eq!(host.options().shutdown_timeout, Duration::from_secs(2));
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct HostBuilder<'a> {
    options: HostOptions,
    services: Vec<Entry>,
    lifetime: ApplicationLifetime,
    /// Applied in `build`, after the configuration's `[host]` section.
    configure: Vec<Configure<'a>>,
    /// Applied in `build`, after the configuration's `[services.<name>]` sections.
    configure_services: Vec<ConfigureService<'a>>,
    configuration: Option<Configuration>,
    reloads: ConfigReloads,
}

impl Default for HostBuilder<'_> {
    fn default() -> Self {
        HostBuilder {
            options: HostOptions::default(),
            services: Vec::new(),
            lifetime: ApplicationLifetime::new(Hub::new()),
            configure: Vec::new(),
            configure_services: Vec::new(),
            configuration: None,
            reloads: ConfigReloads::new(Configuration::empty()),
        }
    }
}

impl<'a> HostBuilder<'a> {
    /// An empty builder with default options; the same as [`Host::builder`].
    ///
    /// # Examples
    ///
    /// ```
    /// let host = apphost::host::HostBuilder::new().build().unwrap();
    /// assert_eq!(host.options(), apphost::HostOptions::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The lifetime of the host this builder builds, for services that need
    /// it (to call [`stop_application`](ApplicationLifetime::stop_application),
    /// or watch `started()`) before the host exists.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::CancellationToken;
    /// use apphost::host::{ApplicationLifetime, Host, HostedService};
    ///
    /// /// Does its job in `start`, then asks the application to stop.
    /// struct OneShot(ApplicationLifetime);
    /// impl HostedService for OneShot {
    ///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> {
    ///         self.0.stop_application();
    ///         Ok(())
    ///     }
    ///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let builder = Host::builder();
    /// let lifetime = builder.lifetime();
    /// let host = builder.add_hosted_service(OneShot(lifetime)).build().unwrap();
    /// host.run().await.unwrap(); // returns once OneShot asked to stop
    /// # }
    /// ```
    pub fn lifetime(&self) -> ApplicationLifetime {
        self.lifetime.clone()
    }

    /// The handle through which services see the host's current
    /// configuration and learn of each reload (see [`Host::reload`]), to
    /// hand to a service before the host is built.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = apphost::Host::builder();
    /// let reloads = builder.reloads();
    /// assert_eq!(reloads.count(), 0);
    /// # drop(builder);
    /// ```
    pub fn reloads(&self) -> ConfigReloads {
        self.reloads.clone()
    }

    /// Records every call in the [`HostReport`](crate::host::HostReport)
    /// ([`Host::report`]), timed, as when someone subscribes to the events
    /// or `host.report_file` is set. Without any of the three, the report
    /// lists only the calls that did not complete (the cost of recording
    /// every call is in BENCHMARKS.md).
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::CancellationToken;
    /// use apphost::host::{Host, HostedService};
    ///
    /// struct Web;
    /// impl HostedService for Web {
    ///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    ///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder().add_hosted_service(Web).record_every_call().build().unwrap();
    /// host.start(CancellationToken::none()).await.unwrap();
    /// host.stop(CancellationToken::none()).await.unwrap();
    /// let report = host.report().unwrap();
    /// assert_eq!(report.services[0].calls.len(), 2, "start and stop");
    /// # }
    /// ```
    pub fn record_every_call(self) -> Self {
        self.lifetime.events().set_record_every_call();
        self
    }

    /// A subscription to the lifecycle events of the host this builder
    /// builds, made before it exists, so that nothing is missed (the same
    /// as [`Host::events`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::CancellationToken;
    /// use apphost::host::{Host, HostState, LifecycleEvent};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let builder = Host::builder();
    /// let mut events = builder.events();
    /// let host = builder.build().unwrap();
    /// host.stop(CancellationToken::none()).await.unwrap();
    /// let first = events.recv().await.unwrap();
    /// assert!(matches!(first, LifecycleEvent::StateChanged { state: HostState::Stopping, .. }));
    /// # }
    /// ```
    pub fn events(&self) -> LifecycleEvents {
        self.lifetime.events().subscribe()
    }

    /// Registers a [`HostedService`]. Services start in registration order
    /// and stop in reverse. Its name is read once, here.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancellationToken;
    /// # use apphost::host::{Host, HostedService};
    /// struct Web;
    /// impl HostedService for Web {
    ///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    ///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    /// }
    /// let host = Host::builder().add_hosted_service(Web).build().unwrap();
    /// # drop(host);
    /// ```
    pub fn add_hosted_service<S: HostedService>(mut self, service: S) -> Self {
        let name = Arc::from(service.name());
        let kind = EntryKind::Hosted {
            service: Arc::new(service),
            hooks: Hooks::of::<S>(),
        };
        self.services.push(Entry {
            name,
            kind,
            started: AtomicBool::new(false),
        });
        self
    }

    /// Registers a [`BackgroundService`]. Its `execute` is launched after
    /// the host started; it is stopped at its place in the reverse
    /// registration order. Its name is read once, here.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apphost::CancellationToken;
    /// # use apphost::host::{BackgroundService, Host};
    /// struct Worker;
    /// impl BackgroundService for Worker {
    ///     async fn execute(&self, stopping: CancellationToken) -> anyhow::Result<()> {
    ///         stopping.cancelled().await;
    ///         Ok(())
    ///     }
    /// }
    /// let host = Host::builder().add_background_service(Worker).build().unwrap();
    /// # drop(host);
    /// ```
    pub fn add_background_service<S: BackgroundService>(mut self, service: S) -> Self {
        let name = Arc::from(service.name());
        let kind = EntryKind::Background(Background::new(Arc::new(service)));
        self.services.push(Entry {
            name,
            kind,
            started: AtomicBool::new(false),
        });
        self
    }

    /// Changes the [`HostOptions`]; calls apply in order, each seeing the
    /// previous ones' changes. They run in [`build`](Self::build), after the
    /// [`configuration`](Self::configuration)'s `[host]` section was read, so
    /// values set in code win over configuration, and keep winning on
    /// [`Host::reload`]. To learn which fields code sets (even to the value
    /// the file gives), `build` runs the closures twice, the second time on
    /// a scratch copy: a closure should only set options.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use apphost::host::Host;
    /// let host = Host::builder()
    ///     .configure_options(|o| o.startup_timeout = Some(Duration::from_secs(30)))
    ///     .configure_options(|o| o.services_stop_concurrently = true)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(host.options().startup_timeout, Some(Duration::from_secs(30)));
    /// assert!(host.options().services_stop_concurrently);
    /// ```
    pub fn configure_options(
        mut self,
        configure: impl FnMut(&mut HostOptions) + Send + 'a,
    ) -> Self {
        self.configure.push(Box::new(configure));
        self
    }

    /// Changes the [`ServiceOptions`] of the service named `name`: what it
    /// depends on and its own budgets. Calls apply in order, in
    /// [`build`](Self::build), after the configuration's `[services.<name>]`
    /// section was read, so values set in code win over configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use apphost::CancellationToken;
    /// use apphost::host::{Host, HostedService};
    ///
    /// struct Db;
    /// impl HostedService for Db {
    ///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    ///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    /// }
    /// struct Web;
    /// impl HostedService for Web {
    ///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    ///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    /// }
    ///
    /// // Web is registered first, but starts after Db and stops before it.
    /// let host = Host::builder()
    ///     .add_hosted_service(Web)
    ///     .add_hosted_service(Db)
    ///     .configure_service("Web", |o| o.depends_on = vec!["Db".into()])
    ///     .configure_service("Db", |o| o.stop_timeout = Some(Duration::from_secs(3)))
    ///     .build()
    ///     .unwrap();
    /// # drop(host);
    ///
    /// let err = Host::builder()
    ///     .add_hosted_service(Web)
    ///     .configure_service("Web", |o| o.depends_on = vec!["Dbb".into()])
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "service `Web` depends on `Dbb`, which is not registered");
    /// ```
    pub fn configure_service(
        mut self,
        name: impl Into<String>,
        configure: impl FnOnce(&mut ServiceOptions) + Send + 'a,
    ) -> Self {
        self.configure_services
            .push((name.into(), Box::new(configure)));
        self
    }

    /// Gives the host an already-loaded [`Configuration`]: [`build`](Self::build)
    /// reads [`HostOptions`] from its `[host]` section (before the
    /// [`configure_options`](Self::configure_options) closures), and
    /// [`Host::configuration`] returns it. Without it, the host reads no file
    /// and no environment variable.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use apphost::config::ConfigOptions;
    /// use apphost::host::Host;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let config = ConfigOptions::default()
    /// #   .directory(dir.path())
    ///     .env_vars([
    ///         ("APPHOST__HOST__SHUTDOWN_TIMEOUT", "10s"),
    ///         ("APPHOST__HOST__STARTUP_TIMEOUT", "30s"),
    ///     ])
    ///     .load()
    ///     .unwrap();
    /// let host = Host::builder()
    ///     .configure_options(|o| o.shutdown_timeout = Duration::from_secs(2)) // code wins
    ///     .configuration(config)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(host.options().shutdown_timeout, Duration::from_secs(2));
    /// assert_eq!(host.options().startup_timeout, Some(Duration::from_secs(30)));
    /// assert_eq!(host.configuration().sources().len(), 2);
    /// ```
    pub fn configuration(mut self, configuration: Configuration) -> Self {
        self.configuration = Some(configuration);
        self
    }

    /// Builds the host.
    ///
    /// # Errors
    ///
    /// [`BuildError::DuplicateName`] if two services have the same name,
    /// [`BuildError::EmptyName`] if a name is empty. (.NET silently keeps one
    /// instance per type; here two instances of one type are two services,
    /// and need two names.) [`BuildError::Config`] if the
    /// [`configuration`](Self::configuration)'s `[host]` section is bad.
    ///
    /// # Examples
    ///
    /// ```
    /// let host = apphost::host::Host::builder().build().unwrap();
    /// # drop(host);
    /// ```
    pub fn build(mut self) -> Result<Host, BuildError> {
        if let Some(configuration) = &self.configuration {
            self.options = configuration.host_options().map_err(BuildError::Config)?;
        }
        let (options, code_set) = CodeSet::apply(&self.options, &mut self.configure);
        self.options = options;
        let mut names = HashSet::with_capacity(self.services.len());
        for entry in &self.services {
            if entry.name.is_empty() {
                return Err(BuildError::EmptyName);
            }
            if !names.insert(&*entry.name) {
                return Err(BuildError::DuplicateName(Arc::clone(&entry.name)));
            }
        }
        drop(names);
        let service_options = plan::resolve(
            self.configuration.as_ref(),
            &self.services,
            std::mem::take(&mut self.configure_services),
        )?;
        let graph = if service_options.iter().all(|o| o.depends_on.is_empty()) {
            Graph::without_edges(self.services.len())
        } else {
            let nodes: Vec<Node<'_>> = self
                .services
                .iter()
                .zip(&service_options)
                .map(|(e, o)| Node {
                    name: &e.name,
                    depends_on: &o.depends_on,
                })
                .collect();
            Graph::build(&nodes)?
        };
        plan::check(&graph, &self.services, &service_options, &self.options)?;
        let own = |pick: fn(&ServiceOptions) -> Option<Duration>| -> Box<[Option<Duration>]> {
            if service_options.iter().all(|o| pick(o).is_none()) {
                Box::default()
            } else {
                service_options.iter().map(pick).collect()
            }
        };
        let own_start = own(|o| o.start_timeout);
        let own_stop = own(|o| o.stop_timeout);
        drop(service_options);
        // Kept as built: shrinking it would copy every entry.
        let entries = self.services;
        self.reloads
            .set_initial(self.configuration.clone(), code_set)
            .map_err(BuildError::Config)?;
        super::engine::keeper::prestart();
        super::panics::install_hook();
        let events = std::sync::Arc::clone(self.lifetime.events());
        events.set_report_file(self.options.report_file.is_some());
        events.set_services(entries.len());
        let inner = HostInner {
            events,
            options: Mutex::new(self.options),
            reloads: self.reloads,
            lifetime: self.lifetime,
            entries,
            graph,
            own_start,
            own_stop,
            abort_start: CancellationTokenSource::new(),
            stop_source: CancellationTokenSource::new(),
            start_once: Once::new(),
            stop_once: Once::new(),
            execute_failures: Arc::new(Mutex::new(Vec::new())),
        };
        Ok(Host::from_inner(Arc::new(inner)))
    }
}

impl fmt::Debug for HostBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.services.iter().map(|entry| &*entry.name).collect();
        f.debug_struct("HostBuilder")
            .field("options", &self.options)
            .field("services", &names)
            .finish()
    }
}
