//! The service contracts: [`HostedService`] and [`BackgroundService`], and the
//! object-safe adapters the host drives them through.
//!
//! The public traits return `impl Future + Send`, so implementations write plain
//! `async fn` and need no macro. Such traits are not dyn-compatible, so the host
//! keeps each service behind a private object-safe trait (`DynHosted`,
//! `DynBackground` in `adapter.rs`) whose methods return boxed `'static` futures that own an
//! `Arc` of the service. A boxed `'static` future is what lets the host run the
//! calls in tasks of their own, apart from the task that keeps the deadline
//! (so a service blocking its thread cannot hold the host up).

use std::future::Future;
use std::sync::Arc;

use super::adapter::{NoopHook, short_type_name};
use crate::cancel::CancellationToken;

/// A service the host starts and stops: the Rust shape of .NET's
/// `IHostedService` plus `IHostedLifecycleService`.
///
/// The host calls, in this order and each phase for every service before the
/// next phase begins: [`starting`](Self::starting), [`start`](Self::start),
/// [`started`](Self::started) (registration order), and at shutdown
/// [`stopping`](Self::stopping), [`stop`](Self::stop),
/// [`stopped`](Self::stopped) (reverse registration order). The four lifecycle
/// hooks default to doing nothing, and a hook left at its default is not called
/// at all (it costs nothing). A service whose `start` never completed
/// successfully never sees any of the stop phases.
///
/// Every method gets a [`CancellationToken`]: during start it is cancelled by the
/// caller, by a stop request or by `startup_timeout`; during stop, by the caller
/// or when `shutdown_timeout` runs out. Returning an error whose root cause is
/// [`OperationCanceled`](crate::OperationCanceled) for that token is
/// *cooperative cancellation* and is reported as such, not as a failure of the
/// service's own (see [`crate::host`] for the details).
///
/// Calls run in tasks apart from the host's own: a panic is caught and
/// reported as the service's failure, and a call that ignores its token is
/// abandoned (its task aborted) at the deadline.
///
/// # Examples
///
/// ```
/// use apphost::CancellationToken;
/// use apphost::host::{Host, HostedService};
///
/// struct Cache;
///
/// impl HostedService for Cache {
///     async fn start(&self, _token: CancellationToken) -> anyhow::Result<()> {
///         // Warm the cache; give up if `_token` is cancelled.
///         Ok(())
///     }
///
///     async fn stop(&self, _token: CancellationToken) -> anyhow::Result<()> {
///         // Flush; hurry up once `_token` is cancelled.
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), apphost::host::HostError> {
/// let host = Host::builder().add_hosted_service(Cache).build().unwrap();
/// assert_eq!(Cache.name(), "Cache");
/// host.start(CancellationToken::none()).await?;
/// host.stop(CancellationToken::none()).await
/// # }
/// ```
pub trait HostedService: Send + Sync + 'static {
    /// Starts the service. Called once, in registration order, after every
    /// service's [`starting`](Self::starting). Start failing (an error, a
    /// panic, or giving up because `token` was cancelled) fails the host's
    /// start; this service is then not stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::CancellationToken;
    /// use apphost::host::{Host, HostedService};
    ///
    /// struct Listener;
    /// impl HostedService for Listener {
    ///     async fn start(&self, token: CancellationToken) -> anyhow::Result<()> {
    ///         // Give up (cooperatively) if the start is cancelled.
    ///         token.error_if_cancelled()?;
    ///         Ok(())
    ///     }
    ///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let host = Host::builder().add_hosted_service(Listener).build().unwrap();
    /// # host.start(CancellationToken::none()).await.unwrap();
    /// # }
    /// ```
    fn start(&self, token: CancellationToken) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Stops the service. Called once, in reverse registration order, after
    /// every service's [`stopping`](Self::stopping), and only if `start`
    /// completed successfully. `token` is cancelled when the shutdown budget
    /// runs out (reason [`TimedOut`](crate::CancelReason::TimedOut)) or the
    /// caller of `Host::stop` cuts the stop short: hurry up then.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use apphost::CancellationToken;
    /// use apphost::host::{Host, HostedService};
    ///
    /// struct Queue;
    /// impl HostedService for Queue {
    ///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    ///     async fn stop(&self, token: CancellationToken) -> anyhow::Result<()> {
    ///         let drain = tokio::time::sleep(Duration::from_secs(60)); // drain the queue
    ///         // Returns OperationCanceled if the budget runs out first.
    ///         token.run_until_cancelled(drain).await?;
    ///         Ok(())
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let host = Host::builder()
    ///     .add_hosted_service(Queue)
    ///     .configure_options(|o| o.shutdown_timeout = Duration::from_secs(1))
    ///     .build()
    ///     .unwrap();
    /// host.start(CancellationToken::none()).await.unwrap();
    /// let error = host.stop(CancellationToken::none()).await.unwrap_err();
    /// assert_eq!(error.to_string(), "stop of `Queue` timed out");
    /// # }
    /// ```
    fn stop(&self, token: CancellationToken) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Runs before any service's [`start`](Self::start). Does nothing by
    /// default. Failing here fails the start before any service starts.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::CancellationToken;
    /// use apphost::host::{Host, HostedService, LifecyclePhase};
    ///
    /// struct Migrations;
    /// impl HostedService for Migrations {
    ///     async fn starting(&self, _: CancellationToken) -> anyhow::Result<()> {
    ///         anyhow::bail!("schema is newer than this build")
    ///     }
    ///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    ///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder().add_hosted_service(Migrations).build().unwrap();
    /// let error = host.start(CancellationToken::none()).await.unwrap_err();
    /// assert_eq!(error.failures()[0].phase(), LifecyclePhase::Starting);
    /// # }
    /// ```
    fn starting(
        &self,
        token: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = token;
        NoopHook
    }

    /// Runs after every service's [`start`](Self::start), before the
    /// application's `started()` token fires. Does nothing by default.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use apphost::CancellationToken;
    /// use apphost::host::{Host, HostedService};
    ///
    /// struct Ready(Arc<AtomicBool>);
    /// impl HostedService for Ready {
    ///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    ///     async fn started(&self, _: CancellationToken) -> anyhow::Result<()> {
    ///         self.0.store(true, Ordering::Release); // every service has started
    ///         Ok(())
    ///     }
    ///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ready = Arc::new(AtomicBool::new(false));
    /// let host = Host::builder().add_hosted_service(Ready(Arc::clone(&ready))).build().unwrap();
    /// host.start(CancellationToken::none()).await.unwrap();
    /// assert!(ready.load(Ordering::Acquire));
    /// # }
    /// ```
    fn started(&self, token: CancellationToken) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = token;
        NoopHook
    }

    /// Runs first at shutdown (reverse order), before the application's
    /// `stopping()` token fires when the stop was not requested. Does nothing
    /// by default.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::CancellationToken;
    /// use apphost::host::{Host, HostedService};
    ///
    /// struct Health;
    /// impl HostedService for Health {
    ///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    ///     async fn stopping(&self, _: CancellationToken) -> anyhow::Result<()> {
    ///         // Report "not ready" before anything stops serving.
    ///         Ok(())
    ///     }
    ///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let host = Host::builder().add_hosted_service(Health).build().unwrap();
    /// # host.start(CancellationToken::none()).await.unwrap();
    /// # host.stop(CancellationToken::none()).await.unwrap();
    /// # }
    /// ```
    fn stopping(
        &self,
        token: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = token;
        NoopHook
    }

    /// Runs after every service's [`stop`](Self::stop) (reverse order),
    /// before the application's `stopped()` token fires. Does nothing by
    /// default.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::CancellationToken;
    /// use apphost::host::{Host, HostedService};
    ///
    /// struct Metrics;
    /// impl HostedService for Metrics {
    ///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    ///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    ///     async fn stopped(&self, _: CancellationToken) -> anyhow::Result<()> {
    ///         // Flush the last counters, now that every service has stopped.
    ///         Ok(())
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let host = Host::builder().add_hosted_service(Metrics).build().unwrap();
    /// # host.start(CancellationToken::none()).await.unwrap();
    /// # host.stop(CancellationToken::none()).await.unwrap();
    /// # }
    /// ```
    fn stopped(&self, token: CancellationToken) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = token;
        NoopHook
    }

    /// The name used in logs and errors. Defaults to the type's short name
    /// (`Cache` rather than `my_app::cache::Cache`). Names must be unique
    /// within a host; the host reads it once, at registration.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::CancellationToken;
    /// use apphost::host::{Host, HostedService};
    ///
    /// struct Http { port: u16, name: String }
    /// impl HostedService for Http {
    ///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    ///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
    ///     fn name(&self) -> &str { &self.name }
    /// }
    ///
    /// let http = |port: u16| Http { port, name: format!("http:{port}") };
    /// // Two instances of one type: two names.
    /// let host = Host::builder().add_hosted_service(http(80)).add_hosted_service(http(443)).build();
    /// assert!(host.is_ok());
    /// # let _ = http(1).port;
    /// ```
    fn name(&self) -> &str {
        short_type_name::<Self>()
    }
}

/// A long-running service: the Rust shape of .NET's `BackgroundService`.
///
/// [`execute`](Self::execute) begins as its own tokio task once the host has
/// started (after the application's `started()` token fired); start never waits
/// for it. Its `stopping` token is cancelled when the stop sequence reaches the
/// service (reverse registration order), and stop then waits for `execute` to
/// return, within the shutdown budget.
///
/// An error or panic from `execute` is logged with the service's name. Under
/// [`BackgroundServiceExceptionBehavior::StopHost`](crate::BackgroundServiceExceptionBehavior::StopHost)
/// (the default) it also requests a stop of the host and is returned from
/// [`Host::run`](crate::host::Host::run) / [`Host::stop`](crate::host::Host::stop). Returning
/// `Ok` early, or returning [`OperationCanceled`](crate::OperationCanceled) once
/// `stopping` is cancelled, is not a failure.
///
/// # Examples
///
/// ```
/// use apphost::CancellationToken;
/// use apphost::host::{BackgroundService, Host};
///
/// struct Ticker;
///
/// impl BackgroundService for Ticker {
///     async fn execute(&self, stopping: CancellationToken) -> anyhow::Result<()> {
///         while !stopping.is_cancelled() {
///             tokio::select! {
///                 _ = stopping.cancelled() => {}
///                 _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => { /* tick */ }
///             }
///         }
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), apphost::host::HostError> {
/// let host = Host::builder().add_background_service(Ticker).build().unwrap();
/// host.start(CancellationToken::none()).await?;
/// tokio::time::sleep(std::time::Duration::from_secs(3)).await;
/// host.stop(CancellationToken::none()).await
/// # }
/// ```
pub trait BackgroundService: Send + Sync + 'static {
    /// The service's work. `stopping` is cancelled when the host stops this
    /// service; return soon after.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::CancellationToken;
    /// use apphost::host::{BackgroundService, Host};
    ///
    /// struct Consumer;
    /// impl BackgroundService for Consumer {
    ///     async fn execute(&self, stopping: CancellationToken) -> anyhow::Result<()> {
    ///         // `?` on OperationCanceled once stopping: not a failure.
    ///         stopping.run_until_cancelled(std::future::pending::<()>()).await?;
    ///         Ok(())
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let host = Host::builder().add_background_service(Consumer).build().unwrap();
    /// host.start(CancellationToken::none()).await.unwrap();
    /// host.stop(CancellationToken::none()).await.unwrap();
    /// # }
    /// ```
    fn execute(
        &self,
        stopping: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// The name used in logs and errors. Defaults to the type's short name;
    /// must be unique within a host.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::CancellationToken;
    /// use apphost::host::BackgroundService;
    ///
    /// struct Sweeper;
    /// impl BackgroundService for Sweeper {
    ///     async fn execute(&self, stopping: CancellationToken) -> anyhow::Result<()> {
    ///         stopping.cancelled().await;
    ///         Ok(())
    ///     }
    ///     fn name(&self) -> &str { "cache-sweeper" }
    /// }
    /// assert_eq!(Sweeper.name(), "cache-sweeper");
    /// ```
    fn name(&self) -> &str {
        short_type_name::<Self>()
    }
}

/// Sharing a service with the host: `Arc<S>` is a service wherever `S` is, so a
/// caller can keep a handle to the instance the host runs.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use apphost::CancellationToken;
/// use apphost::host::{Host, HostedService};
///
/// struct Db;
/// impl HostedService for Db {
///     async fn start(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
///     async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> { Ok(()) }
/// }
///
/// let db = Arc::new(Db);
/// let _host = Host::builder().add_hosted_service(Arc::clone(&db)).build().unwrap();
/// assert_eq!(HostedService::name(&db), "Db");
/// ```
impl<S: HostedService> HostedService for Arc<S> {
    fn start(&self, token: CancellationToken) -> impl Future<Output = anyhow::Result<()>> + Send {
        (**self).start(token)
    }
    fn stop(&self, token: CancellationToken) -> impl Future<Output = anyhow::Result<()>> + Send {
        (**self).stop(token)
    }
    fn starting(
        &self,
        token: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        (**self).starting(token)
    }
    fn started(&self, token: CancellationToken) -> impl Future<Output = anyhow::Result<()>> + Send {
        (**self).started(token)
    }
    fn stopping(
        &self,
        token: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        (**self).stopping(token)
    }
    fn stopped(&self, token: CancellationToken) -> impl Future<Output = anyhow::Result<()>> + Send {
        (**self).stopped(token)
    }
    fn name(&self) -> &str {
        (**self).name()
    }
}

/// `Arc<S>` is a background service wherever `S` is.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use apphost::CancellationToken;
/// use apphost::host::{BackgroundService, Host};
///
/// struct Worker;
/// impl BackgroundService for Worker {
///     async fn execute(&self, stopping: CancellationToken) -> anyhow::Result<()> {
///         stopping.cancelled().await;
///         Ok(())
///     }
/// }
///
/// let worker = Arc::new(Worker);
/// let _host = Host::builder().add_background_service(Arc::clone(&worker)).build().unwrap();
/// assert_eq!(BackgroundService::name(&worker), "Worker");
/// ```
impl<S: BackgroundService> BackgroundService for Arc<S> {
    fn execute(
        &self,
        stopping: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        (**self).execute(stopping)
    }
    fn name(&self) -> &str {
        (**self).name()
    }
}
