//! The worker example under real systemd: the shipped unit
//! (`examples/deploy/worker.service`), the shipped configuration
//! (`config/default.toml` + `examples/deploy/production.toml`) and the built
//! `worker` binary, staged into a Debian trixie container (systemd 257)
//! booted with `systemd-nspawn`. Every check reads systemd's own state
//! (`systemctl show`, `systemctl status`, `journalctl`), not the service's
//! word for it.
//!
//! One container serves all the checks, one after the other (booting one
//! takes about a second, powering it off two): each check is a function of
//! its own and is named in the output and in any failure.
//!
//! Needs `systemd-nspawn` (Debian: `systemd-container`), `nsenter`, a
//! cgroup v2 hierarchy, root, and the root file system that
//! `.ci/systemd-rootfs` builds (or `APPHOST_SYSTEMD_ROOTFS`). Without them the
//! test prints `SKIPPED: …` and passes, unless `APPHOST_REQUIRE_SUPERVISORS=1`
//! (as in `.ci/run`). Every wait is bounded: a hang fails the test.

#![cfg(target_os = "linux")]

mod process_support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use process_support::{REQUIRE_ENV, example, require};

/// Where `.ci/systemd-rootfs` caches the root file system.
const DEFAULT_ROOTFS: &str = "/var/cache/apphost-systemd-rootfs";

/// The longest any single command inside the container may take.
const COMMAND_BOUND: Duration = Duration::from_secs(60);

/// The unit under test, as installed in the container.
const UNIT: &str = "worker.service";

/// The drop-in each check writes its differences from the shipped unit to.
const DROP_IN: &str = "/etc/systemd/system/worker.service.d/test.conf";

/// Skips (or, under `APPHOST_REQUIRE_SUPERVISORS=1`, fails) when `what` is
/// missing.
fn skip_or_fail(what: &str) -> bool {
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
    assert!(!required, "{what}, and {REQUIRE_ENV}=1 requires it");
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {what}; set {REQUIRE_ENV}=1 to make this a failure"
    );
    false
}

/// The cgroup v2 directory this process is in, if the machine has cgroup v2
/// (unified, or hybrid with `/sys/fs/cgroup/unified`).
fn own_cgroup2() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        right
            .starts_with("cgroup2 ")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(mount.join(path.trim_start_matches('/')))
}

/// A booted container, powered off and its cgroup removed on drop.
struct Container {
    nspawn: Child,
    leader: u32,
    cgroup: PathBuf,
    _stage: tempfile::TempDir,
    log: PathBuf,
}

impl Container {
    /// Boots `rootfs` with `stage` bound read-only at `/mnt/stage`, inside a
    /// cgroup of its own under `parent` (nspawn creates `payload/` and
    /// `supervisor/` in whatever cgroup it starts in).
    fn boot(rootfs: &Path, stage: tempfile::TempDir, parent: &Path) -> Container {
        remove_stale_cgroups(parent);
        let cgroup = parent.join(format!("apphost-nspawn-{}", std::process::id()));
        std::fs::create_dir_all(&cgroup)
            .unwrap_or_else(|e| panic!("create {}: {e}", cgroup.display()));
        let log = stage.path().join("nspawn.log");
        // The shell moves itself into the new cgroup, then becomes nspawn.
        // `setpriv --pdeathsig TERM`: should this test process be killed
        // before `Drop` runs, nspawn gets SIGTERM and takes the container
        // down with it instead of leaving it running.
        let nspawn = Command::new("sh")
            .arg("-c")
            .arg(r#"echo $$ > "$1/cgroup.procs" && shift && exec "$@""#)
            .arg("sh")
            .arg(&cgroup)
            .args(["setpriv", "--pdeathsig", "TERM", "systemd-nspawn", "-D"])
            .arg(rootfs)
            .args([
                "--volatile=overlay",
                "--register=no",
                "--keep-unit",
                "--private-network",
                "--link-journal=no",
                "--resolv-conf=off",
                "--timezone=off",
            ])
            .arg(format!("--bind-ro={}:/mnt/stage", stage.path().display()))
            .args(["-b", "--console=passive"])
            .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(stage.path().join("nspawn.err")).unwrap())
            .spawn()
            .expect("spawn systemd-nspawn");
        let mut container = Container {
            nspawn,
            leader: 0,
            cgroup,
            _stage: stage,
            log,
        };
        // The container's PID 1 is nspawn's child, running systemd.
        let deadline = Instant::now() + COMMAND_BOUND;
        container.leader = loop {
            if let Ok(Some(status)) = container.nspawn.try_wait() {
                panic!(
                    "systemd-nspawn exited with {status}: {}",
                    container.nspawn_output()
                );
            }
            let nspawn = container.nspawn.id();
            let children =
                std::fs::read_to_string(format!("/proc/{nspawn}/task/{nspawn}/children"))
                    .unwrap_or_default();
            let leader = children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .find(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim() == "systemd")
                });
            if let Some(leader) = leader {
                break leader;
            }
            assert!(
                Instant::now() < deadline,
                "the container's systemd never started: {}",
                container.nspawn_output()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // Until its systemd listens on its bus, systemctl cannot connect.
        let deadline = Instant::now() + COMMAND_BOUND;
        loop {
            let (code, out) = container.sh("timeout 50 systemctl is-system-running --wait");
            // "degraded" is fine: some unit of the minimal image failed.
            if out.contains("running") || out.contains("degraded") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the container did not finish booting ({code}): {out}\n{}",
                container.nspawn_output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        container
    }

    fn nspawn_output(&self) -> String {
        let mut text = std::fs::read_to_string(&self.log).unwrap_or_default();
        if let Some(dir) = self.log.parent() {
            text += &std::fs::read_to_string(dir.join("nspawn.err")).unwrap_or_default();
        }
        text
    }

    /// Runs `script` with `sh -c` inside the container, with a clean
    /// environment, within [`COMMAND_BOUND`]; its exit code and output
    /// (stdout then stderr).
    fn sh(&self, script: &str) -> (i32, String) {
        let mut child = Command::new("nsenter")
            .arg("-t")
            .arg(self.leader.to_string())
            .args([
                "-a",
                "env",
                "-i",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "SYSTEMD_PAGER=",
                "SYSTEMD_COLORS=0",
                "sh",
                "-c",
            ])
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nsenter");
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let deadline = Instant::now() + COMMAND_BOUND;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{script}` did not finish within {COMMAND_BOUND:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let text = out.join().unwrap() + &err.join().unwrap();
        (status.code().unwrap_or(-1), text)
    }

    /// [`sh`](Self::sh) that must succeed; its output.
    fn ok(&self, script: &str) -> String {
        let (code, out) = self.sh(script);
        assert_eq!(code, 0, "`{script}` failed: {out}");
        out
    }

    /// `systemctl show -p NAME --value worker.service`.
    fn property(&self, name: &str) -> String {
        self.ok(&format!("systemctl show -p {name} --value {UNIT}"))
            .trim()
            .to_owned()
    }

    /// Polls `property` until it equals `wanted`, failing after `bound`.
    fn wait_property(&self, name: &str, wanted: &str, bound: Duration) {
        let deadline = Instant::now() + bound;
        loop {
            let value = self.property(name);
            if value == wanted {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is {value:?}, not {wanted:?}, after {bound:?}; journal:\n{}",
                self.journal()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the unit's journal has a line containing `needle`:
    /// journald reads the service's stderr on its own schedule, so a line
    /// written just before a notify message may land just after systemd
    /// acted on it.
    fn wait_journal(&self, needle: &str) {
        self.wait_output(&format!("journalctl -u {UNIT} --no-pager -o cat"), needle);
    }

    /// Polls `script` until its output contains `needle`, failing after
    /// ten seconds.
    fn wait_output(&self, script: &str, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, out) = self.sh(script);
            if out.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in `{script}`:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The unit's journal, message text only.
    fn journal(&self) -> String {
        self.sh(&format!("journalctl -u {UNIT} --no-pager -o cat"))
            .1
    }

    /// Replaces the test drop-in with `body` (a `[Service]` section's
    /// lines), reloads systemd's configuration and forgets earlier failures.
    fn configure(&self, body: &str) {
        self.ok(&format!(
            "mkdir -p /etc/systemd/system/worker.service.d && \
             printf '%s\\n' '[Service]' '{}' > {DROP_IN} && \
             systemctl daemon-reload && \
             (systemctl reset-failed {UNIT} 2>/dev/null; true)",
            body.replace('\'', "").replace('\n', "' '")
        ));
    }

    /// Starts the unit and waits for it to be active; the start's output.
    fn start(&self) -> String {
        let (code, out) = self.sh(&format!("systemctl start {UNIT}"));
        assert_eq!(
            code,
            0,
            "systemctl start: {out}\n{}\njournal:\n{}",
            self.sh(&format!("systemctl status --no-pager {UNIT}")).1,
            self.sh("journalctl --no-pager -n 50 -o cat").1
        );
        assert_eq!(self.property("ActiveState"), "active");
        out
    }

    /// Stops the unit, if running.
    fn stop(&self) {
        self.ok(&format!("systemctl stop {UNIT}"));
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGRTMIN+4 asks the container's systemd to power off; a plain
        // SIGTERM to nspawn ends in SIGKILL.
        if self.leader != 0 {
            let _ = Command::new("kill")
                .args(["-s", "SIGRTMIN+4", &self.leader.to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                let _ = self.nspawn.kill();
                let _ = self.nspawn.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Then the cgroup nspawn left (payload/…, supervisor/), deepest
        // first; processes of a killed container may take a moment to go.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cgroup.exists() && Instant::now() < deadline {
            remove_cgroup_tree(&self.cgroup);
            if self.cgroup.exists() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Removes the cgroups of earlier runs that were killed before they could
/// clean up — only trees with no process left anywhere in them
/// (`populated 0`), so a container another run is using is never touched.
fn remove_stale_cgroups(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with("apphost-nspawn-"))
            && std::fs::read_to_string(entry.path().join("cgroup.events"))
                .is_ok_and(|e| e.lines().any(|l| l == "populated 0"));
        if stale {
            remove_cgroup_tree(&entry.path());
        }
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// The files the container installs: the worker binary, its configuration
/// and the shipped unit.
fn stage() -> tempfile::TempDir {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let stage = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &str| {
        std::fs::copy(from, stage.path().join(to))
            .unwrap_or_else(|e| panic!("stage {}: {e}", from.display()));
    };
    copy(&example("worker"), "apphost-worker");
    copy(&root.join("config/default.toml"), "default.toml");
    copy(
        &root.join("examples/deploy/production.toml"),
        "production.toml",
    );
    copy(
        &root.join("examples/deploy/worker.service"),
        "worker.service",
    );
    stage
}

/// Installs the staged files where the shipped unit expects them.
fn install(container: &Container) {
    container.ok(
        "install -m 0755 /mnt/stage/apphost-worker /usr/local/bin/apphost-worker && \
         mkdir -p /etc/apphost-worker && \
         cp /mnt/stage/default.toml /mnt/stage/production.toml /etc/apphost-worker/ && \
         cp /mnt/stage/worker.service /etc/systemd/system/worker.service && \
         systemctl daemon-reload",
    );
    // The unit as shipped must parse without complaint: an unknown setting
    // or type (systemd < 253 and Type=notify-reload) is only a log line.
    let (_, verify) = container.sh(&format!(
        "systemd-analyze verify /etc/systemd/system/{UNIT}"
    ));
    assert!(
        !verify.contains("worker.service:"),
        "systemd-analyze verify complains about the shipped unit:\n{verify}"
    );
}

/// Runs `check`, naming it in the output and in its failure.
fn check(name: &str, container: &Container, check: fn(&Container)) {
    let began = Instant::now();
    let _ = writeln!(std::io::stderr(), "real systemd: {name} ...");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(container)));
    match result {
        Ok(()) => {
            let _ = writeln!(
                std::io::stderr(),
                "real systemd: {name} ok ({:.1?})",
                began.elapsed()
            );
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("real systemd check `{name}` failed: {message}");
        }
    }
}

#[test]
fn the_shipped_unit_under_real_systemd() {
    if !require("systemd-nspawn", "apt-get install systemd-container")
        || !require("nsenter", "apt-get install util-linux")
        || !require("setpriv", "apt-get install util-linux")
    {
        return;
    }
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
            .unwrap_or(false)
    });
    if !root {
        skip_or_fail("not root (systemd-nspawn and cgroups need it)");
        return;
    }
    let rootfs = std::env::var_os("APPHOST_SYSTEMD_ROOTFS")
        .map_or_else(|| PathBuf::from(DEFAULT_ROOTFS), PathBuf::from);
    if !rootfs.join(".apphost-complete").exists() {
        skip_or_fail(&format!(
            "no container root file system at {} (build it with .ci/systemd-rootfs)",
            rootfs.display()
        ));
        return;
    }
    let Some(cgroup) = own_cgroup2() else {
        skip_or_fail("no cgroup v2 hierarchy");
        return;
    };
    let began = Instant::now();
    let container = Container::boot(&rootfs, stage(), &cgroup);
    let _ = writeln!(
        std::io::stderr(),
        "real systemd: container booted in {:.1?}",
        began.elapsed()
    );
    install(&container);

    check(
        "start returns only after READY=1",
        &container,
        start_waits_for_ready,
    );
    check(
        "systemctl status shows STATUS=",
        &container,
        status_shows_the_status_text,
    );
    check("systemctl reload completes", &container, reload_completes);
    check(
        "journalctl -p warning finds a warning",
        &container,
        warnings_have_their_priority,
    );
    check(
        "systemctl stop: exit 0, inactive",
        &container,
        stop_is_a_clean_exit_0,
    );
    check(
        "the same unit without notify times out",
        &container,
        without_notify_start_times_out,
    );
    check(
        "EXTEND_TIMEOUT_USEC outlives TimeoutStopSec",
        &container,
        a_drain_outlives_timeout_stop_sec,
    );
    check(
        "the watchdog keeps a healthy worker",
        &container,
        watchdog_keeps_a_healthy_worker,
    );
    check(
        "the watchdog restarts a stalled worker",
        &container,
        watchdog_restarts_a_stalled_worker,
    );
    check(
        "bad configuration: status=78, no restart",
        &container,
        bad_config_is_78_and_not_restarted,
    );

    let _ = writeln!(
        std::io::stderr(),
        "real systemd: all checks passed in {:.1?}",
        began.elapsed()
    );
}

/// The shipped drain delay (3 s) is right in production and slow in a test.
const NO_DRAIN: &str = "Environment=APPHOST__CONSOLE__DRAIN_DELAY=0s";

fn start_waits_for_ready(c: &Container) {
    c.configure(NO_DRAIN);
    c.start();
    // Type=notify-reload: `active` only once READY=1 arrived (the control
    // check below shows the same unit never gets there without it).
    assert_eq!(c.property("SubState"), "running");
    assert_eq!(c.property("Type"), "notify-reload");
    c.wait_property("StatusText", "running", Duration::from_secs(10));
    c.wait_journal("Application started");
}

fn status_shows_the_status_text(c: &Container) {
    let (_, status) = c.sh(&format!("systemctl status --no-pager {UNIT}"));
    assert!(status.contains("Status: \"running"), "{status}");
}

fn reload_completes(c: &Container) {
    let pid = c.property("MainPID");
    let began = Instant::now();
    // Type=notify-reload: systemd sends SIGHUP and waits for RELOADING=1
    // (with MONOTONIC_USEC) and READY=1; without them it would time out
    // and fail the unit.
    c.ok(&format!("systemctl reload {UNIT}"));
    assert!(began.elapsed() < COMMAND_BOUND);
    assert_eq!(c.property("ActiveState"), "active");
    assert_eq!(c.property("SubState"), "running");
    assert_eq!(
        c.property("MainPID"),
        pid,
        "reloaded in place, not restarted"
    );
    c.wait_property(
        "StatusText",
        "running (configuration reloaded)",
        Duration::from_secs(10),
    );
    c.wait_journal("configuration reloaded");
}

fn warnings_have_their_priority(c: &Container) {
    // An invalid [worker] section on reload: the worker (or the host, which
    // then rejects the whole reload) logs it at WARN or ERROR.
    c.ok(
        "cp /etc/apphost-worker/production.toml /tmp/production.toml.orig && \
         printf '\\n[worker]\\ninterval = \"soon\"\\n' >> /etc/apphost-worker/production.toml",
    );
    c.ok(&format!("systemctl reload {UNIT}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let warnings = loop {
        let (_, warnings) = c.sh(&format!(
            "journalctl -u {UNIT} -p warning --no-pager -o cat"
        ));
        if warnings.contains("worker") && warnings.contains("soon") {
            break warnings;
        }
        assert!(
            Instant::now() < deadline,
            "no warning in `journalctl -p warning`:\n{warnings}\nwhole journal:\n{}",
            c.journal()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Priorities, not everything at 6: INFO lines stay out of -p warning,
    // and no line carries a second timestamp of its own.
    assert!(!warnings.contains("Application started"), "{warnings}");
    let (_, info) = c.sh(&format!(
        "journalctl -u {UNIT} -p info..info --no-pager -o cat | grep 'Application started'"
    ));
    assert!(info.contains("Application started"), "{info}");
    // The shipped production.toml logs JSON: no "timestamp" field either.
    assert!(
        !info.trim_start().starts_with("20") && !info.contains("\"timestamp\""),
        "a timestamp of its own on top of journald's: {info}"
    );
    c.ok("cp /tmp/production.toml.orig /etc/apphost-worker/production.toml");
    c.ok(&format!("systemctl reload {UNIT}"));
}

fn stop_is_a_clean_exit_0(c: &Container) {
    c.stop();
    assert_eq!(c.property("ActiveState"), "inactive");
    assert_eq!(c.property("Result"), "success");
    assert_eq!(c.property("ExecMainStatus"), "0");
}

fn without_notify_start_times_out(c: &Container) {
    c.configure(&format!(
        "{NO_DRAIN}\nEnvironment=APPHOST__CONSOLE__SYSTEMD_NOTIFY=false\nTimeoutStartSec=3s\nRestart=no"
    ));
    let (code, out) = c.sh(&format!("systemctl start {UNIT}"));
    assert_ne!(code, 0, "start returned without READY=1: {out}");
    assert_eq!(c.property("Result"), "timeout", "{out}");
    c.ok(&format!("systemctl reset-failed {UNIT} || true"));
}

fn a_drain_outlives_timeout_stop_sec(c: &Container) {
    // TimeoutStopSec=2s, a 4 s drain: only EXTEND_TIMEOUT_USEC (the 8 s
    // budget + 1 s) keeps systemd from killing the worker.
    c.configure("TimeoutStopSec=2s\nEnvironment=APPHOST__CONSOLE__DRAIN_DELAY=4s");
    c.start();
    let began = Instant::now();
    c.stop();
    let took = began.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "the drain was cut: {took:?}"
    );
    assert_eq!(c.property("Result"), "success", "{}", c.journal());
    assert_eq!(c.property("ExecMainStatus"), "0");
    c.wait_journal("waiting 4s for load balancers");
}

fn watchdog_keeps_a_healthy_worker(c: &Container) {
    // Pings every second; a healthy worker outlives several intervals.
    c.configure(&format!(
        "{NO_DRAIN}\nWatchdogSec=2s\nLimitCORE=0\nRestartSec=500ms"
    ));
    c.start();
    let pid = c.property("MainPID");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(c.property("ActiveState"), "active", "{}", c.journal());
    assert_eq!(c.property("NRestarts"), "0");
    assert_eq!(c.property("MainPID"), pid);
}

fn watchdog_restarts_a_stalled_worker(c: &Container) {
    let pid = c.property("MainPID");
    c.ok(&format!("kill -STOP {pid}"));
    c.wait_property("NRestarts", "1", Duration::from_secs(30));
    c.wait_property("ActiveState", "active", Duration::from_secs(30));
    assert_ne!(c.property("MainPID"), pid);
    c.wait_output("journalctl --no-pager -o cat", "Watchdog timeout");
    c.stop();
}

fn bad_config_is_78_and_not_restarted(c: &Container) {
    c.configure(&format!(
        "{NO_DRAIN}\nEnvironment=APPHOST__HOST__SHUTDOWN_TIMEOUT=ten"
    ));
    let (code, out) = c.sh(&format!("systemctl start {UNIT}"));
    assert_ne!(code, 0, "{out}");
    c.wait_property("ActiveState", "failed", Duration::from_secs(10));
    assert_eq!(c.property("ExecMainStatus"), "78");
    // Restart=on-failure would restart within RestartSec (100 ms by default).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.property("NRestarts"), "0");
    assert_eq!(c.property("ActiveState"), "failed");
    c.wait_journal("APPHOST__HOST__SHUTDOWN_TIMEOUT");
}
