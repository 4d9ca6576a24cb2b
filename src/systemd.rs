//! The systemd notify protocol: readiness, stopping, status, watchdog and
//! reload, sent as datagrams to `$NOTIFY_SOCKET`.
//!
//! - [`SystemdNotifier`] sends one datagram per message (`READY=1`,
//!   `STOPPING=1`, `STATUS=…`, `WATCHDOG=1`, `EXTEND_TIMEOUT_USEC=…`,
//!   `RELOADING=1` with `MONOTONIC_USEC=…`). An unset or empty socket makes it
//!   a no-op; a leading `@` names a socket in the abstract namespace. Sending
//!   never fails the host: the first error is logged, later ones are not.
//! - [`Watchdog`] reads `WATCHDOG_USEC` / `WATCHDOG_PID` and pings at half
//!   the interval from its own thread, independent of service work, until
//!   stopping begins.
//! - [`SystemdLifetime`] ties both to a host, following its
//!   [`LifecycleEvent`](crate::host::LifecycleEvent)s: `READY=1` once
//!   started (never after `STOPPING=1`), `STOPPING=1` and an extended stop
//!   timeout when stopping begins, and `STATUS=` lines for each phase, for
//!   a call abandoned and for a reload's verdict.
//!
//! # Why not the `sd-notify` crate
//!
//! The datagram layer (about 60 lines: open the socket, format a
//! `KEY=value` message, send it) is written here, and the lifecycle logic
//! around it would be the same with a crate. `sd-notify` 0.5.0 (checked
//! against its source) formats every message this module sends — `READY`,
//! `RELOADING`, `MONOTONIC_USEC`, `EXTEND_TIMEOUT_USEC`, `STATUS`,
//! `STOPPING`, `WATCHDOG` — but falls short where it matters here:
//!
//! - its `notify` reads `NOTIFY_SOCKET` from the process environment on
//!   every call and takes no socket address, so
//!   [`SystemdNotifier::from_socket_path`] (and every test that plays
//!   systemd on a socket of its own) would need `std::env::set_var`, which
//!   is `unsafe` in edition 2024 and this crate forbids `unsafe`;
//! - it passes the variable's value to `UnixDatagram::connect` as a path, so
//!   a socket in the abstract namespace (`NOTIFY_SOCKET=@name`, which
//!   `sd_notify(3)` supports and service managers other than PID 1 may
//!   hand out) is looked up as a file named `@name` and fails;
//! - it opens a new socket for every message, the watchdog ping included;
//! - `ExtendTimeoutUsec` holds a `u32`: a stop budget above 71 minutes
//!   would wrap.
//!
//! Errors are logged once here rather than returned, which a crate's
//! `io::Result` would leave to this module anyway.

use std::fmt;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod lifetime;
pub use lifetime::SystemdLifetime;

/// Sends sd_notify messages to the socket named by `NOTIFY_SOCKET`.
///
/// # Examples
///
/// ```
/// use std::os::unix::net::UnixDatagram;
/// use apphost::systemd::SystemdNotifier;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("notify.sock");
/// let systemd = UnixDatagram::bind(&path).unwrap();
///
/// let notifier = SystemdNotifier::from_socket_path(path.to_str().unwrap());
/// notifier.ready();
/// let mut buffer = [0; 64];
/// let n = systemd.recv(&mut buffer).unwrap();
/// assert_eq!(&buffer[..n], b"READY=1");
/// ```
pub struct SystemdNotifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// The socket named, for messages.
    name: String,
    warned: AtomicBool,
}

impl SystemdNotifier {
    /// A notifier for `$NOTIFY_SOCKET`; a no-op when it is unset or empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = apphost::systemd::SystemdNotifier::from_env();
    /// notifier.status("warming caches"); // does nothing outside systemd
    /// ```
    pub fn from_env() -> Self {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(socket) => Self::from_socket_path(&socket),
            Err(_) => Self::disabled(),
        }
    }

    /// A notifier that sends nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = apphost::systemd::SystemdNotifier::disabled();
    /// assert!(!notifier.is_enabled());
    /// ```
    pub fn disabled() -> Self {
        SystemdNotifier {
            target: None,
            name: String::new(),
            warned: AtomicBool::new(false),
        }
    }

    /// A notifier for the socket `socket`, written as in `NOTIFY_SOCKET`: a
    /// path, or `@name` for the abstract namespace. Empty means disabled. A
    /// socket that cannot be set up is logged and disables the notifier.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = apphost::systemd::SystemdNotifier::from_socket_path("");
    /// assert!(!notifier.is_enabled());
    /// ```
    pub fn from_socket_path(socket: &str) -> Self {
        if socket.is_empty() {
            return Self::disabled();
        }
        match open(socket) {
            Ok(target) => SystemdNotifier {
                target: Some(target),
                name: socket.to_owned(),
                warned: AtomicBool::new(false),
            },
            Err(error) => {
                tracing::warn!(target: "apphost::systemd", "NOTIFY_SOCKET={socket} is unusable ({error}); not notifying systemd");
                Self::disabled()
            }
        }
    }

    /// Whether messages are sent anywhere.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!apphost::systemd::SystemdNotifier::disabled().is_enabled());
    /// ```
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `message` (one or more `KEY=value` lines) as one datagram.
    /// Never fails: the first error is logged, later ones are not. Never
    /// waits long: a send to a socket whose reader stopped reading waits
    /// 20 ms once, and after that error no send waits at all.
    ///
    /// # Examples
    ///
    /// ```
    /// let notifier = apphost::systemd::SystemdNotifier::disabled();
    /// notifier.notify("STATUS=compacting\nERRNO=0");
    /// ```
    pub fn notify(&self, message: &str) {
        let Some((socket, address)) = &self.target else {
            return;
        };
        if let Err(error) = socket.send_to_addr(message.as_bytes(), address) {
            if !self.warned.swap(true, Ordering::Relaxed) {
                // A reader that stopped reading fills its queue (10
                // datagrams by default) and the send waits: once it has
                // waited SEND_WAIT, never again (messages are sent from the
                // host's lifecycle, which must not stall on systemd).
                let _ = socket.set_nonblocking(true);
                tracing::warn!(target: "apphost::systemd", "could not notify systemd at {}: {error} (further errors are not logged)", self.name);
            }
        }
    }

    /// `READY=1`: the service has started.
    ///
    /// # Examples
    ///
    /// ```
    /// apphost::systemd::SystemdNotifier::disabled().ready();
    /// ```
    pub fn ready(&self) {
        self.notify("READY=1");
    }

    /// `STOPPING=1`: the service is stopping.
    ///
    /// # Examples
    ///
    /// ```
    /// apphost::systemd::SystemdNotifier::disabled().stopping();
    /// ```
    pub fn stopping(&self) {
        self.notify("STOPPING=1");
    }

    /// `STATUS=text`: a one-line status shown by `systemctl status`.
    /// Newlines in `text` are replaced by spaces.
    ///
    /// # Examples
    ///
    /// ```
    /// apphost::systemd::SystemdNotifier::disabled().status("running");
    /// ```
    pub fn status(&self, text: &str) {
        self.notify(&format!("STATUS={}", text.replace('\n', " ")));
    }

    /// `WATCHDOG=1`: a keep-alive ping.
    ///
    /// # Examples
    ///
    /// ```
    /// apphost::systemd::SystemdNotifier::disabled().watchdog();
    /// ```
    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }

    /// `EXTEND_TIMEOUT_USEC=…`: asks systemd to wait `extra` more for the
    /// current start or stop.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// apphost::systemd::SystemdNotifier::disabled().extend_timeout(Duration::from_secs(10));
    /// ```
    pub fn extend_timeout(&self, extra: Duration) {
        self.notify(&format!("EXTEND_TIMEOUT_USEC={}", extra.as_micros()));
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=…` (the `Type=notify-reload`
    /// protocol); follow it with [`ready`](Self::ready) once reloaded.
    ///
    /// # Examples
    ///
    /// ```
    /// apphost::systemd::SystemdNotifier::disabled().reloading();
    /// ```
    pub fn reloading(&self) {
        self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    }
}

impl fmt::Debug for SystemdNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemdNotifier")
            .field("socket", &self.name)
            .finish()
    }
}

fn open(socket: &str) -> io::Result<(UnixDatagram, SocketAddr)> {
    let address = match socket.strip_prefix('@') {
        Some(name) => abstract_address(name)?,
        None => SocketAddr::from_pathname(socket)?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.set_write_timeout(Some(SEND_WAIT))?;
    Ok((socket, address))
}

/// How long a send may wait for a reader whose queue is full, once; after
/// that sends never wait (see [`SystemdNotifier::notify`]). systemd reads
/// its socket at once, so a wait means it is stuck or not systemd.
const SEND_WAIT: Duration = Duration::from_millis(20);

#[cfg(target_os = "linux")]
fn abstract_address(name: &str) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name.as_bytes())
}

#[cfg(not(target_os = "linux"))]
fn abstract_address(_name: &str) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

/// `CLOCK_MONOTONIC` in microseconds, as systemd wants in `MONOTONIC_USEC`.
fn monotonic_usec() -> u128 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let seconds = u128::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u128::try_from(now.tv_nsec).unwrap_or(0);
    seconds * 1_000_000 + nanos / 1_000
}

/// The watchdog systemd asked for (`WatchdogSec=`), from `WATCHDOG_USEC` and
/// `WATCHDOG_PID`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use apphost::systemd::Watchdog;
///
/// let dog = Watchdog::from_vars(Some("4000000"), None, 42).unwrap();
/// assert_eq!(dog.ping_interval(), Duration::from_secs(2));
/// assert!(Watchdog::from_vars(Some("4000000"), Some("7"), 42).is_none(), "another process's");
/// assert!(Watchdog::from_vars(Some("0"), None, 42).is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watchdog {
    interval: Duration,
}

impl Watchdog {
    /// The watchdog of this process, if systemd enabled one for it. Bad or
    /// zero values disable it, with a log line.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = apphost::systemd::Watchdog::from_env();
    /// ```
    pub fn from_env() -> Option<Watchdog> {
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Self::from_vars(usec.as_deref(), pid.as_deref(), std::process::id())
    }

    /// The watchdog described by the values of `WATCHDOG_USEC` and
    /// `WATCHDOG_PID`, for process `own_pid`.
    ///
    /// # Examples
    ///
    /// ```
    /// let dog = apphost::systemd::Watchdog::from_vars(Some("1000000"), Some("42"), 42);
    /// assert!(dog.is_some());
    /// ```
    pub fn from_vars(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Watchdog> {
        let usec = usec?;
        if let Some(pid) = pid {
            match pid.trim().parse::<u32>() {
                Ok(pid) if pid == own_pid => {}
                Ok(_) => return None,
                Err(_) => {
                    tracing::warn!(target: "apphost::systemd", "WATCHDOG_PID={pid:?} is not a process id; watchdog disabled");
                    return None;
                }
            }
        }
        match usec.trim().parse::<u64>() {
            Ok(0) => {
                tracing::warn!(target: "apphost::systemd", "WATCHDOG_USEC=0; watchdog disabled");
                None
            }
            Ok(usec) => Some(Watchdog {
                interval: Duration::from_micros(usec),
            }),
            Err(_) => {
                tracing::warn!(target: "apphost::systemd", "WATCHDOG_USEC={usec:?} is not a number of microseconds; watchdog disabled");
                None
            }
        }
    }

    /// The interval systemd expects a ping within.
    ///
    /// # Examples
    ///
    /// ```
    /// let dog = apphost::systemd::Watchdog::from_vars(Some("500000"), None, 1).unwrap();
    /// assert_eq!(dog.interval(), std::time::Duration::from_millis(500));
    /// ```
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How often pings are sent: half the interval, as systemd recommends,
    /// but never more often than every [`MIN_PING_INTERVAL`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use apphost::systemd::{Watchdog, MIN_PING_INTERVAL};
    ///
    /// let dog = Watchdog::from_vars(Some("500000"), None, 1).unwrap();
    /// assert_eq!(dog.ping_interval(), Duration::from_millis(250));
    /// // WATCHDOG_USEC=1 would ask for a ping every half microsecond.
    /// let dog = Watchdog::from_vars(Some("1"), None, 1).unwrap();
    /// assert_eq!(dog.ping_interval(), MIN_PING_INTERVAL);
    /// ```
    pub fn ping_interval(&self) -> Duration {
        (self.interval / 2).max(MIN_PING_INTERVAL)
    }

    /// Whether [`MIN_PING_INTERVAL`] overrides half the interval.
    ///
    /// # Examples
    ///
    /// ```
    /// use apphost::systemd::Watchdog;
    /// assert!(Watchdog::from_vars(Some("1"), None, 1).unwrap().is_floored());
    /// assert!(!Watchdog::from_vars(Some("1000000"), None, 1).unwrap().is_floored());
    /// ```
    pub fn is_floored(&self) -> bool {
        self.interval / 2 < MIN_PING_INTERVAL
    }
}

/// The shortest interval between two watchdog pings: 10 ms.
///
/// Half of `WATCHDOG_USEC` is systemd's advice, but `WATCHDOG_USEC=1` (a
/// typo, or `WatchdogSec=1us`) would then mean a ping every half microsecond:
/// measured here, about 9,000 datagrams a second and 45 % of a core, for a
/// watchdog no process can satisfy anyway. A userspace thread cannot promise
/// to run within a few milliseconds on a loaded machine (scheduler slices
/// are 3–4 ms), so a `WatchdogSec=` below about 20 ms is not a promise to
/// keep but a misconfiguration; 10 ms caps the cost at 100 small datagrams a
/// second (well under 1 % of a core) and stays below any interval that can
/// work. The floor is logged once, at WARN, when it applies.
pub const MIN_PING_INTERVAL: Duration = Duration::from_millis(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn listen() -> (tempfile::TempDir, UnixDatagram, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (dir, socket, path.to_str().unwrap().to_owned())
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buffer = [0; 512];
        let n = socket.recv(&mut buffer).expect("a datagram");
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    }

    #[test]
    fn each_message_is_one_datagram() {
        let (_dir, socket, path) = listen();
        let notifier = SystemdNotifier::from_socket_path(&path);
        notifier.status("a\nb");
        notifier.extend_timeout(Duration::from_millis(1500));
        notifier.reloading();
        assert_eq!(receive(&socket), "STATUS=a b");
        assert_eq!(receive(&socket), "EXTEND_TIMEOUT_USEC=1500000");
        let reload = receive(&socket);
        assert!(
            reload.starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{reload}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn abstract_namespace_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("apphost-test-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&address).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        SystemdNotifier::from_socket_path(&format!("@{name}")).ready();
        assert_eq!(receive(&socket), "READY=1");
    }

    #[test]
    fn a_send_error_does_not_fail() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone.sock");
        let notifier = SystemdNotifier::from_socket_path(missing.to_str().unwrap());
        notifier.ready();
        notifier.ready();
        assert!(notifier.warned.load(Ordering::Relaxed));
    }

    #[test]
    fn watchdog_variables() {
        assert_eq!(
            Watchdog::from_vars(Some("2000000"), Some("9"), 9).map(|d| d.ping_interval()),
            Some(Duration::from_secs(1))
        );
        assert!(Watchdog::from_vars(None, None, 9).is_none());
        assert!(Watchdog::from_vars(Some("abc"), None, 9).is_none());
        assert!(Watchdog::from_vars(Some("100"), Some("x"), 9).is_none());
    }
}
