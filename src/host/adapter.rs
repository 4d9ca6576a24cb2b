//! The object-safe adapters the host drives services through (see
//! `service.rs`), and how it tells a default lifecycle hook from an override.

use std::any::TypeId;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::task::JoinHandle;
use tracing::Instrument;

use super::background::ExecuteContext;
use super::error::LifecyclePhase;
use super::inner::CatchUnwind;
use super::service::{BackgroundService, HostedService};
use crate::cancel::CancellationToken;

/// The future every default lifecycle hook returns. It is private, so its
/// `TypeId` showing up as a hook's return type proves the hook was not
/// overridden (see [`Hooks::of`]).
pub(crate) struct NoopHook;

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
    /// Spawns `execute` as a task that reports how it ended to `context`.
    /// Generic over the service, so the task holds the service's future
    /// itself, not a boxed one: one allocation less per service.
    fn spawn(
        self: Arc<Self>,
        stopping: CancellationToken,
        name: Arc<str>,
        context: Arc<ExecuteContext>,
    ) -> JoinHandle<()>;
}

impl<S: BackgroundService> DynBackground for S {
    fn spawn(
        self: Arc<Self>,
        stopping: CancellationToken,
        name: Arc<str>,
        context: Arc<ExecuteContext>,
    ) -> JoinHandle<()> {
        let span = tracing::debug_span!(target: "apphost::host", "service", service = %name, phase = %LifecyclePhase::Execute);
        let task = async move {
            let outcome = {
                let execute = std::pin::pin!(BackgroundService::execute(&*self, stopping.clone()));
                CatchUnwind(execute).await
            };
            context.report(&name, &stopping, outcome);
        };
        // Without a subscriber for the span, spare every task its wrapper.
        if span.is_disabled() {
            tokio::spawn(task)
        } else {
            tokio::spawn(task.instrument(span))
        }
    }
}
