//! How long `meshctl validate` takes on a large manifests folder: 1,000 objects in
//! 100 files (Nodes, Services placed by name and by selector with templates and
//! health checks, Capabilities whose placement and service reference them,
//! SyncFolders, HandoffPolicies and a Mesh; several documents per file), loaded
//! with `load_dir` and checked with `validate`, as the command and the controller
//! do. The target is a median under 50 ms.
//!
//! Then 10,000 documents of each shape of `tests/integration/support/shapes.rs`
//! (one Node duplicated, distinct valid objects, invalid documents, deep and
//! long values, all mixed), validated and every diagnostic rendered: each under
//! 1 s (issue #13, point 6).
//!
//! Run: `cargo bench --bench validate` (optimised build; no extra harness).
//! `BENCH_ITERATIONS=100 cargo bench --bench validate` takes more samples.

#![allow(
    unsafe_code,
    reason = "the benches signal and inspect processes with libc; the crate keeps its unsafe in src/sys.rs"
)]

mod common;
#[path = "../tests/integration/support/shapes.rs"]
mod shapes;

use common::{millis, quantile};

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use agentmesh::manifest::loader::load_dir;
use agentmesh::manifest::validate;

const FILES: usize = 100;
const TARGET: Duration = Duration::from_millis(50);

/// How many objects of each kind the generated set holds (1,000 in all).
const NODES: usize = 40;
const SERVICES: usize = 260;
const CAPABILITIES: usize = 300;
const SYNC_FOLDERS: usize = 240;
const HANDOFF_POLICIES: usize = 159;
const MESHES: usize = 1;
const OBJECTS: usize = NODES + SERVICES + CAPABILITIES + SYNC_FOLDERS + HANDOFF_POLICIES + MESHES;

const ZONES: usize = 4;

fn node_name(i: usize) -> String {
    format!("node-{i:03}")
}

/// The nodes of zone `zone`: every node whose index is `zone` modulo [`ZONES`].
fn zone_nodes(zone: usize) -> Vec<usize> {
    (0..NODES).filter(|i| i % ZONES == zone).collect()
}

fn node(i: usize) -> String {
    let role = if i % 10 == 0 { "primary" } else { "satellite" };
    let name = node_name(i);
    format!(
        "# yaml-language-server: $schema=../schemas/node.schema.json
apiVersion: agentmesh/v1alpha1
kind: Node
metadata:
  name: {name}
  labels:
    zone: z{zone}
    gpu: \"{gpu}\"
spec:
  role: {role}
  address: {name}.tailnet.ts.net
  apiPort: {port}
  syncthing:
    apiUrl: http://127.0.0.1:8384
    apiKey: {{env: SYNCTHING_API_KEY}}
    deviceAddress: tcp://{name}.tailnet.ts.net:22000
",
        zone = i % ZONES,
        gpu = i % 3 == 0,
        port = 8000 + i % 3,
    )
}

/// Service `i` runs on the nodes of zone `i % ZONES`: named for even `i`, by
/// selector for odd `i`.
fn service(i: usize) -> String {
    let zone = i % ZONES;
    let placement = if i % 2 == 0 {
        let names: Vec<String> = zone_nodes(zone).into_iter().map(node_name).collect();
        format!("  nodes: [{}]\n", names.join(", "))
    } else {
        format!("  nodeSelector:\n    matchLabels: {{zone: z{zone}}}\n")
    };
    let port = 9000 + i;
    let health = if i % 3 == 0 {
        format!("    tcp: {{port: {port}}}\n")
    } else {
        format!("    http: {{port: {port}, path: /health}}\n")
    };
    format!(
        "apiVersion: agentmesh/v1alpha1
kind: Service
metadata:
  name: svc-{i}
  labels: {{tier: backend}}
spec:
{placement}  command: [/usr/local/bin/server-{i}, --host, \"{{{{node.address}}}}\", --port, \"{port}\", --name, \"{{{{node.name}}}}\"]
  env:
    LISTEN: \"{{{{node.address}}}}:{port}\"
    WORKERS: 4
    VERBOSE: false
    TOKEN: {{env: SVC_{i}_TOKEN}}
  workingDir: ~/services/svc-{i}
  healthCheck:
{health}    interval: 10s
    timeout: 2s
  restart: {restart}
  backoff: {{initial: 500ms, max: 2m}}
  stopGracePeriod: 15s
",
        restart = ["always", "on-failure", "never"][i % 3],
    )
}

/// Capability `i` is provided by the Service `i % SERVICES` and placed on nodes
/// of that Service's zone.
fn capability(i: usize) -> String {
    let service = i % SERVICES;
    let nodes = zone_nodes(service % ZONES);
    let at = |k: usize| node_name(nodes[(i + k) % nodes.len()]);
    let ollama = i % 2 == 0;
    let settings = if ollama { "  ollama:\n    models: [llama3.2:3b, nomic-embed-text]\n" } else { "" };
    format!(
        "apiVersion: agentmesh/v1alpha1
kind: Capability
metadata:
  name: cap_{i}
spec:
  provider: {provider}
  service: svc-{service}
  placement:
    prefer: [{first}, {second}]
    fallback: [{third}]
  endpoint:
    port: {port}
    path: /v1
    healthPath: /health
  clientEnv:
    CAP_{i}_URL: \"http://{{{{host}}}}:{{{{port}}}}{{{{path}}}}\"
    CAP_{i}_NODE: \"{{{{node}}}}\"
{settings}",
        provider = if ollama { "ollama" } else { "http" },
        first = at(0),
        second = at(1),
        third = at(2),
        port = 9000 + service,
    )
}

fn sync_folder(i: usize) -> String {
    let (a, b) = (node_name(i % NODES), node_name((i + 1) % NODES));
    format!(
        "apiVersion: agentmesh/v1alpha1
kind: SyncFolder
metadata:
  name: folder_{i}
spec:
  folderId: folder-{i}
  label: Folder {i}
  paths:
    {a}: ~/sync/folder-{i}
    {b}: /srv/sync/folder-{i}
  type: {kind}
  ignore: [\"*.tmp\", .DS_Store, node_modules]
  versioning:
    type: staggered
    params: {{maxAge: \"864000\"}}
    cleanupInterval: 1h
  rescanInterval: 30m
",
        kind = ["sendreceive", "sendonly", "receiveonly"][i % 3],
    )
}

fn handoff_policy(i: usize) -> String {
    let folder = i % SYNC_FOLDERS;
    format!(
        "apiVersion: agentmesh/v1alpha1
kind: HandoffPolicy
metadata:
  name: handoff-{i}
spec:
  syncFolder: folder_{folder}
  sessionsDir: sessions/agent-{i}
  defaultTarget: {target}
  requireInSync: true
  timeout: 2m
  allowForce: {force}
",
        target = node_name((folder + 1) % NODES),
        force = i % 2 == 0,
    )
}

fn mesh() -> String {
    "apiVersion: agentmesh/v1alpha1
kind: Mesh
metadata:
  name: mesh
spec:
  auth:
    apiKey: {env: MESH_API_KEY}
    tailscaleIdentity:
      enabled: true
      allowUsers: [alice@example.com]
      allowTags: [\"tag:agent\"]
  discovery:
    tailscale: true
  reconcile:
    resyncInterval: 5m
"
    .to_owned()
}

/// Writes the set: every object once, dealt round-robin into [`FILES`] files
/// (some in sub-folders), so that each file mixes kinds.
fn write_set(dir: &Path) {
    let objects: Vec<String> = (0..NODES)
        .map(node)
        .chain((0..SERVICES).map(service))
        .chain((0..CAPABILITIES).map(capability))
        .chain((0..SYNC_FOLDERS).map(sync_folder))
        .chain((0..HANDOFF_POLICIES).map(handoff_policy))
        .chain((0..MESHES).map(|_| mesh()))
        .collect();
    assert_eq!(objects.len(), OBJECTS);
    let mut files = vec![String::new(); FILES];
    for (i, object) in objects.iter().enumerate() {
        let file = &mut files[i % FILES];
        if !file.is_empty() {
            file.push_str("---\n");
        }
        file.push_str(object);
    }
    for (i, text) in files.iter().enumerate() {
        let path = dir.join(format!("team-{}", i % 10)).join(format!("set-{i:03}.yaml"));
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("create folder");
        std::fs::write(path, text).expect("write file");
    }
}

/// One load and check of the folder: how long `load_dir` and `validate` took.
fn run_once(dir: &Path) -> Sample {
    let started = Instant::now();
    let (files, unreadable) = load_dir(dir).expect("the folder loads");
    let loaded = Instant::now();
    let validation = validate(&files, unreadable);
    let done = Instant::now();
    assert_eq!(validation.set.len(), OBJECTS);
    assert!(validation.is_valid(), "the generated set is invalid");
    Sample { total: done - started, load: loaded - started, validate: done - loaded }
}

#[derive(Clone, Copy)]
struct Sample {
    total: Duration,
    load: Duration,
    validate: Duration,
}

fn main() {
    // `cargo bench` passes `--bench`; ignore any arguments.
    let iterations: usize = std::env::var("BENCH_ITERATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(30);
    let dir = tempfile::tempdir().expect("temp dir");
    write_set(dir.path());

    let (files, unreadable) = load_dir(dir.path()).expect("the folder loads");
    let validation = validate(&files, unreadable);
    assert_eq!(files.len(), FILES);
    assert_eq!(validation.set.len(), OBJECTS);
    assert!(
        validation.diagnostics.is_empty(),
        "the generated set should be clean:\n{}",
        validation.diagnostics.iter().take(10).map(ToString::to_string).collect::<Vec<_>>().join("\n\n")
    );
    let bytes: usize = files.iter().map(|f| f.text.len()).sum();

    for _ in 0..3 {
        run_once(dir.path());
    }
    let samples: Vec<Sample> = (0..iterations).map(|_| run_once(dir.path())).collect();
    let totals: Vec<Duration> = samples.iter().map(|s| s.total).collect();
    let loads: Vec<Duration> = samples.iter().map(|s| s.load).collect();
    let checks: Vec<Duration> = samples.iter().map(|s| s.validate).collect();
    let (min, median, p95, max) =
        (quantile(&totals, 0.0), quantile(&totals, 0.5), quantile(&totals, 0.95), quantile(&totals, 1.0));

    let mut report = String::new();
    let _ = writeln!(
        report,
        "validate: {OBJECTS} objects in {FILES} files ({} KiB), load_dir + validate, {iterations} iterations after 3 warm-up runs",
        bytes / 1024
    );
    let _ = writeln!(
        report,
        "  min {:.2} ms   median {:.2} ms   p95 {:.2} ms   max {:.2} ms",
        millis(min),
        millis(median),
        millis(p95),
        millis(max)
    );
    let _ = writeln!(
        report,
        "  of which load_dir {:.2} ms and validate {:.2} ms (medians)",
        millis(quantile(&loads, 0.5)),
        millis(quantile(&checks, 0.5))
    );
    let _ = writeln!(report, "  {:.0} objects/s at the median", OBJECTS as f64 / median.as_secs_f64());
    let verdict = if median < TARGET { "met" } else { "MISSED" };
    let _ = writeln!(report, "  target: median under {} ms: {verdict}", TARGET.as_millis());
    print!("{report}");
    many_documents();
}

const MANY: usize = 10_000;
const MANY_TARGET: Duration = Duration::from_secs(1);

/// [`MANY`] documents of each shape: validated, every diagnostic rendered.
fn many_documents() {
    println!("validate + render: {MANY} documents of each shape, slowest of 3 runs");
    for shape in &shapes::SHAPES {
        let files = (shape.files)(MANY);
        let mut diagnostics = 0;
        let slowest = (0..3)
            .map(|_| {
                let started = Instant::now();
                let validation = validate(&files, Vec::new());
                let rendered: usize = validation.diagnostics.iter().map(|d| d.to_string().len()).sum();
                std::hint::black_box(rendered);
                diagnostics = validation.diagnostics.len();
                started.elapsed()
            })
            .max()
            .expect("three runs");
        let verdict = if slowest < MANY_TARGET { "met" } else { "MISSED" };
        println!(
            "  {:<24} {:>8.1} ms  ({} files, {diagnostics} diagnostics)  target under {} s: {verdict}",
            shape.name,
            millis(slowest),
            files.len(),
            MANY_TARGET.as_secs()
        );
    }
}
