//! Compile-time checks: the cancellation types are `Send`/`Sync` (and
//! `Unpin`, `'static`) where users need them to be. If one of these stops
//! holding, this file stops compiling.

#![allow(dead_code)]

use std::future::Future;

use apphost::cancel::{Cancelled, CancelledOwned};
use apphost::{
    CancelReason, CancellationRegistration, CancellationToken, CancellationTokenSource,
    OperationCanceled,
};

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn unpin<T: Unpin>() {}
fn static_<T: 'static>() {}
fn send_val<T: Send>(_: &T) {}
fn error<T: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn tokens_sources_and_registrations_are_send_and_sync() {
    send::<CancellationToken>();
    sync::<CancellationToken>();
    send::<CancellationTokenSource>();
    sync::<CancellationTokenSource>();
    send::<CancellationRegistration>();
    sync::<CancellationRegistration>();
    send::<CancelReason>();
    sync::<CancelReason>();
}

#[test]
fn the_futures_are_send_sync_and_unpin() {
    send::<Cancelled<'_>>();
    sync::<Cancelled<'_>>();
    unpin::<Cancelled<'_>>();
    send::<CancelledOwned>();
    sync::<CancelledOwned>();
    unpin::<CancelledOwned>();
    static_::<CancelledOwned>();
}

#[test]
fn operation_canceled_is_an_error_that_fits_in_anyhow() {
    send::<OperationCanceled>();
    sync::<OperationCanceled>();
    error::<OperationCanceled>();
    let _: anyhow::Error = OperationCanceled::new(CancellationToken::none()).into();
}

#[test]
fn run_until_cancelled_is_send_for_a_send_future() {
    let token = CancellationToken::none();
    let future = token.run_until_cancelled(async { 1 });
    send_val(&future);
    // Also across an await point inside a spawned-style future, and with a
    // future that holds a non-Sync but Send value.
    let holds_cell = async {
        let cell = std::cell::Cell::new(0);
        tokio::task::yield_now().await;
        cell.get()
    };
    let future = token.run_until_cancelled(holds_cell);
    send_val(&future);
}

/// `tokio::spawn` needs `Send + 'static`: the owned future and a
/// `run_until_cancelled` over an owned token qualify.
fn spawnable<F: Future + Send + 'static>(_: F) {}

#[test]
fn owned_futures_can_be_spawned() {
    let source = CancellationTokenSource::new();
    spawnable(source.token().cancelled_owned());
    let token = source.token();
    spawnable(async move { token.run_until_cancelled(async { 1 }).await });
    let token = source.token();
    spawnable(async move {
        token.cancelled().await;
    });
}

#[test]
fn lifecycle_events_and_the_report_move_across_tasks() {
    use apphost::host::{HostReport, LifecycleEvent, LifecycleEvents, RecvError};
    send::<LifecycleEvents>();
    sync::<LifecycleEvents>();
    send::<LifecycleEvent>();
    sync::<LifecycleEvent>();
    send::<HostReport>();
    sync::<HostReport>();
    error::<RecvError>();
    fn recv_is_send(events: &mut LifecycleEvents) {
        send_val(&events.recv());
    }
    let _ = recv_is_send;
}
