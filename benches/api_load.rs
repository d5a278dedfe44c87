//! The mesh API under load: `wrk` on `GET /mesh/health` with 100 connections
//! against the optimised `meshctl daemon`, several runs, the median
//! requests per second printed. Given several `meshctl` binaries it alternates
//! between them run by run (a fresh daemon each run), to compare two builds on
//! one busy machine.
//!
//! Run: `cargo bench --bench api_load` (needs `wrk` on PATH). Settings:
//! `API_LOAD_MESHCTL=old/meshctl:new/meshctl` (default: the one cargo built),
//! `API_LOAD_RUNS` (5), `API_LOAD_SECONDS` per run (10), `API_LOAD_THREADS`
//! of wrk (2).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONNECTIONS: u32 = 100;

fn main() {
    let binaries: Vec<PathBuf> = match std::env::var_os("API_LOAD_MESHCTL") {
        Some(list) => std::env::split_paths(&list).collect(),
        None => vec![PathBuf::from(env!("CARGO_BIN_EXE_meshctl"))],
    };
    let runs = setting("API_LOAD_RUNS", 5);
    let seconds = setting("API_LOAD_SECONDS", 10);
    let threads = setting("API_LOAD_THREADS", 2);
    let mut figures = vec![Vec::new(); binaries.len()];
    for run in 1..=runs {
        for (binary, figures) in binaries.iter().zip(&mut figures) {
            let daemon = Daemon::start(binary);
            let rate = wrk(daemon.port, threads, seconds);
            println!("run {run}: {rate:>10.0} req/s  {}", binary.display());
            figures.push(rate);
        }
    }
    println!("\nGET /mesh/health, {CONNECTIONS} connections, {threads} wrk threads, {runs} runs of {seconds} s:");
    let medians: Vec<f64> = figures.iter_mut().map(|figures| median(figures)).collect();
    for (binary, median) in binaries.iter().zip(&medians) {
        println!("  median {median:>10.0} req/s  {}", binary.display());
    }
    if let [before, after] = medians[..] {
        println!("  second / first: {:+.1} %", (after / before - 1.0) * 100.0);
    }
}

fn setting(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn median(figures: &mut [f64]) -> f64 {
    figures.sort_by(f64::total_cmp);
    let middle = figures.len() / 2;
    if figures.len() % 2 == 1 { figures[middle] } else { (figures[middle - 1] + figures[middle]) / 2.0 }
}

/// Requests per second of one `wrk` run.
fn wrk(port: u16, threads: u32, seconds: u32) -> f64 {
    let output = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{seconds}s"))
        .arg(format!("http://127.0.0.1:{port}/mesh/health"))
        .output()
        .expect("wrk runs (install it: apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && !text.contains("Non-2xx"), "wrk failed:\n{text}");
    let line = text.lines().find(|line| line.starts_with("Requests/sec:")).expect("wrk prints Requests/sec");
    line["Requests/sec:".len()..].trim().parse().expect("a number of requests per second")
}

/// `meshctl daemon` with one Node and nothing to run, on a free loopback
/// port in a workspace of its own; killed on drop.
struct Daemon {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(meshctl: &Path) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).expect("create manifests");
        let node = "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: bench}\nspec: {role: primary, address: 127.0.0.1}\n";
        std::fs::write(manifests.join("node.yaml"), node).expect("write the manifest");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
        let child = Command::new(meshctl)
            .arg("daemon")
            .current_dir(dir.path())
            .env_clear()
            .env("HOME", dir.path())
            .env("AGENT_NODE_ID", "bench")
            .env("MESH_API_KEY", "bench-key")
            .env("MESH_LISTEN", format!("127.0.0.1:{port}"))
            .env("MESH_MANIFESTS", &manifests)
            .env("MESH_STATE_DIR", dir.path().join("state"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("meshctl daemon starts");
        let daemon = Daemon { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !daemon.healthy() {
            assert!(Instant::now() < deadline, "the daemon's API did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    fn healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let mut answer = String::new();
        stream.write_all(b"GET /mesh/health HTTP/1.0\r\n\r\n").is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer.split_whitespace().nth(1) == Some("200")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
