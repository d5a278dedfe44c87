//! What the controller costs, measured on the release `meshctl daemon` with
//! real files and processes:
//!
//! 1. Edit latency: from saving a manifest that adds a Service, or changes one
//!    (a new port: the old process is stopped, the new one started), to the
//!    Service answering on its port, over 20 edits. Next to it, the program's own
//!    start time: the same server started directly, until its first answer.
//!    What the daemon adds is the difference; the target is under 500 ms.
//! 2. Idle cost: the daemon on the example manifests as `agent-work-laptop`,
//!    RSS (VmRSS) and CPU (utime + stime) over 60 s. The examples' programs
//!    (`ollama`) are not installed here, so the daemon retries them with
//!    backoff meanwhile, as it would on a fresh machine; the output says what
//!    it was doing. Targets: under 20 MB and under 0.5 % of one core.
//!
//! Run: `cargo bench --bench reconcile`. Cargo builds `meshctl` with the bench
//! (release) profile for it and names it in `CARGO_BIN_EXE_meshctl`.
//! `BENCH_IDLE_SECONDS=10` shortens the idle measurement. Needs `python3`.

#![allow(
    unsafe_code,
    reason = "the benches signal and inspect processes with libc; the crate keeps its unsafe in src/sys.rs"
)]

mod common;

use common::{clock_ticks_per_second, copy_tree, cpu_ticks, millis, quantile};

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tempfile::TempDir;

const EDITS: usize = 20;
const LATENCY_TARGET: Duration = Duration::from_millis(500);
const RSS_TARGET_KIB: u64 = 20 * 1024;
const CPU_TARGET_PERCENT: f64 = 0.5;

/// How often a server is asked whether it answers yet: a refused connection
/// costs microseconds, so this bounds the error of every latency figure.
const ANSWER_POLL: Duration = Duration::from_millis(2);
const PATIENCE: Duration = Duration::from_secs(30);
const KEY: &str = "bench-key";

fn main() {
    // `cargo bench` passes `--bench`; ignore any arguments.
    let idle_seconds = std::env::var("BENCH_IDLE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let python = python();
    edit_latency(&python);
    idle_cost(Duration::from_secs(idle_seconds));
}

// --- 1. edit latency ----------------------------------------------------------------

fn edit_latency(python: &str) {
    let daemon = Daemon::start("bench-node", |manifests| {
        write(&manifests.join("node.yaml"), &node("bench-node"));
    });
    eventually("the first revision is applied", || daemon.status()["revision"].as_str().map(drop));

    let mut adds = Vec::new();
    let mut changes = Vec::new();
    for edit in 0..EDITS {
        // Even edits add a Service, odd ones move the Service just added to
        // another port.
        let name = format!("web-{}", edit - edit % 2);
        let port = free_port();
        let path = daemon.manifests().join(format!("{name}.yaml"));
        let saved = Instant::now();
        write(&path, &web(&name, "bench-node", python, port));
        wait_for_answer(port, saved);
        let latency = saved.elapsed();
        if edit % 2 == 0 {
            adds.push(latency);
        } else {
            changes.push(latency);
        }
        // Start the next edit from a settled daemon: the Service seen Ready.
        eventually(&format!("{name} is Ready on port {port}"), || {
            let status = daemon.status();
            let objects = status["objects"].as_array()?;
            objects
                .iter()
                .any(|o| o["name"] == name.as_str() && o["ready"] == true && o["details"]["healthy"] == "true")
                .then_some(())
        });
    }

    let starts: Vec<Duration> = (0..EDITS).map(|_| direct_start(python)).collect();
    let edits: Vec<Duration> = adds.iter().chain(&changes).copied().collect();
    let (edit_median, edit_p95) = (quantile(&edits, 0.5), quantile(&edits, 0.95));
    let (start_median, start_p95) = (quantile(&starts, 0.5), quantile(&starts, 0.95));
    let beyond_median = edit_median.saturating_sub(start_median);
    let beyond_p95 = edit_p95.saturating_sub(start_p95);
    println!("edit latency: save a manifest -> the Service answers on its port ({EDITS} edits, release daemon)");
    println!("  all edits        median {:7.1} ms   p95 {:7.1} ms", millis(edit_median), millis(edit_p95));
    println!(
        "  adds ({:2})        median {:7.1} ms   p95 {:7.1} ms",
        adds.len(),
        millis(quantile(&adds, 0.5)),
        millis(quantile(&adds, 0.95))
    );
    println!(
        "  changes ({:2})     median {:7.1} ms   p95 {:7.1} ms   (stop the old process, start the new)",
        changes.len(),
        millis(quantile(&changes, 0.5)),
        millis(quantile(&changes, 0.95))
    );
    println!(
        "  program alone    median {:7.1} ms   p95 {:7.1} ms   ({python} -m http.server, started directly)",
        millis(start_median),
        millis(start_p95)
    );
    println!(
        "  beyond the program's own start: median {:.1} ms, p95 {:.1} ms",
        millis(beyond_median),
        millis(beyond_p95)
    );
    let verdict = if beyond_median < LATENCY_TARGET && beyond_p95 < LATENCY_TARGET { "met" } else { "MISSED" };
    println!("  target: under {} ms beyond the program's start: {verdict}", LATENCY_TARGET.as_millis());
}

/// The server started by hand on a fresh port: how long until it answers.
fn direct_start(python: &str) -> Duration {
    let port = free_port();
    let started = Instant::now();
    let mut server = Command::new(python)
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 starts");
    wait_for_answer(port, started);
    let took = started.elapsed();
    let _ = server.kill();
    let _ = server.wait();
    took
}

fn wait_for_answer(port: u16, since: Instant) {
    while http_get(port, "/", None).is_none_or(|(status, _)| status != 200) {
        assert!(since.elapsed() < PATIENCE, "nothing answered on port {port}");
        std::thread::sleep(ANSWER_POLL);
    }
}

// --- 2. idle cost -------------------------------------------------------------------

fn idle_cost(span: Duration) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    let daemon = Daemon::start("agent-work-laptop", |manifests| copy_tree(&examples, manifests));
    let revision = eventually("the examples are applied", || daemon.status()["revision"].as_str().map(str::to_owned));
    let ticks_per_second = clock_ticks_per_second();

    let begin = cpu_ticks(daemon.pid());
    let started = Instant::now();
    let mut rss = Vec::new();
    while started.elapsed() < span {
        std::thread::sleep(Duration::from_secs(1));
        rss.push(proc_status_kib(daemon.pid(), "VmRSS:"));
    }
    let cpu = (cpu_ticks(daemon.pid()) - begin) as f64 / ticks_per_second as f64;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_percent = cpu / elapsed * 100.0;
    let rss_max = rss.iter().copied().max().unwrap_or_default();
    let rss_last = rss.last().copied().unwrap_or_default();
    let threads = proc_status_kib(daemon.pid(), "Threads:");

    println!(
        "idle daemon: the example manifests as agent-work-laptop (revision {revision}), {elapsed:.0} s after they were applied"
    );
    println!(
        "  RSS  max {:.1} MiB, at the end {:.1} MiB ({threads} threads)",
        rss_max as f64 / 1024.0,
        rss_last as f64 / 1024.0
    );
    println!("  CPU  {cpu:.2} s over {elapsed:.0} s = {cpu_percent:.3} % of one core");
    println!("  what it was doing:");
    let status = daemon.status();
    for object in status["objects"].as_array().into_iter().flatten() {
        let ready = object["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Ready");
        let field = |name: &str| ready.and_then(|c| c[name].as_str()).unwrap_or("-").to_owned();
        let name = object["name"].as_str().unwrap_or("?");
        println!(
            "    {}/{name}: Ready={} {}: {}",
            object["kind"].as_str().unwrap_or("?"),
            field("status"),
            field("reason"),
            field("message")
        );
        let attempts = failed_starts(&daemon.log(), name);
        if !attempts.is_empty() {
            let seconds: Vec<String> = attempts.iter().map(|at| format!("{:.1}", at.as_secs_f64())).collect();
            println!("      retried with backoff: failed starts at {} s", seconds.join(", "));
        }
    }
    let rss_verdict = if rss_max < RSS_TARGET_KIB { "met" } else { "MISSED" };
    let cpu_verdict = if cpu_percent < CPU_TARGET_PERCENT { "met" } else { "MISSED" };
    println!("  target: RSS under {} MiB: {rss_verdict}", RSS_TARGET_KIB / 1024);
    println!("  target: CPU under {CPU_TARGET_PERCENT} % of one core: {cpu_verdict}");
}

/// When the supervisor failed to start `service`, from the daemon's log,
/// counted from the first failure.
fn failed_starts(log: &str, service: &str) -> Vec<Duration> {
    let tag = format!("service={service} ");
    let times: Vec<SystemTime> = log
        .lines()
        .filter(|line| line.contains("cannot start") && line.contains(&tag))
        .filter_map(|line| humantime::parse_rfc3339(line.split_whitespace().next()?).ok())
        .collect();
    times.iter().filter_map(|time| time.duration_since(*times.first()?).ok()).collect()
}

/// A `Name: value kB` (or plain count) line of `/proc/PID/status`.
fn proc_status_kib(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let line = status.lines().find(|line| line.starts_with(name)).expect("the field is there");
    line[name.len()..].split_whitespace().next().and_then(|n| n.parse().ok()).expect("a number")
}

// --- the daemon -----------------------------------------------------------------------

/// The release `meshctl daemon` in a temporary workspace with its own `.env`,
/// port and state; stopped with SIGTERM when dropped.
struct Daemon {
    dir: TempDir,
    port: u16,
    child: Child,
}

impl Daemon {
    fn start(node_id: &str, fill: impl FnOnce(&Path)) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifests = dir.path().join("manifests");
        std::fs::create_dir_all(&manifests).expect("create the manifests folder");
        fill(&manifests);
        let port = free_port();
        let env = format!(
            "AGENT_NODE_ID={node_id}\nMESH_API_KEY={KEY}\nMESH_LISTEN=127.0.0.1:{port}\nMESH_STATE_DIR={}\n",
            dir.path().join("state").display()
        );
        write(&dir.path().join(".env"), &env);
        let log = File::create(dir.path().join("daemon.log")).expect("create the log");
        let child = Command::new(env!("CARGO_BIN_EXE_meshctl"))
            .arg("daemon")
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("meshctl daemon starts");
        let daemon = Daemon { dir, port, child };
        eventually("the daemon's API answers", || http_get(daemon.port, "/mesh/health", None).map(drop));
        daemon
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).expect("read the daemon log")
    }

    /// `GET /api/v1/status`.
    fn status(&self) -> Value {
        let (status, body) = http_get(self.port, "/api/v1/status", Some(KEY)).expect("the API answers");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("status is JSON")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill takes plain integers and touches no memory.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

// --- helpers ------------------------------------------------------------------------

fn node(name: &str) -> String {
    format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: {name}}}\nspec: {{role: primary, address: 127.0.0.1}}\n"
    )
}

fn web(name: &str, node: &str, python: &str, port: u16) -> String {
    format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  nodes: [{node}]\n  \
         command: [\"{python}\", -m, http.server, \"{port}\", --bind, 127.0.0.1]\n  \
         healthCheck: {{http: {{port: {port}}}, interval: 1s}}\n"
    )
}

/// The interpreter `python3` stands for, so that neither figure includes a
/// version manager's shim (pyenv's costs tens of milliseconds per start).
fn python() -> String {
    let output = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output();
    let output = output.expect("python3 runs");
    String::from_utf8(output.stdout).expect("a UTF-8 path").trim().to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port").local_addr().expect("an address").port()
}

/// `GET` over HTTP/1.0 (the server closes after answering): the status code and
/// the body, or None when nothing answers.
fn http_get(port: u16, path: &str, key: Option<&str>) -> Option<(u16, String)> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = key.map(|key| format!("Authorization: Bearer {key}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split_whitespace().nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    Some((status, body))
}

fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
}
