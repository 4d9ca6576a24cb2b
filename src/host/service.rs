//! The service contracts: [`HostedService`] and [`BackgroundService`], and the
//! object-safe adapters the host drives them through.
//!
//! The public traits return `impl Future + Send`, so implementations write plain
//! `async fn` and need no macro. Such traits are not dyn-compatible, so the host
//! keeps each service behind a private object-safe trait ([`DynHosted`],
//! [`DynBackground`]) whose methods return boxed `'static` futures that own an
//! `Arc` of the service. A boxed `'static` future is what lets the host run each
//! call as its own tokio task (panic isolation, and a deadline that a service
//! blocking its thread cannot hold up).

use std::any::TypeId;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

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
/// Each call runs as its own tokio task: a panic is caught and reported as the
/// service's failure, and a call that ignores its token is abandoned (its task
/// aborted) at the deadline.
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
    /// service's [`starting`](Self::starting).
    fn start(&self, token: CancellationToken) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Stops the service. Called once, in reverse registration order, after
    /// every service's [`stopping`](Self::stopping), and only if `start`
    /// completed successfully.
    fn stop(&self, token: CancellationToken) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Runs before any service's [`start`](Self::start). Does nothing by default.
    fn starting(
        &self,
        token: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = token;
        NoopHook
    }

    /// Runs after every service's [`start`](Self::start), before the
    /// application's `started()` token fires. Does nothing by default.
    fn started(&self, token: CancellationToken) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = token;
        NoopHook
    }

    /// Runs first at shutdown, before the application's `stopping()` token
    /// fires. Does nothing by default.
    fn stopping(
        &self,
        token: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = token;
        NoopHook
    }

    /// Runs after every service's [`stop`](Self::stop), before the application's
    /// `stopped()` token fires. Does nothing by default.
    fn stopped(&self, token: CancellationToken) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = token;
        NoopHook
    }

    /// The name used in logs and errors. Defaults to the type's short name
    /// (`Cache` rather than `my_app::cache::Cache`). Names must be unique
    /// within a host.
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
    fn execute(
        &self,
        stopping: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// The name used in logs and errors. Defaults to the type's short name.
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

// ===== private machinery =====

/// The future every default lifecycle hook returns. It is private, so its
/// `TypeId` showing up as a hook's return type proves the hook was not
/// overridden (see [`Hooks::of`]).
struct NoopHook;

impl Future for NoopHook {
    type Output = anyhow::Result<()>;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(()))
    }
}

/// `my_crate::module::Type<a::B>` → `Type<a::B>`: the path is dropped, generic
/// arguments are kept as written (so the result is a `'static` slice).
pub(crate) fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let head_end = full.find('<').unwrap_or(full.len());
    match full[..head_end].rfind("::") {
        Some(i) => &full[i + 2..],
        None => full,
    }
}

/// One of the calls the host makes on a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Starting,
    Start,
    Started,
    Stopping,
    Stop,
    Stopped,
}

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'static>>;

/// Which lifecycle hooks a service type overrides; computed once per type,
/// without calling anything.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hooks {
    starting: bool,
    started: bool,
    stopping: bool,
    stopped: bool,
}

impl Hooks {
    /// A default hook's return type is [`NoopHook`]; an override returns any
    /// other type (an `async fn` returns its own anonymous future). `TypeId` of
    /// an opaque `impl Future` is the `TypeId` of the concrete type behind it,
    /// so comparing the two needs no call and has no side effect.
    pub(crate) fn of<S: HostedService>() -> Hooks {
        fn overridden<S: 'static, F: 'static>(_: fn(&'static S, CancellationToken) -> F) -> bool {
            TypeId::of::<F>() != TypeId::of::<NoopHook>()
        }
        Hooks {
            starting: overridden::<S, _>(S::starting),
            started: overridden::<S, _>(S::started),
            stopping: overridden::<S, _>(S::stopping),
            stopped: overridden::<S, _>(S::stopped),
        }
    }

    /// Whether `call` does anything for this service (`start`/`stop` always do).
    pub(crate) fn has(&self, call: Call) -> bool {
        match call {
            Call::Starting => self.starting,
            Call::Started => self.started,
            Call::Stopping => self.stopping,
            Call::Stopped => self.stopped,
            Call::Start | Call::Stop => true,
        }
    }
}

/// Object-safe face of a [`HostedService`].
pub(crate) trait DynHosted: Send + Sync + 'static {
    /// The future of one call; it owns an `Arc` of the service, so it can be
    /// spawned.
    fn call(self: Arc<Self>, call: Call, token: CancellationToken) -> BoxFuture;
}

impl<S: HostedService> DynHosted for S {
    fn call(self: Arc<Self>, call: Call, token: CancellationToken) -> BoxFuture {
        match call {
            Call::Starting => Box::pin(async move { self.starting(token).await }),
            Call::Start => Box::pin(async move { self.start(token).await }),
            Call::Started => Box::pin(async move { self.started(token).await }),
            Call::Stopping => Box::pin(async move { self.stopping(token).await }),
            Call::Stop => Box::pin(async move { self.stop(token).await }),
            Call::Stopped => Box::pin(async move { self.stopped(token).await }),
        }
    }
}

/// Object-safe face of a [`BackgroundService`].
pub(crate) trait DynBackground: Send + Sync + 'static {
    fn execute(self: Arc<Self>, stopping: CancellationToken) -> BoxFuture;
}

impl<S: BackgroundService> DynBackground for S {
    fn execute(self: Arc<Self>, stopping: CancellationToken) -> BoxFuture {
        Box::pin(async move { BackgroundService::execute(&*self, stopping).await })
    }
}
