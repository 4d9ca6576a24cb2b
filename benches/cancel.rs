//! Cancellation primitive: apphost against tokio-util's `CancellationToken`,
//! measured in the same run.
//!
//! Run: `cargo bench --bench cancel`. Results go in BENCHMARKS.md.

use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use apphost::{CancellationToken, CancellationTokenSource};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tokio_util::sync::CancellationToken as TokioToken;

fn is_cancelled(c: &mut Criterion) {
    let mut group = c.benchmark_group("is_cancelled");
    let ours = CancellationTokenSource::new().token();
    group.bench_function("apphost", |b| b.iter(|| black_box(&ours).is_cancelled()));
    let theirs = TokioToken::new();
    group.bench_function("tokio-util", |b| {
        b.iter(|| black_box(&theirs).is_cancelled())
    });
    group.finish();
}

fn register_and_drop(c: &mut Criterion) {
    let mut group = c.benchmark_group("register_drop");
    let source = CancellationTokenSource::new();
    let token = source.token();
    group.bench_function("apphost/no_capture", |b| {
        b.iter(|| drop(black_box(token.register(|| {}))))
    });
    let counter = Arc::new(AtomicUsize::new(0));
    group.bench_function("apphost/capturing_arc", |b| {
        b.iter(|| {
            let counter = counter.clone();
            drop(black_box(token.register(move || {
                counter.fetch_add(1, Ordering::Relaxed);
            })))
        })
    });
    group.finish();
}

fn poll_cancelled_once(c: &mut Criterion) {
    let mut group = c.benchmark_group("poll_cancelled_once_and_drop");
    let mut cx = Context::from_waker(Waker::noop());
    let ours = CancellationTokenSource::new().token();
    group.bench_function("apphost", |b| {
        b.iter(|| {
            let future = pin!(ours.cancelled());
            black_box(future.poll(&mut cx))
        })
    });
    let theirs = TokioToken::new();
    group.bench_function("tokio-util", |b| {
        b.iter(|| {
            let future = pin!(theirs.cancelled());
            black_box(future.poll(&mut cx))
        })
    });
    group.finish();
}

const MANY: usize = 100_000;

fn cancel_many(c: &mut Criterion) {
    let mut group = c.benchmark_group("cancel_100k");
    group.sample_size(20);
    group.bench_function("apphost/callbacks", |b| {
        b.iter_batched(
            || {
                let source = CancellationTokenSource::new();
                let counter = Arc::new(AtomicUsize::new(0));
                for _ in 0..MANY {
                    let counter = counter.clone();
                    source
                        .token()
                        .register(move || {
                            counter.fetch_add(1, Ordering::Relaxed);
                        })
                        .detach();
                }
                source
            },
            |source| source.cancel(),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("apphost/callbacks_no_capture", |b| {
        b.iter_batched(
            || {
                let source = CancellationTokenSource::new();
                for _ in 0..MANY {
                    source.token().register(|| {}).detach();
                }
                source
            },
            |source| source.cancel(),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("apphost/pending_futures", |b| {
        b.iter_batched(
            || {
                let source = CancellationTokenSource::new();
                let token = Box::leak(Box::new(source.token()));
                let mut cx = Context::from_waker(Waker::noop());
                let futures: Vec<_> = (0..MANY)
                    .map(|_| {
                        let mut future = Box::pin(token.cancelled());
                        let _ = future.as_mut().poll(&mut cx);
                        future
                    })
                    .collect();
                (source, futures)
            },
            |(source, futures)| {
                source.cancel();
                futures
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("tokio-util/pending_futures", |b| {
        b.iter_batched(
            || {
                let token = Box::leak(Box::new(TokioToken::new()));
                let mut cx = Context::from_waker(Waker::noop());
                let futures: Vec<_> = (0..MANY)
                    .map(|_| {
                        let mut future = Box::pin(token.cancelled());
                        let _ = future.as_mut().poll(&mut cx);
                        future
                    })
                    .collect();
                (token.clone(), futures)
            },
            |(token, futures)| {
                token.cancel();
                futures
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("apphost/linked_children", |b| {
        b.iter_batched(
            || {
                let source = CancellationTokenSource::new();
                let token = source.token();
                let children: Vec<_> = (0..MANY)
                    .map(|_| CancellationTokenSource::linked([&token]))
                    .collect();
                (source, children)
            },
            |(source, children)| {
                source.cancel();
                children
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("tokio-util/child_tokens", |b| {
        b.iter_batched(
            || {
                let token = TokioToken::new();
                let children: Vec<_> = (0..MANY).map(|_| token.child_token()).collect();
                (token, children)
            },
            |(token, children)| {
                token.cancel();
                children
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn linked_create_drop(c: &mut Criterion) {
    let mut group = c.benchmark_group("linked_create_drop");
    let parent = CancellationTokenSource::new();
    let parent_token = parent.token();
    group.bench_function("apphost/one_parent", |b| {
        b.iter(|| drop(black_box(CancellationTokenSource::linked([&parent_token]))))
    });
    let theirs = TokioToken::new();
    group.bench_function("tokio-util/child_token", |b| {
        b.iter(|| drop(black_box(theirs.child_token())))
    });
    group.bench_function("apphost/with_timeout_60s", |b| {
        b.iter(|| {
            drop(black_box(CancellationTokenSource::with_timeout(
                Duration::from_secs(60),
            )))
        })
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    group.bench_function("apphost/with_timeout_60s_in_tokio", |b| {
        runtime.block_on(async {
            b.iter(|| {
                drop(black_box(CancellationTokenSource::with_timeout(
                    Duration::from_secs(60),
                )))
            })
        })
    });
    group.finish();
}

/// Two threads creating and dropping children of one shared parent: time per
/// create+drop, aggregated over both threads.
fn contended_children(c: &mut Criterion) {
    let mut group = c.benchmark_group("two_threads_children_of_one_parent");
    group.sample_size(20);
    fn run_two(iterations: u64, work: impl Fn() + Send + Sync + Copy) -> Duration {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(move || {
                    for _ in 0..iterations / 2 {
                        work();
                    }
                });
            }
        });
        start.elapsed()
    }
    let parent: &'static CancellationToken =
        Box::leak(Box::new(CancellationTokenSource::new().token()));
    group.bench_function("apphost", |b| {
        b.iter_custom(|iterations| {
            run_two(iterations, || {
                drop(black_box(CancellationTokenSource::linked([parent])))
            })
        })
    });
    let theirs: &'static TokioToken = Box::leak(Box::new(TokioToken::new()));
    group.bench_function("tokio-util", |b| {
        b.iter_custom(|iterations| run_two(iterations, || drop(black_box(theirs.child_token()))))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = is_cancelled, register_and_drop, poll_cancelled_once, cancel_many,
        linked_create_drop, contended_children
}
criterion_main!(benches);
