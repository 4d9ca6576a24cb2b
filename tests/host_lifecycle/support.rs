//! Recording fakes and helpers shared by the host lifecycle tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apphost::host::{ApplicationLifetime, BackgroundService, HostedService};
use apphost::{CancellationToken, OperationCanceled};

/// The shared event log: `"start:A"`, `"app:stopping"`, …
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }

    pub(crate) fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Logs `app:started`, `app:stopping` and `app:stopped` from the lifetime's callbacks.
    pub(crate) fn watch_lifetime(&self, lifetime: &ApplicationLifetime) {
        for (token, event) in [
            (lifetime.started(), "app:started"),
            (lifetime.stopping(), "app:stopping"),
            (lifetime.stopped(), "app:stopped"),
        ] {
            let log = self.clone();
            token.register(move || log.push(event)).detach();
        }
    }
}

/// What a fake does when one of its methods is called.
#[derive(Clone)]
pub(crate) enum Act {
    /// Return `Ok` at once.
    Ok,
    /// Return this error.
    Fail(&'static str),
    /// Panic with this message.
    Panic(&'static str),
    /// Sleep, or return `OperationCanceled` as soon as the token is cancelled.
    Delay(Duration),
    /// Wait for the token, then return `OperationCanceled` (cooperative).
    WaitToken,
    /// Never return, whatever the token says.
    Hang,
    /// Block the thread (not the task) until `release` is cancelled.
    BlockThread(CancellationToken),
    /// Ask the application to stop, then return `Ok`.
    StopApp(ApplicationLifetime),
    /// A synchronous loop that never yields: checks its token every
    /// millisecond (sleeping the thread), returns `Ok` once it is cancelled.
    SpinUntilCancelled,
    /// Hold `guard` until the call ends or is dropped, and never return.
    HangHolding(Arc<Guard>),
}

/// Something a call holds (a pooled connection): `out` while held.
#[derive(Default)]
pub(crate) struct Guard {
    pub(crate) out: std::sync::atomic::AtomicBool,
}

struct Held(Arc<Guard>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.out.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Act {
    pub(crate) async fn run(self, token: &CancellationToken) -> anyhow::Result<()> {
        match self {
            Act::Ok => Ok(()),
            Act::Fail(message) => Err(anyhow::anyhow!(message)),
            Act::Panic(message) => panic!("{message}"),
            Act::Delay(delay) => tokio::select! {
                () = tokio::time::sleep(delay) => Ok(()),
                () = token.cancelled() => Err(OperationCanceled::new(token.clone()).into()),
            },
            Act::WaitToken => {
                token.cancelled().await;
                Err(OperationCanceled::new(token.clone()).into())
            }
            Act::Hang => std::future::pending().await,
            Act::BlockThread(release) => {
                release.wait();
                Ok(())
            }
            Act::StopApp(lifetime) => {
                lifetime.stop_application();
                Ok(())
            }
            Act::SpinUntilCancelled => {
                while !token.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(())
            }
            Act::HangHolding(guard) => {
                guard.out.store(true, std::sync::atomic::Ordering::SeqCst);
                let _held = Held(guard);
                std::future::pending().await
            }
        }
    }
}

/// A hosted service that overrides every method, logs `"<phase>:<name>"` when
/// a method is called, keeps the token it got, and then does what it was told
/// for that phase (by default: `Ok`).
pub(crate) struct Fake {
    name: String,
    log: Log,
    acts: HashMap<&'static str, Act>,
    tokens: Mutex<HashMap<&'static str, CancellationToken>>,
}

impl Fake {
    pub(crate) fn new(name: &str, log: &Log) -> Self {
        Fake {
            name: name.to_owned(),
            log: log.clone(),
            acts: HashMap::new(),
            tokens: Mutex::default(),
        }
    }

    /// Do `act` when `phase` (`"starting"`, `"start"`, …, `"stopped"`) is called.
    pub(crate) fn on(mut self, phase: &'static str, act: Act) -> Self {
        self.acts.insert(phase, act);
        self
    }

    /// The token `phase` was called with.
    pub(crate) fn token(&self, phase: &str) -> Option<CancellationToken> {
        self.tokens.lock().unwrap().get(phase).cloned()
    }

    async fn call(&self, phase: &'static str, token: CancellationToken) -> anyhow::Result<()> {
        self.log.push(format!("{phase}:{}", self.name));
        self.tokens.lock().unwrap().insert(phase, token.clone());
        let act = self.acts.get(phase).cloned().unwrap_or(Act::Ok);
        act.run(&token).await
    }
}

impl HostedService for Fake {
    async fn start(&self, token: CancellationToken) -> anyhow::Result<()> {
        self.call("start", token).await
    }
    async fn stop(&self, token: CancellationToken) -> anyhow::Result<()> {
        self.call("stop", token).await
    }
    async fn starting(&self, token: CancellationToken) -> anyhow::Result<()> {
        self.call("starting", token).await
    }
    async fn started(&self, token: CancellationToken) -> anyhow::Result<()> {
        self.call("started", token).await
    }
    async fn stopping(&self, token: CancellationToken) -> anyhow::Result<()> {
        self.call("stopping", token).await
    }
    async fn stopped(&self, token: CancellationToken) -> anyhow::Result<()> {
        self.call("stopped", token).await
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// A background service that logs `"execute:<name>"`, runs its act, then logs
/// `"execute-end:<name>"` if the act returned.
pub(crate) struct Worker {
    name: String,
    log: Log,
    act: Act,
    token: Mutex<Option<CancellationToken>>,
}

impl Worker {
    /// By default a worker waits for its token and returns `OperationCanceled`.
    pub(crate) fn new(name: &str, log: &Log) -> Self {
        Worker {
            name: name.to_owned(),
            log: log.clone(),
            act: Act::WaitToken,
            token: Mutex::default(),
        }
    }

    pub(crate) fn doing(mut self, act: Act) -> Self {
        self.act = act;
        self
    }

    /// The stopping token `execute` got.
    pub(crate) fn token(&self) -> Option<CancellationToken> {
        self.token.lock().unwrap().clone()
    }
}

impl BackgroundService for Worker {
    async fn execute(&self, stopping: CancellationToken) -> anyhow::Result<()> {
        self.log.push(format!("execute:{}", self.name));
        *self.token.lock().unwrap() = Some(stopping.clone());
        let result = self.act.clone().run(&stopping).await;
        self.log.push(format!("execute-end:{}", self.name));
        result
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// `["a:A", "b:B"]` as owned strings, for comparing with [`Log::events`].
pub(crate) fn events(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}
