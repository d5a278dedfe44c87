//! One supervised Service: a task that starts its process, watches it, probes
//! its health, restarts it per policy with backoff, and stops it when asked.
//! The task owns the process; the [`Unit`] handle owns the task, so dropping the
//! handle kills the process group (no orphans, ever).

use std::convert::Infallible;
use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::environment;
use super::logs::{Capture, LogSink, UnitLog};
use super::probe::{self, HealthTracker};
use super::process::{self, ProcessGroup, Spawner};
use super::program;
use super::record::{Record, RecordGuard, Records};
use super::spec::{Probe, ProcessSpec};
use super::status::{LogLine, Phase, UnitChanged, UnitStatus};
use super::sync::lock;
use crate::backoff::{Backoff, Jitter, Policy};
use crate::manifest::kinds::RestartPolicy;

/// The start grace: a process that stayed up this long had started fine, and
/// its next crash starts the backoff over from the initial delay.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// The shortest delay between two starts, whatever the spec says, so a
/// zero backoff cannot turn a crash loop into a busy loop.
const MIN_BACKOFF: Duration = Duration::from_millis(10);

/// What every unit shares: where changes and output lines go, the record of
/// running processes, the thread that spawns them, the client the http
/// probes use, and the jitter of restart delays.
pub(super) struct Context {
    changes: mpsc::Sender<UnitChanged>,
    logs: Arc<dyn LogSink>,
    pub(super) records: Arc<Records>,
    spawner: Spawner,
    http: reqwest::Client,
    jitter: Jitter,
}

impl Context {
    pub(super) fn new(
        changes: mpsc::Sender<UnitChanged>,
        logs: Arc<dyn LogSink>,
        records: Arc<Records>,
        jitter: Jitter,
    ) -> io::Result<Context> {
        let http = probe::client().map_err(io::Error::other)?;
        Ok(Context { changes, logs, records, spawner: Spawner::new()?, http, jitter })
    }
}

/// The handle of one running unit. Dropping it aborts the unit's task, which
/// kills its process group.
pub(super) struct Unit {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    /// Becomes true (or closed) once the task has finished.
    done: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Unit {
    /// Runs `spec` in a new task, once `previous` (the unit it replaces, if any)
    /// is stopped. `ready` fires after the first start attempt.
    pub(super) fn launch(
        spec: ProcessSpec,
        previous: Option<Unit>,
        context: Arc<Context>,
    ) -> (Unit, oneshot::Receiver<()>) {
        let message = match previous {
            Some(_) => "waiting for the previous process to stop",
            None => "starting",
        };
        let shared = Arc::new(Shared {
            name: spec.name.clone(),
            status: Mutex::new(UnitStatus {
                fingerprint: spec.fingerprint(),
                phase: Phase::Starting,
                pid: None,
                restarts: 0,
                last_exit: None,
                healthy: None,
                port_in_use: None,
                message: message.to_owned(),
                since: SystemTime::now(),
            }),
            log: Arc::new(UnitLog::new(spec.name.clone(), context.logs.clone())),
            changes: context.changes.clone(),
        });
        let (stop, stop_requested) = watch::channel(false);
        let (done_sender, done) = watch::channel(false);
        let (ready_sender, ready) = oneshot::channel();
        let runner = Runner { spec, shared: shared.clone(), context, stop: stop_requested, ready: Some(ready_sender) };
        let task = tokio::spawn(async move {
            runner.run(previous).await;
            done_sender.send_replace(true);
        });
        let unit = Unit { shared, stop, done, task };
        (unit, ready)
    }

    pub(super) fn status(&self) -> UnitStatus {
        lock(&self.shared.status).clone()
    }

    pub(super) fn logs(&self, limit: usize) -> Vec<LogLine> {
        self.shared.log.last(limit)
    }

    /// Asks the task to stop its process and finish; see [`Unit::stopped`].
    pub(super) fn request_stop(&self) {
        self.stop.send_replace(true);
    }

    /// Waits until the task has finished (its process group is gone).
    pub(super) async fn stopped(&self) {
        // An error means the task is gone without saying so (aborted): done too.
        let _ = self.done.clone().wait_for(|done| *done).await;
    }

    pub(super) async fn stop(&self) {
        self.request_stop();
        self.stopped().await;
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The unit's state, shared between its task and its handle.
struct Shared {
    name: String,
    status: Mutex<UnitStatus>,
    log: Arc<UnitLog>,
    changes: mpsc::Sender<UnitChanged>,
}

impl Shared {
    /// Applies `change` to the status and reports it when anything but the
    /// message changed: a probe failing again with another error is not news.
    /// Waits while the controller's channel is full: a unit that changes
    /// faster than the controller reads is slowed down, never queued without
    /// bound.
    async fn update(&self, change: impl FnOnce(&mut UnitStatus)) {
        let (changed, status) = {
            let mut status = lock(&self.status);
            let before = status.clone();
            change(&mut status);
            if status.phase != before.phase {
                status.since = SystemTime::now();
            }
            let changed = (status.phase, status.pid, status.restarts, status.healthy)
                != (before.phase, before.pid, before.restarts, before.healthy)
                || status.last_exit != before.last_exit;
            (changed, status.clone())
        };
        if changed {
            tracing::info!(service = %self.name, phase = ?status.phase, pid = ?status.pid, "{}", status.message);
            // The controller stops reading at shutdown; nobody to tell then.
            let _ = self.changes.send(UnitChanged { service: self.name.clone(), message: status.message }).await;
        }
    }
}

/// The unit's task.
struct Runner {
    spec: ProcessSpec,
    shared: Arc<Shared>,
    context: Arc<Context>,
    stop: watch::Receiver<bool>,
    ready: Option<oneshot::Sender<()>>,
}

/// How one run of the process ended, when it was not stopped.
struct Ended {
    /// `exit status 3`, `killed by signal 9`, `cannot start: …`.
    description: String,
    success: bool,
    /// It stayed up long enough, or became healthy: the backoff starts over.
    stable: bool,
    /// False when the process could not even be spawned.
    spawned: bool,
    /// The probe's port, held by a process this unit did not start.
    port_in_use: Option<u16>,
}

impl Runner {
    async fn run(mut self, previous: Option<Unit>) {
        if let Some(previous) = previous {
            previous.stop().await;
        }
        let mut backoff = Backoff::new(restart_policy(&self.spec), self.context.jitter.clone());
        let mut restarts = 0;
        while let Some(ended) = self.run_once(restarts).await {
            if !restarts_after(self.spec.restart, ended.success) {
                self.shared
                    .update(|status| {
                        status.phase = Phase::Exited;
                        status.pid = None;
                        status.healthy = None;
                        status.message = format!(
                            "{}; not restarted (restart: {})",
                            ended.description,
                            policy_name(self.spec.restart)
                        );
                        status.last_exit = Some(ended.description);
                        status.port_in_use = ended.port_in_use;
                    })
                    .await;
                stop_requested(&mut self.stop).await;
                break;
            }
            if ended.stable {
                backoff.succeeded();
            }
            let delay = backoff.failed();
            self.shared
                .update(|status| {
                    // A spawn failure stays `Exited` while it waits: nothing ran.
                    status.phase = if ended.spawned { Phase::BackingOff } else { Phase::Exited };
                    status.pid = None;
                    status.healthy = None;
                    status.message =
                        format!("{}; starting again in {}", ended.description, humantime::format_duration(delay));
                    status.last_exit = Some(ended.description);
                    status.port_in_use = ended.port_in_use;
                })
                .await;
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop_requested(&mut self.stop) => break,
            }
            restarts += 1;
        }
        self.shared
            .update(|status| {
                status.phase = Phase::Stopping;
                status.pid = None;
                status.healthy = None;
                status.message = "stopped".to_owned();
            })
            .await;
    }

    /// Starts the process (the `restarts`th time again) and supervises it until
    /// it exits (`Some`) or the unit is stopped (`None`).
    async fn run_once(&mut self, restarts: u32) -> Option<Ended> {
        if *self.stop.borrow() {
            return None;
        }
        let started = Instant::now();
        let spawned = match command(&self.spec) {
            Ok(command) => self.context.spawner.spawn(command).await,
            Err(error) => Err(error),
        };
        let spawned = match spawned {
            Ok(spawned) => spawned,
            Err(error) => {
                let description = cannot_start(&self.spec, &error);
                self.shared
                    .update(|status| {
                        status.phase = Phase::Exited;
                        status.pid = None;
                        status.restarts = restarts;
                        status.message = description.clone();
                        status.last_exit = Some(description.clone());
                    })
                    .await;
                self.ready();
                return Some(Ended { description, success: false, stable: false, spawned: false, port_in_use: None });
            }
        };
        let pid = spawned.group.pid();
        let mut running = Running {
            _record: record(&self.spec, pid).map(|record| self.context.records.add(record)),
            group: spawned.group,
        };
        let capture = Capture::start(spawned.stdout, spawned.stderr, self.shared.log.clone());
        let has_probe = self.spec.probe.is_some();
        self.shared
            .update(|status| {
                status.phase = if has_probe { Phase::Starting } else { Phase::Running };
                status.pid = Some(pid);
                status.restarts = restarts;
                status.healthy = None;
                status.port_in_use = None;
                status.message = format!("started (pid {pid})");
            })
            .await;
        self.ready();

        let interval = self.spec.probe.as_ref().map_or(Duration::ZERO, probe::interval);
        let mut health = HealthTracker::new(interval);
        let exit = {
            let watch = watch_health(self.spec.probe.as_ref(), &self.context.http, &self.shared, &mut health);
            tokio::select! {
                exit = running.group.wait() => Some(exit),
                never = watch => match never {},
                () = stop_requested(&mut self.stop) => None,
            }
        };
        let Some(exit) = exit else {
            let grace = self.spec.stop_grace;
            self.shared
                .update(|status| {
                    status.phase = Phase::Stopping;
                    status.message = format!(
                        "stopping (pid {pid}): SIGTERM, then SIGKILL after {}",
                        humantime::format_duration(grace)
                    );
                })
                .await;
            let exit = running.group.terminate(grace).await;
            tracing::info!(service = %self.shared.name, pid, "stopped: {}", describe(&exit));
            capture.finish().await;
            return None;
        };
        capture.finish().await;
        let uptime = started.elapsed();
        // The group is gone: whoever answers on the probe's port now is a
        // stranger, and so was whoever made the probe pass.
        let port_held = match &self.spec.probe {
            Some(probe) if uptime < STABLE_AFTER => probe::held_port(probe).await,
            _ => None,
        };
        let judged = judge_run(uptime, health.became_healthy(), port_held);
        let mut description = describe(&exit);
        if let Some(port) = judged.port_in_use {
            description.push_str(&format!(
                " within its start grace while port {port} is held by a process this controller did not start"
            ));
        }
        Some(Ended {
            description,
            success: exit.as_ref().is_ok_and(ExitStatus::success),
            stable: judged.stable,
            spawned: true,
            port_in_use: judged.port_in_use,
        })
    }

    fn ready(&mut self) {
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(());
        }
    }
}

/// Probes at once, then each second until the first answer and on the
/// probe's interval after it, and moves the phase between Starting, Running
/// and Unhealthy. Never returns: it ends by being
/// dropped when the process exits. Without a probe it does nothing.
async fn watch_health(
    probe: Option<&Probe>,
    http: &reqwest::Client,
    shared: &Shared,
    health: &mut HealthTracker,
) -> Infallible {
    let Some(probe) = probe else {
        return std::future::pending().await;
    };
    loop {
        let verdict = probe::check(probe, http).await;
        let phase = health.observe(verdict.is_ok(), Instant::now());
        shared
            .update(|status| {
                status.phase = phase;
                status.healthy = Some(verdict.is_ok());
                status.message = match (&verdict, phase) {
                    (Ok(()), _) => "healthy".to_owned(),
                    (Err(error), Phase::Starting) => format!("waiting for the health check: {error}"),
                    (Err(error), _) => format!("health check failing: {error}"),
                };
            })
            .await;
        tokio::time::sleep(health.next_probe_in()).await;
    }
}

/// Resolves once the unit is asked to stop (or its handle is gone).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The command line of `spec`: its program and arguments, its environment
/// (built from scratch: `environment::build`), and its working folder (`~/`
/// meaning $HOME).
/// Output, process group and parent-death signal are `process::spawn`'s.
fn command(spec: &ProcessSpec) -> io::Result<tokio::process::Command> {
    let (program, args) = spec
        .command
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the command is empty"))?;
    let mut command = tokio::process::Command::new(program);
    command.args(args).env_clear().envs(environment::build(std::env::vars_os(), &spec.env));
    if let Some(dir) = &spec.working_dir {
        command.current_dir(dir);
    }
    Ok(command)
}

/// `cannot start: …`, naming a missing program or folder rather than the
/// OS's "No such file or directory". A few `stat`s, on a failure only.
fn cannot_start(spec: &ProcessSpec, error: &io::Error) -> String {
    let program = spec.command.first().map_or("", String::as_str);
    let env = environment::build(std::env::vars_os(), &spec.env);
    let path = env.get(OsStr::new("PATH")).cloned().unwrap_or_default();
    let dir = spec.working_dir.as_deref();
    let found = program::find(program, &path, dir, program::is_executable).is_some();
    let dir_exists = dir.is_none_or(Path::is_dir);
    match program::explain_not_found(error, program, &path, dir, found, dir_exists) {
        Some(missing) => format!("cannot start: {missing}"),
        None => format!("cannot start: {error}"),
    }
}

/// `exit status 3`, `killed by signal 9`.
fn describe(exit: &io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match exit {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => status.to_string(),
        },
        Err(error) => format!("cannot wait for the process: {error}"),
    }
}

fn restarts_after(policy: RestartPolicy, success: bool) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => !success,
        RestartPolicy::Never => false,
    }
}

fn policy_name(policy: RestartPolicy) -> &'static str {
    match policy {
        RestartPolicy::Always => "always",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Never => "never",
    }
}

/// The delays between restarts: the initial one, doubling up to the max, and
/// back to the initial one after a run that went well.
/// How a run that ended by itself counts for the backoff.
#[derive(Debug, PartialEq)]
struct Judged {
    /// It started fine: the next delay is the initial one again.
    stable: bool,
    /// It died young while a stranger held its probe's port.
    port_in_use: Option<u16>,
}

/// Judges a run that lasted `uptime`, whose probe passed at least once or not,
/// and after whose end a stranger was found holding the probe's port or not.
/// A passing probe proves nothing when a stranger answered it.
fn judge_run(uptime: Duration, became_healthy: bool, port_held: Option<u16>) -> Judged {
    let young = uptime < STABLE_AFTER;
    let port_in_use = port_held.filter(|_| young);
    Judged { stable: !young || (became_healthy && port_in_use.is_none()), port_in_use }
}

/// The spec's restart delays, never shorter than [`MIN_BACKOFF`].
fn restart_policy(spec: &ProcessSpec) -> Policy {
    Policy::new(spec.backoff_initial.max(MIN_BACKOFF), spec.backoff_max)
}

/// A running process and its line in `processes.json`. The fields drop in this
/// order: the group is killed before the record of it is removed.
struct Running {
    group: ProcessGroup,
    _record: Option<RecordGuard>,
}

/// What `processes.json` says about `pid`. Without a start time a later daemon
/// could not tell the process from another one with the same pid, so a process
/// whose start time cannot be read (it is already gone) is not recorded.
fn record(spec: &ProcessSpec, pid: u32) -> Option<Record> {
    Some(Record {
        service: spec.name.clone(),
        pid,
        start_time: process::info(pid)?.start_time,
        fingerprint: spec.fingerprint(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn restart_delays(initial: Duration, max: Duration, failures: u32) -> Vec<Duration> {
        let spec = ProcessSpec { backoff_initial: initial, backoff_max: max, ..test_spec() };
        (1..=failures).map(|n| restart_policy(&spec).delay(n)).collect()
    }

    #[test]
    fn backoff_doubles_up_to_the_max() {
        assert_eq!(restart_delays(ms(50), ms(400), 6), [ms(50), ms(100), ms(200), ms(400), ms(400), ms(400)]);
    }

    #[test]
    fn backoff_starts_over_after_a_stable_run() {
        let spec = ProcessSpec { backoff_initial: ms(50), backoff_max: ms(400), ..test_spec() };
        let mut backoff = Backoff::new(restart_policy(&spec), Jitter::none());
        backoff.failed();
        backoff.failed();
        backoff.succeeded();
        assert_eq!(backoff.failed(), ms(50));
        assert_eq!(backoff.failed(), ms(100));
    }

    #[test]
    fn backoff_never_spins_even_when_configured_to_zero() {
        assert_eq!(restart_delays(Duration::ZERO, Duration::ZERO, 2), [MIN_BACKOFF, MIN_BACKOFF]);
    }

    #[test]
    fn jittered_restart_delays_stay_within_the_specs_initial_and_max() {
        let spec = ProcessSpec { backoff_initial: ms(100), backoff_max: ms(800), ..test_spec() };
        for seed in 0..50 {
            let mut backoff = Backoff::new(restart_policy(&spec), Jitter::seeded(seed));
            for _ in 0..8 {
                assert!((ms(100)..=ms(800)).contains(&backoff.failed()), "seed {seed}");
            }
        }
    }

    #[test]
    fn a_run_is_stable_when_it_outlived_the_grace_or_passed_its_own_probe() {
        let young = ms(300);
        let old = STABLE_AFTER + ms(1);
        let table = [
            ("died young, never healthy", young, false, None, false, None),
            ("died young after passing its probe", young, true, None, true, None),
            ("died young, a stranger answered its probe", young, true, Some(11434), false, Some(11434)),
            ("died young, a stranger holds the port", young, false, Some(11434), false, Some(11434)),
            ("ran past the grace, never healthy", old, false, None, true, None),
            ("ran past the grace; the port was taken after", old, true, Some(11434), true, None),
        ];
        for (case, uptime, became_healthy, port_held, stable, port_in_use) in table {
            assert_eq!(judge_run(uptime, became_healthy, port_held), Judged { stable, port_in_use }, "{case}");
        }
    }

    #[test]
    fn restart_policy_decides_which_exits_are_restarted() {
        let table = [
            (RestartPolicy::Always, true, true),
            (RestartPolicy::Always, false, true),
            (RestartPolicy::OnFailure, true, false),
            (RestartPolicy::OnFailure, false, true),
            (RestartPolicy::Never, true, false),
            (RestartPolicy::Never, false, false),
        ];
        for (policy, success, expected) in table {
            assert_eq!(restarts_after(policy, success), expected, "{policy:?} success={success}");
        }
    }

    #[test]
    fn exits_are_described_by_code_or_signal() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(describe(&Ok(ExitStatus::from_raw(3 << 8))), "exit status 3");
        assert_eq!(describe(&Ok(ExitStatus::from_raw(9))), "killed by signal 9");
    }

    /// A spec with an empty command.
    fn test_spec() -> ProcessSpec {
        ProcessSpec {
            name: "empty".into(),
            command: Vec::new(),
            env: BTreeMap::new(),
            working_dir: None,
            probe: None,
            restart: RestartPolicy::Never,
            backoff_initial: ms(10),
            backoff_max: ms(10),
            stop_grace: ms(10),
        }
    }

    #[test]
    fn an_empty_command_cannot_start() {
        assert_eq!(command(&test_spec()).unwrap_err().to_string(), "the command is empty");
    }
}
