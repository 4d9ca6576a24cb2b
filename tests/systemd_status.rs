//! systemd's `STATUS=` lines follow the host's lifecycle events: what
//! `systemctl status` shows is what the log and the report say — the
//! budget spent, the call abandoned, the stop's verdict, a reload's verdict.
//! Played on a datagram socket of the test's own (the real systemd is
//! `process_systemd_real.rs`).

#[allow(dead_code, unreachable_pub)]
#[path = "host_lifecycle/support.rs"]
mod support;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apphost::CancellationToken;
use apphost::config::ConfigOptions;
use apphost::host::Host;
use apphost::systemd::{SystemdLifetime, SystemdNotifier};

use crate::support::{Act, Fake, Log};

/// Reads the socket as systemd does, on a thread of its own (its queue
/// holds only 10 datagrams).
struct Reader(Arc<Mutex<Vec<String>>>);

impl Reader {
    fn start(socket: UnixDatagram) -> Reader {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&got);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap().push(text);
            }
        });
        Reader(got)
    }

    /// Everything received once a message starting with `last` is; fails
    /// after 10 s (a hang bound, not a timing).
    fn until(&self, last: &str) -> Vec<String> {
        let bound = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.0.lock().unwrap().clone();
            if got.iter().any(|t| t.starts_with(last)) {
                return got;
            }
            assert!(Instant::now() < bound, "no {last}: {got:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn status_lines_tell_the_budget_the_abandoned_call_and_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let reader = Reader::start(UnixDatagram::bind(&path).unwrap());

    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("db", &log).on("stop", Act::Hang))
        .configure_options(|o| o.shutdown_timeout = Duration::from_secs(1))
        .build()
        .unwrap();
    let systemd = SystemdLifetime::attach(
        host.lifetime(),
        SystemdNotifier::from_socket_path(path.to_str().unwrap()),
        None,
        host.options().shutdown_timeout,
    );
    host.start(CancellationToken::none()).await.unwrap();

    // A reload whose configuration is rejected: answered READY=1 and the
    // verdict, from the host's event.
    systemd.reloading();
    let bad = ConfigOptions::default()
        .env_vars([("APPHOST__HOST__SHUTDOWN_TIMEOUT", "soon")])
        .load();
    match bad {
        Ok(configuration) => assert!(host.reload(configuration).is_err()),
        Err(_) => panic!("the variable is only read as a duration by the host"),
    }

    host.stop(CancellationToken::none()).await.unwrap_err();

    let texts: Vec<String> = reader
        .until("STATUS=stopped")
        .into_iter()
        .map(|t| {
            if t.starts_with("RELOADING=1") {
                "RELOADING=1".to_owned()
            } else {
                t
            }
        })
        .collect();
    let reload_rejected = texts
        .iter()
        .find(|t| t.starts_with("STATUS=running (reload rejected: "))
        .expect("the reload's verdict")
        .clone();
    assert!(
        reload_rejected.contains("shutdown_timeout"),
        "{reload_rejected}"
    );
    let expected = [
        "STATUS=starting",
        "READY=1",
        "STATUS=running",
        "RELOADING=1",
        "STATUS=reloading configuration",
        "READY=1",
        &reload_rejected,
        "STOPPING=1",
        "STATUS=stopping",
        "EXTEND_TIMEOUT_USEC=2000000",
        "STATUS=stopping (budget spent)",
        "STATUS=stopping (`db` abandoned in stop)",
        "STATUS=stopped (timed out: stop of `db` was abandoned)",
    ];
    assert_eq!(texts, expected);
}

#[tokio::test(start_paused = true)]
async fn a_clean_stop_ends_with_stopped_and_no_ready_follows_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let reader = Reader::start(UnixDatagram::bind(&path).unwrap());

    let log = Log::new();
    let host = Host::builder()
        .add_hosted_service(Fake::new("web", &log))
        .build()
        .unwrap();
    let systemd = SystemdLifetime::attach(
        host.lifetime(),
        SystemdNotifier::from_socket_path(path.to_str().unwrap()),
        None,
        Duration::from_secs(5),
    );
    host.start(CancellationToken::none()).await.unwrap();
    host.lifetime().stop_application();
    // A reload after stopping began gets no READY=1 and no RELOADING=1.
    systemd.reloading();
    host.reload(ConfigOptions::default().load().unwrap())
        .unwrap();
    host.stop(CancellationToken::none()).await.unwrap();

    let texts = reader.until("STATUS=stopped");
    assert_eq!(
        texts,
        [
            "STATUS=starting",
            "READY=1",
            "STATUS=running",
            "STOPPING=1",
            "STATUS=stopping",
            "EXTEND_TIMEOUT_USEC=6000000",
            "STATUS=stopped",
        ]
    );
}

/// A reader that never reads (its queue fills after 10 datagrams) costs the
/// host one short wait, once: the stop still completes, and later messages
/// are dropped rather than waited for.
#[test]
fn a_reader_that_never_reads_does_not_stall_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let _never_read = UnixDatagram::bind(&path).unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let path = path.to_str().unwrap().to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let log = Log::new();
            let host = Host::builder()
                .add_hosted_service(Fake::new("web", &log))
                .build()
                .unwrap();
            let systemd = SystemdLifetime::attach(
                host.lifetime(),
                SystemdNotifier::from_socket_path(&path),
                None,
                Duration::from_secs(5),
            );
            for _ in 0..20 {
                systemd.notifier().status("filling the queue");
            }
            host.start(CancellationToken::none()).await.unwrap();
            host.stop(CancellationToken::none()).await.unwrap();
        });
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(30))
        .expect("the host stopped (a hang bound, not a timing)");
}
