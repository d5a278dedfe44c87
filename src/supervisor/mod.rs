//! The process supervisor: runs the Services placed on this node as child
//! processes, restarts them per policy with backoff, probes their health, keeps a
//! bounded tail of their output, and stops them (SIGTERM, then SIGKILL after a
//! grace). Children never outlive the daemon: each runs in its own process group
//! with a parent-death signal on Linux, and the processes it started are recorded
//! in the state folder so a restarted daemon finds and stops leftovers instead of
//! starting duplicates.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::manifest::kinds::RestartPolicy;

/// A Service rendered for this node: everything needed to run it, with
/// placeholders substituted and secrets resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessSpec {
    pub name: String,
    pub command: Vec<String>,
    /// Added to the daemon's own environment.
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
    pub fn fingerprint(&self) -> String {
        unimplemented!()
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
#[derive(Clone)]
pub struct Supervisor {}

impl Supervisor {
    /// A supervisor that records its processes in `state_dir/processes.json`
    /// and reports to `events`. Processes recorded by an earlier daemon that are
    /// still alive (same pid and start time) are stopped first.
    pub async fn new(
        state_dir: PathBuf,
        events: mpsc::UnboundedSender<SupervisorEvent>,
    ) -> std::io::Result<Supervisor> {
        let _ = (state_dir, events);
        unimplemented!()
    }

    /// Starts `spec` under its name. A unit of that name that is already there is
    /// stopped first (its spec changed).
    pub async fn start(&self, spec: ProcessSpec) {
        let _ = spec;
        unimplemented!()
    }

    /// Stops the unit: SIGTERM to its process group, SIGKILL after its grace;
    /// returns once it is gone. Unknown names are a no-op.
    pub async fn stop(&self, service: &str) {
        let _ = service;
        unimplemented!()
    }

    /// The status of one unit.
    pub fn status(&self, service: &str) -> Option<UnitStatus> {
        let _ = service;
        unimplemented!()
    }

    /// The names of every unit, running or not.
    pub fn services(&self) -> Vec<String> {
        unimplemented!()
    }

    /// The last lines (at most `limit`) each unit wrote.
    pub fn logs(&self, service: &str, limit: usize) -> Vec<LogLine> {
        let _ = (service, limit);
        unimplemented!()
    }

    /// Stops every unit (daemon shutdown).
    pub async fn shutdown(&self) {
        unimplemented!()
    }
}
