//! What a unit reports: its phase and status, its output lines, and the
//! change notices the controller reads.

use std::time::SystemTime;

use serde::Serialize;

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
/// stopped), so the controller can requeue that Service. Output lines go to
/// the [`LogSink`] instead.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitChanged {
    pub service: String,
    /// What the status now says, e.g. `started (pid 12)`.
    pub message: String,
}
