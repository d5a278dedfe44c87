//! How soon the mesh agrees on a capability's serving node when that node goes
//! silent and when it returns (#16, #19): three optimised daemons on loopback
//! (node-a, node-b, node-c on 127.0.0.2–4) share one API port, which is also
//! the capability's endpoint (`/mesh/health`), so a node that hangs takes its
//! endpoint with it. The capability prefers node-c, then node-b, then node-a.
//! Each round SIGSTOPs node-c (its port still accepts; nothing answers, as a
//! machine that froze or lost its link) and times until node-a and node-b both
//! name node-b and see node-c offline, then SIGCONTs it and times until all
//! three name node-c again. Prints the median and p95 of each over the rounds.
//!
//! `cargo bench --bench sleep` (`SLEEP_ROUNDS=N` for more rounds).

#![allow(
    unsafe_code,
    reason = "the benches signal and inspect processes with libc; the crate keeps its unsafe in src/sys.rs"
)]

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::mesh::{Daemon, NODES as TWO, free_port, wait, wait_within};
use common::{millis, quantile};
use serde_json::Value;

const NODES: [(&str, Ipv4Addr); 3] = [TWO[0], TWO[1], ("node-c", Ipv4Addr::new(127, 0, 0, 4))];
/// How long a round may take before the bench gives up on it.
const PATIENCE: Duration = Duration::from_secs(30);
/// Time for the daemons to settle between rounds, so each round starts from
/// a mesh where every probe is answered.
const SETTLE: Duration = Duration::from_secs(2);

fn manifests(port: u16) -> String {
    let mut text = String::new();
    for (name, ip) in NODES {
        text.push_str(&format!(
            "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: {name}}}\n\
             spec: {{role: satellite, address: {ip}, apiPort: {port}}}\n---\n"
        ));
    }
    text.push_str(&format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: llm_inference}}\n\
         spec:\n  provider: http\n  placement: {{prefer: [node-c], fallback: [node-b, node-a]}}\n  \
         endpoint: {{port: {port}, path: /mesh/health}}\n"
    ));
    text
}

/// A port free on all three addresses.
fn shared_port() -> u16 {
    wait("a port free on every node's address", || {
        let port = free_port(NODES[0].1);
        NODES[1..].iter().all(|(_, ip)| std::net::TcpListener::bind((*ip, port)).is_ok()).then_some(port)
    })
}

/// Who `daemon` says serves the capability and whether it sees `peer` online.
fn view(daemon: &Daemon, peer: &str) -> Option<(String, bool)> {
    let status: Value = serde_json::from_str(&daemon.get("/api/v1/status")?).ok()?;
    let objects = status["objects"].as_array()?;
    let capability = objects.iter().find(|o| o["kind"] == "Capability" && o["name"] == "llm_inference")?;
    let served = capability["details"]["servedBy"].as_str()?.to_owned();
    let mesh: Value = serde_json::from_str(&daemon.get("/api/v1/mesh")?).ok()?;
    let online = mesh.as_array()?.iter().find(|node| node["name"] == peer)?["online"].as_bool()?;
    Some((served, online))
}

/// How long until every daemon of `views` names `served` and sees the peer
/// beside it `online`.
fn until_agreed(views: &[(&Daemon, &str)], served: &str, online: bool) -> Duration {
    let started = Instant::now();
    wait_within(PATIENCE, &format!("every node names {served}"), || {
        views.iter().all(|(daemon, peer)| view(daemon, peer) == Some((served.to_owned(), online))).then_some(())
    });
    started.elapsed()
}

fn signal(daemon: &Daemon, signal: libc::c_int) {
    // SAFETY: kill takes plain integers and touches no memory.
    assert_eq!(unsafe { libc::kill(daemon.pid() as libc::pid_t, signal) }, 0);
}

fn main() {
    let rounds: usize = std::env::var("SLEEP_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(10);
    let port = shared_port();
    let mesh = manifests(port);
    let [a, b, c] = NODES.map(|(name, ip)| Daemon::start(name, ip, port, "unused", &mesh));
    let everyone = [(&a, "node-c"), (&b, "node-c"), (&c, "node-a")];
    until_agreed(&everyone, "node-c", true);

    let (mut fell_back, mut came_back) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        std::thread::sleep(SETTLE);
        signal(&c, libc::SIGSTOP);
        fell_back.push(until_agreed(&[(&a, "node-c"), (&b, "node-c")], "node-b", false));
        std::thread::sleep(SETTLE);
        signal(&c, libc::SIGCONT);
        came_back.push(until_agreed(&everyone, "node-c", true));
    }
    println!("three nodes agree on a capability's serving node ({rounds} rounds; goal: within 2 s)");
    for (what, figures) in [
        ("node-c hangs: node-a and node-b name node-b", &fell_back),
        ("node-c returns: all three name node-c", &came_back),
    ] {
        let (median, p95) = (quantile(figures, 0.5), quantile(figures, 0.95));
        println!("  {what:<46} median {:>7.0} ms  p95 {:>7.0} ms", millis(median), millis(p95));
    }
}
