//! Limits of the cancellation primitive that are known and bounded, each
//! pinned by a test of what does happen. Its own test binary: it installs a
//! panic hook.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use apphost::CancellationTokenSource;
use support::{bounded, panic_text};

/// Inside a runtime built without `enable_time`, the runtime's timer driver
/// panics on its first sleep ("timers are disabled": tokio offers no way to
/// ask first). Its timers move to the timer thread and still fire; the dead
/// driver stays registered, so the runtime's later timers go straight to the
/// timer thread: one panic message per runtime, not one per timer.
#[test]
fn a_runtime_without_timers_panics_once_and_its_timeouts_still_fire() {
    let panics: &'static Mutex<Vec<String>> = Box::leak(Box::default());
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = panic_text(info.payload());
        if text.contains("timers are disabled") {
            panics.lock().unwrap().push(text);
        } else {
            default(info);
        }
    }));
    let fired = bounded(
        "timers in a runtime without time",
        Duration::from_secs(20),
        || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .build()
                .unwrap();
            let first = runtime.block_on(async {
                CancellationTokenSource::with_timeout(Duration::from_millis(20))
            });
            let first_fired = first.token().wait_timeout(Duration::from_secs(5));
            let later: Vec<_> = (0..5)
                .map(|_| {
                    runtime.block_on(async {
                        CancellationTokenSource::with_timeout(Duration::from_millis(20))
                    })
                })
                .collect();
            let later_fired = later
                .iter()
                .all(|source| source.token().wait_timeout(Duration::from_secs(5)));
            drop(runtime);
            first_fired && later_fired
        },
    );
    assert!(fired, "every timeout fired (through the timer thread)");
    let panics = panics.lock().unwrap().clone();
    assert_eq!(
        panics.len(),
        1,
        "one panic for the runtime, not one per timer: {panics:?}"
    );
}
