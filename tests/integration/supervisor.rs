//! The process supervisor with real child processes (`sh`, `sleep`,
//! `python3`) and real servers on free loopback ports. Every wait is a bounded
//! poll on a condition, never a bare sleep, except to show that something does
//! *not* happen.

use std::collections::BTreeMap;
use std::future::ready;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentmesh::backoff::Jitter;
use agentmesh::manifest::kinds::RestartPolicy;
use agentmesh::supervisor::{LogLine, LogSink, Phase, Probe, ProcessSpec, Supervisor, UnitChanged, UnitStatus};
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::support::wait::eventually_async as eventually;

/// A supervisor over a fresh state folder, and what it reports.
struct Harness {
    supervisor: Supervisor,
    events: mpsc::Receiver<UnitChanged>,
    sink: Arc<Lines>,
    state: TempDir,
}

/// The output lines the supervisor hands on, in order.
#[derive(Default)]
struct Lines(Mutex<Vec<LogLine>>);

impl LogSink for Lines {
    fn send(&self, line: LogLine) {
        self.0.lock().unwrap().push(line);
    }
}

async fn harness() -> Harness {
    let state = tempfile::tempdir().unwrap();
    let sink = Arc::new(Lines::default());
    // Exact restart delays: a test reads them from the status messages.
    let (supervisor, events) =
        Supervisor::with_jitter(state.path().to_owned(), sink.clone(), Jitter::none()).await.unwrap();
    Harness { supervisor, events, sink, state }
}

impl Harness {
    fn status(&self, service: &str) -> UnitStatus {
        self.supervisor.status(service).expect("the unit exists")
    }

    /// The lines of `service` so far.
    fn lines(&self, service: &str) -> Vec<String> {
        self.supervisor.logs(service, 1000).into_iter().map(|line| line.line).collect()
    }

    /// Waits until `service` has written `count` lines, and returns them.
    async fn wait_for_lines(&self, service: &str, count: usize) -> Vec<String> {
        eventually(&format!("{service} wrote {count} lines"), || {
            let lines = self.lines(service);
            ready((lines.len() >= count).then_some(lines))
        })
        .await
    }

    async fn wait_for_phase(&self, service: &str, phase: Phase) -> UnitStatus {
        eventually(&format!("{service} is {phase:?}"), || {
            ready(self.supervisor.status(service).filter(|status| status.phase == phase))
        })
        .await
    }

    /// The lines the sink received so far.
    fn logged(&self) -> Vec<(&'static str, String)> {
        self.sink.0.lock().unwrap().iter().map(|line| (line.stream, line.line.clone())).collect()
    }
}

fn spec(name: &str, command: &[&str]) -> ProcessSpec {
    ProcessSpec {
        name: name.to_owned(),
        command: command.iter().map(ToString::to_string).collect(),
        env: BTreeMap::new(),
        working_dir: None,
        probe: None,
        restart: RestartPolicy::Never,
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        stop_grace: Duration::from_secs(2),
    }
}

fn sh(name: &str, script: &str) -> ProcessSpec {
    spec(name, &["sh", "-c", script])
}

/// Whether `pid` is a running process (not gone, not a zombie).
fn running(pid: u32) -> bool {
    let output =
        std::process::Command::new("ps").args(["-o", "stat=", "-p", &pid.to_string()]).output().expect("ps runs");
    let state = String::from_utf8_lossy(&output.stdout);
    let state = state.trim();
    !state.is_empty() && !state.starts_with('Z')
}

async fn wait_until_gone(pid: u32) {
    eventually(&format!("process {pid} is gone"), || ready((!running(pid)).then_some(()))).await;
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn http_server(name: &str, port: u16) -> ProcessSpec {
    let port = port.to_string();
    spec(name, &["python3", "-m", "http.server", "--bind", "127.0.0.1", &port])
}

#[tokio::test]
async fn a_started_process_runs_with_its_env_and_folder_and_its_output_is_captured() {
    let h = harness().await;
    let folder = tempfile::tempdir().unwrap();
    let mut echo = sh("echo", r#"echo "hello $GREETING"; pwd; echo oops >&2; exec sleep 30"#);
    echo.env.insert("GREETING".into(), "mesh".into());
    echo.working_dir = Some(folder.path().to_owned());
    h.supervisor.start(echo.clone()).await;

    let status = h.status("echo");
    assert_eq!(status.phase, Phase::Running, "without a probe it runs once spawned");
    assert_eq!(status.fingerprint, echo.fingerprint());
    let pid = status.pid.unwrap();
    assert!(running(pid));

    let mut lines = h.wait_for_lines("echo", 3).await;
    lines.sort();
    let folder = folder.path().canonicalize().unwrap();
    let mut expected = vec!["hello mesh".to_owned(), folder.display().to_string(), "oops".to_owned()];
    expected.sort();
    assert_eq!(lines, expected);
    assert_eq!(h.supervisor.logs("echo", 1).len(), 1);
    let logged = h.logged();
    assert!(logged.contains(&("stdout", "hello mesh".to_owned())), "{logged:?}");
    assert!(logged.contains(&("stderr", "oops".to_owned())), "{logged:?}");

    assert_eq!(h.supervisor.services(), ["echo"]);
    h.supervisor.stop("echo").await;
    assert!(!running(pid));
    assert!(h.supervisor.services().is_empty());
}

/// The delays themselves are timed exactly on a paused clock in the unit
/// tests; here the real loop announces them, and takes at least their sum.
#[tokio::test]
async fn a_crashing_process_with_restart_always_is_restarted_with_growing_backoff() {
    let mut h = harness().await;
    let mut crash = sh("crash", "echo crashing; exit 3");
    crash.restart = RestartPolicy::Always;
    let started = Instant::now();
    h.supervisor.start(crash).await;

    let mut delays = Vec::new();
    eventually("five restarts were announced", || {
        while let Ok(event) = h.events.try_recv() {
            delays.extend(event.message.split_once("; starting again in ").map(|(_, delay)| delay.to_owned()));
        }
        ready((delays.len() >= 5).then_some(()))
    })
    .await;
    assert_eq!(delays[..5], ["50ms", "100ms", "200ms", "400ms", "400ms"]);
    assert!(started.elapsed() >= Duration::from_millis(750), "it waited 50 + 100 + 200 + 400 ms");
    let status = h.status("crash");
    assert!(status.restarts >= 4, "{status:?}");
    assert_eq!(status.last_exit.as_deref(), Some("exit status 3"));
    assert!(h.lines("crash").len() >= 5, "the output of every run is kept");
    h.supervisor.shutdown().await;
}

#[tokio::test]
async fn with_restart_on_failure_a_failure_is_restarted_and_a_clean_exit_is_not() {
    let h = harness().await;
    let mut clean = sh("clean", "exit 0");
    clean.restart = RestartPolicy::OnFailure;
    let mut failing = sh("failing", "exit 1");
    failing.restart = RestartPolicy::OnFailure;
    h.supervisor.start(clean).await;
    h.supervisor.start(failing).await;

    eventually("failing was restarted", || ready((h.status("failing").restarts >= 2).then_some(()))).await;
    let status = h.wait_for_phase("clean", Phase::Exited).await;
    assert_eq!(status.last_exit.as_deref(), Some("exit status 0"));
    // Longer than the largest backoff: a restart would have happened by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = h.status("clean");
    assert_eq!((status.phase, status.restarts, status.pid), (Phase::Exited, 0, None));
    h.supervisor.shutdown().await;
}

#[tokio::test]
async fn with_restart_never_a_failed_process_is_not_restarted() {
    let h = harness().await;
    h.supervisor.start(sh("once", "exit 1")).await;
    let status = h.wait_for_phase("once", Phase::Exited).await;
    assert_eq!(status.last_exit.as_deref(), Some("exit status 1"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.status("once").restarts, 0);
    h.supervisor.shutdown().await;
}

#[tokio::test]
async fn stop_sends_sigterm_and_returns_once_the_process_has_exited() {
    let h = harness().await;
    let mut polite = sh("polite", "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done");
    polite.stop_grace = Duration::from_secs(10);
    h.supervisor.start(polite).await;
    let pid = h.status("polite").pid.unwrap();
    h.wait_for_lines("polite", 1).await;

    let stopping = Instant::now();
    h.supervisor.stop("polite").await;
    assert!(stopping.elapsed() < Duration::from_secs(5), "it exited on SIGTERM, long before the grace");
    assert!(!running(pid));
    assert!(h.logged().contains(&("stdout", "got TERM".to_owned())));
    assert_eq!(h.supervisor.status("polite"), None);
}

#[tokio::test]
async fn a_group_that_ignores_sigterm_is_killed_after_the_grace() {
    let h = harness().await;
    // The shell and its `sleep` child both ignore SIGTERM.
    let mut stubborn = sh("stubborn", "trap '' TERM; sleep 100 & echo $!; wait");
    stubborn.stop_grace = Duration::from_millis(300);
    h.supervisor.start(stubborn).await;
    let leader = h.status("stubborn").pid.unwrap();
    let grandchild: u32 = h.wait_for_lines("stubborn", 1).await[0].parse().unwrap();
    assert!(running(grandchild));

    let stopping = Instant::now();
    h.supervisor.stop("stubborn").await;
    assert!(stopping.elapsed() >= Duration::from_millis(300), "SIGKILL only after the grace");
    assert!(!running(leader));
    wait_until_gone(grandchild).await;
}

#[tokio::test]
async fn stop_also_stops_the_grandchildren_in_the_group() {
    let h = harness().await;
    h.supervisor.start(sh("parent", "sleep 100 & echo $!; wait")).await;
    let grandchild: u32 = h.wait_for_lines("parent", 1).await[0].parse().unwrap();
    assert!(running(grandchild));
    h.supervisor.stop("parent").await;
    wait_until_gone(grandchild).await;
}

#[tokio::test]
async fn the_group_does_not_outlive_its_leader() {
    let h = harness().await;
    h.supervisor.start(sh("leaver", "sleep 100 & echo $!; exit 0")).await;
    let grandchild: u32 = h.wait_for_lines("leaver", 1).await[0].parse().unwrap();
    h.wait_for_phase("leaver", Phase::Exited).await;
    wait_until_gone(grandchild).await;
    h.supervisor.shutdown().await;
}

#[tokio::test]
async fn an_http_probe_marks_an_answering_server_running_and_a_silent_one_unhealthy() {
    let h = harness().await;
    let port = free_port();
    let mut server = http_server("web", port);
    server.probe = Some(Probe::Http {
        host: "127.0.0.1".into(),
        port,
        path: "/".into(),
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(300),
    });
    server.stop_grace = Duration::from_millis(500);
    h.supervisor.start(server).await;
    assert_eq!(h.status("web").phase, Phase::Starting, "not healthy before its first probe passes");

    let status = h.wait_for_phase("web", Phase::Running).await;
    assert_eq!(status.healthy, Some(true));
    let pid = status.pid.unwrap();

    // A stopped process still accepts connections (the kernel's backlog) but
    // never answers.
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
    let status = h.wait_for_phase("web", Phase::Unhealthy).await;
    assert_eq!(status.healthy, Some(false));
    assert!(status.message.contains("no answer within 300ms"), "{}", status.message);

    // SAFETY: as above.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
    h.wait_for_phase("web", Phase::Running).await;
    h.supervisor.shutdown().await;
    assert!(!running(pid));
}

#[tokio::test]
async fn a_tcp_probe_marks_a_listening_process_running() {
    let h = harness().await;
    let port = free_port();
    let mut server = http_server("listener", port);
    server.probe = Some(Probe::Tcp {
        host: "127.0.0.1".into(),
        port,
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(300),
    });
    h.supervisor.start(server).await;
    let status = h.wait_for_phase("listener", Phase::Running).await;
    assert_eq!(status.healthy, Some(true));
    h.supervisor.shutdown().await;
}

#[tokio::test]
async fn a_process_whose_probe_never_passes_turns_unhealthy_after_its_start_grace() {
    let h = harness().await;
    let mut deaf = spec("deaf", &["sleep", "30"]);
    deaf.probe = Some(Probe::Tcp {
        host: "127.0.0.1".into(),
        port: free_port(),
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(300),
    });
    h.supervisor.start(deaf).await;
    let status = h.wait_for_phase("deaf", Phase::Unhealthy).await;
    assert_eq!(status.healthy, Some(false));
    assert!(status.message.starts_with("health check failing: tcp 127.0.0.1:"), "{}", status.message);
    assert!(status.pid.is_some_and(running), "an unhealthy process is not killed");
    h.supervisor.shutdown().await;
}

#[tokio::test]
async fn starting_a_changed_spec_replaces_the_running_process() {
    let h = harness().await;
    h.supervisor.start(spec("app", &["sleep", "30"])).await;
    let old = h.status("app").pid.unwrap();

    let changed = spec("app", &["sleep", "31"]);
    h.supervisor.start(changed.clone()).await;
    let status = h.status("app");
    assert_eq!(status.fingerprint, changed.fingerprint());
    let new = status.pid.unwrap();
    assert_ne!(new, old);
    assert!(!running(old), "the old process is gone before the new one starts");
    assert!(running(new));
    h.supervisor.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_every_unit_at_once() {
    let h = harness().await;
    for name in ["one", "two"] {
        let mut stubborn = sh(name, "trap '' TERM; sleep 100");
        stubborn.stop_grace = Duration::from_millis(500);
        h.supervisor.start(stubborn).await;
    }
    let pids = [h.status("one").pid.unwrap(), h.status("two").pid.unwrap()];
    let stopping = Instant::now();
    h.supervisor.shutdown().await;
    assert!(stopping.elapsed() < Duration::from_millis(1000), "the graces ran concurrently");
    assert!(pids.iter().all(|pid| !running(*pid)));
    assert!(h.supervisor.services().is_empty());
}

#[tokio::test]
async fn dropping_the_supervisor_kills_its_processes() {
    let h = harness().await;
    h.supervisor.start(spec("orphan", &["sleep", "30"])).await;
    let pid = h.status("orphan").pid.unwrap();
    drop(h.supervisor);
    wait_until_gone(pid).await;
}

/// The parent-death signal follows the thread that forked the child: the
/// supervisor spawns from a thread of its own, so a caller on a thread that
/// exits does not take the process with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_started_from_a_thread_that_exits_keeps_running() {
    let h = harness().await;
    let supervisor = h.supervisor.clone();
    let runtime = tokio::runtime::Handle::current();
    std::thread::spawn(move || runtime.block_on(supervisor.start(spec("sleeper", &["sleep", "30"])))).join().unwrap();
    let pid = h.status("sleeper").pid.unwrap();
    // A parent-death signal would have been delivered as the thread exited.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(running(pid));
    assert_eq!(h.status("sleeper").phase, Phase::Running);
    h.supervisor.shutdown().await;
}

#[tokio::test]
async fn processes_json_lists_the_running_processes() {
    let h = harness().await;
    let sleeper = spec("sleeper", &["sleep", "30"]);
    h.supervisor.start(sleeper.clone()).await;
    let pid = h.status("sleeper").pid.unwrap();
    let listed = read_processes(h.state.path().join("processes.json"));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["service"], "sleeper");
    assert_eq!(listed[0]["pid"], pid);
    assert_eq!(listed[0]["fingerprint"], sleeper.fingerprint());
    assert!(listed[0]["startTime"].is_u64());

    h.supervisor.stop("sleeper").await;
    assert!(read_processes(h.state.path().join("processes.json")).is_empty());
}

fn read_processes(path: PathBuf) -> Vec<serde_json::Value> {
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    file["processes"].as_array().unwrap().clone()
}
