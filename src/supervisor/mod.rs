//! The process supervisor: runs the Services placed on this node as child
//! processes, restarts them per policy with backoff, probes their health, keeps a
//! bounded tail of their output, and stops them (SIGTERM, then SIGKILL after a
//! grace). Children never outlive the daemon: each runs in its own process group
//! with a parent-death signal on Linux, and the processes it started are recorded
//! in the state folder so a restarted daemon finds and stops leftovers instead of
//! starting duplicates.
//!
//! - `unit.rs`: the task that runs one Service (start, watch, probe, restart, stop).
//! - `environment.rs`: a Service's environment, from scratch plus an allow-list.
//! - `process.rs`: process groups: spawning, signalling, reaping, the parent-death
//!   signal, and what the OS says about a pid.
//! - `probe.rs`: the http and tcp health checks and the start grace.
//! - `logs.rs`: reading output line by line into a bounded ring buffer.
//! - `record.rs`: `processes.json` and the leftovers of an earlier daemon.

mod environment;
mod logs;
mod probe;
mod process;
mod record;
mod unit;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::backoff::Jitter;
use crate::manifest::kinds::RestartPolicy;
use record::Records;
use unit::Unit;

/// A Service rendered for this node: everything needed to run it, with
/// placeholders substituted and secrets resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessSpec {
    pub name: String,
    pub command: Vec<String>,
    /// Added to the allowed part of the daemon's environment
    /// (`environment::INHERITED`).
    #[serde(skip_serializing)]
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<PathBuf>,
    pub probe: Option<Probe>,
    pub restart: RestartPolicy,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub stop_grace: Duration,
}

impl ProcessSpec {
    /// A short stable hash of the whole spec (env included): a different
    /// fingerprint means the running process must be replaced.
    ///
    /// It is recorded in `processes.json` and compared across daemon versions, so
    /// it is FNV-1a over the spec's JSON, not std's `DefaultHasher`, whose output
    /// may change with the Rust version.
    pub fn fingerprint(&self) -> String {
        // Env values may hold resolved secrets: only their hash leaves this
        // function, and JSON serialization of these plain types cannot fail.
        let bytes = serde_json::to_vec(&(self, &self.env)).expect("a ProcessSpec serializes");
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        format!("{hash:016x}")[..12].to_owned()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Probe {
    /// Healthy when `GET http://host:port/path` answers 2xx.
    Http { host: String, port: u16, path: String, interval: Duration, timeout: Duration },
    /// Healthy when a TCP connection to host:port succeeds.
    Tcp { host: String, port: u16, interval: Duration, timeout: Duration },
}

/// Where a supervised process is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Spawned; not yet healthy (or no probe has run yet).
    Starting,
    /// Running and, when it has a probe, healthy.
    Running,
    /// Running but its probe fails.
    Unhealthy,
    /// Exited; waiting for the backoff delay before the next start.
    BackingOff,
    /// Exited and will not be started again (restart policy), or failed to spawn
    /// and waits for its backoff.
    Exited,
    /// Being stopped, or stopped.
    Stopping,
}

/// What the supervisor knows about one Service.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitStatus {
    pub fingerprint: String,
    pub phase: Phase,
    pub pid: Option<u32>,
    /// How many times it was started again after exiting.
    pub restarts: u32,
    /// How it last ended, e.g. `exit status 1` or `killed by signal 9`, or why it
    /// could not be spawned.
    pub last_exit: Option<String>,
    /// The probe's last verdict; None before the first probe or without a probe.
    pub healthy: Option<bool>,
    /// The probe's port, when the last run exited within its start grace while
    /// a process this supervisor did not start held that port: the probe was
    /// answered by the stranger, and restarting will not help until it is gone.
    pub port_in_use: Option<u16>,
    /// Why the probe failed, or why the process is where it is.
    pub message: String,
    #[serde(skip)]
    pub since: SystemTime,
}

/// One line a process wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    pub service: String,
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    pub line: String,
}

/// Sent whenever a unit's status changes (started, exited, health changed,
/// stopped), so the controller can requeue that Service.
#[derive(Clone, Debug, PartialEq)]
pub enum SupervisorEvent {
    Changed { service: String, message: String },
    Log(LogLine),
}

/// Owns every supervised process of this node. Cheap to clone; clones share the
/// same processes.
///
/// Dropping the last clone kills every process it runs (without a grace): call
/// [`Supervisor::shutdown`] first for a graceful stop.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    /// One unit per Service name. Dropping a unit kills its process group.
    units: Mutex<BTreeMap<String, Unit>>,
    context: Arc<unit::Context>,
}

/// How long leftovers of an earlier daemon get to exit after SIGTERM.
const LEFTOVER_GRACE: Duration = Duration::from_secs(3);

impl Supervisor {
    /// A supervisor that records its processes in `state_dir/processes.json`
    /// and reports to `events`. Processes recorded by an earlier daemon that are
    /// still alive (same pid and start time) are stopped first, with what they
    /// started in their process groups.
    pub async fn new(
        state_dir: PathBuf,
        events: mpsc::UnboundedSender<SupervisorEvent>,
    ) -> std::io::Result<Supervisor> {
        Supervisor::with_jitter(state_dir, events, Jitter::random()).await
    }

    /// [`Supervisor::new`] whose restart delays are spread by `jitter`
    /// ([`Jitter::none`]: exactly as the spec says, for tests that time them).
    pub async fn with_jitter(
        state_dir: PathBuf,
        events: mpsc::UnboundedSender<SupervisorEvent>,
        jitter: Jitter,
    ) -> std::io::Result<Supervisor> {
        std::fs::create_dir_all(&state_dir)?;
        let (records, earlier) = Records::open(&state_dir);
        let leftovers: Vec<_> = earlier.iter().map(record::Record::leftover).collect();
        process::stop_leftovers(&leftovers, LEFTOVER_GRACE).await;
        // The leftovers are gone (or cannot be signalled by us): forget them.
        records.save();
        let context = unit::Context::new(events, Arc::new(records), jitter)?;
        Ok(Supervisor { inner: Arc::new(Inner { units: Mutex::new(BTreeMap::new()), context: Arc::new(context) }) })
    }

    /// Starts `spec` under its name. A unit of that name that is already there is
    /// stopped first (its spec changed).
    ///
    /// Returns once the old unit is gone and the first start was attempted, so
    /// [`Supervisor::status`] then shows the new process (or why it failed).
    pub async fn start(&self, spec: ProcessSpec) {
        let ready = {
            let mut units = self.units();
            // The old unit moves into the new one, which stops it before starting:
            // a concurrent `stop` or `start` of this name then waits for both.
            let previous = units.remove(&spec.name);
            let name = spec.name.clone();
            let (unit, ready) = Unit::launch(spec, previous, self.inner.context.clone());
            units.insert(name, unit);
            ready
        };
        // An error means the unit was dropped meanwhile: nothing left to wait for.
        let _ = ready.await;
    }

    /// Stops the unit: SIGTERM to its process group, SIGKILL after its grace;
    /// returns once it is gone. Unknown names are a no-op.
    pub async fn stop(&self, service: &str) {
        let unit = self.units().remove(service);
        if let Some(unit) = unit {
            unit.stop().await;
        }
    }

    /// The status of one unit.
    pub fn status(&self, service: &str) -> Option<UnitStatus> {
        self.units().get(service).map(Unit::status)
    }

    /// The names of every unit, running or not.
    pub fn services(&self) -> Vec<String> {
        self.units().keys().cloned().collect()
    }

    /// The last lines (at most `limit`) each unit wrote.
    pub fn logs(&self, service: &str, limit: usize) -> Vec<LogLine> {
        self.units().get(service).map(|unit| unit.logs(limit)).unwrap_or_default()
    }

    /// Writes `processes.json` again (blocking: a small write and an fsync),
    /// after the state folder was deleted: the next daemon must still find
    /// what this one started.
    pub fn record_again(&self) {
        self.inner.context.records.save();
    }

    /// Stops every unit (daemon shutdown), all at once: the slowest grace bounds
    /// how long it takes.
    pub async fn shutdown(&self) {
        let units = std::mem::take(&mut *self.units());
        for unit in units.values() {
            unit.request_stop();
        }
        for unit in units.values() {
            unit.stopped().await;
        }
    }

    fn units(&self) -> MutexGuard<'_, BTreeMap<String, Unit>> {
        lock(&self.inner.units)
    }
}

/// Locks `mutex` even if a thread panicked while holding it: every critical
/// section here leaves the data consistent, so the poison carries no meaning.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    fn spec(command: &[&str]) -> ProcessSpec {
        ProcessSpec {
            name: "web".into(),
            command: command.iter().map(ToString::to_string).collect(),
            env: BTreeMap::new(),
            working_dir: None,
            probe: None,
            restart: RestartPolicy::Always,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(800),
            stop_grace: Duration::from_secs(1),
        }
    }

    #[test]
    fn fingerprint_is_twelve_hex_digits_and_stable() {
        let fingerprint = spec(&["server", "--port", "8080"]).fingerprint();
        assert_eq!(fingerprint.len(), 12);
        assert!(fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
        // Pinned: a daemon upgrade must not see every running Service as changed.
        assert_eq!(fingerprint, "080777bb2a0c");
    }

    #[test]
    fn fingerprint_changes_with_any_field_including_env() {
        let base = spec(&["server"]);
        let mut with_env = base.clone();
        with_env.env.insert("TOKEN".into(), "a".into());
        let mut other_env = base.clone();
        other_env.env.insert("TOKEN".into(), "b".into());
        let mut other_grace = base.clone();
        other_grace.stop_grace = Duration::from_secs(2);
        let mut other_restart = base.clone();
        other_restart.restart = RestartPolicy::Never;
        let fingerprints = [&base, &with_env, &other_env, &other_grace, &other_restart].map(ProcessSpec::fingerprint);
        for (i, a) in fingerprints.iter().enumerate() {
            for b in &fingerprints[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(base.fingerprint(), base.clone().fingerprint());
    }

    /// Spawning fails at once, so this runs on a paused clock: every delay is
    /// exact. Starts happen at 0, then after 100, 200, 400, 800 and 800 ms.
    #[tokio::test(start_paused = true)]
    async fn a_program_that_cannot_start_is_retried_with_doubling_backoff_up_to_the_max() {
        let state = tempfile::tempdir().unwrap();
        let (events, mut received) = mpsc::unbounded_channel();
        let supervisor = Supervisor::with_jitter(state.path().to_owned(), events, Jitter::none()).await.unwrap();
        let started = Instant::now();
        supervisor.start(spec(&["/nonexistent/agentmesh-test-program"])).await;

        let status = supervisor.status("web").unwrap();
        assert_eq!(status.phase, Phase::Exited);
        assert_eq!(status.pid, None);
        let last_exit = status.last_exit.unwrap();
        assert!(last_exit.starts_with("cannot start: "), "{last_exit}");

        let mut attempts = Vec::new();
        while attempts.len() < 6 {
            let Some(SupervisorEvent::Changed { message, .. }) = received.recv().await else {
                continue;
            };
            if message.starts_with("cannot start") {
                attempts.push(started.elapsed().as_millis());
            }
        }
        assert_eq!(attempts, [0, 100, 300, 700, 1500, 2300]);
        assert_eq!(supervisor.status("web").unwrap().restarts, 5);
        supervisor.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_program_that_cannot_start_is_not_retried_with_restart_never() {
        let state = tempfile::tempdir().unwrap();
        let (events, _received) = mpsc::unbounded_channel();
        let supervisor = Supervisor::new(state.path().to_owned(), events).await.unwrap();
        let mut never = spec(&["/nonexistent/agentmesh-test-program"]);
        never.restart = RestartPolicy::Never;
        supervisor.start(never).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let status = supervisor.status("web").unwrap();
        assert_eq!((status.phase, status.restarts), (Phase::Exited, 0));
    }

    #[tokio::test]
    async fn stopping_an_unknown_service_does_nothing() {
        let state = tempfile::tempdir().unwrap();
        let (events, _received) = mpsc::unbounded_channel();
        let supervisor = Supervisor::new(state.path().to_owned(), events).await.unwrap();
        supervisor.stop("nobody").await;
        assert!(supervisor.services().is_empty());
        assert_eq!(supervisor.status("nobody"), None);
        assert!(supervisor.logs("nobody", 10).is_empty());
    }

    /// A process group an earlier daemon left running, in a state folder that
    /// records it (with `start_time` standing in for what was recorded).
    #[cfg(target_os = "linux")]
    mod leftovers {
        use std::io::BufRead;
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        use std::path::Path;
        use std::process::{Child, Command, Stdio};

        use super::*;

        fn group_leader(script: &str) -> Child {
            Command::new("sh")
                .args(["-c", script])
                .process_group(0)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        }

        fn record(state: &Path, pid: u32, start_time: u64) {
            let file = serde_json::json!({"processes": [
                {"service": "web", "pid": pid, "startTime": start_time, "fingerprint": "0123456789ab"}
            ]});
            std::fs::write(state.join("processes.json"), file.to_string()).unwrap();
        }

        fn start_time(pid: u32) -> u64 {
            process::info(pid).unwrap().start_time
        }

        async fn restart_daemon(state: &Path) {
            let (events, _) = mpsc::unbounded_channel();
            Supervisor::new(state.to_owned(), events).await.unwrap();
        }

        #[tokio::test]
        async fn a_new_supervisor_stops_a_recorded_process_that_still_runs() {
            let state = tempfile::tempdir().unwrap();
            let mut leftover = group_leader("exec sleep 30");
            record(state.path(), leftover.id(), start_time(leftover.id()));
            restart_daemon(state.path()).await;
            // Our own child, so it waits for us to reap it; it must have exited.
            let exit = leftover.try_wait().unwrap().expect("the leftover was stopped");
            assert_eq!(exit.signal(), Some(libc::SIGTERM));
            let file = std::fs::read_to_string(state.path().join("processes.json")).unwrap();
            assert!(!file.contains("\"web\""), "the stopped process is forgotten: {file}");
        }

        #[tokio::test]
        async fn a_new_supervisor_leaves_alone_a_process_whose_start_time_differs() {
            let state = tempfile::tempdir().unwrap();
            let mut stranger = group_leader("exec sleep 30");
            // The recorded process ended; its pid now belongs to another one.
            record(state.path(), stranger.id(), start_time(stranger.id()) - 1);
            restart_daemon(state.path()).await;
            assert!(stranger.try_wait().unwrap().is_none(), "a reused pid is not killed");
            stranger.kill().unwrap();
            stranger.wait().unwrap();
        }

        #[tokio::test]
        async fn a_new_supervisor_stops_the_group_of_a_recorded_leader_that_is_gone() {
            let state = tempfile::tempdir().unwrap();
            let mut leader = group_leader("sleep 30 & echo $!; read line");
            let mut line = String::new();
            std::io::BufReader::new(leader.stdout.take().unwrap()).read_line(&mut line).unwrap();
            let grandchild: u32 = line.trim().parse().unwrap();
            record(state.path(), leader.id(), start_time(leader.id()));
            drop(leader.stdin.take());
            leader.wait().unwrap();
            assert!(process::info(grandchild).is_some_and(|info| !info.zombie));

            restart_daemon(state.path()).await;
            assert!(process::info(grandchild).is_none_or(|info| info.zombie));
        }
    }
}
