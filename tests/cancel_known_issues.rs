//! Known issues of the cancellation primitive, each as a minimal failing
//! test. They are `#[ignore]`d so the suite stays green; run them with
//! `cargo test --test cancel_known_issues -- --ignored`. Each is bounded, so
//! it fails in seconds instead of hanging. When an issue is fixed, drop its
//! `#[ignore]` and move the test next to its topic.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use apphost::CancellationTokenSource;
use support::{bounded, panic_text};

/// Inside a runtime built without `enable_time`, arming a timer spawns a
/// task whose `tokio::time::sleep` panics ("timers are disabled"). The
/// task's guard then moves the timer to the timer thread, so the source
/// still times out, but every such timer prints a panic message (with a
/// backtrace if enabled) and, in a binary built with `panic = "abort"`,
/// aborts the process.
#[test]
#[ignore = "known issue: a runtime without timers panics a task per armed timer"]
fn a_runtime_without_timers_does_not_panic_for_each_timeout() {
    let panics: &'static Mutex<Vec<String>> = Box::leak(Box::default());
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = panic_text(info.payload());
        if text.contains("timers are disabled") {
            panics.lock().unwrap().push(text);
        }
        default(info);
    }));
    let fired = bounded(
        "timer in a runtime without time",
        Duration::from_secs(10),
        || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .build()
                .unwrap();
            let source = runtime.block_on(async {
                CancellationTokenSource::with_timeout(Duration::from_millis(20))
            });
            let fired = source.token().wait_timeout(Duration::from_secs(5));
            drop(runtime);
            fired
        },
    );
    assert!(fired, "the timeout fired (through the timer thread)");
    let panics = panics.lock().unwrap().clone();
    assert!(panics.is_empty(), "panicked on the way: {panics:?}");
}
