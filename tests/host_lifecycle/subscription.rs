//! The subscription's feed across threads: a subscriber waiting on one
//! thread is woken by events emitted on others and misses none; several
//! subscribers each see every event; a subscriber learns when the host is
//! gone, waiting or not. On real multi-thread runtimes (the wake-up
//! protocol is a race), each bounded so that a lost wake-up fails instead of
//! hanging.

use std::time::Duration;

use apphost::CancellationToken;
use apphost::host::{Host, HostState, LifecycleEvent, LifecycleEvents, RecvError, Sequence};

use crate::events::Svc;

/// Receives until the stop sequence's end; the events, in order.
async fn until_stopped(mut events: LifecycleEvents) -> Vec<LifecycleEvent> {
    let mut all = Vec::new();
    loop {
        let event = events.recv().await.expect("no lag, not closed");
        let last = matches!(
            event,
            LifecycleEvent::SequenceEnded {
                sequence: Sequence::Stop,
                ..
            }
        );
        all.push(event);
        if last {
            return all;
        }
    }
}

fn host_of(n: usize) -> Host {
    let mut builder = Host::builder();
    for i in 0..n {
        builder = builder.add_hosted_service(Svc::new(&format!("s{i}")));
    }
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_subscribers_on_other_threads_are_woken_and_miss_nothing() {
    // Fewer events than the ring holds: a subscriber that keeps up misses none.
    const N: usize = 400;
    for _ in 0..20 {
        let host = host_of(N);
        let readers: Vec<_> = (0..3)
            .map(|_| tokio::spawn(until_stopped(host.events())))
            .collect();
        let driver = tokio::spawn(async move {
            host.start(CancellationToken::none()).await.unwrap();
            host.stop(CancellationToken::none()).await.unwrap();
        });
        tokio::time::timeout(Duration::from_secs(30), driver)
            .await
            .expect("the host stopped")
            .unwrap();
        for reader in readers {
            let seen = tokio::time::timeout(Duration::from_secs(30), reader)
                .await
                .expect("a lost wake-up would hang here")
                .unwrap();
            // 4 states, a stop request, two events per call, two sequence ends.
            assert_eq!(seen.len(), 4 + 1 + 4 * N + 2);
            assert!(matches!(
                seen[0],
                LifecycleEvent::StateChanged {
                    state: HostState::Starting,
                    ..
                }
            ));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_learns_the_host_is_gone_waiting_or_not() {
    // Waiting: woken by the drop.
    let host = host_of(1);
    let mut events = host.events();
    let waiting = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(_) => continue,
                Err(e) => return e,
            }
        }
    });
    host.start(CancellationToken::none()).await.unwrap();
    host.stop(CancellationToken::none()).await.unwrap();
    tokio::task::yield_now().await;
    drop(host);
    let error = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("woken when the host is dropped")
        .unwrap();
    assert_eq!(error, RecvError::Closed);

    // Not waiting: what is held first, then `Closed` (once the last handle
    // is gone: the budget keeper may hold one a moment after the stop).
    let host = host_of(1);
    let mut events = host.events();
    host.stop(CancellationToken::none()).await.unwrap();
    drop(host);
    let mut held = 0;
    let bound = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match events.try_recv() {
            Ok(Some(_)) => held += 1,
            Ok(None) => {
                assert!(std::time::Instant::now() < bound, "never closed");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => {
                assert_eq!(e, RecvError::Closed);
                break;
            }
        }
    }
    assert!(held > 0);
}

#[tokio::test(start_paused = true)]
async fn a_late_subscriber_sees_only_what_comes_after_it() {
    let host = host_of(2);
    host.start(CancellationToken::none()).await.unwrap();
    let mut events = host.events();
    assert!(events.try_recv().unwrap().is_none());
    host.stop(CancellationToken::none()).await.unwrap();
    let first = events.try_recv().unwrap().unwrap();
    assert!(
        matches!(
            first,
            LifecycleEvent::StateChanged {
                state: HostState::Stopping,
                ..
            }
        ),
        "{first:?}"
    );
}
