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
//! - `program.rs`: where a Service's program is found on a PATH, and how a
//!   missing one is named.
//! - `probe.rs`: the http and tcp health checks and the start grace.
//! - `logs.rs`: reading output line by line into a bounded ring buffer and the
//!   [`LogSink`]; output never goes through the channel of changes.
//! - `record.rs`: `processes.json` and the leftovers of an earlier daemon.
//! - `spec.rs` and `status.rs`: what a unit runs and what it reports, and
//!   `sync.rs`, locking: leaves that the files above share, so none of them
//!   imports this one.

mod environment;
mod logs;
mod probe;
mod process;
pub mod program;
mod record;
mod spec;
mod status;
mod sync;
mod unit;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::backoff::Jitter;
pub use logs::LogSink;
use record::Records;
pub use spec::{Probe, ProcessSpec};
pub use status::{LogLine, Phase, UnitChanged, UnitStatus};
use sync::lock;
use unit::Unit;

/// How many unit changes wait for the controller before a unit that changes
/// again waits too: changes are few (starts, exits, health), so this is only
/// reached when the controller is stuck, and then memory stays bounded.
pub const CHANGES_CAPACITY: usize = 64;

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
    /// and hands its processes' output to `logs`; it reports the changes of its
    /// units on the returned channel (bounded: [`CHANGES_CAPACITY`]), which the
    /// controller reads. Processes recorded by an earlier daemon that are still
    /// alive (same pid and start time) are stopped first, with what they
    /// started in their process groups.
    pub async fn new(
        state_dir: PathBuf,
        logs: Arc<dyn LogSink>,
    ) -> std::io::Result<(Supervisor, mpsc::Receiver<UnitChanged>)> {
        Supervisor::with_jitter(state_dir, logs, Jitter::random()).await
    }

    /// [`Supervisor::new`] whose restart delays are spread by `jitter`
    /// ([`Jitter::none`]: exactly as the spec says, for tests that time them).
    pub async fn with_jitter(
        state_dir: PathBuf,
        logs: Arc<dyn LogSink>,
        jitter: Jitter,
    ) -> std::io::Result<(Supervisor, mpsc::Receiver<UnitChanged>)> {
        std::fs::create_dir_all(&state_dir)?;
        let (records, earlier) = Records::open(&state_dir);
        let leftovers: Vec<_> = earlier.iter().map(record::Record::leftover).collect();
        process::stop_leftovers(&leftovers, LEFTOVER_GRACE).await;
        // The leftovers are gone (or cannot be signalled by us): forget them.
        records.save();
        let (changes, changed) = mpsc::channel(CHANGES_CAPACITY);
        let context = unit::Context::new(changes, logs, Arc::new(records), jitter)?;
        let inner = Inner { units: Mutex::new(BTreeMap::new()), context: Arc::new(context) };
        Ok((Supervisor { inner: Arc::new(inner) }, changed))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::manifest::kinds::RestartPolicy;

    /// Output goes nowhere: these tests look at changes.
    struct Discard;

    impl LogSink for Discard {
        fn send(&self, _line: LogLine) {}
    }

    /// A supervisor whose restart delays are exactly as the spec says.
    async fn supervisor(state: &std::path::Path) -> (Supervisor, mpsc::Receiver<UnitChanged>) {
        Supervisor::with_jitter(state.to_owned(), Arc::new(Discard), Jitter::none()).await.unwrap()
    }

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
        let (supervisor, mut received) = supervisor(state.path()).await;
        let started = Instant::now();
        supervisor.start(spec(&["/nonexistent/agentmesh-test-program"])).await;

        let status = supervisor.status("web").unwrap();
        assert_eq!(status.phase, Phase::Exited);
        assert_eq!(status.pid, None);
        let last_exit = status.last_exit.unwrap();
        assert_eq!(
            last_exit,
            "cannot start: `/nonexistent/agentmesh-test-program` does not exist or is not executable"
        );

        let mut attempts = Vec::new();
        while attempts.len() < 6 {
            let UnitChanged { message, .. } = received.recv().await.unwrap();
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
        let (supervisor, _changed) = supervisor(state.path()).await;
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
        let (supervisor, _changed) = supervisor(state.path()).await;
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
            supervisor(state).await;
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
