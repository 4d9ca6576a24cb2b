//! Start then graceful stop of N trivial services: apphost against
//! tokio-graceful-shutdown and plain tokio tasks with tokio-util child tokens,
//! measured in the same run, plus peak memory at 10,000 services.
//!
//! ```text
//! cargo bench --bench host              # full run, about a minute
//! HOST_BENCH_QUICK=1 cargo bench --bench host
//! HOST_BENCH_EVENTS=1 cargo bench --bench host   # apphost subjects with a
//!                                                 # lifecycle-event subscriber
//! ```
//!
//! Prints two markdown tables: the median (and fastest) time of one
//! start + stop cycle per N, and the peak RSS (`VmHWM`) of a fresh process
//! that runs one cycle of 10,000 services, one process per subject.
//!
//! Subjects, each on a multi-thread tokio runtime (one worker per core),
//! driven from `block_on` as a `#[tokio::main]` would:
//! - `apphost hosted`: `HostedService`s whose `start`/`stop` return at once;
//!   default options (sequential start and stop);
//! - `apphost background`: `BackgroundService`s whose `execute` waits for its
//!   token; default options;
//! - `apphost background, concurrent stop`: the same with
//!   `services_stop_concurrently`;
//! - `tokio-graceful-shutdown`: subsystems that wait for
//!   `on_shutdown_requested`; the top level asks for shutdown once all are
//!   started;
//! - `plain tokio`: tasks waiting on child tokens of one root token; cancel
//!   the root, join every task.

use std::time::{Duration, Instant};

use apphost::CancellationToken;
use apphost::host::{BackgroundService, Host, HostedService};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Subject {
    Hosted,
    HostedConcurrent,
    Background,
    BackgroundConcurrentStop,
    Graph,
    GracefulShutdown,
    PlainTokio,
}

const SUBJECTS: [Subject; 7] = [
    Subject::Hosted,
    Subject::HostedConcurrent,
    Subject::Background,
    Subject::BackgroundConcurrentStop,
    Subject::Graph,
    Subject::GracefulShutdown,
    Subject::PlainTokio,
];

/// Width of a layer of the dependency-graph subject: each service depends on
/// every service of the layer before.
const LAYER: usize = 100;

impl Subject {
    fn label(self) -> &'static str {
        match self {
            Subject::Hosted => "apphost hosted",
            Subject::HostedConcurrent => "apphost hosted, concurrent start and stop",
            Subject::Graph => {
                "apphost hosted, layers of 100 each depending on the layer before, concurrent (build not timed)"
            }
            Subject::Background => "apphost background",
            Subject::BackgroundConcurrentStop => "apphost background, concurrent stop",
            Subject::GracefulShutdown => "tokio-graceful-shutdown 0.20",
            Subject::PlainTokio => "plain tokio + child tokens",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Subject::Hosted => "hosted",
            Subject::HostedConcurrent => "hosted-concurrent",
            Subject::Graph => "graph",
            Subject::Background => "background",
            Subject::BackgroundConcurrentStop => "background-concurrent",
            Subject::GracefulShutdown => "tgs",
            Subject::PlainTokio => "plain",
        }
    }

    fn from_key(key: &str) -> Option<Subject> {
        SUBJECTS.into_iter().find(|s| s.key() == key)
    }

    fn is_apphost(self) -> bool {
        !matches!(self, Subject::GracefulShutdown | Subject::PlainTokio)
    }
}

struct Trivial;

impl HostedService for Trivial {
    async fn start(&self, _: CancellationToken) -> anyhow::Result<()> {
        Ok(())
    }
    async fn stop(&self, _: CancellationToken) -> anyhow::Result<()> {
        Ok(())
    }
}

struct Waits;

impl BackgroundService for Waits {
    async fn execute(&self, stopping: CancellationToken) -> anyhow::Result<()> {
        stopping.cancelled().await;
        Ok(())
    }
}

/// Names must be unique; the `Arc<str>` each service keeps is part of the cost.
struct Named<S> {
    name: String,
    service: S,
}

impl HostedService for Named<Trivial> {
    async fn start(&self, token: CancellationToken) -> anyhow::Result<()> {
        self.service.start(token).await
    }
    async fn stop(&self, token: CancellationToken) -> anyhow::Result<()> {
        self.service.stop(token).await
    }
    fn name(&self) -> &str {
        &self.name
    }
}

impl BackgroundService for Named<Waits> {
    async fn execute(&self, stopping: CancellationToken) -> anyhow::Result<()> {
        self.service.execute(stopping).await
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// A host of `n` trivial hosted services in layers of [`LAYER`], each
/// depending on every service of the layer before; concurrent start and stop.
fn graph(n: usize) -> Host {
    let mut builder = Host::builder().configure_options(|o| {
        o.services_start_concurrently = true;
        o.services_stop_concurrently = true;
    });
    for i in 0..n {
        builder = builder.add_hosted_service(Named {
            name: format!("s{i}"),
            service: Trivial,
        });
        let layer = i / LAYER;
        if layer > 0 {
            let before: Vec<String> = ((layer - 1) * LAYER..layer * LAYER)
                .map(|j| format!("s{j}"))
                .collect();
            builder = builder.configure_service(format!("s{i}"), move |o| o.depends_on = before);
        }
    }
    builder.build().expect("a valid graph")
}

/// One start + graceful stop of `n` services; the time it took (for the
/// graph subject, without `build()`).
async fn cycle(subject: Subject, n: usize) -> Duration {
    let t0 = Instant::now();
    match subject {
        Subject::Graph => {
            let host = graph(n);
            let t0 = Instant::now();
            host.start(CancellationToken::none()).await.expect("start");
            host.stop(CancellationToken::none()).await.expect("stop");
            return t0.elapsed();
        }
        Subject::Hosted
        | Subject::HostedConcurrent
        | Subject::Background
        | Subject::BackgroundConcurrentStop => {
            let mut builder = Host::builder().configure_options(move |o| {
                o.services_stop_concurrently = matches!(
                    subject,
                    Subject::BackgroundConcurrentStop | Subject::HostedConcurrent
                );
                o.services_start_concurrently = subject == Subject::HostedConcurrent;
            });
            for i in 0..n {
                let name = format!("s{i}");
                builder = if matches!(subject, Subject::Hosted | Subject::HostedConcurrent) {
                    builder.add_hosted_service(Named {
                        name,
                        service: Trivial,
                    })
                } else {
                    builder.add_background_service(Named {
                        name,
                        service: Waits,
                    })
                };
            }
            // A subscriber that never reads: every call is emitted and timed,
            // and the subscription lags (what a slow consumer costs the host).
            let subscribe = match SUBSCRIBE.load(std::sync::atomic::Ordering::Relaxed) {
                0 => std::env::var_os("HOST_BENCH_EVENTS").is_some(),
                mode => mode == 2,
            };
            let _events = subscribe.then(|| builder.events());
            let host = builder.build().expect("unique names");
            host.start(CancellationToken::none()).await.expect("start");
            host.stop(CancellationToken::none()).await.expect("stop");
        }
        Subject::GracefulShutdown => {
            use tokio_graceful_shutdown::{SubsystemBuilder, SubsystemHandle, Toplevel};
            Toplevel::new(async move |top: &mut SubsystemHandle| {
                for i in 0..n {
                    top.start(SubsystemBuilder::new(
                        format!("s{i}"),
                        async |s: &mut SubsystemHandle| {
                            s.on_shutdown_requested().await;
                            Ok::<(), std::convert::Infallible>(())
                        },
                    ));
                }
                top.request_shutdown();
            })
            .handle_shutdown_requests(Duration::from_secs(60))
            .await
            .expect("graceful shutdown");
        }
        Subject::PlainTokio => {
            let root = tokio_util::sync::CancellationToken::new();
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let token = root.child_token();
                    tokio::spawn(async move { token.cancelled().await })
                })
                .collect();
            root.cancel();
            for task in tasks {
                task.await.expect("task");
            }
        }
    }
    t0.elapsed()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn median(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    (samples[samples.len() / 2], samples[0])
}

fn format_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 1.0 {
        format!("{ms:.3}")
    } else if ms < 10.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.1}")
    }
}

/// Peak resident set of this process, from `/proc/self/status`.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Whether the apphost subjects subscribe to events: 0 as
/// `HOST_BENCH_EVENTS` says, 1 no, 2 yes (the `events` mode alternates).
static SUBSCRIBE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// `events <subject> <n>`: cycles without and with a subscriber,
/// alternated (so drift on a shared machine hits both alike), 31 of each;
/// prints both medians and their ratio.
fn measure_events(subject: Subject, n: usize) {
    use std::sync::atomic::Ordering::Relaxed;
    let rt = runtime();
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for i in 0..64 {
        SUBSCRIBE.store(1, Relaxed);
        let a = rt.block_on(cycle(subject, n));
        SUBSCRIBE.store(2, Relaxed);
        let b = rt.block_on(cycle(subject, n));
        if i >= 2 {
            without.push(a);
            with.push(b);
        }
    }
    let (without, _) = median(without);
    let (with, _) = median(with);
    println!(
        "{}: no subscriber {} ms, a subscriber {} ms, ratio {:.3}",
        subject.label(),
        format_ms(without),
        format_ms(with),
        with.as_secs_f64() / without.as_secs_f64()
    );
}

/// The child process of the memory table: one cycle, then print VmHWM.
fn measure_rss(subject: Subject, n: usize) {
    let _ = runtime().block_on(cycle(subject, n));
    println!("{}", peak_rss_kib().unwrap_or(0));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, key, n, ..] = args.as_slice() {
        if mode == "rss" {
            let subject = Subject::from_key(key).expect("subject");
            measure_rss(subject, n.parse().expect("n"));
            return;
        }
        if mode == "events" {
            let subject = Subject::from_key(key).expect("subject");
            measure_events(subject, n.parse().expect("n"));
            return;
        }
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo test --benches` asks; nothing to list
    }
    let quick = std::env::var_os("HOST_BENCH_QUICK").is_some();

    // (n, samples): enough to get a stable median, a minute in all.
    let sizes: &[(usize, usize)] = if quick {
        &[(10, 20), (1_000, 5), (10_000, 3), (100_000, 1)]
    } else {
        &[(10, 200), (1_000, 50), (10_000, 20), (100_000, 5)]
    };
    println!("start + graceful stop of N trivial services: median (fastest), ms\n");
    print!("| subject |");
    for (n, _) in sizes {
        print!(" N = {n} |");
    }
    println!();
    println!("|---|{}", "---|".repeat(sizes.len()));
    for subject in SUBJECTS {
        let rt = runtime();
        print!("| {} |", subject.label());
        for &(n, samples) in sizes {
            if n > 10_000 && !subject.is_apphost() {
                print!(" – |");
                continue;
            }
            if subject == Subject::Graph && n < LAYER {
                print!(" – |");
                continue;
            }
            rt.block_on(cycle(subject, n)); // warm-up
            let times: Vec<Duration> = (0..samples)
                .map(|_| rt.block_on(cycle(subject, n)))
                .collect();
            let (median, fastest) = median(times);
            print!(" {} ({}) |", format_ms(median), format_ms(fastest));
        }
        println!();
    }

    println!(
        "\n`build()` of the layered graph (cycle check included): median, ms; per node + edge, ns\n"
    );
    println!("| services | edges | build | per node + edge |");
    println!("|---|---|---|---|");
    for n in [1_000_usize, 3_000, 10_000] {
        let edges = n.saturating_sub(LAYER) * LAYER;
        let times: Vec<Duration> = (0..if quick { 2 } else { 7 })
            .map(|_| {
                let t0 = Instant::now();
                drop(graph(n));
                t0.elapsed()
            })
            .collect();
        let (median, _) = median(times);
        let per = median.as_secs_f64() * 1e9 / (n + edges) as f64;
        println!("| {n} | {edges} | {} | {per:.0} |", format_ms(median));
    }

    println!("\npeak RSS (VmHWM) of a fresh process running one cycle, MiB\n");
    println!("| subject | N = 0 | N = 10000 |");
    println!("|---|---|---|");
    let exe = std::env::current_exe().expect("own path");
    for subject in SUBJECTS {
        let mut cells = Vec::new();
        for n in [0, 10_000] {
            let out = std::process::Command::new(&exe)
                .args(["rss", subject.key(), &n.to_string()])
                .output();
            let kib: Option<u64> = out
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .and_then(|s| s.trim().parse().ok());
            cells.push(kib.map_or("?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0)));
        }
        println!("| {} | {} | {} |", subject.label(), cells[0], cells[1]);
    }
}
