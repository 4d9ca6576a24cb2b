//! Cancel to start: a cancellation token used as a one-shot start signal.
//!
//! The `RandomWorker` of the Toptal article on `CancellationToken` ("The
//! biggest secret behind CancellationToken is that it's just a flag"): ten
//! workers, each blocked on the same start token, the way the article blocks
//! on `startToken.WaitHandle.WaitOne()`. Here that is
//! [`CancellationToken::wait`] on plain threads. One
//! `CancellationTokenSource::cancel_after(delay)` releases them all at once;
//! each then runs a few iterations, printing `[Worker i] Iteration n`.
//!
//! No async runtime is involved: the delay runs on apphost's timer thread.
//! The program ends by itself in about two seconds.
//!
//! Run: `cargo run --example cancel_to_start`

use std::thread;
use std::time::{Duration, Instant};

use apphost::{CancellationToken, CancellationTokenSource};

/// How long the workers wait for the start signal.
const START_DELAY: Duration = Duration::from_secs(1);
/// Iterations per worker, and the pause between them.
const ITERATIONS: u32 = 3;
const PAUSE: Duration = Duration::from_millis(200);

/// A worker that does some work, but only once it is told to start.
struct RandomWorker {
    id: usize,
}

impl RandomWorker {
    fn new(id: usize) -> Self {
        RandomWorker { id }
    }

    /// Blocks until `start` is cancelled, then does the work.
    fn do_work(&self, start: &CancellationToken) {
        start.wait();
        for i in 1..=ITERATIONS {
            println!("[Worker {}] Iteration {i}", self.id);
            thread::sleep(PAUSE);
        }
    }
}

fn main() {
    let begin = Instant::now();
    let start = CancellationTokenSource::new();
    start.cancel_after(START_DELAY);
    println!("Ten workers wait for the start signal, due in {START_DELAY:?}...");

    let workers: Vec<_> = (0..10)
        .map(|id| {
            let token = start.token();
            thread::spawn(move || RandomWorker::new(id).do_work(&token))
        })
        .collect();

    // Observing the same token from here: released at the same moment.
    start.token().wait();
    println!("Started after {:.2?}.", begin.elapsed());

    for worker in workers {
        worker.join().expect("a worker panicked");
    }
    println!("All workers done after {:.2?}.", begin.elapsed());
}
