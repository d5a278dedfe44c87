//! What the MeshRouter adds to a call: the same trivial `http` endpoint on
//! loopback called directly, and through a real daemon's `POST /mesh/route`
//! on this node (the local case: the agent's call, the daemon's call to the
//! endpoint, both answers passed back). Printed: median and p99 latency of
//! each and what routing adds, over sequential calls on keep-alive
//! connections, and requests per second with many calls in flight. The target,
//! under 100 µs added at the median, is judged on `MeshRouter::route` (the
//! Rust API, below); the HTTP figure is printed beside it, judged too.
//!
//! A routed call is two HTTP exchanges where a direct one is one, so what
//! routing adds can never be less than one exchange with the daemon: the
//! latency of `GET /mesh/health`, measured alongside, shows that floor on the
//! machine at hand. `MeshRouter::route` called in this process (the Rust API,
//! no hop through a daemon) shows what the router's own work adds.
//!
//! Run: `cargo bench --bench router` (cargo builds the optimised `meshctl` for
//! it). `BENCH_REQUESTS=10000` takes more samples.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentmesh::api_key::ApiKey;
use agentmesh::manifest::{SourceFile, validate};
use agentmesh::mesh::failover::Failover;
use agentmesh::mesh::peers::Peers;
use agentmesh::mesh::placement::Placements;
use agentmesh::mesh::router::{DEFAULT_TIMEOUT, MeshRouter};
use agentmesh::mesh::wake_up::WakeUp;
use agentmesh::metrics::Metrics;
use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

const KEY: &str = "bench-key";
const TARGET: Duration = Duration::from_micros(100);
const WARMUP: usize = 300;
/// The sequential calls are made in this many turns of each kind.
const ROUNDS: usize = 10;
/// Calls in flight during the throughput run.
const CONCURRENCY: usize = 32;

fn main() {
    let requests: usize = std::env::var("BENCH_REQUESTS").ok().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let dir = tempfile::tempdir().expect("temp dir");
    let endpoint_port = start_endpoint();
    let api_port = free_port();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).expect("create manifests");
    let text = format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: bench}}\n\
         spec: {{role: primary, address: 127.0.0.1, apiPort: {api_port}}}\n---\n\
         apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: echo}}\n\
         spec: {{provider: http, placement: {{prefer: [bench]}}, endpoint: {{port: {endpoint_port}, path: /echo}}}}\n"
    );
    std::fs::write(manifests.join("mesh.yaml"), &text).expect("write manifests");
    let set = Arc::new(validate(&[SourceFile { path: "mesh.yaml".into(), text }], Vec::new()).set);
    let set_in_force = Arc::new(move || Some(set.clone()));
    let peers = Peers::default();
    let wake_up = WakeUp::new(peers.clone(), Arc::new(|_, _| {}));
    let failover = Failover::new("bench".into(), ApiKey::new(Some(KEY.into())), peers, Metrics::default(), wake_up);
    let in_process = MeshRouter::new(failover, Placements::default(), set_in_force, DEFAULT_TIMEOUT);
    let _daemon = Daemon::start(api_port, &manifests, &dir.path().join("state"));

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        let direct_url = format!("http://127.0.0.1:{endpoint_port}/echo");
        let route_url = format!("http://127.0.0.1:{api_port}/mesh/route");
        let payload = json!({"prompt": "Summarise the meeting notes", "n": 1});
        let routed_body = json!({"capability": "echo", "payload": payload});
        let health_url = format!("http://127.0.0.1:{api_port}/mesh/health");
        let direct = || client.post(&direct_url).json(&payload);
        let routed = || client.post(&route_url).bearer_auth(KEY).json(&routed_body);
        let health = || client.get(&health_url);
        let route_here = || async {
            let started = Instant::now();
            let routed = in_process.route("echo", payload.clone(), None).await.expect("routed");
            assert_eq!(routed.status, 200);
            started.elapsed()
        };
        wait_until_ready(&client, api_port).await;

        for _ in 0..WARMUP {
            call(direct()).await;
            call(routed()).await;
            call(health()).await;
            route_here().await;
        }
        // Blocks of each kind in turns: a noisy neighbour slows all kinds
        // alike, and each call follows one of its own kind, so none pays for
        // waking the cores another kind left idle.
        let mut times = [(); 4].map(|()| Vec::with_capacity(requests));
        for _ in 0..ROUNDS {
            for _ in 0..requests / ROUNDS {
                times[0].push(call(direct()).await);
            }
            for _ in 0..requests / ROUNDS {
                times[1].push(call(routed()).await);
            }
            for _ in 0..requests / ROUNDS {
                times[2].push(call(health()).await);
            }
            for _ in 0..requests / ROUNDS {
                times[3].push(route_here().await);
            }
        }
        let [direct_times, routed_times, health_times, in_process_times] = &mut times;
        let (direct_median, direct_p99) = median_p99(direct_times);
        let (routed_median, routed_p99) = median_p99(routed_times);
        let (health_median, health_p99) = median_p99(health_times);
        let (in_process_median, in_process_p99) = median_p99(in_process_times);

        let direct_rps = throughput(requests * 5, direct).await;
        let routed_rps = throughput(requests * 5, routed).await;

        println!("MeshRouter overhead, local call over loopback ({requests} sequential calls each, keep-alive)");
        println!("  direct  median {:>8.1?}  p99 {:>8.1?}", direct_median, direct_p99);
        println!("  routed  median {:>8.1?}  p99 {:>8.1?}", routed_median, routed_p99);
        println!("  added   median {}  p99 {}", added(routed_median, direct_median), added(routed_p99, direct_p99));
        println!("  one exchange with the daemon (GET /mesh/health), the floor of what routing adds:");
        println!("          median {:>8.1?}  p99 {:>8.1?}", health_median, health_p99);
        println!("  MeshRouter::route in this process (no daemon hop):");
        println!("          median {:>8.1?}  p99 {:>8.1?}", in_process_median, in_process_p99);
        println!(
            "    adds  median {}  p99 {}",
            added(in_process_median, direct_median),
            added(in_process_p99, direct_p99)
        );
        println!("throughput ({CONCURRENCY} calls in flight)");
        println!("  direct  {direct_rps:>8.0} requests/s");
        println!("  routed  {routed_rps:>8.0} requests/s");
        // The target is for the router: what `route` adds to the call. Over
        // HTTP a routed call is also one more exchange, whose cost is the
        // machine's (the health line above), printed beside it.
        let router_added = in_process_median.saturating_sub(direct_median);
        let verdict = if router_added < TARGET { "within" } else { "OVER" };
        println!("MeshRouter::route {verdict} the target of {TARGET:?} added at the median");
        let http_added = routed_median.saturating_sub(direct_median);
        let verdict = if http_added < TARGET { "within" } else { "over" };
        println!("POST /mesh/route {verdict} {TARGET:?} added at the median (one more loopback exchange)");
    });
}

/// Sends one request, checks it succeeded, and returns how long it took.
async fn call(request: reqwest::RequestBuilder) -> Duration {
    let started = Instant::now();
    let response = request.send().await.expect("an answer");
    assert!(response.status().is_success(), "{}", response.status());
    response.bytes().await.expect("a body");
    started.elapsed()
}

/// Requests per second over `total` calls, `CONCURRENCY` at a time.
async fn throughput(total: usize, request: impl Fn() -> reqwest::RequestBuilder) -> f64 {
    let started = Instant::now();
    let mut in_flight = tokio::task::JoinSet::new();
    for i in 0..total {
        if i >= CONCURRENCY {
            in_flight.join_next().await.expect("a call").expect("no panic");
        }
        in_flight.spawn(call(request()));
    }
    in_flight.join_all().await;
    total as f64 / started.elapsed().as_secs_f64()
}

/// `with - without` in microseconds, signed: on a noisy machine the difference
/// of two medians can come out below zero, and hiding that would mislead.
fn added(with: Duration, without: Duration) -> String {
    format!("{:>+7.1}µs", (with.as_secs_f64() - without.as_secs_f64()) * 1e6)
}

fn median_p99(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort_unstable();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

/// The trivial endpoint, on a runtime of its own thread: it answers every
/// POST with a small JSON document.
fn start_endpoint() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the endpoint");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("an address").port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            let app = axum::Router::new().route(
                "/echo",
                post(|Json(payload): Json<Value>| async move { Json(json!({"ok": true, "n": payload["n"]})) }),
            );
            axum::serve(listener, app).await.expect("the endpoint serves");
        });
    });
    port
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("an address").port()
}

async fn wait_until_ready(client: &reqwest::Client, api_port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = client.get(format!("http://127.0.0.1:{api_port}/mesh/health")).send().await;
        if let Ok(response) = health {
            let body: Value = response.json().await.unwrap_or_default();
            if body["revision"].is_string() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the daemon did not come up with the manifests in force");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The optimised `meshctl daemon`, killed on drop.
struct Daemon(std::process::Child);

impl Daemon {
    fn start(api_port: u16, manifests: &std::path::Path, state: &std::path::Path) -> Daemon {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_meshctl"))
            .arg("daemon")
            .env_clear()
            .env("AGENT_NODE_ID", "bench")
            .env("MESH_API_KEY", KEY)
            .env("MESH_LISTEN", format!("127.0.0.1:{api_port}"))
            .env("MESH_MANIFESTS", manifests)
            .env("MESH_STATE_DIR", state)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("meshctl daemon starts");
        Daemon(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
